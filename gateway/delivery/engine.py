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
import datetime
import heapq
import time
from collections import defaultdict

import dns.asyncresolver

from appliance.config.sections import Config
from appliance.sections import system_hostname
from destinations.delivery_settings import DEFAULTS, delivery_of
from destinations.lookup import match_in
from destinations.models import LimitsApplyTo
from gateway import maillog
from gateway.delivery import hops
from gateway.delivery.client import REQUIRED, Outcome, SmtpClient, TlsRefused
from gateway.delivery.hops import HopFailed, find_hops
from gateway.delivery.notices import Notices
from gateway.delivery.pool import ConnectionPool
from gateway.spool import Envelope
from tracking.models import Event


class Delivery:
    """The queue: which message is due, one attempt at it domain by domain, and what follows
    (retry, bounce, removal). Connections are ``pool``'s, bounces and alerts ``notices``'."""

    def __init__(self, shared, running_config, write=print):
        self.shared, self.running_config, self.write = shared, running_config, write
        self.due: list[tuple[float, int]] = []  # (when, MID), a heap
        self.when: dict[int, float] = {}  # MID -> when it is due; heap entries that differ are stale
        self.busy: set[int] = set()  # being delivered now
        self.held: dict[int, str] = {}  # console requests for messages that were busy when they came
        self.tasks: set[asyncio.Task] = set()
        self.budgets: dict[str, tuple[float, float]] = {}  # Recipients per Minute: key -> (left, when)
        self.wake = asyncio.Event()
        self.resolver: tuple[Config, dns.asyncresolver.Resolver] | None = None
        self.pool = ConnectionPool(SmtpClient(shared), self.spawn)
        self.notices = Notices(shared, self.hostname, self.enqueue)

    def spawn(self, work) -> None:
        """Run ``work`` beside the deliveries; it counts against the concurrency limit as they do."""
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

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
            await self.notices.bounce(
                envelope, data, dict.fromkeys(pending, "5.0.0 - Bounced by an administrator")
            )
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
            self.spawn(self.act_on(mid, action))

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
        await loop.run_in_executor(None, self.notices.load)
        tasks = self.tasks
        while not stop.is_set():
            config = self.running_config()
            limit = delivery_of(config)["max_concurrency"]
            now = datetime.datetime.now(datetime.UTC).timestamp()
            await self.follow_requests()
            self.pool.close_idle()
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
        self.pool.close_idle(older_than=0)
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
            await self.notices.bounce(envelope, data, bounced, connection_of)
        remaining = [r for r in envelope.rcpt_tos if r not in state.done]
        if not remaining:
            await loop.run_in_executor(None, spool.remove, mid)
            return
        for recipient, why in outcome.temporary.items():
            maillog.info(f"Delayed: MID {mid} to RID {envelope.rcpt_tos.index(recipient)} - {why}")
        self.notices.record_failures(mid, Event.Kind.DELAYED, outcome.temporary, connection_of)
        state.attempts += 1
        state.last_error = next(iter(outcome.temporary.values()), state.last_error)
        wait = min(settings["initial_retry"] * 2 ** (state.attempts - 1), settings["max_retry_interval"])
        when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=wait)
        state.next_attempt = when.isoformat()
        await loop.run_in_executor(None, spool.save_state, mid, state)
        self.enqueue(mid, when.timestamp())

    def hostname(self) -> str:
        return system_hostname(self.running_config())

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
        reused = await self.pool.reuse(domain, mode, envelope, data, recipients, limit)
        if reused is not None:
            return reused
        last, last_dcid = "no host to deliver to", None
        per_ip = match.effective("limits_apply_to") == LimitsApplyTo.MX_IP
        connections = match.effective("max_connections") or DEFAULTS["max_concurrency"]
        for host_name, address, port in hops:
            # Concurrent Connections of the Destination Controls entry: per domain, or per MX address.
            gate = self.pool.gate(f"ip:{address}" if per_ip else f"domain:{domain}", connections)
            try:
                handed = await self.pool.connection_or_slot((domain, mode), gate)
                if handed is not None:
                    reused = await self.pool.send_over(
                        handed, domain, mode, envelope, data, recipients, limit
                    )
                    if reused is not None:
                        return reused
                    await gate.acquire()  # the connection it got had closed: open one
                return await self.pool.session(
                    config, envelope, data, domain, recipients, mode, host_name, address, port, limit, gate
                )
            except TlsRefused as refusal:
                if mode in REQUIRED:
                    await self.notices.tls_required_alert(config, domain, str(refusal))
                return Outcome(dcid=refusal.dcid).defer_all(recipients, str(refusal))
            except HopFailed as failure:
                last, last_dcid = str(failure), failure.dcid
        return Outcome(dcid=last_dcid).defer_all(recipients, last)

    def resolver_for(self, config: Config) -> dns.asyncresolver.Resolver:
        """One resolver for each running configuration, not one for every message."""
        if self.resolver is None or self.resolver[0] is not config:
            self.resolver = (config, hops.new_resolver(config))
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
