"""Certificate diagnostics: every kind of finding on real certificates, and the pages that show them."""

from __future__ import annotations

import datetime
import html
import socket
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.x509.oid import NameOID
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from appliance.alerts import Severity
from appliance.config.levels import CLUSTER, CLUSTER_MODE
from appliance.config.sections import registry
from appliance.models import DnsServer, Interface
from certificates import diagnostics, expiry, store
from certificates.diagnostics import chain_findings
from certificates.models import Certificate
from listeners.models import Listener, RatEntry
from tests import dns_server
from tests.certificate_helpers import stage
from tests.pki_factory import PKI, Credential, bundle, make_pki, new_key, new_request, openssl, self_signed

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)


def load(credential: Credential) -> x509.Certificate:
    return x509.load_pem_x509_certificate(credential.cert.read_bytes())


def kinds(findings) -> list[str]:
    return [finding.kind for finding in findings]


def only(findings, kind):
    [finding] = [f for f in findings if f.kind == kind]
    return finding


class Certs:
    """The test PKI and the certificates the tests judge, made once for the module."""

    def __init__(self, pki: PKI):
        self.pki = pki
        self.root, self.intermediate = load(pki.root), load(pki.intermediate)
        self.mail = pki.intermediate.issue("mail.example.org")
        self.sub = pki.intermediate.issue("Test Sub CA", ca=True)
        self.deep = self.sub.issue("deep.example.org")
        self.stranger = pki.other.issue("Other Intermediate CA", ca=True)
        self.old = pki.intermediate.issue("old.example.org", not_before=NOW - 400 * DAY, not_after=NOW - DAY)
        self.future = pki.intermediate.issue(
            "future.example.org", not_before=NOW + 10 * DAY, not_after=NOW + 400 * DAY
        )
        self.selfie = self_signed(pki.folder, "selfie.example.org")
        self.not_a_ca = pki.root.issue("notca.example.org")  # a server certificate, CA:FALSE
        self.behind = self.not_a_ca.issue("behind.example.org")


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    return Certs(make_pki(tmp_path_factory.mktemp("pki")))


