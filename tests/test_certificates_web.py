"""Network > Certificates in the browser's terms: list, add, detail actions, export, authorities."""

from __future__ import annotations

import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from appliance import vault, workflow
from appliance.config.levels import CLUSTER, CLUSTER_MODE
from certificates import pki, store
from certificates.models import Certificate, CsrDownload
from tests.conftest import PASSWORD
from tests.pki_factory import encrypt_key, pkcs12_file, self_signed

SELF_SIGNED = {
    "option": "self_signed",
    "name": "Mail",
    "common_name": "mail.example.org",
    "organization": "Example",
    "org_unit": "IT",
    "city": "Berlin",
    "state": "Berlin",
    "country": "de",
    "expiration": "365",
    "alternative_names": "mail.example.org\nmx.example.org, 192.0.2.10",
    "key_type": "ecdsa",
    "key_size": "P-256",
}


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_create_self_signed_through_htmx_redirects_to_the_list(login, admin):
    client = login(admin)
    response = client.post(reverse("certificates:add"), SELF_SIGNED, headers={"HX-Request": "true"})
    assert (response.status_code, response["HX-Redirect"]) == (200, reverse("certificates:list"))
    entry = Certificate.objects.at(CLUSTER).get(name="Mail")
    certificate = entry.certificate
    assert (
        certificate.subject.rfc4514_string() == "CN=mail.example.org,OU=IT,O=Example,L=Berlin,ST=Berlin,C=DE"
    )
    assert pki.alternative_names(certificate) == ["mail.example.org", "mx.example.org", "192.0.2.10"]
    assert entry.status == Certificate.Status.PENDING
    request = x509.load_pem_x509_csr(entry.csr_pem.encode())
    assert pki.public_key_id(request) == pki.public_key_id(certificate)
    assert pki.key_description(certificate.public_key()) == "ECDSA secp256r1"
    # Staged only.
    assert [c["certificate_name"] for c in workflow.running_config()["certificates"]] == ["Demo"]
    page = client.get(reverse("certificates:list")).content.decode()
    assert "Signing request pending" in page and "mx.example.org" in page


def test_the_add_form_shows_progress_while_the_key_is_made(login, admin):
    page = login(admin).get(reverse("certificates:add")).content.decode()
    assert 'hx-indicator="#add-progress"' in page
    assert "Generating the private key and the signing request…" in page


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("country", "Deutschland", "Ensure this value has at most 2 characters"),
        ("country", "1X", "Country should be a ISO two character country code"),
        ("alternative_names", "mail.example.org, not a name!", "is neither a DNS name nor an IP address"),
        ("name", "bad/name", "is not a valid name"),
        ("expiration", "0", "Ensure this value is greater than or equal to 1"),
        ("key_type", "dsa1024", "Select a valid choice"),
    ],
)
def test_bad_self_signed_input_is_refused_by_field(login, admin, field, value, message):
    response = login(admin).post(reverse("certificates:add"), {**SELF_SIGNED, field: value})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Certificate.objects.at(CLUSTER).filter(name__in=["Mail", "bad/name"]).exists()


def test_a_duplicate_name_is_refused_with_nothing_changed(login, admin):
    response = login(admin).post(reverse("certificates:add"), {**SELF_SIGNED, "name": "Demo"})
    assert response.status_code == 409
    assert (
        "A certificate named &#x27;Demo&#x27; already exists. Nothing was changed."
        in response.content.decode()
    )
    assert not workflow.has_uncommitted_changes()


def test_import_pkcs12_through_the_form(login, admin, tmp_path):
    credential = self_signed(tmp_path, "imported.example.org")
    p12 = tmp_path / "f.p12"
    pkcs12_file(p12, credential, "pw")
    client = login(admin)
    wrong = client.post(
        reverse("certificates:add"),
        {"option": "import", "cert_pass": "nope", "cert_file": SimpleUploadedFile("f.p12", p12.read_bytes())},
    )
    assert wrong.status_code == 400
    assert wrong.context["form"].errors == {"cert_pass": ["The password does not open this PKCS#12 file."]}
    client.post(
        reverse("certificates:add"),
        {"option": "import", "cert_pass": "pw", "cert_file": SimpleUploadedFile("f.p12", p12.read_bytes())},
    )
    entry = Certificate.objects.at(CLUSTER).get(name="imported.example.org")
    assert pki.load_private_key(vault.unseal(entry.private_key_sealed)).key_size == 2048


def test_paste_through_the_form_with_an_encrypted_key(login, admin, tmp_path):
    credential = self_signed(tmp_path, "pasted.example.org", kind="ec")
    fields = {
        "option": "paste",
        "name": "Pasted",
        "certificate": credential.cert_pem,
        "private_key": encrypt_key(credential.key, "secret"),
    }
    client = login(admin)
    response = client.post(reverse("certificates:add"), fields)
    assert (
        "The private key is encrypted: give its passphrase. Nothing was changed." in response.content.decode()
    )
    response = client.post(reverse("certificates:add"), {**fields, "key_passphrase": "wrong"})
    assert (
        "The passphrase does not decrypt the private key. Nothing was changed." in response.content.decode()
    )
    client.post(reverse("certificates:add"), {**fields, "key_passphrase": "secret"})
    assert Certificate.objects.at(CLUSTER).get(name="Pasted").common_name == "pasted.example.org"


