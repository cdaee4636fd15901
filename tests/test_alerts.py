"""System Administration > Alerts: the ``<alerts>`` section, recipients_for, the page and ``alertconfig``."""

from __future__ import annotations

import html

import pytest
from django.urls import reverse

from appliance import alerts, workflow
from appliance.alerts import AlertClass
from appliance.config.sections import registry
from appliance.config.xmlfile import ConfigFileError, SecretMode, parse, render
from tests.console import refused, run
from tests.listener_fixtures import unchanged_fixture  # noqa: F401 (fixture)

SUBMITTED = "Your changes have been submitted. Commit them to make them take effect."
ALL_CLASSES = list(AlertClass.values)


def recipients() -> list[dict]:
    return registry.read("alerts")


def stage(user, address, classes, severities):
    workflow.submit(user, "add", lambda: alerts.create(address, classes, severities))


def page(response) -> str:
    return html.unescape(response.content.decode())


# --- the <alerts> section -----------------------------------------------------------


def test_nothing_receives_alerts_at_first(admin):
    assert recipients() == []
    assert workflow.running_config()["alerts"] == []
    assert alerts.recipients_for("system", "warning") == []


def test_the_section_round_trips_and_all_expands(admin):
    stage(admin, "ops@example.com", ["system", "hardware"], ["critical", "warning"])
    workflow.submit(admin, "add", lambda: alerts.create("noc@example.com", ["all"], ["all"]))
    config = {"alerts": registry.candidate()["alerts"]}
    document = render(config, SecretMode.PLAIN)
    assert (
        "<alert_recipient>\n      <address>ops@example.com</address>\n"
        "      <alert_class>system</alert_class>\n      <alert_class>hardware</alert_class>\n"
        "      <severity>critical</severity>\n      <severity>warning</severity>\n"
        "    </alert_recipient>" in document
    )
    assert parse(document.encode("latin-1")).config == config
    assert recipients()[0] == {
        "address": "noc@example.com",
        "alert_class": ALL_CLASSES,
        "severity": ["critical", "warning", "information"],
    }


def test_a_partial_document_replaces_only_the_alerts(admin):
    stage(admin, "old@example.com", ["system"], ["critical"])
    listeners_before = registry.read("listeners")
    document = parse(
        b"<config><alerts><alert_recipient><address>new@example.com</address>"
        b"<alert_class>all</alert_class><severity>warning</severity>"
        b"</alert_recipient></alerts></config>"
    )
    workflow.load_document(admin, document, "loaded")
    assert recipients() == [
        {"address": "new@example.com", "alert_class": ALL_CLASSES, "severity": ["warning"]}
    ]
    assert registry.read("listeners") == listeners_before
    workflow.load_document(admin, parse(b"<config><alerts/></config>"), "loaded")
    assert recipients() == []


@pytest.mark.parametrize(
    "body,problem",
    [
        (
            "<address>not-an-address</address><alert_class>system</alert_class><severity>warning</severity>",
            "line 1: <address> 'not-an-address' is not an email address (user@example.com)",
        ),
        (
            "<address>a@example.com</address><alert_class>mail</alert_class><severity>warning</severity>",
            "line 1: <alert_class> 'mail' is not an alert class (all, system, hardware, updater, antivirus, "
            "antispam, dhap, outbreak, clustering)",
        ),
        (
            "<address>a@example.com</address><alert_class>system</alert_class><severity>high</severity>",
            "line 1: <severity> 'high' is not a severity (all, critical, warning, information)",
        ),
        (
            "<address>a@example.com</address><alert_class>system</alert_class>",
            "line 1: <alert_recipient> lacks <severity>: give at least one (or all)",
        ),
    ],
)
def test_bad_files_are_refused_with_the_line_and_element(admin, body, problem):
    with pytest.raises(ConfigFileError) as error:
        parse(f"<config><alerts><alert_recipient>{body}</alert_recipient></alerts></config>".encode())
    assert error.value.problems == [problem]


