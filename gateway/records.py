"""How the gateway keeps its records: in memory as things happen, written in one batch a second.

The SMTP sessions and the delivery engine run on one event loop; a database write per
event would put the disk in every SMTP reply. ``Recorder`` collects model instances
and ``Recorder.run`` writes what has gathered every ``FLUSH_SECONDS`` (and at stop) from
a worker thread, and prunes what is older than ``RETENTION_DAYS`` once an hour. A crash
loses at most the last second of records: never mail, which the spool holds.
"""

from __future__ import annotations

import asyncio
import datetime
import email.parser
import email.policy
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, InterfaceError, close_old_connections, transaction

from gateway.spool import Envelope
from tracking.models import Connection, Direction, Event, Message, TlsPolicy, TlsResult

FLUSH_SECONDS = 1.0
PRUNE_EVERY = datetime.timedelta(hours=1)
RETENTION_DAYS = 90

logger = logging.getLogger(__name__)


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class ConnectionRecord:
    """A connection while it is open; written as a ``Connection`` when it ends."""

    direction: str
    cid: int
    remote_address: str
    domain: str = ""
    remote_host: str = ""
    listener: str = ""
    policy: str = TlsPolicy.OFF
    mode: str = ""
    result: str = TlsResult.NONE
    protocol: str = ""
    cipher: str = ""
    verified: bool | None = None
    detail: str = ""
    messages: int = 0
    started: datetime.datetime = field(default_factory=now)

    def tls_success(self, protocol: str, cipher: str) -> None:
        self.result, self.protocol, self.cipher = TlsResult.SUCCESS, protocol, cipher

    def tls_failed(self, why: str) -> None:
        self.result, self.detail = TlsResult.FAILED, why

    def finished(self) -> Connection:
        if self.policy == TlsPolicy.REQUIRED and self.result == TlsResult.NONE:
            self.result = TlsResult.FAILED  # required, and the peer never got to TLS
            self.detail = self.detail or "TLS was required but was not started"
        self.domain = self.domain or self.remote_host or self.remote_address
        return Connection(**asdict(self), ended=now())


def _headers(data: bytes) -> tuple[str, str]:
    """The Subject and Message-ID of a message, decoded; blank when absent or unreadable."""
    try:
        headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(data)
        return str(headers.get("Subject", ""))[:998], str(headers.get("Message-ID", ""))[:998]
    except Exception:  # a header the parser cannot read must not cost the message its record
        return "", ""


class Recorder:
    def __init__(self):
        self.connections: list[Connection] = []
        self.messages: list[Message] = []
        self.events: list[Event] = []
        self.pruned: datetime.datetime | None = None

    # --- what the gateway tells it ----------------------------------------------------------

    def connection(self, record: ConnectionRecord) -> None:
        self.connections.append(record.finished())

    def message(self, envelope: Envelope, data: bytes) -> None:
        subject, message_id = _headers(data)
        self.messages.append(
            Message(
                mid=envelope.mid,
                received=datetime.datetime.fromisoformat(envelope.received),
                icid=envelope.icid or None,
                listener=envelope.listener,
                sender=envelope.mail_from,
                recipients="\n".join(envelope.rcpt_tos),
                subject=subject,
                message_id=message_id,
                size=len(data),
                incoming_tls=envelope.tls,
            )
        )

    def event(
        self, mid: int, kind: str, text: str, recipients: Iterable[str] = (), dcid: int | None = None
    ) -> None:
        self.events.append(
            Event(mid=mid, time=now(), kind=kind, dcid=dcid, recipients="\n".join(recipients), text=text)
        )

    # --- writing -----------------------------------------------------------------------------

    def take(self) -> tuple[list[Connection], list[Message], list[Event]]:
        batch = (self.connections, self.messages, self.events)
        self.connections, self.messages, self.events = [], [], []
        return batch

    @staticmethod
    def write(batch: tuple[list[Connection], list[Message], list[Event]]) -> None:
        connections, messages, events = batch
        machine = settings.MACHINE_NAME  # the gateway's records are its machine's
        with transaction.atomic():
            Connection.objects.of(machine).bulk_create(connections)
            Message.objects.of(machine).bulk_create(messages)
            Event.objects.of(machine).bulk_create(events)

    @staticmethod
    def prune(before: datetime.datetime) -> None:
        machine = settings.MACHINE_NAME
        Connection.objects.of(machine).filter(started__lt=before).delete()
        Message.objects.of(machine).filter(received__lt=before).delete()
        Event.objects.of(machine).filter(time__lt=before).delete()

    async def flush(self) -> None:
        """Write what has gathered; once an hour, delete what is past retention. A database that
        fails costs the records of this batch, never the gateway."""
        batch = self.take()
        moment = now()
        try:
            if any(batch):
                await sync_to_async(_on_a_working_connection, thread_sensitive=False)(self.write, batch)
            if self.pruned is None or moment - self.pruned >= PRUNE_EVERY:
                self.pruned = moment
                cutoff = moment - datetime.timedelta(days=RETENTION_DAYS)
                await sync_to_async(_on_a_working_connection, thread_sensitive=False)(self.prune, cutoff)
        except (DatabaseError, InterfaceError) as error:  # the database failing, or gone
            logger.warning("Tracking records lost (%d rows): %s", sum(map(len, batch)), error)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), FLUSH_SECONDS)
            except TimeoutError:
                pass
            await self.flush()


def _on_a_working_connection(step, *arguments) -> None:
    """``step`` in a worker thread, on that thread's connection, replaced first if a restarted
    database server broke it (the gateway runs for months; Django checks only around requests)."""
    close_old_connections()
    step(*arguments)


def incoming(icid: int, listener: str) -> ConnectionRecord:
    return ConnectionRecord(direction=Direction.INCOMING, cid=icid, remote_address="", listener=listener)


def outgoing(dcid: int, address: str, host: str, domain: str, mode: str, policy: str) -> ConnectionRecord:
    return ConnectionRecord(
        direction=Direction.OUTGOING,
        cid=dcid,
        remote_address=address,
        remote_host=host,
        domain=domain,
        mode=mode,
        policy=policy,
    )
