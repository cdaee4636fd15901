"""Mail Flow Policies and the HAT: the sender entry syntax, Find Senders, the predefined policies and groups,
the operations and their refusals, ``<mail_flow_policies>`` and ``<hat>`` in the file, the diff, the HAT
text file, and the cost of a long HAT."""

from __future__ import annotations

import ipaddress

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from appliance import configfile, workflow
from appliance.config.levels import CLUSTER, CLUSTER_MODE
from appliance.config.sections import registry
from appliance.config.xmlfile import ConfigFileError, SecretMode, parse, render, without_header
from appliance.models import ConfigVersion
from listeners import address_lists, hat, hatfile, senders, store
from listeners.models import AddressList, Listener
from tests.listener_fixtures import unchanged_fixture  # noqa: F401 (fixture)

IN = "IncomingMail"
FORMS = (
    "give an IP address, CIDR block (10.1.0.0/16), range (10.1.1.1-50), partial address (10.1.), "
    "host name (mail.example.com) or .domain (.example.com)"
)
PUBLIC_GROUPS = [
    ("ALLOWED_LIST", "TRUSTED", []),
    ("BLOCKED_LIST", "BLOCKED", []),
    ("SUSPECTLIST", "THROTTLED", []),
    ("UNKNOWNLIST", "ACCEPTED", []),
    ("ALL", "ACCEPTED", ["ALL"]),
]


def listener_item(name: str = IN) -> dict:
    return next(item for item in registry.read("listeners") if item["listener_name"] == name)


def groups(name: str = IN) -> list[tuple[str, str, list[str]]]:
    """The listener's HAT as (group, policy, entries), in order."""
    return [(g["sender_group_name"], g["policy"], g["host"]) for g in listener_item(name)["sender_group"]]


def policies(name: str = IN) -> dict[str, tuple]:
    return {
        p["policy_name"]: (
            p["connection_behavior"],
            p["tls"],
            p["tls_verify_client"],
            p["tls_mandatory_address_list"],
        )
        for p in listener_item(name)["mail_flow_policy"]
    }


def row(name: str = IN) -> Listener:
    return Listener.objects.at(CLUSTER).get(name=name)


def refuses(user, apply, message: str, problems: list[str] | None = None) -> None:
    """``apply`` inside a submit is refused with ``message``; the candidate and the lock are as before."""
    before = registry.candidate()
    owner = workflow.lock_state().owner_name
    with pytest.raises(workflow.ChangeRefused) as refusal:
        workflow.submit(user, "refused", apply)
    assert str(refusal.value) == message
    assert refusal.value.problems == (problems or [])
    assert registry.candidate() == before
    assert workflow.lock_state().owner_name == owner


@pytest.fixture
def table(admin):
    """IncomingMail with entries of every kind, a Continue policy and TLS settings of its own; committed.

    HAT: ALLOWED_LIST (TRUSTED), BLOCKED_LIST (BLOCKED), SUSPECTLIST (THROTTLED), MONITORED (MONITOR:
    Continue), UNKNOWNLIST (ACCEPTED), ALL (ACCEPTED).
    """

    def build():
        address_lists.create("Partners", ["partner.example"])
        hat.save_policy(CLUSTER, IN, "MONITOR", connection_behavior="continue", create=True)
        hat.save_policy(
            CLUSTER,
            IN,
            "TRUSTED",
            tls="preferred",
            tls_verify_client=True,
            tls_mandatory_address_list="Partners",
        )
        hat.save_policy(CLUSTER, IN, "THROTTLED", tls="required")
        hat.set_default_parameters(CLUSTER, IN, tls="preferred")
        hat.add_senders(CLUSTER, IN, "ALLOWED_LIST", ["10.1.1.1", "2001:DB8::1", "MX.Partner.Example"])
        hat.add_senders(
            CLUSTER,
            IN,
            "BLOCKED_LIST",
            ["10.1.0.0/16", "192.0.2.10-20", ".spam.example", "2001:db8:bad::/48"],
        )
        hat.add_senders(
            CLUSTER,
            IN,
            "SUSPECTLIST",
            ["198.51.100.", "203.0.113.5-203.0.113.9", "spam.example", "2001:db8::100-2001:db8::1ff"],
        )
        hat.save_group(
            CLUSTER, IN, "MONITORED", policy_name="MONITOR", comment="Partners we watch", order=4, create=True
        )
        hat.add_senders(CLUSTER, IN, "MONITORED", ["172.16.", ".partner.example"])
        hat.add_senders(CLUSTER, IN, "UNKNOWNLIST", ["172.16.0.0/12", "relay.partner.example"])

    workflow.submit(admin, "hat", build)
    workflow.commit(admin, "hat")
    return admin


# --- sender entry syntax ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,canonical,first,last",
    [
        ("10.1.1.1", "10.1.1.1", "10.1.1.1", "10.1.1.1"),
        (" 192.0.2.7 ", "192.0.2.7", "192.0.2.7", "192.0.2.7"),
        ("2001:DB8:0::1", "2001:db8::1", "2001:db8::1", "2001:db8::1"),
        ("10.1.0.0/16", "10.1.0.0/16", "10.1.0.0", "10.1.255.255"),
        ("10.1.1.7/32", "10.1.1.7/32", "10.1.1.7", "10.1.1.7"),
        ("2001:DB8::/32", "2001:db8::/32", "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("10.1.1.1-50", "10.1.1.1-50", "10.1.1.1", "10.1.1.50"),
        ("10.1.1.7-7", "10.1.1.7-7", "10.1.1.7", "10.1.1.7"),
        ("10.1.1.1-10.1.2.200", "10.1.1.1-10.1.2.200", "10.1.1.1", "10.1.2.200"),
        ("2001:db8::1-2001:DB8::FF", "2001:db8::1-2001:db8::ff", "2001:db8::1", "2001:db8::ff"),
        ("10.", "10.", "10.0.0.0", "10.255.255.255"),
        ("10.1.", "10.1.", "10.1.0.0", "10.1.255.255"),
        ("10.1.2.", "10.1.2.", "10.1.2.0", "10.1.2.255"),
    ],
)
def test_address_entries_are_canonical_and_cover_their_range(text, canonical, first, last):
    sender = senders.parse_sender(text)
    assert sender.host == canonical and sender.is_address
    assert (sender.range_start, sender.range_end) == (
        senders.address_key(ipaddress.ip_address(first)),
        senders.address_key(ipaddress.ip_address(last)),
    )
    senders.validate_written(canonical)  # the canonical form is what a file holds


def test_address_keys_order_ipv4_and_ipv6_in_one_space():
    key = senders.address_key
    assert key(ipaddress.ip_address("10.1.1.1")) == "00000000000000000000ffff0a010101"
    assert key(ipaddress.ip_address("2001:db8::1")) == "20010db8000000000000000000000001"
    ordered = ["0.0.0.0", "10.1.1.1", "10.1.1.2", "255.255.255.255", "2001:db8::1", "ffff::"]
    keys = [key(ipaddress.ip_address(a)) for a in ordered]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


@pytest.mark.parametrize(
    "text,canonical",
    [
        ("mail.example.com", "mail.example.com"),
        ("Mail.Example.COM.", "mail.example.com"),
        ("mx_1.example.com", "mx_1.example.com"),
        (".example.com", ".example.com"),
        (".Example.COM", ".example.com"),
        ("ALL", "ALL"),
        ("all", "ALL"),
    ],
)
def test_name_entries_are_canonical_and_cover_no_range(text, canonical):
    sender = senders.parse_sender(text)
    assert (sender.host, sender.range_start, sender.range_end) == (canonical, "", "")
    assert not sender.is_address


