"""The certificate store as the pages use it: create + CSR, upload the signed certificate, chains, renew, delete.

Every operation runs inside ``workflow.submit`` as the views run it; the certificates are signed by a test
CA made with ``openssl`` (tests/pki_factory.py).
"""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from appliance import workflow
from appliance.config.levels import CLUSTER, CLUSTER_MODE
from certificates import pki, store
from certificates.models import Certificate, CsrDownload
from certificates.pki import KeyType
from tests.certificate_helpers import assert_refused, fingerprints, snapshot, stage
from tests.pki_factory import bundle, make_pki, openssl, self_signed, to_der, to_p7b

SUBJECT = pki.Subject("mail.example.com", organization="Example Inc", country="DE")
NOW = datetime.datetime.now(datetime.UTC)


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def create(user, name="mail", key_type=KeyType.RSA2048, names=(), subject=SUBJECT, days=365):
    return stage(user, lambda: store.create_self_signed(CLUSTER, name, subject, days, list(names), key_type))


@pytest.fixture
def entry(admin):
    """'mail': self-signed with its CSR, committed (so a refused change is seen to take no lock)."""
    create(admin)
    workflow.commit(admin)
    return Certificate.objects.at(CLUSTER).get(name="mail")


def key_of(name):
    return store.unseal(Certificate.objects.at(CLUSTER).get(name=name).private_key_sealed)


# --- Upload Signed Certificate: the matrix -----------------------------------

ROOT_NOTE = "The root 'Test Root CA' is not served: clients must already trust it."
KEY_NOTE = "The private key block in the file was ignored: the entry keeps its own key."
TWICE_NOTE = "The intermediate 'Test Intermediate CA' appeared twice; one copy was dropped."

ACCEPTED = {
    # case: (file from the signed leaf, intermediates served, notes)
    "pem": (lambda ca, leaf, key: leaf.read_bytes(), False, []),
    "der": (lambda ca, leaf, key: to_der(leaf), False, []),
    "p7b-pem": (lambda ca, leaf, key: to_p7b(leaf, ca.intermediate.cert), True, []),
    "p7b-der": (lambda ca, leaf, key: to_p7b(leaf, ca.intermediate.cert, der=True), True, []),
    "p7b-with-root": (lambda ca, leaf, key: to_p7b(ca.root.cert, leaf, ca.intermediate.cert), True, [ROOT_NOTE]),
    "pem-bundle": (lambda ca, leaf, key: bundle(leaf, ca.intermediate.cert), True, []),
    "bundle-with-root": (lambda ca, leaf, key: bundle(leaf, ca.intermediate.cert, ca.root.cert), True, [ROOT_NOTE]),
    "bundle-with-key": (lambda ca, leaf, key: bundle(key, leaf, ca.intermediate.cert), True, [KEY_NOTE]),
    "reversed": (lambda ca, leaf, key: bundle(ca.root.cert, ca.intermediate.cert, leaf), True, [ROOT_NOTE]),
    "duplicated": (lambda ca, leaf, key: bundle(leaf, ca.intermediate.cert, ca.intermediate.cert), True, [TWICE_NOTE]),
}  # fmt: skip


@pytest.mark.parametrize("case", ACCEPTED)
def test_upload_signed_accepts(case, admin, entry, ca):
    make, with_intermediate, notes = ACCEPTED[case]
    key_before = entry.private_key_sealed
    leaf = ca.intermediate.sign(entry.csr_pem, f"mail-{case}")
    data = make(ca, leaf, pki.private_key_pem(key_of("mail")))

    outcome = stage(admin, lambda: store.upload_signed(CLUSTER, "mail", data))

    assert (outcome.notes, outcome.warnings) == (notes, [])
    entry.refresh_from_db()
    assert fingerprints(entry.certificate) == fingerprints(leaf)
    assert fingerprints(*entry.chain) == (fingerprints(ca.intermediate.cert) if with_intermediate else [])
    assert entry.csr_pem == ""
    assert entry.private_key_sealed == key_before
    assert (entry.status, entry.status.label) == (Certificate.Status.VALID, "Valid")
    assert entry.issuer == "CN=Test Intermediate CA"
    assert workflow.has_uncommitted_changes()