def test_csr_download_of_an_uncommitted_certificate_warns_and_abandon_asks(login, admin):
    client = login(admin)
    client.post(reverse("certificates:add"), SELF_SIGNED)
    page = client.get(reverse("certificates:detail", args=["Mail"])).content.decode()
    assert "This certificate is not committed yet. Commit your changes before you send" in page
    response = client.post(reverse("certificates:csr", args=["Mail"]))
    assert response["Content-Disposition"] == 'attachment; filename="Mail.csr"'
    assert response.content.startswith(b"-----BEGIN CERTIFICATE REQUEST-----")
    assert CsrDownload.objects.filter(certificate_name="Mail").count() == 1

    response = client.post(reverse("abandon_changes"))
    assert response.status_code == 409
    page = response.content.decode()
    assert "Abandoning the changes needs your confirmation" in page
    assert "The signing request of &#x27;Mail&#x27; was downloaded by admin" in page
    assert Certificate.objects.at(CLUSTER).filter(name="Mail").exists()
    client.post(reverse("abandon_changes"), {"confirmed": "1"})
    assert not Certificate.objects.at(CLUSTER).filter(name="Mail").exists()


def test_csr_download_after_commit_warns_nothing_but_a_rollback_still_asks(login, admin):
    client = login(admin)
    client.post(reverse("certificates:add"), SELF_SIGNED)
    client.post(reverse("uncommitted_changes"), {"comment": "mail"})
    page = client.get(reverse("certificates:detail", args=["Mail"])).content.decode()
    assert "not committed yet" not in page
    client.post(reverse("certificates:csr", args=["Mail"]))
    assert CsrDownload.objects.count() == 1
    response = client.post(reverse("rollback"), {"number": "1"})
    assert response.status_code == 409
    assert "Rolling back to version 1 needs your confirmation" in response.content.decode()
    client.post(reverse("rollback"), {"number": "1", "confirmed": "1"})
    assert not Certificate.objects.at(CLUSTER).filter(name="Mail").exists()


def test_delete_is_refused_while_in_use_and_staged_otherwise(login, admin):
    client = login(admin)
    response = client.post(reverse("certificates:detail", args=["Demo"]), {"action": "delete"})
    assert response.status_code == 409
    assert (
        "&#x27;Demo&#x27; cannot be deleted while it is used by interface &#x27;Management&#x27; (HTTPS Certificate)"
        in response.content.decode()
    )
    client.post(reverse("certificates:add"), SELF_SIGNED)
    client.post(reverse("certificates:detail", args=["Mail"]), {"action": "delete"})
    assert not Certificate.objects.at(CLUSTER).filter(name="Mail").exists()


def test_renew_a_self_signed_certificate_keeps_name_and_subject(login, admin):
    client = login(admin)
    before = Certificate.objects.at(CLUSTER).get(name="Demo")
    response = client.post(
        reverse("certificates:detail", args=["Demo"]), {"action": "renew", "new_key": "on"}, follow=True
    )
    assert "&#x27;Demo&#x27; has a new self-signed certificate valid until" in response.content.decode()
    after = Certificate.objects.at(CLUSTER).get(name="Demo")
    assert after.certificate.subject == before.certificate.subject
    assert after.private_key_sealed != before.private_key_sealed
    assert after.certificate_pem != before.certificate_pem


