"""What the delivery tests share: receiving SMTP servers on loopback, their certificates, and the
delivery engine driven on the gateway's loop.

``receivers`` starts real aiosmtpd ``Controller``s, each with the behaviour of a kind of mail server
(no STARTTLS, STARTTLS answered 454, a certificate from the trusted test CA, a wrong name, self-signed,
expired, a handshake that breaks after ``220``, no ESMTP) and records what it took (``Received``:
envelope, data, and the TLS of the session as aiosmtpd's ``session.ssl`` saw it).

``zone`` starts a DNS server of the test's own (MX, A records); ``smtp_port`` is the port MX delivery
connects to (25 on 127.0.0.25 when the process may listen there). ``postfix`` starts a private instance
of the Debian package's Postfix on a loopback port, offering STARTTLS with a test certificate.

``outbound`` is a ``Delivery`` on a spool of the test's own. The test stages SMTP Routes,
Destination Controls entries and the Custom CA list with the store functions, commits them with
``workflow.commit``, and delivers a spooled message with ``outbound.deliver(mid)`` on the background
loop, as the gateway's delivery loop would (or runs that loop itself: ``outbound.running()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from appliance import workflow
from appliance.config.levels import CLUSTER
from appliance.config.sections import Config, registry
from certificates import store as certificate_store
from destinations import routes, store
from destinations.entries import Entry
from gateway.delivery import hops
from gateway.delivery.engine import Delivery
from gateway.smtpd import Shared
from gateway.spool import DeliveryState, Envelope, IdCounter, Spool
from tests import dns_server
from tests.gateway_fixtures import LOOPBACK, LoopThread, MailLog, free_port
from tests.pki_factory import PKI, Credential, make_pki, self_signed

DOMAIN = "dest.test"  # where the test mail goes
RECIPIENT = f"rcpt@{DOMAIN}"
SENDER_DOMAIN = "origin.test"
SENDER = f"sender@{SENDER_DOMAIN}"
REFUSAL = "454 4.7.0 TLS not available due to temporary reason"

# The kinds of receiving server.
PLAIN = "no STARTTLS"
REFUSES = "STARTTLS answered 454"
TRUSTED = "trusted CA, right name"
WRONG_NAME = "trusted CA, wrong name"
SELF_SIGNED = "self-signed"
EXPIRED = "expired"
BROKEN = "handshake fails after 220"
NO_ESMTP = "EHLO refused"
KINDS = (PLAIN, REFUSES, TRUSTED, WRONG_NAME, SELF_SIGNED, EXPIRED, BROKEN, NO_ESMTP)


# --- certificates ------------------------------------------------------------------------------


@dataclass
class ServerCertificates:
    """The test CAs and a server certificate for each kind of receiving server."""

    authorities: PKI
    trusted: Credential  # by the intermediate, for DOMAIN
    wrong_name: Credential  # by the intermediate, for elsewhere.test
    self_signed: Credential  # for DOMAIN, signed by its own key
    expired: Credential  # by the intermediate, for DOMAIN, ended yesterday
    folder: Path

    def chain(self, credential: Credential) -> list[Path]:
        """What the server sends: its certificate, then the intermediate when the intermediate signed it."""
        signed_by_intermediate = credential is not self.self_signed
        return [credential.cert, *([self.authorities.intermediate.cert] if signed_by_intermediate else [])]


@pytest.fixture(name="server_pki", scope="session")
def server_pki_fixture(tmp_path_factory):
    folder = tmp_path_factory.mktemp("delivery-pki")
    authorities = make_pki(folder)
    now = datetime.datetime.now(datetime.UTC)
    return ServerCertificates(
        authorities=authorities,
        trusted=authorities.intermediate.issue(DOMAIN),
        wrong_name=authorities.intermediate.issue("elsewhere.test"),
        self_signed=self_signed(folder, DOMAIN),
        expired=authorities.intermediate.issue(
            DOMAIN, not_before=now - datetime.timedelta(days=30), not_after=now - datetime.timedelta(days=1)
        ),
        folder=folder,
    )


def server_context(chain: list[Path], key: Path) -> ssl.SSLContext:
    """A server's TLS context presenting ``chain`` (its certificate first)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    bundle = chain[0].with_suffix(".chain.pem")
    bundle.write_text("".join(path.read_text().strip() + "\n" for path in chain))
    context.load_cert_chain(bundle, key)
    return context


