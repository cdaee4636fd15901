"""listenerconfig edit NAME hostaccess: mail flow policies and the HAT from the console."""

from __future__ import annotations

import io
import subprocess

import pytest
from django.core.management.base import CommandError

from appliance import workflow
from appliance.models import AuditEvent
from listeners import address_lists
from tests import test_console
from tests.console import refused, run
from tests.listener_fixtures import listeners, unchanged_fixture  # noqa: F401 (fixture)
from tests.test_console import manage

data_dir = test_console.data_dir  # a fresh appliance in its own data directory

HAT = ("listenerconfig", "edit", "IncomingMail", "hostaccess")


SHIPPED_LIMITS = {
    "max_message_size": 10485760,
    "max_rcpts_per_msg": 50,
    "max_msgs_per_session": 10,
    "max_concurrency_per_ip": 20,
    "max_connections_per_minute_per_ip": 120,
}
DEFAULT_LIMIT_COLUMNS = "10485760 (Default)\t50 (Default)\t10 (Default)"
PER_IP_COLUMNS = {
    name: "\t".join(f"{value}{' (Default)' if name in ('ACCEPTED', 'BLOCKED') else ''}" for value in values)
    for name, values in {
        "ACCEPTED": (20, 120),
        "BLOCKED": (20, 120),
        "THROTTLED": (10, 60),
        "TRUSTED": (100, 600),
    }.items()
}


def hat() -> list[tuple[str, str, list[str]]]:
    """The candidate HAT of IncomingMail: (group, policy, senders) in order."""
    item = listeners()[0]
    return [(group["sender_group_name"], group["policy"], group["host"]) for group in item["sender_group"]]


def policies() -> dict[str, tuple]:
    """The candidate policies of IncomingMail: name -> (behaviour, TLS, verify, address list)."""
    return {
        policy["policy_name"]: (
            policy["connection_behavior"],
            policy["tls"],
            policy["tls_verify_client"],
            policy["tls_mandatory_address_list"],
        )
        for policy in listeners()[0]["mail_flow_policy"]
    }


def defaults() -> dict:
    return listeners()[0]["default_policy_parameters"]


def stage_address_list(user, name="TLSMandatory"):
    workflow.submit(user, "add", lambda: address_lists.create(name, ["partner.example"], ""))


def stage_partners(*more: str):
    run(*HAT, "new", "sendergroup", "PARTNERS", "--policy", "TRUSTED", "--senders", "10.1.1.0/24", *more)


# --- print ----------------------------------------------------------------------------


def test_print_shows_policies_with_effective_tls_defaults_and_the_hat(admin):
    stage_address_list(admin)
    stage_partners(".partner.example", "--comment", "Partner MTAs")
    run(*HAT, "default", "--tls", "preferred", "--tls-address-list", "TLSMandatory")
    run(*HAT, "edit", "policy", "TRUSTED", "--tls", "required", "--verify-client", "yes")
    out, err = run(*HAT, "print")
    assert err == ""
    assert out.splitlines() == [
        "Mail Flow Policies of listener IncomingMail",
        "Policy\tConnection Behavior\tTLS\tVerify Client Certificate\t"
        "TLS is Mandatory for Address List\tMax. Message Size (bytes)\tMax. Recipients Per Message\t"
        "Max. Messages Per Connection\tMax. Concurrent Connections From a Single IP\t"
        "Max. Connections Per Minute From a Single IP\tSender Groups",
        "ACCEPTED\tAccept\tPreferred (Default)\tNo (Default)\tTLSMandatory (Default)\t"
        f"{DEFAULT_LIMIT_COLUMNS}\t{PER_IP_COLUMNS['ACCEPTED']}\tUNKNOWNLIST, ALL",
        "BLOCKED\tReject\tPreferred (Default)\tNo (Default)\tTLSMandatory (Default)\t"
        f"{DEFAULT_LIMIT_COLUMNS}\t{PER_IP_COLUMNS['BLOCKED']}\tBLOCKED_LIST",
        "THROTTLED\tAccept\tPreferred (Default)\tNo (Default)\tTLSMandatory (Default)\t"
        f"{DEFAULT_LIMIT_COLUMNS}\t{PER_IP_COLUMNS['THROTTLED']}\tSUSPECTLIST",
        f"TRUSTED\tAccept\tRequired\tYes\t-\t{DEFAULT_LIMIT_COLUMNS}\t{PER_IP_COLUMNS['TRUSTED']}\t"
        "ALLOWED_LIST, PARTNERS",
        "",
        "Default Policy Parameters",
        "TLS: Preferred",
        "Verify Client Certificate: No",
        "TLS is Mandatory for Address List: TLSMandatory",
        "Max. Message Size (bytes): 10485760",
        "Max. Recipients Per Message: 50",
        "Max. Messages Per Connection: 10",
        "Max. Concurrent Connections From a Single IP: 20",
        "Max. Connections Per Minute From a Single IP: 120",
        "",
        "Host Access Table: the first sender group that holds a host decides its policy",
        "1. ALLOWED_LIST: policy TRUSTED (Senders you trust)",
        "     (no senders)",
        "2. BLOCKED_LIST: policy BLOCKED (Senders you refuse)",
        "     (no senders)",
        "3. SUSPECTLIST: policy THROTTLED (Suspicious senders)",
        "     (no senders)",
        "4. UNKNOWNLIST: policy ACCEPTED (Senders accepted as any other)",
        "     (no senders)",
        "5. PARTNERS: policy TRUSTED (Partner MTAs)",
        "     10.1.1.0/24",
        "     .partner.example",
        "6. ALL: policy ACCEPTED",
        "     ALL",
    ]


