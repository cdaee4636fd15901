"""The gateway's inbound side: every committed listener as an aiosmtpd server, following each commit.

``Gateway.apply(config)`` builds what each listener's sessions need (``Inbound``:
its HAT, its TLS contexts, its interface) and makes the sockets match the
configuration: a listener that is gone stops accepting, a new one starts, a
changed one keeps its socket and hands the new settings to the next connection.
Sessions in progress keep the settings they started with. ``run`` watches the
running version (the file every commit rewrites) and applies each new one.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import ssl
from functools import partial

import dns.asyncresolver
from asgiref.sync import sync_to_async
from django.conf import settings

from appliance import dns as appliance_dns
from appliance import https, maillog, tls, workflow
from appliance.config.sections import Config, registry
from appliance.spool import IdCounter, Spool
from certificates import trust
from certificates.expiry_alerts import ExpiryAlerts
from destinations.delivery import Delivery
from listeners import address_lists, hat
from listeners.access import HostAccessTable
from listeners.smtpd import Inbound, InboundSession, Shared
from listeners.store import interface_named

POLL_SECONDS = 0.5
GC_EVERY_POLLS = 20
REVERSE_DNS_SECONDS = 2.0


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
    hostname = (config.get("hostname") or [{"hostname": "localhost"}])[0]["hostname"]
    contexts_by_certificate: dict[str, dict] = {}
    result = {}
    for listener in config.get("listeners", []):
        interface = interface_named(listener["interface_name"], config.get("interfaces", []))
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


class Gateway:
    def __init__(self, write=print):
        self.write = write
        run = settings.DATA_DIR / "run"
        self.shared = Shared(
            icids=IdCounter(run / "icid"),
            mids=IdCounter(run / "mid"),
            dcids=IdCounter(run / "dcid"),
            spool=Spool(),
        )
        self.config: Config = {}
        self.delivery = Delivery(self.shared, lambda: self.config, write)
        self.shared.accepted = self.delivery.enqueue
        self.expiry_alerts = ExpiryAlerts(self.delivery, lambda: self.config)
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
                    partial(self._session, key), address, port, reuse_address=True
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
        config = await sync_to_async(workflow.running_config)(number)
        self.config = config
        for problem in await self.apply(config):
            self.write(f"Error: {problem}")
        self.version = number
        places = ", ".join(
            f"{inbound.name} {address}:{port}" for (address, port), inbound in self.current.items()
        )
        self.write(f"Gateway ready: {places or 'no listeners'} [configuration version {number}]")

    async def run(self, stop: asyncio.Event) -> None:
        maillog.open_log()
        removed = await asyncio.get_running_loop().run_in_executor(None, self.shared.spool.recover)
        if removed:
            maillog.info(f"Spool recovery: removed {removed} message(s) that were never acknowledged")
        await self._follow()  # delivery starts with the running configuration in hand
        delivering = asyncio.create_task(self.delivery.run(stop))
        alerting = asyncio.create_task(self.expiry_alerts.run(stop))  # at start, then hourly
        recording = asyncio.create_task(self.shared.recorder.run(stop))
        polls = 0
        while not stop.is_set():
            await self._follow()
            polls += 1
            if polls % GC_EVERY_POLLS == 0:
                # Finished TLS sessions form reference cycles (asyncio's SSL protocol objects) that hold
                # OpenSSL memory Python does not count, so the collector seldom runs by itself: ~2.7 MiB
                # a session stays until it does (python/cpython#109534).
                gc.collect()
            try:
                await asyncio.wait_for(stop.wait(), POLL_SECONDS)
            except TimeoutError:
                pass
        await delivering
        await alerting
        for server in self.servers.values():
            server.close()
        for session in list(self.shared.sessions):
            if session.transport is not None:
                session.transport.close()
        await recording
        await asyncio.sleep(0)  # the sessions just closed end, and are recorded
        await self.shared.recorder.flush()


def serve(write=print) -> None:
    """Run the gateway until SIGTERM or SIGINT."""

    async def main():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await Gateway(write).run(stop)

    asyncio.run(main())
