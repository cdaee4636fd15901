"""Security Services > URL Filtering and ``websecurityconfig``: settings, and Test Connection against a real TLS server."""

from __future__ import annotations

import pytest
from django.urls import reverse

from appliance import workflow
from appliance.config import candidate_levels
from appliance.config.levels import CLUSTER_MODE
from appliance.config.sections import registry
from appliance.config.xmlfile import ConfigFileError, SecretMode, parse, render
from destinations import probe, store, websecurity
from destinations.models import UrlFiltering
from destinations.validators import parse_endpoint
from tests.console import refused_with_output as refused
from tests.console import run
from tests.tls_peer import TlsPeer, fingerprint, make_lab, silent, stage_lab, stage_pending


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return make_lab(tmp_path_factory.mktemp("wss-pki"))


@pytest.fixture
def staged(admin, lab):
    stage_lab(admin, lab)
    return lab


def current() -> tuple[bool, str, str]:
    row = UrlFiltering.load()
    return row.enabled, row.endpoint, row.client_certificate_name


# --- host:port ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint,expected",
    [
        ("wss.example.com:443", ("wss.example.com", 443)),
        ("192.0.2.7:8443", ("192.0.2.7", 8443)),
        ("[2001:db8::1]:443", ("2001:db8::1", 443)),
    ],
)
def test_endpoints(endpoint, expected):
    assert parse_endpoint(endpoint) == expected


@pytest.mark.parametrize(
    "endpoint,message",
    [
        (
            "wss.example.com",
            "'wss.example.com' is not host:port: write it as host:port, e.g. wsa.example.com:443",
        ),
        (":443", "':443' is not host:port"),
        ("bad_host:443", "'bad_host:443': 'bad_host' is not a valid host name"),
        ("wss.example.com:0", "'wss.example.com:0': the port must be between 1 and 65535, not 0"),
        ("wss.example.com:65536", "'wss.example.com:65536': the port must be between 1 and 65535, not 65536"),
        ("wss.example.com:https", "'wss.example.com:https': the port 'https' is not a number"),
        ("2001:db8::1:443", "'2001:db8::1:443': put an IPv6 address in brackets, e.g. [2001:db8::1]:443"),
        ("[wss.example.com]:443", "'[wss.example.com]:443': only an IPv6 address goes in brackets"),
        ("[2001:db8::1]", "'[2001:db8::1]' is not host:port"),
    ],
)
def test_bad_endpoints_are_refused_and_nothing_changes(admin, endpoint, message):
    with pytest.raises(ValueError) as error:
        parse_endpoint(endpoint)
    assert str(error.value).startswith(message)
    with pytest.raises(workflow.ChangeRefused) as refusal:
        workflow.submit(admin, "bad", lambda: store.set_url_filtering(CLUSTER_MODE, True, endpoint, ""))
    assert str(refusal.value).startswith(f"Web Security Services endpoint: {message}")
    assert current() == (False, "", "")
    assert not workflow.has_uncommitted_changes()


def test_other_refusals(admin):
    with pytest.raises(workflow.ChangeRefused, match="^Give the Web Security Services endpoint"):
        workflow.submit(admin, "on", lambda: store.set_url_filtering(CLUSTER_MODE, True, "", ""))
    with pytest.raises(workflow.ChangeRefused, match="^There is no certificate named 'Nope'$"):
        workflow.submit(
            admin, "cert", lambda: store.set_url_filtering(CLUSTER_MODE, False, "wss.example.com:443", "Nope")
        )
    assert current() == (False, "", "")


# --- the configuration file --------------------------------------------------------------


def test_url_filtering_round_trip(admin, staged):
    workflow.submit(
        admin, "on", lambda: store.set_url_filtering(CLUSTER_MODE, True, "[2001:db8::1]:443", "Client")
    )
    xml = render(registry.candidate(), SecretMode.PLAIN)
    assert (
        "  <url_filtering>\n"
        "    <enabled>1</enabled>\n"
        "    <endpoint>[2001:db8::1]:443</endpoint>\n"
        "    <client_certificate_name>Client</client_certificate_name>\n"
        "  </url_filtering>\n"
    ) in xml
    assert "*                             Security Services" in xml
    document = parse(xml.encode("latin-1"))
    assert document.config["url_filtering"] == [
        {"enabled": True, "endpoint": "[2001:db8::1]:443", "client_certificate_name": "Client"}
    ]
    shipped = render(workflow.running_config(), SecretMode.MASK)
    assert "<url_filtering>\n    <enabled>0</enabled>\n  </url_filtering>" in shipped


