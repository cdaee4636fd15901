"""Network > Mail Delivery: the ``<delivery>`` section, its rules, the page and ``deliveryconfig``."""

from __future__ import annotations

import html
import re

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from appliance import interfaces, workflow
from appliance.config.diff import diff
from appliance.config.levels import CLUSTER_MODE
from appliance.config.sections import registry
from appliance.config.xmlfile import ConfigFileError, SecretMode, parse, render
from appliance.models import Interface
from destinations import delivery_settings
from destinations.delivery_settings import DEFAULTS, delivery_of, set_delivery
from tests.console import refused, run
from tests.listener_fixtures import unchanged_fixture  # noqa: F401 (fixture)

SUBMITTED = "Your changes have been submitted. Commit them to make them take effect."
DATA1 = {
    "interface_name": "Data1",
    "ip": "127.0.0.2",
    "netmask": 32,
    "interface_hostname": "data.example.org",
    "httpd_port": None,
    "https_redirect": False,
    "httpsd_port": None,
    "certificate_name": "",
}
CHANGED = {
    "default_delivery_interface": "Management",
    "max_concurrency": 800,
    "max_tls_concurrency": 200,
    "max_queue_lifetime": 86_400,
    "initial_retry": 300,
    "max_retry_interval": 7_200,
}
PRINTED_DEFAULTS = (
    "Default Delivery Interface: Auto\n"
    "Mail leaves from: the address the operating system chooses, EHLO esa.example.com "
    "(the appliance's hostname)\n"
    "Maximum Concurrent Connections: 500\n"
    "Maximum Concurrent TLS Connections: 100\n"
    "Maximum Time in Queue: 259,200 seconds (72 hours)\n"
    "Initial Time to Wait per Message: 60 seconds (1 minute)\n"
    "Maximum Time to Wait per Message: 3,600 seconds (1 hour)\n"
    "Waits between attempts: 1 minute, 2 minutes, 4 minutes, 8 minutes, 16 minutes, 32 minutes, "
    "then 1 hour each time; bounced after 72 hours in the queue\n"
)


def candidate() -> dict:
    [item] = registry.candidate()["delivery"]
    return item


def stage(user, **changes):
    return workflow.submit(user, "edit delivery", lambda: set_delivery(CLUSTER_MODE, **changes))


def add_data1(user):
    workflow.submit(user, "add Data1", lambda: interfaces.save(CLUSTER_MODE, None, dict(DATA1)))


def page(response) -> str:
    return html.unescape(response.content.decode())


# --- the <delivery> section --------------------------------------------------------------------


def test_the_shipped_settings_are_the_defaults(admin):
    assert DEFAULTS == {
        "default_delivery_interface": "",
        "max_concurrency": 500,
        "max_tls_concurrency": 100,
        "max_queue_lifetime": 259_200,
        "initial_retry": 60,
        "max_retry_interval": 3_600,
    }
    assert candidate() == DEFAULTS
    assert workflow.running_config()["delivery"] == [DEFAULTS]
    assert delivery_of(workflow.running_config()) == DEFAULTS


def test_a_configuration_without_delivery_has_the_defaults():
    assert delivery_of({}) == DEFAULTS
    assert delivery_of({"delivery": [CHANGED]}) == CHANGED


def test_the_section_stands_right_after_smtp_routes_under_network():
    tags = [section.tag for section in registry.ordered()]
    assert tags[tags.index("smtp_routes") + 1] == "delivery"
    assert registry.get("delivery").heading == "Network Configuration"
    assert not registry.get("delivery").is_list


def test_the_section_round_trips(admin):
    stage(admin, **CHANGED)
    config = {"delivery": registry.candidate()["delivery"]}
    document = render(config, SecretMode.PLAIN)
    assert (
        "  <delivery>\n"
        "    <default_delivery_interface>Management</default_delivery_interface>\n"
        "    <max_concurrency>800</max_concurrency>\n"
        "    <max_tls_concurrency>200</max_tls_concurrency>\n"
        "    <max_queue_lifetime>86400</max_queue_lifetime>\n"
        "    <initial_retry>300</initial_retry>\n"
        "    <max_retry_interval>7200</max_retry_interval>\n"
        "  </delivery>\n"
    ) in document
    assert parse(document.encode("latin-1")).config == config
    assert candidate() == CHANGED