@pytest.mark.parametrize(
    "text,message",
    [
        ("10.1.2.3/16", "'10.1.2.3/16' has host bits set; did you mean 10.1.0.0/16?"),
        ("2001:db8::1/32", "'2001:db8::1/32' has host bits set; did you mean 2001:db8::/32?"),
        (
            "10.1.1.1/33",
            "'10.1.1.1/33' is not a CIDR block ('10.1.1.1/33' does not appear to be an IPv4 or IPv6 network)",
        ),
        ("10.1.1.1-300", "'10.1.1.1-300': the range ends at 300, beyond 255"),
        ("10.1.1.50-10", "'10.1.1.50-10' is not a range: it ends before it starts"),
        ("10.1.2.1-10.1.1.1", "'10.1.2.1-10.1.1.1' is not a range: it ends before it starts"),
        (
            "10.1.1.1-2001:db8::1",
            "'10.1.1.1-2001:db8::1' is not a range: give 10.1.1.1-50, or two addresses of one kind "
            "(10.1.1.1-10.1.2.200)",
        ),
        (
            "10.1.1.1-x",
            "'10.1.1.1-x' is not a range: give 10.1.1.1-50, or two addresses of one kind (10.1.1.1-10.1.2.200)",
        ),
        ("300.1.", "'300.1.' is not a partial IPv4 address (each part 0 to 255)"),
        ("10.1", f"'10.1' is not a sender entry; {FORMS}"),
        ("1.2.3.4.5", f"'1.2.3.4.5' is not a sender entry; {FORMS}"),
        (
            "SBRS[-10:-3]",
            f"'SBRS[-10:-3]' needs SenderBase reputation, which this appliance does not use; {FORMS}",
        ),
        ("sbo:123", f"'sbo:123' needs SenderBase reputation, which this appliance does not use; {FORMS}"),
        (
            "dnslist[bl.example]",
            f"'dnslist[bl.example]' needs SenderBase reputation, which this appliance does not use; {FORMS}",
        ),
        ("", "is empty"),
        ("   ", "is empty"),
        ("example", f"'example' is not a sender entry; {FORMS}"),
        ("-bad.example.com", f"'-bad.example.com' is not a sender entry; {FORMS}"),
        ("mail..example.com", f"'mail..example.com' is not a sender entry; {FORMS}"),
        ("mail example.com", f"'mail example.com' is not a sender entry; {FORMS}"),
        ("*.example.com", f"'*.example.com' is not a sender entry; {FORMS}"),
    ],
)
def test_bad_entries_are_refused_in_words(text, message):
    with pytest.raises(ValueError) as refusal:
        senders.parse_sender(text)
    assert str(refusal.value) == message


def test_a_last_octet_range_has_one_written_form():
    """``10.1.1.1-050`` and ``10.1.1.1-50`` are one range: they must have one canonical form, or one
    group could hold the same range twice."""
    assert senders.parse_sender("10.1.1.1-050").host == senders.parse_sender("10.1.1.1-50").host


@pytest.mark.parametrize(
    "written,canonical",
    [
        ("Mail.Example.com", "mail.example.com"),
        ("2001:DB8::1", "2001:db8::1"),
        ("all", "ALL"),
        ("mail.example.com.", "mail.example.com"),
    ],
)
def test_a_file_holds_entries_in_canonical_form(written, canonical):
    with pytest.raises(ValueError) as refusal:
        senders.validate_written(written)
    assert str(refusal.value) == f"{written!r} must be written as {canonical!r}"


def test_name_keys_are_the_name_and_each_domain_above_it():
    assert senders.name_keys("MX.Mail.Example.com.") == [
        "mx.mail.example.com",
        ".mail.example.com",
        ".example.com",
        ".com",
    ]
    assert senders.name_keys("  ") == []


# --- Find Senders: first match wins ------------------------------------------------------------


@pytest.mark.parametrize(
    "address,hostname,group,entry,policy",
    [
        # a /32 in ALLOWED_LIST wins over the /16 of the later BLOCKED_LIST
        ("10.1.1.1", "", "ALLOWED_LIST", "10.1.1.1", "TRUSTED"),
        ("10.1.1.2", "", "BLOCKED_LIST", "10.1.0.0/16", "BLOCKED"),
        ("10.1.255.255", "", "BLOCKED_LIST", "10.1.0.0/16", "BLOCKED"),
        ("10.2.0.0", "", "ALL", "ALL", "ACCEPTED"),
        # last-octet range, both ends included
        ("192.0.2.10", "", "BLOCKED_LIST", "192.0.2.10-20", "BLOCKED"),
        ("192.0.2.20", "", "BLOCKED_LIST", "192.0.2.10-20", "BLOCKED"),
        ("192.0.2.9", "", "ALL", "ALL", "ACCEPTED"),
        ("192.0.2.21", "", "ALL", "ALL", "ACCEPTED"),
        # full range and partial address
        ("203.0.113.5", "", "SUSPECTLIST", "203.0.113.5-203.0.113.9", "THROTTLED"),
        ("203.0.113.9", "", "SUSPECTLIST", "203.0.113.5-203.0.113.9", "THROTTLED"),
        ("203.0.113.10", "", "ALL", "ALL", "ACCEPTED"),
        ("198.51.100.77", "", "SUSPECTLIST", "198.51.100.", "THROTTLED"),
        ("198.51.101.1", "", "ALL", "ALL", "ACCEPTED"),
        # IPv6: address, CIDR, range
        ("2001:DB8:0::1", "", "ALLOWED_LIST", "2001:db8::1", "TRUSTED"),
        ("2001:db8:bad::5", "", "BLOCKED_LIST", "2001:db8:bad::/48", "BLOCKED"),
        ("2001:db8:bae::1", "", "ALL", "ALL", "ACCEPTED"),
        ("2001:db8::1ff", "", "SUSPECTLIST", "2001:db8::100-2001:db8::1ff", "THROTTLED"),
        ("2001:db8::200", "", "ALL", "ALL", "ACCEPTED"),
        # an IPv4 entry does not hold the IPv6 address that happens to share its digits
        ("::a01:101", "", "ALL", "ALL", "ACCEPTED"),
        # host names: exact, and .domain for the names below it (not the domain itself)
        ("192.0.2.99", "host.spam.example", "BLOCKED_LIST", ".spam.example", "BLOCKED"),
        ("192.0.2.99", "a.b.spam.example", "BLOCKED_LIST", ".spam.example", "BLOCKED"),
        ("192.0.2.99", "spam.example", "SUSPECTLIST", "spam.example", "THROTTLED"),
        ("192.0.2.99", "notspam.example", "ALL", "ALL", "ACCEPTED"),
        ("192.0.2.99", "MX.Partner.Example.", "ALLOWED_LIST", "mx.partner.example", "TRUSTED"),
        ("192.0.2.99", "", "ALL", "ALL", "ACCEPTED"),  # the same host without its name
        # whichever group comes first wins, address or name
        ("10.1.9.9", "mx.partner.example", "ALLOWED_LIST", "mx.partner.example", "TRUSTED"),
        ("10.1.1.1", "host.spam.example", "ALLOWED_LIST", "10.1.1.1", "TRUSTED"),
        # MONITORED's policy says Continue: the next group that holds the host decides
        ("172.16.3.4", "", "UNKNOWNLIST", "172.16.0.0/12", "ACCEPTED"),
        ("172.20.0.1", "", "UNKNOWNLIST", "172.16.0.0/12", "ACCEPTED"),
        ("192.0.2.99", "relay.partner.example", "UNKNOWNLIST", "relay.partner.example", "ACCEPTED"),
        ("192.0.2.99", "other.partner.example", "ALL", "ALL", "ACCEPTED"),
    ],
)
def test_find_senders_first_match(table, address, hostname, group, entry, policy):
    listener = row()
    with CaptureQueriesContext(connection) as queries:
        finding = hat.find_senders(listener, address, hostname)
    assert (finding.group.name, finding.entry, finding.policy.name) == (group, entry, policy)
    assert len(queries) <= 2


def test_find_senders_says_why(table):
    assert hat.find_senders(row(), "172.16.3.4").reasons == [
        "MONITORED holds 172.16., but its policy MONITOR says Continue",
        "UNKNOWNLIST holds 172.16.0.0/12",
    ]
    assert hat.find_senders(row(), "192.0.2.99", "other.partner.example").reasons == [
        "MONITORED holds .partner.example, but its policy MONITOR says Continue",
        "No other sender group holds it, so ALL does",
    ]
    assert hat.find_senders(row(), "10.1.1.1").reasons == ["ALLOWED_LIST holds 10.1.1.1"]


@pytest.mark.parametrize(
    "address,hostname,message",
    [
        ("10.1.1", "", "'10.1.1' is not an IPv4 or IPv6 address"),
        ("mail.example.com", "", "'mail.example.com' is not an IPv4 or IPv6 address"),
        ("10.1.0.0/16", "", "'10.1.0.0/16' is not an IPv4 or IPv6 address"),
        ("", "", "'' is not an IPv4 or IPv6 address"),
        ("10.1.1.1", ".spam.example", "'.spam.example' is not a host name"),
        ("10.1.1.1", "10.1.1.1", "'10.1.1.1' is not a host name"),
        ("10.1.1.1", "ALL", "'ALL' is not a host name"),
        ("10.1.1.1", "not a name", "'not a name' is not a host name"),
    ],
)
def test_find_senders_refuses_what_is_no_address_or_host_name(table, address, hostname, message):
    with pytest.raises(hat.HatRefused) as refusal:
        hat.find_senders(row(), address, hostname)
    assert str(refusal.value) == message


