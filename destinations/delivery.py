"""The delivery engine: messages from the spool to the next hop, with their destination's TLS mode.

It runs in the gateway process, beside the listeners. Each message's recipients
are grouped by domain; a domain's hosts come from SMTP Routes, else its MX
records (then its A/AAAA), and are tried in order. Each connection follows the
TLS Support of the domain's Destination Controls entry, as the guide defines it:

  None              no STARTTLS;
  Preferred         STARTTLS if offered; not offered, or refused before ``220``:
                    on in clear; a failure after ``220`` ends the connection
                    (never clear there) and the message waits for a retry;
  Required          no TLS, nothing sent: the message waits for a retry;
  Preferred-Verify  as Preferred, and the certificate is verified; encrypted
                    either way, the log says whether it verified;
  Required-Verify   only over TLS with a certificate that verifies
                    (``certificates.verify``) for the domain or the host name.

Connections are limited per Destination Controls entry (Concurrent Connections, for
the whole domain or per MX address) and system-wide (``<delivery>``: all connections,
and those that may use TLS). A connection stays open for ``IDLE_SECONDS`` and takes
the domain's next messages under the same TLS mode, up to Maximum Messages Per
Connection; Recipients per Minute holds a domain's messages once its budget is spent.

What was delivered (or bounced) is recorded in the spool before going on, so a
restart repeats nothing already done. Temporary failures wait
``initial_retry`` seconds, doubling up to ``max_retry_interval``; a message
still queued after ``max_queue_lifetime`` bounces, as do 5xx answers at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import heapq
import ipaddress
import ssl
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

import aiosmtplib
import dns.asyncresolver
import dns.exception
from cryptography import x509

from appliance import alert_mail, https, maillog, tls, vault
from appliance import dns as appliance_dns
from appliance.config.sections import Config, registry
from appliance.spool import Envelope
from certificates import trust, verify
from destinations import alerts, bounces, routes
from destinations.delivery_settings import DEFAULTS, delivery_of
from destinations.lookup import match_in
from destinations.models import AlertClass, IpPreference, LimitsApplyTo, Severity, TlsSupport
from listeners.store import interface_named
from tracking import records
from tracking.models import Event, TlsPolicy

SMTP_PORT = 25
IDLE_SECONDS = 5  # how long a connection waits for the next message to its domain
TIMEOUT = 30
REQUIRED = (TlsSupport.REQUIRED, TlsSupport.REQUIRED_VERIFY)
VERIFYING = (TlsSupport.PREFERRED_VERIFY, TlsSupport.REQUIRED_VERIFY)


@dataclass
class Outcome:
    """What became of each recipient of one attempt at one domain."""

    delivered: list[str] = field(default_factory=list)
    temporary: dict[str, str] = field(default_factory=dict)  # recipient -> why, in the log's words
    permanent: dict[str, str] = field(default_factory=dict)
    dcid: int | None = None  # the connection of the attempt, when one was opened

    def defer_all(self, recipients: list[str], why: str) -> Outcome:
        self.temporary.update(dict.fromkeys(recipients, why))
        return self


class HopFailed(Exception):
    """This host did not take the mail now; the next host may (``temporary``) or none will."""

    def __init__(self, why: str, permanent: bool = False, dcid: int | None = None):
        super().__init__(why)
        self.permanent, self.dcid = permanent, dcid


@dataclass
class IdleConnection:
    client: aiosmtplib.SMTP
    record: records.ConnectionRecord
    sent: int  # messages sent on it so far
    since: float  # monotonic time it became idle
    slot: asyncio.Semaphore | None = None  # the Concurrent Connections it counts against, open or parked

    @property
    def dcid(self) -> int:
        return self.record.cid


class TlsRefused(Exception):
    """The destination's TLS mode forbids sending on this connection: no other host is tried either."""

    def __init__(self, why: str, dcid: int):
        super().__init__(why)
        self.dcid = dcid


def tls_policy(mode: str) -> str:
    """The report's TLS policy of a Destination Controls mode: the Verify modes count with their base."""
    if mode in REQUIRED:
        return TlsPolicy.REQUIRED
    return TlsPolicy.OFF if mode == TlsSupport.NONE else TlsPolicy.PREFERRED


