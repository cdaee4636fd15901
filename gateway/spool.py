"""The durable spool: messages the gateway has acknowledged and not yet delivered.

A message is one file: a line of JSON (the envelope and how it arrived), then
the message data as received. ``accept`` writes it under ``tmp/``, fsyncs the
file, renames it into ``queue/`` and fsyncs that directory; only then may the
SMTP service answer 250. A crash before the rename leaves a file in ``tmp/``,
which ``recover`` removes at start (that message was never acknowledged); a
crash after it leaves a complete message in the queue. Nothing reads ``tmp/``.

Message IDs (MIDs) come from ``IdCounter``: numbers never handed out twice, across
restarts, crashes and the gateway's processes.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.conf import settings

SUFFIX = ".msg"
STATE = ".state"


def spool_dir() -> Path:
    return settings.DATA_DIR / "spool"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Envelope:
    """How a message arrived and where it goes: the first line of its spool file."""

    mid: int
    mail_from: str
    rcpt_tos: list[str]
    received: str  # ISO 8601, UTC
    icid: int = 0
    listener: str = ""
    peer: str = ""
    tls: str = ""  # the protocol and cipher, or "" if it came in clear
    extra: dict = field(default_factory=dict)


@dataclass
class DeliveryState:
    """Delivery's record of one message, kept beside it (``<mid>.state``)."""

    done: dict[str, str] = field(default_factory=dict)  # recipient -> "delivered" or "bounced"
    attempts: int = 0
    next_attempt: str = ""  # ISO 8601, UTC; "" = now
    last_error: str = ""


@dataclass
class QueuedMessage:
    envelope: Envelope
    size: int  # bytes of message data
    path: Path


class IdCounter:
    """Numbers that are never handed out twice: a block is reserved in ``path`` before any of it is.

    Every gateway process reserves its own blocks under a lock on the file, so numbers only grow
    within a process; across processes they interleave by blocks.
    """

    BLOCK = 1000

    def __init__(self, path: Path):
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._reserve()  # so that ``next`` is the number the next ``take`` hands out

    def _read(self) -> int:
        try:
            return int(self.path.read_text().strip() or 1)
        except (FileNotFoundError, ValueError):
            return 1

    def _reserve(self) -> None:
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            self.next = self._read()  # what the other processes left
            self.limit = self.next + self.BLOCK
            temporary = self.path.with_suffix(".tmp")
            with open(temporary, "w") as handle:
                handle.write(f"{self.limit}\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
            _fsync_dir(self.path.parent)

    def take(self) -> int:
        if self.next >= self.limit:
            self._reserve()
        number = self.next
        self.next += 1
        return number


class Spool:
    def __init__(self, root: Path | None = None):
        self.root = root or spool_dir()
        self.tmp = self.root / "tmp"
        self.queue = self.root / "queue"
        for folder in (self.root, self.tmp, self.queue):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    def recover(self) -> int:
        """Remove what a crash left half-written (never acknowledged); the number removed."""
        removed = 0
        for partial in self.tmp.iterdir():
            partial.unlink(missing_ok=True)
            removed += 1
        return removed

    def accept(self, envelope: Envelope, data: bytes) -> None:
        """Write the message durably into the queue; after this returns, it may be acknowledged."""
        name = f"{envelope.mid}{SUFFIX}"
        partial = self.tmp / name
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(json.dumps(asdict(envelope), separators=(",", ":")).encode() + b"\n")
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        os.rename(partial, self.queue / name)
        _fsync_dir(self.queue)

    def messages(self) -> list[QueuedMessage]:
        """The queued messages, oldest first (by MID)."""
        found = []
        for path in self.queue.glob(f"*{SUFFIX}"):
            try:
                found.append(self._read_head(path))
            except FileNotFoundError:
                continue  # delivered meanwhile
        return sorted(found, key=lambda message: message.envelope.mid)

    def _read_head(self, path: Path) -> QueuedMessage:
        with open(path, "rb") as handle:
            head = handle.readline()
            size = os.fstat(handle.fileno()).st_size - len(head)
        return QueuedMessage(Envelope(**json.loads(head)), size, path)

    def read(self, mid: int) -> tuple[Envelope, bytes]:
        with open(self.queue / f"{mid}{SUFFIX}", "rb") as handle:
            head = handle.readline()
            return Envelope(**json.loads(head)), handle.read()

    def remove(self, mid: int) -> None:
        """The message is done with (delivered or bounced): its data first, then its state."""
        (self.queue / f"{mid}{SUFFIX}").unlink(missing_ok=True)
        (self.queue / f"{mid}{STATE}").unlink(missing_ok=True)
        _fsync_dir(self.queue)

    # --- what delivery has done with a message (so a restart neither loses nor repeats) ---------

    def state(self, mid: int) -> DeliveryState:
        try:
            return DeliveryState(**json.loads((self.queue / f"{mid}{STATE}").read_text()))
        except FileNotFoundError:
            return DeliveryState()

    def save_state(self, mid: int, state: DeliveryState) -> None:
        """Durably, before anything depends on it (a recipient recorded as delivered is never sent again)."""
        partial = self.tmp / f"{mid}{STATE}"
        with open(partial, "w") as handle:
            handle.write(json.dumps(asdict(state), separators=(",", ":")))
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(partial, self.queue / f"{mid}{STATE}")
        _fsync_dir(self.queue)

    # --- requests from the console (another process) to the delivery engine ------------------

    REQUESTS = ("retry", "bounce", "delete")

    def request(self, mid: int, action: str) -> None:
        """Ask delivery to retry, bounce or delete a queued message (it acts within a second)."""
        if action not in self.REQUESTS:
            raise ValueError(f"{action!r} is not one of {', '.join(self.REQUESTS)}")
        if not (self.queue / f"{mid}{SUFFIX}").exists():
            raise FileNotFoundError(f"There is no message {mid} in the queue")
        folder = self.root / "requests"
        folder.mkdir(mode=0o700, exist_ok=True)
        partial = self.tmp / f"{mid}.{action}"
        partial.write_text("")
        os.rename(partial, folder / f"{mid}.{action}")

    def take_requests(self) -> list[tuple[int, str]]:
        """The requests waiting, oldest first; each is taken (removed) as it is returned."""
        folder = self.root / "requests"
        if not folder.exists():
            return []
        taken = []
        for path in sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime):
            mid, _, action = path.name.partition(".")
            path.unlink(missing_ok=True)
            if mid.isdigit() and action in self.REQUESTS:
                taken.append((int(mid), action))
        return taken

    def mids(self) -> list[int]:
        """The MIDs in the queue, from the file names alone."""
        return sorted(int(path.name.removesuffix(SUFFIX)) for path in self.queue.glob(f"*{SUFFIX}"))