def issued_for(issuer: Credential, public_key, common_name: str, days: int = 200) -> x509.Certificate:
    """A server certificate for ``public_key`` signed (SHA-256) by ``issuer`` with cryptography."""
    issuer_key = serialization.load_pem_private_key(issuer.key.read_bytes(), None)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(load(issuer).subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(minutes=5))
        .not_valid_after(NOW + days * DAY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


def signed_with_sha1(issuer: Credential, common_name: str) -> x509.Certificate:
    """What an old CA still issues: ``openssl x509 -req -sha1`` (cryptography refuses to sign so)."""
    folder = issuer.folder
    key = new_key(folder / f"{common_name}.key")
    request = folder / f"{common_name}.csr"
    request.write_text(new_request(folder, key, common_name, [common_name]))
    out = folder / f"{common_name}.pem"
    openssl("x509", "-req", "-in", request, "-CA", issuer.cert, "-CAkey", issuer.key, "-set_serial", 4242,
            "-days", 200, "-sha1", "-copy_extensions", "copy", "-out", out)  # fmt: skip
    return x509.load_pem_x509_certificate(out.read_bytes())


# --- the chain as served: one test (at least) for each kind --------------------------------------


def test_a_whole_chain_to_a_trusted_root_has_no_finding(certs):
    assert chain_findings(load(certs.mail), [certs.intermediate], [certs.root]) == []
    # The chain as a server sends it, the leaf first, is the same chain.
    assert chain_findings(load(certs.mail), [load(certs.mail), certs.intermediate], [certs.root]) == []


def test_expired(certs):
    findings = chain_findings(load(certs.old), [certs.intermediate], [certs.root], own=True)
    assert kinds(findings) == ["expired"]
    [finding] = findings
    assert finding.severity == Severity.CRITICAL
    assert finding.text.startswith("The certificate 'old.example.org' expired on ")
    assert finding.advice.startswith("Renew it now: Renew on this page makes a new signing request")


@pytest.mark.parametrize("threshold", expiry.THRESHOLDS)
def test_expiring_at_each_threshold(certs, threshold):
    leaf = load(certs.mail)
    moment = leaf.not_valid_after_utc - threshold * DAY + datetime.timedelta(hours=1)
    findings = chain_findings(leaf, [certs.intermediate], [certs.root], now=moment, own=True)
    assert kinds(findings) == ["expiring"]
    left = threshold - 1
    expected = "less than a day" if left == 0 else f"{left} day{'s' if left != 1 else ''}"
    assert f"'mail.example.org' expires in {expected}, on " in findings[0].text
    # The alerts' scale (one for both): a warning from 30 days left, critical from 3.
    severity = (
        Severity.CRITICAL if threshold <= 3 else Severity.WARNING if threshold <= 30 else Severity.INFORMATION
    )
    assert findings[0].severity == severity
    assert findings[0].advice.startswith(f"Renew it before {leaf.not_valid_after_utc:%Y-%m-%d}: ")


def test_no_expiry_finding_before_ninety_days(certs):
    leaf = load(certs.mail)
    moment = leaf.not_valid_after_utc - 91 * DAY
    assert chain_findings(leaf, [certs.intermediate], [certs.root], now=moment) == []


def test_an_intermediate_ending_before_the_leaf_is_reported(certs):
    # A leaf valid beyond its issuer (some CAs allow it): the intermediate's end comes first.
    intermediate = certs.intermediate
    moment = intermediate.not_valid_after_utc - 5 * DAY
    key = rsa.generate_private_key(65537, 2048).public_key()
    leaf = issued_for(certs.pki.intermediate, key, "x.org", days=2000)
    findings = chain_findings(leaf, [intermediate], [certs.root], now=moment)
    assert "The intermediate 'Test Intermediate CA' expires in 5 days" in only(findings, "expiring").text
    assert only(findings, "expiring").advice == "The server should send its CA's current intermediate."


def test_not_yet_valid(certs):
    findings = chain_findings(load(certs.future), [certs.intermediate], [certs.root])
    assert kinds(findings) == ["not_yet_valid"]
    assert "'future.example.org' is not valid before " in findings[0].text


def test_chain_incomplete_names_the_missing_issuer(certs):
    findings = chain_findings(load(certs.mail), [], [certs.root], own=True)
    assert kinds(findings) == ["chain_incomplete"]
    finding = findings[0]
    assert finding.severity == Severity.CRITICAL
    assert "the issuer of 'mail.example.org', CN=Test Intermediate CA, is missing" in finding.text
    assert finding.advice.startswith(
        "Add Intermediates on this page: upload the certificate of CN=Test Intermediate CA"
    )
    # A remote server's chain: the advice speaks of the server.
    remote = chain_findings(load(certs.mail), [], [certs.root])
    assert (
        remote[0].advice
        == "The server should send the intermediate certificate CN=Test Intermediate CA after its own."
    )


def test_chain_incomplete_names_the_issuer_of_the_last_certificate_that_leads_nowhere(certs):
    findings = chain_findings(
        load(certs.deep), [load(certs.sub), certs.intermediate], [load(certs.pki.other)]
    )
    assert kinds(findings) == ["chain_incomplete"]
    assert "the issuer of 'Test Intermediate CA', CN=Test Root CA, is missing" in findings[0].text


def test_no_chain_incomplete_when_the_chain_reaches_an_anchor(certs):
    # The Custom List may hold the intermediate itself: the leaf alone then reaches a trust anchor.
    assert chain_findings(load(certs.mail), [], [certs.intermediate]) == []


def test_untrusted_root(certs):
    findings = chain_findings(load(certs.mail), [certs.intermediate, certs.root], [load(certs.pki.other)])
    assert kinds(findings) == ["untrusted_root"]
    assert "ends at the root 'Test Root CA', which is in none of the enabled" in findings[0].text


def test_not_verified_gives_the_verifiers_reason_when_nothing_else_explains_it(certs):
    # The leaf's issuer is a server certificate (CA:FALSE): the path is there, the verifier refuses it.
    findings = chain_findings(load(certs.behind), [load(certs.not_a_ca)], [certs.root])
    assert kinds(findings) == ["not_verified"]
    assert findings[0].severity == Severity.CRITICAL
    assert findings[0].text.startswith("The chain does not verify: ")


def test_not_verified_without_any_anchor_is_a_note(certs):
    findings = chain_findings(load(certs.mail), [certs.intermediate], [])
    assert kinds(findings) == ["not_verified"]
    assert findings[0].severity == Severity.INFORMATION
    assert "No Certificate Authorities list is enabled" in findings[0].text


def test_duplicate_intermediate(certs):
    served = [certs.intermediate, certs.intermediate]
    findings = chain_findings(load(certs.mail), served, [certs.root])
    assert kinds(findings) == ["duplicate_intermediate"]
    assert findings[0].text == "'Test Intermediate CA' is served more than once."
    # The leaf sent again after its issuer counts as a copy too.
    again = chain_findings(load(certs.mail), [certs.intermediate, load(certs.mail)], [certs.root])
    assert kinds(again) == ["duplicate_intermediate"]


def test_unrelated_intermediate(certs):
    findings = chain_findings(
        load(certs.mail), [certs.intermediate, load(certs.stranger)], [certs.root], own=True
    )
    assert kinds(findings) == ["unrelated_intermediate"]
    assert findings[0].text == (
        "'Other Intermediate CA' (issued by CN=Other Root CA) is served but is not part of the chain "
        "of 'mail.example.org'."
    )
    assert findings[0].advice.startswith("Remove it under Intermediate Certificates")


def test_wrong_order(certs):
    findings = chain_findings(load(certs.deep), [certs.intermediate, load(certs.sub)], [certs.root])
    assert kinds(findings) == ["wrong_order"]
    assert "followed by its issuer: 'Test Sub CA', 'Test Intermediate CA'" in findings[0].text
    assert chain_findings(load(certs.deep), [load(certs.sub), certs.intermediate], [certs.root]) == []


def test_root_served(certs):
    findings = chain_findings(load(certs.mail), [certs.intermediate, certs.root], [certs.root])
    assert kinds(findings) == ["root_served"]
    assert findings[0].severity == Severity.INFORMATION


@pytest.mark.parametrize(
    "key,words",
    [
        (lambda: rsa.generate_private_key(65537, 1024), "RSA 1024 key: under 2048 bits"),
        (lambda: ec.generate_private_key(ec.SECP224R1()), "ECDSA secp224r1 key: a curve under 256 bits"),
        (lambda: dsa.generate_private_key(2048), "DSA"),
    ],
)
def test_weak_key(certs, key, words):
    leaf = issued_for(certs.pki.intermediate, key().public_key(), "weak.example.org")
    findings = chain_findings(leaf, [certs.intermediate], [certs.root], own=True)
    assert "weak_key" in kinds(findings)
    assert words in only(findings, "weak_key").text
    assert only(findings, "weak_key").advice.startswith("Renew with 'Generate a new private key'")
    assert not {"chain_incomplete", "not_verified"} & set(kinds(findings))


def test_strong_keys_are_no_finding(certs):
    for key in (rsa.generate_private_key(65537, 2048), ec.generate_private_key(ec.SECP256R1())):
        leaf = issued_for(certs.pki.intermediate, key.public_key(), "strong.example.org")
        assert chain_findings(leaf, [certs.intermediate], [certs.root]) == []


def test_weak_signature(certs):
    leaf = signed_with_sha1(certs.pki.intermediate, "sha1.example.org")
    findings = chain_findings(leaf, [certs.intermediate], [certs.root])
    assert kinds(findings) == ["weak_signature"]
    assert findings[0].text.startswith("'sha1.example.org' is signed with SHA1")


def test_a_sha1_signature_on_a_trust_anchor_is_no_finding(certs, tmp_path):
    key = tmp_path / "old-root.key"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-subj", "/CN=Old Root",
            "-sha1", "-days", 30, "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign", "-out", tmp_path / "old-root.pem")  # fmt: skip
    root = Credential("Old Root", tmp_path / "old-root.pem", key, certs.pki.folder)
    leaf = issued_for(root, rsa.generate_private_key(65537, 2048).public_key(), "new.example.org")
    assert chain_findings(leaf, [], [load(root)]) == []
    # Served, the same root is a note, still no weak signature.
    assert kinds(chain_findings(leaf, [load(root)], [load(root)])) == ["root_served"]


