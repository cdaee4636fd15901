"""The gateway's inbound side: every committed listener as an aiosmtpd server, following each commit.

``Gateway.apply(config)`` builds what each listener's sessions need (``Inbound``:
its HAT, its TLS contexts, its interface) and makes the sockets match the
configuration: a listener that is gone stops accepting, a new one starts, a
changed one keeps its socket and hands the new settings to the next connection.
Sessions in progress keep the settings they started with. ``run`` watches the
running version (the file every commit rewrites) and applies each new one.
``serve`` runs it on one process per core (``gateway.processes``).
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import ssl
import time
from dataclasses import dataclass, field
from functools import partial

import dns.asyncresolver
from asgiref.sync import sync_to_async
from django import db
from django.conf import settings

from appliance import dns as appliance_dns
from appliance import https, interfaces, lifecycle, tls, workflow
from appliance.config.sections import Config, registry
from appliance.sections import system_hostname
from certificates import trust
from gateway import maillog
from gateway.access import HostAccessTable
from gateway.delivery.engine import Delivery
from gateway.expiry_alerts import ExpiryAlerts
from gateway.processes import FORK, AcceptedChannel, AppliedVersions, ListenerCounts
from gateway.smtpd import Inbound, InboundSession, Shared
from gateway.spool import IdCounter, Spool
from listeners import address_lists, hat

POLL_SECONDS = 0.5
GC_EVERY_POLLS = 20
REVERSE_DNS_SECONDS = 2.0
SIBLINGS_SECONDS = 5.0  # how long main waits for the others to apply a version before it says so
STOP_SECONDS = 30.0


def inbound_contexts(certificate: dict | None, config: Config) -> dict[str, ssl.SSLContext]:
    """The listener's server contexts by client-certificate verification (none/optional/required),
    with the Inbound SMTP SSL configuration and the Certificate Authorities lists as trust anchors."""
    if certificate is None:
        return {}
    policy = tls.policy(config, tls.Service.INBOUND)
    anchors = trust.anchors_pem(config)
    contexts = {}
    for verify, mode in (
        ("none", ssl.CERT_NONE),
        ("optional", ssl.CERT_OPTIONAL),
        ("required", ssl.CERT_REQUIRED),
    ):
        context = https.server_context(certificate, policy)
        if mode is not ssl.CERT_NONE:
            context.verify_mode = mode
            if anchors:
                context.load_verify_locations(cadata=anchors)
        contexts[verify] = context
    return contexts


def inbound_settings(config: Config) -> dict[tuple[str, int], Inbound]:
    """(address, port) → what the sessions of the listener there need, from ``config``."""
    hostname = system_hostname(config)
    contexts_by_certificate: dict[str, dict] = {}
    result = {}
    for listener in config.get("listeners", []):
        interface = interfaces.named(listener["interface_name"], config.get("interfaces", []))
        if interface is None:
            continue  # commit refuses this; an old version might hold it
        name = listener["certificate_name"]
        if name and name not in contexts_by_certificate:
            contexts_by_certificate[name] = inbound_contexts(
                registry.item_named(config, "certificates", name), config
            )
        listener = hat.with_predefined(listener)
        result[(interface["ip"], listener["port"])] = Inbound(
            listener=listener,
            interface=interface,
            hat=HostAccessTable(listener),
            contexts=contexts_by_certificate.get(name, {}),
            address_list_matches=partial(_matches, config),
            hostname=interface.get("interface_hostname") or hostname,
        )
    return result


def _matches(config: Config, list_name: str, address: str) -> bool:
    return address_lists.matches(list_name, address, config)


@dataclass
class Siblings:
    """This process among the gateway's processes (``gateway.processes``); 0 is main."""

    index: int
    counts: ListenerCounts
    accepted: AcceptedChannel
    versions: AppliedVersions
    parent: int  # main's PID: an inbound process stops when main is gone
    workers: list = field(default_factory=list)  # main's inbound processes

    def all_running(self) -> bool:
        if self.index:
            return os.getppid() == self.parent
        return all(worker.is_alive() for worker in self.workers)