def test_auto_is_left_out_of_the_file(admin):
    document = render({"delivery": [DEFAULTS]}, SecretMode.PLAIN)
    assert "<delivery>\n    <max_concurrency>500</max_concurrency>" in document
    assert "default_delivery_interface" not in document


def test_a_partial_document_replaces_only_the_delivery_settings(admin):
    stage(admin, **CHANGED)
    routes_before = registry.read("smtp_routes")
    interfaces_before = registry.read("interfaces")
    document = parse(b"<config>\n<delivery>\n<max_concurrency>50</max_concurrency>\n</delivery>\n</config>")
    workflow.load_document(admin, document, "loaded")
    assert candidate() == {**DEFAULTS, "max_concurrency": 50}  # left out: the defaults
    assert registry.read("smtp_routes") == routes_before
    assert registry.read("interfaces") == interfaces_before
    workflow.load_document(admin, parse(b"<config><delivery/></config>"), "loaded")
    assert candidate() == DEFAULTS
    # A document without <delivery> leaves the settings alone.
    stage(admin, max_concurrency=42)
    workflow.load_document(admin, parse(b"<config><smtp_routes/></config>"), "loaded")
    assert candidate()["max_concurrency"] == 42


@pytest.mark.parametrize(
    "element,problem",
    [
        (
            "<max_concurrency>0</max_concurrency>",
            "line 3: <max_concurrency> must be between 1 and 10000, not 0",
        ),
        (
            "<max_tls_concurrency>10001</max_tls_concurrency>",
            "line 3: <max_tls_concurrency> must be between 1 and 10000, not 10001",
        ),
        (
            "<max_queue_lifetime>3000001</max_queue_lifetime>",
            "line 3: <max_queue_lifetime> must be between 60 and 3000000, not 3000001",
        ),
        ("<initial_retry>59</initial_retry>", "line 3: <initial_retry> must be between 60 and 86400, not 59"),
        (
            "<max_retry_interval>86401</max_retry_interval>",
            "line 3: <max_retry_interval> must be between 60 and 86400, not 86401",
        ),
        (
            "<max_concurrency>many</max_concurrency>",
            "line 3: <max_concurrency> must be a whole number, not 'many'",
        ),
        (
            "<initial_retry>600</initial_retry>\n<max_retry_interval>300</max_retry_interval>",
            "line 4: <max_retry_interval> must be at least <initial_retry> (600), not 300: the first retry "
            "waits the initial time, each later one twice as long, up to this maximum",
        ),
        (
            "<initial_retry>7200</initial_retry>",  # above the default maximum of 3600
            "line 2: <max_retry_interval> must be at least <initial_retry> (7200), not 3600: the first retry "
            "waits the initial time, each later one twice as long, up to this maximum",
        ),
        ("<retries>5</retries>", "line 3: <retries> is not a setting of <delivery>"),
    ],
)
def test_bad_files_are_refused_with_the_line_and_element(admin, element, problem):
    with pytest.raises(ConfigFileError) as error:
        parse(f"<config>\n<delivery>\n{element}\n</delivery>\n</config>".encode())
    assert error.value.problems == [problem]


def test_a_file_naming_an_unknown_interface_is_refused_with_the_line(admin, unchanged):
    document = parse(
        b"<config>\n<delivery>\n<default_delivery_interface>Nope</default_delivery_interface>\n"
        b"</delivery>\n</config>"
    )
    with pytest.raises(workflow.ChangeRefused) as refusal:
        workflow.load_document(admin, document, "loaded")
    assert refusal.value.problems == [
        "line 3: <default_delivery_interface> names interface 'Nope', which does not exist"
    ]
    unchanged()


# --- what an administrator changes --------------------------------------------------------------