def test_bad_files_are_refused(admin):
    with pytest.raises(ConfigFileError) as error:
        parse(
            b"<config>\n<url_filtering>\n<endpoint>wss.example.com:99999</endpoint>\n</url_filtering>\n</config>"
        )
    assert error.value.problems == [
        "line 3: <endpoint> 'wss.example.com:99999': the port must be between 1 and 65535, not 99999"
    ]
    # Enabled without an endpoint loads (each section is checked alone) and cannot be committed.
    workflow.load_document(
        admin, parse(b"<config><url_filtering><enabled>1</enabled></url_filtering></config>"), "x"
    )
    with pytest.raises(workflow.ChangeRefused) as refusal:
        workflow.commit(admin)
    assert refusal.value.problems == [
        "URL Filtering is enabled but has no Web Security Services endpoint (host:port)"
    ]


# --- the page -------------------------------------------------------------------------------


def test_the_form_lists_certificates_stages_and_warns(login, admin):
    client = login(admin)
    page = client.get(reverse("destinations:url_filtering")).content.decode()
    assert "Certificate for Web Security Services authentication" in page
    assert '<option value="Demo">Demo (Self-signed)</option>' in page
    assert "Test Connection" in page
    stage_pending(admin)
    form = {"enabled": "on", "endpoint": "wss.example.com:443", "client_certificate": "Pending"}
    response = client.post(reverse("destinations:url_filtering"), form, follow=True)
    page = response.content.decode()
    assert "Your changes have been submitted." in page
    assert "The certificate &#x27;Pending&#x27; is still self-signed" in page
    assert current() == (True, "wss.example.com:443", "Pending")


@pytest.mark.parametrize(
    "form,message",
    [
        ({"enabled": "on", "endpoint": ""}, "Give the endpoint (host:port) to enable URL Filtering."),
        ({"endpoint": "wss.example.com:0"}, "the port must be between 1 and 65535, not 0"),
        ({"endpoint": "wss.example.com"}, "is not host:port"),
        ({"client_certificate": "Nope"}, "Select a valid choice. Nope is not one of the available choices."),
    ],
)
def test_bad_input_is_a_form_error(login, admin, form, message):
    response = login(admin).post(reverse("destinations:url_filtering"), form)
    assert response.status_code == 400 and message in response.content.decode()
    assert current() == (False, "", "")


def test_test_connection_shows_the_mutual_tls_handshake(login, operator, staged):
    client = login(operator)
    with TlsPeer(staged.server, staged.pki.root.cert, silent) as peer:
        response = client.post(
            reverse("destinations:url_filtering"),
            {"action": "test", "endpoint": peer.endpoint, "client_certificate": "Client"},
            headers={"HX-Request": "true"},
        )
    page = response.content.decode()
    assert response.status_code == 200 and "<html" not in page
    assert [fingerprint(c) for c in peer.client_certificates] == [fingerprint(staged.client)]
    assert f"Test Connection: Web Security Services endpoint localhost:{peer.port}" in page
    assert "OK</strong> TLS established: TLSv1.3" in page
    assert "VERIFIED against the trusted CA lists (System List and Custom List), host name matches" in page
    assert "presented; the server accepted it" in page
    assert "The mutual-TLS handshake with Web Security Services succeeded." in page
    assert current() == (False, "", "")  # a test changes nothing


def test_test_connection_without_a_client_certificate_is_refused_by_the_server(login, admin, staged):
    with TlsPeer(staged.server, staged.pki.root.cert, silent) as peer:
        response = login(admin).post(
            reverse("destinations:url_filtering"), {"action": "test", "endpoint": peer.endpoint}
        )
    page = response.content.decode()
    assert "<html" in page  # without htmx: the whole page with the report
    assert peer.client_certificates == []
    assert "Warning</strong> No client certificate is chosen" in page
    assert (
        "FAILED</strong> The server refused the connection: the server requires a client certificate, "
        "and none is configured"
    ) in page
    assert "The mutual-TLS handshake with Web Security Services failed." in page