def test_find_senders_follows_the_candidate(table):
    workflow.submit(table, "move", lambda: hat.save_group(CLUSTER, IN, "BLOCKED_LIST", order=1))
    finding = hat.find_senders(row(), "10.1.1.1")
    assert (finding.group.name, finding.entry) == ("BLOCKED_LIST", "10.1.0.0/16")
    workflow.submit(
        table, "pass", lambda: hat.save_policy(CLUSTER, IN, "BLOCKED", connection_behavior="continue")
    )
    finding = hat.find_senders(row(), "10.1.1.1")
    assert (finding.group.name, finding.policy.name) == ("ALLOWED_LIST", "TRUSTED")


# --- what every listener starts with --------------------------------------------------------


def test_the_shipped_listener_has_the_public_policies_and_groups(admin):
    assert policies() == {
        "ACCEPTED": ("accept", "default", False, ""),
        "BLOCKED": ("reject", "default", False, ""),
        "THROTTLED": ("accept", "default", False, ""),
        "TRUSTED": ("accept", "default", False, ""),
    }
    assert groups() == PUBLIC_GROUPS
    assert listener_item()["default_policy_parameters"] == {
        "tls": "off",
        "tls_verify_client": False,
        "tls_mandatory_address_list": "",
        # The ESA's defaults: 10 MB, 50 recipients per message, 10 messages per connection.
        "max_message_size": 10485760,
        "max_rcpts_per_msg": 50,
        "max_msgs_per_session": 10,
        # Ours, per client address: see listeners.models.DEFAULT_LIMITS.
        "max_concurrency_per_ip": 20,
        "max_connections_per_minute_per_ip": 120,
    }
    assert [g["comment"] for g in listener_item()["sender_group"]][:2] == [
        "Senders you trust",
        "Senders you refuse",
    ]
    # they are in the shipped version, not only in the candidate
    assert workflow.running_config()["listeners"] == registry.read("listeners")
    finding = hat.find_senders(row(), "192.0.2.1", "mail.example.com")
    assert (finding.group.name, finding.policy.name, finding.policy.connection_behavior) == (
        "ALL",
        "ACCEPTED",
        "accept",
    )


def test_a_new_listener_gets_the_predefined_policies_and_groups_of_its_type(admin):
    def create():
        store.create(CLUSTER_MODE, "Relay", "private", "Management", 26)
        store.create(CLUSTER_MODE, "Second", "public", "Management", 27)

    workflow.submit(admin, "listeners", create)
    assert policies("Relay") == {
        "BLOCKED": ("reject", "default", False, ""),
        "RELAYED": ("relay", "default", False, ""),
    }
    assert groups("Relay") == [("RELAYLIST", "RELAYED", []), ("ALL", "BLOCKED", ["ALL"])]
    finding = hat.find_senders(row("Relay"), "10.1.1.1")
    assert (finding.group.name, finding.policy.name, finding.policy.connection_behavior) == (
        "ALL",
        "BLOCKED",
        "reject",
    )
    assert groups("Second") == PUBLIC_GROUPS and set(policies("Second")) == set(policies())
    assert hat.find_senders(row("Second"), "10.1.1.1").policy.name == "ACCEPTED"
    # each listener has its own: changing one leaves the other
    workflow.submit(admin, "add", lambda: hat.add_senders(CLUSTER, "Second", "BLOCKED_LIST", ["10.1.1.1"]))
    assert hat.find_senders(row("Second"), "10.1.1.1").group.name == "BLOCKED_LIST"
    assert hat.find_senders(row(), "10.1.1.1").group.name == "ALL"


def test_with_predefined_fills_only_what_is_missing():
    item = hat.with_predefined({"listener_type": "private", "mail_flow_policy": [], "sender_group": []})
    assert [p["policy_name"] for p in item["mail_flow_policy"]] == ["RELAYED", "BLOCKED"]
    assert [(g["sender_group_name"], g["policy"], g["host"]) for g in item["sender_group"]] == [
        ("RELAYLIST", "RELAYED", []),
        ("ALL", "BLOCKED", ["ALL"]),
    ]
    own = [{"sender_group_name": "ALL", "policy": "OPEN", "comment": "", "host": ["ALL"]}]
    assert hat.with_predefined({"listener_type": "public", "sender_group": own})["sender_group"] == own


# --- mail flow policies: operations and refusals ---------------------------------------------


def test_add_edit_rename_and_delete_a_policy(table):
    workflow.submit(
        table,
        "add",
        lambda: hat.save_policy(
            CLUSTER, IN, "STRICT", connection_behavior="accept", tls="required", create=True
        ),
    )
    assert policies()["STRICT"] == ("accept", "required", False, "")
    workflow.submit(table, "verify", lambda: hat.save_policy(CLUSTER, IN, "STRICT", tls_verify_client=True))
    assert policies()["STRICT"] == ("accept", "required", True, "")
    workflow.submit(table, "rename", lambda: hat.save_policy(CLUSTER, IN, "TRUSTED", new_name="FRIENDS"))
    assert "TRUSTED" not in policies()
    assert policies()["FRIENDS"] == ("accept", "preferred", True, "Partners")
    assert groups()[0][:2] == ("ALLOWED_LIST", "FRIENDS")  # the group follows the new name
    assert hat.find_senders(row(), "10.1.1.1").policy.name == "FRIENDS"
    workflow.submit(table, "delete", lambda: hat.delete_policy(CLUSTER, IN, "STRICT"))
    assert "STRICT" not in policies()


def test_policy_refusals_change_nothing(table):
    cases = [
        (
            lambda: hat.delete_policy(CLUSTER, IN, "TRUSTED"),
            "Policy TRUSTED is used by sender group(s) ALLOWED_LIST: give them another first",
        ),
        (
            lambda: hat.delete_policy(CLUSTER, IN, "ACCEPTED"),
            "Policy ACCEPTED is used by sender group(s) UNKNOWNLIST, ALL: give them another first",
        ),
        (
            lambda: hat.delete_policy(CLUSTER, IN, "NOPE"),
            "Listener IncomingMail has no mail flow policy named 'NOPE'",
        ),
        (
            lambda: hat.save_policy(CLUSTER, IN, "ACCEPTED", create=True),
            "Listener IncomingMail already has a policy named 'ACCEPTED'",
        ),
        (
            lambda: hat.save_policy(CLUSTER, IN, "ACCEPTED", new_name="BLOCKED"),
            "Listener IncomingMail already has a policy named 'BLOCKED'",
        ),
        (
            lambda: hat.save_policy(CLUSTER, IN, "a/b", create=True),
            "The policy name 'a/b' is not a valid name (up to 64 letters, digits, spaces and . _ - @, "
            "starting with a letter or digit)",
        ),
        (
            lambda: hat.save_policy(CLUSTER, IN, "THROTTLED", tls="off", tls_verify_client=True),
            "Verify Client Certificate needs TLS Preferred or Required",
        ),
        (
            lambda: hat.save_policy(CLUSTER, IN, "THROTTLED", tls_mandatory_address_list="Partners"),
            "TLS is Mandatory for Address List applies only with TLS Preferred",
        ),
        (
            lambda: hat.save_policy(
                CLUSTER, IN, "TRUSTED", tls="required"
            ),  # its address list stays: refused
            "TLS is Mandatory for Address List applies only with TLS Preferred",
        ),
        (
            lambda: hat.save_policy(
                CLUSTER, IN, "THROTTLED", tls="preferred", tls_mandatory_address_list="Nope"
            ),
            "There is no address list named 'Nope'",
        ),
        (
            lambda: hat.save_policy(CLUSTER, IN, "ACCEPTED", tls_verify_client=True),
            "With TLS 'Use Default', Verify Client Certificate and TLS is Mandatory for Address List come "
            "from the Default Policy Parameters: leave them unset",
        ),
        (
            lambda: hat.save_policy(CLUSTER, IN, "TRUSTED", tls="default"),
            "With TLS 'Use Default', Verify Client Certificate and TLS is Mandatory for Address List come "
            "from the Default Policy Parameters: leave them unset",
        ),
        (
            lambda: hat.save_policy(CLUSTER, IN, "ACCEPTED", tls="sometimes"),
            "TLS must be one of default, off, preferred, required, not 'sometimes'",
        ),
        (
            lambda: hat.save_policy(CLUSTER, IN, "ACCEPTED", connection_behavior="bounce"),
            "Connection Behavior must be one of accept, relay, reject, tcprefuse, continue, not 'bounce'",
        ),
        (
            lambda: hat.set_default_parameters(CLUSTER, IN, tls="default"),
            "TLS cannot be 'Use Default' in the Default Policy Parameters: give off, preferred or required",
        ),
        (
            lambda: hat.set_default_parameters(CLUSTER, IN, tls="off", tls_verify_client=True),
            "Verify Client Certificate needs TLS Preferred or Required",
        ),
        (
            lambda: hat.set_default_parameters(CLUSTER, IN, tls_mandatory_address_list="Nope"),
            "There is no address list named 'Nope'",
        ),
        (
            lambda: hat.save_policy(CLUSTER, "Outgoing", "ACCEPTED", tls="off"),
            "There is no listener named 'Outgoing'",
        ),
    ]
    for apply, message in cases:
        refuses(table, apply, message)
    assert not workflow.has_uncommitted_changes()


