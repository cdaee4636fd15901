"""Listeners: the shipped listener, the ``<listeners>`` section, the store's refusals and the certificate advice."""

from __future__ import annotations

import pytest

from appliance import bootstrap, configfile, interfaces, workflow
from appliance.config import checks
from appliance.config.levels import CLUSTER, CLUSTER_MODE
from appliance.config.sections import registry
from appliance.config.xmlfile import ConfigFileError, SecretMode, parse, without_header
from appliance.models import ConfigVersion, Interface
from certificates import pki
from certificates import store as certificate_store
from listeners import store
from listeners.models import Listener
from tests.listener_fixtures import (
    DEMO_WARNING,
    credentials_fixture,  # noqa: F401 (fixture)
    listener_settings,
    listeners,
    settings_only,
    stage_certificate,
    stage_listener,
    stage_pending,
    unchanged_fixture,  # noqa: F401 (fixture)
)

DECLARATION = '<?xml version="1.0" encoding="ISO-8859-1"?>'
SHIPPED = {
    "listener_name": "IncomingMail",
    "listener_type": "public",
    "interface_name": "Management",
    "port": 2525,
    "certificate_name": "Demo",
}


def xml(*lines: str) -> bytes:
    return ("\n".join([DECLARATION, "<config>", *lines, "</config>"]) + "\n").encode("latin-1")


def listener_xml(
    name="Second", kind="private", interface="Management", port="26", certificate=None
) -> list[str]:
    lines = [
        "<listener>",
        f"<listener_name>{name}</listener_name>",
        f"<listener_type>{kind}</listener_type>",
        f"<interface_name>{interface}</interface_name>",
        f"<port>{port}</port>",
    ]
    if certificate is not None:
        lines.append(f"<certificate_name>{certificate}</certificate_name>")
    return [*lines, "</listener>"]


# --- first start -------------------------------------------------------------------


def test_first_start_ships_incoming_mail_in_version_one(appliance):
    version = ConfigVersion.objects.get()
    assert version.number == 1
    config = parse(version.xml.encode("latin-1"), SecretMode.SEALED).config
    assert settings_only(config["listeners"]) == [SHIPPED]
    assert not workflow.has_uncommitted_changes()


@pytest.fixture
def first_start_environment(db, monkeypatch):
    monkeypatch.setitem(workflow._running_cache, "version", (None, None))
    for name, value in {
        "APPLIANCE_HOSTNAME": "esa.example.com",
        "APPLIANCE_ADMIN_PASSWORD": "Correct-Horse-42",
        "APPLIANCE_LISTEN_ADDRESS": "127.0.0.1",
        "APPLIANCE_HTTPS_PORT": "8443",
    }.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_first_start_takes_the_smtp_port_from_the_environment(first_start_environment):
    first_start_environment.setenv("APPLIANCE_SMTP_PORT", "2626")
    bootstrap.first_start()
    assert settings_only(workflow.running_config()["listeners"]) == [{**SHIPPED, "port": 2626}]


@pytest.mark.parametrize("value", ["smtp", "0", "65536", "", "-25", "25.0", "²"])
def test_first_start_refuses_a_bad_smtp_port(first_start_environment, value):
    first_start_environment.setenv("APPLIANCE_SMTP_PORT", value)
    with pytest.raises(bootstrap.BootstrapError) as refusal:
        bootstrap.first_start()
    assert str(refusal.value) == f"APPLIANCE_SMTP_PORT must be a port number, not {value!r}"
    assert not ConfigVersion.objects.exists() and not Listener.objects.at(CLUSTER).exists()


def test_first_start_refuses_the_smtp_port_of_the_console(first_start_environment):
    first_start_environment.setenv("APPLIANCE_SMTP_PORT", "8443")
    with pytest.raises(
        bootstrap.BootstrapError,
        match=r"^The changes cannot be committed; HTTPS of interface 'Management' and listener 'IncomingMail' "
        r"both use 127\.0\.0\.1 port 8443$",
    ):
        bootstrap.first_start()
    assert not ConfigVersion.objects.exists() and not Listener.objects.at(CLUSTER).exists()


# --- the Demo certificate and "where used" -------------------------------------------------


