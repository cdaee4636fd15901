"""What the gateway tests share: a real ``Gateway`` on an asyncio loop in a thread, the mail log as it is
written, and real SMTP clients on loopback (``smtplib``, a raw socket, ``openssl s_client``, ``swaks``).

The ``gateway`` fixture moves the IncomingMail listener to a free port, commits, and applies the running
configuration; a test stages changes with ``gw.stage(…)`` and makes them run with ``gw.commit()`` (commit,
then ``Gateway.apply`` with the new running configuration), as ``runappliance`` does after each commit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import smtplib
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings

from appliance import workflow
from appliance.config.levels import CLUSTER_MODE
from gateway.records import Recorder
from gateway.server import Gateway
from gateway.smtpd import Shared
from listeners import store
from tests.pki_factory import Credential

LOOPBACK = "127.0.0.1"
IN = "IncomingMail"
CLIENT_NAME = "client.test"
WAIT = 5.0  # seconds a log line or a reply may take


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


# --- the mail log, as the gateway writes it --------------------------------------------------


class MailLog(logging.Handler):
    """Every message of the ``appliance.mail_logs`` logger, in order; waits for lines still to come."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.changed:
            self.lines.append(record.getMessage())
            self.changed.notify_all()

    def wait(self, line: str, timeout: float = WAIT) -> None:
        """Until ``line`` is logged (exactly); AssertionError with what was logged if it never is."""
        with self.changed:
            if not self.changed.wait_for(lambda: line in self.lines, timeout):
                raise AssertionError(f"never logged: {line!r}\nlogged:\n" + "\n".join(self.lines))

    def session(self, icid: int) -> list[str]:
        """The lines of one connection, in order (``New SMTP ICID n …``, ``ICID n …``, ``MID m ICID n …``)."""
        pattern = re.compile(rf"\bICID {icid}\b")
        with self.changed:
            return [line for line in self.lines if pattern.search(line)]

    def closed(self, icid: int) -> list[str]:
        """The lines of a connection once it has ended (waits for ``ICID n close``)."""
        self.wait(f"ICID {icid} close")
        return self.session(icid)

    def message(self, mid: int) -> list[str]:
        pattern = re.compile(rf"\bMID {mid}\b")
        with self.changed:
            return [line for line in self.lines if pattern.search(line)]


@pytest.fixture(name="mail_log")
def mail_log_fixture():
    logger = logging.getLogger("appliance.mail_logs")
    handler = MailLog()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


# --- the gateway on a loop of its own --------------------------------------------------------


@dataclass
class LoopThread:
    loop: asyncio.AbstractEventLoop
    errors: list[dict] = field(default_factory=list)  # what the loop's exception handler saw

    def run(self, coroutine, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)


@pytest.fixture(name="loop_thread", scope="session")
def loop_thread_fixture():
    loop = asyncio.new_event_loop()
    runner = LoopThread(loop)
    loop.set_exception_handler(lambda _loop, context: runner.errors.append(context))
    thread = threading.Thread(target=loop.run_forever, name="gateway-loop", daemon=True)
    thread.start()
    yield runner
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


@dataclass
class GatewayHarness:
    """A running Gateway and the administrator who changes its configuration."""

    admin: object
    runner: LoopThread
    gateway: Gateway
    log: MailLog
    port: int  # IncomingMail's

    def stage(self, description: str, change: Callable[[], object]) -> None:
        workflow.submit(self.admin, description, change)

    def apply(self) -> list[str]:
        """``Gateway.apply`` with the running configuration; the problems it reports."""
        return self.runner.run(self.gateway.apply(workflow.running_config()))

    def commit(self, comment: str = "test change") -> list[str]:
        workflow.commit(self.admin, comment)
        return self.apply()

    def next_icid(self) -> int:
        """The ICID the next connection gets (connections are made one at a time)."""
        return self.gateway.shared.icids.next

    def next_mid(self) -> int:
        return self.gateway.shared.mids.next

    def smtp(self, port: int | None = None, source: str = LOOPBACK, **options) -> smtplib.SMTP:
        """An ``smtplib`` session from ``source`` (any 127.x.y.z: a host of another sender group)."""
        return smtplib.SMTP(
            LOOPBACK,
            port or self.port,
            local_hostname=CLIENT_NAME,
            timeout=10,
            source_address=(source, 0),
            **options,
        )

    def raw(self, port: int | None = None, source: str = LOOPBACK) -> RawClient:
        return RawClient.connect(port or self.port, source)

    async def _stop(self) -> None:
        for server in self.gateway.servers.values():
            server.close()
        for session in list(self.gateway.shared.sessions):
            if session.transport is not None:
                session.transport.close()
        await asyncio.sleep(0)

    def stop(self) -> None:
        self.runner.run(self._stop())


@pytest.fixture(name="gateway")
def gateway_fixture(admin, loop_thread, mail_log):
    """The gateway serving version 2: IncomingMail moved to a free port on Management (127.0.0.1)."""
    port = free_port()
    workflow.submit(admin, "IncomingMail on a free port", lambda: store.edit(CLUSTER_MODE, IN, port=port))
    workflow.commit(admin, "IncomingMail on a free port")
    loop_thread.errors.clear()
    harness = GatewayHarness(admin, loop_thread, Gateway(), mail_log, port)
    assert harness.apply() == []
    yield harness
    harness.stop()
    assert loop_thread.errors == [], "the gateway's loop saw exceptions nobody handled"