def test_default_parameters_are_what_use_default_stands_for(table):
    item = listener_item()
    by_name = {p["policy_name"]: p for p in item["mail_flow_policy"]}
    assert hat.effective_tls(item, by_name["ACCEPTED"]) == hat.InboundTlsSettings("preferred", False, "")
    assert hat.effective_tls(item, by_name["TRUSTED"]) == hat.InboundTlsSettings(
        "preferred", True, "Partners"
    )
    assert hat.effective_tls(item, by_name["THROTTLED"]) == hat.InboundTlsSettings("required", False, "")

    workflow.submit(
        table,
        "defaults",
        lambda: hat.set_default_parameters(
            CLUSTER, IN, tls="preferred", tls_verify_client=True, tls_mandatory_address_list="Partners"
        ),
    )
    item = listener_item()
    by_name = {p["policy_name"]: p for p in item["mail_flow_policy"]}
    assert hat.effective_tls(item, by_name["ACCEPTED"]) == hat.InboundTlsSettings(
        "preferred", True, "Partners"
    )
    assert hat.effective_tls(item, by_name["BLOCKED"]) == hat.InboundTlsSettings(
        "preferred", True, "Partners"
    )
    assert hat.effective_tls(item, by_name["THROTTLED"]) == hat.InboundTlsSettings("required", False, "")

    workflow.submit(
        table,
        "defaults",
        lambda: hat.set_default_parameters(
            CLUSTER, IN, tls="required", tls_verify_client=False, tls_mandatory_address_list=""
        ),
    )
    item = listener_item()
    by_name = {p["policy_name"]: p for p in item["mail_flow_policy"]}
    assert hat.effective_tls(item, by_name["ACCEPTED"]) == hat.InboundTlsSettings("required", False, "")
    assert hat.effective_tls(item, by_name["TRUSTED"]) == hat.InboundTlsSettings(
        "preferred", True, "Partners"
    )


# --- sender groups: operations and refusals ---------------------------------------------------


def test_add_senders_stores_canonical_entries_at_the_end(admin):
    workflow.submit(
        admin, "add", lambda: hat.add_senders(CLUSTER, IN, "ALLOWED_LIST", ["10.1.1.1", " Mail.Example.COM "])
    )
    workflow.submit(
        admin, "add", lambda: hat.add_senders(CLUSTER, IN, "ALLOWED_LIST", ["2001:DB8::1", "", "10.2."])
    )
    assert groups()[0] == (
        "ALLOWED_LIST",
        "TRUSTED",
        ["10.1.1.1", "mail.example.com", "2001:db8::1", "10.2."],
    )


def test_the_same_entry_in_another_group_is_accepted_with_a_note(admin):
    workflow.submit(admin, "block", lambda: hat.add_senders(CLUSTER, IN, "BLOCKED_LIST", ["10.1.0.0/16"]))
    outcome = workflow.submit(
        admin, "allow", lambda: hat.add_senders(CLUSTER, IN, "ALLOWED_LIST", ["10.1.1.1"])
    )
    assert outcome.notes == [
        "10.1.1.1 overlaps 10.1.0.0/16 in sender group BLOCKED_LIST; ALLOWED_LIST comes first, "
        "so its policy applies where both match"
    ]
    outcome = workflow.submit(
        admin, "same", lambda: hat.add_senders(CLUSTER, IN, "SUSPECTLIST", ["10.1.0.0/16"])
    )
    assert outcome.notes == [
        "10.1.0.0/16 overlaps 10.1.1.1 in sender group ALLOWED_LIST; ALLOWED_LIST comes first, "
        "so its policy applies where both match",
        "10.1.0.0/16 overlaps 10.1.0.0/16 in sender group BLOCKED_LIST; BLOCKED_LIST comes first, "
        "so its policy applies where both match",
    ]
    assert [g[2] for g in groups()[:3]] == [["10.1.1.1"], ["10.1.0.0/16"], ["10.1.0.0/16"]]
    outcome = workflow.submit(
        admin, "apart", lambda: hat.add_senders(CLUSTER, IN, "UNKNOWNLIST", ["10.2.0.0/16"])
    )
    assert outcome.notes == []


def test_a_name_entry_notes_the_names_it_overlaps(admin):
    workflow.submit(admin, "block", lambda: hat.add_senders(CLUSTER, IN, "BLOCKED_LIST", [".spam.example"]))
    outcome = workflow.submit(
        admin, "one", lambda: hat.add_senders(CLUSTER, IN, "ALLOWED_LIST", ["mx.spam.example"])
    )
    assert outcome.notes == [
        "mx.spam.example overlaps .spam.example in sender group BLOCKED_LIST; ALLOWED_LIST comes first, "
        "so its policy applies where both match"
    ]
    # the domain itself is not below .spam.example: no overlap
    outcome = workflow.submit(
        admin, "domain", lambda: hat.add_senders(CLUSTER, IN, "UNKNOWNLIST", ["spam.example"])
    )
    assert outcome.notes == []


def test_a_domain_entry_notes_the_same_domain_entry_in_another_group(admin):
    workflow.submit(admin, "block", lambda: hat.add_senders(CLUSTER, IN, "BLOCKED_LIST", [".spam.example"]))
    outcome = workflow.submit(
        admin, "suspect", lambda: hat.add_senders(CLUSTER, IN, "SUSPECTLIST", [".spam.example"])
    )
    assert outcome.notes == [
        ".spam.example overlaps .spam.example in sender group BLOCKED_LIST; BLOCKED_LIST comes first, "
        "so its policy applies where both match"
    ]


def test_sender_group_refusals_change_nothing(table):
    cases = [
        (
            lambda: hat.add_senders(CLUSTER, IN, "ALLOWED_LIST", ["10.1.1.1"]),
            "Sender group ALLOWED_LIST: the entry '10.1.1.1' is listed twice",
        ),
        (
            lambda: hat.add_senders(CLUSTER, IN, "ALLOWED_LIST", ["2001:db8:0::1"]),
            "Sender group ALLOWED_LIST: the entry '2001:db8::1' is listed twice",
        ),
        (
            lambda: hat.add_senders(CLUSTER, IN, "UNKNOWNLIST", ["10.9.9.9", "10.9.9.9"]),
            "Sender group UNKNOWNLIST: the entry '10.9.9.9' is listed twice",
        ),
        (
            lambda: hat.add_senders(CLUSTER, IN, "ALLOWED_LIST", ["10.9.9.9", "10.1.2.3/16"]),
            "Sender group ALLOWED_LIST: the entry '10.1.2.3/16' has host bits set; did you mean 10.1.0.0/16?",
        ),
        (
            lambda: hat.add_senders(CLUSTER, IN, "ALLOWED_LIST", ["ALL"]),
            "Sender group ALLOWED_LIST: 'ALL' belongs only to the ALL group, which holds nothing else",
        ),
        (
            lambda: hat.add_senders(CLUSTER, IN, "ALL", ["10.9.9.9"]),
            "Sender group ALL holds only the entry ALL, not '10.9.9.9'",
        ),
        (
            lambda: hat.add_senders(CLUSTER, IN, "ALLOWED_LIST", ["", "  "]),
            f"Give at least one sender ({senders.FORMS})",
        ),
        (
            lambda: hat.add_senders(CLUSTER, IN, "NOPE", ["10.9.9.9"]),
            "Listener IncomingMail has no sender group named 'NOPE'",
        ),
        (
            lambda: hat.delete_group(CLUSTER, IN, "ALL"),
            "The ALL sender group cannot be deleted: it holds every host no other group holds",
        ),
        (
            lambda: hat.delete_group(CLUSTER, IN, "NOPE"),
            "Listener IncomingMail has no sender group named 'NOPE'",
        ),
        (
            lambda: hat.save_group(CLUSTER, IN, "ALL", new_name="EVERYONE"),
            "The ALL sender group keeps its name",
        ),
        (
            lambda: hat.save_group(CLUSTER, IN, "UNKNOWNLIST", new_name="ALL"),
            "Listener IncomingMail already has a sender group named 'ALL'",
        ),
        (
            lambda: hat.save_group(CLUSTER, IN, "UNKNOWNLIST", new_name="all"),
            "Listener IncomingMail already has a sender group named 'all'",
        ),
        (
            lambda: hat.save_group(CLUSTER, IN, "UNKNOWNLIST", new_name="BLOCKED_LIST"),
            "Listener IncomingMail already has a sender group named 'BLOCKED_LIST'",
        ),
        (
            lambda: hat.save_group(CLUSTER, IN, "All", policy_name="ACCEPTED", create=True),
            "Listener IncomingMail already has a sender group named 'All'",
        ),
        (
            lambda: hat.save_group(CLUSTER, IN, "NEW", create=True),
            "A sender group needs a mail flow policy",
        ),
        (
            lambda: hat.save_group(CLUSTER, IN, "NEW", policy_name="OPEN", create=True),
            "Listener IncomingMail has no mail flow policy named 'OPEN'",
        ),
        (
            lambda: hat.save_group(CLUSTER, IN, "x/y", policy_name="ACCEPTED", create=True),
            "The sender group name 'x/y' is not a valid name (up to 64 letters, digits, spaces and . _ - @, "
            "starting with a letter or digit)",
        ),
        (lambda: hat.save_group(CLUSTER, IN, "ALL", order=1), "The ALL sender group stays last"),
        (
            lambda: hat.save_group(CLUSTER, IN, "UNKNOWNLIST", order=6),
            "The order must be from 1 to 5 (ALL stays last)",
        ),
        (
            lambda: hat.save_group(CLUSTER, IN, "UNKNOWNLIST", order=0),
            "The order must be from 1 to 5 (ALL stays last)",
        ),
        (
            lambda: hat.remove_senders(CLUSTER, IN, "ALLOWED_LIST", ["10.1.1.1", "10.9.9.9"]),
            "Sender group ALLOWED_LIST does not hold 10.9.9.9",
        ),
        (lambda: hat.remove_senders(CLUSTER, IN, "ALL", ["ALL"]), "The ALL sender group always holds ALL"),
    ]
    for apply, message in cases:
        refuses(table, apply, message)
    assert not workflow.has_uncommitted_changes()