# --- receiving servers -------------------------------------------------------------------------


@dataclass
class Received:
    """One message a receiving server took."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: str  # "TLSv1.3 TLS_AES_256_GCM_SHA384" as the server saw it, "" in clear
    helo: str
    client_certificate: bytes | None = None  # DER, if the client presented one
    peer: str = ""  # the client's address


class ReceivingSMTP(SMTP):
    """aiosmtpd's SMTP server, with the ways real servers get STARTTLS and EHLO wrong."""

    def __init__(self, handler, *, esmtp: bool = True, starttls: str = "ok", **options):
        super().__init__(handler, **options)
        self.esmtp, self.starttls = esmtp, starttls

    async def smtp_EHLO(self, hostname: str):  # noqa: N802 (aiosmtpd's name)
        if not self.esmtp:
            await self.push("502 5.5.2 Error: command not recognized")
            return
        await super().smtp_EHLO(hostname)

    async def smtp_STARTTLS(self, arg: str):  # noqa: N802
        if self.starttls == "refuse":
            await self.push(REFUSAL)
            return
        if self.starttls == "break":
            await self.push("220 2.0.0 Ready to start TLS")
            try:
                await asyncio.wait_for(self._reader.read(4096), 5)  # the client's hello
            except (TimeoutError, ConnectionError):
                pass
            self.transport.write(b"220 this is not TLS\r\n")
            self.transport.close()
            return
        await super().smtp_STARTTLS(arg)


class ReceiverController(Controller):
    def __init__(self, handler, smtp_options: dict, **options):
        super().__init__(handler, **options)
        self.smtp_options = smtp_options

    def factory(self):
        return ReceivingSMTP(self.handler, **self.smtp_options, **self.SMTP_kwargs)


class Receiver:
    """A receiving mail server on loopback and what it took.

    ``replies`` (recipient → reply) answers RCPT for those recipients, e.g. ``450 4.2.1 Mailbox busy``;
    the others are taken. Tests may change it between attempts.
    """

    def __init__(
        self,
        kind: str,
        context: ssl.SSLContext | None,
        address: str = LOOPBACK,
        port: int | None = None,
        replies: dict[str, str] | None = None,
        hostname: str = f"mx.{DOMAIN}",
    ):
        self.kind = kind
        self.replies = dict(replies or {})
        self.messages: list[Received] = []
        self.mail_commands: list[tuple[str, bool]] = []  # (MAIL FROM address, over TLS)
        self.changed = threading.Condition()
        smtp_options = {
            "esmtp": kind != NO_ESMTP,
            "starttls": {REFUSES: "refuse", BROKEN: "break"}.get(kind, "ok"),
        }
        self.controller = ReceiverController(
            self,
            smtp_options,
            hostname=address,
            port=port or free_port(),
            server_hostname=hostname,
            tls_context=context,
            require_starttls=False,
            decode_data=False,
        )
        self.controller.start()

    @property
    def address(self) -> str:
        return self.controller.hostname

    @property
    def port(self) -> int:
        return self.controller.port

    @property
    def hop(self) -> str:
        """The SMTP route host that leads here."""
        return f"{self.address}:{self.port}"

    def stop(self) -> None:
        self.controller.stop()

    # aiosmtpd's hooks (its names)
    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802
        self.mail_commands.append((address, session.ssl is not None))
        envelope.mail_from, envelope.mail_options = address, list(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        reply = self.replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        tls, client_certificate = "", None
        if session.ssl is not None:
            ssl_object = session.ssl["ssl_object"]
            tls = f"{ssl_object.version()} {ssl_object.cipher()[0]}"
            client_certificate = ssl_object.getpeercert(binary_form=True)
        received = Received(
            envelope.mail_from,
            list(envelope.rcpt_tos),
            bytes(envelope.content),
            tls,
            session.host_name,
            client_certificate,
            session.peer[0],
        )
        with self.changed:
            self.messages.append(received)
            self.changed.notify_all()
        return "250 2.0.0 Ok: queued"

    def wait(self, count: int = 1, timeout: float = 10.0) -> list[Received]:
        """Until ``count`` messages have come; AssertionError if they do not."""
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.messages) >= count, timeout):
                raise AssertionError(f"{self.kind}: {len(self.messages)} message(s) came, not {count}")
            return list(self.messages)


