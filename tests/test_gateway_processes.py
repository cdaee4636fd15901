"""The gateway on two processes (``APPLIANCE_GATEWAY_PROCESSES=2``), as ``runappliance`` runs it on a
two-core machine: both accept on the listener's port, a listener's connection limit holds over the
two together, a commit is announced once both serve it, and main delivers what either accepted."""

from __future__ import annotations

import re
import smtplib
import socket
from pathlib import Path

import pytest

from tests.appliance_process import Appliance, free_port
from tests.delivery_fixtures import PLAIN, Receiver
from tests.test_runappliance import ok

pytestmark = pytest.mark.slow

LISTENER = "IncomingMail"
MESSAGES = 40


def gateway_processes(supervisor: int) -> list[int]:
    """The PIDs of ``rungateway`` under the supervisor: main, then the processes it forked."""

    def children(pid: int) -> list[int]:
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
        return found

    main = [pid for pid in children(supervisor) if b"rungateway" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    return main + (children(main[0]) if main else [])


def test_two_processes_share_the_port_the_connection_limit_and_the_queue(tmp_path, monkeypatch):
    monkeypatch.setenv("APPLIANCE_GATEWAY_PROCESSES", "2")
    monkeypatch.setenv("APPLIANCE_SMTP_PORT", str(smtp_port := free_port()))
    receiver = Receiver(PLAIN, None)
    appliance = Appliance(tmp_path / "data", free_port())
    try:
        appliance.wait_for(r"^Appliance ready: ")
        appliance.wait_for(r"^Gateway ready: ")  # printed once every process serves the version
        gateway = gateway_processes(appliance.process.pid)
        assert len(gateway) == 2, f"gateway processes: {gateway}"

        ok(appliance, "smtproutes", "new", "example.com", "--host", receiver.hop)
        ok(appliance, "listenerconfig", "edit", LISTENER, "--max-concurrency", "4")
        ok(appliance, "commit", "--comment", "a sink for example.com; at most 4 connections")
        appliance.wait_for(r"^Gateway ready: .*\[configuration version 2\]")

        # Announced only once both processes serve version 2: its limit holds over the two at once.
        held = [socket.create_connection(("127.0.0.1", smtp_port), timeout=10) for _ in range(10)]
        banners = [connection.recv(512) for connection in held]
        for connection in held:
            connection.close()
        assert sorted(banner[:3] for banner in banners) == [b"220"] * 4 + [b"421"] * 6, banners

        mids = []
        for number in range(MESSAGES):  # a connection each: the kernel spreads them over the two
            with smtplib.SMTP("127.0.0.1", smtp_port, local_hostname="client.test", timeout=10) as client:
                client.ehlo()
                client.mail("alice@partner.test")
                client.rcpt("bob@example.com")
                code, reply = client.data(f"Subject: number {number}\r\n\r\nHi.\r\n".encode())
                assert code == 250, reply
                mids.append(int(re.search(rb"Message (\d+) accepted", reply).group(1)))
        # Each process hands out MIDs from its own block of 1,000: both blocks, so both accepted mail.
        assert len(set(mids)) == MESSAGES and max(mids) - min(mids) > 900, sorted(mids)
        delivered = receiver.wait(MESSAGES, timeout=30)  # main delivers what either accepted
        assert sorted(int(m.data.split(b"number ")[1].split(b"\r\n")[0]) for m in delivered) == list(
            range(MESSAGES)
        )
    finally:
        status = appliance.stop()
        receiver.stop()
    assert status == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in gateway), "a gateway process outlived the stop"
    log = (tmp_path / "data" / "logs" / "mail_logs").read_text()
    for mid in mids:  # both processes wrote the one mail log
        assert f"Info: Message finished MID {mid} done" in log
        assert re.search(rf"Info: Delivery start DCID \d+ MID {mid} to RID \[0\]", log)
