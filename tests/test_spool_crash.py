"""The durable spool under SIGKILL: no acknowledged message lost, nothing partial left in the queue.

A real ``runappliance`` in its own data directory; several SMTP clients (some
with STARTTLS) send numbered messages while the gateway process is killed with
SIGKILL at seeded random moments and the supervisor starts it again. Every
message answered ``250`` must be in ``spool/queue/`` exactly as sent, under the
MID of its ``250``; every queued file must be whole; ``spool/tmp/`` is emptied
by the recovery at each start. Messages never acknowledged may or may not be
queued, but whole if they are.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import signal
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.test_runappliance import Appliance, free_port, ok

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("CRASH_TEST_SEED", "20261127"))
CLIENTS = 6
KILLS = 6
LISTENER = "IncomingMail"
ACCEPTED = re.compile(r"2\.0\.0 Ok: Message (\d+) accepted")
TRACE = re.compile(
    rb"\AReceived: from \S+ \(\S+ \[127\.0\.0\.1\]\)\r\n  by esa\.example\.com with ESMTPS? .*?\r\n  .*?\r\n",
    re.S,
)


class Refused(Exception):
    pass


@dataclass
class Sent:
    """One message as a client sent it, and what the gateway answered."""

    number: int
    mail_from: str
    rcpt_tos: list[str]
    data: bytes  # as it travels: CR LF lines, ends with CR LF
    tls: bool
    mid: int | None = None  # set only when the DATA got 250


def make_message(number: int, client: int) -> Sent:
    rng = random.Random(SEED * 100_003 + number)
    # Mostly small, a few large enough that a kill may land during the write and fsync.
    size = rng.choice([300, 2_000, 10_000, 10_000, 60_000, 400_000])
    line = f"crash-{number} " + "x" * 60
    body = "\r\n".join([line] * max(1, size // (len(line) + 2)))
    rcpt_tos = [f"user{number}-{n}@example.com" for n in range(rng.randint(1, 3))]
    data = (
        f"Message-ID: <crash-{number}@client{client}.example.org>\r\n"
        f"From: <sender{client}@example.org>\r\n"
        f"To: {', '.join(rcpt_tos)}\r\n"
        f"Subject: crash test message {number}\r\n"
        "\r\n"
        f"marker crash-{number} begins\r\n"
        ".a line that starts with a dot: the client doubles it, the gateway takes it back\r\n"
        f"{body}\r\n"
        f"marker crash-{number} ends\r\n"
    ).encode()
    return Sent(number, f"sender{client}@example.org", rcpt_tos, data, tls=client % 2 == 0)


class Clients:
    """SMTP clients in threads: each connects, sends a few messages, quits, and starts again after an error."""

    def __init__(self, port: int, count: int):
        self.port = port
        self.numbers = itertools.count(1)
        self.sent: list[Sent] = []
        self.acknowledged = 0
        self.refusals: list[str] = []  # answers no live gateway should give
        self.stopping = threading.Event()
        self.context = ssl.create_default_context()
        self.context.check_hostname, self.context.verify_mode = False, ssl.CERT_NONE
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(count)]

    def start(self):
        for thread in self.threads:
            thread.start()

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in self.threads)

    def _run(self, client: int) -> None:
        rng = random.Random(SEED + client)
        while not self.stopping.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as smtp:
                    smtp.ehlo(f"client{client}.example.org")
                    if client % 2 == 0:
                        smtp.starttls(context=self.context)
                        smtp.ehlo(f"client{client}.example.org")
                    for _ in range(rng.randint(1, 4)):
                        if self.stopping.is_set():
                            break
                        self._send(smtp, make_message(next(self.numbers), client))
                    smtp.quit()
            except Refused as refusal:
                self.refusals.append(str(refusal))
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)  # the gateway is being killed or started again

    def _send(self, smtp: smtplib.SMTP, message: Sent) -> None:
        self.sent.append(message)  # before MAIL: it may end up queued without a 250

        def expect_250(command: str, answer: tuple[int, bytes]) -> bytes:
            code, reply = answer
            if code != 250:
                raise Refused(f"message {message.number}: {command} answered {code} {reply!r}")
            return reply

        expect_250("MAIL", smtp.mail(message.mail_from))
        for recipient in message.rcpt_tos:
            expect_250("RCPT", smtp.rcpt(recipient))
        try:
            reply = expect_250("DATA", smtp.data(message.data))
        except smtplib.SMTPDataError as error:  # no 354
            raise Refused(
                f"message {message.number}: DATA answered {error.smtp_code} {error.smtp_error!r}"
            ) from None
        message.mid = int(ACCEPTED.search(reply.decode()).group(1))
        self.acknowledged += 1


def gateway_pid(parent: int) -> int | None:
    """The ``manage.py rungateway`` child of the runappliance process ``parent``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"rungateway" in command:
            return int(entry.name)
    return None


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def read_spool_file(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    head, newline, data = raw.partition(b"\n")
    assert newline, f"{path.name}: no envelope line"
    return json.loads(head), data


def test_sigkill_at_random_moments_loses_no_acknowledged_message(tmp_path, monkeypatch):
    rng = random.Random(SEED)
    monkeypatch.setenv("APPLIANCE_SMTP_PORT", str(smtp_port := free_port()))
    data_dir = tmp_path / "data"
    appliance = Appliance(data_dir, free_port())
    clients = Clients(smtp_port, CLIENTS)
    planted = data_dir / "spool" / "tmp" / "999999999.msg"
    try:
        appliance.wait_for(r"^Appliance ready: ")
        appliance.wait_for(rf"^Gateway ready: {LISTENER} 127\.0\.0\.1:{smtp_port} ")
        ok(appliance, "listenerconfig", "edit", LISTENER, "hostaccess", "default", "--tls", "preferred")
        # The clients reconnect from one address far past the per-address limits: a known relay's policy.
        hostaccess = ("listenerconfig", "edit", LISTENER, "hostaccess", "new")
        ok(appliance, *hostaccess, "policy", "LOADGEN", "--behavior", "accept",
           "--max-concurrency-per-ip", "10000", "--max-connections-per-minute-per-ip", "100000")  # fmt: skip
        ok(appliance, *hostaccess, "sendergroup", "LOADGEN", "--policy", "LOADGEN", "--order", "1",
           "--senders", "127.0.0.1")  # fmt: skip
        # The next hop refuses connections: delivery keeps every message queued (temporary failures),
        # so the queue holds exactly what was acknowledged.
        ok(appliance, "smtproutes", "new", "example.com", "--host", f"127.0.0.1:{free_port()}")
        ok(appliance, "commit", "--comment", "STARTTLS for the crash test")
        appliance.wait_for(r"^Gateway ready: .*\[configuration version 2\]")

        clients.start()
        for kill in range(KILLS):
            # Traffic first, then a moment nobody chose: mid-session, mid-DATA, mid-fsync.
            floor = clients.acknowledged
            wait_until(lambda floor=floor: clients.acknowledged > floor, 20, "messages to flow")
            time.sleep(rng.uniform(0.05, 1.2))
            pid = gateway_pid(appliance.process.pid)
            assert pid is not None, "no rungateway process under runappliance"
            before = len(appliance.lines)
            os.kill(pid, signal.SIGKILL)
            if kill == KILLS // 2:
                # What a crash during a write leaves: the next start must remove it before listening.
                planted.write_bytes(b'{"mid":999999999,"mail_from":"half')
            appliance.wait_for(
                r"^Warning: the mail gateway exited with status -9; starting it again", 20, before
            )
            appliance.wait_for(r"^Gateway ready: ", 30, before)
        time.sleep(1)
        clients.stop()
        assert appliance.stop() == 0
    finally:
        clients.stopping.set()
        appliance.stop()

    assert clients.refusals == []
    spool = data_dir / "spool"
    assert list((spool / "tmp").iterdir()) == []
    log = (data_dir / "logs" / "mail_logs").read_text(errors="replace")
    assert re.search(r"Info: Spool recovery: removed \d+ message\(s\) that were never acknowledged", log)
    assert len(re.findall(r"^Warning: the mail gateway exited", "\n".join(appliance.lines), re.M)) == KILLS

    sent = {message.number: message for message in clients.sent}
    acknowledged = [message for message in sent.values() if message.mid is not None]
    assert len(acknowledged) >= 50, f"only {len(acknowledged)} messages acknowledged"
    assert any(message.tls for message in acknowledged) and any(not m.tls for m in acknowledged)
    mids = [message.mid for message in acknowledged]
    assert len(set(mids)) == len(mids), "a MID was given to two messages"

    # Every file in the queue is whole: its envelope parses and its data is a sent message, exactly.
    queued: dict[int, int] = {}  # MID → message number
    for path in sorted((spool / "queue").iterdir()):
        if path.suffix == ".state":
            assert json.loads(path.read_text())["done"] == {}, path.name  # nothing was delivered
            continue
        assert path.suffix == ".msg", path.name
        envelope, data = read_spool_file(path)
        assert envelope["mid"] == int(path.stem)
        trace = TRACE.match(data)
        assert trace, f"{path.name}: no Received trace line: {data[:200]!r}"
        number = int(re.match(rb"Message-ID: <crash-(\d+)@", data[trace.end() :]).group(1))
        message = sent[number]
        assert data[trace.end() :] == message.data, f"{path.name}: not the data of message {number}"
        assert envelope["mail_from"] == message.mail_from
        assert envelope["rcpt_tos"] == message.rcpt_tos
        assert envelope["listener"] == LISTENER and envelope["peer"] == "127.0.0.1"
        assert bool(envelope["tls"]) == message.tls, envelope["tls"]
        assert (b" with ESMTPS " in trace.group()) == message.tls
        assert number not in queued.values(), f"message {number} queued twice"
        queued[envelope["mid"]] = number

    # Every acknowledged message is there, under the MID its 250 named, and logged as done.
    lost = [m.number for m in acknowledged if queued.get(m.mid) != m.number]
    assert lost == [], f"acknowledged but not in the queue: messages {lost}"
    finished = {int(mid) for mid in re.findall(r"Message finished MID (\d+) done", log)}
    assert set(mids) <= finished
    unacknowledged = len(queued) - len(acknowledged)
    recovered = sum(int(n) for n in re.findall(r"Spool recovery: removed (\d+)", log))
    print(
        f"{len(sent)} messages sent, {len(acknowledged)} acknowledged, {len(queued)} queued "
        f"({unacknowledged} of them never acknowledged), {recovered} partial files recovered, {KILLS} kills"
    )