def test_a_file_naming_one_recipient_twice_is_refused(admin):
    one = "<alert_recipient><address>a@example.com</address><alert_class>all</alert_class><severity>all</severity></alert_recipient>"
    with pytest.raises(ConfigFileError, match="repeats the name 'a@example.com'"):
        parse(f"<config><alerts>{one}\n{one}</alerts></config>".encode())


# --- recipients_for -------------------------------------------------------------------


def test_recipients_for_reads_the_running_configuration(admin):
    stage(admin, "ops@example.com", ["system"], ["warning", "critical"])
    stage(admin, "av@example.com", ["antivirus"], ["all"])
    stage(admin, "info@example.com", ["system"], ["information"])
    assert alerts.recipients_for("system", "warning") == []  # not committed yet
    workflow.commit(admin)
    assert alerts.recipients_for("system", "warning") == ["ops@example.com"]
    assert alerts.recipients_for("antivirus", "information") == ["av@example.com"]
    assert alerts.recipients_for("hardware", "critical") == []


def test_recipients_for_a_given_configuration_and_the_all_shortcut():
    config = {
        "alerts": [
            {"address": "a@example.com", "alert_class": ["all"], "severity": ["warning"]},
            {"address": "b@example.com", "alert_class": ["system"], "severity": ["all"]},
            {"address": "c@example.com", "alert_class": ["hardware"], "severity": ["warning"]},
        ]
    }
    assert alerts.recipients_for("system", "warning", config) == ["a@example.com", "b@example.com"]
    assert alerts.recipients_for("system", "critical", config) == ["b@example.com"]
    assert alerts.recipients_for("system", "warning", {}) == []
    with pytest.raises(ValueError, match="'mail' is not an alert class"):
        alerts.recipients_for("mail", "warning", config)
    with pytest.raises(ValueError, match="'high' is not a severity"):
        alerts.recipients_for("system", "high", config)


# --- refusals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address,classes,severities,message",
    [
        ("nobody", ["system"], ["warning"], "The recipient address 'nobody' is not an email address"),
        ("OPS@example.com", ["system"], ["warning"], "OPS@example.com already receives alerts"),
        ("new@example.com", [], ["warning"], "Choose at least one alert class"),
        ("new@example.com", ["system"], [], "Choose at least one severity"),
        ("new@example.com", ["mail"], ["warning"], "'mail' is not an alert class"),
    ],
)
def test_bad_recipients_are_refused_and_nothing_changes(admin, address, classes, severities, message):
    stage(admin, "ops@example.com", ["system"], ["warning"])
    before = recipients()
    with pytest.raises(workflow.ChangeRefused, match=message):
        workflow.submit(admin, "add", lambda: alerts.create(address, classes, severities))
    assert recipients() == before


# --- the page --------------------------------------------------------------------------


def test_the_page_lists_adds_edits_and_deletes(login, admin):
    client = login(admin)
    text = page(client.get(reverse("alert_recipients")))
    assert "Alerts</a>" in text and "No alert recipients" in text and "Add Recipient..." in text
    form = page(client.get(reverse("alert_recipient_add")))
    for label in ("Recipient Address", "Alert Classes", "Severities", "Directory Harvest Attack Prevention"):
        assert label in form
    data = {"address": "ops@example.com", "alert_classes": ["all"], "severities": ["warning"]}
    response = client.post(reverse("alert_recipient_add"), data, follow=True)
    assert response.redirect_chain == [(reverse("alert_recipients"), 302)]
    assert SUBMITTED in [str(m) for m in response.context["messages"]]
    row = page(response)[page(response).index(">ops@example.com</a>") :]
    assert "<td>All</td>\n      <td>Warning</td>" in row
    edit = reverse("alert_recipient_edit", args=["ops@example.com"])
    assert 'value="warning" id="id_severities_2" checked' in page(client.get(edit))
    data = {"address": "ops@example.org", "alert_classes": ["system", "updater"], "severities": ["critical"]}
    client.post(edit, data)
    assert recipients() == [
        {"address": "ops@example.org", "alert_class": ["system", "updater"], "severity": ["critical"]}
    ]
    assert "System, Updater" in page(client.get(reverse("alert_recipients")))
    client.post(reverse("alert_recipient_delete", args=["ops@example.org"]))
    assert recipients() == []
    assert client.post(reverse("alert_recipient_delete", args=["ops@example.org"])).status_code == 404


