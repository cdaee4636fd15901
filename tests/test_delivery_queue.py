"""Retries and bounces of the delivery engine, against real receiving servers on loopback.

A 4xx answer delays the message with a back-off (``initial_retry``, doubling, capped at
``max_retry_interval``); a 5xx answer bounces at once with a DSN (RFC 3464) that is spooled to the
sender and delivered like any message; the null sender is never bounced; what was delivered is
recorded in the spool, so neither a retry nor a restart sends it again; a message older than
``max_queue_lifetime`` bounces; a ``/dev/null`` route drops the mail; without a route, MX records
(from a DNS server of the test's own) give the hosts, in order.
"""

from __future__ import annotations

import datetime
import email
import email.policy
import re

import pytest

from appliance import interfaces
from appliance.config.levels import CLUSTER, CLUSTER_MODE
from destinations import delivery_settings, store
from destinations.entries import Entry
from gateway.delivery import attempt as delivery
from gateway.delivery.engine import Delivery
from gateway.spool import DeliveryState
from tests.delivery_fixtures import (  # noqa: F401 (fixtures)
    DOMAIN,
    MX_ADDRESS,
    PLAIN,
    RECIPIENT,
    SENDER,
    SENDER_DOMAIN,
    dns_change,
    hop,
    message,
    new_shared,
    outbound_fixture,
    receivers_fixture,
    running,
    server_pki_fixture,
    smtp_port_fixture,
    wait_until,
    zone_fixture,
)
from tests.gateway_fixtures import LOOPBACK, free_port, loop_thread_fixture, mail_log_fixture  # noqa: F401

LATER = "451 4.3.0 Try again later"
UNKNOWN = f"550 5.1.1 <{RECIPIENT}>: Recipient address rejected: User unknown"


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def logged(outbound, pattern: str) -> list[str]:
    return [line for line in outbound.log.lines if re.fullmatch(pattern, line)]


def bounce_mid(outbound, mid: int) -> int:
    [line] = logged(outbound, rf"MID \d+ generated bounce of MID {mid}")
    return int(line.split()[1])


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)


# --- temporary failures: the back-off -------------------------------------------------------------


def attempt_waits(outbound, mid: int, seconds: int) -> None:
    """Deliver once; the next attempt is ``seconds`` away, as the spool and the queue have it."""
    before = now()
    outbound.deliver(mid)
    after = now()
    following = datetime.datetime.fromisoformat(outbound.state(mid).next_attempt)
    assert outbound.delivery.when[mid] == following.timestamp()  # queued for then
    assert (following.timestamp(), mid) in outbound.delivery.due
    # The wait is counted from a moment during the attempt.
    assert (following - after).total_seconds() <= seconds <= (following - before).total_seconds()


def test_a_4xx_answer_delays_with_the_default_initial_wait_when_the_version_has_no_delivery_section(
    outbound, receivers
):
    assert delivery.DEFAULTS == delivery_settings.DEFAULTS  # the engine's defaults are the page's
    destination = receivers(PLAIN, replies={RECIPIENT: LATER})
    outbound.route(DOMAIN, destination.hop)
    outbound.commit()
    outbound.config = {tag: items for tag, items in outbound.config.items() if tag != "delivery"}
    mid = outbound.queue()

    attempt_waits(outbound, mid, delivery.DEFAULTS["initial_retry"])

    state = outbound.state(mid)
    assert (state.attempts, state.done) == (1, {})
    assert state.last_error == "4.3.0 - Temporary failure (451, ['4.3.0 Try again later'])"
    assert logged(outbound, rf"Delayed: MID {mid} .*") == [
        f"Delayed: MID {mid} to RID 0 - 4.3.0 - Temporary failure (451, ['4.3.0 Try again later'])"
    ]
    assert destination.messages == []
    assert outbound.queued() == [mid]


