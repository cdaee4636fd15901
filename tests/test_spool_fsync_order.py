"""The order that makes a 250 safe, seen in the system calls: the message file written and fsync'd,
renamed into the queue, the queue directory fsync'd, and only then the ``250`` on the socket.

A SIGKILL leaves the page cache intact, so the crash test (``test_spool_crash``) would pass without
any fsync; this test watches the gateway's two processes under ``strace`` instead, for messages sent
one a connection, several in one session, and with their commands pipelined (RFC 2920).
"""

from __future__ import annotations

import re
import shutil
import signal
import smtplib
import socket
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass, field

import psutil
import pytest

from tests.appliance_process import Appliance, free_port
from tests.test_gateway_processes import gateway_processes

pytestmark = pytest.mark.slow

CALL = re.compile(r"^(?P<tid>\d+) +(?P<time>\d+\.\d+) (?P<rest>.*)$")
ACCEPTED = re.compile(r'"250 2\.0\.0 Ok: Message (\d+) accepted\\r\\n"')


Span = tuple[float, float]  # when a system call began and ended


@dataclass
class Message:
    """Each step of one message's acceptance, and the threads that made them."""

    file_written: Span | None = None
    file_fsynced: Span | None = None
    renamed: Span | None = None
    queue_fd: str = ""
    queue_fsynced: Span | None = None
    acknowledged: Span | None = None  # the write of its 250 on the socket
    threads: set[int] = field(default_factory=set)


def complete_calls(lines: list[str]):
    """(thread, (begin, end), the whole call) from ``strace -f -ttt -T`` output, an interrupted call
    joined with its resumption."""
    pending: dict[int, tuple[float, str]] = {}
    for line in lines:
        match = CALL.match(line)
        if not match:
            continue
        tid, moment, rest = int(match["tid"]), float(match["time"]), match["rest"]
        if rest.endswith("<unfinished ...>"):
            pending[tid] = (moment, rest.removesuffix("<unfinished ...>").rstrip())
            continue
        duration = re.search(r" <(\d+\.\d+)>$", rest)
        rest = rest[: duration.start()] if duration else rest
        if rest.startswith("<... "):
            began, head = pending.pop(tid, (moment, ""))
            yield tid, (began, moment), head + rest.split("resumed>", 1)[1]
        else:
            yield tid, (moment, moment + (float(duration[1]) if duration else 0.0)), rest


def follow(trace: str) -> dict[int, Message]:
    messages: dict[int, Message] = defaultdict(Message)
    by_fd: dict[tuple[int, str], int] = {}  # (thread, fd) -> MID of the tmp file open there
    renamed_last: dict[int, int] = {}  # thread -> the MID it renamed last
    for tid, span, call in complete_calls(trace.splitlines()):
        if opened := re.match(
            r'openat\(AT_FDCWD, "[^"]*/spool/tmp/(\d+)\.msg", O_WRONLY\|O_CREAT\|O_EXCL.*= (\d+)$', call
        ):
            mid = int(opened[1])
            messages[mid].threads.add(tid)
            by_fd[(tid, opened[2])] = mid
        elif written := re.match(r"write\((\d+), ", call):
            if (mid := by_fd.get((tid, written[1]))) is not None:
                messages[mid].file_written = span
        elif synced := re.match(r"fsync\((\d+)\) *= 0$", call):
            fd = synced[1]
            if (mid := by_fd.pop((tid, fd), None)) is not None:
                messages[mid].file_fsynced = span
            elif (mid := renamed_last.get(tid)) is not None and messages[mid].queue_fd == fd:
                messages[mid].queue_fsynced = span
                del renamed_last[tid]
        elif moved := re.match(
            r'rename\("[^"]*/spool/tmp/(\d+)\.msg", "[^"]*/spool/queue/\1\.msg"\) *= 0$', call
        ):
            mid = int(moved[1])
            messages[mid].renamed = span
            renamed_last[tid] = mid
        elif directory := re.match(
            r'openat\(AT_FDCWD, "[^"]*/spool/queue", O_RDONLY[^)]*O_DIRECTORY.*= (\d+)$', call
        ):
            if (mid := renamed_last.get(tid)) is not None:
                messages[mid].queue_fd = directory[1]
        elif (call.startswith(("write(", "sendto(", "sendmsg("))) and (acked := ACCEPTED.search(call)):
            messages[int(acked[1])].acknowledged = messages[int(acked[1])].acknowledged or span
    return messages


