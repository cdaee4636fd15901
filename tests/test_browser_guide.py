"""The guide, walked in a real browser: Debian's chromium (Playwright) against ``runappliance`` over HTTPS.

From the login to the logout, as an administrator follows the guide: a self-signed certificate and its
signing request, signed by the test's CA, uploaded with the intermediate, committed, put to work on
the listener, the HTTPS interface, Destination Controls and LDAP, TLS required and verified, committed
again (the console then presents the new certificate), the configuration saved with encrypted
passphrases, the certificate exported as PKCS#12, the previous version rolled back. No page may log a
console error or fail a request (``tests.browser.Problems``).
"""

from __future__ import annotations

import re
import ssl
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from playwright.sync_api import Page, expect

from tests.appliance_process import PASSWORD
from tests.browser import chromium_fixture, console_fixture, live_appliance_fixture  # noqa: F401
from tests.pki_factory import make_pki

pytestmark = [pytest.mark.slow, pytest.mark.browser]

NAME, HOST = "MailCert", "mail.example.com"
PARTNER = "partner.example.org"
EXPORT_PASSWORD = "Export-pass-42"
XML_PASSPHRASE = "Config-pass-42"


def presented_common_name(port: int) -> str:
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    certificate = x509.load_pem_x509_certificate(pem.encode())
    return certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value


def wait_for_presented(port: int, common_name: str, timeout: float = 15) -> None:
    """Until the console's HTTPS port presents ``common_name`` (the supervisor applies a commit)."""
    deadline = time.monotonic() + timeout
    while (shown := presented_common_name(port)) != common_name:
        assert time.monotonic() < deadline, f"the console still presents {shown}, not {common_name}"
        time.sleep(0.3)


def menu(page: Page, top: str, item: str) -> None:
    """Open a page through the top menu, as an administrator does."""
    page.mouse.move(0, 0)  # the pointer may rest on the menu already: the hover must be new
    page.get_by_text(top, exact=True).hover()
    page.locator(".menu").filter(has_text=top).get_by_role("link", name=item, exact=True).click()


def submit(page: Page, name: str = "Submit") -> None:
    page.get_by_role("button", name=name, exact=True).click()


def commit(page: Page, comment: str) -> None:
    """Commit Changes » (top right), the comment, Commit Changes; confirm if the commit asks to be."""
    page.locator("#commit-changes").click()
    expect(page).to_have_url(re.compile(r"/commit/$"))
    page.get_by_label("Comment").fill(comment)
    submit(page, "Commit Changes")
    expect(page.locator(".messages, .banner-success").first).to_contain_text("committed")
    confirm = page.get_by_role("button", name="Confirm")
    if confirm.count():
        confirm.click()