def test_the_wait_doubles_up_to_the_maximum(outbound, receivers):
    destination = receivers(PLAIN, replies={RECIPIENT: LATER})
    outbound.route(DOMAIN, destination.hop)
    outbound.stage(
        "Mail Delivery",
        lambda: delivery_settings.set_delivery(CLUSTER_MODE, initial_retry=120, max_retry_interval=400),
    )
    outbound.commit()
    assert outbound.config["delivery"][0]["initial_retry"] == 120
    mid = outbound.queue()

    for seconds in [120, 240, 400, 400, 400]:
        attempt_waits(outbound, mid, seconds)

    assert delivery_settings.retry_waits(120, 400) == [120, 240, 400]  # as the page describes it
    assert outbound.state(mid).attempts == 5
    assert len(logged(outbound, rf"Delayed: MID {mid} to RID 0 - .*")) == 5


def test_an_unreachable_host_delays_with_a_network_error_and_the_next_host_is_tried(outbound, receivers):
    closed = free_port()
    destination = receivers(PLAIN)
    outbound.route(DOMAIN, hop(f"{LOOPBACK}:{closed}", 1), hop(destination.hop, 2))
    outbound.commit()
    mid, dcid = outbound.queue(), outbound.next_dcid()

    outbound.deliver(mid)

    [received] = destination.messages
    assert received.rcpt_tos == [RECIPIENT]
    assert logged(outbound, rf"Connection Error: DCID {dcid} .*") == logged(
        outbound,
        rf"Connection Error: DCID {dcid} domain: {re.escape(DOMAIN)} IP: 127\.0\.0\.1 port: {closed} "
        r"details: .+ interface: Auto reason: network error",
    )
    assert len(logged(outbound, rf"Connection Error: DCID {dcid} .*")) == 1
    assert f"New SMTP DCID {dcid + 1} interface Auto address {LOOPBACK} port {destination.port}" in (
        outbound.log.lines
    )
    assert outbound.queued() == []


def test_when_no_host_answers_the_message_waits_with_the_network_error(outbound):
    closed = free_port()
    outbound.route(DOMAIN, f"{LOOPBACK}:{closed}")
    outbound.commit()
    mid = outbound.queue()

    outbound.deliver(mid)

    assert outbound.queued() == [mid]
    assert outbound.state(mid).last_error.startswith("4.4.0 - Other network problem (")
    assert logged(outbound, rf"Delayed: MID {mid} to RID 0 - 4\.4\.0 - Other network problem \(.+\)")


# --- permanent failures: bounces --------------------------------------------------------------------


def test_a_5xx_to_rcpt_bounces_at_once_and_the_dsn_reaches_the_sender(outbound, receivers):
    destination = receivers(PLAIN, replies={RECIPIENT: UNKNOWN})
    sender_side = receivers(PLAIN, hostname=f"mx.{SENDER_DOMAIN}")
    outbound.route(DOMAIN, destination.hop)
    outbound.route(SENDER_DOMAIN, sender_side.hop)
    outbound.commit()

    with outbound.running():
        mid = outbound.queue()
        outbound.enqueue(mid)
        [notice] = sender_side.wait()
        wait_until(lambda: outbound.queued() == [])

    assert destination.messages == []
    why = "5.1.1 - Permanent failure (550, ['5.1.1 <rcpt@dest.test>: Recipient address rejected: User unknown'])"
    assert f"Bounced: MID {mid} to RID 0 - {why}" in outbound.log.lines
    assert not logged(outbound, rf"Delayed: MID {mid} .*")
    dsn = bounce_mid(outbound, mid)
    assert dsn > mid
    assert (notice.mail_from, notice.rcpt_tos) == ("<>", [SENDER])  # MAIL FROM:<> (aiosmtpd says "<>")
    assert_dsn(notice.data, RECIPIENT, why, status="5.1.1")  # the server's own code