# --- sender groups -------------------------------------------------------------------


def test_new_sendergroup_adds_it_before_all_or_at_its_order(admin):
    out, err = run(*HAT, "new", "sendergroup", "PARTNERS", "--policy", "TRUSTED", "--senders", "10.1.1.0/24")
    assert (out, err) == (
        "Sender group PARTNERS added to listener IncomingMail. Use commit to apply it.\n",
        "",
    )
    assert hat()[-2:] == [("PARTNERS", "TRUSTED", ["10.1.1.0/24"]), ("ALL", "ACCEPTED", ["ALL"])]
    run(*HAT, "new", "sendergroup", "FIRST", "--policy", "$BLOCKED", "--order", "1", "--comment", "Spammers")
    assert hat()[0] == ("FIRST", "BLOCKED", [])
    assert listeners()[0]["sender_group"][0]["comment"] == "Spammers"
    assert workflow.lock_state().owner_name == "admin"
    assert AuditEvent.objects.filter(
        source="CLI", detail="added sender group FIRST to listener IncomingMail"
    ).exists()


def test_adding_senders_another_group_holds_says_which_group_wins(admin):
    stage_partners()
    out, err = run(*HAT, "edit", "sendergroup", "ALLOWED_LIST", "--add", "10.1.1.5", "mail.example.com")
    assert out.splitlines() == [
        "Sender group ALLOWED_LIST of listener IncomingMail changed. Use commit to apply it.",
        "10.1.1.5 overlaps 10.1.1.0/24 in sender group PARTNERS; ALLOWED_LIST comes first, "
        "so its policy applies where both match",
    ]
    assert err == ""
    assert hat()[0] == ("ALLOWED_LIST", "TRUSTED", ["10.1.1.5", "mail.example.com"])


def test_edit_sendergroup_renames_changes_policy_comment_and_senders(admin):
    stage_partners("10.2.0.0/16")
    out, _ = run(
        *HAT, "edit", "sendergroup", "PARTNERS", "--new-name", "RELAYS", "--policy", "THROTTLED",
        "--comment", "Relays", "--remove", "10.1.1.0/24", "--add", "2001:DB8::/32", "relay.example.org",
    )  # fmt: skip
    assert out == "Sender group RELAYS of listener IncomingMail changed. Use commit to apply it.\n"
    assert hat()[-2] == ("RELAYS", "THROTTLED", ["10.2.0.0/16", "2001:db8::/32", "relay.example.org"])
    assert listeners()[0]["sender_group"][-2]["comment"] == "Relays"


def test_delete_and_move_sendergroups(admin):
    stage_partners()
    assert run(*HAT, "move", "PARTNERS", "2") == (
        "Sender group PARTNERS of listener IncomingMail moved to position 2. Use commit to apply it.\n",
        "",
    )
    assert [name for name, _, _ in hat()] == [
        "ALLOWED_LIST", "PARTNERS", "BLOCKED_LIST", "SUSPECTLIST", "UNKNOWNLIST", "ALL",
    ]  # fmt: skip
    assert run(*HAT, "delete", "sendergroup", "BLOCKED_LIST") == (
        "Sender group BLOCKED_LIST of listener IncomingMail deleted. Use commit to apply it.\n",
        "",
    )
    assert [name for name, _, _ in hat()] == ["ALLOWED_LIST", "PARTNERS", "SUSPECTLIST", "UNKNOWNLIST", "ALL"]


