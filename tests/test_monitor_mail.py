"""Monitor > Queue, Monitor > Mail Logs, System Administration > Log Subscriptions: real spool files
written by ``Spool.accept`` and real mail_logs lines written by the gateway's logger."""

from __future__ import annotations

import html
import logging
import re
import time

import pytest
from django.urls import reverse

from gateway import maillog, spool
from gateway.spool import Envelope, Spool
from gateway.views import monitor as mail_monitor

RECEIVED = "2026-11-27T22:41:07+00:00"


@pytest.fixture
def mail_data(tmp_path, monkeypatch):
    """A spool and a mail_logs of this test's own: the session's DATA_DIR keeps what other tests wrote.

    The gateway's logger gets a handler on this test's file (``open_log``), which is closed after.
    """
    root = tmp_path / "data"
    monkeypatch.setattr(spool, "spool_dir", lambda: root / "spool")
    monkeypatch.setattr(maillog, "log_path", lambda: root / "logs" / maillog.FILE_NAME)
    logger = maillog.logger
    handlers, level, propagate = logger.handlers, logger.level, logger.propagate
    logger.handlers = []
    yield root
    for handler in logger.handlers:
        handler.close()
    logger.handlers, logger.propagate = handlers, propagate
    logger.setLevel(level)


def enqueue(mid: int, sender: str = "alice@example.org", recipients=("bob@example.com",), **extra) -> None:
    envelope = Envelope(
        mid=mid,
        mail_from=sender,
        rcpt_tos=list(recipients),
        received=extra.pop("received", RECEIVED),
        icid=extra.pop("icid", 7),
        listener=extra.pop("listener", "IncomingMail"),
        peer=extra.pop("peer", "192.0.2.25"),
        tls=extra.pop("tls", ""),
    )
    Spool().accept(envelope, extra.pop("data", b"Subject: hello\r\n\r\nHi Bob.\r\n"))


def log_lines(*lines: str) -> None:
    maillog.open_log()
    for line in lines:
        maillog.info(line)


def shown_lines(page: str) -> list[str]:
    """The text of the mail log lines a page shows, top to bottom."""
    return [html.unescape(re.sub(r"<[^>]+>", "", line)) for line in re.findall(r"<div>(.*?)</div>", page)]


def write_log(name: str, lines: list[str]) -> None:
    """A file in the ESA's format, as a rotated file holds it."""
    path = maillog.log_path().with_name(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(f"Thu Nov 26 10:00:{n % 60:02d} 2026 Info: {line}\n" for n, line in enumerate(lines))
    )


# --- Monitor > Queue ---------------------------------------------------------------


