"""listenerconfig: each subcommand in-process, and exit statuses and streams of the real command."""

from __future__ import annotations

import pytest

from appliance import workflow
from appliance.models import AuditEvent
from certificates import pki
from tests import test_console
from tests.console import refused, run
from tests.listener_fixtures import (
    credentials_fixture,  # noqa: F401 (fixture)
    listener_settings,
    listeners,
    stage_certificate,
    stage_listener,
    unchanged_fixture,  # noqa: F401 (fixture)
)
from tests.test_console import manage

data_dir = test_console.data_dir  # a fresh appliance in its own data directory

NEW_RELAY = (
    "listenerconfig",
    "new",
    "Relay",
    "--type",
    "private",
    "--interface",
    "Management",
    "--port",
    "587",
)


def names_and_ports() -> list[tuple[str, int]]:
    return [(item["listener_name"], item["port"]) for item in listeners()]


def test_list_prints_each_listener(admin):
    stage_listener(admin, "Relay", 587, kind="private")
    assert run("listenerconfig", "list") == (
        "IncomingMail\tPublic\tManagement\t2525\tDemo\t300\t200\nRelay\tPrivate\tManagement\t587\t-\t300\t200\n",
        "",
    )


def test_new_stages_a_listener(admin):
    assert run(*NEW_RELAY) == ("Listener Relay created. Use commit to apply it.\n", "")
    assert listener_settings()[1] == {
        "listener_name": "Relay",
        "listener_type": "private",
        "interface_name": "Management",
        "port": 587,
        "certificate_name": "",
    }
    assert workflow.lock_state().owner_name == "admin"
    assert AuditEvent.objects.filter(action="submit", source="CLI", detail="created listener Relay").exists()


def test_new_with_a_certificate_prints_its_advice_as_a_warning(admin, credentials):
    stage_certificate(admin, "Other", credentials.other)
    assert run(*NEW_RELAY, "--certificate", "Other") == (
        "Listener Relay created. Use commit to apply it.\n",
        "Warning: The certificate 'Other' (other.example.org) does not cover the host name esa.example.com\n",
    )
    assert listeners()[1]["certificate_name"] == "Other"


def test_edit_changes_only_what_is_given(admin):
    assert run("listenerconfig", "edit", "IncomingMail", "--port", "25", "--type", "private") == (
        "Listener IncomingMail changed. Use commit to apply it.\n",
        "",
    )
    assert listener_settings() == [
        {
            "listener_name": "IncomingMail",
            "listener_type": "private",
            "interface_name": "Management",
            "port": 25,
            "certificate_name": "Demo",
        }
    ]
    assert run("listenerconfig", "edit", "IncomingMail", "--new-name", "Inbound", "--certificate", "")[0] == (
        "Listener Inbound changed. Use commit to apply it.\n"
    )
    assert [(item["listener_name"], item["certificate_name"]) for item in listeners()] == [("Inbound", "")]


def test_certificate_chooses_the_certificate_and_warns(admin, credentials):
    stage_certificate(admin, "Old", credentials.expired)
    expired_on = pki.load_certificate(credentials.expired.cert_pem).not_valid_after_utc
    assert run("listenerconfig", "certificate", "IncomingMail", "Old") == (
        "Listener IncomingMail uses certificate Old. Use commit to apply it.\n",
        f"Warning: The certificate 'Old': 'esa.example.com' expired on {expired_on:%Y-%m-%d %H:%M} UTC\n",
    )
    assert listeners()[0]["certificate_name"] == "Old"
    assert run("listenerconfig", "certificate", "IncomingMail", "") == (
        "Listener IncomingMail uses no certificate. Use commit to apply it.\n",
        "",
    )
    assert listeners()[0]["certificate_name"] == ""


def test_delete_stages_the_removal_and_commit_applies_it(admin):
    assert run("listenerconfig", "delete", "IncomingMail") == (
        "Listener IncomingMail deleted. Use commit to apply it.\n",
        "",
    )
    assert listeners() == []
    run("commit")
    assert workflow.running_config()["listeners"] == []


