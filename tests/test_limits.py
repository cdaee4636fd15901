"""Limits: a listener's Maximum Concurrent (TLS) Connections, and a mail flow policy's Max. Message Size,
Max. Recipients Per Message and Max. Messages Per Connection (its own, or "Use Default": the listener's
Default Policy Parameters). The store, the pages, ``listenerconfig``, the configuration file, and real
SMTP clients on loopback getting the answers the limits give.
"""

from __future__ import annotations

import html
import smtplib

import pytest
from django.core.management.base import CommandError
from django.urls import reverse

from appliance import configfile, workflow
from appliance.config.levels import CLUSTER, CLUSTER_MODE
from appliance.config.sections import registry
from appliance.config.xmlfile import ConfigFileError, SecretMode, parse, render, without_header
from listeners import hat, store
from listeners.hat_forms import shown_size
from listeners.models import Listener, MailFlowPolicy
from tests.console import refused, run
from tests.gateway_fixtures import (  # noqa: F401 (fixtures)
    IN,
    client_context,
    gateway_fixture,
    loop_thread_fixture,
    mail_log_fixture,
    message,
    mid_of,
    send,
)
from tests.listener_fixtures import listeners, stage_listener, unchanged_fixture  # noqa: F401 (fixture)

SHIPPED = {"max_message_size": 10485760, "max_rcpts_per_msg": 50, "max_msgs_per_session": 10}
UNSET = dict.fromkeys(SHIPPED)  # a policy's limits when it says Use Default for each
HAT = ("listenerconfig", "edit", IN, "hostaccess")
HTMX = {"HX-Request": "true"}
NOTHING_CHANGED = "Nothing was changed."


TOO_BIG = b"5.3.4 Message size exceeds fixed maximum message size"


def stage(user, apply) -> None:
    workflow.submit(user, "test setup", apply)


def listener_row(name: str = IN) -> Listener:
    return Listener.objects.at(CLUSTER).get(name=name)


def policy_limits(name: str, listener: str = IN) -> dict:
    row = MailFlowPolicy.objects.get(listener__name=listener, name=name)
    return {tag: getattr(row, tag) for tag in SHIPPED}


def default_limits(listener: str = IN) -> dict:
    row = listener_row(listener)
    return {tag: getattr(row, f"default_{tag}") for tag in SHIPPED}


def concurrency(name: str = IN) -> tuple[int, int]:
    row = listener_row(name)
    return row.max_concurrency, row.max_tls_concurrency


def text(response) -> str:
    return html.unescape(response.content.decode())


def refuses(user, apply, message: str) -> None:
    with pytest.raises(workflow.ChangeRefused) as refusal:
        workflow.submit(user, "refused", apply)
    assert str(refusal.value) == message


# --- the store: listener limits -----------------------------------------------------------------


def test_a_new_listener_has_the_shipped_concurrency_unless_given(admin):
    assert concurrency() == (300, 200)
    stage_listener(admin, "Relay", 587, kind="private")
    assert concurrency("Relay") == (300, 200)
    stage(
        admin, lambda: store.create(CLUSTER_MODE, "Busy", "public", "Management", 588, max_concurrency=1000)
    )
    assert concurrency("Busy") == (1000, 200)
    stage(admin, lambda: store.edit(CLUSTER_MODE, "Busy", max_tls_concurrency=5))
    assert concurrency("Busy") == (1000, 5)
    stage(admin, lambda: store.edit(CLUSTER_MODE, "Busy", port=589))  # a limit not given is kept
    assert concurrency("Busy") == (1000, 5)


@pytest.mark.parametrize(
    "change,problem",
    [
        (
            lambda: store.create(CLUSTER_MODE, "Busy", "public", "Management", 588, max_concurrency=0),
            "Maximum Concurrent Connections must be between 1 and 10000, not 0",
        ),
        (
            lambda: store.create(
                CLUSTER_MODE, "Busy", "public", "Management", 588, max_tls_concurrency=10001
            ),
            "Maximum Concurrent TLS Connections must be between 1 and 10000, not 10001",
        ),
        (
            lambda: store.edit(CLUSTER_MODE, IN, max_concurrency=-5),
            "Maximum Concurrent Connections must be between 1 and 10000, not -5",
        ),
        (
            lambda: store.edit(CLUSTER_MODE, IN, max_tls_concurrency=0),
            "Maximum Concurrent TLS Connections must be between 1 and 10000, not 0",
        ),
    ],
)
def test_listener_limits_out_of_range_are_refused_in_words(admin, unchanged, change, problem):
    refuses(admin, change, problem)
    unchanged()
    assert not workflow.has_uncommitted_changes()