def test_self_signed(certs):
    findings = chain_findings(load(certs.selfie), [], [certs.root], own=True)
    assert kinds(findings) == ["self_signed"]
    finding = findings[0]
    assert "CheckTLS and other outside testers report it as FAIL" in finding.text
    assert "Required-Verify will not deliver" in finding.text
    assert (
        "Download Certificate Signing Request" in finding.advice
        and "Upload Signed Certificate" in finding.advice
    )


def test_findings_come_worst_first(certs):
    leaf = load(certs.old)
    findings = chain_findings(leaf, [certs.intermediate, certs.root, certs.intermediate], [certs.root])
    assert kinds(findings) == ["expired", "duplicate_intermediate", "root_served"]
    assert diagnostics.tally(findings) == "1 error, 1 warning, 1 note"
    assert diagnostics.worst(findings).kind == "expired"


# --- one entry of the store: names against interfaces, listeners and MX ---------------------------


def put(user, name: str, credential: Credential, *chain: Credential, accept_dates=False) -> Certificate:
    """The certificate in the store as an administrator pastes it (its key, its intermediates)."""
    intermediates = bundle(*(c.cert for c in chain)) if chain else None
    stage(
        user,
        lambda: store.paste(
            CLUSTER, name, credential.cert.read_bytes(), credential.key_pem, None, intermediates, accept_dates
        ),
    )
    return Certificate.objects.at(CLUSTER).get(name=name)


