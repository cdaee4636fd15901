"""Delivery's connections: the Concurrent Connections limits, and connections kept open for the
next message to the same domain under the same TLS mode (the ESA's connection reuse).

A connection stays open for ``IDLE_SECONDS`` and takes the domain's next messages, up to Maximum
Messages Per Connection. Once all of a domain's Concurrent Connections are open, a delivery waits
for whichever comes first: a connection that finishes its message, or a free slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict, deque
from collections.abc import Callable, Coroutine

import aiosmtplib

from destinations.delivery_settings import delivery_of
from destinations.models import TlsSupport
from gateway.delivery.client import Connection, Outcome, SmtpClient
from gateway.delivery.hops import HopFailed

IDLE_SECONDS = 5  # how long a connection waits for the next message to its domain


class ConnectionPool:
    def __init__(self, client: SmtpClient, spawn: Callable[[Coroutine], None]):
        self.client, self.spawn = client, spawn
        self.gates: dict[str, tuple[int, asyncio.Semaphore]] = {}  # connection limits by domain, MX IP, TLS
        # Open connections waiting for the next message to the same domain under the same TLS mode,
        # and deliveries waiting for one (or for a slot to open one) when the domain's are all open.
        self.idle: dict[tuple[str, str], list[Connection]] = defaultdict(list)
        self.waiting: dict[tuple[str, str], deque[asyncio.Future]] = defaultdict(deque)

    async def reuse(self, domain, mode, envelope, data, recipients, limit) -> Outcome | None:
        """The message over a connection left open for this domain and mode; None if there is none
        (or it closed meanwhile)."""
        while self.idle[(domain, mode)]:
            outcome = await self.send_over(
                self.idle[(domain, mode)].pop(), domain, mode, envelope, data, recipients, limit
            )
            if outcome is not None:
                return outcome
        return None

    async def send_over(self, connection, domain, mode, envelope, data, recipients, limit) -> Outcome | None:
        """The message over an open connection; None if it has closed meanwhile."""
        try:
            outcome = await self.client.transfer(connection, envelope, data, recipients)
        except aiosmtplib.SMTPException:
            self.close(connection)
            return None
        connection.sent += 1
        await self.park_or_close(domain, mode, connection, limit)
        return outcome

    async def connection_or_slot(self, key: tuple[str, str], gate: asyncio.Semaphore) -> Connection | None:
        """A parked connection for ``key`` (domain, mode), or, None, a slot of ``gate`` to open one with:
        whichever comes first once all the domain's Concurrent Connections are open."""
        if self.idle[key]:
            return self.idle[key].pop()
        if not gate.locked():
            await gate.acquire()
            return None
        waiter = asyncio.get_running_loop().create_future()
        self.waiting[key].append(waiter)
        acquiring = asyncio.ensure_future(gate.acquire())
        try:
            await asyncio.wait({waiter, acquiring}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not waiter.done():
                waiter.cancel()  # park_or_close passes over it
            if not acquiring.done():
                acquiring.cancel()
        if not waiter.cancelled():
            if acquiring.done() and not acquiring.cancelled():
                gate.release()  # both came: the connection is enough
            return waiter.result()
        if acquiring.cancelled():  # stopped (the engine shuts down)
            raise asyncio.CancelledError
        return None

    async def park_or_close(self, domain: str, mode: str, connection: Connection, limit: int) -> None:
        """Hand the connection to a delivery waiting for one, or keep it for the domain's next message,
        unless it sent Maximum Messages Per Connection already."""
        if connection.sent >= limit:
            await self.client.end(connection, polite=True)
            return
        waiters = self.waiting[(domain, mode)]
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        connection.since = time.monotonic()
        self.idle[(domain, mode)].append(connection)

    def close(self, connection: Connection, polite: bool = False) -> None:
        """``end`` without waiting for it (the reaper, a connection found closed)."""
        self.spawn(self.client.end(connection, polite))

    def close_idle(self, older_than: float = IDLE_SECONDS) -> None:
        now = time.monotonic()
        for connections in self.idle.values():
            for connection in [c for c in connections if now - c.since >= older_than]:
                connections.remove(connection)
                self.close(connection, polite=True)

    def gate(self, key: str, size: int) -> asyncio.Semaphore:
        """The semaphore limiting connections for ``key`` to ``size`` (a new one when the limit changes)."""
        current = self.gates.get(key)
        if current is None or current[0] != size:
            current = self.gates[key] = (size, asyncio.Semaphore(size))
        return current[1]

    async def session(
        self, config, envelope, data, domain, recipients, mode, host_name, address, port, limit=1, slot=None
    ) -> Outcome:
        """The message over a new connection; ``slot``, a Concurrent Connections slot acquired for it, is
        held until the connection closes (released at once when it cannot be opened)."""
        try:
            connection = await self.client.connect(config, domain, mode, host_name, address, port)
        except BaseException:
            if slot is not None:
                slot.release()
            raise
        connection.slot = slot
        dcid = connection.dcid
        try:
            tls_slots = self.gate("tls", delivery_of(config)["max_tls_concurrency"])
            async with tls_slots if mode != TlsSupport.NONE else contextlib.nullcontext():
                await self.client.negotiate(connection.client, config, connection.record)
                outcome = await self.client.transfer(connection, envelope, data, recipients)
        except aiosmtplib.SMTPServerDisconnected as error:
            await self.client.end(connection)
            raise HopFailed(f"4.4.0 - Connection lost ({error})", dcid=dcid) from None
        except aiosmtplib.SMTPException as error:  # a refused HELO, a timeout
            await self.client.end(connection)
            raise HopFailed(f"4.4.0 - {error}", dcid=dcid) from None
        except BaseException:
            await self.client.end(connection)
            raise
        connection.sent = 1
        await self.park_or_close(domain, mode, connection, limit)
        return outcome
