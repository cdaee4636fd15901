"""The required-TLS alert: to System/Warning recipients, through the gateway, once an hour per domain;
Monitor > Alerts lists it."""

from __future__ import annotations

import html

import pytest
from aiosmtpd.controller import Controller
from django.urls import reverse

from appliance import alerts, workflow
from appliance.config.levels import CLUSTER, CLUSTER_MODE
from destinations import routes, store
from destinations.entries import Entry
from gateway import alert_mail
from gateway.delivery.engine import Delivery
from gateway.smtpd import Shared
from gateway.spool import Envelope, IdCounter, Spool
from tests.gateway_fixtures import free_port, loop_thread_fixture  # noqa: F401 (fixture)

SENT = "Warning <System> {host}: TLS was required for example.com but failed"


class Sink:
    """Takes every message, in clear only (no STARTTLS): what a Required destination must not get."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def plain_server():
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, sink
    controller.stop()


@pytest.fixture
def delivery(admin, plain_server, tmp_path, settings):
    settings.DATA_DIR = tmp_path  # the alert record and the spool of this test alone
    port, _ = plain_server

    def change():
        routes.create("example.com", [{"host": f"127.0.0.1:{port}", "priority": None}])
        store.save_destination(CLUSTER, Entry("example.com", tls="required"))
        store.set_destination_controls(CLUSTER_MODE, "", send_tls_required_alert=True)
        alerts.create("ops@alerts.test", ["system"], ["warning"])
        alerts.create("hw@alerts.test", ["hardware"], ["critical"])

    workflow.submit(admin, "required TLS with alerts", change)
    workflow.commit(admin, "required TLS with alerts")
    config = workflow.running_config()
    run = tmp_path / "run"
    shared = Shared(
        icids=IdCounter(run / "icid"),
        mids=IdCounter(run / "mid"),
        dcids=IdCounter(run / "dcid"),
        spool=Spool(),
    )
    return Delivery(shared, lambda: config), config


def attempt(loop_thread, delivery_and_config, envelope_mid=900):
    engine, config = delivery_and_config
    envelope = Envelope(mid=envelope_mid, mail_from="a@sender.test", rcpt_tos=["b@example.com"], received="")
    return loop_thread.run(
        engine.attempts.to_domain(
            config, envelope, b"Subject: x\r\n\r\nx\r\n", "example.com", ["b@example.com"]
        )
    )


def test_a_required_tls_failure_alerts_the_system_warning_recipients_once_an_hour(
    loop_thread, delivery, plain_server
):
    engine, config = delivery
    outcome = attempt(loop_thread, delivery)
    assert list(outcome.temporary) == ["b@example.com"]
    assert "STARTTLS is not in the server's EHLO answer" in outcome.temporary["b@example.com"]
    assert plain_server[1].messages == []  # nothing in clear

    [sent] = alert_mail.recent()
    hostname = engine.hostname()
    assert sent.subject == SENT.format(host=hostname)
    assert sent.recipients == ["ops@alerts.test"]  # not the Hardware/Critical recipient
    envelope, data = engine.shared.spool.read(sent.mid)
    assert (envelope.mail_from, envelope.rcpt_tos) == ("", ["ops@alerts.test"])
    assert b"example.com" in data and b"Auto-Submitted: auto-generated" in data

    attempt(loop_thread, delivery, envelope_mid=901)
    assert len(alert_mail.recent()) == 1  # within the hour: no second alert


def test_no_alert_when_the_setting_is_off(loop_thread, delivery, admin):
    engine, _ = delivery
    workflow.submit(
        admin,
        "alerts off",
        lambda: store.set_destination_controls(CLUSTER_MODE, "", send_tls_required_alert=False),
    )
    workflow.commit(admin, "alerts off")
    config = workflow.running_config()
    engine.running_config = lambda: config
    attempt(loop_thread, (engine, config))
    assert alert_mail.recent() == []


def test_monitor_alerts_lists_what_was_sent(loop_thread, delivery, login, admin):
    attempt(loop_thread, delivery)
    page = html.unescape(login(admin).get(reverse("alerts")).content.decode())
    assert "TLS was required for example.com but failed" in page
    assert "ops@alerts.test" in page


def test_monitor_alerts_says_when_there_are_none(login, admin, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    page = login(admin).get(reverse("alerts")).content.decode()
    assert "No alerts have been sent." in page


def test_a_record_line_cut_short_by_a_crash_is_skipped(loop_thread, delivery, login, admin):
    attempt(loop_thread, delivery)
    with open(alert_mail.log_path(), "a") as handle:
        handle.write('{"time": "2026-11-28T01:00:00+00:00", "alert_cl')  # the crash came mid-line
    [alert] = alert_mail.recent()
    assert alert.subject.endswith("TLS was required for example.com but failed")
    assert login(admin).get(reverse("alerts")).status_code == 200