def trust_test_root(user, certs: Certs) -> None:
    stage(user, lambda: store.add_custom_authorities(certs.pki.root.cert.read_bytes()))
    stage(user, lambda: store.set_authority_lists(True, True))


def use_everywhere(name: str) -> None:
    Interface.objects.of("").filter(name="Management").update(certificate_name=name)
    Listener.objects.at(CLUSTER).filter(name="IncomingMail").update(certificate_name=name)


def test_an_entry_with_its_chain_and_a_trusted_ca_is_clean(admin, certs):
    entry = put(admin, "Mail", certs.mail, certs.pki.intermediate)
    assert kinds(
        diagnostics.diagnose(entry, diagnostics.diagnostics_config(CLUSTER_MODE), lookup_mx=False)
    ) == ["chain_incomplete"]  # the root: not trusted
    trust_test_root(admin, certs)
    assert diagnostics.diagnose(entry, diagnostics.diagnostics_config(CLUSTER_MODE), lookup_mx=False) == []


def test_name_mismatch_with_the_interface_and_the_listener(admin, certs):
    entry = put(admin, "Mail", certs.mail, certs.pki.intermediate)
    trust_test_root(admin, certs)
    use_everywhere("Mail")
    [finding] = diagnostics.diagnose(entry, diagnostics.diagnostics_config(CLUSTER_MODE), lookup_mx=False)
    assert finding.kind == "name_mismatch_interface" and finding.severity == Severity.WARNING
    assert finding.text == (
        "'Mail' is for mail.example.org; it does not cover esa.example.com, the host name of "
        "interface 'Management' and listener 'IncomingMail'. Clients that verify the name fail."
    )
    assert "esa.example.com among its Subject Alternative Names" in finding.advice