# --- policies and the Default Policy Parameters -----------------------------------------


def test_new_and_edit_policy(admin):
    stage_address_list(admin)
    out, err = run(
        *HAT, "new", "policy", "PARTNER", "--behavior", "accept", "--tls", "preferred",
        "--verify-client", "yes", "--tls-address-list", "TLSMandatory",
    )  # fmt: skip
    assert (out, err) == (
        "Mail flow policy PARTNER added to listener IncomingMail. Use commit to apply it.\n",
        "",
    )
    assert policies()["PARTNER"] == ("accept", "preferred", True, "TLSMandatory")
    run(*HAT, "new", "policy", "PASS", "--behavior", "continue")
    assert policies()["PASS"] == ("continue", "default", False, "")
    run(*HAT, "new", "sendergroup", "PARTNERS", "--policy", "PARTNER")
    out, _ = run(
        *HAT, "edit", "policy", "PARTNER", "--new-name", "PARTNERS", "--tls", "required",
        "--tls-address-list", "",
    )  # fmt: skip
    assert out == "Mail flow policy PARTNERS of listener IncomingMail changed. Use commit to apply it.\n"
    assert policies()["PARTNERS"] == ("accept", "required", True, "")
    assert "PARTNER" not in policies()
    assert hat()[-2] == ("PARTNERS", "PARTNERS", [])  # the group follows the rename


def test_delete_policy_no_group_uses(admin):
    run(*HAT, "new", "policy", "SPARE", "--behavior", "tcprefuse")
    assert run(*HAT, "delete", "policy", "SPARE") == (
        "Mail flow policy SPARE of listener IncomingMail deleted. Use commit to apply it.\n",
        "",
    )
    assert "SPARE" not in policies()


def test_default_sets_the_default_policy_parameters(admin):
    stage_address_list(admin)
    assert run(*HAT, "default", "--tls", "preferred", "--verify-client", "yes") == (
        "Default Policy Parameters of listener IncomingMail changed. Use commit to apply them.\n",
        "",
    )
    assert defaults() == {
        "tls": "preferred",
        "tls_verify_client": True,
        "tls_mandatory_address_list": "",
        **SHIPPED_LIMITS,
    }
    run(*HAT, "default", "--tls-address-list", "TLSMandatory")
    run(*HAT, "default", "--tls-address-list", "", "--verify-client", "no", "--tls", "required")
    assert defaults() == {
        "tls": "required",
        "tls_verify_client": False,
        "tls_mandatory_address_list": "",
        **SHIPPED_LIMITS,
    }


# --- refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,message",
    [
        (("edit", "sendergroup", "NOPE", "--comment", "x"),
         "Listener IncomingMail has no sender group named 'NOPE'"),
        (("new", "sendergroup", "X", "--policy", "NOPE"),
         "Listener IncomingMail has no mail flow policy named 'NOPE'"),
        (("edit", "policy", "NOPE", "--behavior", "reject"),
         "Listener IncomingMail has no mail flow policy named 'NOPE'"),
        (("new", "sendergroup", "ALLOWED_LIST", "--policy", "TRUSTED"),
         "Listener IncomingMail already has a sender group named 'ALLOWED_LIST'"),
        (("new", "policy", "TRUSTED", "--behavior", "accept"),
         "Listener IncomingMail already has a policy named 'TRUSTED'"),
        (("edit", "sendergroup", "PARTNERS", "--add", "10.1.1.0/24"),
         "Sender group PARTNERS: the entry '10.1.1.0/24' is listed twice"),
        (("new", "sendergroup", "X", "--policy", "TRUSTED", "--senders", "10.3.0.0/16", "10.3.0.0/16"),
         "Sender group X: the entry '10.3.0.0/16' is listed twice"),
        (("edit", "sendergroup", "PARTNERS", "--add", "10.1.2.3/16"),
         "Sender group PARTNERS: the entry '10.1.2.3/16' has host bits set; did you mean 10.1.0.0/16?"),
        (("edit", "sendergroup", "PARTNERS", "--remove", "10.9.9.9"),
         "Sender group PARTNERS does not hold 10.9.9.9"),
        (("delete", "sendergroup", "ALL"),
         "The ALL sender group cannot be deleted: it holds every host no other group holds"),
        (("move", "ALL", "1"), "The ALL sender group stays last"),
        (("move", "PARTNERS", "9"), "The order must be from 1 to 5 (ALL stays last)"),
        (("delete", "policy", "TRUSTED"),
         "Policy TRUSTED is used by sender group(s) ALLOWED_LIST, PARTNERS: give them another first"),
        (("new", "policy", "X", "--behavior", "accept", "--tls", "off", "--verify-client", "yes"),
         "Verify Client Certificate needs TLS Preferred or Required"),
        (("edit", "policy", "TRUSTED", "--verify-client", "yes"),
         "With TLS 'Use Default', Verify Client Certificate and TLS is Mandatory for Address List come "
         "from the Default Policy Parameters: leave them unset"),
        (("default", "--verify-client", "yes"), "Verify Client Certificate needs TLS Preferred or Required"),
        (("new", "policy", "X", "--behavior", "accept", "--tls", "preferred", "--tls-address-list", "Nope"),
         "There is no address list named 'Nope'"),
        (("default", "--tls", "preferred", "--tls-address-list", "Nope"),
         "There is no address list named 'Nope'"),
        (("find", "10.1.1"), "'10.1.1' is not an IPv4 or IPv6 address"),
        (("find", "10.1.1.1", "--hostname", ".example.com"), "'.example.com' is not a host name"),
    ],
)  # fmt: skip
def test_refusals_exit_1_and_change_nothing(admin, args, message):
    stage_partners()
    before = hat(), policies(), defaults()
    assert refused(*HAT, *args) == f"Error: {message}"
    assert (hat(), policies(), defaults()) == before