# --- the store: policy limits and Use Default ---------------------------------------------------------


def test_a_policy_limit_is_its_own_or_use_default(admin):
    assert policy_limits("ACCEPTED") == UNSET and default_limits() == SHIPPED
    stage(admin, lambda: hat.save_policy(CLUSTER, IN, "ACCEPTED", limits={"max_message_size": 2048}))
    assert policy_limits("ACCEPTED") == {**UNSET, "max_message_size": 2048}
    stage(admin, lambda: hat.save_policy(CLUSTER, IN, "ACCEPTED", tls="off"))  # limits not given are kept
    assert policy_limits("ACCEPTED") == {**UNSET, "max_message_size": 2048}
    stage(
        admin,
        lambda: hat.set_default_parameters(
            CLUSTER, IN, limits={"max_rcpts_per_msg": 3, "max_msgs_per_session": 2}
        ),
    )
    [item] = [item for item in listeners() if item["listener_name"] == IN]
    policy = next(p for p in item["mail_flow_policy"] if p["policy_name"] == "ACCEPTED")
    assert hat.effective_limits(item, policy) == hat.Limits(2048, 3, 2, 20, 120)
    stage(admin, lambda: hat.save_policy(CLUSTER, IN, "ACCEPTED", limits={"max_message_size": None}))
    assert policy_limits("ACCEPTED") == UNSET
    [item] = [item for item in listeners() if item["listener_name"] == IN]
    policy = next(p for p in item["mail_flow_policy"] if p["policy_name"] == "ACCEPTED")
    assert hat.effective_limits(item, policy) == hat.Limits(10485760, 3, 2, 20, 120)


@pytest.mark.parametrize(
    "change,problem",
    [
        (
            lambda: hat.save_policy(CLUSTER, IN, "ACCEPTED", limits={"max_message_size": 1023}),
            "Max. Message Size (bytes) must be between 1024 and 104857600, not 1023",
        ),
        (
            lambda: hat.save_policy(CLUSTER, IN, "NEW", create=True, limits={"max_rcpts_per_msg": 0}),
            "Max. Recipients Per Message must be between 1 and 10000, not 0",
        ),
        (
            lambda: hat.set_default_parameters(CLUSTER, IN, limits={"max_msgs_per_session": 10001}),
            "Max. Messages Per Connection must be between 1 and 10000, not 10001",
        ),
        (
            lambda: hat.set_default_parameters(CLUSTER, IN, limits={"max_message_size": None}),
            "The Default Policy Parameters need a number for each limit",
        ),
    ],
)
def test_policy_limits_out_of_range_are_refused_in_words(admin, unchanged, change, problem):
    refuses(admin, change, problem)
    unchanged()


# --- Network > Listeners ----------------------------------------------------------------------------


RELAY = {
    "name": "Relay",
    "listener_type": "private",
    "interface_name": "Management",
    "port": "587",
    "certificate_name": "",
    "max_concurrency": "300",
    "max_tls_concurrency": "200",
}


def test_the_listener_pages_show_and_change_the_concurrency(login, admin):
    client = login(admin)
    page = text(client.get(reverse("listeners:add")))
    assert "Maximum Concurrent Connections" in page and 'name="max_concurrency" value="300"' in page
    assert 'name="max_tls_concurrency" value="200"' in page
    assert "421 4.3.2 Too many concurrent connections" in page  # the help says what a sender gets
    assert "454 4.7.0 TLS not available due to temporary reason" in page
    response = client.post(
        reverse("listeners:add"), {**RELAY, "max_concurrency": "50", "max_tls_concurrency": "20"}
    )
    assert response.status_code == 302
    assert concurrency("Relay") == (50, 20)
    page = text(client.get(reverse("listeners:edit", args=["Relay"])))
    assert 'name="max_concurrency" value="50"' in page and 'name="max_tls_concurrency" value="20"' in page
    response = client.post(reverse("listeners:edit", args=["Relay"]), {**RELAY, "max_concurrency": "75"})
    assert response.status_code == 302 and concurrency("Relay") == (75, 200)
    page = text(client.get(reverse("listeners:list")))
    row = page[page.index(">Relay</a>") :]
    row = row[: row.index("</tr>")]
    assert "<td>75</td>" in row and "<td>200</td>" in row
    assert "<th>Max. Concurrent Connections</th>" in page