def test_the_demo_warning_at_commit_names_the_listener(admin):
    stage_listener(admin, "Relay", 2526, kind="private")
    version = workflow.commit(admin, "relay")
    assert DEMO_WARNING in workflow.commit_warnings(version)


def test_the_demo_warning_goes_when_no_listener_or_interface_uses_demo(admin, credentials):
    stage_certificate(admin, "Mail", credentials.good)
    workflow.submit(admin, "interface", lambda: Interface.objects.of("").update(certificate_name="Mail"))
    workflow.submit(admin, "listener", lambda: store.set_certificate(CLUSTER_MODE, "IncomingMail", "Mail"))
    assert workflow.commit_warnings(workflow.commit(admin, "own certificate")) == []


def test_a_certificate_lists_the_listener_using_it_and_stays_while_used(admin):
    assert certificate_store.users_of(CLUSTER_MODE, "Demo") == [
        "interface 'Management' (HTTPS Certificate)",
        "listener 'IncomingMail' (Certificate)",
    ]
    with pytest.raises(
        pki.CertificateError, match="used by interface 'Management' .*, listener 'IncomingMail'"
    ):
        workflow.submit(admin, "delete Demo", lambda: certificate_store.delete(CLUSTER_MODE, "Demo"))


# --- the <listeners> section ---------------------------------------------------------------


def test_plain_round_trip_of_listeners_gives_the_same_file(admin, credentials):
    stage_certificate(admin, "Mail", credentials.good)
    stage_listener(admin, "Relay", 587, "Mail", kind="private")
    stage_listener(admin, "Plain", 26)
    workflow.commit(admin, "listeners")
    saved = configfile.running_document(admin, SecretMode.PLAIN)
    assert (
        "    <listener>\n"
        "      <listener_name>Plain</listener_name>\n"
        "      <listener_type>public</listener_type>\n"
        "      <interface_name>Management</interface_name>\n"
        "      <port>26</port>\n"
        "      <max_concurrency>300</max_concurrency>\n"
    ) in saved  # no certificate chosen: no <certificate_name>
    assert "<listener_name>Relay</listener_name>" in saved
    assert saved.index("<interfaces>") < saved.index("<listeners>") < saved.index("<certificates>")

    workflow.submit(admin, "drop Relay", lambda: store.delete(CLUSTER, "Relay"))
    workflow.submit(
        admin, "move Plain", lambda: store.edit(CLUSTER_MODE, "Plain", port=2626, listener_type="private")
    )
    workflow.commit(admin, "changed")

    configfile.load(admin, saved.encode("latin-1"), None, "saved.xml")
    workflow.commit(admin, "restored")
    assert without_header(configfile.running_document(admin, SecretMode.PLAIN)) == without_header(saved)
    assert [item["listener_name"] for item in listeners()] == ["IncomingMail", "Plain", "Relay"]
    assert workflow.running_config()["listeners"][1]["certificate_name"] == ""


@pytest.mark.parametrize(
    "element,problem",
    [
        (
            listener_xml(kind="internal"),
            "line 6: <listener_type> 'internal' is not a type of listener (public or private)",
        ),
        (listener_xml(port="0"), "line 8: <port> must be between 1 and 65535, not 0"),
        (listener_xml(port="65536"), "line 8: <port> must be between 1 and 65535, not 65536"),
        (listener_xml(port="smtp"), "line 8: <port> must be a whole number, not 'smtp'"),
        (listener_xml(name="bad/name"), "line 5: <listener_name> 'bad/name' is not a valid name"),
        (
            [line for line in listener_xml() if "interface" not in line],
            "line 4: <listener> lacks <interface_name>",
        ),
    ],
)
def test_a_bad_listener_element_is_refused_naming_its_line(admin, unchanged, element, problem):
    with pytest.raises(ConfigFileError) as refusal:
        configfile.load(admin, xml("<listeners>", *element, "</listeners>"), None, "bad.xml")
    [found] = refusal.value.problems
    assert found.startswith(problem)
    unchanged()


def test_a_listener_on_an_unknown_interface_or_certificate_is_refused_at_load(admin, unchanged):
    document = xml("<listeners>", *listener_xml(interface="Outside", certificate="Missing"), "</listeners>")
    with pytest.raises(workflow.ChangeRefused, match="^The configuration cannot be loaded$") as refusal:
        configfile.load(admin, document, None, "bad.xml")
    assert refusal.value.problems == [
        "line 7: <interface_name> names interface 'Outside', which does not exist",
        "line 9: <certificate_name> names certificate 'Missing', which does not exist",
    ]
    unchanged()


