"""System Administration > LDAP and ``ldapconfig``: settings, profiles, and Test Server against a real TLS server."""

from __future__ import annotations

import socket
import ssl

import pytest
from django.urls import reverse

from appliance import vault, workflow
from appliance.config import candidate_levels
from appliance.config.levels import CLUSTER, CLUSTER_MODE
from appliance.config.sections import registry
from appliance.config.xmlfile import ConfigFileError, SecretMode, parse, render
from destinations import ldap, probe, store
from destinations.models import LdapServer, LdapSettings
from tests.console import refused_with_output as refused
from tests.console import run
from tests.tls_peer import (
    TlsPeer,
    fake_ldap,
    fingerprint,
    make_lab,
    not_ldap,
    silent,
    stage_lab,
    stage_pending,
)

BIND_DN = "cn=mail,ou=services,dc=example,dc=com"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return make_lab(tmp_path_factory.mktemp("ldap-pki"))


@pytest.fixture
def staged(admin, lab):
    """The test PKI in the candidate: "Client" and "Stranger", the test root in the enabled Custom List."""
    stage_lab(admin, lab)
    return lab


def add_profile(user, name="corp", port=636, **fields):
    values = {"host": "localhost", "port": port, "bind_dn": BIND_DN, "bind_password": "s3cret-bind", **fields}
    workflow.submit(
        user, "profile", lambda: store.save_ldap_server(CLUSTER, store.ServerFields(name=name, **values))
    )


def texts(report: probe.Report) -> list[str]:
    return [str(step) for step in report.steps]


# --- the configuration file --------------------------------------------------------


def test_ldap_sections_round_trip_with_the_password_sealed_masked_and_encrypted(admin, staged):
    add_profile(admin)
    add_profile(
        admin, "anon", port=389, use_ssl=False, bind_dn="", bind_password=None, base_dn="dc=example,dc=com"
    )
    workflow.submit(admin, "cert", lambda: store.set_ldap_certificate(CLUSTER_MODE, "Client"))
    config = registry.candidate()
    plain = render(config, SecretMode.PLAIN)
    assert "<ldap>\n    <certificate_name>Client</certificate_name>\n  </ldap>" in plain
    assert (
        "    <ldap_server>\n"
        "      <ldap_server_name>corp</ldap_server_name>\n"
        "      <hostname>localhost</hostname>\n"
        "      <port>636</port>\n"
        "      <use_ssl>1</use_ssl>\n"
        f"      <bind_dn>{BIND_DN}</bind_dn>\n"
        "      <bind_password>s3cret-bind</bind_password>\n"
        "    </ldap_server>"
    ) in plain
    assert "<ldap_server_name>anon</ldap_server_name>" in plain and "<use_ssl>0</use_ssl>" in plain
    masked = render(config, SecretMode.MASK)
    assert "<bind_password>*****</bind_password>" in masked and "s3cret-bind" not in masked
    encrypted = render(config, SecretMode.ENCRYPT, passphrase="file-pass")
    assert "s3cret-bind" not in encrypted
    for document in (
        parse(plain.encode("latin-1")),
        parse(encrypted.encode("latin-1"), passphrase="file-pass"),
    ):
        [corp, anon] = sorted(
            document.config["ldap_servers"], key=lambda i: i["ldap_server_name"], reverse=True
        )
        assert vault.unseal(corp["bind_password"]) == "s3cret-bind"
        assert anon["bind_password"] == "" and anon["port"] == 389 and anon["base_dn"] == "dc=example,dc=com"
        assert document.config["ldap"] == [{"certificate_name": "Client"}]
    # Stored sealed, never in the clear.
    assert "s3cret-bind" not in LdapServer.objects.at(CLUSTER).get(name="corp").bind_password_sealed