# --- clients ---------------------------------------------------------------------------------


def client_context(credential: Credential | None = None) -> ssl.SSLContext:
    """A TLS client context that takes any server certificate (it is checked by the tests themselves),
    presenting ``credential`` as client certificate if given."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if credential is not None:
        context.load_cert_chain(credential.cert, credential.key)
    return context


def mid_of(reply: bytes | str) -> int:
    """The MID in ``250 2.0.0 Ok: Message <mid> accepted``."""
    text = reply.decode() if isinstance(reply, bytes) else reply
    found = re.search(r"Ok: Message (\d+) accepted", text)
    assert found, f"no MID in {text!r}"
    return int(found.group(1))


def message(subject: str = "test", body: str = "Hello.") -> bytes:
    return (
        f"From: <sender@client.test>\r\nTo: <rcpt@example.com>\r\nSubject: {subject}\r\n\r\n{body}\r\n"
    ).encode()


def send(
    client: smtplib.SMTP,
    sender: str = "sender@client.test",
    recipients=("rcpt@example.com",),
    data: bytes | None = None,
) -> tuple[int, bytes]:
    """(EHLO if not done since the last STARTTLS,) MAIL, RCPT…, DATA; the reply to the data (code, text)."""
    client.ehlo_or_helo_if_needed()
    code, reply = client.mail(sender)
    assert code == 250, (code, reply)
    for recipient in recipients:
        code, reply = client.rcpt(recipient)
        assert code == 250, (code, reply)
    return client.data(message() if data is None else data)


@dataclass
class RawClient:
    """SMTP by hand over a socket: pipelining, injection and bytes that ``smtplib`` would not send."""

    sock: socket.socket
    buffer: bytes = b""

    @classmethod
    def connect(cls, port: int, source: str = LOOPBACK) -> RawClient:
        return cls(socket.create_connection((LOOPBACK, port), timeout=10, source_address=(source, 0)))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> bytes:
        """One whole SMTP reply (its lines up to the one with a space after the code); b"" at EOF."""
        lines = []
        while True:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(4096)
                if not chunk:
                    assert not self.buffer and not lines, f"cut short: {self.buffer!r}"
                    return b""
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                return b"\r\n".join(lines)

    def command(self, text: str | bytes) -> bytes:
        self.send((text.encode() if isinstance(text, str) else text) + b"\r\n")
        return self.reply()

    def starttls(self, context: ssl.SSLContext | None = None) -> None:
        """Wrap the socket in TLS (after ``220 Ready to start TLS``); nothing must wait in clear."""
        assert self.buffer == b"", f"read in clear before the handshake: {self.buffer!r}"
        self.sock = (context or client_context()).wrap_socket(self.sock)

    def rest(self) -> bytes:
        """Everything until the server closes the connection."""
        data, self.buffer = self.buffer, b""
        while chunk := self.sock.recv(4096):
            data += chunk
        return data

    def close(self) -> None:
        self.sock.close()


def s_client(port: int, *options: str, commands: bytes = b"QUIT\n") -> subprocess.CompletedProcess:
    """``openssl s_client -starttls smtp`` against ``port``; what it printed, as text."""
    result = subprocess.run(
        ["openssl", "s_client", "-starttls", "smtp", "-connect", f"{LOOPBACK}:{port}",
         "-name", CLIENT_NAME, "-showcerts", "-crlf", *options],
        input=commands, capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    result.stdout, result.stderr = (
        result.stdout.decode(errors="replace"),
        result.stderr.decode(errors="replace"),
    )
    return result


PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def pem_der(pem: str) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem)


def shown_chain(output: str) -> list[bytes]:
    """The certificates ``s_client -showcerts`` printed, as DER (server first)."""
    return [pem_der(block + "\n") for block in PEM_BLOCK.findall(output)]


def swaks(port: int, *options: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["swaks", "--server", f"{LOOPBACK}:{port}", "--helo", CLIENT_NAME,
         "--from", "sender@client.test", "--to", "rcpt@example.com", *options],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


# --- the spool ---------------------------------------------------------------------------------


def spooled(mid: int) -> tuple[dict, bytes]:
    """The envelope line and the data of a queued message, as the file holds them."""
    path = queue_dir() / f"{mid}.msg"
    head, _, data = path.read_bytes().partition(b"\n")
    return json.loads(head), data


def queue_dir() -> Path:
    return settings.DATA_DIR / "spool" / "queue"


def queued() -> set[str]:
    return {path.name for path in queue_dir().glob("*.msg")} if queue_dir().exists() else set()


async def _take_records(shared: Shared):
    return shared.recorder.take()


def flush_records(runner: LoopThread, shared: Shared) -> None:
    """What the gateway recorded so far, written now: taken on its loop, written from the test's thread,
    whose transaction holds the test database (the gateway's own writer thread would wait on it)."""
    Recorder.write(runner.run(_take_records(shared)))