def test_ports_in_use_in_a_loaded_file_are_refused_at_commit(admin):
    document = xml(
        "<listeners>",
        *listener_xml("A", port="2525"),
        *listener_xml("B", port="2525"),
        *listener_xml("C", port="8443"),
        "</listeners>",
    )
    configfile.load(admin, document, None, "clash.xml")
    with pytest.raises(workflow.ChangeRefused, match="^The changes cannot be committed$") as refusal:
        workflow.commit(admin, "clash")
    assert refusal.value.problems == [
        "listener 'A' and listener 'B' both use 127.0.0.1 port 2525",
        "HTTPS of interface 'Management' and listener 'C' both use 127.0.0.1 port 8443",
    ]
    assert ConfigVersion.objects.count() == 1


def test_listeners_on_two_interfaces_with_one_address_clash_too(admin):
    def add_interface():
        Interface.objects.of("").create(
            name="Data", ip_address="127.0.0.1", netmask=32, hostname="data.example.com", certificate_name=""
        )
        Listener.objects.at(CLUSTER).create(name="Data", interface_name="Data", port=2525)

    workflow.submit(admin, "second interface", add_interface)
    with pytest.raises(workflow.ChangeRefused) as refusal:
        workflow.commit(admin, "same address")
    assert refusal.value.problems == [
        "listener 'Data' and listener 'IncomingMail' both use 127.0.0.1 port 2525"
    ]


def test_an_interface_cannot_take_a_listeners_port_nor_go_while_a_listener_uses_it(admin, unchanged):
    moved = {**interfaces.item_of(Interface.objects.of("").get(name="Management")), "httpsd_port": 2525}
    in_use = (
        "^The port is in use: HTTPS of interface 'Management' and listener 'IncomingMail' "
        "both use 127.0.0.1 port 2525$"
    )
    with pytest.raises(workflow.ChangeRefused, match=in_use):
        workflow.submit(admin, "move HTTPS", lambda: interfaces.save(CLUSTER_MODE, "Management", moved))
    in_use_by = r"^'Management' cannot be deleted while it is used by listener 'IncomingMail' \(Interface\)$"
    with pytest.raises(workflow.ChangeRefused, match=in_use_by):
        workflow.submit(admin, "delete", lambda: interfaces.delete(CLUSTER_MODE, "Management"))
    unchanged()


# --- the store: each refusal in words, and nothing changed ----------------------------------


@pytest.mark.parametrize(
    "arguments,message",
    [
        (("IncomingMail", "public", "Management", 26), "A listener named 'IncomingMail' already exists"),
        (
            ("bad/name", "public", "Management", 26),
            "The listener name 'bad/name' is not a valid name (up to 64 letters, digits, spaces and . _ - @, "
            "starting with a letter or digit)",
        ),
        (
            ("Relay", "internal", "Management", 26),
            "The type of listener must be public or private, not 'internal'",
        ),
        (("Relay", "public", "Outside", 26), "There is no interface named 'Outside'"),
        (("Relay", "public", "Management", 0), "The port must be between 1 and 65535, not 0"),
        (("Relay", "public", "Management", 65536), "The port must be between 1 and 65535, not 65536"),
        (
            ("Relay", "public", "Management", 2525),
            "The port is in use: listener 'IncomingMail' and listener 'Relay' both use 127.0.0.1 port 2525",
        ),
        (
            ("Relay", "public", "Management", 8443),
            "The port is in use: HTTPS of interface 'Management' and listener 'Relay' both use 127.0.0.1 "
            "port 8443",
        ),
        (("Relay", "public", "Management", 26, "Missing"), "There is no certificate named 'Missing'"),
    ],
)
def test_create_refuses_with_its_reason_and_changes_nothing(admin, unchanged, arguments, message):
    with pytest.raises(store.ListenerRefused) as refusal:
        workflow.submit(admin, "create", lambda: store.create(CLUSTER_MODE, *arguments))
    assert str(refusal.value) == message
    unchanged()