@pytest.mark.parametrize(
    "element,message",
    [
        ("<port>70000</port>", "<port> must be between 1 and 65535, not 70000"),
        ("<hostname>bad_host</hostname>", "<hostname> 'bad_host' is not a valid host name"),
        ("<bind_dn>admin</bind_dn>", "<bind_dn> 'admin' is not a distinguished name"),
        ("<use_ssl>yes</use_ssl>", "<use_ssl> must be 0 or 1, not 'yes'"),
    ],
)
def test_a_bad_ldap_server_element_is_refused_at_load(appliance, element, message):
    base = {
        "<port>": "<port>636</port>",
        "<hostname>": "<hostname>ldap.example.com</hostname>",
        "<bind_dn>": "",
        "<use_ssl>": "",
    }
    tag = element[: element.index(">") + 1]
    fields = "".join(element if key == tag else value for key, value in base.items())
    document = (
        f"<config><ldap_servers><ldap_server><ldap_server_name>corp</ldap_server_name>{fields}"
        "</ldap_server></ldap_servers></config>"
    ).encode()
    with pytest.raises(ConfigFileError) as error:
        parse(document)
    assert message in str(error.value)


def test_a_missing_ldap_certificate_is_refused_at_load(admin):
    document = parse(b"<config><ldap><certificate_name>Nope</certificate_name></ldap></config>")
    with pytest.raises(workflow.ChangeRefused) as refusal:
        workflow.load_document(admin, document, "loaded")
    assert refusal.value.problems == [
        "line 1: <certificate_name> names certificate 'Nope', which does not exist"
    ]


# --- refusals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"host": "bad_host"}, "Host Name: 'bad_host' is not a valid host name"),
        ({"port": 0}, "The port must be between 1 and 65535, not 0"),
        ({"port": 65536}, "The port must be between 1 and 65535, not 65536"),
        ({"bind_dn": "admin"}, "Bind DN: 'admin' is not a distinguished name"),
        ({"base_dn": "example.com"}, "Base DN: 'example.com' is not a distinguished name"),
        ({"bind_dn": "", "bind_password": "x"}, "A bind password needs a Bind DN"),
        ({"name": "corp"}, "An LDAP server profile named 'corp' already exists"),
    ],
)
def test_bad_profiles_are_refused_and_nothing_changes(admin, fields, message):
    add_profile(admin)
    workflow.commit(admin)
    values = {"name": "other", "host": "ldap.example.com", "bind_dn": BIND_DN, **fields}
    with pytest.raises(workflow.ChangeRefused) as refusal:
        workflow.submit(admin, "bad", lambda: store.save_ldap_server(CLUSTER, store.ServerFields(**values)))
    assert str(refusal.value).startswith(message)
    assert list(LdapServer.objects.at(CLUSTER).values_list("name", flat=True)) == ["corp"]
    assert not workflow.has_uncommitted_changes()


def test_an_unknown_certificate_is_refused(admin):
    with pytest.raises(workflow.ChangeRefused, match="There is no certificate named 'Nope'"):
        workflow.submit(admin, "bad", lambda: store.set_ldap_certificate(CLUSTER_MODE, "Nope"))
    assert LdapSettings.load(CLUSTER).certificate_name == ""


# --- the pages ---------------------------------------------------------------------------


def test_global_settings_list_certificates_and_warn_about_the_choice(login, admin, staged):
    client = login(admin)
    page = client.get(reverse("destinations:ldap_settings")).content.decode()
    assert '<option value="Client">Client (Valid)</option>' in page
    assert '<option value="Demo">Demo (Self-signed)</option>' in page
    stage_pending(admin)
    response = client.post(reverse("destinations:ldap_settings"), {"certificate": "Pending"}, follow=True)
    page = response.content.decode()
    assert "Your changes have been submitted." in page
    assert (
        "The certificate &#x27;Pending&#x27; is still self-signed: its signing request waits for the CA"
        in page
    )
    assert LdapSettings.load(CLUSTER).certificate_name == "Pending"
    response = client.post(reverse("destinations:ldap_settings"), {"certificate": "Nope"})
    assert response.status_code == 400
    assert "Select a valid choice. Nope is not one of the available choices." in response.content.decode()
    assert LdapSettings.load(CLUSTER).certificate_name == "Pending"