def test_moving_a_group_keeps_all_last(table):
    workflow.submit(table, "move", lambda: hat.save_group(CLUSTER, IN, "UNKNOWNLIST", order=1))
    assert [g[0] for g in groups()] == [
        "UNKNOWNLIST",
        "ALLOWED_LIST",
        "BLOCKED_LIST",
        "SUSPECTLIST",
        "MONITORED",
        "ALL",
    ]
    workflow.submit(table, "move", lambda: hat.save_group(CLUSTER, IN, "ALLOWED_LIST", order=5))
    assert [g[0] for g in groups()] == [
        "UNKNOWNLIST",
        "BLOCKED_LIST",
        "SUSPECTLIST",
        "MONITORED",
        "ALLOWED_LIST",
        "ALL",
    ]
    workflow.submit(
        table,
        "add",
        lambda: hat.save_group(CLUSTER, IN, "LATE", policy_name="BLOCKED", comment=" late ", create=True),
    )
    workflow.submit(
        table,
        "add",
        lambda: hat.save_group(CLUSTER, IN, "EARLY", policy_name="TRUSTED", order=1, create=True),
    )
    assert [g[0] for g in groups()] == [
        "EARLY",
        "UNKNOWNLIST",
        "BLOCKED_LIST",
        "SUSPECTLIST",
        "MONITORED",
        "ALLOWED_LIST",
        "LATE",
        "ALL",
    ]
    assert listener_item()["sender_group"][6]["comment"] == "late"
    workflow.submit(table, "rename", lambda: hat.save_group(CLUSTER, IN, "LATE", new_name="LATER", order=2))
    assert [g[0] for g in groups()][:3] == ["EARLY", "LATER", "UNKNOWNLIST"]
    workflow.submit(table, "delete", lambda: hat.delete_group(CLUSTER, IN, "LATER"))
    workflow.submit(table, "all", lambda: hat.save_group(CLUSTER, IN, "ALL", policy_name="BLOCKED"))
    assert groups()[-1] == ("ALL", "BLOCKED", ["ALL"])
    assert hat.find_senders(row(), "192.0.2.99").policy.name == "BLOCKED"


def test_remove_senders_takes_any_written_form(table):
    workflow.submit(
        table, "remove", lambda: hat.remove_senders(CLUSTER, IN, "ALLOWED_LIST", ["2001:DB8:0::1"])
    )
    assert groups()[0][2] == ["10.1.1.1", "mx.partner.example"]
    assert hat.find_senders(row(), "2001:db8::1").group.name == "ALL"


def test_every_host_gets_a_policy_even_if_all_says_continue(table):
    """ALL is the last group: if its policy may say Continue, there is no next group, and Find Senders
    must still give every host a policy (or the HAT must refuse such a policy for ALL)."""
    try:
        workflow.submit(
            table, "all continues", lambda: hat.save_group(CLUSTER, IN, "ALL", policy_name="MONITOR")
        )
    except hat.HatRefused:
        return
    finding = hat.find_senders(row(), "192.0.2.99")
    assert finding.group.name == "ALL"


# --- the configuration file ------------------------------------------------------------------


def test_the_listeners_section_round_trips_with_its_hat(table):
    candidate = registry.candidate()
    config = {"listeners": candidate["listeners"], "address_lists": candidate["address_lists"]}
    saved = render(config, SecretMode.PLAIN)
    assert (
        "        <mail_flow_policy>\n"
        "          <policy_name>TRUSTED</policy_name>\n"
        "          <connection_behavior>accept</connection_behavior>\n"
        "          <tls>preferred</tls>\n"
        "          <tls_verify_client>1</tls_verify_client>\n"
        "          <tls_mandatory_address_list>Partners</tls_mandatory_address_list>\n"
        "          <max_concurrency_per_ip>100</max_concurrency_per_ip>\n"
        "          <max_connections_per_minute_per_ip>600</max_connections_per_minute_per_ip>\n"
        "        </mail_flow_policy>\n"
        "        <default_policy_parameters>\n"
        "          <tls>preferred</tls>\n"
        "          <tls_verify_client>0</tls_verify_client>\n"
        "          <max_message_size>10485760</max_message_size>\n"
        "          <max_rcpts_per_msg>50</max_rcpts_per_msg>\n"
        "          <max_msgs_per_session>10</max_msgs_per_session>\n"
        "          <max_concurrency_per_ip>20</max_concurrency_per_ip>\n"
        "          <max_connections_per_minute_per_ip>120</max_connections_per_minute_per_ip>\n"
        "        </default_policy_parameters>\n"
        "      </mail_flow_policies>\n"
        "      <hat>\n"
        "        <sender_group>\n"
        "          <sender_group_name>ALLOWED_LIST</sender_group_name>\n"
        "          <policy>TRUSTED</policy>\n"
        "          <comment>Senders you trust</comment>\n"
        "          <host>10.1.1.1</host>\n"
        "          <host>2001:db8::1</host>\n"
        "          <host>mx.partner.example</host>\n"
        "        </sender_group>\n"
    ) in saved
    assert (
        "          <sender_group_name>MONITORED</sender_group_name>\n"
        "          <policy>MONITOR</policy>\n"
        "          <comment>Partners we watch</comment>\n"
        "          <host>172.16.</host>\n"
        "          <host>.partner.example</host>\n"
    ) in saved
    assert saved.count("<mail_flow_policies>") == saved.count("<hat>") == 1
    parsed = parse(saved.encode("latin-1")).config
    assert parsed == config
    assert without_header(render(parsed, SecretMode.PLAIN)) == without_header(saved)

    # a file without the HAT gives the predefined one; loading the saved file brings it all back
    bare = (
        b"<config><listeners><listener><listener_name>IncomingMail</listener_name>"
        b"<listener_type>public</listener_type><interface_name>Management</interface_name>"
        b"<port>2525</port><certificate_name>Demo</certificate_name></listener></listeners></config>"
    )
    workflow.load_document(table, parse(bare), "bare")
    assert groups() == PUBLIC_GROUPS and "MONITOR" not in policies()
    workflow.load_document(table, parse(saved.encode("latin-1")), "saved")
    assert registry.read("listeners") == config["listeners"]
    assert workflow.commit(table, "same again") is None  # nothing differs from the running version
    assert without_header(render({k: workflow.running_config()[k] for k in config}, SecretMode.PLAIN)) == (
        without_header(saved)
    )
    assert hat.find_senders(row(), "172.16.3.4").group.name == "UNKNOWNLIST"


