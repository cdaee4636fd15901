"""Mail Policies > Destination Controls > Edit Global Settings and ``destconfig``; the console commands' usage errors."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from django.urls import reverse

from appliance import workflow
from appliance.config import checks
from appliance.config.levels import CLUSTER, CLUSTER_MODE
from appliance.config.sections import registry
from appliance.config.xmlfile import ConfigFileError, SecretMode, parse, render
from certificates import store as certificate_store
from destinations import store
from destinations.models import DestinationControls
from tests.console import refused, run
from tests.tls_peer import stage_pending

BASE = Path(__file__).resolve().parent.parent
DEMO_WARNING = (
    "You are currently using a demonstration certificate (Demo) which is not secure and is not "
    "recommended for general use (used by "
)


def settings() -> tuple[str, bool]:
    row = DestinationControls.load(CLUSTER)
    return row.certificate_name, row.send_tls_required_alert


def users_named_by(warning: str) -> list[str]:
    assert warning.startswith(DEMO_WARNING) and warning.endswith(")")
    return warning[len(DEMO_WARNING) : -1].split(", ")


# --- the configuration file ------------------------------------------------------------


def test_shipped_settings_have_no_certificate_and_no_alert(appliance):
    [item] = workflow.running_config()["destination_controls"]
    assert (item["certificate_name"], item["send_tls_required_alert"]) == ("", False)
    xml = render(workflow.running_config(), SecretMode.MASK)
    assert (
        "<destination_controls>\n    <send_tls_required_alert>0</send_tls_required_alert>\n    <destination>"
        in xml
    )
    assert "*                               Mail Policies" in xml


def test_destination_controls_round_trip(admin):
    workflow.submit(admin, "set", lambda: store.set_destination_controls(CLUSTER_MODE, "Demo", True))
    xml = render(registry.candidate(), SecretMode.PLAIN)
    assert (
        "  <destination_controls>\n"
        "    <certificate_name>Demo</certificate_name>\n"
        "    <send_tls_required_alert>1</send_tls_required_alert>\n"
        "    <destination>\n"
    ) in xml
    document = parse(xml.encode("latin-1"))
    [item] = document.config["destination_controls"]
    assert {key: item[key] for key in ("certificate_name", "send_tls_required_alert")} == {
        "certificate_name": "Demo",
        "send_tls_required_alert": True,
    }
    workflow.commit(admin)
    workflow.submit(admin, "clear", lambda: store.set_destination_controls(CLUSTER_MODE, "", False))
    workflow.load_document(admin, document, "loaded")
    assert settings() == ("Demo", True)


def test_a_partial_file_takes_the_defaults(admin):
    workflow.submit(admin, "set", lambda: store.set_destination_controls(CLUSTER_MODE, "Demo", True))
    document = parse(b"<config><destination_controls/></config>")
    workflow.load_document(admin, document, "loaded")
    assert settings() == ("", False)


def test_bad_destination_controls_files_are_refused_with_line_and_element(admin):
    with pytest.raises(ConfigFileError) as error:
        parse(b"<config>\n<destination_controls>\n<send_tls_required_alert>yes</send_tls_required_alert>\n"
              b"<tls>1</tls>\n</destination_controls>\n</config>")  # fmt: skip
    assert error.value.problems == [
        "line 3: <send_tls_required_alert> must be 0 or 1, not 'yes'",
        "line 4: <tls> is not a setting of <destination_controls>",
    ]
    document = parse(b"<config>\n<destination_controls>\n<certificate_name>Gone</certificate_name>\n"
                     b"</destination_controls>\n</config>")  # fmt: skip
    with pytest.raises(workflow.ChangeRefused) as refusal:
        workflow.load_document(admin, document, "loaded")
    assert refusal.value.problems == [
        "line 3: <certificate_name> names certificate 'Gone', which does not exist"
    ]
    assert settings() == ("", False)


# --- refusals, warnings, where used ----------------------------------------------------


def test_an_unknown_certificate_is_refused_and_nothing_changes(admin):
    with pytest.raises(workflow.ChangeRefused, match="^There is no certificate named 'Nope'$"):
        workflow.submit(admin, "bad", lambda: store.set_destination_controls(CLUSTER_MODE, "Nope", True))
    assert settings() == ("", False)
    assert not workflow.has_uncommitted_changes()


def test_choosing_a_certificate_gives_the_selector_warnings(admin):
    stage_pending(admin)
    outcome = workflow.submit(
        admin, "set", lambda: store.set_destination_controls(CLUSTER_MODE, "Pending", False)
    )
    assert outcome.warnings == [
        "The certificate 'Pending' is still self-signed: its signing request waits for the CA"
    ]
    advice = checks.warnings(registry.candidate())
    assert (
        "Destination Controls (Certificate for outgoing TLS): The certificate 'Pending' is still self-signed: "
        "its signing request waits for the CA"
    ) in advice


def test_demo_for_outgoing_tls_is_named_in_the_commit_warning_and_where_used(admin):
    workflow.submit(admin, "set", lambda: store.set_destination_controls(CLUSTER_MODE, "Demo", False))
    version = workflow.commit(admin)
    [warning] = [w for w in workflow.commit_warnings(version) if w.startswith("You are currently")]
    assert "Destination Controls" in users_named_by(warning)
    assert "interface 'Management'" in users_named_by(warning)
    assert "Destination Controls (Certificate for outgoing TLS)" in certificate_store.users_of(
        CLUSTER_MODE, "Demo"
    )
    with pytest.raises(workflow.ChangeRefused, match="used by .*Destination Controls"):
        workflow.submit(admin, "delete", lambda: certificate_store.delete(CLUSTER_MODE, "Demo"))


# --- the pages -----------------------------------------------------------------------------


def test_the_page_and_the_global_settings_form(login, admin):
    client = login(admin)
    page = client.get(reverse("destinations:destination_controls")).content.decode()
    assert "Edit Global Settings..." in page and "Mail Policies" in page
    form = client.get(reverse("destinations:destination_controls_settings")).content.decode()
    assert '<option value="" selected>None (no certificate on outgoing TLS)</option>' in form
    assert '<option value="Demo">Demo (Self-signed)</option>' in form
    assert "Send an alert when a required TLS connection fails" in form
    stage_pending(admin)
    response = client.post(
        reverse("destinations:destination_controls_settings"),
        {"certificate": "Pending", "send_tls_req_alert": "on"},
        follow=True,
    )
    page = response.content.decode()
    assert response.redirect_chain == [(reverse("destinations:destination_controls"), 302)]
    assert "The certificate &#x27;Pending&#x27; is still self-signed" in page
    assert settings() == ("Pending", True)
    certificates = client.get(reverse("certificates:list")).content.decode()
    assert "Destination Controls (Certificate for outgoing TLS)" in certificates


def test_an_unknown_choice_is_a_form_error(login, admin):
    response = login(admin).post(
        reverse("destinations:destination_controls_settings"), {"certificate": "Nope"}
    )
    assert response.status_code == 400
    assert "Select a valid choice. Nope is not one of the available choices." in response.content.decode()
    assert settings() == ("", False)


def test_read_only_preview_and_guest_refusal(login, read_only, guest):
    response = login(read_only).post(
        reverse("destinations:destination_controls_settings"), {"certificate": "Demo"}
    )
    page = response.content.decode()
    assert "Read-Only Operator: this is what your submit would change. Nothing was stored." in page
    assert "Certificate for outgoing TLS" in page
    assert settings() == ("", False)
    assert login(guest).get(reverse("destinations:destination_controls")).status_code == 403


def test_the_menus_list_the_pages(login, admin):
    page = login(admin).get(reverse("overview")).content.decode()
    for url in ("destinations:destination_controls", "destinations:ldap", "destinations:url_filtering"):
        assert f'href="{reverse(url)}"' in page


# --- destconfig --------------------------------------------------------------------------


def test_destconfig_setup_and_print(admin):
    out, err = run("destconfig", "setup", "--certificate", "Demo", "--tls-required-alert")
    assert (out, err) == ("Destination Controls global settings staged. Use commit to apply them.\n", "")
    assert run("destconfig", "print")[0] == (
        "Certificate: Demo\nSend an alert when a required TLS connection fails: Yes\n"
    )
    out, err = run("commit")
    assert "Destination Controls" in err
    run("destconfig", "setup", "--no-tls-required-alert")
    assert settings() == ("Demo", False)
    run("destconfig", "setup", "--no-certificate")
    assert settings() == ("", False)


def test_destconfig_refusals(admin, read_only):
    assert (
        refused("destconfig", "setup", "--certificate", "Nope")
        == "Error: There is no certificate named 'Nope'"
    )
    assert refused("destconfig", "setup") == (
        "Error: nothing to change: give --certificate NAME, --no-certificate or --[no-]tls-required-alert"
    )
    out, err = run("destconfig", "setup", "--user", "rita", "--certificate", "Demo")
    assert out.startswith("Preview only (Read-Only Operator): nothing was stored.")
    assert settings() == ("", False)
    assert not workflow.has_uncommitted_changes()


def test_usage_errors_exit_2(tmp_path):
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "appliance.settings",
        "APPLIANCE_DATA_DIR": str(tmp_path),
    }
    for args in [
        ("destconfig",),
        ("destconfig", "setup", "--certificate", "Demo", "--no-certificate"),
        ("ldapconfig", "new", "corp"),
        ("ldapconfig", "new", "corp", "--host", "h", "--port", "many"),
        ("websecurityconfig", "setup", "--enable", "--disable"),
    ]:
        done = subprocess.run(
            [str(BASE / ".venv" / "bin" / "python"), "manage.py", *args],
            cwd=BASE,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith("usage: manage.py ") and "Traceback" not in done.stderr
