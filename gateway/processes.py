"""What the gateway's processes share when it runs one per core.

One asyncio process saturates one core at about 150 STARTTLS sessions a second; Postfix spreads
over every core with many processes. ``server.serve`` therefore forks inbound processes before
any event loop or thread exists. Every process binds every listener with SO_REUSEPORT, so the
kernel spreads connections over them; the first (main) process also delivers, sends alerts and
rotates the mail log. What they share is made before the fork:

- ``ListenerCounts``: open connections and TLS sessions by listener, in shared memory under one
  lock, so a listener's Max. Concurrent Connections holds over all processes together;
- ``AcceptedChannel``: an inbound process tells main the MID of each message it spooled, so that
  delivery starts at once (a datagram socket pair; the spool file itself is already durable);
- ``AppliedVersions``: the configuration version each process applied, so main announces a
  version only once every process serves it.

Message, connection and delivery IDs come from ``spool.IdCounter``, which reserves blocks under a
file lock; the mail log is appended to by all (``maillog``).
"""

from __future__ import annotations

import hashlib
import mmap
import multiprocessing
import socket
import struct

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
        return hashlib.blake2b(key.encode(), digest_size=16).digest()

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