def test_the_system_hostname_plays_no_part(admin, certs):
    entry = put(admin, "Mail", certs.mail, certs.pki.intermediate)
    trust_test_root(admin, certs)
    use_everywhere("Mail")
    Interface.objects.of("").filter(name="Management").update(hostname="MAIL.example.org")
    # The system hostname stays esa.example.com: only the interface's host name counts.
    assert diagnostics.diagnose(entry, diagnostics.diagnostics_config(CLUSTER_MODE), lookup_mx=False) == []


def test_a_wildcard_covers_one_label_only(admin, certs):
    wildcard = certs.pki.intermediate.issue("wild", sans=["*.example.com"])
    entry = put(admin, "Wild", wildcard, certs.pki.intermediate)
    trust_test_root(admin, certs)
    use_everywhere("Wild")
    assert diagnostics.diagnose(entry, diagnostics.diagnostics_config(CLUSTER_MODE), lookup_mx=False) == []
    Interface.objects.of("").filter(name="Management").update(hostname="a.esa.example.com")
    [finding] = diagnostics.diagnose(entry, diagnostics.diagnostics_config(CLUSTER_MODE), lookup_mx=False)
    assert finding.kind == "name_mismatch_interface" and "a.esa.example.com" in finding.text


ZONE = """
example.org. 300 IN MX 10 mx1.example.org.
example.org. 300 IN MX 20 mx2.example.org.
partial.example.org. 300 IN MX 10 mail.example.org.
partial.example.org. 300 IN MX 20 backup.example.net.
covered.example.org. 300 IN MX 10 mail.example.org.
"""


@pytest.fixture
def dns():
    server, resolver, port = dns_server.start(ZONE)
    yield resolver, port
    server.stop()


def serve_domains(*entries: tuple[str, str]) -> None:
    listener = Listener.objects.at(CLUSTER).get(name="IncomingMail")
    RatEntry.objects.filter(listener=listener).delete()
    for position, (recipient, action) in enumerate([*entries, ("ALL", "reject")]):
        RatEntry.objects.create(listener=listener, position=position, recipient=recipient, action=action)


@pytest.fixture
def mail_entry(admin, certs, dns):
    """'Mail' (mail.example.org) on the listener, whose RAT accepts a few domains, with the test DNS."""
    entry = put(admin, "Mail", certs.mail, certs.pki.intermediate)
    trust_test_root(admin, certs)
    Listener.objects.at(CLUSTER).filter(name="IncomingMail").update(certificate_name="Mail")
    Interface.objects.of("").filter(name="Management").update(hostname="mail.example.org")
    serve_domains(
        ("example.org", "accept"),
        ("partial.example.org", "accept"),
        ("covered.example.org", "accept"),
        ("missing.example.org", "accept"),
        (".sub.example.org", "accept"),
        ("user@example.net", "accept"),
        ("rejected.example.org", "reject"),
    )
    DnsServer.objects.create(address=f"127.0.0.1:{dns[1]}")
    return entry


def test_name_mismatch_with_the_mx_hosts_of_the_served_domains(mail_entry, dns):
    resolver, _ = dns
    findings = diagnostics.diagnose(mail_entry, diagnostics.diagnostics_config(CLUSTER_MODE))
    mismatch = [f for f in findings if f.kind == "name_mismatch_mx"]
    assert [f.severity for f in mismatch] == [Severity.WARNING, Severity.INFORMATION]
    assert mismatch[0].text.startswith(
        "'Mail' is for mail.example.org; it covers none of the MX hosts of example.org "
        "(mx1.example.org, mx2.example.org), a domain listener 'IncomingMail' accepts mail for."
    )
    assert "it does not cover backup.example.net, MX hosts of partial.example.org" in mismatch[1].text
    # Only the plain domains accepted are looked up: not .sub, user@, rejected ones or ALL.
    assert sorted(name for name, kind in resolver.questions if kind == "MX") == [
        "covered.example.org.",
        "example.org.",
        "missing.example.org.",
        "partial.example.org.",
    ]