@pytest.mark.parametrize(
    "change,problem",
    [
        ({"max_concurrency": "0"}, "Maximum Concurrent Connections must be between 1 and 10000, not 0"),
        (
            {"max_tls_concurrency": "20000"},
            "Maximum Concurrent TLS Connections must be between 1 and 10000, not 20000",
        ),
        ({"max_concurrency": "many"}, "Enter a whole number."),
        ({"max_concurrency": ""}, "This field is required."),
    ],
)
def test_the_listener_form_refuses_limits_out_of_range(login, admin, unchanged, change, problem):
    response = login(admin).post(reverse("listeners:add"), {**RELAY, **change})
    assert response.status_code == 400
    assert problem in text(response)
    unchanged()


# --- Mail Policies > Mail Flow Policies ----------------------------------------------------------------


def policy_url(name: str, *args: str) -> str:
    return reverse(f"listeners:{name}", args=[IN, *args])


def policy_form(**values) -> dict:
    return {
        "name": "PARTNER",
        "connection_behavior": "accept",
        "tls": "default",
        "tls_mandatory_address_list": "",
        "max_message_size_mode": "default",
        "max_message_size": "",
        "max_rcpts_per_msg_mode": "default",
        "max_rcpts_per_msg": "",
        "max_msgs_per_session_mode": "default",
        "max_msgs_per_session": "",
        **values,
    }


def default_form(**values) -> dict:
    return {
        "tls": "off",
        "tls_mandatory_address_list": "",
        "max_message_size": "10485760",
        "max_rcpts_per_msg": "50",
        "max_msgs_per_session": "10",
        "max_concurrency_per_ip": "20",
        "max_connections_per_minute_per_ip": "120",
        **values,
    }


def test_the_policy_form_offers_use_default_with_what_it_is_now(login, admin):
    client = login(admin)
    page = text(client.get(policy_url("policy_add")))
    assert "<h2>Limits</h2>" in page
    assert "Use Default (10485760 bytes, 10 MB)" in page
    assert "Use Default (50)" in page and "Use Default (10)" in page
    assert "452 4.5.3 Too many recipients" in page and "421 4.7.0 Too many messages" in page
    assert 'name="max_message_size_mode" value="default" id="id_max_message_size_mode_0" checked' in page
    stage(admin, lambda: hat.set_default_parameters(CLUSTER, IN, limits={"max_rcpts_per_msg": 7}))
    stage(admin, lambda: hat.save_policy(CLUSTER, IN, "TRUSTED", limits={"max_message_size": 2048}))
    page = text(client.get(policy_url("policy_edit", "TRUSTED")))
    assert "Use Default (7)" in page
    assert 'value="value" id="id_max_message_size_mode_1" checked' in page
    assert 'name="max_message_size" value="2048"' in page


def test_the_policy_form_stores_a_number_or_use_default(login, admin):
    client = login(admin)
    response = client.post(
        policy_url("policy_add"),
        policy_form(
            max_message_size_mode="value",
            max_message_size="20971520",
            max_rcpts_per_msg_mode="value",
            max_rcpts_per_msg="5",
            max_msgs_per_session="99",  # typed, but Use Default is chosen: the number is not kept
        ),
    )
    assert response.status_code == 302
    assert policy_limits("PARTNER") == {**UNSET, "max_message_size": 20971520, "max_rcpts_per_msg": 5}
    response = client.post(
        policy_url("policy_edit", "PARTNER"),
        policy_form(max_rcpts_per_msg_mode="value", max_rcpts_per_msg="6"),
    )
    assert response.status_code == 302
    assert policy_limits("PARTNER") == {**UNSET, "max_rcpts_per_msg": 6}
    # Posted without the choice (a script): a number is the policy's own, none is Use Default.
    bare = {key: value for key, value in policy_form().items() if not key.endswith("_mode")}
    response = client.post(policy_url("policy_edit", "PARTNER"), {**bare, "max_msgs_per_session": "3"})
    assert response.status_code == 302
    assert policy_limits("PARTNER") == {**UNSET, "max_msgs_per_session": 3}


