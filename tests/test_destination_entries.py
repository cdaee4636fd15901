"""Destination Controls entries: validation, the lookup's precedence, ``<destination>`` in the file, the diff,
and ``destconfig`` new/edit/delete/list/lookup."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from appliance import workflow
from appliance.config.levels import CLUSTER
from appliance.config.sections import registry
from appliance.config.xmlfile import ConfigFileError, SecretMode, parse, render, without_header
from destinations import entries, lookup, store
from destinations.entries import Entry
from destinations.models import Destination, TlsSupport
from tests.console import refused, run

SYNTAX = (
    "is not a destination: give a domain (example.com), a subdomain form for every host below a domain "
    "(.example.com), or an IPv4 or IPv6 address (192.0.2.1, 2001:db8::1)"
)


def add(admin, *table: Entry) -> None:
    def apply():
        for entry in table:
            store.save_destination(CLUSTER, entry)

    workflow.submit(admin, "add", apply)


def names() -> list[str]:
    return [item["destination_name"] for item in entries.read_items(CLUSTER)]


@pytest.fixture
def table(admin):
    """Entries of every kind; the Default entry at Preferred, as shipped."""
    add(
        admin,
        Entry("example.com", tls=TlsSupport.REQUIRED, max_connections=20),
        Entry(".example.com", tls=TlsSupport.PREFERRED_VERIFY),
        Entry(".sub.example.com", tls=TlsSupport.REQUIRED_VERIFY, max_recipients_per_minute=180),
        Entry("192.0.2.1", tls=TlsSupport.NONE),
        Entry("[IPv6:2001:DB8::1]", tls=TlsSupport.REQUIRED),
        Entry("partner.org"),  # TLS Support: Default
    )
    workflow.commit(admin)
    return admin


# --- validation: each refused with its message, nothing changed -------------------------


@pytest.mark.parametrize(
    "entry,message",
    [
        (Entry("exa mple.com", tls="required"), f"'exa mple.com' {SYNTAX}"),
        (Entry("-bad.example.com"), f"'-bad.example.com' {SYNTAX}"),
        (Entry("192.0.2.256"), f"'192.0.2.256' {SYNTAX}"),
        (Entry("*.example.com"), f"'*.example.com' {SYNTAX}"),
        (
            Entry("[mail.example.com]"),
            "'[mail.example.com]' is not an IP address: only an address goes in brackets",
        ),
        (Entry("Example.COM"), "The destination 'example.com' is already in the table"),
        (
            Entry("default", tls="required"),
            "The Default entry always exists: edit it instead of adding another",
        ),
        (
            Entry("new.example", max_connections=0),
            "Concurrent Connections must be between 1 and 1,000, not 0",
        ),
        (
            Entry("new.example", max_connections=1001),
            "Concurrent Connections must be between 1 and 1,000, not 1,001",
        ),
        (
            Entry("new.example", max_messages_per_connection=5000),
            "Maximum Messages Per Connection must be between 1 and 1,000, not 5,000",
        ),
        (
            Entry("new.example", max_recipients_per_minute=1_000_001),
            "Recipients per Minute must be between 1 and 1,000,000, not 1,000,001",
        ),
        (
            Entry("new.example", tls="sometimes"),
            "TLS Support must be one of default, none, preferred, "
            "required, preferred_verify, required_verify, not 'sometimes'",
        ),  # fmt: skip
    ],
)
def test_bad_entries_are_refused_and_nothing_changes(admin, entry, message):
    add(admin, Entry("example.com"))
    workflow.commit(admin)
    before = entries.read_items(CLUSTER)
    with pytest.raises(workflow.ChangeRefused) as refusal:
        workflow.submit(admin, "bad", lambda: store.save_destination(CLUSTER, entry))
    assert str(refusal.value) == message
    assert entries.read_items(CLUSTER) == before
    assert not workflow.has_uncommitted_changes()


def test_the_default_entry_cannot_be_deleted_renamed_or_set_to_default(table):
    before = entries.read_items(CLUSTER)
    attempts = {
        "The Default entry cannot be deleted: it holds the settings of every destination without an entry "
        "of its own": lambda: store.delete_destinations(CLUSTER, ["example.com", "Default"]),
        "The Default entry's TLS Support cannot be Default: it is the setting the other entries' Default "
        "refers to; choose None, Preferred, Required, Preferred - Verify or Required - Verify": lambda: (
            store.save_destination(CLUSTER, Entry("Default", tls="default", **_limits()), original="Default")
        ),
        "The Default entry cannot be renamed: it is the entry of every other destination": lambda: (
            store.save_destination(CLUSTER, Entry("other.example", tls="none"), original="Default")
        ),
        "The Default entry needs its own Concurrent Connections: it has no Default to use": lambda: (
            store.save_destination(
                CLUSTER,
                Entry("Default", tls="none", **{**_limits(), "max_connections": None}),
                original="Default",
            )
        ),
        "'gone.example' was not found in the destination control table": lambda: store.delete_destinations(
            CLUSTER, ["gone.example"]
        ),
    }
    for message, attempt in attempts.items():
        with pytest.raises(workflow.ChangeRefused) as refusal:
            workflow.submit(table, "bad", attempt)
        assert str(refusal.value) == message
    assert entries.read_items(CLUSTER) == before
    assert not workflow.has_uncommitted_changes()


def _limits() -> dict:
    return {
        "ip_preference": "ipv4_preferred",
        "max_connections": 10,
        "max_messages_per_connection": 10,
        "limits_apply_to": "domain",
    }


def test_names_are_stored_in_one_form(admin):
    add(
        admin,
        Entry("Mail.Example.COM."),
        Entry(".Example.NET"),
        Entry("[192.0.2.7]"),
        Entry("2001:DB8:0::7"),
        Entry("bücher.example"),
    )
    assert names() == [
        "Default",
        ".example.net",
        "192.0.2.7",
        "2001:db8::7",
        "mail.example.com",
        "xn--bcher-kva.example",
    ]
    assert Destination.objects.at(CLUSTER).get(name="192.0.2.7").display_name == "[192.0.2.7]"


def test_the_default_entry_ships_at_preferred_and_comes_back(admin):
    default = lookup.entry_for(CLUSTER, "user@example.com").default
    assert (default.tls, default.max_connections, default.max_recipients_per_minute) == (
        "preferred",
        50,
        None,
    )
    Destination.objects.at(CLUSTER).all().delete()  # even without its row, the table has a Default entry
    assert names() == ["Default"] and lookup.entry_for(CLUSTER, "example.com").tls == TlsSupport.PREFERRED


def test_editing_renames_and_changes_only_what_is_given(table):
    workflow.submit(
        table,
        "edit",
        lambda: store.save_destination(CLUSTER, Entry("example.net", tls="required"), original="Example.com"),
    )
    assert "example.com" not in names() and "example.net" in names()
    with pytest.raises(
        workflow.ChangeRefused, match="^The destination '.example.com' is already in the table$"
    ):
        workflow.submit(
            table,
            "edit",
            lambda: store.save_destination(CLUSTER, Entry(".example.com"), original="example.net"),
        )
    warning = workflow.submit(
        table,
        "none",
        lambda: store.save_destination(CLUSTER, Entry("Default", tls="none", **_limits()), "Default"),
    ).warnings
    assert warning == [
        "TLS Support of the Default entry is None: mail to every destination without an entry of its own "
        "crosses the network in clear text"
    ]


# --- lookup: exact > longest .subdomain > Default; IP literals --------------------------------


@pytest.mark.parametrize(
    "address,entry,kind,tls",
    [
        ("user@example.com", "example.com", "exact", "required"),
        ("USER@Example.COM.", "example.com", "exact", "required"),
        ("user@host.example.com", ".example.com", "subdomain", "preferred_verify"),
        ("user@sub.example.com", ".example.com", "subdomain", "preferred_verify"),
        ("user@host.sub.example.com", ".sub.example.com", "subdomain", "required_verify"),
        ("user@a.b.host.sub.example.com", ".sub.example.com", "subdomain", "required_verify"),
        ("<user@other.org>", "Default", "default", "preferred"),
        ("example.org", "Default", "default", "preferred"),
        ("partner.org", "partner.org", "exact", "preferred"),  # TLS Default: the Default entry's
        ("user@[192.0.2.1]", "192.0.2.1", "ip", "none"),
        ("192.0.2.1", "192.0.2.1", "ip", "none"),
        ("user@[IPv6:2001:db8:0::1]", "2001:db8::1", "ip", "required"),
        ("user@[192.0.2.2]", "Default", "default", "preferred"),
    ],
)
def test_lookup_precedence(table, address, entry, kind, tls):
    with CaptureQueriesContext(connection) as queries:
        match = lookup.entry_for(CLUSTER, address)
    assert (match.entry.name, match.kind, match.tls) == (entry, kind, tls)
    assert len(queries) == 1  # one indexed name__in query, whatever the table's size


def test_lookup_follows_the_default_entry_and_explains(table):
    workflow.submit(
        table,
        "default",
        lambda: store.save_destination(
            CLUSTER,
            Entry("Default", tls="required", **{**_limits(), "max_recipients_per_minute": 600}),
            "Default",
        ),
    )
    match = lookup.entry_for(CLUSTER, "user@partner.org")
    assert match.tls == TlsSupport.REQUIRED and match.effective("max_recipients_per_minute") == 600
    assert match.effective("max_connections") == 10
    assert (
        lookup.entry_for(CLUSTER, "user@host.sub.example.com").effective("max_recipients_per_minute") == 180
    )
    assert lookup.entry_for(CLUSTER, "x@host.sub.example.com").reason == (
        "the subdomain entry .sub.example.com, the longest one covering host.sub.example.com"
    )
    assert (
        lookup.entry_for(CLUSTER, "x@nowhere.example").reason
        == "no entry covers nowhere.example: the Default entry"
    )
    for bad in ("user@", "user@.example.com", "user@exa mple.com"):
        with pytest.raises(ValueError):
            lookup.entry_for(CLUSTER, bad)


def test_candidate_names_are_the_domain_and_its_parent_suffixes():
    assert lookup.candidate_names("host.sub.example.com") == [
        "host.sub.example.com",
        ".sub.example.com",
        ".example.com",
        ".com",
    ]
    assert lookup.candidate_names("2001:db8::1") == ["2001:db8::1"]


# --- the configuration file ---------------------------------------------------------------


def test_xml_round_trip_with_entries(table):
    workflow.submit(
        table,
        "limits",
        lambda: store.save_destination(CLUSTER, Entry("192.0.2.1", tls="none", **_limits()), "192.0.2.1"),
    )
    saved = render(registry.candidate(), SecretMode.PLAIN)
    assert (
        "    <destination>\n"
        "      <destination_name>.sub.example.com</destination_name>\n"
        "      <tls>required_verify</tls>\n"
        "      <max_recipients_per_minute>180</max_recipients_per_minute>\n"
        "    </destination>\n"
    ) in saved
    assert (
        "      <destination_name>192.0.2.1</destination_name>\n"
        "      <tls>none</tls>\n"
        "      <ip_sort_pref>ipv4_preferred</ip_sort_pref>\n"
        "      <max_host_concurrency>10</max_host_concurrency>\n"
        "      <max_messages_per_connection>10</max_messages_per_connection>\n"
        "      <limits_apply_to>domain</limits_apply_to>\n"
    ) in saved
    assert saved.index("<destination_name>Default<") < saved.index("<destination_name>.example.com<")
    workflow.abandon(table)
    workflow.submit(table, "wipe", lambda: entries.replace_table(CLUSTER, []))
    assert names() == ["Default"]
    workflow.load_document(table, parse(saved.encode("latin-1")), "loaded")
    assert workflow.commit(table) is not None
    assert without_header(render(workflow.running_config(), SecretMode.PLAIN)) == without_header(saved)
    assert not workflow.pending_changes()


def test_a_partial_file_recreates_the_default_entry(table):
    document = parse(
        b"<config><destination_controls><destination><destination_name>example.com</destination_name>"
        b"<tls>required</tls></destination><destination><destination_name>Default</destination_name>"
        b"<max_host_concurrency>7</max_host_concurrency></destination></destination_controls></config>"
    )
    workflow.load_document(table, document, "loaded")
    default = lookup.entry_for(CLUSTER, "x@other.example").default
    assert names() == ["Default", "example.com"]
    assert (default.tls, default.max_connections, default.ip_preference) == ("preferred", 7, "ipv6_preferred")
    workflow.load_document(table, parse(b"<config><destination_controls/></config>"), "empty")
    assert names() == ["Default"] and lookup.entry_for(CLUSTER, "x@example.com").default.max_connections == 50


def test_bad_destinations_in_a_file_are_refused_with_line_and_element(table):
    before = entries.read_items(CLUSTER)
    cases = {
        b"<destination><destination_name>exa mple.com</destination_name></destination>": (
            f"line 3: <destination_name> 'exa mple.com' {SYNTAX}"
        ),
        b"<destination><destination_name>Example.com</destination_name></destination>": (
            "line 3: <destination_name> 'Example.com' must be written as 'example.com'"
        ),
        b"<destination><destination_name>a.example</destination_name><tls>maybe</tls></destination>": (
            "line 3: <tls> must be one of default, none, preferred, required, preferred_verify, "
            "required_verify, not 'maybe'"
        ),
        b"<destination><destination_name>a.example</destination_name>"
        b"<max_host_concurrency>0</max_host_concurrency></destination>": (
            "line 3: <max_host_concurrency> must be between 1 and 1000, not 0"
        ),
        b"<destination><destination_name>a.example</destination_name>"
        b"<max_recipients_per_minute>2000000</max_recipients_per_minute></destination>": (
            "line 3: <max_recipients_per_minute> must be between 1 and 1000000, not 2000000"
        ),
        b"<destination><destination_name>a.example</destination_name></destination>\n"
        b"<destination><destination_name>a.example</destination_name></destination>": (
            "line 2: <destination_controls> lists <destination> 'a.example' twice"
        ),
        b"<destination><destination_name>Default</destination_name><tls>default</tls></destination>": (
            "line 3: <destination> 'Default' has <tls>default</tls>: the Default entry is what 'default' "
            "refers to; give none, preferred, required, preferred_verify or required_verify"
        ),
    }
    for body, problem in cases.items():
        data = b"<config>\n<destination_controls>\n" + body + b"\n</destination_controls>\n</config>"
        with pytest.raises(ConfigFileError) as error:
            parse(data)
        assert error.value.problems == [problem]
    assert entries.read_items(CLUSTER) == before


# --- Uncommitted Changes: each entry is an object ------------------------------------------


def test_the_diff_shows_each_changed_entry(table, login):
    def apply():
        store.save_destination(CLUSTER, Entry("new.example", tls="required_verify"))
        store.save_destination(
            CLUSTER, Entry("example.com", tls="none", max_connections=20), original="example.com"
        )
        store.delete_destinations(CLUSTER, ["192.0.2.1"])

    workflow.submit(table, "three", apply)
    [section] = workflow.pending_changes()
    assert section.title == "Destination Controls"
    changes = {change.name: change for change in section.objects}
    assert set(changes) == {
        "Destination Controls: destination 'new.example'",
        "Destination Controls: destination 'example.com'",
        "Destination Controls: destination '192.0.2.1'",
    }
    assert changes["Destination Controls: destination 'new.example'"].action == "added"
    assert changes["Destination Controls: destination '192.0.2.1'"].action == "deleted"
    [field] = changes["Destination Controls: destination 'example.com'"].fields
    assert (field.label, field.before, field.after) == ("TLS Support", "Required", "None")
    page = login(table).get(reverse("uncommitted_changes")).content.decode()
    assert "Destination Controls: destination &#x27;new.example&#x27;" in page


# --- destconfig -----------------------------------------------------------------------------


def test_destconfig_new_edit_list_lookup_delete(admin):
    out, err = run("destconfig", "new", "Example.com", "--tls", "required_verify", "--max-connections", "20")
    assert (out, err) == ("Destination Example.com staged. Use commit to apply it.\n", "")
    run("destconfig", "new", ".example.com", "--tls", "preferred", "--ip-preference", "ipv4_required")
    run("destconfig", "new", "[192.0.2.1]", "--tls", "default", "--max-recipients-per-minute", "60")
    run("destconfig", "edit", "example.com", "--max-connections", "default", "--max-messages", "5")
    run("destconfig", "edit", "Default", "--tls", "required", "--limits-apply-to", "mx_ip")
    assert run("destconfig", "list")[0].splitlines() == [
        "Destination\tTLS Support\tIP Address Preference\tConcurrent Connections\tMessages per Connection\t"
        "Recipients per Minute\tApply Limits To",
        "Default\tRequired\tIPv6 Preferred\t50\t50\tNo Limit\tEach Mail Exchanger (MX Record) IP address",
        ".example.com\tPreferred\tIPv4 Required\tDefault\tDefault\tDefault\tDefault",
        "[192.0.2.1]\tDefault\tDefault\tDefault\tDefault\t60\tDefault",
        "example.com\tRequired - Verify\tDefault\tDefault\t5\tDefault\tDefault",
    ]
    assert run("destconfig", "lookup", "user@[192.0.2.1]")[0].splitlines() == [
        "user@[192.0.2.1]: the entry for the address [192.0.2.1]",
        "Entry: 192.0.2.1",
        "TLS Support: Required (Default)",
        "IP Address Preference: IPv6 Preferred (Default)",
        "Concurrent Connections: 50 (Default)",
        "Maximum Messages Per Connection: 50 (Default)",
        "Recipients per Minute: 60",
        "Apply Limits Per Destination: Each Mail Exchanger (MX Record) IP address (Default)",
    ]
    assert run("destconfig", "lookup", "a@host.example.com")[0].splitlines()[:3] == [
        "a@host.example.com: the subdomain entry .example.com, the longest one covering host.example.com",
        "Entry: .example.com",
        "TLS Support: Preferred",
    ]
    out, _ = run("destconfig", "delete", "example.com", ".example.com")
    assert out == "Deleted example.com, .example.com. Use commit to apply it.\n"
    assert names() == ["Default", "192.0.2.1"]


def test_destconfig_refusals(admin, read_only):
    run("destconfig", "new", "example.com", "--tls", "required")
    before = entries.read_items(CLUSTER)
    assert refused("destconfig", "new", "exa mple.com", "--tls", "none") == f"Error: 'exa mple.com' {SYNTAX}"
    assert refused("destconfig", "new", "EXAMPLE.com", "--tls", "none") == (
        "Error: The destination 'example.com' is already in the table"
    )
    assert refused("destconfig", "new", "a.example", "--tls", "none", "--max-connections", "0") == (
        "Error: Concurrent Connections must be between 1 and 1,000, not 0"
    )
    assert refused("destconfig", "edit", "Default", "--tls", "default").startswith(
        "Error: The Default entry's TLS Support cannot be Default"
    )
    assert refused("destconfig", "edit", "Default", "--max-messages", "default") == (
        "Error: The Default entry needs its own Maximum Messages Per Connection: it has no Default to use"
    )
    assert refused("destconfig", "delete", "Default") == (
        "Error: The Default entry cannot be deleted: it holds the settings of every destination without an "
        "entry of its own"
    )
    assert refused("destconfig", "delete", "nowhere.example") == (
        "Error: 'nowhere.example' was not found in the destination control table"
    )
    assert refused("destconfig", "edit", "example.com") == (
        "Error: nothing to change: give the settings to change (see destconfig edit --help)"
    )
    assert refused("destconfig", "lookup", "user@") == "Error: 'user@' has no domain after the @"
    out, _ = run("destconfig", "new", "b.example", "--tls", "none", "--user", "rita")
    assert out.splitlines()[:2] == [
        "Preview only (Read-Only Operator): nothing was stored.",
        "Destination Controls: Destination Controls: destination 'b.example' added",
    ]
    assert entries.read_items(CLUSTER) == before