def test_settings_are_staged_and_reach_the_running_configuration(admin):
    add_data1(admin)
    outcome = stage(admin, default_delivery_interface="Data1", max_concurrency=1_000)
    assert outcome.warnings == []
    assert candidate() == {**DEFAULTS, "default_delivery_interface": "Data1", "max_concurrency": 1_000}
    assert delivery_of(workflow.running_config()) == DEFAULTS  # not committed yet
    [change] = [section for section in workflow.pending_changes() if section.section.tag == "delivery"]
    [mail_delivery] = change.objects
    assert mail_delivery.name == "Mail Delivery"
    assert [(f.label, f.before, f.after) for f in mail_delivery.fields] == [
        ("Default Delivery Interface", "(none)", "Data1"),
        ("Maximum Concurrent Connections", "500", "1000"),
    ]
    workflow.commit(admin)
    assert delivery_of(workflow.running_config())["default_delivery_interface"] == "Data1"
    stage(admin, default_delivery_interface="")
    assert candidate()["default_delivery_interface"] == ""


def test_the_diff_shows_times_in_seconds_and_hours(admin):
    before = registry.candidate()
    stage(admin, max_queue_lifetime=100_000, initial_retry=90)
    [section] = [s for s in diff(before, registry.candidate()) if s.section.tag == "delivery"]
    assert [(f.label, f.before, f.after) for f in section.objects[0].fields] == [
        ("Maximum Time in Queue", "259,200 seconds (72 hours)", "100,000 seconds (27.8 hours)"),
        ("Initial Time to Wait per Message", "60 seconds (1 minute)", "90 seconds"),
    ]


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"max_concurrency": 0}, "Maximum Concurrent Connections must be between 1 and 10,000, not 0"),
        (
            {"max_concurrency": 10_001},
            "Maximum Concurrent Connections must be between 1 and 10,000, not 10001",
        ),
        (
            {"max_tls_concurrency": 0},
            "Maximum Concurrent TLS Connections must be between 1 and 10,000, not 0",
        ),
        (
            {"max_queue_lifetime": 59},
            "Maximum Time in Queue must be between 60 and 3,000,000 seconds, not 59",
        ),
        (
            {"max_queue_lifetime": 3_000_001},
            "Maximum Time in Queue must be between 60 and 3,000,000 seconds, not 3000001",
        ),
        (
            {"initial_retry": 30},
            "Initial Time to Wait per Message must be between 60 and 86,400 seconds, not 30",
        ),
        (
            {"max_retry_interval": 86_401},
            "Maximum Time to Wait per Message must be between 60 and 86,400 seconds, not 86401",
        ),
        ({"max_concurrency": True}, "Maximum Concurrent Connections must be between 1 and 10,000, not True"),
        (
            {"initial_retry": 600, "max_retry_interval": 300},
            r"Maximum Time to Wait per Message \(300 seconds\) cannot be shorter than the Initial Time to "
            r"Wait per Message \(600 seconds\): the first retry waits the initial time, each later one twice "
            r"as long, up to the maximum",
        ),
        (
            {"initial_retry": 7_200},  # the maximum stays at 3600
            r"Maximum Time to Wait per Message \(3,600 seconds\) cannot be shorter than the Initial Time to "
            r"Wait per Message \(7,200 seconds\): .*",
        ),
        (
            {"default_delivery_interface": "Nope"},
            "There is no IP interface named 'Nope': choose one of Auto, Management",
        ),
    ],
)
def test_bad_settings_are_refused_and_nothing_changes(admin, unchanged, changes, message):
    with pytest.raises(delivery_settings.DeliveryRefused, match=f"^{message}$"):
        stage(admin, **changes)
    unchanged()


def test_every_problem_is_reported_at_once(admin, unchanged):
    with pytest.raises(workflow.ChangeRefused) as refusal:
        stage(admin, default_delivery_interface="Nope", max_concurrency=0, initial_retry=1)
    assert str(refusal.value) == "There is no IP interface named 'Nope': choose one of Auto, Management"
    assert refusal.value.problems == [
        "Maximum Concurrent Connections must be between 1 and 10,000, not 0",
        "Initial Time to Wait per Message must be between 60 and 86,400 seconds, not 1",
    ]
    unchanged()