def assert_dsn(data: bytes, recipient: str, why: str, status: str = r"5\.\d{1,3}\.\d{1,3}") -> None:
    """A well-formed RFC 3464 report for ``recipient``, with the original's header and not its body."""
    report = parse(data)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    assert report["To"] == SENDER
    assert report["From"] == "Mail Delivery System <MAILER-DAEMON@esa.example.com>"
    assert report["Auto-Submitted"] == "auto-replied"
    assert report["Message-ID"] and report["Date"]
    words, delivery_status, original = report.get_payload()
    assert words.get_content_type() == "text/plain"
    assert f"<{recipient}>: {why}" in words.get_content()
    assert delivery_status.get_content_type() == "message/delivery-status"
    per_message, per_recipient = delivery_status.get_payload()
    assert per_message["Reporting-MTA"] == "dns; esa.example.com"
    assert per_message["Arrival-Date"]
    assert per_recipient["Final-Recipient"] == f"rfc822; {recipient}"
    assert per_recipient["Action"] == "failed"
    assert re.fullmatch(status, per_recipient["Status"]), per_recipient["Status"]
    assert per_recipient["Diagnostic-Code"] == f"smtp; {why}"
    assert original.get_content_type() == "text/rfc822-headers"
    headers = original.get_payload(decode=True)
    assert b"Subject: delivery test\r\n" in headers
    assert b"Message-ID: <delivery-test@origin.test>" in headers
    assert b"Hello." not in headers


def test_a_message_from_the_null_sender_is_never_bounced(outbound, receivers):
    destination = receivers(PLAIN, replies={RECIPIENT: UNKNOWN})
    outbound.route(DOMAIN, destination.hop)
    outbound.commit()
    mid = outbound.queue(sender="")
    mids_before = outbound.shared.mids.next

    outbound.deliver(mid)

    assert outbound.queued() == []  # gone, and no DSN in its place
    assert outbound.shared.mids.next == mids_before
    assert logged(outbound, rf"Bounced: MID {mid} to RID 0 - 5\.1\.1 - Permanent failure .*")
    assert not logged(outbound, r"MID \d+ generated bounce of .*")
    assert destination.mail_commands == [("<>", False)]  # MAIL FROM:<>


@pytest.mark.parametrize("lifetime", [None, 600], ids=["shipped-72-hours", "600-seconds"])
def test_a_message_in_the_queue_longer_than_allowed_bounces(outbound, receivers, lifetime):
    destination = receivers(PLAIN, replies={RECIPIENT: LATER})
    sender_side = receivers(PLAIN)
    outbound.route(DOMAIN, destination.hop)
    outbound.route(SENDER_DOMAIN, sender_side.hop)
    if lifetime:
        outbound.stage(
            "lifetime", lambda: delivery_settings.set_delivery(CLUSTER_MODE, max_queue_lifetime=lifetime)
        )
    outbound.commit()
    allowed = lifetime or delivery.DEFAULTS["max_queue_lifetime"]
    young = outbound.queue(received=now() - datetime.timedelta(seconds=allowed - 120))
    old = outbound.queue(received=now() - datetime.timedelta(seconds=allowed + 60))

    outbound.deliver(young)
    outbound.deliver(old)

    assert logged(outbound, rf"Delayed: MID {young} .*") and not logged(outbound, rf"Bounced: MID {young} .*")
    why = "4.3.0 - Temporary failure (451, ['4.3.0 Try again later']) (in the queue longer than allowed)"
    assert logged(outbound, rf"Bounced: MID {old} .*") == [f"Bounced: MID {old} to RID 0 - {why}"]
    assert not logged(outbound, rf"Delayed: MID {old} .*")
    notice = bounce_mid(outbound, old)
    assert outbound.queued() == [young, notice]
    outbound.deliver(notice)
    [received] = sender_side.messages
    assert_dsn(received.data, RECIPIENT, why)
    assert outbound.queued() == [young]


# --- what is recorded: nothing twice -------------------------------------------------------------------