def test_export_pkcs12_needs_the_admins_password_and_is_audited(login, admin, tmp_path):
    client = login(admin)
    fields = {
        "what": "pkcs12",
        "file_name": "demo-backup",
        "profile": "compatible",
        "password": "file-pass-1",
        "password_again": "file-pass-1",
        "your_password": "wrong",
    }
    response = client.post(reverse("certificates:export", args=["Demo"]), fields)
    assert response.status_code == 400
    assert "That is not your login password." in response.content.decode()
    response = client.post(
        reverse("certificates:export", args=["Demo"]),
        {**fields, "password": "short", "password_again": "short", "your_password": PASSWORD},
    )
    assert "The file password needs at least 8 characters" in response.content.decode()
    response = client.post(
        reverse("certificates:export", args=["Demo"]), {**fields, "your_password": PASSWORD}
    )
    assert response["Content-Disposition"] == 'attachment; filename="demo-backup.p12"'
    bundle = pkcs12.load_pkcs12(response.content, b"file-pass-1")
    assert bundle.cert.certificate == Certificate.objects.at(CLUSTER).get(name="Demo").certificate
    path = tmp_path / "demo.p12"
    path.write_bytes(response.content)
    info = subprocess.run(
        ["openssl", "pkcs12", "-info", "-noout", "-legacy", "-in", path, "-passin", "pass:file-pass-1"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    assert "MAC: sha1" in info and "pbeWithSHA1And3-KeyTripleDES-CBC" in info
    from appliance.models import AuditEvent

    assert AuditEvent.objects.filter(action="export", detail__contains="Demo with its private key").exists()


def test_pem_export_needs_no_secret_rights(login, read_only):
    response = login(read_only).post(
        reverse("certificates:export", args=["Demo"]), {"what": "chain", "file_name": "demo"}
    )
    assert response["Content-Disposition"] == 'attachment; filename="demo.pem"'
    assert response.content.count(b"BEGIN CERTIFICATE") == 1 and b"PRIVATE" not in response.content


def test_read_only_cannot_export_a_private_key(login, read_only):
    fields = {
        "what": "pkcs12",
        "file_name": "x",
        "profile": "modern",
        "password": "file-pass-1",
        "password_again": "file-pass-1",
        "your_password": PASSWORD,
    }
    assert login(read_only).post(reverse("certificates:export", args=["Demo"]), fields).status_code == 403


def test_the_list_searches_sorts_and_pages_a_thousand_certificates_in_few_queries(login, admin):
    demo = Certificate.objects.at(CLUSTER).get(name="Demo")
    Certificate.objects.at(CLUSTER).bulk_create(
        Certificate(
            name=f"cert-{n:04d}",
            certificate_pem=demo.certificate_pem,
            private_key_sealed=demo.private_key_sealed,
            common_name=f"host{n}.example.org",
            issuer=demo.issuer,
            domains=f"host{n}.example.org",
            not_before=demo.not_before,
            not_after=demo.not_after,
            self_signed=True,
        )
        for n in range(1000)
    )
    client = login(admin)
    with CaptureQueriesContext(connection) as queries:
        page = client.get(reverse("certificates:list"), {"sort": "-name"}).content.decode()
    assert len(queries) < 25  # the where-used column reads every section naming certificates
    assert "Page 1 of 21" in page and "cert-0999" in page and "cert-0000" not in page
    page = client.get(
        reverse("certificates:list"), {"q": "host777."}, headers={"HX-Request": "true"}
    ).content.decode()
    assert "<html" not in page and "cert-0777" in page and "cert-0778" not in page


def test_certificate_authorities_page(login, admin, tmp_path):
    ca = self_signed(tmp_path, "Example Root", ca=True).cert
    client = login(admin)
    page = client.get(reverse("certificates:authorities")).content.decode()
    assert "trusted root certificates from Mozilla's bundle" in page
    client.post(
        reverse("certificates:authorities"),
        {"action": "add", "custom_ca_file": SimpleUploadedFile("ca.pem", ca.read_bytes())},
    )
    client.post(reverse("certificates:authorities"), {"action": "settings", "custom_list_enabled": "on"})
    client.post(reverse("uncommitted_changes"), {"comment": "custom CA"})
    [section] = workflow.running_config()["certificate_authorities"]
    assert section["custom_list_enabled"] and not section["system_list_enabled"]
    assert (
        x509.load_pem_x509_certificate(section["custom_ca_pem"][0].encode()).subject.rfc4514_string()
        == "CN=Example Root"
    )
    exported = client.get(reverse("certificates:export_authorities", args=["custom"])).content
    assert exported.count(b"BEGIN CERTIFICATE") == 1
    system = client.get(reverse("certificates:system_authorities"), {"q": "isrg"}).content.decode()
    assert "ISRG Root X1" in system


def test_guest_sees_no_certificates(login, guest):
    client = login(guest)
    for url in (
        reverse("certificates:list"),
        reverse("certificates:detail", args=["Demo"]),
        reverse("certificates:csr", args=["Demo"]),
        reverse("certificates:authorities"),
    ):
        assert client.get(url).status_code == 403


def test_store_users_of_names_the_interface(appliance):
    assert store.users_of(CLUSTER_MODE, "Demo") == [
        "interface 'Management' (HTTPS Certificate)",
        "listener 'IncomingMail' (Certificate)",
    ]


def test_a_file_that_is_no_certificate_is_refused_next_to_its_field(login, admin):
    client = login(admin)
    letter = b"Dear CA, please sign this.\n"
    for action, field in (("upload_signed", "signed_cert"), ("add_intermediates", "interm_cert")):
        page = client.post(
            reverse("certificates:detail", args=["Demo"]),
            {"action": action, field: SimpleUploadedFile("signed.pem", letter)},
        )
        assert page.status_code == 400
        [error] = page.context[f"{action}_form"].errors[field]
        assert "certificate" in error.lower() and error.endswith(".")
    custom = client.post(
        reverse("certificates:authorities"),
        {"action": "add", "custom_ca_file": SimpleUploadedFile("ca.pem", letter)},
    )
    assert custom.status_code == 400 and "custom_ca_file" in custom.context["upload_form"].errors
    assert not workflow.has_uncommitted_changes()