def test_the_password_is_never_shown_and_kept_unless_a_new_one_is_typed(login, admin):
    add_profile(admin)
    client = login(admin)
    url = reverse("destinations:ldap_server", args=["corp"])
    page = client.get(url).content.decode()
    assert 'placeholder="(unchanged)"' in page and "s3cret-bind" not in page
    form = {"name": "corp", "host": "ldap2.example.com", "port": "636", "use_ssl": "on", "bind_dn": BIND_DN}
    assert client.post(url, {**form, "bind_password": ""}).status_code == 302
    server = LdapServer.objects.at(CLUSTER).get(name="corp")
    assert server.host == "ldap2.example.com" and vault.unseal(server.bind_password_sealed) == "s3cret-bind"
    client.post(url, {**form, "bind_password": "new-pass"})
    assert vault.unseal(LdapServer.objects.at(CLUSTER).get(name="corp").bind_password_sealed) == "new-pass"


def test_add_and_delete_a_profile_through_the_pages(login, admin):
    client = login(admin)
    form = {"name": "corp", "host": "ldap.example.com", "port": "636", "use_ssl": "on", "bind_dn": BIND_DN}
    bad = client.post(reverse("destinations:ldap_add"), {**form, "port": "70000", "host": "bad host"})
    assert bad.status_code == 400
    assert "Ensure this value is less than or equal to 65535." in bad.content.decode()
    assert not LdapServer.objects.at(CLUSTER).exists()
    client.post(reverse("destinations:ldap_add"), {**form, "bind_password": "pw"})
    assert "corp" in client.get(reverse("destinations:ldap")).content.decode()
    client.post(reverse("destinations:ldap_server", args=["corp"]), {"action": "delete"})
    assert not LdapServer.objects.at(CLUSTER).exists()


def test_a_read_only_operator_previews_and_may_not_test(login, read_only, admin):
    add_profile(admin)
    workflow.commit(admin)
    client = login(read_only)
    response = client.post(reverse("destinations:ldap_settings"), {"certificate": "Demo"})
    assert "What your submit would change" in response.content.decode()
    assert LdapSettings.load(CLUSTER).certificate_name == ""
    assert "Test Server" not in client.get(reverse("destinations:ldap")).content.decode()
    assert client.post(reverse("destinations:ldap_test", args=["corp"])).status_code == 403


# --- Test Server against a real TLS server -------------------------------------------------------


def test_test_server_presents_exactly_the_configured_client_certificate(login, operator, admin, staged):
    workflow.submit(admin, "ldap", lambda: store.set_ldap_certificate(CLUSTER_MODE, "Client"))
    with TlsPeer(staged.server, staged.pki.root.cert, not_ldap) as peer:
        add_profile(admin, port=peer.port)
        workflow.commit(admin)
        response = login(operator).post(
            reverse("destinations:ldap_test", args=["corp"]), headers={"HX-Request": "true"}
        )
    page = response.content.decode()
    assert response.status_code == 200 and "<html" not in page
    # The probe's handshake and the bind's: both presented exactly the configured certificate.
    assert [fingerprint(c) for c in peer.client_certificates] == [fingerprint(staged.client)] * 2
    assert f"OK</strong> Connected to localhost (127.0.0.1) port {peer.port}" in page
    assert "OK</strong> TLS established: TLSv1.3, cipher TLS_" in page
    assert "OK</strong> Server certificate CN=localhost (issued by CN=Test Root CA" in page
    assert "VERIFIED against the trusted CA lists (System List and Custom List), host name matches" in page
    assert (
        "OK</strong> Client certificate &#x27;Client&#x27; (CN=esa.example.com) presented; the server accepted it"
        in page
    )
    assert (
        f"FAILED</strong> Bind as {BIND_DN} failed: the server closed the connection without an LDAP answer"
        in page
    )
    assert "The TLS connection works; the bind failed." in page