def test_partial_success_is_recorded_and_the_retry_sends_only_to_the_rest(outbound, receivers):
    other = f"other@{DOMAIN}"
    destination = receivers(PLAIN, replies={other: "452 4.2.2 Mailbox full"})
    outbound.route(DOMAIN, destination.hop)
    outbound.commit()
    mid = outbound.queue([RECIPIENT, other])
    first_dcid = outbound.next_dcid()

    outbound.deliver(mid)

    [first] = destination.messages
    assert first.rcpt_tos == [RECIPIENT]
    state = outbound.state(mid)
    assert (state.done, state.attempts) == ({RECIPIENT: "delivered"}, 1)
    assert state.last_error == "4.2.2 - Temporary failure (452, ['4.2.2 Mailbox full'])"
    assert f"Message done DCID {first_dcid} MID {mid} to RID [0]" in outbound.log.lines
    assert logged(outbound, rf"Delayed: MID {mid} .*") == [
        f"Delayed: MID {mid} to RID 1 - 4.2.2 - Temporary failure (452, ['4.2.2 Mailbox full'])"
    ]

    destination.replies.clear()  # the mailbox has room again
    outbound.deliver(mid)

    assert [m.rcpt_tos for m in destination.messages] == [[RECIPIENT], [other]]
    # Within a few seconds the retry takes the connection the first attempt left open.
    assert f"Message done DCID {first_dcid} MID {mid} to RID [1]" in outbound.log.lines
    assert outbound.queued() == []


def test_a_restart_picks_up_the_queue_and_sends_nothing_twice(outbound, receivers, tmp_path):
    destination = receivers(PLAIN)
    later_port = free_port()  # later.test's server is down for now
    outbound.route(DOMAIN, destination.hop)
    outbound.route("later.test", f"{LOOPBACK}:{later_port}")
    outbound.commit()
    mid = outbound.queue([RECIPIENT, "rcpt@later.test"])
    outbound.deliver(mid)
    assert [m.rcpt_tos for m in destination.messages] == [[RECIPIENT]]
    state = outbound.state(mid)
    assert state.done == {RECIPIENT: "delivered"}

    # The gateway stops and starts again on the same spool.
    restarted = Delivery(new_shared(tmp_path), lambda: outbound.config)
    restarted.recover()
    due = datetime.datetime.fromisoformat(state.next_attempt).timestamp()
    assert restarted.due == [(due, mid)]
    assert restarted.shared.mids.take() > mid  # MIDs keep growing across the restart

    # later.test comes back and the retry time comes (the wait is shortened, not waited out).
    later = receivers(PLAIN, port=later_port)
    state.next_attempt = now().isoformat()
    restarted.shared.spool.save_state(mid, state)
    with running(outbound.runner, restarted):
        [received] = later.wait()
        wait_until(lambda: restarted.shared.spool.mids() == [])

    assert received.rcpt_tos == ["rcpt@later.test"]
    assert [m.rcpt_tos for m in destination.messages] == [[RECIPIENT]]  # not sent again


def test_a_message_recorded_as_delivered_is_removed_without_sending(outbound, receivers):
    """A crash after the record and before the removal: the next attempt sends nothing."""
    destination = receivers(PLAIN)
    outbound.route(DOMAIN, destination.hop)
    outbound.commit()
    mid = outbound.queue()
    outbound.shared.spool.save_state(mid, DeliveryState(done={RECIPIENT: "delivered"}))
    dcid = outbound.next_dcid()

    outbound.deliver(mid)

    assert outbound.queued() == []
    assert destination.messages == [] and destination.mail_commands == []
    assert outbound.next_dcid() == dcid  # no connection at all


# --- where mail goes ---------------------------------------------------------------------------------


def test_a_dev_null_route_drops_the_mail(outbound):
    outbound.route(DOMAIN, "/dev/null")
    outbound.commit()
    mid, dcid = outbound.queue(), outbound.next_dcid()

    outbound.deliver(mid)

    assert outbound.queued() == []
    assert outbound.next_dcid() == dcid
    assert not logged(outbound, rf"(Delayed|Bounced): MID {mid} .*")