@pytest.mark.parametrize(
    "values,problem",
    [
        (
            {"max_message_size_mode": "value", "max_message_size": ""},
            "Give Max. Message Size (bytes) as a number, or choose Use Default",
        ),
        (
            {"max_message_size_mode": "value", "max_message_size": "10M"},
            "Max. Message Size (bytes) must be a whole number, not '10M'",
        ),
        (
            {"max_message_size_mode": "value", "max_message_size": "100"},
            "Max. Message Size (bytes) must be between 1024 and 104857600, not 100",
        ),
        (
            {"max_rcpts_per_msg_mode": "value", "max_rcpts_per_msg": "10001"},
            "Max. Recipients Per Message must be between 1 and 10000, not 10001",
        ),
        (
            {"max_msgs_per_session_mode": "value", "max_msgs_per_session": "0"},
            "Max. Messages Per Connection must be between 1 and 10000, not 0",
        ),
        ({"max_msgs_per_session_mode": "sometimes"}, "Select a valid choice."),
    ],
)
def test_the_policy_form_refuses_bad_limits_in_words(login, admin, unchanged, values, problem):
    client = login(admin)
    response = client.post(policy_url("policy_edit", "TRUSTED"), policy_form(name="TRUSTED", **values))
    assert response.status_code == 400 and problem in text(response)
    response = client.post(policy_url("policy_add"), policy_form(**values), headers=HTMX)
    page = text(response)
    assert response.status_code == 400 and problem in page and not page.lstrip().startswith("<!DOCTYPE")
    unchanged()


def test_the_policies_table_shows_each_limit_as_it_applies(login, admin):
    stage(admin, lambda: hat.save_policy(CLUSTER, IN, "THROTTLED", limits={"max_message_size": 1048576}))
    stage(admin, lambda: hat.save_policy(CLUSTER, IN, "TRUSTED", limits={"max_rcpts_per_msg": 500}))
    stage(admin, lambda: hat.set_default_parameters(CLUSTER, IN, limits={"max_msgs_per_session": 3}))
    page = text(login(admin).get(reverse("listeners:policies")))
    rows = page.split("<tbody>")[1].split("</tbody>")[0].split("<tr>")[1:]
    cells = {
        row.split("</a>")[0].rsplit(">", 1)[1]: [cell.split("</td>")[0] for cell in row.split("<td>")[6:9]]
        for row in rows
    }
    assert cells == {
        "ACCEPTED": ["Use Default (10 MB)", "Use Default (50)", "Use Default (3)"],
        "BLOCKED": ["Use Default (10 MB)", "Use Default (50)", "Use Default (3)"],
        "THROTTLED": ["1 MB", "Use Default (50)", "Use Default (3)"],
        "TRUSTED": ["Use Default (10 MB)", "500", "Use Default (3)"],
    }
    assert "<th>Max. Message Size (bytes)</th>" in page
    defaults = page.split('id="default-parameters"')[1].split("</table>")[0]
    assert "<tr><th>Max. Message Size (bytes)</th><td>10485760 (10 MB)</td></tr>" in defaults
    assert "<tr><th>Max. Messages Per Connection</th><td>3</td></tr>" in defaults


def test_the_default_parameters_form_takes_each_limit_as_a_number(login, admin, unchanged):
    client = login(admin)
    page = text(client.get(policy_url("default_parameters")))
    assert (
        'name="max_message_size" value="10485760"' in page and 'name="max_rcpts_per_msg" value="50"' in page
    )
    for values, problem in [
        ({"max_message_size": ""}, "This field is required."),
        ({"max_rcpts_per_msg": "0"}, "Max. Recipients Per Message must be between 1 and 10000, not 0"),
        ({"max_msgs_per_session": "x"}, "Enter a whole number."),
    ]:
        response = client.post(policy_url("default_parameters"), default_form(**values))
        assert response.status_code == 400 and problem in text(response)
    unchanged()
    response = client.post(
        policy_url("default_parameters"),
        default_form(max_message_size="5242880", max_rcpts_per_msg="100", max_msgs_per_session="1"),
    )
    assert response.status_code == 302
    assert default_limits() == {
        "max_message_size": 5242880,
        "max_rcpts_per_msg": 100,
        "max_msgs_per_session": 1,
    }
    assert "Use Default (5242880 bytes, 5 MB)" in text(client.get(policy_url("policy_add")))


@pytest.mark.parametrize(
    "size,shown",
    [(1024, "1 KB"), (51200, "50 KB"), (1048576, "1 MB"), (1500000, "1.4 MB"), (104857600, "100 MB")],
)
def test_sizes_are_shown_in_kb_or_mb(size, shown):
    assert shown_size(size) == shown


# --- listenerconfig -------------------------------------------------------------------------------