def test_edit_refuses_a_taken_name_or_port_and_changes_nothing(admin):
    stage_listener(admin, "Relay", 26)
    with pytest.raises(store.ListenerRefused, match="^A listener named 'Relay' already exists$"):
        workflow.submit(admin, "rename", lambda: store.edit(CLUSTER_MODE, "IncomingMail", new_name="Relay"))
    in_use = "^The port is in use: listener 'IncomingMail' and listener 'Relay' both use 127.0.0.1 port 26$"
    with pytest.raises(store.ListenerRefused, match=in_use):
        workflow.submit(admin, "port", lambda: store.edit(CLUSTER_MODE, "IncomingMail", port=26))
    with pytest.raises(store.ListenerRefused, match="^There is no listener named 'Outgoing'$"):
        workflow.submit(admin, "edit", lambda: store.edit(CLUSTER_MODE, "Outgoing", port=27))
    assert [(item["listener_name"], item["port"]) for item in listeners()] == [
        ("IncomingMail", 2525),
        ("Relay", 26),
    ]


def test_edit_keeps_its_own_port_renames_and_clears_the_certificate(admin):
    workflow.submit(
        admin,
        "edit",
        lambda: store.edit(CLUSTER_MODE, "IncomingMail", new_name="Inbound", port=2525, certificate_name=""),
    )
    assert listener_settings() == [{**SHIPPED, "listener_name": "Inbound", "certificate_name": ""}]


def test_delete(admin):
    workflow.submit(admin, "delete", lambda: store.delete(CLUSTER, "IncomingMail"))
    assert listeners() == []
    workflow.commit(admin, "no mail")
    assert workflow.running_config()["listeners"] == []
    with pytest.raises(store.ListenerRefused, match="^There is no listener named 'IncomingMail'$"):
        workflow.submit(admin, "again", lambda: store.delete(CLUSTER, "IncomingMail"))


# --- certificate advice ------------------------------------------------------------------------


def test_choosing_a_certificate_gives_its_advice(admin, credentials):
    stage_certificate(admin, "Old", credentials.expired)
    stage_certificate(admin, "Other", credentials.other)
    stage_certificate(admin, "Mail", credentials.good)
    stage_pending(admin, "Waiting")
    old = pki.load_certificate(credentials.expired.cert_pem).not_valid_after_utc

    outcome = workflow.submit(
        admin, "old", lambda: store.set_certificate(CLUSTER_MODE, "IncomingMail", "Old")
    )
    assert outcome.warnings == [
        f"The certificate 'Old': 'esa.example.com' expired on {old:%Y-%m-%d %H:%M} UTC"
    ]
    outcome = workflow.submit(
        admin, "other", lambda: store.set_certificate(CLUSTER_MODE, "IncomingMail", "Other")
    )
    assert outcome.warnings == [
        "The certificate 'Other' (other.example.org) does not cover the host name esa.example.com"
    ]
    outcome = workflow.submit(
        admin, "waiting", lambda: store.set_certificate(CLUSTER_MODE, "IncomingMail", "Waiting")
    )
    assert outcome.warnings == [
        "The certificate 'Waiting' is still self-signed: its signing request waits for the CA"
    ]
    assert (
        workflow.submit(
            admin, "mail", lambda: store.set_certificate(CLUSTER_MODE, "IncomingMail", "Mail")
        ).warnings
        == []
    )
    assert (
        workflow.submit(
            admin, "none", lambda: store.set_certificate(CLUSTER_MODE, "IncomingMail", "")
        ).warnings
        == []
    )


def test_the_advice_follows_the_interface_hostname(admin, credentials):
    stage_certificate(admin, "Mail", credentials.good)

    def add_interface():
        Interface.objects.of("").create(
            name="Data", ip_address="127.0.0.2", netmask=32, hostname="mx.example.net"
        )

    workflow.submit(admin, "interface", add_interface)
    outcome = workflow.submit(
        admin, "relay", lambda: store.create(CLUSTER_MODE, "Relay", "public", "Data", 25, "Mail")
    )
    assert outcome.warnings == [
        "The certificate 'Mail' (esa.example.com) does not cover the host name mx.example.net"
    ]
    assert (
        "listener 'Relay' (Certificate): The certificate 'Mail' (esa.example.com) does not cover the host name "
        "mx.example.net"
    ) in checks.warnings(registry.candidate())