def test_without_a_route_the_mx_hosts_are_tried_in_preference_order(outbound, receivers, zone, smtp_port):
    receiver = receivers(PLAIN, address=MX_ADDRESS, port=smtp_port)
    resolver, port = zone(
        f"{DOMAIN}. 300 IN MX 20 backup.{DOMAIN}.\n"
        f"{DOMAIN}. 300 IN MX 10 down.{DOMAIN}.\n"
        f"down.{DOMAIN}. 300 IN A 127.0.0.26\n"  # nothing listens there
        f"backup.{DOMAIN}. 300 IN A {MX_ADDRESS}\n"
    )
    outbound.stage("DNS", dns_change(port))
    outbound.commit()
    mid, dcid = outbound.queue(), outbound.next_dcid()

    outbound.deliver(mid)

    [received] = receiver.messages
    assert received.rcpt_tos == [RECIPIENT]
    assert logged(outbound, rf"Connection Error: DCID {dcid} domain: {DOMAIN} IP: 127\.0\.0\.26 .*")
    assert f"New SMTP DCID {dcid + 1} interface Auto address {MX_ADDRESS} port {smtp_port}" in (
        outbound.log.lines
    )
    # IPv6 Preferred (the shipped Default entry): AAAA before A for each host.
    assert resolver.questions[:5] == [
        (f"{DOMAIN}.", "MX"),
        (f"down.{DOMAIN}.", "AAAA"),
        (f"down.{DOMAIN}.", "A"),
        (f"backup.{DOMAIN}.", "AAAA"),
        (f"backup.{DOMAIN}.", "A"),
    ]
    assert outbound.queued() == []


def test_a_domain_that_does_not_exist_bounces_at_once(outbound, receivers, zone):
    sender_side = receivers(PLAIN)
    _, port = zone(f"{DOMAIN}. 300 IN MX 10 mx.{DOMAIN}.\n")
    outbound.stage("DNS", dns_change(port))
    outbound.route(SENDER_DOMAIN, sender_side.hop)
    outbound.commit()
    mid = outbound.queue(["rcpt@nowhere.test"])

    outbound.deliver(mid)

    why = "nowhere.test does not exist (NXDOMAIN)"
    assert f"Bounced: MID {mid} to RID 0 - {why}" in outbound.log.lines
    notice = bounce_mid(outbound, mid)
    assert outbound.queued() == [notice]
    outbound.deliver(notice)
    [received] = sender_side.messages
    assert_dsn(received.data, "rcpt@nowhere.test", why, status=r"5\.0\.0")


def test_the_message_arrives_byte_for_byte(outbound, receivers):
    destination = receivers(PLAIN)
    outbound.route(DOMAIN, destination.hop)
    outbound.commit()
    data = message() + b".a line that starts with a dot\r\n..\r\n.\r\nlast line\r\n"
    mid = outbound.queue(data=data)

    outbound.deliver(mid)

    [received] = destination.messages
    assert received.data == data
    assert (received.helo, received.peer) == ("esa.example.com", LOOPBACK)  # Auto: the appliance's name


def test_the_delivery_interface_gives_the_source_address_and_the_ehlo_name(outbound, receivers):
    destination = receivers(PLAIN)
    outbound.route(DOMAIN, destination.hop)
    [management] = outbound.config["interfaces"]
    interface = {
        **management,
        "interface_name": "Outgoing",
        "ip": "127.0.0.2",
        "interface_hostname": "out.example.com",
        "httpd_port": None,
        "httpsd_port": None,
    }
    outbound.stage("interface", lambda: interfaces.save(CLUSTER_MODE, None, interface))
    outbound.stage(
        "delivery interface",
        lambda: delivery_settings.set_delivery(CLUSTER_MODE, default_delivery_interface="Outgoing"),
    )
    outbound.commit()
    mid, dcid = outbound.queue(), outbound.next_dcid()

    outbound.deliver(mid)

    [received] = destination.messages
    assert (received.helo, received.peer) == ("out.example.com", "127.0.0.2")
    assert f"New SMTP DCID {dcid} interface 127.0.0.2 address {LOOPBACK} port {destination.port}" in (
        outbound.log.lines
    )


def test_a_domain_without_mx_records_gets_mail_at_its_own_address(outbound, receivers, zone, smtp_port):
    receiver = receivers(PLAIN, address=MX_ADDRESS, port=smtp_port)
    resolver, port = zone(f"{DOMAIN}. 300 IN A {MX_ADDRESS}\n")
    outbound.stage("DNS", dns_change(port))
    outbound.commit()
    mid = outbound.queue()

    outbound.deliver(mid)

    assert [m.rcpt_tos for m in receiver.messages] == [[RECIPIENT]]
    assert resolver.questions[0] == (f"{DOMAIN}.", "MX")