def test_the_guide_from_login_to_logout(console, live_appliance, tmp_path):
    pki = make_pki(tmp_path / "ca")
    admin = console()
    page = admin.log_in("admin", PASSWORD)
    admin.screenshot("overview")

    # Network > Certificates > Add Certificate... > a self-signed certificate with an RSA 4096 key.
    menu(page, "Network", "Certificates")
    expect(page.get_by_role("heading", name="Certificates")).to_be_visible()
    page.get_by_role("link", name="Add Certificate...").click()
    page.get_by_label("Certificate Name").fill(NAME)
    page.get_by_label("Common Name").fill(HOST)
    page.get_by_label("Organization", exact=True).fill("Example Mail")
    page.get_by_label("Organizational Unit").fill("IT")
    page.get_by_label("City (Locality)").fill("Berlin")
    page.get_by_label("State (Province)").fill("Berlin")
    page.get_by_label("Country (2 letters only)").fill("DE")
    page.get_by_label("Subject Alternative Names (Domains)").fill(HOST)
    choose_rsa_4096(page)
    admin.screenshot("add-certificate")
    submit(page)
    expect(page.locator("#add-progress")).to_be_visible()  # the key takes a while: say so
    page.wait_for_url(re.compile(r"/network/certificates/$"))
    expect(page.locator("td").get_by_role("link", name=NAME, exact=True)).to_be_visible()
    admin.screenshot("certificates")

    # Download the CSR, have the test's intermediate CA sign it, upload it with the intermediate.
    page.locator("td").get_by_role("link", name=NAME, exact=True).click()
    with page.expect_download() as downloading:
        page.get_by_role("button", name="Download Certificate Signing Request").click()
    csr = downloading.value.path().read_text()
    request = x509.load_pem_x509_csr(csr.encode())
    assert request.subject.rfc4514_string().startswith(f"CN={HOST},")
    assert request.public_key().key_size == 4096
    signed = pki.intermediate.sign(csr, "mail")
    page.get_by_label("Upload Signed Certificate").set_input_files(signed)
    submit(page, "Upload")
    page.get_by_label("Intermediate Certificates", exact=True).set_input_files(pki.intermediate.cert)
    submit(page, "Add")
    chain = page.locator("ol.chain li")
    expect(chain).to_have_count(2)
    expect(chain.nth(1)).to_contain_text("CN=Test Intermediate CA")
    admin.screenshot("certificate")
    commit(page, "MailCert signed by the CA")

    # Put it to work: the listener, the HTTPS interface, Destination Controls and LDAP.
    menu(page, "Network", "Listeners")
    page.get_by_role("link", name="IncomingMail", exact=True).click()
    page.get_by_label("Certificate").select_option(NAME)
    submit(page)
    expect(page.get_by_role("cell", name=NAME, exact=True)).to_be_visible()
    menu(page, "Network", "IP Interfaces")
    page.get_by_role("link", name="Management", exact=True).click()
    page.get_by_label("HTTPS Certificate").select_option(NAME)
    submit(page)
    menu(page, "Mail Policies", "Destination Controls")
    page.get_by_role("link", name="Edit Global Settings...").click()
    page.get_by_label("Certificate").select_option(NAME)
    submit(page)
    menu(page, "System Administration", "LDAP")
    page.get_by_role("link", name="Edit Settings...").click()
    page.get_by_label("Certificate").select_option(NAME)
    submit(page)

    # Mail Flow Policies: TLS Required; Destination Controls: a partner with Required - Verify.
    menu(page, "Mail Policies", "Mail Flow Policies")
    page.get_by_role("link", name="Edit Default Policy Parameters...").click()
    page.get_by_role("group", name="TLS").get_by_role("radio", name=re.compile("^Required")).check()
    submit(page)
    # The form is posted by htmx, which then sends the browser on: the next click waits for that page.
    expect(page).to_have_url(re.compile(r"/mail-flow-policies/\?listener=IncomingMail$"))
    expect(page.get_by_text("Your changes have been submitted")).to_be_visible()
    menu(page, "Mail Policies", "Destination Controls")
    page.get_by_role("link", name="Add Destination...").click()
    page.get_by_label("Destination", exact=True).fill(PARTNER)
    page.get_by_label("TLS Support").select_option("required_verify")
    submit(page)
    expect(page.get_by_role("link", name=PARTNER)).to_be_visible()

    # Uncommitted Changes shows every change; commit; the console now presents the new certificate.
    page.locator("#commit-changes").click()
    changes = page.locator("main")
    for setting, after in (
        ("HTTPS Certificate", NAME),  # interface 'Management'
        ("Certificate", NAME),  # listener 'IncomingMail'
        ("Default Policy Parameters: TLS", "Required"),
        ("Certificate for outgoing TLS", NAME),
        ("TLS Support", "Required - Verify"),  # destination 'partner.example.org' added
    ):
        row = changes.locator("tr").filter(has=page.get_by_text(setting, exact=True))
        expect(row.first).to_contain_text(after)
    expect(changes).to_contain_text(f"destination '{PARTNER}'")
    expect(changes.locator("caption, h2, h3").filter(has_text="LDAP")).not_to_have_count(0)
    admin.screenshot("uncommitted-changes")
    page.go_back()
    commit(page, "MailCert in service, TLS required")
    wait_for_presented(live_appliance.port, HOST)

    # Configuration File: download the XML with encrypted passphrases.
    menu(page, "System Administration", "Configuration File")
    page.get_by_label("Encrypt passphrases").check()
    page.get_by_label("Passphrase", exact=True).first.fill(XML_PASSPHRASE)
    with page.expect_download() as downloading:
        submit(page)
    document = downloading.value.path().read_text(encoding="latin-1")
    assert f"<certificate_name>{NAME}</certificate_name>" in document
    assert "BEGIN PRIVATE KEY" not in document and "BEGIN RSA PRIVATE KEY" not in document

    # Export Certificate: PKCS#12 with the private key, the login password asked again.
    menu(page, "Network", "Certificates")
    page.locator("td").get_by_role("link", name=NAME, exact=True).click()
    page.get_by_label("PKCS#12 with the private key").check()
    page.get_by_label("File password", exact=True).fill(EXPORT_PASSWORD)
    page.get_by_label("Retype file password").fill(EXPORT_PASSWORD)
    page.get_by_label("Your login password").fill(PASSWORD)
    with page.expect_download() as downloading:
        submit(page, "Export")
    key, certificate, extra = pkcs12.load_key_and_certificates(
        downloading.value.path().read_bytes(), EXPORT_PASSWORD.encode()
    )
    assert certificate.subject.rfc4514_string().startswith(f"CN={HOST},")
    assert key.key_size == 4096 and [c.subject.rfc4514_string() for c in extra] == ["CN=Test Intermediate CA"]

    # Configuration Rollback: the version before the last commit; the Demo certificate is back.
    menu(page, "System Administration", "Configuration Rollback")
    admin.screenshot("rollback")
    page.locator("tr").filter(has_text="MailCert signed by the CA").get_by_role(
        "button", name="Stage for rollback"
    ).click()
    commit(page, "back to before MailCert was in service")
    wait_for_presented(live_appliance.port, "esa.example.com")

    page.get_by_role("button", name="Log Out").click()
    expect(page.get_by_role("button", name="Login")).to_be_visible()


def choose_rsa_4096(page: Page) -> None:
    """The key: one choice "RSA 4096", or a Key Type and a Key Size."""
    if page.get_by_label("Key Type").count():
        page.get_by_label("Key Type").select_option(label="RSA")
        page.get_by_label("Key Size").select_option(label="4096")
    else:
        page.get_by_label("Private Key").select_option(label="RSA 4096")
