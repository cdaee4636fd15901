"""Monitor > Queue: what delivery recorded of each message, the recipients waiting by domain, and
Retry Now, Bounce and Delete, asked of the delivery engine through the spool and audited.

Real spool files (``Spool.accept``) and state files (``Spool.save_state``); the requests are read
back as the delivery engine reads them (``Spool.take_requests``), and once acted on by a real
``Delivery``."""

from __future__ import annotations

import asyncio
import html
import os
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from appliance.models import AuditEvent
from gateway import spool
from gateway.delivery.engine import Delivery
from gateway.smtpd import Shared
from gateway.spool import DeliveryState, Envelope, IdCounter, Spool
from gateway.views import monitor as mail_monitor
from tests.gateway_fixtures import mail_log_fixture  # noqa: F401 (fixture)

RECEIVED = "2026-11-27T22:41:07+00:00"
QUEUE = reverse("queue")
ACTION = reverse("queue_action")


@pytest.fixture(autouse=True)
def queue_root(tmp_path, monkeypatch):
    """A spool of this test's own: the session's DATA_DIR keeps what other tests wrote."""
    root = tmp_path / "spool"
    monkeypatch.setattr(spool, "spool_dir", lambda: root)
    return root


def enqueue(mid: int, recipients=("bob@example.com",), sender="alice@example.org", received=RECEIVED):
    envelope = Envelope(
        mid=mid,
        mail_from=sender,
        rcpt_tos=list(recipients),
        received=received,
        icid=7,
        listener="IncomingMail",
        peer="192.0.2.25",
    )
    Spool().accept(envelope, b"Subject: hello\r\nMessage-ID: <m%d@example.org>\r\n\r\nHi.\r\n" % mid)


def save_state(mid: int, seen: datetime | None = None, **fields) -> None:
    """A state file as delivery writes it; ``seen``: when it was written (its mtime)."""
    Spool().save_state(mid, DeliveryState(**fields))
    if seen is not None:
        path = Spool().queue / f"{mid}{spool.STATE}"
        os.utime(path, (seen.timestamp(), seen.timestamp()))