class Delivery:
    def __init__(self, shared, running_config, write=print):
        self.shared, self.running_config, self.write = shared, running_config, write
        self.due: list[tuple[float, int]] = []  # (when, MID), a heap
        self.when: dict[int, float] = {}  # MID -> when it is due; heap entries that differ are stale
        self.busy: set[int] = set()  # being delivered now
        self.held: dict[int, str] = {}  # console requests for messages that were busy when they came
        self.tasks: set[asyncio.Task] = set()
        self.gates: dict[str, tuple[int, asyncio.Semaphore]] = {}  # connection limits by domain, MX IP, TLS
        # Open connections waiting for the next message to the same domain under the same TLS mode,
        # and deliveries waiting for one (or for a slot to open one) when the domain's are all open.
        self.idle: dict[tuple[str, str], list[IdleConnection]] = defaultdict(list)
        self.waiting: dict[tuple[str, str], deque[asyncio.Future]] = defaultdict(deque)
        self.budgets: dict[str, tuple[float, float]] = {}  # Recipients per Minute: key -> (left, when)
        self.wake = asyncio.Event()
        self.alerted: dict[str, datetime.datetime] = {}  # alert key -> when last sent
        self.resolver: tuple[Config, dns.asyncresolver.Resolver] | None = None

    # --- the queue -------------------------------------------------------------------------------

    def enqueue(self, mid: int, when: float = 0.0) -> None:
        self.when[mid] = when
        heapq.heappush(self.due, (when, mid))
        self.wake.set()

    async def follow_requests(self) -> None:
        """Monitor > Queue's Retry Now, Bounce and Delete, which the console leaves in the spool."""
        loop = asyncio.get_running_loop()
        for mid, action in await loop.run_in_executor(None, self.shared.spool.take_requests):
            if mid in self.busy:
                self.held[mid] = action  # its attempt is under way: acted on when it ends
                continue
            await self.act_on(mid, action)

    async def act_on(self, mid: int, action: str) -> None:
        if action == "retry":
            self.enqueue(mid)
        elif action in ("bounce", "delete"):
            self.when.pop(mid, None)
            await self.end_by_request(mid, action)

    async def end_by_request(self, mid: int, action: str) -> None:
        spool, loop = self.shared.spool, asyncio.get_running_loop()
        try:
            envelope, data = await loop.run_in_executor(None, spool.read, mid)
        except FileNotFoundError:
            return
        state = await loop.run_in_executor(None, spool.state, mid)
        pending = [r for r in envelope.rcpt_tos if r not in state.done]
        if action == "bounce" and pending:
            state.done.update(dict.fromkeys(pending, "bounced"))
            await loop.run_in_executor(None, spool.save_state, mid, state)
            await self.bounce(envelope, data, dict.fromkeys(pending, "5.0.0 - Bounced by an administrator"))
        else:
            maillog.info(f"MID {mid} deleted from the queue by an administrator")
            self.shared.recorder.event(
                mid, Event.Kind.DELETED, "Deleted from the queue by an administrator", pending
            )
        await loop.run_in_executor(None, spool.remove, mid)

    def finished(self, mid: int) -> None:
        """An attempt ended: a console request that came meanwhile is acted on now."""
        self.busy.discard(mid)
        action = self.held.pop(mid, None)
        if action:
            task = asyncio.get_running_loop().create_task(self.act_on(mid, action))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def recover(self) -> None:
        """Everything in the spool at start, each when its state says."""
        for mid in self.shared.spool.mids():
            state = self.shared.spool.state(mid)
            when = (
                datetime.datetime.fromisoformat(state.next_attempt).timestamp() if state.next_attempt else 0.0
            )
            self.enqueue(mid, when)

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.recover)
        self.alerted = await loop.run_in_executor(None, alert_mail.last_sent_by_key)
        tasks = self.tasks
        while not stop.is_set():
            config = self.running_config()
            limit = delivery_of(config)["max_concurrency"]
            now = datetime.datetime.now(datetime.UTC).timestamp()
            await self.follow_requests()
            self.close_idle()
            while self.due and self.due[0][0] <= now and len(tasks) < limit:
                when, mid = heapq.heappop(self.due)
                if self.when.get(mid) != when or mid in self.busy:
                    continue  # stale: retried sooner, or ended meanwhile
                del self.when[mid]
                self.busy.add(mid)
                task = asyncio.create_task(self.deliver(mid, config))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                task.add_done_callback(lambda _task, mid=mid: self.finished(mid))
            wait = min(max(self.due[0][0] - now, 0.05), 1.0) if self.due else 1.0
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), wait)
            except TimeoutError:
                pass
        self.close_idle(older_than=0)
        for task in list(tasks):
            task.cancel()

    # --- one message -----------------------------------------------------------------------------

    async def deliver(self, mid: int, config: Config) -> None:
        spool, loop = self.shared.spool, asyncio.get_running_loop()
        try:
            envelope, data = await loop.run_in_executor(None, spool.read, mid)
        except FileNotFoundError:
            return  # deleted meanwhile
        state = await loop.run_in_executor(None, spool.state, mid)
        pending = [r for r in envelope.rcpt_tos if r not in state.done]
        by_domain: dict[str, list[str]] = defaultdict(list)
        for recipient in pending:
            by_domain[recipient.rpartition("@")[2].lower()].append(recipient)
        settings = delivery_of(config)
        outcome = Outcome()
        connection_of: dict[str, int | None] = {}  # a failed recipient -> the connection it failed on
        for number, (domain, recipients) in enumerate(by_domain.items(), 1):
            try:
                result = await self.to_domain(config, envelope, data, domain, recipients)
            except Exception as error:  # one domain's surprise must not stop the message, nor the queue
                maillog.warning(f"MID {mid} delivery to {domain} failed unexpectedly: {error!r}")
                result = Outcome().defer_all(recipients, f"4.3.0 - Local error ({error.__class__.__name__})")
            outcome.delivered += result.delivered
            outcome.temporary.update(result.temporary)
            outcome.permanent.update(result.permanent)
            connection_of.update(dict.fromkeys([*result.temporary, *result.permanent], result.dcid))
            state.done.update(dict.fromkeys(result.delivered, "delivered"))
            if number < len(by_domain):  # the last domain's is saved below, or the message removed
                await loop.run_in_executor(None, spool.save_state, mid, state)
        received = datetime.datetime.fromisoformat(envelope.received)
        age = (datetime.datetime.now(datetime.UTC) - received).total_seconds()
        expired = age >= settings["max_queue_lifetime"]
        bounced = dict(outcome.permanent)
        if expired:
            bounced.update(
                {r: f"{why} (in the queue longer than allowed)" for r, why in outcome.temporary.items()}
            )
        if bounced:
            # Recorded first: after a crash the sender may lack the notice, but is never told of a
            # bounce for a recipient that then gets the message.
            state.done.update(dict.fromkeys(bounced, "bounced"))
            await loop.run_in_executor(None, spool.save_state, mid, state)
            await self.bounce(envelope, data, bounced, connection_of)
        remaining = [r for r in envelope.rcpt_tos if r not in state.done]
        if not remaining:
            await loop.run_in_executor(None, spool.remove, mid)
            return
        for recipient, why in outcome.temporary.items():
            maillog.info(f"Delayed: MID {mid} to RID {envelope.rcpt_tos.index(recipient)} - {why}")
        self.record_failures(mid, Event.Kind.DELAYED, outcome.temporary, connection_of)
        state.attempts += 1
        state.last_error = next(iter(outcome.temporary.values()), state.last_error)
        wait = min(settings["initial_retry"] * 2 ** (state.attempts - 1), settings["max_retry_interval"])
        when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=wait)
        state.next_attempt = when.isoformat()
        await loop.run_in_executor(None, spool.save_state, mid, state)
        self.enqueue(mid, when.timestamp())

    def record_failures(
        self, mid: int, kind: str, failed: dict[str, str], connection_of: dict[str, int | None]
    ) -> None:
        """One tracking event per reason and connection, naming the recipients it concerns."""
        grouped: dict[tuple[str, int | None], list[str]] = defaultdict(list)
        for recipient, why in failed.items():
            grouped[(why, connection_of.get(recipient))].append(recipient)
        for (why, dcid), recipients in grouped.items():
            self.shared.recorder.event(mid, kind, why, recipients, dcid)

    async def bounce(
        self,
        envelope: Envelope,
        data: bytes,
        failed: dict[str, str],
        connection_of: dict[str, int | None] | None = None,
    ) -> None:
        rids = {recipient: envelope.rcpt_tos.index(recipient) for recipient in failed}
        for recipient, why in failed.items():
            maillog.info(f"Bounced: MID {envelope.mid} to RID {rids[recipient]} - {why}")
        self.record_failures(envelope.mid, Event.Kind.BOUNCED, failed, connection_of or {})
        if not envelope.mail_from:
            return  # never a bounce of a bounce
        mid = self.shared.mids.take()
        report = bounces.delivery_status_notification(envelope, data, failed, self.hostname())
        notice = Envelope(
            mid=mid,
            mail_from="",
            rcpt_tos=[envelope.mail_from],
            received=datetime.datetime.now(datetime.UTC).isoformat(),
            extra={"bounce_of": envelope.mid},
        )
        await asyncio.get_running_loop().run_in_executor(None, self.shared.spool.accept, notice, report)
        self.shared.recorder.message(notice, report)
        self.shared.recorder.event(
            envelope.mid, Event.Kind.NOTICE, f"Bounce notice MID {mid} sent to <{envelope.mail_from}>"
        )
        maillog.info(f"MID {mid} generated bounce of MID {envelope.mid}")
        self.enqueue(mid)

    async def tls_required_alert(self, config: Config, domain: str, why: str) -> None:
        """Destination Controls' "Send an alert when a required TLS connection fails": to the
        System/Warning recipients, at most once an hour per domain."""
        [controls] = config.get("destination_controls") or [{"send_tls_required_alert": False}]
        key = f"tls-required:{domain}"
        now = datetime.datetime.now(datetime.UTC)
        last = self.alerted.get(key)
        if not controls.get("send_tls_required_alert") or (last and now - last < alert_mail.REPEAT_AFTER):
            return
        self.alerted[key] = now
        hostname = self.hostname()
        await self.send_alert(
            config,
            AlertClass.SYSTEM,
            Severity.WARNING,
            key,
            f"Warning <System> {hostname}: TLS was required for {domain} but failed",
            f"The appliance {hostname} could not deliver mail to {domain}: its Destination Controls "
            f"entry requires TLS, and {why}. The messages stay queued and are retried.",
        )

    async def send_alert(
        self, config: Config, alert_class: str, severity: str, key: str, subject: str, text: str
    ) -> bool:
        """Spool an alert to the recipients subscribed to its class and severity and record it;
        False when nobody is subscribed."""
        recipients = alerts.recipients_for(alert_class, severity, config)
        if not recipients:
            return False
        alert = alert_mail.SentAlert(
            time=datetime.datetime.now(datetime.UTC).isoformat(),
            alert_class=alert_class,
            severity=severity,
            key=key,
            subject=subject,
            text=text,
            recipients=recipients,
            mid=self.shared.mids.take(),
        )
        envelope = Envelope(
            mid=alert.mid, mail_from="", rcpt_tos=recipients, received=alert.time, extra={"alert": key}
        )
        loop = asyncio.get_running_loop()
        data = alert_mail.message(alert, self.hostname())
        await loop.run_in_executor(None, self.shared.spool.accept, envelope, data)
        self.shared.recorder.message(envelope, data)
        await loop.run_in_executor(None, alert_mail.record, alert)
        maillog.info(f"MID {alert.mid} alert: {alert.subject} to {', '.join(recipients)}")
        self.enqueue(alert.mid)
        return True

    def hostname(self) -> str:
        return (self.running_config().get("hostname") or [{"hostname": "localhost"}])[0]["hostname"]

    # --- one domain --------------------------------------------------------------------------------

    async def to_domain(self, config: Config, envelope: Envelope, data: bytes, domain: str, recipients):
        match = match_in(config, domain)
        mode = match.tls
        try:
            hops = await find_hops(
                config, domain, match.effective("ip_preference"), self.resolver_for(config)
            )
        except HopFailed as failure:
            outcome = Outcome()
            target = outcome.permanent if failure.permanent else outcome.temporary
            target.update(dict.fromkeys(recipients, str(failure)))
            return outcome
        if hops is None:  # /dev/null
            self.shared.recorder.event(
                envelope.mid,
                Event.Kind.DELIVERED,
                f"Discarded: the SMTP route of {domain} is /dev/null",
                recipients,
            )
            return Outcome(delivered=list(recipients))
        if not self.within_budget(domain, len(recipients), match.effective("max_recipients_per_minute")):
            return Outcome().defer_all(recipients, f"4.7.0 - Recipients per Minute for {domain} reached")
        limit = match.effective("max_messages_per_connection") or 1
        reused = await self.reuse(domain, mode, envelope, data, recipients, limit)
        if reused is not None:
            return reused
        last, last_dcid = "no host to deliver to", None
        per_ip = match.effective("limits_apply_to") == LimitsApplyTo.MX_IP
        connections = match.effective("max_connections") or DEFAULTS["max_concurrency"]
        for host_name, address, port in hops:
            # Concurrent Connections of the Destination Controls entry: per domain, or per MX address.
            gate = self.gate(f"ip:{address}" if per_ip else f"domain:{domain}", connections)
            try:
                handed = await self.connection_or_slot((domain, mode), gate)
                if handed is not None:
                    reused = await self.send_over(handed, domain, mode, envelope, data, recipients, limit)
                    if reused is not None:
                        return reused
                    await gate.acquire()  # the connection it got had closed: open one
                return await self.session(
                    config, envelope, data, domain, recipients, mode, host_name, address, port, limit, gate
                )
            except TlsRefused as refusal:
                if mode in REQUIRED:
                    await self.tls_required_alert(config, domain, str(refusal))
                return Outcome(dcid=refusal.dcid).defer_all(recipients, str(refusal))
            except HopFailed as failure:
                last, last_dcid = str(failure), failure.dcid
        return Outcome(dcid=last_dcid).defer_all(recipients, last)

    def resolver_for(self, config: Config) -> dns.asyncresolver.Resolver:
        """One resolver for each running configuration, not one for every message."""
        if self.resolver is None or self.resolver[0] is not config:
            self.resolver = (config, appliance_dns.resolver(config, TIMEOUT, kind=dns.asyncresolver.Resolver))
        return self.resolver[1]

    def within_budget(self, key: str, count: int, per_minute: int | None) -> bool:
        """Recipients per Minute: a bucket refilled at the rate, holding at most one minute's worth."""
        if not per_minute:
            return True
        now = time.monotonic()
        left, then = self.budgets.get(key, (float(per_minute), now))
        left = min(float(per_minute), left + (now - then) * per_minute / 60)
        if left < min(count, per_minute):
            self.budgets[key] = (left, now)
            return False
        self.budgets[key] = (left - count, now)
        return True

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
            outcome = await self.transfer(connection, envelope, data, recipients)
        except aiosmtplib.SMTPException:
            self.close(connection)
            return None
        connection.sent += 1
        await self.park_or_close(domain, mode, connection, limit)
        return outcome

    async def connection_or_slot(
        self, key: tuple[str, str], gate: asyncio.Semaphore
    ) -> IdleConnection | None:
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

    async def park_or_close(self, domain: str, mode: str, connection: IdleConnection, limit: int) -> None:
        """Hand the connection to a delivery waiting for one, or keep it for the domain's next message,
        unless it sent Maximum Messages Per Connection already."""
        if connection.sent >= limit:
            await self.ended(connection, polite=True)
            return
        waiters = self.waiting[(domain, mode)]
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        connection.since = time.monotonic()
        self.idle[(domain, mode)].append(connection)

    async def ended(self, connection: IdleConnection, polite: bool = False) -> None:
        if polite:
            with contextlib.suppress(aiosmtplib.SMTPException):
                await connection.client.quit()
        connection.client.close()
        if connection.slot is not None:
            connection.slot.release()
            connection.slot = None
        maillog.info(f"DCID {connection.dcid} close")
        self.shared.recorder.connection(connection.record)

    def close(self, connection: IdleConnection, polite: bool = False) -> None:
        """``ended`` without waiting for it (the reaper, a connection found closed)."""
        task = asyncio.get_running_loop().create_task(self.ended(connection, polite))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

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

    # --- one connection ----------------------------------------------------------------------------

    async def session(
        self, config, envelope, data, domain, recipients, mode, host_name, address, port, limit=1, slot=None
    ):
        """One new connection; ``slot``, a Concurrent Connections slot acquired for it, is held until
        the connection closes (released at once when it cannot be opened)."""
        settings = delivery_of(config)
        interface = interface_named(settings["default_delivery_interface"], config.get("interfaces", []))
        source = interface["ip"] if interface else None
        ehlo_name = interface["interface_hostname"] if interface else self.hostname()
        dcid = self.shared.dcids.take()
        client = aiosmtplib.SMTP(
            hostname=address,
            port=port,
            local_hostname=ehlo_name,
            source_address=(source, 0) if source else None,
            timeout=TIMEOUT,
            start_tls=False,
        )
        try:
            await client.connect()
        except BaseException as error:
            if slot is not None:
                slot.release()
            if not isinstance(error, aiosmtplib.SMTPException | OSError):
                raise
            maillog.info(
                f"Connection Error: DCID {dcid} domain: {domain} IP: {address} port: {port} details: {error} "
                f"interface: {source or 'Auto'} reason: network error"
            )
            raise HopFailed(f"4.4.0 - Other network problem ({error})", dcid=dcid) from None
        maillog.info(f"New SMTP DCID {dcid} interface {source or 'Auto'} address {address} port {port}")
        record = records.outgoing(dcid, address, host_name, domain, mode, tls_policy(mode))
        connection = IdleConnection(client, record, sent=0, since=0.0, slot=slot)
        try:
            tls_slots = self.gate("tls", settings["max_tls_concurrency"])
            async with tls_slots if mode != TlsSupport.NONE else contextlib.nullcontext():
                await self.negotiate(client, config, record)
                outcome = await self.transfer(connection, envelope, data, recipients)
        except aiosmtplib.SMTPServerDisconnected as error:
            await self.ended(connection)
            raise HopFailed(f"4.4.0 - Connection lost ({error})", dcid=dcid) from None
        except aiosmtplib.SMTPException as error:  # a refused HELO, a timeout
            await self.ended(connection)
            raise HopFailed(f"4.4.0 - {error}", dcid=dcid) from None
        except BaseException:
            await self.ended(connection)
            raise
        connection.sent = 1
        await self.park_or_close(domain, mode, connection, limit)
        return outcome

    async def negotiate(self, client, config, record: records.ConnectionRecord) -> None:
        """EHLO and the TLS the mode asks for; TlsRefused when the mode forbids going on."""
        dcid, domain, host_name, mode = record.cid, record.domain, record.remote_host, record.mode
        required = mode in REQUIRED
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError:
            await client.helo()
            if required:
                self._tls_required_failed(record, "the server does not speak ESMTP (EHLO refused)")
            return
        if mode == TlsSupport.NONE:
            return
        if not client.supports_extension("starttls"):
            if required:
                self._tls_required_failed(record, "STARTTLS is not in the server's EHLO answer")
            return
        try:
            await client.starttls(tls_context=client_context(config), server_hostname=host_name)
        except aiosmtplib.SMTPResponseException as refusal:  # an answer other than 220: still in clear
            maillog.info(f"DCID {dcid} TLS failed: STARTTLS unexpected response")
            record.tls_failed(f"STARTTLS answered {refusal.code} {refusal.message}")
            if required:
                maillog.info(
                    f"Connection Error: DCID {dcid} details: {refusal.code}-'{refusal.message}' "
                    f"interface: Auto reason: unexpected SMTP response"
                )
                self._tls_required_failed(record, record.detail)
            return
        except (aiosmtplib.SMTPException, ssl.SSLError, OSError) as error:  # after 220: never on in clear
            maillog.info(f"DCID {dcid} TLS failed: {error}")
            if required:
                self._tls_required_failed(record, f"the TLS handshake failed after 220 ({error})")
            record.tls_failed(f"the TLS handshake failed after 220 ({error})")
            raise TlsRefused(f"4.7.5 - TLS failed after STARTTLS was accepted ({error})", dcid) from None
        ssl_object = client.get_transport_info("ssl_object")
        version, cipher = ssl_object.version(), ssl_object.cipher()[0]
        maillog.info(f"DCID {dcid} TLS success protocol {version} cipher {cipher} for {domain}")
        record.tls_success(version, cipher)
        if mode in VERIFYING:
            verdict = verify.verify_peer(
                peer_chain(ssl_object),
                [domain, host_name],
                trust.anchors(config),
            )
            record.verified = verdict.valid
            if verdict.valid:
                record.detail = f"verified: {verdict.matched} ({', '.join(verdict.names)})"
                maillog.info(f"DCID {dcid} TLS verified: {verdict.matched} ({', '.join(verdict.names)})")
            elif mode == TlsSupport.REQUIRED_VERIFY:
                maillog.info(f"DCID {dcid} TLS failed: verify error: {verdict.reason}")
                record.tls_failed(f"verify error: {verdict.reason}")
                raise TlsRefused(f"4.7.5 - The certificate does not verify ({verdict.reason})", dcid)
            else:
                record.detail = f"not verified: {verdict.reason}"
                maillog.info(f"DCID {dcid} TLS not verified: {verdict.reason}; delivering encrypted")

    def _tls_required_failed(self, record: records.ConnectionRecord, cause: str) -> None:
        maillog.info(
            f"DCID {record.cid} IP {record.remote_address} TLS was required but could not be "
            f"successfully negotiated: {cause}"
        )
        record.tls_failed(cause)
        raise TlsRefused(f"4.7.5 - TLS was required but could not be negotiated ({cause})", record.cid)

    async def transfer(self, connection: IdleConnection, envelope, data, recipients) -> Outcome:
        client, dcid = connection.client, connection.dcid
        outcome = Outcome(dcid=dcid)
        rids = {recipient: envelope.rcpt_tos.index(recipient) for recipient in recipients}
        try:
            await client.mail(envelope.mail_from)
        except aiosmtplib.SMTPResponseException as refusal:
            await self.reset(client)
            return self._refused(outcome, recipients, refusal)
        accepted = []
        for recipient in recipients:
            try:
                await client.rcpt(recipient)
                accepted.append(recipient)
            except aiosmtplib.SMTPResponseException as refusal:
                self._refused(outcome, [recipient], refusal)
        if not accepted:
            await self.reset(client)
            return outcome
        shown = ", ".join(str(rids[r]) for r in accepted)
        maillog.info(f"Delivery start DCID {dcid} MID {envelope.mid} to RID [{shown}]")
        try:
            await client.data(data)
        except aiosmtplib.SMTPResponseException as refusal:
            await self.reset(client)
            return self._refused(outcome, accepted, refusal)
        maillog.info(f"Message done DCID {dcid} MID {envelope.mid} to RID [{shown}]")
        connection.record.messages += 1
        self.shared.recorder.event(
            envelope.mid,
            Event.Kind.DELIVERED,
            f"Delivered to {connection.record.remote_host} ({connection.record.remote_address})",
            accepted,
            dcid,
        )
        outcome.delivered += accepted
        return outcome

    @staticmethod
    async def reset(client) -> None:
        """RSET after a transaction that did not end in DATA, so the connection can carry the next."""
        with contextlib.suppress(aiosmtplib.SMTPException):
            await client.rset()

    def _refused(self, outcome, recipients, refusal) -> Outcome:
        """A refusal per recipient, with the server's enhanced status code when it gave one."""
        why = f"({refusal.code}, ['{refusal.message}'])"
        permanent = 500 <= refusal.code < 600
        status = refusal.message.split(" ", 1)[0]
        if not bounces.ENHANCED_STATUS.fullmatch(status) or status[0] != str(refusal.code)[0]:
            status = "5.0.0" if permanent else "4.0.0"
        for recipient in recipients:
            if permanent:
                outcome.permanent[recipient] = f"{status} - Permanent failure {why}"
            else:
                outcome.temporary[recipient] = f"{status} - Temporary failure {why}"
        return outcome