@pytest.mark.parametrize(
    "args",
    [
        ("print",),
        ("export",),
        ("find", "10.1.1.1"),
        ("new", "sendergroup", "X", "--policy", "TRUSTED"),
        ("delete", "policy", "TRUSTED"),
        ("default", "--tls", "off"),
    ],
)
def test_an_unknown_listener_is_named(admin, unchanged, args):
    assert refused("listenerconfig", "edit", "Outgoing", "hostaccess", *args) == (
        "Error: There is no listener named 'Outgoing'"
    )
    unchanged()
    assert not workflow.has_uncommitted_changes()


@pytest.mark.parametrize(
    "args",
    [
        ("edit", "sendergroup", "ALLOWED_LIST"),  # nothing to change
        ("edit", "policy", "TRUSTED"),
        ("default",),
        ("new", "policy", "X"),  # --behavior is required
        ("new", "policy", "X", "--behavior", "deliver"),
        ("default", "--tls", "default"),  # not a choice of the Default Policy Parameters
        ("move", "PARTNERS", "first"),
        ("delete", "group", "X"),
        ("frobnicate",),
    ],
)
def test_usage_errors(admin, unchanged, args):
    # In process the parser raises CommandError (or the command exits 1 with it); from a shell
    # each is exit 2 with the usage: test_real_exit_statuses_and_streams.
    with pytest.raises((CommandError, SystemExit)):
        run(*HAT, *args)
    unchanged()


def test_listener_settings_and_hostaccess_are_not_mixed(admin, unchanged):
    line = refused("listenerconfig", "edit", "IncomingMail", "--port", "26", "hostaccess", "print")
    assert line == "Error: give the listener's settings or hostaccess, not both: they are separate changes"
    unchanged()


# --- import and export ----------------------------------------------------------------


def test_export_then_import_gives_the_same_hat(admin, tmp_path):
    stage_partners(".partner.example", "2001:db8::1-2001:db8::ff", "--comment", "Partner MTAs # and relays")
    run(*HAT, "edit", "sendergroup", "ALLOWED_LIST", "--add", "10.1.1.5", "mail.example.com")
    run(*HAT, "edit", "sendergroup", "ALL", "--comment", "Everyone else")
    exported = hat(), [group["comment"] for group in listeners()[0]["sender_group"]]
    path = tmp_path / "hat.txt"
    assert run(*HAT, "export", str(path)) == (
        f"Exported the HAT of listener IncomingMail (6 sender groups, 5 senders) to {path}\n",
        "",
    )
    assert run(*HAT, "export")[0] == path.read_text()
    run(*HAT, "delete", "sendergroup", "PARTNERS")
    run(*HAT, "edit", "sendergroup", "ALLOWED_LIST", "--remove", "10.1.1.5")
    assert run(*HAT, "import", str(path)) == (
        "HAT of listener IncomingMail imported. Use commit to apply it.\n"
        "Imported 6 sender groups, 5 senders.\n",
        "",
    )
    assert (hat(), [group["comment"] for group in listeners()[0]["sender_group"]]) == exported
    assert AuditEvent.objects.filter(detail="imported the HAT of listener IncomingMail from hat.txt").exists()