def test_reversed_three_level_chain_is_served_leaf_to_root(admin, entry, ca):
    issuing = ca.intermediate.issue("Test Issuing CA", ca=True)
    leaf = issuing.sign(entry.csr_pem, "mail-three-levels")
    data = bundle(ca.root.cert, ca.intermediate.cert, issuing.cert, leaf)

    outcome = stage(admin, lambda: store.upload_signed(CLUSTER, "mail", data))

    assert outcome.notes == [ROOT_NOTE]
    entry.refresh_from_db()
    assert fingerprints(*entry.chain) == fingerprints(issuing.cert, ca.intermediate.cert)
    assert store.chain_notes(entry) == [
        "The last certificate served is issued by 'Test Root CA', which clients must already trust."
    ]


GARBAGE = bytes(range(256)) * 8

REFUSED = {
    "empty": (lambda ca, e: b"  \n", "The file is empty"),
    "garbage": (lambda ca, e: GARBAGE, "The file is not a certificate: expected PEM, DER or PKCS#7 (.p7b)"),
    "broken-pem": (
        lambda ca, e: b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
        "The file has PEM blocks but no readable certificate",
    ),
    "key-only": (lambda ca, e: e.key.read_bytes(), "The file has PEM blocks but no readable certificate"),
    "broken-p7b": (
        lambda ca, e: b"-----BEGIN PKCS7-----\nbm90IHBrY3M3\n-----END PKCS7-----\n",
        "The PKCS#7 file cannot be read",
    ),
    "another-key": (
        lambda ca, e: e.cert.read_bytes(),
        "The certificate 'other.example.com' does not match the private key of 'mail'",
    ),
    "another-key-bundle": (
        lambda ca, e: bundle(e.cert, ca.intermediate.cert),
        "None of the certificates in the file ('other.example.com', 'Test Intermediate CA') "
        "matches the private key of 'mail'",
    ),
    "ca-certificate-alone": (
        lambda ca, e: ca.intermediate.cert.read_bytes(),
        "'Test Intermediate CA' is a CA certificate, not a server certificate: upload it as an intermediate",
    ),
}


@pytest.mark.parametrize("case", REFUSED)
def test_upload_signed_refuses(case, admin, entry, ca):
    make, message = REFUSED[case]
    other = ca.intermediate.issue("other.example.com")
    assert_refused(admin, lambda: store.upload_signed(CLUSTER, "mail", make(ca, other)), message)
    entry.refresh_from_db()
    assert entry.status == Certificate.Status.PENDING


def test_upload_signed_refuses_the_request_signed_as_a_ca(admin, entry, ca):
    leaf = ca.intermediate.sign(entry.csr_pem, "mail-as-ca", ca=True)
    assert_refused(
        admin,
        lambda: store.upload_signed(CLUSTER, "mail", bundle(leaf, ca.intermediate.cert)),
        "'mail.example.com' is a CA certificate, not a server certificate: upload it as an intermediate",
    )


def test_upload_signed_refuses_a_stray_intermediate_by_name(admin, entry, ca):
    stray = ca.other.issue("Other Intermediate CA", ca=True)
    leaf = ca.intermediate.sign(entry.csr_pem, "mail-stray")
    assert_refused(
        admin,
        lambda: store.upload_signed(CLUSTER, "mail", bundle(leaf, ca.intermediate.cert, stray.cert)),
        "'Other Intermediate CA' does not chain to 'mail.example.com' or to the other intermediates: "
        "check that it belongs to this certificate's CA",
    )


def test_upload_signed_refuses_its_own_self_signed_certificate(admin, entry):
    assert_refused(
        admin,
        lambda: store.upload_signed(CLUSTER, "mail", entry.certificate_pem.encode()),
        "'mail.example.com' is self-signed: upload the certificate your CA signed",
    )


def test_upload_for_an_unknown_entry_is_refused(admin, entry, ca):
    assert_refused(
        admin,
        lambda: store.upload_signed(CLUSTER, "nope", ca.root.cert.read_bytes()),
        "There is no certificate named 'nope'",
    )