def test_unlikely_settings_are_accepted_with_advice(admin):
    outcome = stage(
        admin, max_concurrency=50, max_tls_concurrency=80, max_queue_lifetime=60, initial_retry=120
    )
    assert outcome.warnings == [
        "Maximum Concurrent TLS Connections (80) is above Maximum Concurrent Connections (50): TLS "
        "connections count among all connections, so at most 50 are open at once",
        "Maximum Time in Queue (60 seconds) is shorter than the Initial Time to Wait per Message "
        "(120 seconds): a message not delivered at the first attempt is bounced without a retry",
    ]
    assert candidate()["max_tls_concurrency"] == 80


def test_the_retry_schedule_doubles_up_to_the_maximum():
    assert delivery_settings.retry_waits(60, 3_600) == [60, 120, 240, 480, 960, 1_920, 3_600]
    assert delivery_settings.retry_waits(300, 300) == [300]
    item = {**DEFAULTS, "initial_retry": 600, "max_retry_interval": 600, "max_queue_lifetime": 100_000}
    assert delivery_settings.schedule(item) == "10 minutes each time; bounced after 27.8 hours in the queue"
    assert delivery_settings.in_hours(3_600) == "1 hour"


# --- the interface reference -------------------------------------------------------------------------


def test_the_interface_in_use_cannot_be_deleted_or_renamed(admin):
    add_data1(admin)
    stage(admin, default_delivery_interface="Data1")
    use = "Mail Delivery (Default Delivery Interface)"
    assert registry.where_used("interfaces", CLUSTER_MODE)["Data1"] == [use]
    with pytest.raises(
        workflow.ChangeRefused, match=rf"^'Data1' cannot be deleted while it is used by {re.escape(use)}$"
    ):
        workflow.submit(admin, "delete", lambda: interfaces.delete(CLUSTER_MODE, "Data1"))
    renamed = {**DATA1, "interface_name": "Data2"}
    with pytest.raises(workflow.ChangeRefused, match="'Data1' cannot be renamed while"):
        workflow.submit(admin, "rename", lambda: interfaces.save(CLUSTER_MODE, "Data1", renamed))
    assert [i["interface_name"] for i in registry.read("interfaces")] == ["Data1", "Management"]
    # A file that drops the interface is refused too; with Auto it may go.
    document = parse(
        render({"interfaces": registry.candidate()["interfaces"][1:]}, SecretMode.PLAIN).encode()
    )
    with pytest.raises(workflow.ChangeRefused) as refusal:
        workflow.load_document(admin, document, "loaded")
    assert refusal.value.problems == ["Mail Delivery uses interface 'Data1', which does not exist"]
    stage(admin, default_delivery_interface="")
    workflow.submit(admin, "delete", lambda: interfaces.delete(CLUSTER_MODE, "Data1"))
    assert "Data1" not in registry.where_used("interfaces", CLUSTER_MODE)


def test_the_commit_checks_the_interface(admin):
    """A candidate naming an interface that is gone (written past the store) is refused at commit."""
    add_data1(admin)
    stage(admin, default_delivery_interface="Data1")
    Interface.objects.of("").filter(name="Data1").delete()
    with pytest.raises(workflow.ChangeRefused) as refusal:
        workflow.commit(admin)
    assert "Mail Delivery uses interface 'Data1', which does not exist" in refusal.value.problems


# --- the page ---------------------------------------------------------------------------------------


def test_the_page_shows_the_settings(login, admin):
    text = page(login(admin).get(reverse("destinations:mail_delivery")))
    for expected in (
        "<th>Default Delivery Interface</th><td>Auto</td>",
        "EHLO esa.example.com (the appliance's hostname)",
        "<th>Maximum Concurrent Connections</th><td>500</td>",
        "<th>Maximum Concurrent TLS Connections</th><td>100</td>",
        "<th>Maximum Time in Queue</th><td>259,200 seconds (72 hours)</td>",
        "<th>Maximum Time to Wait per Message</th><td>3,600 seconds (1 hour)</td>",
        "1 minute, 2 minutes, 4 minutes",
        "Edit Settings...",
    ):
        assert expected in text