def test_the_bind_uses_the_same_client_certificate_and_succeeds_against_an_ldap_server(admin, staged):
    workflow.submit(admin, "ldap", lambda: store.set_ldap_certificate(CLUSTER_MODE, "Client"))
    with TlsPeer(staged.server, staged.pki.root.cert, fake_ldap("s3cret-bind")) as peer:
        add_profile(admin, port=peer.port, base_dn="dc=example,dc=com")
        report = ldap.test_server(
            ldap.profile("corp", registry.candidate()), candidate_levels.seen_candidate(CLUSTER_MODE)
        )
    assert [fingerprint(c) for c in peer.client_certificates] == [fingerprint(staged.client)] * 2
    assert texts(report)[-2:] == [f"OK: Bound as {BIND_DN}", "OK: Base DN dc=example,dc=com found"]
    assert report.passed and report.summary == "The TLS connection works; the bind succeeded."


def test_a_wrong_bind_password_is_reported(admin, staged):
    workflow.submit(admin, "ldap", lambda: store.set_ldap_certificate(CLUSTER_MODE, "Client"))
    with TlsPeer(staged.server, staged.pki.root.cert, fake_ldap("other")) as peer:
        add_profile(admin, port=peer.port)
        report = ldap.test_server(
            ldap.profile("corp", registry.candidate()), candidate_levels.seen_candidate(CLUSTER_MODE)
        )
    assert texts(report)[-1] == f"FAILED: The server refused the bind as {BIND_DN}: invalidCredentials"
    assert not report.passed


