"""The gateway's records and the pages over them: Monitor > TLS Connections and Monitor > Message Tracking.

Traffic goes through the gateway for real: smtplib and raw sockets into the committed listener, and the
delivery engine out to ``delivery_fixtures``' receivers. The records are then written as the gateway's
recorder writes them (``flush_records``) and read through the pages.
"""

from __future__ import annotations

import csv
import datetime
import html
import io
import re
import ssl

import pytest
from django.urls import reverse
from django.utils import timezone

from destinations.models import TlsSupport
from gateway.records import RETENTION_DAYS, Recorder
from tests.delivery_fixtures import (  # noqa: F401 (fixtures)
    DOMAIN,
    PLAIN,
    RECIPIENT,
    SENDER,
    TRUSTED,
    message,
    outbound_fixture,
    receivers_fixture,
    server_pki_fixture,
)
from tests.gateway_fixtures import (  # noqa: F401 (fixtures)
    client_context,
    flush_records,
    gateway_fixture,
    loop_thread_fixture,
    mail_log_fixture,
    mid_of,
    send,
)
from tests.test_gateway import MUST_STARTTLS, listener_tls
from tracking.models import Connection, Direction, Event, Message, TlsPolicy, TlsResult

REPORT = reverse("tracking:tls_connections")
TRACKING = reverse("tracking:messages")


def commit_listener_tls(gateway, tls: str) -> None:
    gateway.stage(f"TLS {tls}", listener_tls(tls))
    assert gateway.commit() == []


def record_of(direction: str, cid: int) -> Connection:
    return Connection.objects.of("").get(direction=direction, cid=cid)


def summary(content: str, caption: str) -> dict[str, int]:
    """A summary table of the report: label → count."""
    table = re.search(rf"<caption>{re.escape(caption)}</caption>(.*?)</table>", content, re.S).group(1)
    rows = re.findall(r"<tr><th>(.*?)</th><td>(\d+)</td>", table)
    return {html.unescape(label): int(count) for label, count in rows}


# --- incoming ---------------------------------------------------------------------------------------


def test_each_incoming_connection_is_recorded_with_its_tls_outcome_and_each_message_with_its_subject(gateway):
    commit_listener_tls(gateway, "preferred")

    encrypted = gateway.next_icid()
    with gateway.smtp() as client:
        client.starttls(context=client_context())
        code, reply = send(
            client, sender="alice@partner.test", data=message("Quarterly report", "Figures attached.")
        )
    assert code == 250
    mid = mid_of(reply)

    clear = gateway.next_icid()
    with gateway.smtp() as client:
        assert send(client, sender="bob@plain.test")[0] == 250

    broken = gateway.next_icid()
    raw = gateway.raw()
    raw.reply()  # the banner
    raw.command("EHLO client.test")
    assert raw.command("STARTTLS").startswith(b"220")
    raw.send(b"this is not a TLS ClientHello\r\n" * 4)
    raw.rest()

    commit_listener_tls(gateway, "required")
    refused = gateway.next_icid()
    with gateway.smtp() as client:
        client.ehlo()
        assert client.mail("carol@lazy.test") == (530, MUST_STARTTLS.split(b" ", 1)[1])
    flush_records(gateway.runner, gateway.gateway.shared)

    first = record_of(Direction.INCOMING, encrypted)
    assert (first.policy, first.result, first.protocol, first.messages) == (
        TlsPolicy.PREFERRED,
        TlsResult.SUCCESS,
        "TLSv1.3",
        1,
    )
    assert (first.domain, first.remote_address, first.listener) == (
        "partner.test",
        "127.0.0.1",
        "IncomingMail",
    )
    assert first.cipher and first.ended >= first.started
    second = record_of(Direction.INCOMING, clear)
    assert (second.policy, second.result, second.protocol, second.domain) == (
        TlsPolicy.PREFERRED,
        TlsResult.NONE,
        "",
        "plain.test",
    )
    third = record_of(Direction.INCOMING, broken)
    assert (third.policy, third.result, third.messages, third.domain) == (
        TlsPolicy.PREFERRED,
        TlsResult.FAILED,
        0,
        "127.0.0.1",  # no message: the connection goes by its address
    )
    assert third.detail  # OpenSSL's reason
    fourth = record_of(Direction.INCOMING, refused)
    assert (fourth.policy, fourth.result) == (TlsPolicy.REQUIRED, TlsResult.FAILED)
    assert fourth.detail == "TLS was required but remote host did not initiate it"

    stored = Message.objects.of("").get(mid=mid)
    assert (stored.sender, stored.recipient_list, stored.subject, stored.icid, stored.listener) == (
        "alice@partner.test",
        ["rcpt@example.com"],
        "Quarterly report",
        encrypted,
        "IncomingMail",
    )
    assert stored.incoming_tls == f"TLSv1.3 {first.cipher}"
    assert stored.size > len(message("Quarterly report", "Figures attached."))  # with the Received: trace