def test_the_page_is_under_network(login, admin):
    text = page(login(admin).get(reverse("destinations:mail_delivery")))
    network = text[text.index('<span class="menu-title">Network</span>') :]
    network = network[: network.index("</ul>")]
    assert network.index("Mail Delivery") < network.index("SMTP Routes")


def test_edit_settings_stages_the_change(login, admin):
    add_data1(admin)
    client = login(admin)
    url = reverse("destinations:mail_delivery_settings")
    form = page(client.get(url))
    assert '<option value="" selected>Auto</option>' in form
    assert '<option value="Data1">Data1 (127.0.0.2: data.example.org)</option>' in form
    assert '<option value="Management">Management (127.0.0.1: esa.example.com)</option>' in form
    assert "each later retry waits twice as long" in form
    assert 'name="max_queue_lifetime" value="259200"' in form
    data = {**CHANGED, "default_delivery_interface": "Data1"}
    response = client.post(url, data, follow=True)
    assert response.redirect_chain == [(reverse("destinations:mail_delivery"), 302)]
    assert SUBMITTED in [str(m) for m in response.context["messages"]]
    text = page(response)
    assert "<th>Default Delivery Interface</th><td>Data1 (127.0.0.2: data.example.org)</td>" in text
    assert "<td>127.0.0.2, EHLO data.example.org</td>" in text
    assert "<th>Maximum Time in Queue</th><td>86,400 seconds (24 hours)</td>" in text
    assert candidate() == data
    assert 'value="Data1" selected' in page(client.get(url))


def test_edit_settings_warns_about_unlikely_values(login, admin):
    data = {**CHANGED, "max_tls_concurrency": 900}
    response = login(admin).post(reverse("destinations:mail_delivery_settings"), data, follow=True)
    assert "is above Maximum Concurrent Connections (800)" in page(response)


def _field_errors(text: str, name: str) -> str:
    """The text of the field row of ``name`` (its errors stand in it)."""
    start = text.index(f'name="{name}"')
    start = text.rindex('<div class="field', 0, start)
    end = (
        text.index('<div class="field', start + 1) if '<div class="field' in text[start + 1 :] else len(text)
    )
    return text[start:end]


def test_bad_values_are_shown_next_to_their_fields(login, admin, unchanged):
    client = login(admin)
    url = reverse("destinations:mail_delivery_settings")
    data = {**CHANGED, "default_delivery_interface": "", "max_concurrency": "0", "max_queue_lifetime": "x"}
    response = client.post(url, data)
    assert response.status_code == 400
    text = page(response)
    row = _field_errors(text, "max_concurrency")
    assert "has-error" in row and "Give a whole number from 1 to 10,000." in row
    assert "Give a whole number from 60 to 3,000,000." in _field_errors(text, "max_queue_lifetime")
    response = client.post(url, {**CHANGED, "initial_retry": "900", "max_retry_interval": "600"})
    assert response.status_code == 400
    row = _field_errors(page(response), "max_retry_interval")
    assert "Maximum Time to Wait per Message (600 seconds) cannot be shorter than the Initial Time" in row
    response = client.post(url, {**CHANGED, "default_delivery_interface": "Gone"})
    assert response.status_code == 400
    assert "Select a valid choice." in _field_errors(page(response), "default_delivery_interface")
    unchanged()


def test_read_only_sees_a_preview_and_guest_is_refused(login, read_only, guest, unchanged):
    url = reverse("destinations:mail_delivery_settings")
    response = login(read_only).post(url, CHANGED)
    text = page(response)
    assert response.status_code == 200 and "Nothing was stored." in text
    assert "What your submit would change" in text and "Maximum Concurrent Connections" in text
    unchanged()
    client = login(guest)
    assert client.get(reverse("destinations:mail_delivery")).status_code == 403
    assert client.get(url).status_code == 403
    assert client.post(url, CHANGED).status_code == 403
    unchanged()


# --- deliveryconfig -------------------------------------------------------------------------------------


