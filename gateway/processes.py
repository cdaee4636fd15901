"""What the gateway's processes share when it runs one per core.

One asyncio process saturates one core at about 150 STARTTLS sessions a second; Postfix spreads
over every core with many processes. ``server.serve`` therefore forks inbound processes before
any event loop or thread exists. Every process binds every listener with SO_REUSEPORT, so the
kernel spreads connections over them; the first (main) process also delivers, sends alerts and
rotates the mail log. What they share is made before the fork:

- ``ListenerCounts``: open connections and TLS sessions by listener, in shared memory under one
  lock, so a listener's Max. Concurrent Connections holds over all processes together;
- ``ClientCounts``: the same by client address of a listener, open connections and connections this
  minute, as Postfix's anvil counts them: a mail flow policy's limits From a Single IP;
- ``AcceptedChannel``: an inbound process tells main the MID of each message it spooled, so that
  delivery starts at once (a datagram socket pair; the spool file itself is already durable);
- ``AppliedVersions``: the configuration version each process applied, so main announces a
  version only once every process serves it.

Message, connection and delivery IDs come from ``spool.IdCounter``, which reserves blocks under a
file lock; the mail log is appended to by all (``maillog``).
"""

from __future__ import annotations

import enum
import hashlib
import mmap
import multiprocessing
import socket
import struct
import time

FORK = multiprocessing.get_context("fork")
# One entry: a digest of the key (a listener's name, or "tls " and the name) and its count.
ENTRY = struct.Struct("16sq")
ENTRIES = 256  # keys with open connections at the same time; 2 per listener at most


class ListenerCounts:
    """Counts by key that every process of the gateway sees. An entry whose count is 0 is free,
    so the table holds the keys in use now, not every listener name ever seen."""

    def __init__(self):
        self.memory = mmap.mmap(-1, ENTRIES * ENTRY.size)  # anonymous and shared: kept across fork
        self.lock = FORK.Lock()

    @staticmethod
    def _digest(key: str) -> bytes:
        return _digest(key)

    def _find(self, digest: bytes) -> tuple[int, int]:
        """(offset, count) of ``digest``'s entry, else of a free one; call with the lock held."""
        free = None
        for index, (held, count) in enumerate(ENTRY.iter_unpack(self.memory)):
            if count and held == digest:
                return index * ENTRY.size, count
            if not count and free is None:
                free = index * ENTRY.size
        if free is None:
            raise RuntimeError(f"more than {ENTRIES} listeners have connections open at once")
        return free, 0

    def take(self, key: str, limit: int) -> bool:
        """Count one more for ``key`` if it has fewer than ``limit``; whether it did."""
        digest = self._digest(key)
        with self.lock:
            offset, count = self._find(digest)
            if count >= limit:
                return False
            ENTRY.pack_into(self.memory, offset, digest, count + 1)
            return True

    def release(self, key: str) -> None:
        digest = self._digest(key)
        with self.lock:
            offset, count = self._find(digest)
            ENTRY.pack_into(self.memory, offset, digest, max(count - 1, 0))

    def __getitem__(self, key: str) -> int:
        with self.lock:
            return self._find(self._digest(key))[1]


def _digest(key: str) -> bytes:
    return hashlib.blake2b(key.encode(), digest_size=16).digest()


# One entry: a digest of "listener address", its open connections, when its minute began (CLOCK_MONOTONIC,
# the same clock in every process) and the connections it made since.
CLIENT_ENTRY = struct.Struct("16sqdq")
CLIENT_ENTRIES = 16384  # 640 KB, far more than the connections a gateway holds at once
PROBES = 64  # the slots a key may take, from the one its digest names
MINUTE = 60.0


class Admission(enum.Enum):
    ADMITTED = "admitted"
    TOO_MANY_OPEN = "too many open"
    TOO_FAST = "too fast"
    UNTRACKED = "untracked"  # admitted, but every slot the address could take holds open connections


