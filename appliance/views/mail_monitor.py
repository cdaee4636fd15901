"""Read-only pages over the gateway's mail: Monitor > Queue, Monitor > Mail Logs and
System Administration > Log Subscriptions (with the download of a log file).

The queue is ``spool.Spool().messages()``. The mail logs are read from their end in
blocks, newest line first, across ``mail_logs`` and its rotated files: a page of the
newest lines reads a few blocks, not a 10 MB file, and a search stops after
``MAX_MATCHES`` matching lines.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import BinaryIO

from django.core.paginator import Paginator
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import render
from django.utils.http import content_disposition_header

from appliance import maillog, spool
from appliance.roles import Capability, requires
from appliance.views.common import ConsoleRequest
from destinations import alert_mail

# Senders, recipients and log lines are message data, which the ESA keeps from Guests
# (no Message Tracking): whoever may view the configuration may view them.
MAIL_DATA = Capability.VIEW_CONFIG

QUEUE_PAGE_SIZE = 50
RECIPIENTS_SHOWN = 3
LOG_PAGE_SIZE = 100
MAX_MATCHES = 1000
BLOCK_SIZE = 64 * 1024
FOLLOW_SECONDS = 5

LOG_TYPE = "IronPort Text Mail Logs"
TLS_FILTERS = {
    "success": "TLS success",
    "failed": "TLS failed",
    "required": "TLS was required",
}
LINE = re.compile(r"(\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}) (\w+): (.*)", re.DOTALL)
IDS = re.compile(r"\b(ICID|MID) (\d+)\b")
MID_QUERY = re.compile(r"(?:MID\s*)?(\d+)", re.IGNORECASE)


# --- Monitor > Queue --------------------------------------------------------------


@dataclass(frozen=True)
class QueueRow:
    mid: int
    received: datetime | None
    received_text: str
    sender: str
    recipients: list[str]
    recipient_count: int
    more_recipients: int
    size: int
    listener: str
    peer: str
    icid: int
    tls: str

    @classmethod
    def of(cls, message: spool.QueuedMessage) -> QueueRow:
        envelope = message.envelope
        try:
            received = datetime.fromisoformat(envelope.received)
            if received.tzinfo is None:
                received = received.replace(tzinfo=UTC)
        except ValueError:
            received = None
        return cls(
            mid=envelope.mid,
            received=received,
            received_text=envelope.received,
            sender=envelope.mail_from,
            recipients=envelope.rcpt_tos[:RECIPIENTS_SHOWN],
            recipient_count=len(envelope.rcpt_tos),
            more_recipients=max(0, len(envelope.rcpt_tos) - RECIPIENTS_SHOWN),
            size=message.size,
            listener=envelope.listener,
            peer=envelope.peer,
            icid=envelope.icid,
            tls=envelope.tls,
        )


def _queue_matcher(query: str) -> Callable[[spool.Envelope], bool]:
    """A message matches by its MID (``123`` or ``MID 123``) or a part of its sender or a recipient
    (``<>``: the null sender)."""
    needle = query.strip("<>").casefold()
    number = MID_QUERY.fullmatch(query)
    mid = int(number[1]) if number else None

    def matches(envelope: spool.Envelope) -> bool:
        if envelope.mid == mid:
            return True
        if not needle:  # "<>": the null sender of bounces
            return not envelope.mail_from
        return any(needle in address.casefold() for address in [envelope.mail_from, *envelope.rcpt_tos])

    return matches


def _queue_context(request: ConsoleRequest) -> dict:
    messages = spool.Spool().messages()  # creates the spool on a fresh appliance
    query = request.GET.get("q", "").strip()
    shown = messages
    if query:
        matches = _queue_matcher(query)
        shown = [message for message in messages if matches(message.envelope)]
    page = Paginator(shown, QUEUE_PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = [QueueRow.of(message) for message in page.object_list]
    return {
        "page": page,
        "query": query,
        "total_count": len(messages),
        "total_size": sum(message.size for message in messages),
        "match_count": len(shown),
    }


@requires(MAIL_DATA)
def queue(request: ConsoleRequest):
    """The messages waiting in the spool, oldest first, 50 a page, searchable."""
    if request.htmx and not request.htmx.boosted:
        return render(request, "appliance/_queue_table.html", _queue_context(request))
    return render(request, "appliance/queue.html", _queue_context(request))


# --- the log files -----------------------------------------------------------------


@dataclass(frozen=True)
class LogFile:
    name: str
    path: Path
    size: int
    modified: datetime


def log_files() -> list[LogFile]:
    """``mail_logs`` and its rotated files (``mail_logs.1``, …), newest first."""
    current = maillog.log_path()
    pattern = re.compile(re.escape(current.name) + r"(?:\.([1-9][0-9]*))?")
    try:
        candidates = list(current.parent.iterdir())
    except FileNotFoundError:
        return []  # the gateway has not written yet
    found = []
    for path in candidates:
        match = pattern.fullmatch(path.name)
        if match is None:
            continue
        try:
            status = path.stat()
        except FileNotFoundError:
            continue  # rotated away meanwhile
        modified = datetime.fromtimestamp(status.st_mtime, tz=UTC)
        found.append((int(match[1] or 0), LogFile(path.name, path, status.st_size, modified)))
    return [log for _, log in sorted(found, key=lambda pair: pair[0])]


def _blocks_backward(handle: BinaryIO) -> Iterator[bytes]:
    """An open file as blocks of whole lines, the last block first, read from its end."""
    position = handle.seek(0, os.SEEK_END)
    rest = b""
    while position > 0:
        step = min(BLOCK_SIZE, position)
        position -= step
        handle.seek(position)
        data = handle.read(step) + rest
        cut = data.find(b"\n")
        if cut < 0:
            rest = data  # one line longer than a block: read on
            continue
        rest = data[:cut]  # may begin in the block before
        yield data[cut + 1 :]
    yield rest


def newest_lines(files: list[LogFile], wanted: Callable[[bytes], bool] | None = None) -> Iterator[bytes]:
    """Every non-empty line of ``files`` (newest file first) that is ``wanted``, newest line first.

    ``wanted`` is asked about each block first (a block without a match is skipped
    whole), then about each line of a block it wants. The files are opened together
    before reading, so a rotation meanwhile does not move lines from one to the next.
    Close the iterator (``contextlib.closing``) to close them.
    """
    with ExitStack() as stack:
        handles = []
        for log in files:
            try:
                handles.append(stack.enter_context(open(log.path, "rb")))
            except FileNotFoundError:
                continue
        for handle in handles:
            for block in _blocks_backward(handle):
                if wanted is not None and not wanted(block):
                    continue
                for line in reversed(block.split(b"\n")):
                    line = line.rstrip(b"\r")
                    if line.strip() and (wanted is None or wanted(line)):
                        yield line


@dataclass(frozen=True)
class LogFilter:
    text: str = ""
    tls: str = ""  # a key of TLS_FILTERS
    icid: int | None = None
    mid: int | None = None

    @classmethod
    def from_query(cls, params) -> LogFilter:
        def number(name: str) -> int | None:
            value = params.get(name, "").strip()
            return int(value) if value.isdigit() else None

        tls = params.get("tls", "")
        return cls(
            text=params.get("q", "").strip(),
            tls=tls if tls in TLS_FILTERS else "",
            icid=number("icid"),
            mid=number("mid"),
        )

    def __bool__(self) -> bool:
        return bool(self.text or self.tls or self.icid is not None or self.mid is not None)

    def predicate(self) -> Callable[[bytes], bool]:
        """Whether some bytes hold every part of the filter (the text case-insensitive).

        Each part is a search, so a block holding no line that matches is also refused.
        """
        tests: list[Callable[[bytes], object]] = []
        if self.text:
            if self.text.isascii():
                needle = self.text.lower().encode()
                tests.append(lambda data: needle in data.lower())
            else:
                folded = self.text.casefold()
                tests.append(lambda data: folded in data.decode("utf-8", "replace").casefold())
        if self.tls:
            tests.append(re.compile(re.escape(TLS_FILTERS[self.tls].encode()) + rb"\b").search)
        if self.icid is not None:
            tests.append(re.compile(rb"ICID %d(?![0-9])" % self.icid).search)  # not ICID 55 for 5
        if self.mid is not None:
            tests.append(re.compile(rb"MID %d(?![0-9])" % self.mid).search)
        return lambda data: all(test(data) for test in tests)


@dataclass(frozen=True)
class LogLine:
    """One line cut into its time, level and text; the text as (text, kind, number) pieces,
    where ``kind`` is ICID or MID for the numbers the page links to."""

    time: str
    level: str
    pieces: list[tuple[str, str, str]]

    @classmethod
    def of(cls, raw: bytes) -> LogLine:
        text = raw.decode("utf-8", "replace")
        parts = LINE.fullmatch(text)
        time, level, message = parts.groups() if parts else ("", "", text)
        pieces, start = [], 0
        for found in IDS.finditer(message):
            pieces.append((message[start : found.start()], "", ""))
            pieces.append((found[0], found[1], found[2]))
            start = found.end()
        pieces.append((message[start:], "", ""))
        return cls(time, level, [piece for piece in pieces if piece[0]])


@dataclass(frozen=True)
class LogPage:
    lines: list[LogLine]  # oldest first, as ``tail`` shows them
    number: int
    has_older: bool
    match_count: int | None = None  # with a filter: the matches found, up to MAX_MATCHES
    capped: bool = False
    num_pages: int | None = None

    @property
    def older(self) -> int:
        return self.number + 1

    @property
    def newer(self) -> int:
        return self.number - 1


def _page_number(value: str | None) -> int:
    try:
        return max(1, int(value or 1))
    except ValueError:
        return 1


def read_log_page(files: list[LogFile], wanted: LogFilter, number: int) -> LogPage:
    """Page ``number`` (1: the newest lines) of the lines that match ``wanted``.

    Without a filter it reads only back to the page; with one it collects the newest
    matches, up to ``MAX_MATCHES``, and pages through those.
    """
    if not wanted:
        skip = (number - 1) * LOG_PAGE_SIZE
        with closing(newest_lines(files)) as lines:
            taken = list(islice(lines, skip, skip + LOG_PAGE_SIZE + 1))
        shown = taken[:LOG_PAGE_SIZE]
        return LogPage([LogLine.of(line) for line in reversed(shown)], number, len(taken) > LOG_PAGE_SIZE)
    with closing(newest_lines(files, wanted.predicate())) as lines:
        matches = list(islice(lines, MAX_MATCHES + 1))
    capped = len(matches) > MAX_MATCHES
    matches = matches[:MAX_MATCHES]
    num_pages = max(1, -(-len(matches) // LOG_PAGE_SIZE))
    number = min(number, num_pages)
    shown = matches[(number - 1) * LOG_PAGE_SIZE : number * LOG_PAGE_SIZE]
    return LogPage(
        [LogLine.of(line) for line in reversed(shown)],
        number,
        number < num_pages,
        match_count=len(matches),
        capped=capped,
        num_pages=num_pages,
    )


# --- Monitor > Mail Logs -------------------------------------------------------------


def _mail_logs_context(request: ConsoleRequest) -> dict:
    files = log_files()
    wanted = LogFilter.from_query(request.GET)
    page = read_log_page(files, wanted, _page_number(request.GET.get("page")))
    return {
        "files": files,
        "log_page": page,
        "wanted": wanted,
        "tls_filters": TLS_FILTERS,
        "follow": request.GET.get("follow") == "1" and page.number == 1,
        "follow_seconds": FOLLOW_SECONDS,
        "max_matches": MAX_MATCHES,
    }


@requires(MAIL_DATA)
def mail_logs(request: ConsoleRequest):
    """The newest lines of mail_logs (then its rotated files), 100 a page, filtered and searched."""
    if request.htmx and not request.htmx.boosted:
        return render(request, "appliance/_mail_log_lines.html", _mail_logs_context(request))
    return render(request, "appliance/mail_logs.html", _mail_logs_context(request))


# --- System Administration > Log Subscriptions -------------------------------------


@requires(MAIL_DATA)
def log_subscriptions(request: ConsoleRequest):
    """The logs the appliance writes (today: mail_logs), their files and their download."""
    files = log_files()
    current = next((log for log in files if log.name == maillog.FILE_NAME), None)
    subscription = {
        "name": maillog.FILE_NAME,
        "type": LOG_TYPE,
        "files": files,
        "current": current,
        "rotated_count": len([log for log in files if log is not current]),
        "newest": max((log.modified for log in files), default=None),
        "rollover_size": maillog.MAX_BYTES,
        "files_kept": maillog.BACKUPS,
    }
    return render(request, "appliance/log_subscriptions.html", {"subscriptions": [subscription]})


def _chunks(handle: BinaryIO, size: int) -> Iterator[bytes]:
    """The first ``size`` bytes of the file (what it held when opened; it may grow meanwhile)."""
    with handle:
        while size > 0:
            chunk = handle.read(min(BLOCK_SIZE, size))
            if not chunk:
                break
            size -= len(chunk)
            yield chunk


@requires(MAIL_DATA)
def log_download(request: ConsoleRequest, filename: str):
    """One file of mail_logs as text/plain, as it is at this moment."""
    log = next((log for log in log_files() if log.name == filename), None)
    try:
        handle = open(log.path, "rb") if log else None
    except FileNotFoundError:
        handle = None
    if handle is None:
        raise Http404(f"There is no log file '{filename}'.")
    size = os.fstat(handle.fileno()).st_size
    response = StreamingHttpResponse(_chunks(handle, size), content_type="text/plain; charset=utf-8")
    response["Content-Length"] = str(size)
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response


@requires(MAIL_DATA)
def alerts(request: ConsoleRequest):
    """Monitor > Alerts: the alerts the appliance sent, newest first."""
    sent = alert_mail.recent()
    for alert in sent:
        alert.sent_at = datetime.fromisoformat(alert.time)
    return render(request, "appliance/alerts.html", {"alerts": sent, "shown": alert_mail.SHOWN})