def _running_config(number: int | None) -> Config:
    db.close_old_connections()  # one a restarted database server broke is replaced, not failed on
    return workflow.machine_config(number)


class Gateway:
    """The listeners of one process; main (the only process unless ``siblings`` says otherwise)
    also delivers, sends the expiry alerts and rotates the mail log."""

    def __init__(self, write=print, siblings: Siblings | None = None):
        self.write = write
        self.siblings = siblings
        self.main = siblings is None or siblings.index == 0
        run = settings.DATA_DIR / "run"
        self.shared = Shared(
            icids=IdCounter(run / "icid"),
            mids=IdCounter(run / "mid"),
            dcids=IdCounter(run / "dcid"),
            spool=Spool(),
            open_counts=siblings.counts if siblings else ListenerCounts(),
        )
        self.config: Config = {}
        if self.main:
            self.delivery = Delivery(self.shared, lambda: self.config)
            self.shared.accepted = self.delivery.enqueue
            self.expiry_alerts = ExpiryAlerts(self.delivery.notices, lambda: self.config)
        else:
            self.shared.accepted = siblings.accepted.send
        self.servers: dict[tuple[str, int], asyncio.Server] = {}
        self.current: dict[tuple[str, int], Inbound] = {}
        self.resolver = None
        self.version = None

    async def resolve_name(self, address: str) -> tuple[str, bool]:
        try:
            return await asyncio.wait_for(
                appliance_dns.verified_reverse_name(self.resolver, address), REVERSE_DNS_SECONDS
            )
        except TimeoutError:
            return "unknown", False

    def _session(self, key):
        # The settings are taken when the host connects; the session keeps them to its end.
        return InboundSession(self.current[key], self.shared, self.resolve_name)

    async def apply(self, config: Config) -> list[str]:
        """Make the listening sockets and settings those of ``config``; the problems, in words."""
        wanted = await sync_to_async(inbound_settings, thread_sensitive=False)(config)
        self.resolver = appliance_dns.resolver(config, REVERSE_DNS_SECONDS, kind=dns.asyncresolver.Resolver)
        problems = []
        for key in [key for key in self.servers if key not in wanted]:
            self.servers.pop(key).close()  # stops accepting; its sessions go on
            del self.current[key]
        for key, inbound in wanted.items():
            self.current[key] = inbound
            if key in self.servers:
                continue
            address, port = key
            try:
                self.servers[key] = await asyncio.get_running_loop().create_server(
                    partial(self._session, key),
                    address,
                    port,
                    reuse_address=True,
                    reuse_port=self.siblings is not None,  # every process listens; the kernel spreads
                )
            except OSError as error:
                del self.current[key]
                problems.append(
                    f"listener '{inbound.name}' cannot listen on {address} port {port} "
                    f"({os.strerror(error.errno) if error.errno else error})"
                )
        return problems

    async def _follow(self) -> None:
        number = await sync_to_async(workflow.announced_version)()
        if number == self.version:
            return
        config = await sync_to_async(_running_config)(number)
        self.config = config
        problems = await self.apply(config)
        self.version = number
        if self.siblings:
            self.siblings.versions.set(self.siblings.index, number or 0)
        if not self.main:
            return  # main reports: the processes apply the same configuration
        for problem in problems:
            self.write(f"Error: {problem}")
        await self._siblings_at(number or 0)
        places = ", ".join(
            f"{inbound.name} {address}:{port}" for (address, port), inbound in self.current.items()
        )
        self.write(f"Gateway ready: {places or 'no listeners'} [configuration version {number}]")

    async def _siblings_at(self, number: int) -> None:
        """Wait (a poll at most, normally) until every process serves version ``number``."""
        deadline = time.monotonic() + SIBLINGS_SECONDS
        while (
            self.siblings
            and not self.siblings.versions.all_at(number)
            and self.siblings.all_running()
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.02)

    def _follow_accepted(self) -> None:
        """Main: start delivering each message the inbound processes spool."""
        channel = self.siblings.accepted

        def received():
            for mid in channel.received():
                self.delivery.enqueue(mid)

        asyncio.get_running_loop().add_reader(channel.receiving, received)

    async def run(self, stop: asyncio.Event) -> None:
        maillog.open_log()
        await self._follow()  # delivery starts with the running configuration in hand
        recording = asyncio.create_task(self.shared.recorder.run(stop))
        tasks = []
        if self.main:
            if self.siblings:
                self._follow_accepted()
            tasks.append(asyncio.create_task(self.delivery.run(stop)))
            tasks.append(asyncio.create_task(self.expiry_alerts.run(stop)))  # at start, then hourly
        polls = 0
        while not stop.is_set():
            try:
                await self._follow()
            except workflow.DATABASE_UNREACHABLE:
                pass  # the version running goes on; the supervisor says why, and the next poll retries
            if self.main:
                maillog.rotate_if_full()
            else:
                maillog.reopen_if_rotated()
            polls += 1
            if polls % GC_EVERY_POLLS == 0:
                # Finished TLS sessions form reference cycles (asyncio's SSL protocol objects) that hold
                # OpenSSL memory Python does not count, so the collector seldom runs by itself: ~2.7 MiB
                # a session stays until it does (python/cpython#109534).
                gc.collect()
            if self.siblings and not self.siblings.all_running():
                self.write("Error: a process of the mail gateway ended; the gateway stops to start anew")
                stop.set()
                break
            try:
                await asyncio.wait_for(stop.wait(), POLL_SECONDS)
            except TimeoutError:
                pass
        await asyncio.gather(*tasks)
        for server in self.servers.values():
            server.close()
        for session in list(self.shared.sessions):
            if session.transport is not None:
                session.transport.close()
        await recording
        await asyncio.sleep(0)  # the sessions just closed end, and are recorded
        await self.shared.recorder.flush()


