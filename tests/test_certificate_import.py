"""Bringing certificates in and taking them out: PKCS#12 import, paste, export, Certificate Authorities.

The PKCS#12 files are made in the test by ``openssl`` (and Java's keytool) as administrators make them.
"""

from __future__ import annotations

import datetime
import warnings

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.utils import CryptographyDeprecationWarning
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from appliance import workflow
from appliance.config.levels import CLUSTER
from certificates import pki, store, trust
from certificates.models import AuthoritySettings, Certificate, CustomAuthority
from certificates.pki import KeyType
from tests.certificate_helpers import assert_refused, fingerprints, stage
from tests.pki_factory import (
    bundle,
    encrypt_key,
    keytool_file,
    make_pki,
    openssl_info,
    pkcs12_file,
    self_signed,
    to_p7b,
)

PASSWORD = "p12-Secret!"  # keytool wants 6 characters or more
NOW = datetime.datetime.now(datetime.UTC)
ROOT_NOTE = "The root 'Test Root CA' is not served: clients must already trust it."


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def leaves(ca):
    """Server certificates signed by the test intermediate, one per key kind."""
    return {kind: ca.intermediate.issue(f"{kind}.example.com", kind=kind) for kind in ("rsa", "ec")}


def key_of(name):
    return store.unseal(Certificate.objects.at(CLUSTER).get(name=name).private_key_sealed)


def running_names():
    return [c["certificate_name"] for c in workflow.running_config()["certificates"]]


# --- Import Certificate (PKCS#12): the matrix --------------------------------

WINDOWS = ("-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1")
MATRIX = {
    # case: (key kind, how the file is made, chain in the file, what `openssl pkcs12 -info` must report)
    "openssl1-legacy-rsa": ("rsa", ("-legacy",), "intermediate", "pbeWithSHA1And40BitRC2-CBC"),
    "openssl1-legacy-ec": ("ec", ("-legacy",), "", "pbeWithSHA1And40BitRC2-CBC"),
    "openssl3-rsa": ("rsa", (), "", "PBES2, PBKDF2, AES-256-CBC"),
    "openssl3-ec-chain": ("ec", (), "intermediate", "PBES2, PBKDF2, AES-256-CBC"),
    "openssl3-rsa-chain-and-root": ("rsa", ("-macalg", "sha256"), "full", "MAC: sha256"),
    "windows-rsa-chain": ("rsa", WINDOWS, "intermediate", "MAC: sha1"),
    "windows-ec": ("ec", WINDOWS, "", "Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC"),
    "java-keytool-rsa-chain": ("rsa", "keytool", "intermediate", "PRF hmacWithSHA256"),
    "java-keytool-ec": ("ec", "keytool", "", "PRF hmacWithSHA256"),
}


def make_file(tmp_path, ca, leaf, how, chain, friendly_name=None):
    certs = {"": (), "intermediate": (ca.intermediate.cert,), "full": (ca.intermediate.cert, ca.root.cert)}
    options = () if how == "keytool" else how
    path = tmp_path / "file.p12"
    data = pkcs12_file(path, leaf, PASSWORD, chain=certs[chain], options=options, friendly_name=friendly_name)
    if how == "keytool":
        data = keytool_file(tmp_path / "keytool.p12", path, PASSWORD)
        path = tmp_path / "keytool.p12"
    return path, data


@pytest.mark.parametrize("case", MATRIX)
def test_import_pkcs12(case, admin, ca, leaves, tmp_path):
    kind, how, chain, algorithm = MATRIX[case]
    leaf = leaves[kind]
    path, data = make_file(tmp_path, ca, leaf, how, chain)
    info = openssl_info("pkcs12", "-in", path, "-info", "-noout", "-legacy", "-passin", f"pass:{PASSWORD}")
    assert algorithm in info  # the file really is what the case says

    name, outcome = stage(admin, lambda: store.import_pkcs12(CLUSTER, "", pki.read_pkcs12(data, PASSWORD)))

    assert name == f"{kind}.example.com"  # the CN
    assert (outcome.notes, outcome.warnings) == ([ROOT_NOTE] if chain == "full" else [], [])
    entry = Certificate.objects.at(CLUSTER).get(name=name)
    assert fingerprints(entry.certificate) == fingerprints(leaf.cert)
    assert fingerprints(*entry.chain) == (fingerprints(ca.intermediate.cert) if chain else [])
    assert pki.public_key_id(key_of(name)) == pki.public_key_id(entry.certificate)
    assert (entry.csr_pem, entry.pending_key_sealed) == ("", "")
    assert (entry.status, entry.status.label) == (Certificate.Status.VALID, "Valid")
    assert running_names() == ["Demo"]  # staged only
    assert workflow.has_uncommitted_changes()