@pytest.mark.parametrize(
    "args,message",
    [
        (("new", "IncomingMail", "--type", "public", "--interface", "Management", "--port", "26"),
         "A listener named 'IncomingMail' already exists"),
        (("new", "Relay", "--type", "public", "--interface", "Outside", "--port", "26"),
         "There is no interface named 'Outside'"),
        (("new", "Relay", "--type", "public", "--interface", "Management", "--port", "70000"),
         "The port must be between 1 and 65535, not 70000"),
        (("new", "Relay", "--type", "public", "--interface", "Management", "--port", "2525"),
         "The port is in use: listener 'IncomingMail' and listener 'Relay' both use 127.0.0.1 port 2525"),
        (("new", "Relay", "--type", "public", "--interface", "Management", "--port", "8443"),
         "The port is in use: HTTPS of interface 'Management' and listener 'Relay' both use 127.0.0.1 port 8443"),
        (("new", "Relay", "--type", "public", "--interface", "Management", "--port", "26", "--certificate", "X"),
         "There is no certificate named 'X'"),
        (("edit", "IncomingMail", "--port", "0"), "The port must be between 1 and 65535, not 0"),
        (("edit", "Outgoing", "--port", "26"), "There is no listener named 'Outgoing'"),
        (("certificate", "IncomingMail", "Missing"), "There is no certificate named 'Missing'"),
        (("delete", "Outgoing"), "There is no listener named 'Outgoing'"),
    ],
)  # fmt: skip
def test_refusals_exit_1_with_one_error_line_and_change_nothing(admin, unchanged, args, message):
    assert refused("listenerconfig", *args) == f"Error: {message}"
    unchanged()
    assert not workflow.has_uncommitted_changes()


def test_read_only_gets_a_preview_and_nothing_is_stored(read_only, unchanged):
    out, err = run(*NEW_RELAY, "--user", "rita")
    assert out.splitlines() == [
        "Preview only (Read-Only Operator): nothing was stored.",
        "Listeners: listener 'Relay' added",
        "  Name:  -> Relay",
        "  Type of Listener:  -> private",
        "  Interface:  -> Management",
        "  Port:  -> 587",
        "  Maximum Concurrent Connections:  -> 300",
        "  Maximum Concurrent TLS Connections:  -> 200",
        "  Mail Flow Policy:  -> 2 entries",
        "  Default Policy Parameters: TLS:  -> Off",
        "  Default Policy Parameters: Verify Client Certificate:  -> No",
        "  Default Policy Parameters: Max. Message Size (bytes):  -> 10485760",
        "  Default Policy Parameters: Max. Recipients Per Message:  -> 50",
        "  Default Policy Parameters: Max. Messages Per Connection:  -> 10",
        "  Default Policy Parameters: Max. Concurrent Connections From a Single IP:  -> 20",
        "  Default Policy Parameters: Max. Connections Per Minute From a Single IP:  -> 120",
        "  Sender Group:  -> 2 entries",
    ]
    assert err == ""
    assert run("listenerconfig", "list", "--user", "rita")[0].startswith("IncomingMail\t")
    unchanged()
    assert not workflow.has_uncommitted_changes()


def test_guest_is_refused(guest, unchanged):
    assert (
        refused(*NEW_RELAY, "--user", "gus")
        == "Error: The Guest role may not fill and submit forms to preview a change."
    )
    assert (
        refused("listenerconfig", "list", "--user=gus")
        == "Error: The Guest role may not view the configuration."
    )
    unchanged()


def test_real_exit_statuses_and_streams(data_dir):
    done = manage(data_dir, *NEW_RELAY)
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "Listener Relay created. Use commit to apply it.\n",
        "",
    )
    refusal = manage(data_dir, *NEW_RELAY)
    assert (refusal.returncode, refusal.stdout, refusal.stderr) == (
        1,
        "",
        "Error: A listener named 'Relay' already exists\n",
    )
    for args in [
        ("listenerconfig",),
        ("listenerconfig", "edit", "Relay"),
        ("listenerconfig", "new", "Other", "--type", "internal", "--interface", "Management", "--port", "26"),
        ("listenerconfig", "new", "Other", "--type", "public", "--interface", "Management", "--port", "smtp"),
        ("listenerconfig", "new", "Other", "--type", "public", "--port", "26"),
    ]:
        usage = manage(data_dir, *args)
        assert usage.returncode == 2, args
        assert usage.stderr.startswith("usage: manage.py ") and "Traceback" not in usage.stderr
    edit = manage(data_dir, "listenerconfig", "edit", "Relay")
    assert "give at least one of --new-name, --type, --interface, --port, --certificate" in edit.stderr
    listing = manage(data_dir, "listenerconfig", "list")
    assert (listing.returncode, listing.stdout) == (
        0,
        "IncomingMail\tPublic\tManagement\t2525\tDemo\t300\t200\n"
        "Relay\tPrivate\tManagement\t587\t-\t300\t200\n",
    )