@pytest.mark.parametrize("when", ["expired", "not-yet-valid"])
def test_dates_are_refused_unless_accepted(when, admin, entry, ca):
    if when == "expired":
        dates = {
            "not_before": NOW - datetime.timedelta(days=60),
            "not_after": NOW - datetime.timedelta(days=2),
        }
    else:
        dates = {
            "not_before": NOW + datetime.timedelta(days=2),
            "not_after": NOW + datetime.timedelta(days=60),
        }
    leaf = ca.intermediate.sign(entry.csr_pem, f"mail-{when}", **dates)
    certificate = pki.load_certificate(leaf.read_text())
    if when == "expired":
        problem = f"'mail.example.com' expired on {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        status = Certificate.Status.EXPIRED
    else:
        problem = (
            f"'mail.example.com' is not valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )
        status = Certificate.Status.NOT_YET_VALID
    data = bundle(leaf, ca.intermediate.cert)

    assert_refused(
        admin,
        lambda: store.upload_signed(CLUSTER, "mail", data),
        f"The certificate {problem}",
        store.DatesRefused,
    )

    outcome = stage(admin, lambda: store.upload_signed(CLUSTER, "mail", data, accept_dates=True))
    assert outcome.warnings == [f"The certificate {problem}; accepted as asked."]
    entry.refresh_from_db()
    assert fingerprints(entry.certificate, *entry.chain) == fingerprints(leaf, ca.intermediate.cert)
    assert entry.status == status


# --- the same through the page -----------------------------------------------


def upload_page(client, name, data, file_name="signed.pem", **fields):
    upload = SimpleUploadedFile(file_name, data, content_type="application/octet-stream")
    return client.post(
        reverse("certificates:detail", args=[name]),
        {"action": "upload_signed", "signed_cert": upload, **fields},
    )


def test_a_10_mb_file_is_refused_by_the_form_and_changes_nothing(login, admin, entry, ca):
    leaf = ca.intermediate.sign(entry.csr_pem, "mail-huge")
    huge = (leaf.read_bytes() + b"\n" + b"A" * (10 * 1024 * 1024))[: 10 * 1024 * 1024]
    before = snapshot()
    response = upload_page(login(admin), "mail", huge, "huge.pem")
    assert response.status_code == 400
    assert (
        "The file is 10240 KiB: larger than any certificate file (1024 KiB at most)."
        in response.content.decode()
    )
    assert snapshot() == before
    assert not workflow.has_uncommitted_changes()


def test_the_page_uploads_a_bundle_and_tells_the_notes(login, admin, entry, ca):
    leaf = ca.intermediate.sign(entry.csr_pem, "mail-page")
    response = upload_page(
        login(admin), "mail", bundle(leaf, ca.intermediate.cert, ca.root.cert), "chain.pem"
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("certificates:detail", args=["mail"])
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Your changes have been submitted. Commit them to make them take effect.",
        ROOT_NOTE,
    ]
    entry.refresh_from_db()
    assert fingerprints(entry.certificate, *entry.chain) == fingerprints(leaf, ca.intermediate.cert)


def test_the_page_says_which_certificate_does_not_match(login, admin, entry, ca):
    other = ca.intermediate.issue("other.example.com")
    response = upload_page(login(admin), "mail", to_der(other.cert), "other.der")
    assert response.status_code == 409
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "The certificate 'other.example.com' does not match the private key of 'mail'. Nothing was changed."
    ]
    assert not workflow.has_uncommitted_changes()


# --- intermediates -----------------------------------------------------------


@pytest.fixture
def signed(admin, entry, ca):
    """'mail' signed by the test intermediate, uploaded without its chain and committed."""
    leaf = ca.intermediate.sign(entry.csr_pem, "mail-signed")
    stage(admin, lambda: store.upload_signed(CLUSTER, "mail", leaf.read_bytes()))
    workflow.commit(admin)
    return leaf