def receiver_context(kind: str, certificates: ServerCertificates) -> ssl.SSLContext | None:
    """The TLS context a kind of server offers STARTTLS with (None: it offers no STARTTLS)."""
    credential = {
        TRUSTED: certificates.trusted,
        REFUSES: certificates.trusted,  # advertised, then refused
        BROKEN: certificates.trusted,  # advertised, then broken
        WRONG_NAME: certificates.wrong_name,
        SELF_SIGNED: certificates.self_signed,
        EXPIRED: certificates.expired,
    }.get(kind)
    if credential is None:
        return None
    return server_context(certificates.chain(credential), credential.key)


@pytest.fixture(name="receivers")
def receivers_fixture(server_pki):
    """Start a receiving server: ``receivers(kind, **options)``; all stop at the end of the test."""
    started: list[Receiver] = []

    def start(kind: str = PLAIN, context: ssl.SSLContext | None = None, **options) -> Receiver:
        receiver = Receiver(kind, context or receiver_context(kind, server_pki), **options)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


MX_ADDRESS = "127.0.0.25"  # where the test zones' MX hosts are


@pytest.fixture(name="smtp_port")
def smtp_port_fixture(monkeypatch):
    """The port MX delivery connects to: 25 on MX_ADDRESS when this process may listen there (root, and
    no system MTA on it); else a free port there, made delivery's SMTP port (MX records give no port)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((MX_ADDRESS, hops.SMTP_PORT))
            return hops.SMTP_PORT
        except OSError:
            probe.bind((MX_ADDRESS, 0))
            port = probe.getsockname()[1]
    monkeypatch.setattr(hops, "SMTP_PORT", port)
    return port


@pytest.fixture(name="zone")
def zone_fixture():
    """Start a DNS server answering from a zone: ``zone(text)`` → (its resolver, its port)."""
    servers = []

    def start(text: str):
        server, resolver, port = dns_server.start(text)
        servers.append(server)
        return resolver, port

    yield start
    for server in servers:
        server.stop()


# --- a real Postfix ----------------------------------------------------------------------------

POSTFIX_DOMAIN = "postfix.test"
POSTFIX_MAIN = """\
compatibility_level = 3.6
queue_directory = {folder}/queue
data_directory = {folder}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.{domain}
mydomain = {domain}
mydestination = {domain}, other.test
mynetworks = 127.0.0.0/8
local_recipient_maps =
alias_maps =
alias_database =
biff = no
# Every message stays in the hold queue, where the test reads it (postqueue, postcat).
smtpd_recipient_restrictions = check_recipient_access static:HOLD
smtpd_tls_security_level = may
smtpd_tls_cert_file = {folder}/chain.pem
smtpd_tls_key_file = {folder}/key.pem
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
maillog_file = {folder}/maillog
maillog_file_prefixes = {folder}
"""
POSTFIX_MASTER = """\
{address}:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def postfix_binary() -> str | None:
    """``postfix`` on the PATH, else where Debian puts it (/usr/sbin is not on every user's PATH)."""
    found = shutil.which("postfix")
    if found is None and os.access("/usr/sbin/postfix", os.X_OK):
        found = "/usr/sbin/postfix"
    return found