def test_import_takes_the_given_name_and_refuses_a_taken_one(admin, ca, leaves, tmp_path):
    _, data = make_file(tmp_path, ca, leaves["rsa"], (), "intermediate", friendly_name="backup")
    name, _ = stage(admin, lambda: store.import_pkcs12(CLUSTER, "mail-2026", pki.read_pkcs12(data, PASSWORD)))
    assert name == "mail-2026"
    assert fingerprints(Certificate.objects.at(CLUSTER).get(name="mail-2026").certificate) == fingerprints(
        leaves["rsa"].cert
    )
    stage(admin, lambda: store.import_pkcs12(CLUSTER, "", pki.read_pkcs12(data, PASSWORD)))
    assert_refused(
        admin,
        lambda: store.import_pkcs12(CLUSTER, "", pki.read_pkcs12(data, PASSWORD)),
        "A certificate named 'rsa.example.com' already exists",
    )
    workflow.abandon(admin)
    assert Certificate.objects.at(CLUSTER).filter(name__in=["mail-2026", "rsa.example.com"]).count() == 0


def test_imported_expired_certificate_needs_accepting(admin, ca, tmp_path):
    old = ca.intermediate.issue(
        "old.example.com",
        not_before=NOW - datetime.timedelta(days=400),
        not_after=NOW - datetime.timedelta(days=1),
    )
    _, data = make_file(tmp_path, ca, old, (), "intermediate")
    ends = pki.load_certificate(old.cert_pem).not_valid_after_utc
    problem = f"The certificate 'old.example.com' expired on {ends:%Y-%m-%d %H:%M} UTC"
    assert_refused(
        admin,
        lambda: store.import_pkcs12(CLUSTER, "", pki.read_pkcs12(data, PASSWORD)),
        problem,
        store.DatesRefused,
    )
    _, outcome = stage(
        admin, lambda: store.import_pkcs12(CLUSTER, "", pki.read_pkcs12(data, PASSWORD), accept_dates=True)
    )
    assert outcome.warnings == [f"{problem}; accepted as asked."]
    assert Certificate.objects.at(CLUSTER).get(name="old.example.com").status == Certificate.Status.EXPIRED


