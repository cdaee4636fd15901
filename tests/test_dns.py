"""Network > DNS and dnsconfig: resolvers by priority, a real lookup against a DNS server on loopback."""

from __future__ import annotations

import pytest
from django.urls import reverse

from appliance import configfile, workflow
from appliance.config.sections import registry
from appliance.config.xmlfile import ConfigFileError, SecretMode, without_header
from appliance.models import DnsServer
from tests import dns_server
from tests.console import refused, run

ZONE = """
example.org. 300 IN MX 10 mx.example.org.
mx.example.org. 300 IN A 127.0.0.1
"""


@pytest.fixture
def dns():
    server, resolver, port = dns_server.start(ZONE)
    yield resolver, port
    server.stop()


def test_first_start_takes_the_dns_server_from_the_environment(db, monkeypatch):
    from appliance import bootstrap

    monkeypatch.setitem(workflow._running_cache, "version", (None, None))
    monkeypatch.setenv("APPLIANCE_HOSTNAME", "esa.example.com")
    monkeypatch.setenv("APPLIANCE_ADMIN_PASSWORD", "Correct-Horse-42")
    monkeypatch.setenv("APPLIANCE_DNS_SERVER", "127.0.0.1:5353, [::1]:53")
    bootstrap.first_start()
    [settings] = workflow.running_config()["dns"]
    assert settings["dns_ip"] == [
        {"address": "127.0.0.1:5353", "priority": 0},
        {"address": "[::1]:53", "priority": 0},
    ]


def test_a_bad_dns_server_at_first_start_is_a_first_start_error(db, monkeypatch):
    from appliance import bootstrap

    monkeypatch.setenv("APPLIANCE_DNS_SERVER", "dns.example.org")
    with pytest.raises(
        bootstrap.BootstrapError, match="^APPLIANCE_DNS_SERVER: 'dns.example.org' is not an IP address"
    ):
        bootstrap.first_start()


def test_the_esa_shape_with_priority_attributes_round_trips(admin):
    run("dnsconfig", "set", "--server", "127.0.0.1:5353/1", "--server", "10.0.0.53", "--ptr-timeout", "5")
    workflow.commit(admin, "dns")
    document = configfile.running_document(admin, SecretMode.PLAIN)
    assert (
        # Lowest priority first, as the gateway asks them.
        '<dns>\n    <local_dns>\n      <dns_ip priority="0">10.0.0.53</dns_ip>\n'
        '      <dns_ip priority="1">127.0.0.1:5353</dns_ip>\n    </local_dns>\n'
        "    <dns_ptr_timeout>5</dns_ptr_timeout>\n  </dns>"
    ) in document
    configfile.load(admin, document.encode("latin-1"), None, "same")
    assert not workflow.has_uncommitted_changes()
    assert without_header(configfile.running_document(admin, SecretMode.PLAIN)) == without_header(document)


@pytest.mark.parametrize(
    "inner,problem",
    [
        (
            '<local_dns><dns_ip priority="x">10.0.0.1</dns_ip></local_dns>',
            "<dns_ip priority> must be a whole number, not 'x'",
        ),
        (
            "<local_dns><dns_ip>dns.example.org</dns_ip></local_dns>",
            "<dns_ip> 'dns.example.org' is not an IP address",
        ),
        ('<local_dns><dns_ip weight="1">10.0.0.1</dns_ip></local_dns>', "<dns_ip> has no attribute 'weight'"),
        (
            "<local_dns><server>10.0.0.1</server></local_dns>",
            "<server> does not belong in <local_dns> (expected <dns_ip>)",
        ),
        ("<dns_ptr_timeout>600</dns_ptr_timeout>", "<dns_ptr_timeout> must be between 1 and 60, not 600"),
    ],
)
def test_a_partial_document_with_a_bad_dns_section_is_refused(admin, inner, problem):
    with pytest.raises(ConfigFileError) as error:
        configfile.load(admin, f"<config><dns>{inner}</dns></config>".encode(), None, "dns.xml")
    assert any(problem in line for line in error.value.problems), error.value.problems
    assert not workflow.has_uncommitted_changes()


def test_a_partial_document_sets_only_dns(admin):
    configfile.load(
        admin,
        b'<config><dns><local_dns><dns_ip priority="2">10.0.0.2</dns_ip></local_dns></dns></config>',
        None,
        "p",
    )
    [settings] = registry.candidate()["dns"]
    assert settings == {"dns_ip": [{"address": "10.0.0.2", "priority": 2}], "dns_ptr_timeout": 20}


def test_dnsconfig_lookup_asks_the_configured_server(admin, dns):
    resolver, port = dns
    run("dnsconfig", "set", "--server", f"127.0.0.1:{port}")
    assert run("dnsconfig", "lookup", "example.org") == ("10 mx.example.org.\n", "")
    assert run("dnsconfig", "lookup", "mx.example.org", "A")[0] == "127.0.0.1\n"
    assert (
        refused("dnsconfig", "lookup", "nothing.example.org")
        == "Error: nothing.example.org does not exist (NXDOMAIN)"
    )
    assert ("example.org.", "MX") in resolver.questions


def test_the_dns_page_stages_servers_and_tests_a_lookup(login, admin, dns):
    _, port = dns
    client = login(admin)
    response = client.post(
        reverse("dns"), {"action": "save", "servers": f"127.0.0.1:{port} 0", "ptr_timeout": "3"}, follow=True
    )
    assert "Your changes have been submitted" in response.content.decode()
    assert list(DnsServer.objects.values_list("address", flat=True)) == [f"127.0.0.1:{port}"]
    page = client.post(
        reverse("dns"), {"action": "lookup", "name": "example.org", "record_type": "MX"}
    ).content.decode()
    assert "10 mx.example.org." in page


@pytest.mark.parametrize(
    "servers,message",
    [
        ("10.0.0.1 high", "Line 1: write an address, then optionally a priority number."),
        ("10.0.0.1:99999", "has a port out of range"),
        ("10.0.0.1\n10.0.0.1", "A server is listed twice."),
    ],
)
def test_bad_dns_servers_are_refused_on_the_page(login, admin, servers, message):
    response = login(admin).post(reverse("dns"), {"action": "save", "servers": servers, "ptr_timeout": "20"})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not workflow.has_uncommitted_changes()