def send_one_a_connection(port: int, count: int) -> list[int]:
    mids = []
    for number in range(count):  # a connection each: the kernel spreads them over the processes
        with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=10) as client:
            client.ehlo()
            client.mail("alice@partner.test")
            client.rcpt("bob@example.com")
            code, reply = client.data(f"Subject: single {number}\r\n\r\nHi.\r\n".encode())
            assert code == 250, reply
            mids.append(int(re.search(rb"Message (\d+) accepted", reply)[1]))
    return mids


def send_pipelined(port: int, count: int) -> list[int]:
    """``count`` messages in one session, each message's commands and data in one write."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        reader = connection.makefile("rb")

        def reply() -> bytes:
            while (line := reader.readline())[3:4] == b"-":
                pass
            return line

        assert reply().startswith(b"220")
        connection.sendall(b"EHLO client.test\r\n")
        assert reply().startswith(b"250")
        mids = []
        for number in range(count):
            connection.sendall(
                b"MAIL FROM:<alice@partner.test>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n"
                + f"Subject: pipelined {number}\r\n\r\nHi.\r\n.\r\n".encode()
            )
            answers = [reply() for _ in range(4)]
            assert [a[:3] for a in answers] == [b"250", b"250", b"354", b"250"], answers
            mids.append(int(re.search(rb"Message (\d+) accepted", answers[3])[1]))
        connection.sendall(b"QUIT\r\n")
    return mids


def test_every_250_follows_the_fsync_of_its_file_and_of_the_queue_directory(tmp_path, monkeypatch):
    if shutil.which("strace") is None:
        pytest.fail("strace is missing: make test installs it (Debian package strace)")
    monkeypatch.setenv("APPLIANCE_GATEWAY_PROCESSES", "2")
    monkeypatch.setenv("APPLIANCE_SMTP_PORT", str(smtp_port := free_port()))
    appliance = Appliance(tmp_path / "data", free_port())
    tracer = None
    try:
        appliance.wait_for(r"^Gateway ready: ")
        gateway = gateway_processes(appliance.process.pid)
        assert len(gateway) == 2, f"gateway processes: {gateway}"
        trace = tmp_path / "trace"
        tracer = subprocess.Popen(
            [
                "strace",
                "-f",
                "-ttt",
                "-T",
                "-s",
                "80",
                "-o",
                str(trace),
                "-e",
                "trace=openat,write,fsync,fdatasync,rename,renameat,renameat2,sendto,sendmsg",
                *(argument for pid in gateway for argument in ("-p", str(pid))),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        attached = set()
        deadline = time.monotonic() + 20
        while not attached >= set(gateway):  # strace says "Process N attached" for each
            line = tracer.stderr.readline()
            attached |= {int(n) for n in re.findall(r"Process (\d+) attached", line)}
            if not line and tracer.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"strace could not attach to the gateway (ptrace refused?): {line!r}")
        mids = (
            send_one_a_connection(smtp_port, 30) + send_pipelined(smtp_port, 5) + send_pipelined(smtp_port, 5)
        )
        threads_of = {thread.id: pid for pid in gateway for thread in psutil.Process(pid).threads()}
    finally:
        if tracer is not None:
            tracer.send_signal(signal.SIGINT)  # detaches; the gateway goes on
            tracer.wait(timeout=30)
        assert appliance.stop() == 0

    messages = follow(trace.read_text())
    for mid in mids:
        message = messages[mid]
        steps = [message.file_written, message.file_fsynced, message.renamed, message.queue_fsynced]
        assert all(steps) and message.acknowledged, f"MID {mid}: a step is missing from the trace: {message}"
        # Each step ends before the next begins; the 250 is written after the directory's fsync ended.
        for earlier, later in zip([*steps], [*steps[1:], message.acknowledged], strict=True):
            assert earlier[1] <= later[0], f"MID {mid}: the steps overlap or run out of order: {message}"
    accepting = {threads_of.get(tid) for mid in mids for tid in messages[mid].threads}
    assert accepting == set(gateway), f"accepted by {accepting}, gateway processes {gateway}"