REFUSALS = {
    "wrong-password": (lambda full: full, "not the password", "The password does not open this PKCS#12 file"),
    "no-password": (lambda full: full, "", "The password does not open this PKCS#12 file"),
    "truncated": (
        lambda full: full[: len(full) // 2],
        PASSWORD,
        "The file is not a readable PKCS#12 file (damaged, or another format)",
    ),
    "cut-short": (
        lambda full: full[:-16],
        PASSWORD,
        "The file is not a readable PKCS#12 file (damaged, or another format)",
    ),
    "empty": (lambda full: b"", PASSWORD, "The PKCS#12 file is empty"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_import_refusals(case, admin, ca, leaves, tmp_path):
    _, full = make_file(tmp_path, ca, leaves["rsa"], (), "intermediate")
    cut, password, message = REFUSALS[case]
    assert_refused(
        admin, lambda: store.import_pkcs12(CLUSTER, "", pki.read_pkcs12(cut(full), password)), message
    )
    assert not workflow.has_uncommitted_changes()


def test_import_refuses_a_file_without_key_and_one_of_another_format(admin, ca, leaves, tmp_path):
    data = pkcs12_file(
        tmp_path / "nokey.p12", leaves["ec"], PASSWORD, chain=(ca.intermediate.cert,), with_key=False
    )
    assert "Shrouded Keybag" not in openssl_info(
        "pkcs12", "-in", tmp_path / "nokey.p12", "-info", "-noout", "-passin", f"pass:{PASSWORD}"
    )
    assert_refused(
        admin,
        lambda: store.import_pkcs12(CLUSTER, "", pki.read_pkcs12(data, PASSWORD)),
        "The PKCS#12 file holds no private key, only certificates",
    )
    assert_refused(
        admin,
        lambda: store.import_pkcs12(
            CLUSTER, "", pki.read_pkcs12(to_p7b(leaves["ec"].cert, der=True), PASSWORD)
        ),
        "The file is not a readable PKCS#12 file (damaged, or another format)",
    )
    assert not workflow.has_uncommitted_changes()


def test_the_import_page_says_what_is_wrong_and_changes_nothing(login, admin, ca, leaves, tmp_path):
    _, data = make_file(tmp_path, ca, leaves["ec"], ("-legacy",), "intermediate")
    client = login(admin)

    def post_file(content, password):
        upload = SimpleUploadedFile("backup.pfx", content, content_type="application/x-pkcs12")
        return client.post(
            reverse("certificates:add"), {"option": "import", "cert_file": upload, "cert_pass": password}
        )

    def post(password):
        return post_file(data, password)

    response = post("wrong password")
    assert response.status_code == 400  # next to the password field
    assert response.context["form"].errors == {"cert_pass": ["The password does not open this PKCS#12 file."]}
    response = post_file(b"This is a letter, not a PKCS#12 file.\n", PASSWORD)
    assert response.context["form"].errors == {
        "cert_file": ["The file is not a readable PKCS#12 file (damaged, or another format)."]
    }
    assert not Certificate.objects.at(CLUSTER).filter(name="ec.example.com").exists()
    response = post(PASSWORD)
    assert (response.status_code, response["Location"]) == (302, reverse("certificates:list"))
    assert fingerprints(*Certificate.objects.at(CLUSTER).get(name="ec.example.com").chain) == fingerprints(
        ca.intermediate.cert
    )


# --- Paste -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rsa", "ec"])
@pytest.mark.parametrize("traditional", [False, True], ids=["pkcs8", "traditional"])
def test_paste_with_an_encrypted_key(kind, traditional, admin, ca, leaves):
    leaf = leaves[kind]
    encrypted = encrypt_key(leaf.key, "key pass phrase", traditional=traditional)
    assert "ENCRYPTED" in encrypted
    cert, chain = leaf.cert.read_bytes(), bundle(ca.intermediate.cert, ca.root.cert)

    assert_refused(admin, lambda: store.paste(CLUSTER, "pasted", cert, encrypted, None, chain),
                   "The private key is encrypted: give its passphrase")  # fmt: skip
    assert_refused(admin, lambda: store.paste(CLUSTER, "pasted", cert, encrypted, "wrong phrase", chain),
                   "The passphrase does not decrypt the private key")  # fmt: skip

    outcome = stage(admin, lambda: store.paste(CLUSTER, "pasted", cert, encrypted, "key pass phrase", chain))
    assert outcome.notes == [ROOT_NOTE]
    entry = Certificate.objects.at(CLUSTER).get(name="pasted")
    assert fingerprints(entry.certificate, *entry.chain) == fingerprints(leaf.cert, ca.intermediate.cert)
    assert pki.public_key_id(key_of("pasted")) == pki.public_key_id(entry.certificate)
    assert entry.status == Certificate.Status.VALID


def test_paste_refusals_name_the_problem(admin, ca, leaves):
    rsa, ec = leaves["rsa"], leaves["ec"]
    assert_refused(admin, lambda: store.paste(CLUSTER, "p", rsa.cert.read_bytes(), rsa.key_pem, "a phrase"),
                   "The private key is not encrypted, but a passphrase was given")  # fmt: skip
    assert_refused(admin, lambda: store.paste(CLUSTER, "p", rsa.cert.read_bytes(), ec.key_pem),
                   "The certificate 'rsa.example.com' does not match the private key of 'p'")  # fmt: skip
    assert_refused(admin, lambda: store.paste(CLUSTER, "p", rsa.cert.read_bytes(), rsa.cert_pem),
                   "This is not a PEM private key (RSA or EC)")  # fmt: skip
    stray = ca.other.issue("Other Intermediate CA", ca=True)
    assert_refused(
        admin,
        lambda: store.paste(CLUSTER, "p", rsa.cert.read_bytes(), rsa.key_pem, None, stray.cert.read_bytes()),
        "'Other Intermediate CA' does not chain to 'rsa.example.com' or to the other intermediates: "
        "check that it belongs to this certificate's CA",
    )


# --- Export ------------------------------------------------------------------


@pytest.fixture
def exported(admin, ca, leaves):
    """'mail': the RSA leaf with the test intermediate, committed."""
    leaf = leaves["rsa"]
    stage(
        admin,
        lambda: store.paste(
            CLUSTER, "mail", leaf.cert.read_bytes(), leaf.key_pem, None, ca.intermediate.cert.read_bytes()
        ),
    )
    workflow.commit(admin)
    return leaf


PROFILES = {
    "modern": [
        "MAC: sha256, Iteration ",
        "PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC, Iteration 100000, PRF hmacWithSHA256",
        "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 100000, PRF hmacWithSHA256",
    ],
    "compatible": [
        "MAC: sha1, Iteration ",
        "PKCS7 Encrypted data: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048",
        "Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048",
    ],
}


@pytest.mark.parametrize("profile", PROFILES)
def test_export_pkcs12_opens_with_openssl_and_cryptography(profile, exported, ca, tmp_path):
    data = store.export_pkcs12(CLUSTER, "mail", "export pass 1", profile)
    path = tmp_path / "mail.p12"
    path.write_bytes(data)
    info = openssl_info("pkcs12", "-in", path, "-info", "-noout", "-passin", "pass:export pass 1")
    for expected in PROFILES[profile]:
        assert any(line.startswith(expected) for line in info.splitlines()), (expected, info)
    bundle_ = pkcs12.load_pkcs12(data, b"export pass 1")
    assert fingerprints(bundle_.cert.certificate) == fingerprints(exported.cert)
    assert fingerprints(*(c.certificate for c in bundle_.additional_certs)) == fingerprints(
        ca.intermediate.cert
    )
    assert bundle_.cert.friendly_name == b"mail"
    assert pki.public_key_id(bundle_.key) == pki.public_key_id(pki.load_private_key(exported.key_pem))


def test_export_pem_with_and_without_the_chain(exported, ca):
    alone = store.export_pem(CLUSTER, "mail", full_chain=False)
    assert "PRIVATE KEY" not in alone
    assert fingerprints(*pki.load_certificates(alone)) == fingerprints(exported.cert)
    chain = store.export_pem(CLUSTER, "mail", full_chain=True)
    assert fingerprints(*pki.load_certificates(chain)) == fingerprints(exported.cert, ca.intermediate.cert)
    assert "PRIVATE KEY" not in chain


def test_an_export_imports_back_under_another_name(admin, exported, ca):
    data = store.export_pkcs12(CLUSTER, "mail", "export pass 1", pki.Pkcs12Profile.COMPATIBLE)
    name, _ = stage(
        admin, lambda: store.import_pkcs12(CLUSTER, "mail-copy", pki.read_pkcs12(data, "export pass 1"))
    )
    copy, original = (
        Certificate.objects.at(CLUSTER).get(name=name),
        Certificate.objects.at(CLUSTER).get(name="mail"),
    )
    assert (copy.certificate_pem, copy.intermediates) == (original.certificate_pem, original.intermediates)


def test_a_new_self_signed_certificate_exports_without_chain(admin):
    subject = pki.Subject("self.example.com")
    stage(admin, lambda: store.create_self_signed(CLUSTER, "self", subject, 30, [], KeyType.EC384))
    bundle_ = pkcs12.load_pkcs12(
        store.export_pkcs12(CLUSTER, "self", "export pass 1", "modern"), b"export pass 1"
    )
    assert bundle_.additional_certs == []
    assert pki.key_description(bundle_.key) == "ECDSA secp384r1"


# --- Certificate Authorities -------------------------------------------------


def test_custom_list_adds_cas_and_refuses_what_is_not_a_valid_ca(admin, ca, leaves):
    outcome = stage(admin, lambda: store.add_custom_authorities(bundle(ca.root.cert, ca.intermediate.cert)))
    assert outcome.notes == ["Added the CA 'Test Root CA'.", "Added the CA 'Test Intermediate CA'."]
    assert list(CustomAuthority.objects.values_list("subject", flat=True)) == [
        "CN=Test Root CA",
        "CN=Test Intermediate CA",
    ]
    assert workflow.running_config()["certificate_authorities"][0]["custom_ca_pem"] == []  # staged only

    outcome = stage(
        admin, lambda: store.add_custom_authorities(to_p7b(ca.root.cert, ca.other.cert, der=True))
    )
    assert outcome.notes == [
        "The CA 'Test Root CA' is already in the Custom List.",
        "Added the CA 'Other Root CA'.",
    ]
    assert CustomAuthority.objects.count() == 3

    assert_refused(admin, lambda: store.add_custom_authorities(leaves["rsa"].cert.read_bytes()),
                   "'rsa.example.com' is not a CA certificate (no CA:TRUE)")  # fmt: skip
    expired = self_signed(ca.folder, "Expired Root CA", ca=True, not_before=NOW - datetime.timedelta(days=900),
                          not_after=NOW - datetime.timedelta(days=30))  # fmt: skip
    ends = pki.load_certificate(expired.cert_pem).not_valid_after_utc
    assert_refused(admin, lambda: store.add_custom_authorities(expired.cert.read_bytes()),
                   f"The CA 'Expired Root CA' expired on {ends:%Y-%m-%d %H:%M} UTC")  # fmt: skip
    assert_refused(admin, lambda: store.add_custom_authorities(b"\x00" * 64),
                   "The file is not a certificate: expected PEM, DER or PKCS#7 (.p7b)")  # fmt: skip

    workflow.commit(admin)
    committed = workflow.running_config()["certificate_authorities"][0]["custom_ca_pem"]
    assert fingerprints(*committed) == fingerprints(ca.root.cert, ca.intermediate.cert, ca.other.cert)


def test_custom_list_remove_and_list_switches(admin, ca):
    stage(admin, lambda: store.add_custom_authorities(bundle(ca.root.cert, ca.other.cert)))
    [fingerprint] = fingerprints(ca.root.cert)
    assert stage(admin, lambda: store.remove_custom_authority(fingerprint)) == "CN=Test Root CA"
    assert list(CustomAuthority.objects.values_list("subject", flat=True)) == ["CN=Other Root CA"]
    assert_refused(admin, lambda: store.remove_custom_authority(fingerprint),
                   "The Custom List has no such CA certificate")  # fmt: skip

    stage(admin, lambda: store.set_authority_lists(False, True))
    settings = AuthoritySettings.load()
    assert (settings.system_list_enabled, settings.custom_list_enabled) == (False, True)
    [running] = workflow.running_config()["certificate_authorities"]
    assert (running["system_list_enabled"], running["custom_list_enabled"]) == (True, False)
    workflow.commit(admin)
    [running] = workflow.running_config()["certificate_authorities"]
    assert (running["system_list_enabled"], running["custom_list_enabled"]) == (False, True)
    assert fingerprints(*running["custom_ca_pem"]) == fingerprints(ca.other.cert)

    stage(admin, lambda: store.set_authority_lists(True, False))
    workflow.abandon(admin)
    settings = AuthoritySettings.load()
    assert (settings.system_list_enabled, settings.custom_list_enabled) == (False, True)


def test_system_list_is_mozillas_roots():
    authorities = trust.system_list()
    assert len(authorities) > 100
    for authority in authorities:
        with warnings.catch_warnings():  # one Mozilla root has a negative serial number
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            certificate = pki.load_certificate(authority.pem)
        assert pki.is_ca(certificate), authority.subject
        assert authority.fingerprint == pki.fingerprint(certificate)
    assert [a.subject.lower() for a in authorities] == sorted(a.subject.lower() for a in authorities)
