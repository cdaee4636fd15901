"""Benchmark: inbound SMTP with STARTTLS, full sessions from many concurrent clients.

Run: .venv/bin/python bench/smtp_load.py [--clients 1,10,100] [--duration 10] [--processes N]
                                         [--size 10240] [--target HOST:PORT [--pid PID]]

Each client runs whole sessions, one after another: connect, EHLO, STARTTLS,
EHLO, MAIL, RCPT, DATA (a 10 KB message), QUIT, over plain asyncio streams
(``StreamWriter.start_tls``, a full handshake every session). The clients of a
level are spread over several processes (default: one per core, at most one per
client). For each level it prints sessions/s, messages/s, p50/p99 session
latency, errors, and the CPU spent by the server process, by the load processes
and by everything else on the machine, each in percent of one core (a 2-core
machine has 200 %), and the server's resident memory after the level.

Without ``--target`` it starts a throwaway appliance (``runappliance`` in a
temporary data directory, free ports), commits TLS Preferred on the default
listener (``listenerconfig edit IncomingMail hostaccess default --tls
preferred``) and measures its gateway; ``--pid`` names the server process of a
``--target`` so that its CPU and memory are reported too.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
LISTENER = "IncomingMail"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class SessionError(Exception):
    pass


# --- the client -------------------------------------------------------------------------


def make_message(size: int) -> bytes:
    """A message of ``size`` bytes with CR LF lines, none starting with a dot."""
    head = (
        b"From: <load@client.example.org>\r\nTo: <user@example.com>\r\n"
        b"Subject: load test\r\nMessage-ID: <load@client.example.org>\r\n\r\n"
    )
    line = b"x" * 76 + b"\r\n"
    body = line * ((size - len(head)) // len(line))
    return head + body + b"y" * max(0, size - len(head) - len(body) - 2) + b"\r\n"


async def reply(reader: asyncio.StreamReader, expected: int, what: str) -> bytes:
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            raise SessionError(f"{what}: connection closed")
        lines.append(line)
        if line[3:4] != b"-":
            break
    if not line[:3].isdigit() or int(line[:3]) != expected:
        raise SessionError(f"{what}: {line.decode(errors='replace').strip()}")
    return b"".join(lines)


async def session(host: str, port: int, context: ssl.SSLContext, message: bytes, result: Result) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        await reply(reader, 220, "banner")
        writer.write(b"EHLO client.example.org\r\n")
        if b"STARTTLS" not in (await reply(reader, 250, "EHLO")).upper():
            raise SessionError("STARTTLS not offered")
        writer.write(b"STARTTLS\r\n")
        await reply(reader, 220, "STARTTLS")
        await writer.start_tls(context)
        writer.write(b"EHLO client.example.org\r\n")
        await reply(reader, 250, "EHLO after STARTTLS")
        writer.write(b"MAIL FROM:<load@client.example.org>\r\n")
        await reply(reader, 250, "MAIL")
        writer.write(b"RCPT TO:<user@example.com>\r\n")
        await reply(reader, 250, "RCPT")
        writer.write(b"DATA\r\n")
        await reply(reader, 354, "DATA")
        writer.write(message + b".\r\n")
        await reply(reader, 250, "end of data")
        result.messages += 1
        writer.write(b"QUIT\r\n")
        await reply(reader, 221, "QUIT")
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass


@dataclass
class Result:
    """What the clients of one process saw."""

    latencies: list[float] = field(default_factory=list)  # seconds, of sessions that succeeded
    messages: int = 0  # answered 250 after DATA
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    first_start: float = math.inf
    last_end: float = 0.0
    cpu_seconds: float = 0.0


async def clients(host, port, count, start_at, stop_at, size) -> Result:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    message = make_message(size)
    result = Result()

    async def client():
        while (began := time.time()) < stop_at:
            result.first_start = min(result.first_start, began)
            try:
                await asyncio.wait_for(session(host, port, context, message, result), 30)
            except (OSError, ssl.SSLError, SessionError, TimeoutError) as error:
                result.errors += 1
                if len(result.error_samples) < 3:
                    result.error_samples.append(f"{error.__class__.__name__}: {error}")
                await asyncio.sleep(0.01)
                continue
            ended = time.time()
            result.latencies.append(ended - began)
            result.last_end = max(result.last_end, ended)

    await asyncio.sleep(max(0.0, start_at - time.time()))
    await asyncio.gather(*(client() for _ in range(count)))
    return result


def worker(host, port, count, start_at, stop_at, size, results) -> None:
    result = asyncio.run(clients(host, port, count, start_at, stop_at, size))
    result.cpu_seconds = time.process_time()
    results.put(result)


# --- what the server and the machine spent ------------------------------------------------


def process_cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def process_rss_mib(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return (sum(values) - values[3] - values[4]) / CLOCK_TICKS  # all but idle and iowait


@dataclass
class Level:
    clients: int
    sessions: int
    messages: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    error_samples: list[str]
    server_cpu: float | None  # percent of one core
    client_cpu: float  # percent of one core, all load processes
    other_cpu: float  # percent of one core: everything else on the machine
    server_rss: float | None  # MiB after the level


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] if ordered else math.nan


def run_level(host, port, count, duration, processes, size, server_pid) -> Level:
    processes = max(1, min(processes, count))
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    start_at = time.time() + 0.5
    stop_at = start_at + duration
    shares = [count // processes + (1 if n < count % processes else 0) for n in range(processes)]
    workers = [
        context.Process(target=worker, args=(host, port, share, start_at, stop_at, size, results))
        for share in shares
    ]
    for process in workers:
        process.start()
    time.sleep(max(0.0, start_at - time.time()))
    server_before, machine_before = process_cpu_seconds(server_pid), machine_busy_seconds()
    gathered = [results.get(timeout=duration + 120) for _ in workers]
    server_after, machine_after = process_cpu_seconds(server_pid), machine_busy_seconds()
    for process in workers:
        process.join()
    latencies = sorted(latency for result in gathered for latency in result.latencies)
    # From the first session started to the last one finished (the level's length if none finished).
    first = min(min(result.first_start for result in gathered), start_at)
    last = max(result.last_end for result in gathered)
    elapsed = last - first if last > first else duration
    server_cpu = None if server_before is None else (server_after - server_before) / elapsed * 100
    client_cpu = sum(result.cpu_seconds for result in gathered) / elapsed * 100
    machine_cpu = (machine_after - machine_before) / elapsed * 100
    return Level(
        clients=count,
        sessions=len(latencies),
        messages=sum(result.messages for result in gathered),
        seconds=elapsed,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        errors=sum(result.errors for result in gathered),
        error_samples=[sample for result in gathered for sample in result.error_samples][:3],
        server_cpu=server_cpu,
        client_cpu=client_cpu,
        other_cpu=max(0.0, machine_cpu - (server_cpu or 0) - client_cpu),
        server_rss=process_rss_mib(server_pid),
    )


# --- a throwaway appliance ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Appliance:
    """``runappliance`` in a temporary data directory, with TLS Preferred committed on the listener."""

    def __init__(self):
        self.data_dir = Path(tempfile.mkdtemp(prefix="bench-smtp-"))
        self.smtp_port = free_port()
        self.env = {
            **os.environ,
            "APPLIANCE_DATA_DIR": str(self.data_dir),
            "APPLIANCE_HOSTNAME": "esa.example.com",
            "APPLIANCE_HTTPS_PORT": str(free_port()),
            "APPLIANCE_SMTP_PORT": str(self.smtp_port),
            "APPLIANCE_ADMIN_PASSWORD": "Bench-pass-42",
            "DJANGO_SETTINGS_MODULE": "appliance.settings",
        }
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runappliance"],
            cwd=PROJECT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self):
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if any(re.search(pattern, line) for line in self.lines):
                return
            time.sleep(0.1)
        raise SystemExit(f"the appliance did not print {pattern!r}:\n" + "\n".join(self.lines))

    def manage(self, *args: str) -> None:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=PROJECT, env=self.env, capture_output=True, text=True
        )
        if done.returncode:
            raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stderr}")

    def start(self) -> None:
        self.wait_for(r"^Appliance ready: ")
        self.manage("listenerconfig", "edit", LISTENER, "hostaccess", "default", "--tls", "preferred")
        self.manage("commit", "--comment", "bench: STARTTLS preferred")
        self.wait_for(r"^Gateway ready: .*\[configuration version 2\]")

    def gateway_pid(self) -> int | None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid and b"rungateway" in command:
                return int(entry.name)
        return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)


# --- the command --------------------------------------------------------------------------


def fmt(value: float | None, pattern: str = "{:.0f}") -> str:
    return "–" if value is None or math.isnan(value) else pattern.format(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,10,100", help="concurrency levels, comma-separated")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per level")
    parser.add_argument(
        "--processes", type=int, default=os.cpu_count(), help="load processes (default: one per core)"
    )
    parser.add_argument("--size", type=int, default=10 * 1024, help="message size in bytes")
    parser.add_argument("--target", metavar="HOST:PORT", help="an SMTP server to measure instead")
    parser.add_argument("--pid", type=int, help="with --target: the server process, for CPU and memory")
    options = parser.parse_args()
    levels = [int(level) for level in options.clients.split(",")]

    appliance = None
    if options.target:
        host, _, port = options.target.rpartition(":")
        port, server_pid = int(port), options.pid
    else:
        appliance = Appliance()
        try:
            appliance.start()
        except BaseException:
            appliance.stop()
            raise
        host, port, server_pid = "127.0.0.1", appliance.smtp_port, appliance.gateway_pid()
    try:
        print(
            f"SMTP + STARTTLS load against {host}:{port}: {options.size} B messages, "
            f"{options.duration:g} s a level, up to {options.processes} load processes, {os.cpu_count()} cores"
        )
        print(
            "| clients | sessions/s | messages/s | p50 ms | p99 ms | errors | server CPU | load CPU "
            "| other CPU | server RSS |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for count in levels:
            level = run_level(
                host, port, count, options.duration, options.processes, options.size, server_pid
            )
            print(
                f"| {count} | {level.sessions / level.seconds:.0f} | {level.messages / level.seconds:.0f} | {fmt(level.p50_ms, '{:.1f}')} | "
                f"{fmt(level.p99_ms, '{:.1f}')} | {level.errors} | {fmt(level.server_cpu)} % | "
                f"{fmt(level.client_cpu)} % | {fmt(level.other_cpu)} % | {fmt(level.server_rss)} MiB |",
                flush=True,
            )
            for sample in level.error_samples:
                print(f"    error: {sample}")
    finally:
        if appliance:
            appliance.stop()


if __name__ == "__main__":
    main()