async def find_hops(config: Config, domain: str, preference: str | None, resolver=None):
    """(host name, address, port) to try in order; None: the route drops the mail (/dev/null).

    ``resolver``: the configuration's (``Delivery.resolver_for``); by default a new one."""
    if domain.startswith("[") and domain.endswith("]"):  # user@[192.0.2.1], user@[IPv6:2001:db8::1]
        literal = domain[1:-1].removeprefix("IPv6:").removeprefix("ipv6:")
        try:
            return [(literal, str(ipaddress.ip_address(literal)), SMTP_PORT)]
        except ValueError:
            raise HopFailed(f"5.1.2 - {domain} is not an address", permanent=True) from None
    resolver = resolver or appliance_dns.resolver(config, TIMEOUT, kind=dns.asyncresolver.Resolver)
    route = routes.route_for(domain, config)
    if route is not None and route[:1] == [routes.DEV_NULL]:
        return None
    names: list[tuple[str, int]] = []
    if route is not None and route != [routes.USEDNS]:
        for hop in route:
            host, port = routes.split_host(hop)
            names.append((host, port or SMTP_PORT))
    else:
        try:
            answer = await resolver.resolve(domain, "MX")
            for record in sorted(answer, key=lambda r: r.preference):
                target = str(record.exchange).rstrip(".")
                if target in ("", "."):
                    raise HopFailed(f"{domain} accepts no mail (null MX)", permanent=True)
                names.append((target, SMTP_PORT))
        except dns.resolver.NXDOMAIN:
            raise HopFailed(f"{domain} does not exist (NXDOMAIN)", permanent=True) from None
        except dns.resolver.NoAnswer:
            names.append((domain, SMTP_PORT))  # no MX: the domain's own address (RFC 5321)
        except dns.exception.DNSException as error:
            raise HopFailed(f"DNS lookup of {domain} failed: {error}") from None
    hops = []
    for name, port in names:
        for address in await addresses(resolver, name, preference):
            hops.append((name, address, port))
    if not hops:
        raise HopFailed(f"no address found for the hosts of {domain}")
    return hops