def test_add_and_remove_intermediates(admin, signed, ca):
    outcome = stage(
        admin, lambda: store.add_intermediates(CLUSTER, "mail", bundle(ca.root.cert, ca.intermediate.cert))
    )
    assert outcome.notes == [ROOT_NOTE]
    entry = Certificate.objects.at(CLUSTER).get(name="mail")
    assert fingerprints(*entry.chain) == fingerprints(ca.intermediate.cert)

    outcome = stage(admin, lambda: store.add_intermediates(CLUSTER, "mail", to_der(ca.intermediate.cert)))
    assert outcome.notes == [TWICE_NOTE]
    assert fingerprints(*Certificate.objects.at(CLUSTER).get(name="mail").chain) == fingerprints(
        ca.intermediate.cert
    )

    stray = ca.other.issue("Other Intermediate CA", ca=True)
    assert_refused(
        admin,
        lambda: store.add_intermediates(CLUSTER, "mail", stray.cert.read_bytes()),
        "'Other Intermediate CA' does not chain to 'mail.example.com' or to the other intermediates: "
        "check that it belongs to this certificate's CA",
    )
    assert_refused(
        admin,
        lambda: store.remove_intermediate(CLUSTER, "mail", "00:11"),
        "'mail' has no such intermediate certificate",
    )

    [fingerprint] = fingerprints(ca.intermediate.cert)
    stage(admin, lambda: store.remove_intermediate(CLUSTER, "mail", fingerprint))
    assert Certificate.objects.at(CLUSTER).get(name="mail").intermediates == []


def test_a_new_signed_certificate_keeps_the_intermediates_that_still_fit(admin, signed, ca):
    stage(admin, lambda: store.add_intermediates(CLUSTER, "mail", ca.intermediate.cert.read_bytes()))
    entry = Certificate.objects.at(CLUSTER).get(name="mail")
    stage(admin, lambda: store.renew(CLUSTER, "mail"))
    again = ca.intermediate.sign(Certificate.objects.at(CLUSTER).get(name="mail").csr_pem, "mail-again")
    outcome = stage(admin, lambda: store.upload_signed(CLUSTER, "mail", again.read_bytes()))
    assert outcome.notes == ["The intermediates uploaded before still fit and are kept."]
    entry.refresh_from_db()
    assert fingerprints(entry.certificate, *entry.chain) == fingerprints(again, ca.intermediate.cert)


# --- Create Self-Signed Certificate ------------------------------------------

KEYS = {
    KeyType.RSA2048: "RSA 2048",
    KeyType.RSA3072: "RSA 3072",
    KeyType.RSA4096: "RSA 4096",
    KeyType.EC256: "ECDSA secp256r1",
    KeyType.EC384: "ECDSA secp384r1",
}


@pytest.mark.parametrize("key_type", KEYS)
def test_create_self_signed_with_every_key_type(key_type, admin):
    subject = pki.Subject("mail.example.com", "Example Inc", "IT", "Berlin", "Berlin", "de")
    create(admin, key_type=key_type, subject=subject, days=730)
    entry = Certificate.objects.at(CLUSTER).get(name="mail")
    certificate = entry.certificate
    request = x509.load_pem_x509_csr(entry.csr_pem.encode())
    assert pki.key_description(certificate.public_key()) == KEYS[key_type]
    assert pki.public_key_id(certificate) == pki.public_key_id(request) == pki.public_key_id(key_of("mail"))
    assert (
        certificate.subject.rfc4514_string()
        == "CN=mail.example.com,OU=IT,O=Example Inc,L=Berlin,ST=Berlin,C=DE"
    )
    assert request.subject == certificate.subject == certificate.issuer
    assert pki.alternative_names(certificate) == pki.alternative_names(request) == ["mail.example.com"]
    assert (entry.status, entry.status.label) == (Certificate.Status.PENDING, "Signing request pending")
    assert (certificate.not_valid_after_utc - certificate.not_valid_before_utc).days == 730
    assert not pki.is_ca(certificate)


def test_create_with_names_and_addresses_and_refusals(admin):
    create(admin, names=["mail.example.com", "smtp.example.com", "192.0.2.25"])
    entry = Certificate.objects.at(CLUSTER).get(name="mail")
    assert entry.domains == "mail.example.com, smtp.example.com, 192.0.2.25"
    assert_refused(admin, lambda: store.create_self_signed(CLUSTER, "mail", SUBJECT, 30, [], KeyType.EC256),
                   "A certificate named 'mail' already exists")  # fmt: skip
    assert_refused(
        admin,
        lambda: store.create_self_signed(CLUSTER, "-bad", SUBJECT, 30, [], KeyType.EC256),
        "The certificate name '-bad' is not a valid name (up to 64 letters, digits, spaces and . _ - @, "
        "starting with a letter or digit)",
    )