def test_import_from_standard_input(admin, monkeypatch):
    text = "# partners first\nPARTNERS $TRUSTED # Partner MTAs\n    10.1.1.0/24\n\nALL $BLOCKED\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    out, _ = run(*HAT, "import", "-")
    assert out.splitlines()[1] == "Imported 2 sender groups, 1 sender."
    assert hat() == [("PARTNERS", "TRUSTED", ["10.1.1.0/24"]), ("ALL", "BLOCKED", ["ALL"])]


def test_import_errors_name_their_lines_and_change_nothing(admin, unchanged, tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text(
        "PARTNERS $TRUSTED\n    10.1.2.3/16\n    10.1.1.1\n    10.1.1.1\njust words here\nALL $ACCEPTED\n"
    )
    assert refused(*HAT, "import", str(path)) == (
        "Error: The HAT cannot be imported; "
        "line 2: the entry '10.1.2.3/16' has host bits set; did you mean 10.1.0.0/16?; "
        "line 4: the entry '10.1.1.1' is listed twice in PARTNERS; "
        "line 5: 'just words here' is not a group line: give NAME $POLICY, optionally followed by # comment"
    )
    assert refused(*HAT, "import", str(tmp_path / "missing.txt")) == (
        f'Error: the file "{tmp_path / "missing.txt"}" does not exist'
    )
    unchanged()
    assert not workflow.has_uncommitted_changes()


def test_import_refuses_an_unknown_policy_and_a_hat_without_all(admin, unchanged, tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("PARTNERS $NOPE\n    10.1.1.1\nLAST $ACCEPTED\n")
    assert refused(*HAT, "import", str(path)) == (
        "Error: The HAT cannot be imported; The last sender group must be ALL (the hosts no other group "
        "holds); Sender group PARTNERS names policy 'NOPE', which this listener does not have"
    )
    unchanged()


# --- Find Senders -----------------------------------------------------------------------


def test_find_answers_for_an_address(admin):
    stage_partners("10.2.0.0/16")
    run(*HAT, "new", "policy", "PASS", "--behavior", "continue")
    run(*HAT, "new", "sendergroup", "WATCH", "--policy", "PASS", "--order", "1", "--senders", "10.2.3.")
    run(*HAT, "edit", "policy", "TRUSTED", "--tls", "required")
    assert run(*HAT, "find", "10.2.3.4") == (
        "10.2.3.4: sender group PARTNERS, entry 10.2.0.0/16\n"
        "Policy: TRUSTED (Accept)\n"
        "TLS: Required\n"
        "Verify Client Certificate: No\n"
        "TLS is Mandatory for Address List: -\n"
        "Why: WATCH holds 10.2.3., but its policy PASS says Continue\n"
        "Why: PARTNERS holds 10.2.0.0/16\n",
        "",
    )


def test_find_answers_for_a_host_name_and_falls_to_all(admin):
    run(*HAT, "edit", "sendergroup", "BLOCKED_LIST", "--add", ".spam.example")
    run(*HAT, "default", "--tls", "preferred")
    out, _ = run(*HAT, "find", "192.0.2.7", "--hostname", "MX1.Spam.Example.")
    assert out.splitlines() == [
        "192.0.2.7 (MX1.Spam.Example.): sender group BLOCKED_LIST, entry .spam.example",
        "Policy: BLOCKED (Reject)",
        "TLS: Preferred (Default)",
        "Verify Client Certificate: No (Default)",
        "TLS is Mandatory for Address List: - (Default)",
        "Why: BLOCKED_LIST holds .spam.example",
    ]
    out, _ = run(*HAT, "find", "2001:db8::7", "--hostname", "spam.example")  # not below .spam.example
    assert out.splitlines()[0] == "2001:db8::7 (spam.example): sender group ALL, entry ALL"
    assert out.splitlines()[-1] == "Why: No other sender group holds it, so ALL does"


# --- roles ------------------------------------------------------------------------------


def test_read_only_gets_a_preview_and_nothing_is_stored(read_only, unchanged):
    out, err = run(*HAT, "new", "sendergroup", "PARTNERS", "--policy", "TRUSTED", "--senders", "10.1.1.0/24",
                   "--user", "rita")  # fmt: skip
    assert out.splitlines() == [
        "Preview only (Read-Only Operator): nothing was stored.",
        "Listeners: listener 'IncomingMail': sender group 'PARTNERS' added",
        "  Name:  -> PARTNERS",
        "  Policy:  -> TRUSTED",
        "  Senders:  -> 10.1.1.0/24",
    ]
    assert err == ""
    out, _ = run(*HAT, "default", "--tls", "required", "--user", "rita")
    assert out.splitlines()[1:] == [
        "Listeners: listener 'IncomingMail' changed",
        "  Default Policy Parameters: TLS: Off -> Required",
    ]
    assert run(*HAT, "print", "--user", "rita")[0].startswith("Mail Flow Policies of listener IncomingMail\n")
    assert run(*HAT, "find", "10.0.0.1", "--user", "rita")[0].startswith("10.0.0.1: sender group ALL")
    unchanged()
    assert not workflow.has_uncommitted_changes()


def test_guest_is_refused(guest, unchanged):
    assert refused(*HAT, "print", "--user", "gus") == "Error: The Guest role may not view the configuration."
    assert refused(*HAT, "export", "--user", "gus") == "Error: The Guest role may not view the configuration."
    assert refused(*HAT, "move", "SUSPECTLIST", "1", "--user", "gus") == (
        "Error: The Guest role may not fill and submit forms to preview a change."
    )
    unchanged()


def test_commit_applies_the_staged_hat(admin):
    stage_partners()
    run("commit")
    running = workflow.running_config()["listeners"][0]
    assert [group["sender_group_name"] for group in running["sender_group"]][-2:] == ["PARTNERS", "ALL"]


# --- the real command: exit statuses and streams ------------------------------------------


def test_real_exit_statuses_and_streams(data_dir):
    hat_args = ("listenerconfig", "edit", "IncomingMail", "hostaccess")
    done = manage(data_dir, *hat_args, "new", "sendergroup", "PARTNERS", "--policy", "TRUSTED",
                  "--senders", "10.1.1.0/24")  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "Sender group PARTNERS added to listener IncomingMail. Use commit to apply it.\n",
        "",
    )
    refusal = manage(data_dir, *hat_args, "edit", "sendergroup", "PARTNERS", "--add", "10.1.2.3/16")
    assert (refusal.returncode, refusal.stdout, refusal.stderr) == (
        1,
        "",
        "Error: Sender group PARTNERS: the entry '10.1.2.3/16' has host bits set; did you mean 10.1.0.0/16?\n",
    )
    unknown = manage(data_dir, "listenerconfig", "edit", "Outgoing", "hostaccess", "print")
    assert (unknown.returncode, unknown.stderr) == (1, "Error: There is no listener named 'Outgoing'\n")
    for args in [
        ("listenerconfig", "edit", "IncomingMail"),
        ("listenerconfig", "edit", "IncomingMail", "hostaccess"),
        ("listenerconfig", "edit", "IncomingMail", "hostacces", "print"),
        ("listenerconfig", "edit", "IncomingMail", "--port", "26", "hostaccess", "print"),
        (*hat_args, "new", "sendergroup", "X"),
        (*hat_args, "edit", "policy", "TRUSTED"),
        (*hat_args, "default", "--tls", "default"),
        (*hat_args, "move", "PARTNERS", "first"),
        (*hat_args, "print", "--port", "26"),
    ]:
        usage = manage(data_dir, *args)
        assert usage.returncode == 2, args
        assert usage.stderr.startswith("usage: manage.py listenerconfig ") and "Traceback" not in usage.stderr
    # the listener's own settings, as before
    edit = manage(data_dir, "listenerconfig", "edit", "IncomingMail", "--port", "26")
    assert (edit.returncode, edit.stdout) == (0, "Listener IncomingMail changed. Use commit to apply it.\n")
    imported = subprocess_import(data_dir, "PARTNERS $BLOCKED\n    192.0.2.0/24\nALL $ACCEPTED\n")
    assert (imported.returncode, imported.stdout) == (
        0,
        "HAT of listener IncomingMail imported. Use commit to apply it.\nImported 2 sender groups, 1 sender.\n",
    )
    exported = manage(data_dir, *hat_args, "export")
    assert exported.returncode == 0
    assert exported.stdout.splitlines()[2:] == ["PARTNERS $BLOCKED", "    192.0.2.0/24", "ALL $ACCEPTED"]


def subprocess_import(environment, text: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [test_console.PYTHON, "manage.py", *HAT, "import", "-"],
        cwd=test_console.BASE,
        env=environment,
        input=text,
        capture_output=True,
        text=True,
        timeout=120,
    )