RELAY = [
    "<config>",  # 1
    "<listeners>",
    "<listener>",  # 3
    "<listener_name>Relay</listener_name>",
    "<listener_type>private</listener_type>",  # 5
    "<interface_name>Management</interface_name>",
    "<port>26</port>",  # 7
    "<mail_flow_policies>",
    "<mail_flow_policy>",  # 9
    "<policy_name>RELAYED</policy_name>",
    "<connection_behavior>relay</connection_behavior>",  # 11
    "</mail_flow_policy>",
    "<mail_flow_policy>",  # 13
    "<policy_name>BLOCKED</policy_name>",
    "<connection_behavior>reject</connection_behavior>",  # 15
    "</mail_flow_policy>",
    "<default_policy_parameters>",  # 17
    "<tls>preferred</tls>",
    "</default_policy_parameters>",  # 19
    "</mail_flow_policies>",
    "<hat>",  # 21
    "<sender_group>",
    "<sender_group_name>RELAYLIST</sender_group_name>",  # 23
    "<policy>RELAYED</policy>",
    "<host>10.1.0.0/16</host>",  # 25
    "<host>relay.example.com</host>",
    "</sender_group>",  # 27
    "<sender_group>",
    "<sender_group_name>ALL</sender_group_name>",  # 29
    "<policy>BLOCKED</policy>",
    "<host>ALL</host>",  # 31
    "</sender_group>",
    "</hat>",  # 33
    "</listener>",
    "</listeners>",  # 35
    "</config>",
]


def relay(**lines: str) -> bytes:
    """The Relay listener's document, line N replaced by ``lines['lN']`` (one line for one: the numbers stay)."""
    text = list(RELAY)
    for key, line in lines.items():
        text[int(key[1:]) - 1] = line
    return ("\n".join(text) + "\n").encode("latin-1")


def test_a_listener_document_loads_with_its_policies_and_hat(admin):
    workflow.load_document(admin, parse(relay()), "relay")
    assert policies("Relay") == {
        "BLOCKED": ("reject", "default", False, ""),
        "RELAYED": ("relay", "default", False, ""),
    }
    assert groups("Relay") == [
        ("RELAYLIST", "RELAYED", ["10.1.0.0/16", "relay.example.com"]),
        ("ALL", "BLOCKED", ["ALL"]),
    ]
    assert listener_item("Relay")["default_policy_parameters"]["tls"] == "preferred"
    assert hat.find_senders(row("Relay"), "10.1.2.3").policy.connection_behavior == "relay"


BAD_HATS = [
    (
        {"l24": "<policy>OPEN</policy>"},
        "line 22: <sender_group> Sender group RELAYLIST names policy 'OPEN', which this listener does not have",
    ),
    (
        {"l29": "<sender_group_name>REST</sender_group_name>", "l31": "<host>192.0.2.0/24</host>"},
        "line 28: <sender_group> The last sender group must be ALL (the hosts no other group holds)",
    ),
    (
        {"l26": "<host>ALL</host>"},
        "line 22: <sender_group> Sender group RELAYLIST: 'ALL' belongs only to the ALL group, which holds "
        "nothing else",
    ),
    (
        {"l31": "<host>10.9.9.9</host>"},
        "line 28: <sender_group> Sender group ALL holds only the entry ALL, not '10.9.9.9'",
    ),
    (
        {"l26": "<host>10.1.0.0/16</host>"},
        "line 22: <sender_group> Sender group RELAYLIST: the entry '10.1.0.0/16' is listed twice",
    ),
    (
        {"l18": "<tls>default</tls>"},
        "line 17: <default_policy_parameters> TLS cannot be 'Use Default' in the Default Policy Parameters: "
        "give off, preferred or required",
    ),
    (
        {"l11": "<connection_behavior>relay</connection_behavior><tls_verify_client>1</tls_verify_client>"},
        "line 9: <mail_flow_policy> policy 'RELAYED': With TLS 'Use Default', Verify Client Certificate and "
        "TLS is Mandatory for Address List come from the Default Policy Parameters: leave them unset",
    ),
    (
        {
            "l15": "<connection_behavior>reject</connection_behavior><tls>off</tls><tls_verify_client>1</tls_verify_client>"
        },
        "line 13: <mail_flow_policy> policy 'BLOCKED': Verify Client Certificate needs TLS Preferred or Required",
    ),
]
BAD_HAT_IDS = [
    "unknown-policy",
    "last-not-all",
    "all-in-another-group",
    "other-entry-in-all",
    "duplicate-host",
    "default-parameters-use-default",
    "verify-with-use-default",
    "verify-with-tls-off",
]
BAD_ELEMENTS = [
    (
        {"l25": "<host>10.1.2.3/16</host>"},
        "line 25: <host> '10.1.2.3/16' has host bits set; did you mean 10.1.0.0/16?",
    ),
    (
        {"l26": "<host>Relay.Example.com</host>"},
        "line 26: <host> 'Relay.Example.com' must be written as 'relay.example.com'",
    ),
    (
        {"l26": "<host>SBRS[-10:-3]</host>"},
        f"line 26: <host> 'SBRS[-10:-3]' needs SenderBase reputation, which this appliance does not use; {FORMS}",
    ),
    ({"l26": "<host></host>"}, "line 26: <host> is empty: leave the element out instead"),
    (
        {"l11": "<connection_behavior>maybe</connection_behavior>"},
        "line 11: <connection_behavior> must be one of accept, relay, reject, tcprefuse, continue, not 'maybe'",
    ),
    (
        {"l18": "<tls>sometimes</tls>"},
        "line 18: <tls> must be one of default, off, preferred, required, not 'sometimes'",
    ),
    (
        {"l20": "<default_policy_parameters><tls>off</tls></default_policy_parameters></mail_flow_policies>"},
        "line 20: <default_policy_parameters> appears twice",
    ),
    (
        {"l16": "</mail_flow_policy><rat>accept</rat>"},
        "line 16: <rat> does not belong in <mail_flow_policies> (expected <mail_flow_policy> or "
        "<default_policy_parameters>)",
    ),
    (
        {"l27": "</sender_group><host>10.9.9.9</host>"},
        "line 27: <host> does not belong in <hat> (expected <sender_group>)",
    ),
    ({"l10": "<policy_name>$RELAYED</policy_name>"}, "line 10: <policy_name> '$RELAYED' is not a valid name"),
    ({"l30": "<policy>BLOCKED</policy><policy>RELAYED</policy>"}, "line 30: <policy> appears twice"),
    (
        {"l29": "<sender_group_name>RELAYLIST</sender_group_name>"},
        "line 3: <listener> lists <sender_group> 'RELAYLIST' twice",
    ),
    ({"l24": ""}, "line 22: <sender_group> lacks <policy>"),
]

BAD_ELEMENT_IDS = [
    "cidr-host-bits",
    "name-not-lower-case",
    "sbrs",
    "empty-host",
    "unknown-behavior",
    "unknown-tls",
    "default-parameters-twice",
    "unknown-element-in-policies",
    "host-outside-a-group",
    "bad-policy-name",
    "policy-twice",
    "group-twice",
    "group-without-policy",
]


@pytest.mark.parametrize("lines,problem", BAD_ELEMENTS, ids=BAD_ELEMENT_IDS)
def test_a_bad_element_in_the_hat_or_policies_is_refused_naming_its_line(admin, unchanged, lines, problem):
    with pytest.raises(ConfigFileError) as refusal:
        configfile.load(admin, relay(**lines), None, "bad.xml")
    [found] = refusal.value.problems
    assert found.startswith(problem)
    unchanged()


@pytest.mark.parametrize("lines,problem", BAD_HATS, ids=BAD_HAT_IDS)
def test_a_hat_or_policy_breaking_a_rule_is_refused_in_words(admin, unchanged, lines, problem):
    with pytest.raises(ConfigFileError) as refusal:
        configfile.load(admin, relay(**lines), None, "bad.xml")
    [found] = refusal.value.problems
    # the words; the line is the next test's
    assert found.split(": ", 1)[1] == problem.split(": ", 1)[1]
    unchanged()


@pytest.mark.parametrize("lines,problem", BAD_HATS, ids=BAD_HAT_IDS)
def test_a_hat_or_policy_breaking_a_rule_names_the_line_of_the_element(admin, lines, problem):
    """The line named holds the element named: the <sender_group>, <mail_flow_policy> or
    <default_policy_parameters> at fault, not the <listener> around it."""
    with pytest.raises(ConfigFileError) as refusal:
        parse(relay(**lines))
    assert refusal.value.problems == [problem]