@dataclass
class Postfix:
    """A private Postfix instance (its own main.cf, master.cf, queue and log) on a loopback port."""

    binary: str
    folder: Path
    port: int

    @property
    def config_dir(self) -> Path:
        return self.folder / "etc"

    def tool(self, name: str, *args: str) -> str:
        path = Path(self.binary).with_name(name)
        result = subprocess.run(
            [str(path), "-c", str(self.config_dir), *args], capture_output=True, text=True, timeout=30
        )
        if result.returncode != 0:
            raise RuntimeError(f"{name} {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    def queue(self) -> list[dict]:
        """The messages in its queues (``postqueue -j``)."""
        return [json.loads(line) for line in self.tool("postqueue", "-j").splitlines() if line.strip()]

    def headers(self, queue_id: str) -> str:
        return self.tool("postcat", "-h", "-q", queue_id)

    def message_with(self, text: str) -> tuple[dict, str] | None:
        """The queued message whose header holds ``text``, and its header; None if there is none."""
        for entry in self.queue():
            headers = self.headers(entry["queue_id"])
            if text in headers:
                return entry, headers
        return None

    def log(self) -> str:
        path = self.folder / "maillog"
        return path.read_text() if path.exists() else ""


@pytest.fixture(name="postfix", scope="module")
def postfix_fixture(server_pki):
    """Postfix (the Debian package) receiving for postfix.test and other.test on a loopback port, with
    STARTTLS offered (``smtpd_tls_security_level = may``) and a certificate for postfix.test from the
    test intermediate; every message is held in its queue for the test to read."""
    binary = postfix_binary()
    if binary is None:  # make test installs it: a missing Postfix is a broken setup, not an optional test
        pytest.fail("Postfix is not installed: `make system-packages` installs the Debian package postfix")
    if os.geteuid() != 0:
        pytest.skip("a private Postfix instance is started as root (its daemons then run as user postfix)")
    folder = Path(tempfile.mkdtemp(prefix="postfix-test-"))
    folder.chmod(0o755)  # the daemons, as user postfix, go through it to their queue
    credential = server_pki.authorities.intermediate.issue(POSTFIX_DOMAIN)
    (folder / "chain.pem").write_text(
        "".join(path.read_text().strip() + "\n" for path in server_pki.chain(credential))
    )
    key = folder / "key.pem"
    key.write_text(credential.key_pem)
    key.chmod(0o600)
    (folder / "etc").mkdir()
    (folder / "queue").mkdir()
    server = Postfix(binary, folder, free_port())
    (server.config_dir / "main.cf").write_text(POSTFIX_MAIN.format(folder=folder, domain=POSTFIX_DOMAIN))
    (server.config_dir / "master.cf").write_text(POSTFIX_MASTER.format(address=LOOPBACK, port=server.port))
    try:
        server.tool("postfix", "start")
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection((LOOPBACK, server.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Postfix does not listen on {server.port}:\n{server.log()}") from None
                time.sleep(0.1)
        yield server
    finally:
        subprocess.run([binary, "-c", str(server.config_dir), "stop"], capture_output=True, timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status = subprocess.run(
                [binary, "-c", str(server.config_dir), "status"], capture_output=True, timeout=30
            )
            if status.returncode != 0:
                break
            time.sleep(0.1)
        shutil.rmtree(folder, ignore_errors=True)


# --- the delivery engine -------------------------------------------------------------------------


def message(subject: str = "delivery test", to: str = RECIPIENT, sender: str = SENDER) -> bytes:
    return (
        f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@{SENDER_DOMAIN}>\r\n\r\nHello.\r\n"
    ).encode()


def hop(host: str, priority: int | None = None) -> dict:
    return {"host": host, "priority": priority}


# Changes to stage (``workflow.submit``), as an administrator makes them.


def route_change(domain: str, *hosts: str | dict):
    hops = [host if isinstance(host, dict) else hop(host) for host in hosts]
    return lambda: routes.create(domain, hops)


def destination_change(name: str, tls: str):
    # One message a connection: each test sees its connection end (reuse has tests of its own).
    return lambda: store.save_destination(CLUSTER, Entry(name, tls=tls, max_messages_per_connection=1))


def default_tls_change(tls: str):
    """The Default entry's TLS Support (its other settings kept)."""

    def change():
        entry = Entry.of(store.get_destination(CLUSTER, "default"))
        entry.tls = tls
        store.save_destination(CLUSTER, entry, original="default")

    return change


def trust_change(*authorities: Credential):
    """The CAs in the Custom List, and the Custom List enabled (the System List stays enabled)."""

    def change():
        for authority in authorities:
            certificate_store.add_custom_authorities(authority.cert.read_bytes())
        certificate_store.set_authority_lists(True, True)

    return change


def dns_change(port: int):
    """The appliance asks the test's DNS server on ``port``."""
    return lambda: registry.get("dns").write(
        [{"dns_ip": [{"address": f"{LOOPBACK}:{port}", "priority": 0}], "dns_ptr_timeout": 5}]
    )


async def _new_event() -> asyncio.Event:
    return asyncio.Event()


@contextlib.contextmanager
def running(runner: LoopThread, engine: Delivery):
    """``engine.run`` (its loop: due messages, retries, bounces) on the background loop while inside."""
    stop = runner.run(_new_event())
    future = asyncio.run_coroutine_threadsafe(engine.run(stop), runner.loop)
    try:
        yield engine
    finally:
        runner.loop.call_soon_threadsafe(stop.set)
        future.result(10)


@dataclass
class Outbound:
    """A ``Delivery`` of the test's own (its spool, its IDs) and the administrator who configures it."""

    admin: object
    runner: LoopThread
    log: MailLog
    shared: Shared
    config: Config = field(default_factory=dict)
    delivery: Delivery | None = None

    # --- configuration, through the change workflow --------------------------------------

    def stage(self, description: str, change) -> None:
        workflow.submit(self.admin, description, change)

    def commit(self, comment: str = "delivery test") -> None:
        workflow.commit(self.admin, comment)
        self.config = workflow.running_config()

    def route(self, domain: str, *hosts: str | dict) -> None:
        self.stage(f"route {domain}", route_change(domain, *hosts))

    def destination(self, name: str, tls: str) -> None:
        self.stage(f"destination {name} {tls}", destination_change(name, tls))

    def default_tls(self, tls: str) -> None:
        self.stage(f"Default entry {tls}", default_tls_change(tls))

    def trust(self, *authorities: Credential) -> None:
        self.stage("custom CAs", trust_change(*authorities))

    # --- messages -------------------------------------------------------------------------

    def queue(
        self,
        recipients: tuple[str, ...] | list[str] = (RECIPIENT,),
        sender: str = SENDER,
        data: bytes | None = None,
        received: datetime.datetime | None = None,
    ) -> int:
        """A message in the spool, as the listener leaves it; its MID."""
        mid = self.shared.mids.take()
        envelope = Envelope(
            mid=mid,
            mail_from=sender,
            rcpt_tos=list(recipients),
            received=(received or datetime.datetime.now(datetime.UTC)).isoformat(),
            peer=LOOPBACK,
        )
        self.shared.spool.accept(envelope, data if data is not None else message(to=recipients[0]))
        return mid

    def deliver(self, mid: int) -> None:
        """One delivery attempt of ``mid`` with the committed configuration, on the gateway's loop."""
        self.runner.run(self.delivery.attempts.deliver(mid, self.config), timeout=60)

    def enqueue(self, mid: int) -> None:
        """Tell the delivery loop (as the listener does once the spool holds a message)."""
        self.runner.loop.call_soon_threadsafe(self.delivery.enqueue, mid)

    def running(self):
        return running(self.runner, self.delivery)

    def queued(self) -> list[int]:
        return self.shared.spool.mids()

    def state(self, mid: int) -> DeliveryState:
        return self.shared.spool.state(mid)

    def next_dcid(self) -> int:
        return self.shared.dcids.next

    def connection(self, dcid: int) -> list[str]:
        """The log lines of one delivery connection, in order."""
        pattern = re.compile(rf"\bDCID {dcid}\b")
        with self.log.changed:
            return [line for line in self.log.lines if pattern.search(line)]

    def lines_about(self, mid: int) -> list[str]:
        return self.log.message(mid)


def wait_for(log: MailLog, pattern: str, timeout: float = 10.0) -> list[str]:
    """Until a line of the mail log matches ``pattern`` (whole); the lines that do."""
    with log.changed:
        if not log.changed.wait_for(lambda: any(re.fullmatch(pattern, line) for line in log.lines), timeout):
            raise AssertionError(f"never logged: {pattern!r}\nlogged:\n" + "\n".join(log.lines))
        return [line for line in log.lines if re.fullmatch(pattern, line)]


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {condition}"
        time.sleep(0.02)


def new_shared(folder: Path) -> Shared:
    """IDs and a spool in ``folder``: a new ``Shared`` on the same folder is the gateway after a restart."""
    run = folder / "run"
    return Shared(
        icids=IdCounter(run / "icid"),
        mids=IdCounter(run / "mid"),
        dcids=IdCounter(run / "dcid"),
        spool=Spool(folder / "spool"),
    )


@pytest.fixture(name="outbound")
def outbound_fixture(admin, loop_thread, mail_log, tmp_path):
    harness = Outbound(admin, loop_thread, mail_log, new_shared(tmp_path))
    harness.config = workflow.running_config()
    harness.delivery = Delivery(harness.shared, lambda: harness.config)
    loop_thread.errors.clear()
    yield harness
    assert loop_thread.errors == [], "the delivery loop saw exceptions nobody handled"