def test_a_null_mx_bounces_at_once(outbound, receivers, zone):
    sender_side = receivers(PLAIN)
    _, port = zone(f"{DOMAIN}. 300 IN MX 0 .\n")
    outbound.stage("DNS", dns_change(port))
    outbound.route(SENDER_DOMAIN, sender_side.hop)
    outbound.commit()
    mid = outbound.queue()

    outbound.deliver(mid)

    assert f"Bounced: MID {mid} to RID 0 - {DOMAIN} accepts no mail (null MX)" in outbound.log.lines
    assert outbound.queued() == [bounce_mid(outbound, mid)]


def test_mail_to_an_address_literal_goes_to_that_address(outbound, receivers, smtp_port):
    """RFC 5321 §5.1: user@[192.0.2.1] is delivered to that address (a relaying listener takes such
    recipients; Destination Controls has entries for addresses)."""
    receiver = receivers(PLAIN, address=MX_ADDRESS, port=smtp_port)
    recipient = f"postmaster@[{MX_ADDRESS}]"
    mid = outbound.queue([recipient])

    outbound.deliver(mid)

    assert [m.rcpt_tos for m in receiver.messages] == [[recipient]]
    assert outbound.queued() == []


def test_messages_to_one_domain_share_a_connection_up_to_the_maximum(outbound, receivers):
    destination = receivers(PLAIN)
    outbound.route(DOMAIN, destination.hop)
    outbound.stage(
        "two a connection",
        lambda: store.save_destination(CLUSTER, Entry(DOMAIN, max_messages_per_connection=2)),
    )
    outbound.commit()
    first_dcid = outbound.next_dcid()
    for _ in range(3):
        outbound.deliver(outbound.queue())

    assert len(destination.messages) == 3
    done = logged(outbound, r"Message done DCID \d+ .*")
    assert [line.split()[3] for line in done] == [str(first_dcid), str(first_dcid), str(first_dcid + 1)]
    assert f"DCID {first_dcid} close" in outbound.log.lines  # closed at its second message


def test_a_burst_to_one_domain_keeps_to_its_concurrent_connections_and_reuses_them(outbound, receivers):
    destination = receivers(PLAIN)
    outbound.route(DOMAIN, destination.hop)
    outbound.stage(
        "two connections",
        lambda: store.save_destination(
            CLUSTER, Entry(DOMAIN, max_connections=2, max_messages_per_connection=100)
        ),
    )
    outbound.commit()
    mids = [outbound.queue() for _ in range(20)]

    with outbound.running():
        for mid in mids:
            outbound.enqueue(mid)  # all due at once: twenty deliveries wait for two connections
        wait_until(lambda: len(destination.messages) == 20)

    opened = logged(outbound, r"New SMTP DCID \d+ .*")
    assert len(opened) == 2, opened  # the waiting deliveries are handed the connections as they finish
    open_now, most = set(), 0
    for line in outbound.log.lines:
        if match := re.fullmatch(r"New SMTP DCID (\d+) .*", line):
            open_now.add(match.group(1))
        elif match := re.fullmatch(r"DCID (\d+) close", line):
            open_now.discard(match.group(1))
        most = max(most, len(open_now))
    assert most <= 2


def test_recipients_per_minute_hold_the_rest_for_later(outbound, receivers):
    destination = receivers(PLAIN)
    outbound.route(DOMAIN, destination.hop)
    outbound.stage(
        "two a minute", lambda: store.save_destination(CLUSTER, Entry(DOMAIN, max_recipients_per_minute=2))
    )
    outbound.commit()
    first, second = outbound.queue([RECIPIENT, f"b@{DOMAIN}"]), outbound.queue([f"c@{DOMAIN}"])
    outbound.deliver(first)
    outbound.deliver(second)

    assert [m.rcpt_tos for m in destination.messages] == [[RECIPIENT, f"b@{DOMAIN}"]]
    assert outbound.state(second).last_error == f"4.7.0 - Recipients per Minute for {DOMAIN} reached"
