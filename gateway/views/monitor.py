"""Pages over the gateway's mail: Monitor > Queue, Monitor > Mail Logs and
System Administration > Log Subscriptions (with the download of a log file).

The queue is ``spool.Spool().messages()``, each with what delivery recorded of it
(``Spool.state``). Its Retry Now, Bounce and Delete are requests the console leaves
in the spool for the delivery engine, in the gateway process (``Spool.request``). The mail logs are read from their end in
blocks, newest line first, across ``mail_logs`` and its rotated files: a page of the
newest lines reads a few blocks, not a 10 MB file, and a search stops after
``MAX_MATCHES`` matching lines.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import BinaryIO

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseBadRequest, QueryDict, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header, urlencode
from django.views.decorators.http import require_POST

from appliance.roles import MAIL_DATA, Capability, can, requires
from appliance.views.common import ConsoleRequest, partial_wanted, source_of
from gateway import alert_mail, maillog, queue_actions, spool
from gateway.spool import DeliveryState

# Retry, bounce and delete take effect at once on the running gateway, as a commit does: the roles
# that may commit (Administrator, Operator) may act on the queue; Read-Only Operator and Guest may not.
QUEUE_ACTIONS = Capability.COMMIT

QUEUE_PAGE_SIZE = 50
RECIPIENTS_SHOWN = 3
SUMMARY_LIMIT = 5000  # the oldest messages whose delivery state "By destination domain" counts
DOMAINS_SHOWN = 25
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
    # What delivery has done with it (``Spool.state``).
    attempts: int = 0
    due_now: bool = True
    next_attempt: datetime | None = None
    next_attempt_text: str = ""
    last_error: str = ""

    @classmethod
    def of(
        cls, message: spool.QueuedMessage, state: DeliveryState | None = None, now: datetime | None = None
    ) -> QueueRow:
        envelope = message.envelope
        state = state or DeliveryState()
        next_attempt = _parse_time(state.next_attempt) if state.next_attempt else None
        now = now or datetime.now(UTC)
        return cls(
            mid=envelope.mid,
            received=_parse_time(envelope.received),
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
            attempts=state.attempts,
            due_now=not state.next_attempt or (next_attempt is not None and next_attempt <= now),
            next_attempt=next_attempt,
            next_attempt_text=state.next_attempt,
            last_error=state.last_error,
        )


def _parse_time(text: str) -> datetime | None:
    """An ISO 8601 time of the spool (UTC when it names no zone); None if it is not one."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass
class DomainRow:
    """One line of "By destination domain": the recipients of a domain that still wait."""

    domain: str
    messages: int = 0
    pending: int = 0
    oldest: datetime | None = None
    last_error: str = ""
    last_error_mid: int | None = None
    last_error_seen: datetime | None = None  # when delivery recorded it (its state file's time)


def _error_seen(queue: spool.Spool, mid: int) -> datetime | None:
    try:
        status = (queue.queue / f"{mid}{spool.STATE}").stat()
    except FileNotFoundError:
        return None  # done meanwhile
    return datetime.fromtimestamp(status.st_mtime, tz=UTC)


def domain_summary(
    queue: spool.Spool, queued: list[spool.QueuedMessage], states: dict[int, DeliveryState]
) -> list[DomainRow]:
    """Per destination domain (as delivery groups recipients): the messages with a recipient there
    not yet done, those recipients, the oldest reception and the newest error recorded for them.

    A message's state holds one last error, that of its latest attempt, not one per domain: a
    message waiting for several domains lends it to each of them.
    """
    rows: dict[str, DomainRow] = {}
    for message in queued:
        envelope, state = message.envelope, states[message.envelope.mid]
        pending = Counter(
            recipient.rpartition("@")[2].lower()
            for recipient in envelope.rcpt_tos
            if recipient not in state.done
        )
        if not pending:
            continue  # done with, about to leave the queue
        received = _parse_time(envelope.received)
        seen = _error_seen(queue, envelope.mid) if state.last_error else None
        for domain, count in pending.items():
            row = rows.get(domain)
            if row is None:
                row = rows[domain] = DomainRow(domain)
            row.messages += 1
            row.pending += count
            if received and (row.oldest is None or received < row.oldest):
                row.oldest = received
            if state.last_error and (
                not row.last_error or (seen and (row.last_error_seen is None or seen >= row.last_error_seen))
            ):
                row.last_error, row.last_error_mid, row.last_error_seen = state.last_error, envelope.mid, seen
    return sorted(rows.values(), key=lambda row: (-row.pending, row.domain))


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