def test_queue_lists_waiting_messages_with_envelope_and_totals(login, admin, mail_data, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    enqueue(11, recipients=["bob@example.com", "carol@example.com", "dan@example.com", "eve@example.com"])
    enqueue(
        12,
        sender="",
        tls="TLSv1.3 TLS_AES_256_GCM_SHA384",
        peer="198.51.100.9",
        listener="Outbound",
        data=b"x" * 2048,
    )
    page = login(admin).get(reverse("queue")).content.decode()
    assert '<td id="queue-count">2</td>' in page
    first = page.index(">11</a>")
    assert first < page.index(">12</a>")  # oldest first
    row = page[first : page.index("</tr>", first)]
    assert "Fri Nov 27 23:41:07 2026" in row  # local time, not UTC
    assert "alice@example.org" in row
    assert "4: bob@example.com, carol@example.com, dan@example.com and 1 more" in row
    assert "eve@example.com" not in row
    assert "IncomingMail" in row and "192.0.2.25" in row and "<td>none</td>" in row
    second = page[page.index(">12</a>") :]
    assert "&lt;&gt;" in second  # the null sender
    assert "TLSv1.3 TLS_AES_256_GCM_SHA384" in second and "198.51.100.9" in second and "Outbound" in second
    assert "2.0\xa0KB" in second


def test_queue_search_by_mid_sender_and_recipient(login, admin, mail_data):
    enqueue(21, sender="alice@example.org", recipients=["bob@example.com"])
    enqueue(22, sender="mallory@evil.example", recipients=["Carol@Example.com"])
    enqueue(121, sender="", recipients=["postmaster@example.com"])
    client = login(admin)

    def mids(query: str) -> set[str]:
        page = client.get(reverse("queue"), {"q": query}).content.decode()
        return {mid for mid in ("21", "22", "121") if f">{mid}</a>" in page}

    assert mids("22") == {"22"}
    assert mids("MID 121") == {"121"}
    assert mids("EVIL") == {"22"}
    assert mids("carol@example") == {"22"}
    assert mids("<alice@example.org>") == {"21"}
    assert mids("<>") == {"121"}
    page = client.get(reverse("queue"), {"q": "nobody"}).content.decode()
    assert "No message in the queue matches “nobody”." in page
    assert "0 of 3 messages match" in page


def test_queue_search_by_htmx_answers_the_table_only(login, admin, mail_data):
    enqueue(31)
    response = login(admin).get(reverse("queue"), {"q": "31"}, HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert ">31</a>" in page
    assert "<html" not in page and "Summary" not in page


def test_queue_is_paginated_fifty_a_page(login, admin, mail_data):
    for mid in range(1, 53):
        enqueue(mid, data=b"Subject: s\r\n\r\n" + b"y" * 10)
    client = login(admin)
    first = client.get(reverse("queue")).content.decode()
    assert ">50</a>" in first and ">51</a>" not in first
    assert "Page 1 of 2" in first and '<td id="queue-count">52</td>' in first
    second = client.get(reverse("queue"), {"page": 2}).content.decode()
    assert ">51</a>" in second and ">52</a>" in second and ">50</a>" not in second


def test_queue_escapes_addresses_from_the_internet(login, admin, mail_data):
    enqueue(
        41, sender="<script>alert(1)</script>@evil.example", recipients=['"><img src=x onerror=alert(2)>']
    )
    page = login(admin).get(reverse("queue")).content.decode()
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;@evil.example" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page


def test_empty_queue_on_a_fresh_appliance(login, admin, mail_data):
    assert not (mail_data / "spool").exists()
    page = login(admin).get(reverse("queue")).content.decode()
    assert "The queue is empty." in page
    assert '<td id="queue-count">0</td>' in page
    assert (mail_data / "spool" / "queue").is_dir()


# --- Monitor > Mail Logs -------------------------------------------------------------


def test_mail_logs_show_the_gateway_lines_escaped(login, admin, mail_data):
    log_lines(
        "New SMTP ICID 5 interface Management (127.0.0.1) address 127.0.0.1 reverse dns host unknown verified no",
        "ICID 5 ACCEPT SG UNKNOWNLIST match ALL",
        "ICID 5 TLS success protocol TLSv1.3 cipher TLS_AES_256_GCM_SHA384",
        "Start MID 9 ICID 5",
        "MID 9 ICID 5 From: <<script>alert(1)</script>@evil.example>",
    )
    maillog.warning("ICID 5 error: ValueError: boom")
    page = login(admin).get(reverse("mail_logs")).content.decode()
    assert "TLS success protocol TLSv1.3 cipher TLS_AES_256_GCM_SHA384" in page
    assert "<script>alert(1)" not in page
    assert "&lt;&lt;script&gt;alert(1)&lt;/script&gt;@evil.example&gt;" in page
    lines = shown_lines(page)
    assert len(lines) == 6
    assert lines[1].endswith("Info: ICID 5 ACCEPT SG UNKNOWNLIST match ALL")  # as written: newest last
    assert lines[1].startswith(time.strftime("%a %b %d", time.localtime()))
    assert lines[-1].endswith("Warning: ICID 5 error: ValueError: boom")
    assert "<strong>Warning:</strong>" in page
    assert f'<a href="{reverse("mail_logs")}?icid=5">ICID 5</a>' in page
    assert f'<a href="{reverse("mail_logs")}?mid=9">MID 9</a>' in page


def test_mail_logs_quick_filters_for_tls(login, admin, mail_data):
    log_lines(
        "ICID 1 TLS success protocol TLSv1.3 cipher TLS_AES_128_GCM_SHA256",
        "ICID 2 TLS failed: [SSL: WRONG_VERSION_NUMBER] wrong version number",
        "ICID 2 lost",
        "ICID 3 TLS was required but remote host did not initiate it",
        "ICID 4 TLS was required for sender <a@example.org> but remote host did not initiate it",
    )
    client = login(admin)

    def shown(tls: str) -> list[str]:
        page = client.get(reverse("mail_logs"), {"tls": tls}).content.decode()
        lines = shown_lines(page)
        assert ("1 line matches." if len(lines) == 1 else f"{len(lines)} lines match.") in page
        return [line.split("Info: ")[1] for line in lines]

    assert shown("success") == ["ICID 1 TLS success protocol TLSv1.3 cipher TLS_AES_128_GCM_SHA256"]
    assert shown("failed") == ["ICID 2 TLS failed: [SSL: WRONG_VERSION_NUMBER] wrong version number"]
    assert [line[:7] for line in shown("required")] == ["ICID 3 ", "ICID 4 "]


def test_mail_logs_search_and_id_filters(login, admin, mail_data):
    log_lines(
        "Start MID 5 ICID 55",
        "MID 5 ICID 55 From: <Alice@Example.org>",
        "Start MID 55 ICID 5",
        "MID 55 ICID 5 RID 0 To: <bob@example.com>",
        "Message finished MID 55 done",
    )
    client = login(admin)

    def shown(**query) -> list[str]:
        return shown_lines(client.get(reverse("mail_logs"), query).content.decode())

    assert len(shown(q="alice@EXAMPLE.ORG")) == 1
    assert len(shown(icid="5")) == 2  # not ICID 55
    assert len(shown(mid="55")) == 3  # not MID 5
    assert len(shown(mid="55", q="rid 0")) == 1
    assert shown(q="nothing like this") == []
    assert "No line matches." in client.get(reverse("mail_logs"), {"q": "nothing"}).content.decode()
    assert len(shown(icid="abc")) == 5  # not a number: no filter


def test_mail_logs_pages_back_into_rotated_files(login, admin, mail_data):
    write_log("mail_logs.2", [f"old line {n}" for n in range(30)])
    write_log("mail_logs.1", [f"middle line {n}" for n in range(30)])
    write_log("mail_logs", [f"new line {n}" for n in range(150)])
    client = login(admin)

    def texts(page: str) -> list[str]:
        return [line.split("Info: ")[1] for line in shown_lines(page)]

    first = client.get(reverse("mail_logs")).content.decode()
    assert texts(first) == [f"new line {n}" for n in range(50, 150)]
    assert "« Older" in first and "Newer »" not in first
    second = client.get(reverse("mail_logs"), {"page": 2}).content.decode()
    assert texts(second) == [
        *(f"old line {n}" for n in range(10, 30)),
        *(f"middle line {n}" for n in range(30)),
        *(f"new line {n}" for n in range(50)),
    ]
    assert "« Older" in second and "Newer »" in second
    third = client.get(reverse("mail_logs"), {"page": 3}).content.decode()
    assert texts(third) == [f"old line {n}" for n in range(10)]
    assert "« Older" not in third
    assert "No lines this far back." in client.get(reverse("mail_logs"), {"page": 9}).content.decode()


def test_mail_logs_search_stops_at_the_cap(login, admin, mail_data, monkeypatch):
    monkeypatch.setattr(mail_monitor, "MAX_MATCHES", 25)
    monkeypatch.setattr(mail_monitor, "LOG_PAGE_SIZE", 10)
    write_log("mail_logs", [f"ICID {n} TLS failed: handshake" for n in range(100)])
    client = login(admin)
    page = client.get(reverse("mail_logs"), {"tls": "failed"}).content.decode()
    assert "More than 25 lines match; these are the newest 25." in page
    assert "Page 1 of 3" in page
    assert [line.split()[7] for line in shown_lines(page)] == [str(n) for n in range(90, 100)]
    last = client.get(reverse("mail_logs"), {"tls": "failed", "page": 3}).content.decode()
    assert [line.split()[7] for line in shown_lines(last)] == [str(n) for n in range(75, 80)]


def test_mail_logs_read_from_the_end_not_the_whole_file(login, admin, mail_data, monkeypatch):
    write_log("mail_logs", [f"ICID {n} close " + "x" * 100 for n in range(40_000)])  # about 5 MB
    assert maillog.log_path().stat().st_size > 5_000_000
    read = []

    class Counting:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def read(self, size=-1):
            data = self.handle.read(size)
            read.append(len(data))
            return data

        def seek(self, *args):
            return self.handle.seek(*args)

    monkeypatch.setattr(mail_monitor, "open", lambda path, mode: Counting(open(path, mode)), raising=False)
    page = login(admin).get(reverse("mail_logs")).content.decode()
    assert shown_lines(page)[-1].endswith("Info: ICID 39999 close " + "x" * 100)
    assert sum(read) <= 2 * mail_monitor.BLOCK_SIZE


def test_newest_lines_joins_lines_across_blocks(mail_data, monkeypatch):
    monkeypatch.setattr(mail_monitor, "BLOCK_SIZE", 7)
    lines = ["short", "a line much longer than one block", "", "x", "last without newline"]
    path = maillog.log_path()
    path.parent.mkdir(parents=True)
    path.write_bytes("\n".join(lines).encode())
    found = list(mail_monitor.newest_lines(mail_monitor.log_files()))
    assert [line.decode() for line in found] == [line for line in reversed(lines) if line]


def test_mail_logs_before_the_gateway_ever_wrote(login, admin, mail_data):
    page = login(admin).get(reverse("mail_logs")).content.decode()
    assert "No mail logs yet" in page


def test_follow_refreshes_the_newest_page_by_htmx(login, admin, mail_data):
    log_lines("ICID 1 close")
    client = login(admin)
    page = client.get(reverse("mail_logs"), {"follow": "1"}).content.decode()
    assert 'hx-trigger="every 5s"' in page
    response = client.get(reverse("mail_logs"), {"follow": "1"}, HTTP_HX_REQUEST="true")
    partial = response.content.decode()
    assert partial.startswith('<div id="mail-log-lines"') and "<html" not in partial
    assert shown_lines(partial)[0].endswith("Info: ICID 1 close")
    assert "every 5s" not in client.get(reverse("mail_logs"), {"follow": "1", "page": 2}).content.decode()


# --- System Administration > Log Subscriptions ---------------------------------------


def test_log_subscriptions_list_mail_logs_and_download(login, admin, mail_data):
    log_lines("ICID 1 TLS success protocol TLSv1.3 cipher TLS_AES_256_GCM_SHA384")
    write_log("mail_logs.1", ["older"])
    write_log("mail_logs.2", ["oldest"])
    client = login(admin)
    page = client.get(reverse("log_subscriptions")).content.decode()
    assert "mail_logs" in page and "IronPort Text Mail Logs" in page
    assert "2 rotated files" in page
    assert reverse("log_download", args=["mail_logs"]) in page
    assert reverse("log_download", args=["mail_logs.2"]) in page
    response = client.get(reverse("log_download", args=["mail_logs"]))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="mail_logs"'
    body = b"".join(response.streaming_content).decode()
    assert body.endswith("Info: ICID 1 TLS success protocol TLSv1.3 cipher TLS_AES_256_GCM_SHA384\n")
    assert int(response["Content-Length"]) == len(body)
    rotated = client.get(reverse("log_download", args=["mail_logs.1"]))
    assert b"".join(rotated.streaming_content).endswith(b"Info: older\n")


def test_only_mail_log_files_can_be_downloaded(login, admin, mail_data):
    write_log("mail_logs", ["a line"])
    maillog.log_path().with_name("console.log").write_text("secret console lines\n")
    client = login(admin)
    for name in ("console.log", "mail_logs.0", "mail_logs.x", "mail_logs.7", "..", "mail_logs.1.bak"):
        assert client.get(reverse("log_download", args=[name])).status_code == 404, name


def test_log_subscriptions_before_the_gateway_ever_wrote(login, admin, mail_data):
    page = login(admin).get(reverse("log_subscriptions")).content.decode()
    assert "none yet" in page and "nothing to download" in page
    assert login(admin).get(reverse("log_download", args=["mail_logs"])).status_code == 404


# --- roles, menus, queries -----------------------------------------------------------

PAGES = [("queue", []), ("mail_logs", []), ("log_subscriptions", []), ("log_download", ["mail_logs"])]


@pytest.mark.parametrize("name,args", PAGES)
def test_guest_is_refused_the_mail_pages(login, guest, mail_data, name, args):
    write_log("mail_logs", ["MID 1 ICID 1 From: <alice@example.org>"])
    response = login(guest).get(reverse(name, args=args))
    assert response.status_code == 403
    assert "alice@example.org" not in response.content.decode()


@pytest.mark.parametrize("name,args", PAGES)
def test_read_only_operator_may_view_the_mail_pages(login, read_only, mail_data, name, args):
    write_log("mail_logs", ["a line"])
    assert login(read_only).get(reverse(name, args=args)).status_code == 200


def test_menus_show_the_pages_to_whoever_may_open_them(login, admin, guest, mail_data):
    page = login(admin).get(reverse("overview")).content.decode()
    for name, label in (
        ("queue", "Queue"),
        ("mail_logs", "Mail Logs"),
        ("log_subscriptions", "Log Subscriptions"),
    ):
        assert f'<a href="{reverse(name)}">{label}</a>' in page
    page = login(guest).get(reverse("overview")).content.decode()
    assert reverse("queue") not in page and reverse("log_subscriptions") not in page


@pytest.mark.parametrize("name", ["queue", "mail_logs", "log_subscriptions"])
def test_pages_make_few_queries_however_much_mail(
    login, admin, mail_data, name, django_assert_max_num_queries
):
    for mid in range(1, 61):
        enqueue(mid)
    write_log("mail_logs", [f"Start MID {n} ICID {n}" for n in range(500)])
    client = login(admin)
    client.get(reverse(name))  # the running configuration is parsed once per process and version
    with django_assert_max_num_queries(6):  # session, user, the page frame: none per message or line
        assert client.get(reverse(name), {"q": "MID 1"}).status_code == 200


def test_received_time_that_is_not_iso_is_shown_as_written(login, admin, mail_data):
    enqueue(51, received="yesterday")
    assert "<td>yesterday</td>" in login(admin).get(reverse("queue")).content.decode()


def test_the_mail_log_rotates_at_its_size_and_keeps_every_line(mail_data, monkeypatch):
    monkeypatch.setattr(maillog, "MAX_BYTES", 400)
    for batch in range(4):  # a poll of the gateway's main process after each batch
        log_lines(*(f"ICID {n} close" for n in range(batch * 5, batch * 5 + 5)))
        maillog.rotate_if_full()
    files = sorted(maillog.log_path().parent.glob("mail_logs*"), key=lambda p: p.name, reverse=True)
    assert len(files) >= 3 and files[-1].name == "mail_logs"  # oldest first, as the names say
    written = [line.split(": ", 1)[1] for p in files for line in p.read_text().splitlines()]
    assert written == [f"ICID {n} close" for n in range(20)]
    assert all(p.stat().st_size < 400 + 5 * 60 for p in files)


def test_another_process_follows_the_rotation_at_its_next_poll(mail_data, monkeypatch, tmp_path):
    monkeypatch.setattr(maillog, "MAX_BYTES", 100)
    log_lines("ICID 1 close")
    other = maillog.MailLogFile(maillog.log_path())  # an inbound process's handler on the same file
    other.setFormatter(maillog.EsaFormatter())

    def other_writes(text):
        other.emit(logging.LogRecord(maillog.logger.name, logging.INFO, "", 0, text, None, None))

    other_writes("ICID 2 close")
    log_lines("ICID 3 close")
    maillog.rotate_if_full()
    other_writes("ICID 4 close")  # before its next poll: still into the rotated file
    other.reopen_if_rotated()
    other_writes("ICID 5 close")
    other.close()
    rotated = maillog.log_path().with_name("mail_logs.1").read_text()
    assert [line.split(": ", 1)[1] for line in rotated.splitlines()] == [
        f"ICID {n} close" for n in (1, 2, 3, 4)
    ]
    assert maillog.log_path().read_text().endswith("Info: ICID 5 close\n")