def test_read_only_create_is_a_preview_that_stores_nothing(read_only):
    result = create(read_only)
    assert isinstance(result, workflow.Preview)
    assert [change.title for change in result.changes] == ["Certificates"]
    assert not Certificate.objects.at(CLUSTER).filter(name="mail").exists()
    assert not workflow.has_uncommitted_changes()


# --- renew ---------------------------------------------------------------------


def test_renew_self_signed_with_the_same_key_and_a_new_one(admin, entry):
    old = entry.certificate
    message = stage(admin, lambda: store.renew(CLUSTER, "mail"))
    entry.refresh_from_db()
    renewed = entry.certificate
    assert (
        message
        == f"'mail' has a new self-signed certificate valid until {renewed.not_valid_after_utc:%Y-%m-%d}."
    )
    assert renewed.serial_number != old.serial_number
    assert pki.public_key_id(renewed) == pki.public_key_id(old)
    assert renewed.subject == old.subject and pki.alternative_names(renewed) == ["mail.example.com"]
    assert pki.public_key_id(x509.load_pem_x509_csr(entry.csr_pem.encode())) == pki.public_key_id(old)

    stage(admin, lambda: store.renew(CLUSTER, "mail", new_key=True))
    entry.refresh_from_db()
    assert pki.public_key_id(entry.certificate) != pki.public_key_id(old)
    assert pki.public_key_id(entry.certificate) == pki.public_key_id(key_of("mail"))
    assert pki.public_key_id(x509.load_pem_x509_csr(entry.csr_pem.encode())) == pki.public_key_id(
        key_of("mail")
    )
    assert pki.key_description(entry.certificate.public_key()) == "RSA 2048"
    assert entry.status == Certificate.Status.PENDING


def test_renew_gives_an_expired_self_signed_certificate_a_new_validity(admin, ca):
    old = self_signed(ca.folder, "old.example.com", not_before=NOW - datetime.timedelta(days=400),
                      not_after=NOW - datetime.timedelta(days=35))  # fmt: skip
    stage(admin, lambda: store.paste(CLUSTER, "old", old.cert.read_bytes(), old.key_pem, accept_dates=True))
    entry = Certificate.objects.at(CLUSTER).get(name="old")
    assert (entry.status, entry.self_signed) == (Certificate.Status.EXPIRED, True)

    stage(admin, lambda: store.renew(CLUSTER, "old"))
    entry.refresh_from_db()
    assert entry.status == Certificate.Status.SELF_SIGNED
    remaining = entry.not_after - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(days=364) < remaining <= datetime.timedelta(days=365)
    assert pki.public_key_id(entry.certificate) == pki.public_key_id(pki.load_private_key(old.key_pem))
    assert entry.certificate.subject == pki.load_certificate(old.cert_pem).subject
    assert entry.csr_pem == ""