def test_listenerconfig_new_edit_and_list_the_concurrency(admin):
    run(
        "listenerconfig", "new", "Relay", "--type", "private", "--interface", "Management", "--port", "587",
        "--max-concurrency", "40",
    )  # fmt: skip
    assert concurrency("Relay") == (40, 200)
    assert run("listenerconfig", "edit", "Relay", "--max-tls-concurrency", "10") == (
        "Listener Relay changed. Use commit to apply it.\n",
        "",
    )
    assert concurrency("Relay") == (40, 10)
    assert run("listenerconfig", "list")[0].splitlines() == [
        "IncomingMail\tPublic\tManagement\t2525\tDemo\t300\t200",
        "Relay\tPrivate\tManagement\t587\t-\t40\t10",
    ]


@pytest.mark.parametrize(
    "args,problem",
    [
        (
            ("new", "Relay", "--type", "private", "--interface", "Management", "--port", "587",
             "--max-concurrency", "0"),
            "Error: Maximum Concurrent Connections must be between 1 and 10000, not 0",
        ),
        (
            ("edit", IN, "--max-tls-concurrency", "10001"),
            "Error: Maximum Concurrent TLS Connections must be between 1 and 10000, not 10001",
        ),
    ],
)  # fmt: skip
def test_listenerconfig_refuses_concurrency_out_of_range(admin, unchanged, args, problem):
    assert refused("listenerconfig", *args) == problem
    unchanged()
    assert not workflow.has_uncommitted_changes()


def test_listenerconfig_policy_limits_take_a_number_or_default(admin):
    assert run(
        *HAT, "new", "policy", "PARTNER", "--behavior", "accept", "--max-message-size", "2048",
        "--max-recipients", "5",
    ) == ("Mail flow policy PARTNER added to listener IncomingMail. Use commit to apply it.\n", "")  # fmt: skip
    assert policy_limits("PARTNER") == {**UNSET, "max_message_size": 2048, "max_rcpts_per_msg": 5}
    run(*HAT, "edit", "policy", "PARTNER", "--max-recipients", "default", "--max-messages", "2")
    assert policy_limits("PARTNER") == {**UNSET, "max_message_size": 2048, "max_msgs_per_session": 2}
    assert run(*HAT, "default", "--max-message-size", "4096", "--max-recipients", "7") == (
        "Default Policy Parameters of listener IncomingMail changed. Use commit to apply them.\n",
        "",
    )
    assert default_limits() == {"max_message_size": 4096, "max_rcpts_per_msg": 7, "max_msgs_per_session": 10}
    out = run(*HAT, "print")[0].splitlines()
    assert out[1].split("\t")[5:8] == [
        "Max. Message Size (bytes)",
        "Max. Recipients Per Message",
        "Max. Messages Per Connection",
    ]
    partner = next(line for line in out if line.startswith("PARTNER\t")).split("\t")
    assert partner[5:8] == ["2048", "7 (Default)", "2"]
    accepted = next(line for line in out if line.startswith("ACCEPTED\t")).split("\t")
    assert accepted[5:8] == ["4096 (Default)", "7 (Default)", "10 (Default)"]
    assert "Max. Message Size (bytes): 4096" in out and "Max. Recipients Per Message: 7" in out
    assert "Max. Messages Per Connection: 10" in out


@pytest.mark.parametrize(
    "args,problem",
    [
        (
            ("edit", "policy", "TRUSTED", "--max-message-size", "100"),
            "Error: Max. Message Size (bytes) must be between 1024 and 104857600, not 100",
        ),
        (
            ("new", "policy", "X", "--behavior", "accept", "--max-recipients", "0"),
            "Error: Max. Recipients Per Message must be between 1 and 10000, not 0",
        ),
        (
            ("default", "--max-messages", "10001"),
            "Error: Max. Messages Per Connection must be between 1 and 10000, not 10001",
        ),
    ],
)
def test_listenerconfig_refuses_policy_limits_out_of_range(admin, unchanged, args, problem):
    assert refused(*HAT, *args) == problem
    unchanged()
    assert not workflow.has_uncommitted_changes()


@pytest.mark.parametrize(
    "args",
    [
        ("listenerconfig", "edit", IN, "--max-concurrency", "many"),
        (*HAT, "edit", "policy", "TRUSTED", "--max-message-size", "10M"),
        (*HAT, "default", "--max-recipients", "default"),  # the Default Policy Parameters are numbers
    ],
)
def test_listenerconfig_limit_usage_errors(admin, unchanged, args):
    with pytest.raises((CommandError, SystemExit)):
        run(*args)
    unchanged()


# --- the configuration file ---------------------------------------------------------------------------