async def addresses(resolver, name: str, preference: str | None) -> list[str]:
    try:
        return [str(ipaddress.ip_address(name))]
    except ValueError:
        pass
    kinds = {
        IpPreference.IPV4_REQUIRED: ["A"],
        IpPreference.IPV6_REQUIRED: ["AAAA"],
        IpPreference.IPV6_PREFERRED: ["AAAA", "A"],
    }.get(preference, ["A", "AAAA"])
    found = []
    for kind in kinds:
        try:
            found += [record.address for record in await resolver.resolve(name, kind)]
        except dns.exception.DNSException:
            continue
    return found


def client_context(config: Config) -> ssl.SSLContext:
    """TLS for delivery: the Outbound SMTP SSL configuration, no verification by OpenSSL (the mode
    decides, with ``certificates.verify``), and the global outbound certificate for servers that ask."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    tls.policy(config, tls.Service.OUTBOUND).apply(context)
    [controls] = config.get("destination_controls") or [{"certificate_name": ""}]
    if controls.get("certificate_name"):
        item = registry.item_named(config, "certificates", controls["certificate_name"])
        chain, key = https.certificate_files(item)
        context.load_cert_chain(chain, key, password=vault.runtime_password())
    return context


def peer_chain(ssl_object) -> list[x509.Certificate]:
    """The certificates the server sent, in its order (Python 3.11 keeps them on the C object)."""
    native = getattr(ssl_object, "_sslobj", ssl_object)
    chain = native.get_unverified_chain() or []
    return [
        x509.load_der_x509_certificate(certificate.public_bytes(ssl._ssl.ENCODING_DER))
        for certificate in chain
    ]