def test_test_connection_reports_a_bad_endpoint_and_read_only_may_not_test(login, admin, read_only):
    report = websecurity.test_connection("wss.example.com", "", candidate_levels.seen_candidate(CLUSTER_MODE))
    assert [str(step) for step in report.steps] == [
        "FAILED: The endpoint 'wss.example.com' is not host:port: write it as host:port, e.g. wsa.example.com:443 "
        "([2001:db8::1]:443 for IPv6)"
    ]
    client = login(read_only)
    assert "Test Connection" not in client.get(reverse("destinations:url_filtering")).content.decode()
    response = client.post(
        reverse("destinations:url_filtering"), {"action": "test", "endpoint": "localhost:1"}
    )
    assert response.status_code == 403


def test_an_unknown_host_and_an_unknown_certificate_are_single_lines(appliance):
    report = websecurity.test_connection(
        "no-such-host.invalid:443", "", candidate_levels.seen_candidate(CLUSTER_MODE)
    )
    assert report.steps[-1].text.startswith("The host name no-such-host.invalid cannot be resolved")
    report = websecurity.test_connection(
        "localhost:443", "Gone", candidate_levels.seen_candidate(CLUSTER_MODE)
    )
    assert [step.text for step in report.steps if step.status is probe.Status.FAILED] == [
        "The client certificate 'Gone' does not exist"
    ]


# --- websecurityconfig ----------------------------------------------------------------------


def test_websecurityconfig_setup_print_and_test(admin, operator, staged):
    with TlsPeer(staged.server, staged.pki.root.cert, silent) as peer:
        out, err = run(
            "websecurityconfig", "setup", "--enable", "--endpoint", peer.endpoint, "--certificate", "Client"
        )
        assert (out, err) == ("URL Filtering settings staged. Use commit to apply them.\n", "")
        assert run("websecurityconfig", "print")[0] == (
            f"URL Filtering: Enabled\nWeb Security Services endpoint: {peer.endpoint}\nClient certificate: Client\n"
        )
        out, err = run("websecurityconfig", "test", "--user", "olivia")
        lines = out.splitlines()
        assert lines[0] == f"Test Connection: Web Security Services endpoint {peer.endpoint}"
        assert (
            lines[-2]
            == "OK: Client certificate 'Client' (CN=esa.example.com) presented; the server accepted it"
        )
        assert lines[-1] == "The mutual-TLS handshake with Web Security Services succeeded."
        out, error = refused("websecurityconfig", "test", "--no-certificate")
        assert error == "Error: The mutual-TLS handshake with Web Security Services failed."
        out, error = refused("websecurityconfig", "test", "--certificate", "Stranger")
        assert "the server does not trust the CA that issued the client certificate" in out
    assert [fingerprint(c) for c in peer.client_certificates] == [fingerprint(staged.client)]
    run("websecurityconfig", "setup", "--disable")
    assert current() == (False, f"localhost:{peer.port}", "Client")


def test_websecurityconfig_refusals(admin, read_only):
    assert refused("websecurityconfig", "setup", "--endpoint", "wss.example.com:0")[1] == (
        "Error: Web Security Services endpoint: 'wss.example.com:0': the port must be between 1 and 65535, not 0"
    )
    assert refused("websecurityconfig", "setup", "--enable")[1] == (
        "Error: Give the Web Security Services endpoint (host:port) to enable URL Filtering"
    )
    assert refused("websecurityconfig", "setup", "--certificate", "Nope")[1] == (
        "Error: There is no certificate named 'Nope'"
    )
    assert refused("websecurityconfig", "test") == (
        "Test Connection: Web Security Services endpoint (none)\n"
        "FAILED: No Web Security Services endpoint is set: give it as host:port\n"
        "No Web Security Services endpoint is set; no connection was attempted.\n",
        "Error: No Web Security Services endpoint is set; no connection was attempted.",
    )
    assert refused("websecurityconfig", "test", "--user", "rita")[1] == (
        "Error: The Read-Only Operator role may not run connection tests (Test Server, Test Connection)."
    )
    assert current() == (False, "", "")
    assert not workflow.has_uncommitted_changes()