def test_limits_round_trip_through_the_configuration_file(admin):
    stage(admin, lambda: store.edit(CLUSTER_MODE, IN, max_concurrency=150, max_tls_concurrency=75))
    stage(admin, lambda: hat.save_policy(CLUSTER, IN, "THROTTLED", limits={"max_message_size": 1048576}))
    stage(
        admin,
        lambda: hat.save_policy(
            CLUSTER, IN, "TRUSTED", limits={"max_rcpts_per_msg": 500, "max_msgs_per_session": 1}
        ),
    )
    stage(admin, lambda: hat.set_default_parameters(CLUSTER, IN, limits={"max_message_size": 20971520}))
    candidate = registry.candidate()
    config = {"listeners": candidate["listeners"], "address_lists": candidate["address_lists"]}
    saved = render(config, SecretMode.PLAIN)
    assert (
        "      <certificate_name>Demo</certificate_name>\n"
        "      <max_concurrency>150</max_concurrency>\n"
        "      <max_tls_concurrency>75</max_tls_concurrency>\n"
        "      <mail_flow_policies>\n"
    ) in saved
    assert (
        "          <policy_name>THROTTLED</policy_name>\n"
        "          <connection_behavior>accept</connection_behavior>\n"
        "          <tls>default</tls>\n"
        "          <tls_verify_client>0</tls_verify_client>\n"
        "          <max_message_size>1048576</max_message_size>\n"
        "          <max_concurrency_per_ip>10</max_concurrency_per_ip>\n"
        "          <max_connections_per_minute_per_ip>60</max_connections_per_minute_per_ip>\n"
        "        </mail_flow_policy>\n"
    ) in saved  # Use Default: the element is left out
    assert (
        "          <max_rcpts_per_msg>500</max_rcpts_per_msg>\n"
        "          <max_msgs_per_session>1</max_msgs_per_session>\n"
        "          <max_concurrency_per_ip>100</max_concurrency_per_ip>\n"
        "          <max_connections_per_minute_per_ip>600</max_connections_per_minute_per_ip>\n"
        "        </mail_flow_policy>\n"
    ) in saved
    assert (
        "        <default_policy_parameters>\n"
        "          <tls>off</tls>\n"
        "          <tls_verify_client>0</tls_verify_client>\n"
        "          <max_message_size>20971520</max_message_size>\n"
        "          <max_rcpts_per_msg>50</max_rcpts_per_msg>\n"
        "          <max_msgs_per_session>10</max_msgs_per_session>\n"
        "          <max_concurrency_per_ip>20</max_concurrency_per_ip>\n"
        "          <max_connections_per_minute_per_ip>120</max_connections_per_minute_per_ip>\n"
        "        </default_policy_parameters>\n"
    ) in saved
    parsed = parse(saved.encode("latin-1")).config
    assert parsed == config
    assert without_header(render(parsed, SecretMode.PLAIN)) == without_header(saved)

    workflow.commit(admin, "limits")
    stage(admin, lambda: store.edit(CLUSTER_MODE, IN, max_concurrency=1))
    stage(admin, lambda: hat.save_policy(CLUSTER, IN, "THROTTLED", limits={"max_message_size": None}))
    configfile.load(admin, saved.encode("latin-1"), None, "saved.xml")
    assert concurrency() == (150, 75)
    assert policy_limits("THROTTLED") == {**UNSET, "max_message_size": 1048576}
    assert policy_limits("TRUSTED") == {**UNSET, "max_rcpts_per_msg": 500, "max_msgs_per_session": 1}
    assert default_limits()["max_message_size"] == 20971520


def test_a_file_without_limits_gets_the_shipped_ones(admin):
    bare = (
        b"<config><listeners><listener><listener_name>IncomingMail</listener_name>"
        b"<listener_type>public</listener_type><interface_name>Management</interface_name>"
        b"<port>2525</port><certificate_name>Demo</certificate_name>"
        b"<mail_flow_policies><default_policy_parameters><tls>preferred</tls></default_policy_parameters>"
        b"</mail_flow_policies></listener></listeners></config>"
    )
    stage(admin, lambda: store.edit(CLUSTER_MODE, IN, max_concurrency=5))
    workflow.load_document(admin, parse(bare), "bare")
    assert concurrency() == (300, 200)
    assert default_limits() == SHIPPED
    assert policy_limits("ACCEPTED") == UNSET