def test_deliveryconfig_print_shows_the_candidate(admin):
    assert run("deliveryconfig", "print") == (PRINTED_DEFAULTS, "")
    add_data1(admin)
    stage(admin, default_delivery_interface="Data1")
    out, _ = run("deliveryconfig", "print")
    assert out.startswith(
        "Default Delivery Interface: Data1 (127.0.0.2: data.example.org)\n"
        "Mail leaves from: 127.0.0.2, EHLO data.example.org\n"
    )


def test_deliveryconfig_setup_stages_the_options_given(admin):
    add_data1(admin)
    args = ("--interface", "Data1", "--max-concurrency", "800", "--initial-retry", "300")
    assert run("deliveryconfig", "setup", *args, "--max-retry-interval", "7200") == (
        "Mail Delivery settings staged. Use commit to apply them.\n",
        "",
    )
    expected = {
        **DEFAULTS,
        "default_delivery_interface": "Data1",
        "max_concurrency": 800,
        "initial_retry": 300,
        "max_retry_interval": 7_200,
    }
    assert candidate() == expected
    run("deliveryconfig", "setup", "--max-tls-concurrency", "250", "--max-queue-lifetime", "86400")
    assert candidate() == {**expected, "max_tls_concurrency": 250, "max_queue_lifetime": 86_400}
    run("deliveryconfig", "setup", "--interface", "AUTO")
    assert candidate()["default_delivery_interface"] == ""
    assert workflow.lock_state().owner_name == "admin"


def test_deliveryconfig_setup_warns_about_unlikely_values(admin):
    out, err = run("deliveryconfig", "setup", "--max-tls-concurrency", "600")
    assert out == "Mail Delivery settings staged. Use commit to apply them.\n"
    assert err.startswith("Warning: Maximum Concurrent TLS Connections (600) is above Maximum Concurrent")


def test_deliveryconfig_refusals_change_nothing(admin, unchanged):
    assert refused("deliveryconfig", "setup") == (
        "Error: nothing to change: give --interface NAME|auto, --max-concurrency N, --max-tls-concurrency N, "
        "--max-queue-lifetime SECONDS, --initial-retry SECONDS or --max-retry-interval SECONDS"
    )
    assert refused("deliveryconfig", "setup", "--max-concurrency", "0") == (
        "Error: Maximum Concurrent Connections must be between 1 and 10,000, not 0"
    )
    assert refused("deliveryconfig", "setup", "--max-queue-lifetime", "10") == (
        "Error: Maximum Time in Queue must be between 60 and 3,000,000 seconds, not 10"
    )
    assert refused("deliveryconfig", "setup", "--max-retry-interval", "59") == (
        "Error: Maximum Time to Wait per Message must be between 60 and 86,400 seconds, not 59"
    )
    assert refused("deliveryconfig", "setup", "--initial-retry", "600", "--max-retry-interval", "300") == (
        "Error: Maximum Time to Wait per Message (300 seconds) cannot be shorter than the Initial Time to "
        "Wait per Message (600 seconds): the first retry waits the initial time, each later one twice as "
        "long, up to the maximum"
    )
    assert refused("deliveryconfig", "setup", "--interface", "Nope") == (
        "Error: There is no IP interface named 'Nope': choose one of Auto, Management"
    )
    with pytest.raises(CommandError, match="give a whole number, not 'lots'"):
        call_command("deliveryconfig", "setup", "--max-concurrency", "lots")
    unchanged()


def test_deliveryconfig_roles(read_only, guest, unchanged):
    out, _ = run("deliveryconfig", "setup", "--max-concurrency", "700", "--user", "rita")
    assert out == (
        "Preview only (Read-Only Operator): nothing was stored.\n"
        "Mail Delivery: Mail Delivery changed\n"
        "  Maximum Concurrent Connections: 500 -> 700\n"
    )
    assert run("deliveryconfig", "print", "--user", "rita") == (PRINTED_DEFAULTS, "")
    assert refused("deliveryconfig", "print", "--user", "gus").startswith("Error: The Guest role may not")
    assert refused("deliveryconfig", "setup", "--max-concurrency", "700", "--user", "gus").startswith(
        "Error: The Guest role may not"
    )
    unchanged()