def test_the_report_counts_the_incoming_connections_and_messages_by_policy_and_outcome(gateway, login, admin):
    commit_listener_tls(gateway, "preferred")
    for _ in range(2):
        with gateway.smtp() as client:
            client.starttls(context=client_context())
            send(client, sender="a@partner.test")
            send(client, sender="b@partner.test")
    with gateway.smtp() as client:
        send(client, sender="c@plain.test")
    commit_listener_tls(gateway, "required")
    with gateway.smtp() as client:
        client.ehlo()
        client.mail("d@lazy.test")
    flush_records(gateway.runner, gateway.gateway.shared)

    page = login(admin).get(REPORT)

    assert page.status_code == 200
    content = page.content.decode()
    assert summary(content, "Incoming TLS Connections Summary") == {
        "Required TLS: Successful": 0,
        "Required TLS: Failed": 1,
        "Preferred TLS: Successful": 2,
        "Preferred TLS: Failed": 0,
        "Total TLS Connections": 2,
        "Connections without TLS": 2,
        "Total Connections": 4,
    }
    assert summary(content, "Incoming TLS Messages Summary") == {
        "Messages over TLS": 4,
        "Messages without TLS": 1,
        "Total Messages": 5,
    }
    assert summary(content, "Outgoing TLS Connections Summary")["Total Connections"] == 0
    details = re.search(r'id="in".*?class="cols details".*?<tbody>(.*?)</tbody>', content, re.S).group(1)
    # lazy.test's MAIL was refused: its connection goes by the remote address
    assert re.findall(r"<tr><td>([^<]+)</td>", details) == ["partner.test", "127.0.0.1", "plain.test"]
    assert '<rect class="bar-tls"' in content and '<rect class="bar-failed"' in content

    exported = login(admin).get(REPORT, {"range": "day", "format": "csv", "direction": "in"})
    assert exported["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(exported.content.decode())))
    assert rows[0][:3] == ["Domain", "Required TLS: Successful", "Required TLS: Failed"]
    assert rows[1] == ["partner.test", "0", "0", "2", "0", "2", "0", "2", "4"]
    assert rows[2] == ["127.0.0.1", "0", "1", "0", "0", "0", "1", "1", "0"]


# --- outgoing and tracking --------------------------------------------------------------------------


def configure(outbound, mode: str, receiver) -> None:
    outbound.route(DOMAIN, receiver.hop)
    outbound.destination(DOMAIN, mode)
    outbound.commit()


def record_message(outbound, mid: int) -> None:
    """The message's own record, as the listener writes it when it accepts a message."""
    envelope, data = outbound.shared.spool.read(mid)
    outbound.shared.recorder.message(envelope, data)


def test_tracking_shows_each_delivery_attempt_with_its_tls(outbound, receivers, server_pki, login, admin):
    trusted = receivers(TRUSTED)
    configure(outbound, TlsSupport.REQUIRED_VERIFY, trusted)
    mid = outbound.queue(data=message(to=RECIPIENT, subject="Contract draft"))
    record_message(outbound, mid)
    held_on = outbound.next_dcid()
    outbound.deliver(mid)  # the test CA is not trusted yet: held

    outbound.trust(server_pki.authorities.root)
    outbound.commit()
    delivered_on = outbound.next_dcid()
    outbound.deliver(mid)
    trusted.wait()
    flush_records(outbound.runner, outbound.shared)

    events = list(Event.objects.of("").filter(mid=mid))
    assert [(e.kind, e.dcid, e.recipients) for e in events] == [
        (Event.Kind.DELAYED, held_on, RECIPIENT),
        (Event.Kind.DELIVERED, delivered_on, RECIPIENT),
    ]
    assert events[0].text.startswith("4.7.5 - The certificate does not verify (unable to get local issuer")
    assert events[1].text == "Delivered to 127.0.0.1 (127.0.0.1)"

    page = login(admin).get(reverse("tracking:message", args=[mid]))
    assert page.status_code == 200
    content = html.unescape(page.content.decode())
    assert "Contract draft" in content and f"<{SENDER}>" in content
    held = re.search(rf"DCID {held_on}:.*?</td>", content, re.S).group(0)
    assert "TLS Required (required_verify)" in held and "Failed" in held
    assert "certificate <strong>not verified</strong>" in held
    assert "verify error: unable to get local issuer certificate" in held
    delivered = re.search(rf"DCID {delivered_on}:.*?</td>", content, re.S).group(0)
    assert "TLS Required (required_verify)" in delivered
    assert "TLSv1.3" in delivered and "certificate verified" in delivered


def test_a_bounce_is_tracked_on_the_message_and_the_notice_is_a_message_of_its_own(
    outbound, receivers, login, admin
):
    receiver = receivers(TRUSTED, replies={RECIPIENT: "550 5.1.1 No such user"})
    configure(outbound, TlsSupport.PREFERRED, receiver)
    mid = outbound.queue()
    record_message(outbound, mid)
    notice_mid = outbound.shared.mids.next
    outbound.deliver(mid)
    flush_records(outbound.runner, outbound.shared)

    kinds = [(e.kind, e.text) for e in Event.objects.of("").filter(mid=mid)]
    assert kinds[0][0] == Event.Kind.BOUNCED and "550" in kinds[0][1]
    assert kinds[1] == (Event.Kind.NOTICE, f"Bounce notice MID {notice_mid} sent to <{SENDER}>")
    notice = Message.objects.of("").get(mid=notice_mid)
    assert (notice.sender, notice.recipient_list, notice.listener, notice.icid) == ("", [SENDER], "", None)

    listed = login(admin).get(TRACKING, {"recipient": SENDER}).content.decode()
    assert f">{notice_mid}</a>" in listed and f">{mid}</a>" not in listed


# --- searching ----------------------------------------------------------------------------------------


def stored_message(mid: int, sender: str, recipients: list[str], subject: str, hours_ago: float) -> Message:
    return Message.objects.of("").create(
        mid=mid,
        received=timezone.now() - datetime.timedelta(hours=hours_ago),
        icid=mid + 100,
        listener="IncomingMail",
        sender=sender,
        recipients="\n".join(recipients),
        subject=subject,
        size=1000,
    )


@pytest.fixture
def three_messages(db):
    stored_message(1, "alice@partner.test", ["bob@example.com"], "Invoice 42", hours_ago=30)
    stored_message(2, "carol@other.test", ["dave@example.com", "erin@example.com"], "Lunch?", hours_ago=5)
    stored_message(3, "alice@partner.test", ["erin@example.com"], "Re: Invoice 42", hours_ago=1)


def listed_mids(content: str) -> list[int]:
    return [int(mid) for mid in re.findall(r'href="/monitor/message-tracking/(\d+)/"', content)]


@pytest.mark.parametrize(
    "query, mids",
    [
        ({}, [3, 2, 1]),
        ({"sender": "ALICE@partner"}, [3, 1]),
        ({"recipient": "erin@"}, [3, 2]),
        ({"subject": "invoice"}, [3, 1]),
        ({"mid": "2"}, [2]),
        ({"sender": "alice", "subject": "re:"}, [3]),
        ({"sender": "nobody"}, []),
    ],
)
def test_message_tracking_finds_messages_by_sender_recipient_subject_and_mid(
    three_messages, login, admin, query, mids
):
    page = login(admin).get(TRACKING, query)
    assert page.status_code == 200
    assert listed_mids(page.content.decode()) == mids


def test_message_tracking_finds_messages_by_time(three_messages, login, admin):
    local = timezone.localtime
    after = (local() - datetime.timedelta(hours=10)).strftime("%Y-%m-%dT%H:%M")
    before = (local() - datetime.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    assert listed_mids(login(admin).get(TRACKING, {"received_after": after}).content.decode()) == [3, 2]
    assert listed_mids(login(admin).get(TRACKING, {"received_before": before}).content.decode()) == [2, 1]
    both = {"received_after": after, "received_before": before}
    assert listed_mids(login(admin).get(TRACKING, both).content.decode()) == [2]


@pytest.mark.parametrize(
    "query, field, error",
    [
        ({"mid": "abc"}, "mid", "Enter a whole number."),
        ({"mid": "0"}, "mid", "Ensure this value is greater than or equal to 1."),
        ({"received_after": "yesterday"}, "received_after", "Enter a valid date/time."),
        (
            {"received_after": "2026-11-20T10:00", "received_before": "2026-11-20T09:00"},
            "received_before",
            "This is not after the &#x27;Received after&#x27; time.",
        ),
    ],
)
def test_a_bad_search_says_what_is_wrong_and_lists_nothing(three_messages, login, admin, query, field, error):
    page = login(admin).get(TRACKING, query)
    assert page.status_code == 400
    content = page.content.decode()
    assert re.search(rf'id="id_{field}".*?<div class="error">{re.escape(error)}</div>', content, re.S)
    assert listed_mids(content) == []


def test_an_unknown_mid_is_not_found_and_guests_see_no_mail_data(three_messages, login, admin, guest):
    assert login(admin).get(reverse("tracking:message", args=[999])).status_code == 404
    assert login(guest).get(TRACKING).status_code == 403
    assert login(guest).get(REPORT).status_code == 403
    assert login(guest).get(reverse("tracking:message", args=[1])).status_code == 403


# --- the report's time range ----------------------------------------------------------------------------


def stored_connection(cid: int, days_ago: float, result: str = TlsResult.SUCCESS, domain: str = "old.test"):
    started = timezone.now() - datetime.timedelta(days=days_ago)
    return Connection.objects.of("").create(
        direction=Direction.OUTGOING,
        cid=cid,
        started=started,
        ended=started,
        domain=domain,
        remote_address="192.0.2.1",
        policy=TlsPolicy.PREFERRED,
        result=result,
        messages=1,
    )


def test_the_time_range_chooses_the_connections_counted_and_the_bars_drawn(db, login, admin):
    stored_connection(1, days_ago=0.01)
    stored_connection(2, days_ago=3, result=TlsResult.FAILED)
    stored_connection(3, days_ago=20)
    client = login(admin)

    def outgoing(query):
        content = client.get(REPORT, query).content.decode()
        bars = len(re.findall(r"<g><title>", content.split('id="out"')[1]))
        return summary(content, "Outgoing TLS Connections Summary"), bars

    day, bars = outgoing({"range": "day"})
    assert (day["Total Connections"], day["Preferred TLS: Successful"], bars) in {(1, 1, 24), (1, 1, 25)}
    week, bars = outgoing({"range": "week"})
    assert (week["Total Connections"], week["Preferred TLS: Failed"], bars) in {(2, 1, 7), (2, 1, 8)}
    month, _ = outgoing({"range": "month"})
    assert month["Total Connections"] == 3
    today = timezone.localdate()
    custom = {"range": "custom", "start": str(today - datetime.timedelta(days=4)), "end": str(today)}
    chosen, bars = outgoing(custom)
    assert (chosen["Total Connections"], bars) == (2, 5)


@pytest.mark.parametrize(
    "query, field, error",
    [
        ({"range": "custom", "end": "2026-11-20"}, "start", "Give the first day of the custom range."),
        (
            {"range": "custom", "start": "2026-11-20", "end": "2026-11-19"},
            "end",
            "The range ends before it starts (2026-11-20).",
        ),
        (
            {"range": "custom", "start": "2024-01-01", "end": "2026-01-01"},
            "end",
            "A custom range is at most one year.",
        ),
        (
            {"range": "fortnight"},
            "range",
            "Select a valid choice. fortnight is not one of the available choices.",
        ),
        ({"range": "custom", "start": "20.11.2026", "end": "2026-11-21"}, "start", "Enter a valid date."),
    ],
)
def test_a_bad_time_range_says_what_is_wrong(db, login, admin, query, field, error):
    page = login(admin).get(REPORT, query)
    assert page.status_code == 400
    content = page.content.decode()
    assert re.search(
        rf'id="id_{field}".*?<span class="error">{re.escape(html.escape(error))}</span>', content, re.S
    )
    assert "Summary" not in content


def test_records_older_than_the_retention_are_pruned(db):
    stored_connection(1, days_ago=RETENTION_DAYS + 1)
    stored_connection(2, days_ago=RETENTION_DAYS - 1)
    stored_message(5, "a@b.test", ["c@d.test"], "old", hours_ago=24 * (RETENTION_DAYS + 1))
    Recorder.prune(timezone.now() - datetime.timedelta(days=RETENTION_DAYS))
    assert list(Connection.objects.of("").values_list("cid", flat=True)) == [2]
    assert not Message.objects.of("").exists()


def test_a_message_whose_headers_cannot_be_read_is_still_recorded(gateway):
    commit_listener_tls(gateway, "off")
    data = b"Subject: =?x-unknown?q?broken?=\r\nFrom: \xff\xfe\r\n\r\nBody.\r\n"
    with gateway.smtp() as client:
        code, reply = send(client, data=data)
    assert code == 250
    flush_records(gateway.runner, gateway.gateway.shared)
    assert Message.objects.of("").get(mid=mid_of(reply)).size > len(data)


def test_an_ssl_client_certificate_error_is_recorded_as_failed(gateway):
    """A handshake the client gives up on (it trusts nothing the listener sends) is a failed TLS connection."""
    commit_listener_tls(gateway, "preferred")
    icid = gateway.next_icid()
    raw = gateway.raw()
    raw.reply()
    raw.command("EHLO client.test")
    raw.command("STARTTLS")
    strict = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    strict.check_hostname = False  # still verifies the chain: against no CA at all
    with pytest.raises(ssl.SSLError):
        raw.starttls(strict)
    raw.close()
    gateway.log.wait(f"ICID {icid} close")
    flush_records(gateway.runner, gateway.gateway.shared)
    assert record_of(Direction.INCOMING, icid).result == TlsResult.FAILED