DOCUMENT = [
    "<config>",  # 1
    "<listeners>",
    "<listener>",  # 3
    "<listener_name>IncomingMail</listener_name>",
    "<listener_type>public</listener_type>",  # 5
    "<interface_name>Management</interface_name>",
    "<port>2525</port>",  # 7
    "<certificate_name>Demo</certificate_name>",
    "<max_concurrency>300</max_concurrency>",  # 9
    "<max_tls_concurrency>200</max_tls_concurrency>",
    "<mail_flow_policies>",  # 11
    "<mail_flow_policy>",
    "<policy_name>ACCEPTED</policy_name>",  # 13
    "<connection_behavior>accept</connection_behavior>",
    "<max_message_size>2048</max_message_size>",  # 15
    "</mail_flow_policy>",
    "<default_policy_parameters>",  # 17
    "<tls>off</tls>",
    "<max_message_size>10485760</max_message_size>",  # 19
    "<max_rcpts_per_msg>50</max_rcpts_per_msg>",
    "<max_msgs_per_session>10</max_msgs_per_session>",  # 21
    "</default_policy_parameters>",
    "</mail_flow_policies>",  # 23
    "<hat>",
    "<sender_group>",  # 25
    "<sender_group_name>ALL</sender_group_name>",
    "<policy>ACCEPTED</policy>",  # 27
    "<host>ALL</host>",
    "</sender_group>",  # 29
    "</hat>",
    "</listener>",  # 31
    "</listeners>",
    "</config>",  # 33
]


def document(**lines: str) -> bytes:
    """DOCUMENT, line N replaced by ``lines['lN']``."""
    text = list(DOCUMENT)
    for key, line in lines.items():
        text[int(key[1:]) - 1] = line
    return ("\n".join(text) + "\n").encode("latin-1")


def test_the_document_loads_with_its_limits(admin):
    configfile.load(admin, document(l9="<max_concurrency>2</max_concurrency>"), None, "limits.xml")
    assert concurrency() == (2, 200)
    assert policy_limits("ACCEPTED") == {**UNSET, "max_message_size": 2048}


@pytest.mark.parametrize(
    "lines,problem",
    [
        (
            {"l9": "<max_concurrency>0</max_concurrency>"},
            "line 9: <max_concurrency> must be between 1 and 10000, not 0",
        ),
        (
            {"l10": "<max_tls_concurrency>10001</max_tls_concurrency>"},
            "line 10: <max_tls_concurrency> must be between 1 and 10000, not 10001",
        ),
        (
            {"l15": "<max_message_size>1000</max_message_size>"},
            "line 15: <max_message_size> must be between 1024 and 104857600, not 1000",
        ),
        (
            {"l15": "<max_message_size>10M</max_message_size>"},
            "line 15: <max_message_size> must be a whole number, not '10M'",
        ),
        (
            {"l20": "<max_rcpts_per_msg>0</max_rcpts_per_msg>"},
            "line 20: <max_rcpts_per_msg> must be between 1 and 10000, not 0",
        ),
        (
            {"l21": "<max_msgs_per_session>100000</max_msgs_per_session>"},
            "line 21: <max_msgs_per_session> must be between 1 and 10000, not 100000",
        ),
        (
            {
                "l21": "<max_msgs_per_session>10</max_msgs_per_session><max_concurrency_per_ip>0</max_concurrency_per_ip>"
            },
            "line 21: <max_concurrency_per_ip> must be between 1 and 10000, not 0",
        ),
        (
            {
                "l21": "<max_msgs_per_session>10</max_msgs_per_session>"
                "<max_connections_per_minute_per_ip>many</max_connections_per_minute_per_ip>"
            },
            "line 21: <max_connections_per_minute_per_ip> must be a whole number, not 'many'",
        ),
    ],  # fmt: skip
    ids=[
        "concurrency",
        "tls-concurrency",
        "size",
        "size-not-a-number",
        "recipients",
        "messages",
        "per-ip-concurrency",
        "per-ip-rate-not-a-number",
    ],  # fmt: skip
)
def test_limits_out_of_range_in_a_file_are_refused_naming_the_line(admin, unchanged, lines, problem):
    with pytest.raises(ConfigFileError) as refusal:
        configfile.load(admin, document(**lines), None, "bad.xml")
    [found] = refusal.value.problems
    assert found.startswith(problem), found
    unchanged()


# --- the gateway: what a sending MTA gets -----------------------------------------------------------------


def connection_refused(gateway) -> bytes:
    """A connection's first words and whether it was closed after them."""
    raw = gateway.raw()
    try:
        return raw.reply() + b" | " + raw.rest()
    finally:
        raw.close()