def test_renew_ca_signed_keeps_the_certificate_until_the_new_one_arrives(admin, signed, ca):
    stage(admin, lambda: store.add_intermediates(CLUSTER, "mail", ca.intermediate.cert.read_bytes()))
    entry = Certificate.objects.at(CLUSTER).get(name="mail")
    key_before, certificate_before = entry.private_key_sealed, entry.certificate_pem

    message = stage(admin, lambda: store.renew(CLUSTER, "mail"))
    assert message == (
        "'mail' has a new signing request; the current certificate stays in service until the signed one is uploaded."
    )
    entry.refresh_from_db()
    assert (entry.certificate_pem, entry.private_key_sealed, entry.pending_key_sealed) == (
        certificate_before,
        key_before,
        "",
    )
    same_key_request = x509.load_pem_x509_csr(entry.csr_pem.encode())
    assert pki.public_key_id(same_key_request) == pki.public_key_id(entry.certificate)
    assert entry.status == Certificate.Status.VALID

    message = stage(admin, lambda: store.renew(CLUSTER, "mail", new_key=True))
    assert message == (
        "'mail' has a new signing request for a new key; the current certificate stays in service "
        "until the signed one is uploaded."
    )
    entry.refresh_from_db()
    assert (entry.certificate_pem, entry.private_key_sealed) == (certificate_before, key_before)
    pending = store.unseal(entry.pending_key_sealed)
    request = x509.load_pem_x509_csr(entry.csr_pem.encode())
    assert pki.public_key_id(request) == pki.public_key_id(pending) != pki.public_key_id(entry.certificate)
    assert request.subject == entry.certificate.subject

    renewed = ca.intermediate.sign(entry.csr_pem, "mail-renewed")
    outcome = stage(admin, lambda: store.upload_signed(CLUSTER, "mail", renewed.read_bytes()))
    assert outcome.notes == ["The intermediates uploaded before still fit and are kept."]
    entry.refresh_from_db()
    assert fingerprints(entry.certificate, *entry.chain) == fingerprints(renewed, ca.intermediate.cert)
    assert pki.public_key_id(key_of("mail")) == pki.public_key_id(pending)
    assert (entry.pending_key_sealed, entry.csr_pem) == ("", "")


# --- delete ----------------------------------------------------------------------


def test_delete_is_refused_while_used_and_allowed_otherwise(admin, entry):
    assert_refused(
        admin,
        lambda: store.delete(CLUSTER_MODE, "Demo"),
        "'Demo' cannot be deleted while it is used by interface 'Management' (HTTPS Certificate), "
        "listener 'IncomingMail' (Certificate)",
    )
    stage(admin, lambda: store.delete(CLUSTER_MODE, "mail"))
    assert not Certificate.objects.at(CLUSTER).filter(name="mail").exists()
    assert [c["certificate_name"] for c in workflow.running_config()["certificates"]] == ["Demo", "mail"]
    workflow.commit(admin)
    assert [c["certificate_name"] for c in workflow.running_config()["certificates"]] == ["Demo"]


# --- staged, abandoned, the CSR guard ----------------------------------------


def running_certificates():
    return {c["certificate_name"]: c for c in workflow.running_config()["certificates"]}


def test_create_and_upload_are_staged_until_commit_and_abandon_discards_them(admin, ca):
    create(admin)
    assert list(running_certificates()) == ["Demo"]
    assert workflow.abandon(admin) == "admin"
    assert not Certificate.objects.at(CLUSTER).filter(name="mail").exists()

    create(admin)
    workflow.commit(admin)
    committed = running_certificates()["mail"]
    entry = Certificate.objects.at(CLUSTER).get(name="mail")
    leaf = ca.intermediate.sign(entry.csr_pem, "mail-staged")
    stage(admin, lambda: store.upload_signed(CLUSTER, "mail", bundle(leaf, ca.intermediate.cert)))
    assert running_certificates()["mail"] == committed
    assert [change.title for change in workflow.pending_changes()] == ["Certificates"]

    workflow.abandon(admin)
    entry = Certificate.objects.at(CLUSTER).get(name="mail")
    assert entry.certificate_pem == committed["certificate_pem"] and entry.csr_pem == committed["csr_pem"]
    assert entry.status == Certificate.Status.PENDING