def _back_query(params) -> str:
    """The queue page's search and page number, to come back to after an action."""
    return urlencode({key: params[key] for key in ("q", "page") if params.get(key)})


def _queue_context(request: ConsoleRequest, *, summary: bool = True) -> dict:
    queue = spool.Spool()  # creates the spool on a fresh appliance
    waiting = queue.messages()
    query = request.GET.get("q", "").strip()
    shown = waiting
    if query:
        matches = _queue_matcher(query)
        shown = [message for message in waiting if matches(message.envelope)]
    page = Paginator(shown, QUEUE_PAGE_SIZE).get_page(request.GET.get("page"))
    # Each state is a small file: read for the oldest SUMMARY_LIMIT messages at most, and the page.
    counted = waiting[:SUMMARY_LIMIT] if summary else []
    states = {message.envelope.mid: queue.state(message.envelope.mid) for message in counted}
    now = datetime.now(UTC)
    page.object_list = [
        QueueRow.of(message, states.get(message.envelope.mid) or queue.state(message.envelope.mid), now)
        for message in page.object_list
    ]
    context = {
        "page": page,
        "query": query,
        "total_count": len(waiting),
        "total_size": sum(message.size for message in waiting),
        "match_count": len(shown),
        "may_act": can(request.user, QUEUE_ACTIONS),
        "back": _back_query(request.GET),
    }
    if summary:
        domains = domain_summary(queue, counted, states)
        context |= {
            "domains": domains[:DOMAINS_SHOWN],
            "domain_count": len(domains),
            "summary_capped": len(waiting) > len(counted),
            "summary_limit": SUMMARY_LIMIT,
        }
    return context


@requires(MAIL_DATA)
def queue(request: ConsoleRequest):
    """The messages waiting in the spool, oldest first, 50 a page, searchable; above them, the
    recipients waiting by destination domain."""
    if partial_wanted(request):
        return render(request, "gateway/_queue_table.html", _queue_context(request, summary=False))
    return render(request, "gateway/queue.html", _queue_context(request))


def _gone_text(gone: list[int], action: queue_actions.QueueAction) -> str:
    verb = "is" if len(gone) == 1 else "are"
    return (
        f"{queue_actions.mids_text(gone)} {verb} no longer in the queue (delivered, bounced or deleted meanwhile): "
        f"nothing to {action.label.lower().removesuffix(' now')}."
    )


@requires(QUEUE_ACTIONS)
@require_POST
def queue_action(request: ConsoleRequest):
    """Retry Now, Bounce or Delete for one message (``mid``) or those ticked (several ``mid``).

    Bounce and Delete first show what they would end and ask again (``confirmed=1``), with no script.
    """
    action = queue_actions.ACTIONS_BY_NAME.get(request.POST.get("action", ""))
    if action is None:
        return HttpResponseBadRequest("The queue's actions are Retry Now, Bounce and Delete.")
    back_query = _back_query(QueryDict(request.POST.get("back", "")))
    back = f"{reverse('queue')}?{back_query}" if back_query else reverse("queue")
    mids = sorted(
        {int(value) for value in request.POST.getlist("mid") if value.isascii() and value.isdigit()}
    )
    if not mids:
        messages.error(request, f"Select the messages to {action.label.lower().removesuffix(' now')}.")
        return redirect(back)
    if action.warning and request.POST.get("confirmed") != "1":
        wanted = set(mids)
        queued = [message for message in spool.Spool().messages() if message.envelope.mid in wanted]
        gone = sorted(wanted - {message.envelope.mid for message in queued})
        if not queued:
            messages.warning(request, _gone_text(gone, action))
            return redirect(back)
        confirmation = {
            "action": action,
            "rows": [QueueRow.of(message) for message in queued],
            "gone": queue_actions.mids_text(gone) if gone else "",
            "back": back,
            "back_query": back_query,
        }
        return render(request, "gateway/queue.html", {"confirmation": confirmation})
    asked, gone = queue_actions.ask_delivery(request.user, action.name, mids, source_of(request))
    if asked:
        messages.success(request, action.done.format(mids=queue_actions.mids_text(asked)))
    if gone:
        messages.warning(request, _gone_text(gone, action))
    return redirect(back)


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
    if partial_wanted(request):
        return render(request, "gateway/_mail_log_lines.html", _mail_logs_context(request))
    return render(request, "gateway/mail_logs.html", _mail_logs_context(request))


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
    return render(request, "gateway/log_subscriptions.html", {"subscriptions": [subscription]})


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
    return render(request, "gateway/alerts.html", {"alerts": sent, "shown": alert_mail.SHOWN})