def test_a_second_hat_in_one_listener_is_refused(admin):
    """Like any other setting of a listener, <hat> appears once; two are not silently merged."""
    extra = "</hat><hat><sender_group><sender_group_name>EXTRA</sender_group_name><policy>RELAYED</policy></sender_group>"
    with pytest.raises(ConfigFileError) as refusal:
        parse(relay(l32=f"</sender_group>{extra}"))
    assert refusal.value.problems == ["line 32: <hat> appears twice"]


def test_an_all_group_written_without_its_entry_still_holds_every_host(admin):
    """<sender_group> ALL without <host>ALL</host>: refused, or ALL still holds every host."""
    data = relay(l31="")
    try:
        document = parse(data)
    except ConfigFileError as refusal:
        assert any("ALL" in problem for problem in refusal.problems)
        return
    workflow.load_document(admin, document, "relay")
    finding = hat.find_senders(row("Relay"), "192.0.2.99")
    assert (finding.group.name, finding.policy.name) == ("ALL", "BLOCKED")


def test_a_partial_document_with_only_listeners_loads_and_gets_predefined_policies(admin):
    other_sections = {tag: items for tag, items in registry.candidate().items() if tag != "listeners"}
    document = parse(
        b"<config><listeners>"
        b"<listener><listener_name>Relay</listener_name><listener_type>private</listener_type>"
        b"<interface_name>Management</interface_name><port>26</port></listener>"
        b"<listener><listener_name>Public</listener_name><listener_type>public</listener_type>"
        b"<interface_name>Management</interface_name><port>27</port>"
        b"<mail_flow_policies><default_policy_parameters><tls>required</tls></default_policy_parameters>"
        b"</mail_flow_policies></listener>"
        b"</listeners></config>"
    )
    workflow.load_document(admin, document, "partial")
    assert [item["listener_name"] for item in registry.read("listeners")] == ["Public", "Relay"]
    assert groups("Relay") == [("RELAYLIST", "RELAYED", []), ("ALL", "BLOCKED", ["ALL"])]
    assert set(policies("Relay")) == {"RELAYED", "BLOCKED"}
    assert groups("Public") == PUBLIC_GROUPS
    assert listener_item("Public")["default_policy_parameters"]["tls"] == "required"
    assert listener_item("Relay")["default_policy_parameters"]["tls"] == "off"
    assert {tag: items for tag, items in registry.candidate().items() if tag != "listeners"} == other_sections
    assert workflow.commit(admin, "partial") is not None


def test_a_policy_naming_a_missing_address_list_is_refused_at_load(admin, unchanged):
    policy = "<connection_behavior>relay</connection_behavior><tls>preferred</tls>"
    data = relay(l11=policy + "<tls_mandatory_address_list>Partners</tls_mandatory_address_list>")
    with pytest.raises(workflow.ChangeRefused, match="^The configuration cannot be loaded$") as refusal:
        workflow.load_document(admin, parse(data), "relay")
    assert refusal.value.problems == [
        "listener 'Relay': mail flow policy 'RELAYED' uses address list 'Partners', which does not exist"
    ]
    data = relay(l18="<tls>preferred</tls><tls_mandatory_address_list>Partners</tls_mandatory_address_list>")
    with pytest.raises(workflow.ChangeRefused) as refusal:
        workflow.load_document(admin, parse(data), "relay")
    assert refusal.value.problems == [
        "listener 'Relay': Default Policy Parameters uses address list 'Partners', which does not exist"
    ]
    unchanged()
    # with the list in the same file, it loads
    with_list = data.replace(
        b"</config>",
        b"<address_lists><address_list><address_list_name>Partners</address_list_name>"
        b"<address>partner.example</address></address_list></address_lists></config>",
    )
    workflow.load_document(admin, parse(with_list), "relay")
    assert listener_item("Relay")["default_policy_parameters"]["tls_mandatory_address_list"] == "Partners"


def test_a_policy_naming_a_missing_address_list_is_refused_at_commit(table):
    workflow.submit(table, "gone", lambda: AddressList.objects.filter(name="Partners").delete())
    with pytest.raises(workflow.ChangeRefused, match="^The changes cannot be committed$") as refusal:
        workflow.commit(table, "gone")
    assert refusal.value.problems == [
        "listener 'IncomingMail': mail flow policy 'TRUSTED' uses address list 'Partners', which does not exist"
    ]
    assert ConfigVersion.objects.count() == 2


def test_an_address_list_in_use_cannot_be_deleted_and_a_rename_follows(table):
    workflow.submit(
        table,
        "defaults",
        lambda: hat.set_default_parameters(
            CLUSTER, IN, tls="preferred", tls_mandatory_address_list="Partners"
        ),
    )
    refuses(
        table,
        lambda: address_lists.delete("Partners"),
        "'Partners' cannot be deleted while it is used by listener 'IncomingMail': mail flow policy 'TRUSTED' "
        "(TLS is Mandatory for Address List), listener 'IncomingMail': Default Policy Parameters "
        "(TLS is Mandatory for Address List)",
    )
    workflow.submit(table, "rename", lambda: address_lists.edit("Partners", new_name="Friends"))
    assert policies()["TRUSTED"] == ("accept", "preferred", True, "Friends")
    assert listener_item()["default_policy_parameters"]["tls_mandatory_address_list"] == "Friends"
    assert workflow.commit(table, "renamed") is not None
    # unused again: it may go
    workflow.submit(
        table,
        "unuse",
        lambda: (
            hat.save_policy(CLUSTER, IN, "TRUSTED", tls_mandatory_address_list=""),
            hat.set_default_parameters(CLUSTER, IN, tls_mandatory_address_list=""),
        ),
    )
    workflow.submit(table, "delete", lambda: address_lists.delete("Friends"))
    assert not AddressList.objects.exists()


# --- Uncommitted Changes ---------------------------------------------------------------------------


def test_the_diff_names_the_sender_group_and_the_default_parameters(table, login):
    def apply():
        hat.add_senders(CLUSTER, IN, "ALLOWED_LIST", ["192.0.2.1"])
        hat.set_default_parameters(CLUSTER, IN, tls="required")

    workflow.submit(table, "change", apply)
    [section] = workflow.pending_changes()
    assert section.title == "Listeners"
    changes = {change.name: change for change in section.objects}
    assert set(changes) == {"listener 'IncomingMail'", "listener 'IncomingMail': sender group 'ALLOWED_LIST'"}
    [field] = changes["listener 'IncomingMail'"].fields
    assert (field.label, field.before, field.after) == (
        "Default Policy Parameters: TLS",
        "Preferred",
        "Required",
    )
    group_change = changes["listener 'IncomingMail': sender group 'ALLOWED_LIST'"]
    [field] = group_change.fields
    assert group_change.action == "changed"
    assert (field.label, field.before, field.after) == (
        "Senders",
        "10.1.1.1; 2001:db8::1; mx.partner.example",
        "10.1.1.1; 2001:db8::1; mx.partner.example; 192.0.2.1",
    )
    page = login(table).get(reverse("uncommitted_changes")).content.decode()
    assert "listener &#x27;IncomingMail&#x27;: sender group &#x27;ALLOWED_LIST&#x27;" in page
    assert "Default Policy Parameters: TLS" in page


def test_the_diff_shows_added_and_deleted_groups_and_policies(table):
    def apply():
        hat.save_policy(CLUSTER, IN, "STRICT", tls="required", create=True)
        hat.save_group(CLUSTER, IN, "PARTNERS", policy_name="STRICT", create=True)
        hat.delete_group(CLUSTER, IN, "SUSPECTLIST")

    workflow.submit(table, "change", apply)
    [section] = workflow.pending_changes()
    actions = {change.name: change.action for change in section.objects}
    assert actions == {
        "listener 'IncomingMail': mail flow policy 'STRICT'": "added",
        "listener 'IncomingMail': sender group 'PARTNERS'": "added",
        "listener 'IncomingMail': sender group 'SUSPECTLIST'": "deleted",
    }


def test_moving_a_group_is_an_uncommitted_change(table):
    workflow.submit(table, "move", lambda: hat.save_group(CLUSTER, IN, "SUSPECTLIST", order=1))
    assert workflow.has_uncommitted_changes()
    [section] = workflow.pending_changes()
    [change] = section.objects
    [field] = change.fields
    assert change.name.startswith("listener 'IncomingMail'")
    assert field.label == "Order"
    assert field.after == "SUSPECTLIST, ALLOWED_LIST, BLOCKED_LIST, MONITORED, UNKNOWNLIST, ALL"
    workflow.submit(table, "back", lambda: hat.save_group(CLUSTER, IN, "SUSPECTLIST", order=3))
    assert not workflow.has_uncommitted_changes()  # back where the running configuration is