def download_csr(client, name):
    response = client.post(reverse("certificates:csr", args=[name]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="{name}.csr"'
    return response.content.decode()


def test_a_get_of_the_csr_changes_nothing(login, admin, read_only):
    create(admin)
    for user in (admin, read_only):
        assert login(user).get(reverse("certificates:csr", args=["mail"])).status_code == 405
    assert not CsrDownload.objects.exists()
    assert download_csr(login(read_only), "mail").startswith("-----BEGIN CERTIFICATE REQUEST-----")
    assert list(CsrDownload.objects.values_list("certificate_name", "user_name")) == [("mail", "rita")]


CSR_WARNING_END = (
    "; this destroys its private key, so a certificate a CA signs for that request could never be used."
)


def test_abandon_asks_before_destroying_a_key_whose_csr_was_downloaded(login, admin):
    create(admin)
    assert download_csr(login(admin), "mail") == Certificate.objects.at(CLUSTER).get(name="mail").csr_pem
    with pytest.raises(workflow.ConfirmationNeeded) as asked:
        workflow.abandon(admin)
    assert str(asked.value) == "Abandoning the changes needs your confirmation"
    [problem] = asked.value.problems
    assert problem.startswith("The signing request of 'mail' was downloaded by admin on ")
    assert problem.endswith(CSR_WARNING_END)
    assert Certificate.objects.at(CLUSTER).filter(name="mail").exists() and workflow.has_uncommitted_changes()

    assert workflow.abandon(admin, confirmed=True) == "admin"
    assert not Certificate.objects.at(CLUSTER).filter(name="mail").exists()


def test_rollback_asks_before_destroying_a_key_whose_csr_was_downloaded_uncommitted(login, admin):
    create(admin)
    download_csr(login(admin), "mail")
    workflow.commit(admin)
    with pytest.raises(workflow.ConfirmationNeeded) as asked:
        workflow.rollback_to(admin, 1)
    assert str(asked.value) == "Rolling back to version 1 needs your confirmation"
    assert asked.value.problems[0].startswith("The signing request of 'mail' was downloaded by admin on ")
    assert (
        Certificate.objects.at(CLUSTER).filter(name="mail").exists()
        and not workflow.has_uncommitted_changes()
    )
    workflow.rollback_to(admin, 1, confirmed=True)
    assert not Certificate.objects.at(CLUSTER).filter(name="mail").exists()


def test_after_a_commit_the_csr_download_makes_abandon_ask_nothing(login, admin):
    create(admin)
    workflow.commit(admin)
    download_csr(login(admin), "mail")
    stage(admin, lambda: store.renew(CLUSTER, "mail", new_key=True))
    assert workflow.abandon(admin) == "admin"
    assert (
        Certificate.objects.at(CLUSTER).get(name="mail").csr_pem == running_certificates()["mail"]["csr_pem"]
    )


def test_rollback_asks_for_a_key_whose_csr_was_downloaded_after_commit(login, admin):
    """The issue: rolling back changes that would destroy a key whose CSR was downloaded asks first."""
    create(admin)
    workflow.commit(admin)
    download_csr(login(admin), "mail")
    with pytest.raises(workflow.ConfirmationNeeded):
        workflow.rollback_to(admin, 1)
    assert Certificate.objects.at(CLUSTER).filter(name="mail").exists()


# --- the guide's path ------------------------------------------------------------


def test_the_guides_path_from_csr_to_the_committed_chain(login, admin, ca, tmp_path):
    create(admin, names=["mail.example.com", "smtp.example.com"])
    workflow.commit(admin, "new certificate")  # the guide: commit before sending the CSR
    request = download_csr(login(admin), "mail")
    leaf = ca.intermediate.sign(request, "mail-guide", days=397)
    stage(admin, lambda: store.upload_signed(CLUSTER, "mail", leaf.read_bytes()))
    outcome = stage(
        admin, lambda: store.add_intermediates(CLUSTER, "mail", to_p7b(ca.intermediate.cert, der=True))
    )
    assert outcome.notes == []
    assert running_certificates()["mail"]["csr_pem"].strip() == request.strip()
    workflow.commit(admin, "signed certificate")

    item = running_certificates()["mail"]
    assert item["csr_pem"] == ""
    assert fingerprints(item["certificate_pem"], *item["intermediate_certificate"]) == fingerprints(
        leaf, ca.intermediate.cert
    )
    assert pki.alternative_names(pki.load_certificate(item["certificate_pem"])) == [
        "mail.example.com",
        "smtp.example.com",
    ]
    served = tmp_path / "served.pem"
    served.write_text(store.export_pem(CLUSTER, "mail", full_chain=True))
    chain = tmp_path / "chain.pem"
    chain.write_text("".join(item["intermediate_certificate"]))
    report = openssl("verify", "-CAfile", ca.root.cert, "-untrusted", chain, "-purpose", "sslserver", served)
    assert report.decode().strip() == f"{served}: OK"
    entry = Certificate.objects.at(CLUSTER).get(name="mail")
    assert (entry.status.label, store.users_of(CLUSTER_MODE, "mail")) == ("Valid", [])
