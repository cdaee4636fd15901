"""One attempt at a message: its recipients grouped by domain, each domain's hosts tried in order
under its Destination Controls entry, then what follows (delivered, retried later, bounced).

What was delivered (or bounced) is recorded in the spool before going on, so a restart repeats
nothing already done. Temporary failures wait ``initial_retry`` seconds, doubling up to
``max_retry_interval``; a message still queued after ``max_queue_lifetime`` bounces, as do 5xx
answers at once. Recipients per Minute holds a domain's messages once its budget is spent.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections import defaultdict
from collections.abc import Callable

import dns.asyncresolver

from appliance.config.sections import Config
from destinations.delivery_settings import DEFAULTS, delivery_of
from destinations.lookup import match_in
from destinations.models import LimitsApplyTo
from gateway import maillog
from gateway.delivery import hops
from gateway.delivery.client import REQUIRED, Outcome, TlsRefused
from gateway.delivery.hops import HopFailed, find_hops
from gateway.delivery.notices import Notices
from gateway.delivery.pool import ConnectionPool
from gateway.spool import Envelope
from tracking.models import Event


class Attempts:
    def __init__(self, shared, pool: ConnectionPool, notices: Notices, enqueue: Callable[[int, float], None]):
        self.shared, self.pool, self.notices, self.enqueue = shared, pool, notices, enqueue
        self.budgets: dict[str, tuple[float, float]] = {}  # Recipients per Minute: key -> (left, when)
        self.resolver: tuple[Config, dns.asyncresolver.Resolver] | None = None

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