def test_bad_input_on_the_page_is_refused_with_a_message(login, admin, unchanged):
    client = login(admin)
    response = client.post(reverse("alert_recipient_add"), {"address": "x", "severities": ["warning"]})
    assert response.status_code == 400
    assert "'x' is not an email address" in page(response)
    assert "Choose at least one alert class" in page(response)
    stage(admin, "ops@example.com", ["system"], ["warning"])
    data = {"address": "ops@example.com", "alert_classes": ["system"], "severities": ["warning"]}
    response = client.post(reverse("alert_recipient_add"), data, headers={"HX-Request": "true"})
    assert response.status_code == 409
    assert 'hx-target="#alert-form"' in page(response) and "<html" not in page(response)
    assert (
        "ops@example.com already receives alerts: edit that recipient instead. Nothing was changed."
        in page(response)
    )


def test_read_only_sees_a_preview_and_guest_is_refused(login, read_only, guest, unchanged):
    data = {"address": "ops@example.com", "alert_classes": ["system"], "severities": ["warning"]}
    response = login(read_only).post(reverse("alert_recipient_add"), data)
    assert response.status_code == 200
    assert "Nothing was stored." in page(response) and "alert recipient 'ops@example.com'" in page(response)
    unchanged()
    client = login(guest)
    assert client.get(reverse("alert_recipients")).status_code == 403
    assert client.post(reverse("alert_recipient_add"), data).status_code == 403
    unchanged()


# --- alertconfig -------------------------------------------------------------------------


def test_alertconfig_new_list_edit_delete(admin):
    new = ("alertconfig", "new", "ops@example.com", "--class", "system", "--class", "hardware")
    assert run(*new, "--severity", "all") == (
        "Alert recipient ops@example.com added. Use commit to apply it.\n",
        "",
    )
    assert run("alertconfig", "list") == ("ops@example.com\tSystem, Hardware\tAll\n", "")
    assert run("alertconfig", "edit", "ops@example.com", "--class", "all", "--severity", "warning") == (
        "Alert recipient ops@example.com changed. Use commit to apply it.\n",
        "",
    )
    assert recipients() == [
        {"address": "ops@example.com", "alert_class": ALL_CLASSES, "severity": ["warning"]}
    ]
    assert run("alertconfig", "list") == ("ops@example.com\tAll\tWarning\n", "")
    run("alertconfig", "edit", "ops@example.com", "--new-address", "noc@example.com")
    assert [r["address"] for r in recipients()] == ["noc@example.com"]
    assert run("alertconfig", "delete", "noc@example.com") == (
        "Alert recipient noc@example.com deleted. Use commit to apply it.\n",
        "",
    )
    assert recipients() == []


def test_alertconfig_refusals_change_nothing(admin, unchanged):
    assert refused("alertconfig", "new", "bad", "--class", "system", "--severity", "warning") == (
        "Error: The recipient address 'bad' is not an email address (user@example.com)"
    )
    assert refused("alertconfig", "delete", "ops@example.com") == (
        "Error: There is no alert recipient ops@example.com"
    )
    unchanged()


def test_alertconfig_read_only_previews(read_only, unchanged):
    out, _ = run(
        "alertconfig", "new", "a@example.com", "--class", "system", "--severity", "warning", "--user", "rita"
    )
    assert out.startswith("Preview only (Read-Only Operator): nothing was stored.\n")
    unchanged()