def text_of(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def row_of(page: str, mid: int) -> str:
    """The text of the message list's row of ``mid``."""
    start = page.index(f">{mid}</a>")
    return text_of(page[page.rindex("<tr", 0, start) : page.index("</tr>", start)])


def domain_rows(page: str) -> list[str]:
    table = page[page.index('id="queue-domains"') :]
    table = table[: table.index("</table>")]
    return [text_of(row) for row in re.findall(r"<tr>(.*?)</tr>", table, re.DOTALL)]


def banners(response) -> list[str]:
    return [
        text_of(found)
        for found in re.findall(r'id="action-results-message">(.*?)</span>', response.content.decode())
    ]


def post(client, action: str, *mids, confirmed=True, follow=True, **extra):
    data = {"action": action, "mid": [str(mid) for mid in mids], **extra}
    if confirmed:
        data["confirmed"] = "1"
    return client.post(ACTION, data, follow=follow)


def queue_events() -> list[tuple[str, str, str]]:
    return [
        (event.user_name, event.detail, event.source)
        for event in AuditEvent.objects.filter(action=AuditEvent.Action.QUEUE).order_by("id")
    ]


# --- what the page shows -----------------------------------------------------------------------


def test_each_message_shows_its_attempts_next_attempt_and_last_error(login, admin, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    enqueue(51)  # never tried: no state file
    enqueue(52)
    save_state(
        52,
        attempts=3,
        next_attempt="2126-11-27T22:51:07+00:00",
        last_error="4.4.0 - Other network problem ([Errno 111] Connect call failed ('192.0.2.1', 25))",
    )
    enqueue(53)
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    save_state(53, attempts=1, next_attempt=past, last_error="4.7.5 - <b>TLS</b> was required")
    page = login(admin).get(QUEUE).content.decode()
    assert "<th>Attempts</th><th>Next attempt</th><th>Last error</th>" in page
    assert row_of(page, 51).endswith("none 0 now Retry Now Bounce Delete")
    second = row_of(page, 52)
    assert "none 3 Wed Nov 27 23:51:07 2126 " in second  # local time, not UTC
    assert "4.4.0 - Other network problem ([Errno 111] Connect call failed ('192.0.2.1', 25))" in second
    third = row_of(page, 53)
    assert "none 1 now 4.7.5 - <b>TLS</b> was required" in third  # due: "now", not a time past
    assert "&lt;b&gt;TLS&lt;/b&gt;" in page and "<b>TLS</b>" not in page


def test_by_destination_domain_counts_the_recipients_still_waiting(login, admin, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    now = datetime.now(UTC)
    enqueue(61, ["a@example.com", "b@example.com", "c@other.test"])
    save_state(
        61,
        seen=now - timedelta(minutes=10),
        done={"a@example.com": "delivered"},
        attempts=2,
        last_error="4.4.0 - Connection lost",
    )
    enqueue(62, ["d@Example.COM"], received="2026-11-26T10:00:00+00:00")
    enqueue(63, ["e@other.test", "f@other.test"], received="2026-11-28T08:00:00+00:00")
    save_state(63, seen=now - timedelta(minutes=1), attempts=1, last_error="4.7.5 - TLS was required")
    enqueue(64, ["g@done.test"])  # every recipient done: leaving the queue, not waiting
    save_state(64, done={"g@done.test": "delivered"})
    page = login(admin).get(QUEUE).content.decode()
    assert "By destination domain" in page
    local = ZoneInfo("Europe/Berlin")
    seen_61 = f"{(now - timedelta(minutes=10)).astimezone(local):%a %b %d %H:%M:%S %Y}"
    seen_63 = f"{(now - timedelta(minutes=1)).astimezone(local):%a %b %d %H:%M:%S %Y}"
    assert domain_rows(page) == [
        "Domain Messages Recipients pending Oldest received Last error seen",
        # 3 pending: f and e of 63, c of 61; the newer error is 63's
        f"other.test 2 3 Fri Nov 27 23:41:07 2026 4.7.5 - TLS was required (MID 63, {seen_63})",
        # b of 61 and d of 62 (the domain in lower case, as delivery groups it); oldest: 62
        f"example.com 2 2 Thu Nov 26 11:00:00 2026 4.4.0 - Connection lost (MID 61, {seen_61})",
    ]
    assert "done.test" in row_of(page, 64)  # listed, but no longer waiting for its domain


def test_the_domain_summary_caps_its_work_and_says_so(login, admin, monkeypatch):
    monkeypatch.setattr(mail_monitor, "SUMMARY_LIMIT", 2)
    monkeypatch.setattr(mail_monitor, "DOMAINS_SHOWN", 1)
    enqueue(71, ["a@one.test", "b@one.test"])
    enqueue(72, ["c@two.test"])
    enqueue(73, ["d@three.test"])  # beyond the limit: not counted
    page = login(admin).get(QUEUE).content.decode()
    assert [row.split()[:3] for row in domain_rows(page)[1:]] == [["one.test", "1", "2"]]
    assert "The 1 domain with the most recipients pending, of 2." in page
    assert "Counted over the oldest 2 of the 3 messages in the queue." in page
    assert ">73</a>" in page  # the list itself is whole


def test_an_empty_queue_says_no_recipient_waits(login, admin):
    page = login(admin).get(QUEUE).content.decode()
    assert "No recipient is waiting for delivery." in page
    assert 'id="queue-bulk"' not in page


def test_the_search_partial_has_the_new_columns_but_not_the_summary(login, admin):
    enqueue(75, ["a@one.test"])
    save_state(75, attempts=4, last_error="4.4.0 - Connection lost")
    page = login(admin).get(QUEUE, {"q": "75"}, HTTP_HX_REQUEST="true").content.decode()
    assert "4.4.0 - Connection lost" in row_of(page, 75)
    assert "By destination domain" not in page and "<html" not in page
    assert 'name="back" value="q=75"' in page  # an action comes back to this search


# --- the actions ---------------------------------------------------------------------------------


def test_retry_now_asks_delivery_and_is_audited(login, operator):
    enqueue(81)
    response = post(login(operator), "retry", 81, confirmed=False)
    assert response.redirect_chain == [(QUEUE, 302)]
    assert banners(response) == ["Delivery will retry MID 81 within a second."]
    assert Spool().take_requests() == [(81, "retry")]
    assert queue_events() == [("olivia", "asked delivery to retry MID 81", "GUI 127.0.0.1")]


@pytest.mark.parametrize(
    "action,label,done",
    [
        (
            "bounce",
            "Bounce",
            "Delivery will bounce MID 82 within a second, with a delivery status notification to the sender.",
        ),
        ("delete", "Delete", "Delivery will delete MID 82 within a second, without notifying the sender."),
    ],
)
def test_bounce_and_delete_ask_again_first(login, admin, action, label, done):
    enqueue(82, ["bob@example.com", "carol@example.net"])
    client = login(admin)
    response = post(client, action, 82, confirmed=False, back="q=bob&page=1")
    page = response.content.decode()
    assert response.status_code == 200
    assert f"{label} 1 message?" in text_of(page)
    form = page[page.index('id="queue-confirm"') :]
    assert '<input type="hidden" name="mid" value="82">' in form
    assert f'<input type="hidden" name="action" value="{action}">' in form
    assert '<input type="hidden" name="confirmed" value="1">' in form
    assert f">{label} 1 message</button>" in form
    assert f'<a href="{QUEUE}?q=bob&amp;page=1">Cancel</a>' in form
    assert Spool().take_requests() == [] and queue_events() == []  # nothing yet

    response = post(client, action, 82, back="q=bob&page=1")
    assert response.redirect_chain == [(f"{QUEUE}?q=bob&page=1", 302)]
    assert banners(response) == [done]
    assert Spool().take_requests() == [(82, action)]
    assert queue_events() == [("admin", f"asked delivery to {action} MID 82", "GUI 127.0.0.1")]


def test_the_selected_messages_at_once(login, admin):
    for mid in (91, 92, 93):
        enqueue(mid)
    client = login(admin)
    page = client.get(QUEUE).content.decode()
    assert '<form method="post" action="/monitor/queue/action/" id="queue-bulk"' in page
    assert '<input type="checkbox" name="mid" value="92" form="queue-bulk"' in page

    confirming = post(client, "delete", 91, 93, confirmed=False).content.decode()
    assert "Delete 2 messages?" in text_of(confirming) and ">92<" not in confirming

    response = post(client, "delete", 91, 93)
    assert banners(response) == [
        "Delivery will delete MIDs 91, 93 within a second, without notifying the sender."
    ]
    assert sorted(Spool().take_requests()) == [(91, "delete"), (93, "delete")]
    assert [detail for _, detail, _ in queue_events()] == [
        "asked delivery to delete MID 91",
        "asked delivery to delete MID 93",
    ]

    response = post(client, "retry", confirmed=False)  # nothing ticked
    assert banners(response) == ["Select the messages to retry."]
    assert Spool().take_requests() == []


def test_a_message_gone_meanwhile_is_said_plainly(login, admin):
    enqueue(95)
    client = login(admin)
    response = post(client, "retry", 95, 96, confirmed=False)
    assert response.status_code == 200
    assert banners(response) == [
        "Delivery will retry MID 95 within a second.",
        "MID 96 is no longer in the queue (delivered, bounced or deleted meanwhile): nothing to retry.",
    ]
    assert Spool().take_requests() == [(95, "retry")]
    assert [detail for _, detail, _ in queue_events()] == ["asked delivery to retry MID 95"]  # none for 96

    # Gone before the confirmation: said at once; gone between it and the answer: said then.
    response = post(client, "bounce", 97, 98, confirmed=False)
    assert banners(response) == [
        "MIDs 97, 98 are no longer in the queue (delivered, bounced or deleted meanwhile): nothing to bounce."
    ]
    confirming = post(client, "bounce", 95, 97, confirmed=False).content.decode()
    assert "No longer in the queue, so not listed: MID 97." in confirming
    Spool().remove(95)
    response = post(client, "bounce", 95)
    assert response.status_code == 200
    assert banners(response) == [
        "MID 95 is no longer in the queue (delivered, bounced or deleted meanwhile): nothing to bounce."
    ]
    assert Spool().take_requests() == [] and len(queue_events()) == 1


def test_an_unknown_action_or_a_get_is_refused(login, admin):
    enqueue(99)
    client = login(admin)
    assert post(client, "release", 99, follow=False).status_code == 400
    assert client.get(ACTION).status_code == 405
    assert Spool().take_requests() == []


# --- who may act --------------------------------------------------------------------------------


def test_a_read_only_operator_sees_the_queue_without_actions_and_may_not_act(login, read_only):
    enqueue(101)
    save_state(101, attempts=1, last_error="4.4.0 - Connection lost")
    client = login(read_only)
    page = client.get(QUEUE).content.decode()
    assert "4.4.0 - Connection lost" in row_of(page, 101) and "By destination domain" in page
    assert "Retry Now" not in page and "queue_action" not in page and ACTION not in page
    assert 'type="checkbox"' not in page
    for action in ("retry", "bounce", "delete"):
        assert post(client, action, 101, follow=False).status_code == 403
        assert post(client, action, 101, confirmed=False, follow=False).status_code == 403
    assert Spool().take_requests() == [] and queue_events() == []


def test_a_guest_may_neither_see_nor_act(login, guest):
    enqueue(102)
    client = login(guest)
    assert client.get(QUEUE).status_code == 403
    assert post(client, "delete", 102, follow=False).status_code == 403
    assert Spool().take_requests() == []


def test_signed_out_requests_go_to_the_login(https_client):
    enqueue(103)
    response = https_client.post(ACTION, {"action": "delete", "mid": "103", "confirmed": "1"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert Spool().take_requests() == []


def test_the_action_view_needs_the_commit_capability():
    assert mail_monitor.queue_action.required_capability == mail_monitor.QUEUE_ACTIONS


# --- the delivery engine acting on the requests -----------------------------------------------


def test_delivery_deletes_bounces_and_retries_as_asked(login, operator, appliance, tmp_path, mail_log):
    enqueue(111, ["bob@example.com", "carol@example.net"])
    save_state(111, done={"bob@example.com": "delivered"}, attempts=2, last_error="4.4.0 - Connection lost")
    enqueue(112, ["dave@example.com"])
    enqueue(113, ["erin@example.com"])
    save_state(113, attempts=1, next_attempt=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    client = login(operator)
    post(client, "bounce", 111)
    post(client, "delete", 112)
    post(client, "retry", 113)

    run = tmp_path / "run"
    run.mkdir()
    (run / "mid").write_text("5000\n")
    shared = Shared(
        icids=IdCounter(run / "icid"),
        mids=IdCounter(run / "mid"),
        dcids=IdCounter(run / "dcid"),
        spool=Spool(),
    )
    config = appliance.running_config()
    engine = Delivery(shared, lambda: config)
    asyncio.run(engine.follow_requests())

    queue = Spool()
    assert queue.mids() == [113, 5000]  # 111 bounced, 112 deleted; the DSN waits for delivery
    assert not (queue.queue / f"111{spool.STATE}").exists()
    notice, report = queue.read(5000)
    assert (notice.mail_from, notice.rcpt_tos, notice.extra) == (
        "",
        ["alice@example.org"],
        {"bounce_of": 111},
    )
    assert b"carol@example.net" in report and b"5.0.0 - Bounced by an administrator" in report
    assert b"Final-Recipient: rfc822; bob@example.com" not in report  # delivered before: not bounced
    assert b"<m111@example.org>" in report and b"<m112@example.org>" not in report  # no DSN for 112
    assert "Bounced: MID 111 to RID 1 - 5.0.0 - Bounced by an administrator" in mail_log.lines
    assert "MID 112 deleted from the queue by an administrator" in mail_log.lines
    assert engine.when == {5000: 0.0, 113: 0.0}  # the DSN and the retry: both due now
    assert queue.take_requests() == []