def recover_spool() -> None:
    """Before any process listens: remove what a crash left half-written."""
    removed = Spool().recover()
    if removed:
        maillog.info(f"Spool recovery: removed {removed} message(s) that were never acknowledged")


async def _run_until_signalled(gateway: Gateway) -> bool:
    """Run ``gateway`` until SIGTERM or SIGINT; whether it stopped because it was told to."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    told = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: (told.set(), stop.set()))
    await gateway.run(stop)
    return told.is_set()


def _serve_inbound(siblings: Siblings, write) -> None:
    """An inbound process (forked by ``serve``). It dies with main, as if one process had died: a
    gateway started anew must not share its ports with what is left of the old one."""
    lifecycle.die_with_parent(siblings.parent, signal.SIGKILL)
    siblings.accepted.receiving.close()
    asyncio.run(_run_until_signalled(Gateway(write, siblings)))


def serve(write=print, processes: int = 1) -> int:
    """Run the gateway on ``processes`` processes until SIGTERM or SIGINT; the exit status."""
    maillog.open_log()
    recover_spool()
    siblings = None
    if processes > 1:
        counts, accepted, versions = ListenerCounts(), AcceptedChannel(), AppliedVersions(processes)
        db.connections.close_all()  # each process opens its own
        workers = []
        for index in range(1, processes):
            inbound = Siblings(index, counts, accepted, versions, parent=os.getpid())
            worker = FORK.Process(target=_serve_inbound, args=(inbound, write), name=f"gateway {index}")
            worker.start()
            workers.append(worker)
        accepted.sending.close()
        siblings = Siblings(0, counts, accepted, versions, parent=os.getpid(), workers=workers)
    told = asyncio.run(_run_until_signalled(Gateway(write, siblings)))
    for worker in siblings.workers if siblings else []:
        worker.terminate()  # an inbound process's SIGTERM: it closes as main did
    for worker in siblings.workers if siblings else []:
        worker.join(STOP_SECONDS)
        if worker.is_alive():
            worker.kill()
    return 0 if told else 1