# --- Import HAT / Export HAT ------------------------------------------------------------------


def test_export_then_import_gives_the_same_hat(table):
    exported = hatfile.format_hat(IN, listener_item()["sender_group"])
    assert exported.startswith("# HAT of listener IncomingMail: sender groups in order")
    assert (
        "ALLOWED_LIST $TRUSTED # Senders you trust\n    10.1.1.1\n    2001:db8::1\n    mx.partner.example\n"
        in exported
    )
    assert exported.endswith(
        "UNKNOWNLIST $ACCEPTED # Senders accepted as any other\n"
        "    172.16.0.0/12\n    relay.partner.example\nALL $ACCEPTED\n"
    )
    assert hatfile.parse_hat(exported) == listener_item()["sender_group"]
    before = registry.candidate()
    workflow.submit(table, "import", lambda: hat.replace_hat(CLUSTER, IN, hatfile.parse_hat(exported)))
    assert registry.candidate() == before
    assert not workflow.has_uncommitted_changes()


def test_import_replaces_the_groups_and_keeps_the_policies(table):
    text = (
        "# partners first\n"
        "\n"
        "PARTNERS $TRUSTED # Our partners  \n"
        "    10.9.0.0/16   # their network\n"
        "\t.Partner.Example\n"
        "ALL $BLOCKED\n"
    )
    workflow.submit(table, "import", lambda: hat.replace_hat(CLUSTER, IN, hatfile.parse_hat(text)))
    assert groups() == [
        ("PARTNERS", "TRUSTED", ["10.9.0.0/16", ".partner.example"]),
        ("ALL", "BLOCKED", ["ALL"]),
    ]
    assert listener_item()["sender_group"][0]["comment"] == "Our partners"
    assert "MONITOR" in policies()
    assert hat.find_senders(row(), "10.9.1.1").group.name == "PARTNERS"
    assert hat.find_senders(row(), "10.1.1.1").policy.name == "BLOCKED"


def test_a_group_name_with_a_space_survives_export_and_import(table):
    workflow.submit(
        table, "add", lambda: hat.save_group(CLUSTER, IN, "Partner Hosts", policy_name="TRUSTED", create=True)
    )
    exported = hatfile.format_hat(IN, listener_item()["sender_group"])
    assert hatfile.parse_hat(exported) == listener_item()["sender_group"]


@pytest.mark.parametrize(
    "text,problems",
    [
        ("    10.1.1.1\nALL $ACCEPTED\n", ["line 1: a sender before any group line (NAME $POLICY)"]),
        (
            "ALLOWED_LIST TRUSTED\nALL $ACCEPTED\n",
            [
                "line 1: 'ALLOWED_LIST TRUSTED' is not a group line: give NAME $POLICY, optionally followed by "
                "# comment"
            ],
        ),
        (
            "ALLOWED_LIST $\nALL $ACCEPTED\n",
            [
                "line 1: 'ALLOWED_LIST $' is not a group line: give NAME $POLICY, optionally followed by # comment"
            ],
        ),
        (
            "# a comment\nALLOWED_LIST $TRUSTED\n    10.1.2.3/16\nALL $ACCEPTED\n",
            ["line 3: the entry '10.1.2.3/16' has host bits set; did you mean 10.1.0.0/16?"],
        ),
        (
            "ALLOWED_LIST $TRUSTED\n    10.1.1.1\n    10.1.1.1\nALL $ACCEPTED\n",
            ["line 3: the entry '10.1.1.1' is listed twice in ALLOWED_LIST"],
        ),
        (
            "ALLOWED_LIST $TRUSTED\nALL $ACCEPTED\n    10.1.1.1\n",
            [
                "line 3: the ALL group holds every host by itself: list no senders under it, and ALL under no "
                "other group"
            ],
        ),
        (
            "ALLOWED_LIST $TRUSTED\n    ALL\nALL $ACCEPTED\n",
            [
                "line 2: the ALL group holds every host by itself: list no senders under it, and ALL under no "
                "other group"
            ],
        ),
        (
            "ALLOWED_LIST $TRUSTED\nALLOWED_LIST $BLOCKED\nALL $ACCEPTED\n",
            ["line 2: the sender group ALLOWED_LIST appears twice"],
        ),
        (
            "    1.1.1.1\nA $X\n    10.1\n    10.1.1.1\n    10.1.1.1\n",
            [
                "line 1: a sender before any group line (NAME $POLICY)",
                f"line 3: the entry '10.1' is not a sender entry; {FORMS}",
                "line 5: the entry '10.1.1.1' is listed twice in A",
            ],
        ),
    ],
)
def test_import_refuses_bad_lines_naming_them(text, problems):
    with pytest.raises(hat.HatRefused) as refusal:
        hatfile.parse_hat(text)
    assert str(refusal.value) == "The HAT cannot be imported"
    assert refusal.value.problems == problems


def test_import_stops_listing_after_twenty_problems():
    text = "A $X\n" + "".join(f"    bad{i}\n" for i in range(30))
    with pytest.raises(hat.HatRefused) as refusal:
        hatfile.parse_hat(text)
    assert len(refusal.value.problems) == 21
    assert refusal.value.problems[0].startswith("line 2: the entry 'bad0' is not a sender entry")
    assert refusal.value.problems[-1] == "… and perhaps more; correct these first"


def test_import_refuses_a_hat_breaking_the_rules_and_changes_nothing(table):
    cases = [
        (
            "PARTNERS $TRUSTED\n    10.9.9.9\n",
            ["The last sender group must be ALL (the hosts no other group holds)"],
        ),
        (
            "PARTNERS $OPEN\n    10.9.9.9\nALL $ACCEPTED\n",
            ["Sender group PARTNERS names policy 'OPEN', which this listener does not have"],
        ),
        (
            "ALL $ACCEPTED\nPARTNERS $TRUSTED\n",
            ["The last sender group must be ALL (the hosts no other group holds)"],
        ),
        ("# nothing\n", ["The HAT has no sender groups: it needs at least the ALL group"]),
    ]
    for text, problems in cases:
        refuses(
            table,
            lambda text=text: hat.replace_hat(CLUSTER, IN, hatfile.parse_hat(text)),
            "The HAT cannot be imported",
            problems,
        )
    assert not workflow.has_uncommitted_changes()


# --- a long HAT --------------------------------------------------------------------------------


def many(count: int) -> list[str]:
    return [f"10.{i // 256}.{i % 256}.1" for i in range(count)]


def test_reading_the_listeners_takes_the_same_few_queries_with_5000_entries(
    admin, django_assert_max_num_queries
):
    with CaptureQueriesContext(connection) as small:
        registry.read("listeners")
    workflow.submit(admin, "many", lambda: hat.add_senders(CLUSTER, IN, "BLOCKED_LIST", many(5000)))
    workflow.submit(admin, "relay", lambda: store.create(CLUSTER_MODE, "Relay", "private", "Management", 26))
    workflow.submit(admin, "more", lambda: hat.add_senders(CLUSTER, "Relay", "RELAYLIST", many(300)))
    with django_assert_max_num_queries(5) as large:
        items = registry.read("listeners")
    assert len(large) == len(small)  # as many as with the empty predefined HAT
    assert len(groups()[1][2]) == 5000 and groups()[1][2][-1] == "10.19.135.1"
    assert len(items) == 2


def test_find_senders_takes_the_same_few_queries_with_5000_entries(admin, django_assert_max_num_queries):
    workflow.submit(admin, "many", lambda: hat.add_senders(CLUSTER, IN, "BLOCKED_LIST", many(5000)))
    workflow.submit(
        admin,
        "names",
        lambda: hat.add_senders(CLUSTER, IN, "SUSPECTLIST", [f"mx{i}.example.net" for i in range(5000)]),
    )
    listener = row()
    with django_assert_max_num_queries(2):
        finding = hat.find_senders(listener, "10.19.135.1")
    assert (finding.group.name, finding.entry) == ("BLOCKED_LIST", "10.19.135.1")
    with django_assert_max_num_queries(2):
        finding = hat.find_senders(listener, "10.19.135.2", "mx4999.example.net")
    assert (finding.group.name, finding.entry) == ("SUSPECTLIST", "mx4999.example.net")
    with django_assert_max_num_queries(2):
        assert hat.find_senders(listener, "10.20.0.1", "mx5000.example.net").group.name == "ALL"