@pytest.mark.parametrize("maximum", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
def test_the_server_rejects_a_missing_client_certificate(admin, staged, maximum):
    with TlsPeer(staged.server, staged.pki.root.cert, silent, maximum_version=maximum) as peer:
        add_profile(admin, port=peer.port)
        report = ldap.test_server(
            ldap.profile("corp", registry.candidate()), candidate_levels.seen_candidate(CLUSTER_MODE)
        )
    assert peer.client_certificates == []
    assert "certificate" in " ".join(peer.handshake_errors).lower()
    failed = [step.text for step in report.steps if step.status is probe.Status.FAILED]
    # TLS 1.3: refused after the client's side of the handshake; TLS 1.2: during it. Same words.
    assert failed == [
        "The server refused the connection: the server requires a client certificate, and none is configured"
    ]
    assert report.summary == "The TLS connection failed; no bind was attempted."


def test_the_server_rejects_a_client_certificate_of_a_ca_it_does_not_trust(admin, staged):
    workflow.submit(admin, "ldap", lambda: store.set_ldap_certificate(CLUSTER_MODE, "Stranger"))
    with TlsPeer(staged.server, staged.pki.root.cert, silent) as peer:
        add_profile(admin, port=peer.port)
        report = ldap.test_server(
            ldap.profile("corp", registry.candidate()), candidate_levels.seen_candidate(CLUSTER_MODE)
        )
    assert (
        "FAILED: The server refused the client certificate 'Stranger': the server does not trust the CA "
        "that issued the client certificate" in texts(report)
    )


def test_an_unverified_server_gets_no_bind(admin, lab):
    stage_lab(admin, lab, trust_root=False)
    workflow.submit(admin, "ldap", lambda: store.set_ldap_certificate(CLUSTER_MODE, "Client"))
    with TlsPeer(lab.server, lab.pki.root.cert, not_ldap) as peer:
        add_profile(admin, port=peer.port)
        report = ldap.test_server(
            ldap.profile("corp", registry.candidate()), candidate_levels.seen_candidate(CLUSTER_MODE)
        )
    lines = texts(report)
    assert "FAILED: Server certificate CN=localhost (issued by CN=Test Root CA, valid until " in lines[2]
    assert lines[2].endswith(
        "NOT verified against the trusted CA lists (System List): self-signed certificate in certificate chain"
    )
    assert (
        lines[-1]
        == "FAILED: Bind not attempted: the bind password is never sent to a server that is not verified"
    )
    assert len(peer.client_certificates) == 1  # only the handshake made to show the server's certificate


def test_nothing_listening_and_a_silent_port_are_one_line_each(admin, monkeypatch):
    monkeypatch.setattr(probe, "TIMEOUT", 0.5)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    add_profile(admin, "silent", port=port)
    report = ldap.test_server(
        ldap.profile("silent", registry.candidate()), candidate_levels.seen_candidate(CLUSTER_MODE)
    )
    assert texts(report)[-1] == (
        f"FAILED: The TLS handshake did not finish within 0.5 seconds: does localhost speak TLS on port {port}?"
    )
    listener.close()
    report = ldap.test_server(
        ldap.profile("silent", registry.candidate()), candidate_levels.seen_candidate(CLUSTER_MODE)
    )
    assert texts(report) == [
        f"FAILED: localhost refused the connection on port {port}: nothing listens there"
    ]


# --- ldapconfig --------------------------------------------------------------------------------


def test_ldapconfig_new_list_edit_delete(admin, tmp_path):
    password = tmp_path / "bind.txt"
    password.write_text("from-file\n")
    out, _ = run("ldapconfig", "new", "corp", "--host", "ldap.example.com", "--bind-dn", BIND_DN,
                 "--bind-password-file", str(password), "--base-dn", "dc=example,dc=com")  # fmt: skip
    assert out == "LDAP server profile corp staged. Use commit to apply it.\n"
    out, err = run("ldapconfig", "new", "plain", "--host", "10.0.0.5", "--no-ssl")
    assert "Warning: 'plain' does not use SSL: the bind password crosses the network in clear text" in err
    assert run("ldapconfig", "list")[0] == (
        f"corp\tldap.example.com\t636\tSSL\t{BIND_DN}\tdc=example,dc=com\n"
        "plain\t10.0.0.5\t389\tno SSL\t(anonymous)\t-\n"
    )
    run("ldapconfig", "edit", "corp", "--port", "3269", "--rename", "gc")
    server = LdapServer.objects.at(CLUSTER).get(name="gc")
    assert server.port == 3269 and vault.unseal(server.bind_password_sealed) == "from-file"
    printed = run("ldapconfig", "print")[0]
    assert "  Bind password: (set)" in printed and "from-file" not in printed
    assert run("ldapconfig", "delete", "plain")[0] == "LDAP server profile plain deleted.\n"
    assert list(LdapServer.objects.at(CLUSTER).values_list("name", flat=True)) == ["gc"]


def test_ldapconfig_refusals_exit_1(admin):
    assert refused("ldapconfig", "new", "x", "--host", "ldap.example.com", "--port", "0")[1] == (
        "Error: The port must be between 1 and 65535, not 0"
    )
    assert (
        refused("ldapconfig", "setup", "--certificate", "Nope")[1]
        == "Error: There is no certificate named 'Nope'"
    )
    assert refused("ldapconfig", "edit", "none", "--port", "389")[1] == (
        "Error: There is no LDAP server profile named 'none'"
    )
    assert refused("ldapconfig", "test", "none")[1] == "Error: There is no LDAP server profile named 'none'"
    assert not workflow.has_uncommitted_changes()


def test_ldapconfig_setup_warns_about_the_certificate_and_test_exits_by_result(
    admin, operator, read_only, staged
):
    out, err = run("ldapconfig", "setup", "--certificate", "Demo")
    assert out == "LDAP global settings staged. Use commit to apply them.\n"
    run("ldapconfig", "setup", "--certificate", "Client")
    with TlsPeer(staged.server, staged.pki.root.cert, fake_ldap("s3cret-bind")) as peer:
        add_profile(admin, port=peer.port)
        out, err = run("ldapconfig", "test", "corp", "--user", "olivia")
        assert err == ""
        assert out.splitlines()[0] == f"Test Server: LDAP server profile 'corp' (localhost port {peer.port})"
        assert out.splitlines()[-1] == "The TLS connection works; the bind succeeded."
        assert refused("ldapconfig", "test", "corp", "--user", "rita")[1] == (
            "Error: The Read-Only Operator role may not run connection tests (Test Server, Test Connection)."
        )
    with TlsPeer(staged.server, staged.pki.root.cert, not_ldap) as peer:
        workflow.submit(admin, "port", lambda: store.save_ldap_server(CLUSTER,
            store.ServerFields("corp", "localhost", peer.port, bind_dn=BIND_DN), original="corp"))  # fmt: skip
        out, error = refused("ldapconfig", "test", "corp")
    assert "OK: Client certificate 'Client' (CN=esa.example.com) presented; the server accepted it" in out
    assert error == "Error: The TLS connection works; the bind failed."