def test_a_connection_over_the_listener_limit_gets_421_and_is_closed(gateway):
    gateway.stage("one at a time", lambda: store.edit(CLUSTER_MODE, IN, max_concurrency=1))
    assert gateway.commit() == []
    first_icid = gateway.next_icid()
    with gateway.smtp() as first:
        assert first.noop()[0] == 250
        icid = gateway.next_icid()
        assert connection_refused(gateway) == b"421 4.3.2 Too many concurrent connections; try again later | "
        gateway.log.wait(
            f"ICID {icid} refused: listener IncomingMail has its maximum of concurrent connections"
        )
        code, reply = send(first)  # the first goes on
        assert code == 250
    gateway.log.wait(f"ICID {first_icid} close")
    with gateway.smtp() as again:  # its place is free once it has gone
        assert send(again)[0] == 250


def test_a_starttls_over_the_tls_limit_gets_454_and_the_session_goes_on_in_clear(gateway):
    gateway.stage("preferred", lambda: hat.set_default_parameters(CLUSTER, IN, tls="preferred"))
    gateway.stage("one TLS session", lambda: store.edit(CLUSTER_MODE, IN, max_tls_concurrency=1))
    assert gateway.commit() == []
    first_icid = gateway.next_icid()
    with gateway.smtp() as first:
        assert first.starttls(context=client_context())[0] == 220
        with gateway.smtp() as second:
            second.ehlo()
            assert second.has_extn("starttls")
            with pytest.raises(smtplib.SMTPResponseException) as refusal:
                second.starttls(context=client_context())
            assert (refusal.value.smtp_code, refusal.value.smtp_error) == (
                454,
                b"4.7.0 TLS not available due to temporary reason",
            )
            assert send(second)[0] == 250  # Preferred: it may send in the clear
        assert send(first)[0] == 250
    gateway.log.wait(f"ICID {first_icid} close")
    with gateway.smtp() as third:
        assert third.starttls(context=client_context())[0] == 220


def test_a_message_over_the_size_limit_gets_552_and_size_is_advertised(gateway):
    gateway.stage(
        "small", lambda: hat.save_policy(CLUSTER, IN, "ACCEPTED", limits={"max_message_size": 2048})
    )
    assert gateway.commit() == []
    with gateway.smtp() as client:
        client.ehlo()
        assert client.esmtp_features["size"] == "2048"
        assert client.mail("sender@client.test", ["SIZE=4096"]) == (552, TOO_BIG)  # declared too big
        client.rset()
        assert client.mail("sender@client.test")[0] == 250
        assert client.rcpt("rcpt@example.com")[0] == 250
        big = message(body="\r\n".join(["x" * 70] * 60))  # 4 KB in lines of 72 bytes
        assert client.data(big) == (552, TOO_BIG)
        code, reply = send(client)  # a small one still goes
        assert code == 250 and mid_of(reply)


def test_a_recipient_over_the_limit_gets_452(gateway):
    gateway.stage("two", lambda: hat.set_default_parameters(CLUSTER, IN, limits={"max_rcpts_per_msg": 2}))
    assert gateway.commit() == []
    with gateway.smtp() as client:
        client.ehlo()
        assert client.mail("sender@client.test")[0] == 250
        assert client.rcpt("one@example.com")[0] == 250
        assert client.rcpt("two@example.com")[0] == 250
        assert client.rcpt("three@example.com") == (452, b"4.5.3 Too many recipients")
        code, reply = client.data(message())
        assert code == 250
    mid = mid_of(reply)
    gateway.log.wait(f"MID {mid} ICID {gateway.next_icid() - 1} RID 1 To: <two@example.com>")
    assert not any("three@example.com" in line for line in gateway.log.message(mid))


def test_a_message_over_the_session_limit_gets_421_and_the_connection_closes(gateway):
    gateway.stage("one", lambda: hat.save_policy(CLUSTER, IN, "ACCEPTED", limits={"max_msgs_per_session": 1}))
    assert gateway.commit() == []
    raw = gateway.raw()
    try:
        assert raw.reply().startswith(b"220 ")
        assert raw.command("EHLO client.test").startswith(b"250")
        assert raw.command("MAIL FROM:<sender@client.test>").startswith(b"250")
        assert raw.command("RCPT TO:<rcpt@example.com>").startswith(b"250")
        assert raw.command("DATA").startswith(b"354")
        assert raw.command(message() + b".").startswith(b"250 2.0.0 Ok: Message")
        assert raw.command("MAIL FROM:<sender@client.test>").startswith(
            b"421 4.7.0 Too many messages in this session"
        )
        assert raw.rest() == b""  # closed
    finally:
        raw.close()