def test_mx_lookup_failure_is_a_note(mail_entry):
    finding = only(
        diagnostics.diagnose(mail_entry, diagnostics.diagnostics_config(CLUSTER_MODE)), "mx_unknown"
    )
    assert finding.severity == Severity.INFORMATION
    assert finding.text == (
        "Could not look up MX of missing.example.org: missing.example.org does not exist (NXDOMAIN)."
    )
    assert (
        kinds(diagnostics.diagnose(mail_entry, diagnostics.diagnostics_config(CLUSTER_MODE), lookup_mx=False))
        == []
    )


def test_the_mx_lookups_share_a_short_time_budget(admin, certs):
    entry = put(admin, "Mail", certs.mail, certs.pki.intermediate)
    Listener.objects.at(CLUSTER).filter(name="IncomingMail").update(certificate_name="Mail")
    serve_domains(("one.example.org", "accept"), ("two.example.org", "accept"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # a DNS server that never answers
        silent.bind(("127.0.0.1", 0))
        DnsServer.objects.create(address=f"127.0.0.1:{silent.getsockname()[1]}")
        start = time.monotonic()
        findings = diagnostics.mx_findings(
            "Mail", entry.certificate, diagnostics.diagnostics_config(CLUSTER_MODE), 0.5
        )
        took = time.monotonic() - start
    assert took < 1.5
    assert [f.text for f in findings] == [
        "Could not look up MX of one.example.org: no DNS server answered for one.example.org in time.",
        "Could not look up MX of two.example.org: no time left (all the lookups get 0.5 seconds).",
    ]


def test_where_used_from_the_config_says_what_the_registry_says(admin, certs):
    put(admin, "Mail", certs.mail, certs.pki.intermediate)
    Listener.objects.at(CLUSTER).filter(name="IncomingMail").update(certificate_name="Mail")
    used = registry.where_used_in("certificates", diagnostics.diagnostics_config(CLUSTER_MODE, full=False))
    assert used == store.where_used(CLUSTER_MODE)
    assert used["Mail"] == ["listener 'IncomingMail' (Certificate)"]


def test_summary_reads_no_dns(mail_entry, dns):
    resolver, _ = dns
    found = diagnostics.summary(
        Certificate.objects.at(CLUSTER).all(), diagnostics.diagnostics_config(CLUSTER_MODE, full=False)
    )
    assert kinds(found["Mail"]) == []
    # Demo serves the interface, whose host name is now mail.example.org.
    assert kinds(found["Demo"]) == ["self_signed", "name_mismatch_interface"]
    assert resolver.questions == []


# --- the pages -----------------------------------------------------------------------------------


def test_the_certificate_page_shows_each_finding_with_what_to_do(login, admin, certs):
    put(admin, "Mail", certs.mail)  # without its intermediate
    use_everywhere("Mail")
    page = html.unescape(login(admin).get(reverse("certificates:detail", args=["Mail"])).content.decode())
    assert '<section class="panel" id="diagnostics">' in page
    assert '<div class="banner banner-error" data-kind="chain_incomplete"><strong>Error</strong>' in page
    assert "the issuer of 'mail.example.org', CN=Test Intermediate CA, is missing" in page
    assert (
        "What to do: Add Intermediates on this page: upload the certificate of CN=Test Intermediate CA"
        in page
    )
    assert 'data-kind="name_mismatch_interface"><strong>Warning</strong>' in page
    assert "it does not cover esa.example.com" in page
    assert "No problems found" not in page


def test_the_demo_certificate_page_says_what_checktls_says(login, admin, dns):
    DnsServer.objects.create(address=f"127.0.0.1:{dns[1]}")
    client = login(admin)
    page = html.unescape(client.get(reverse("certificates:detail", args=["Demo"])).content.decode())
    assert "'esa.example.com' is self-signed. CheckTLS and other outside testers report it as FAIL" in page
    assert "What to do: Have it signed by a CA" in page
    mx_check = reverse("certificates:mx_check", args=["Demo"])
    assert f'hx-get="{mx_check}" hx-trigger="load"' in page  # the DNS part comes after the page
    assert "Looking up the MX hosts of the domains IncomingMail accepts mail for" in page
    # The listener's domain is looked up through the configured server (which knows nothing of it).
    fragment = html.unescape(client.get(mx_check).content.decode())
    assert "Could not look up MX of example.com: example.com does not exist (NXDOMAIN)." in fragment


def test_the_page_of_a_certificate_without_problems(login, admin, certs):
    put(admin, "Mail", certs.mail, certs.pki.intermediate)
    trust_test_root(admin, certs)
    page = login(admin).get(reverse("certificates:detail", args=["Mail"])).content.decode()
    assert "<h2>Diagnostics</h2>" in page and "No problems found." in page


def test_the_page_shows_the_mx_finding(login, admin, mail_entry):
    fragment = login(admin).get(reverse("certificates:mx_check", args=["Mail"])).content.decode()
    assert (
        "it covers none of the MX hosts of example.org (mx1.example.org, mx2.example.org)"
        in html.unescape(fragment)
    )


def test_the_list_sums_up_and_marks_each_row(login, admin, certs):
    put(admin, "Old", certs.old, certs.pki.intermediate, accept_dates=True)
    trust_test_root(admin, certs)
    put(admin, "Mail", certs.mail, certs.pki.intermediate)
    client = login(admin)
    page = html.unescape(client.get(reverse("certificates:list")).content.decode())
    detail = reverse("certificates:detail", args=["Old"])
    assert '<div class="banner banner-error" role="status" id="certificate-attention">' in page
    assert "2 certificates need attention:" in page
    assert (
        f'<a href="{reverse("certificates:detail", args=["Demo"])}#diagnostics">Demo</a> (self-signed)'
        in page
    )
    assert f'<a href="{detail}#diagnostics">Old</a> (expired)' in page
    assert f'<a href="{detail}#diagnostics" title="expired"\n      class="status-expired">1 error</a>' in page
    assert 'class="status-pending">1 warning</a>' in page  # Demo
    assert '<span class="muted">None</span>' in page  # Mail
    # The search (htmx) redraws the summary with the table.
    partial = html.unescape(
        client.get(
            reverse("certificates:list"), {"q": "old"}, headers={"HX-Request": "true"}
        ).content.decode()
    )
    assert "<html" not in partial and "1 certificate needs attention:" in partial and "Demo" not in partial


def test_the_list_checks_a_page_of_certificates_in_constant_queries(
    login, admin, certs, django_assert_max_num_queries
):
    mail = put(admin, "Mail", certs.mail, certs.pki.intermediate)
    use_everywhere("Mail")
    client = login(admin)
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("certificates:list"))
    Certificate.objects.at(CLUSTER).bulk_create(
        Certificate(
            name=f"copy-{n:03d}",
            certificate_pem=mail.certificate_pem,
            intermediates=mail.intermediates,
            private_key_sealed=mail.private_key_sealed,
            common_name=mail.common_name,
            issuer=mail.issuer,
            domains=mail.domains,
            not_before=mail.not_before,
            not_after=mail.not_after,
        )
        for n in range(120)
    )
    with django_assert_max_num_queries(len(few)):
        page = html.unescape(client.get(reverse("certificates:list")).content.decode())
    # Each row of the page was judged: 49 copies and Demo need attention (the root is not trusted).
    assert "50 certificates on this page need attention:" in page and "and 40 more." in page


def test_every_kind_of_finding_is_tested():
    tested = {
        "expired", "expiring", "not_yet_valid", "chain_incomplete", "untrusted_root", "not_verified",
        "duplicate_intermediate", "unrelated_intermediate", "wrong_order", "root_served", "weak_key",
        "weak_signature", "self_signed", "name_mismatch_interface", "name_mismatch_mx", "mx_unknown",
    }  # fmt: skip
    assert set(diagnostics.KINDS) == tested