class ClientCounts:
    """Connections by client address of a listener, over every process: open now, and made in the
    client's current minute (which starts at its first connection, as anvil's time unit does; refused
    attempts count, so a client that hammers stays refused until it slows down).

    A fixed table in shared memory: an address takes one of ``PROBES`` slots from where its digest
    points. When they are all taken, the one without open connections whose minute began first is
    reused (that client's count of the minute starts again). When all of them hold open connections,
    which takes some ten thousand connections open at once, the address is admitted untracked: the
    listener's own Maximum Concurrent Connections still holds."""

    def __init__(self):
        self.memory = mmap.mmap(-1, CLIENT_ENTRIES * CLIENT_ENTRY.size)  # anonymous, shared across fork
        self.lock = FORK.Lock()

    def _slot(self, digest: bytes) -> tuple[int, tuple] | None:
        """(offset, entry) of ``digest``, else a new entry in the slot to reuse; None if none may be
        reused. Call with the lock held."""
        first = int.from_bytes(digest[:8], "little") % CLIENT_ENTRIES
        reuse, reuse_started = None, 0.0
        for probe in range(PROBES):
            offset = (first + probe) % CLIENT_ENTRIES * CLIENT_ENTRY.size
            entry = CLIENT_ENTRY.unpack_from(self.memory, offset)
            if entry[0] == digest:
                return offset, entry
            if not entry[1] and (reuse is None or entry[2] < reuse_started):
                reuse, reuse_started = offset, entry[2]
        return None if reuse is None else (reuse, (digest, 0, -MINUTE, 0))  # its minute starts now

    def admit(self, key: str, max_open: int, max_per_minute: int) -> Admission:
        """Count a connection of ``key`` ("listener address"), and open it if under both limits."""
        digest, now = _digest(key), time.monotonic()
        with self.lock:
            found = self._slot(digest)
            if found is None:
                return Admission.UNTRACKED
            offset, (_held, open_now, started, made) = found
            if now - started >= MINUTE:
                started, made = now, 0
            made += 1
            if open_now >= max_open:
                verdict = Admission.TOO_MANY_OPEN
            elif made > max_per_minute:
                verdict = Admission.TOO_FAST
            else:
                verdict, open_now = Admission.ADMITTED, open_now + 1
            CLIENT_ENTRY.pack_into(self.memory, offset, digest, open_now, started, made)
            return verdict

    def release(self, key: str) -> None:
        """One connection of ``key`` admitted (not untracked) has ended."""
        digest = _digest(key)
        with self.lock:
            found = self._slot(digest)
            if found is not None and found[1][1]:  # a reused slot's new entry has none open
                offset, (_held, open_now, started, made) = found
                CLIENT_ENTRY.pack_into(self.memory, offset, digest, open_now - 1, started, made)


MID = struct.Struct("q")


class AcceptedChannel:
    """Inbound processes → main: the MID of each message spooled. Datagrams on a local socket
    pair are neither lost nor split; a sender waits if main falls behind by thousands."""

    def __init__(self):
        self.receiving, self.sending = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.receiving.setblocking(False)

    def send(self, mid: int) -> None:
        try:
            self.sending.send(MID.pack(mid))
        except OSError:
            pass  # main is gone, and this process with it: the next start delivers what the spool holds

    def received(self) -> list[int]:
        """The MIDs waiting (main, when the socket is readable)."""
        mids = []
        while True:
            try:
                mids.append(MID.unpack(self.receiving.recv(MID.size))[0])
            except BlockingIOError:
                return mids


class AppliedVersions:
    """The configuration version each process serves; slot 0 is main's."""

    def __init__(self, processes: int):
        self.slots = FORK.RawArray("q", processes)

    def set(self, process: int, version: int) -> None:
        self.slots[process] = version

    def all_at(self, version: int) -> bool:
        return all(applied == version for applied in self.slots)
