"""Benchmark: inbound SMTP with STARTTLS, full sessions from many concurrent clients; our
gateway and Postfix in the same run.

Run: .venv/bin/python bench/smtp_load.py [--clients 1,10,100] [--duration 10] [--quick]
                                         [--processes N] [--size 10240] [--no-postfix]
                                         [--target HOST:PORT [--pid PID]]

Each client runs whole sessions, one after another: connect, EHLO, STARTTLS,
EHLO, MAIL, RCPT, DATA (a 10 KB message), QUIT, over plain asyncio streams
(``StreamWriter.start_tls``, a full handshake every session). The clients of a
level are spread over several processes (default: one per core, at most one per
client). For each level it prints sessions/s, messages/s, p50/p99 session
latency, errors, the CPU spent by the server (all its processes), by the load
processes and by everything else on the machine, each in percent of one core (a
2-core machine has 200 %), and the server's memory after the level.

Without ``--target`` it starts a throwaway appliance (``runappliance`` in a
temporary data directory, free ports), commits TLS Preferred on the default
listener (``listenerconfig edit IncomingMail hostaccess default --tls
preferred``), a sender group LOADGEN for 127.0.0.1 whose policy lifts the limits
From a Single IP (as for a known relay), an SMTP route dropping the bench mail (``smtproutes new
example.com --host /dev/null``), and a private Postfix (``bench/postfix.py``,
the Debian package, as root) with the appliance's Demo certificate and key,
``smtpd_tls_security_level = may``, and the bench mail to its discard transport.
Each level runs against our gateway, then against Postfix; a second table gives
the ratio ours / Postfix. ``openssl speed rsa2048`` gives the machine's RSA-2048
sign rate on one core: the most full handshakes one core can make with that key.

``--target`` measures another SMTP server instead (``--pid`` names its process,
for its CPU and memory, children included); ``--no-postfix`` measures only ours.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import postfix  # bench/postfix.py: the script's folder is on the path
from cpu import machine_busy_seconds  # bench/cpu.py

PROJECT = Path(__file__).resolve().parent.parent
LISTENER = "IncomingMail"
BENCH_DOMAIN = "example.com"  # where the bench mail goes: dropped by both servers
DEMO = "Demo"
LOAD_POLICY = "LOADGEN"  # the policy and sender group of the load generator's address


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
        if not result.tls:
            ssl_object = writer.get_extra_info("ssl_object")
            result.tls = f"{ssl_object.version()} {ssl_object.cipher()[0]}"
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
    tls: str = ""  # the protocol and cipher of a session


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


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass
class Server:
    """An SMTP server under load, and how to read what it spends (all its processes)."""

    name: str
    host: str
    port: int
    cpu_seconds: Callable[[], float | None] = lambda: None
    memory: Callable[[], tuple[float, float, int] | None] = lambda: None  # RSS, PSS MiB; processes


def process_server(name: str, host: str, port: int, pid: int | None) -> Server:
    """A server that is one process and its children (``postfix.tree_*``)."""
    if pid is None:
        return Server(name, host, port)
    return Server(
        name,
        host,
        port,
        cpu_seconds=lambda: postfix.tree_cpu_seconds(pid),
        memory=lambda: postfix.tree_memory_mib(pid),
    )


@dataclass
class Level:
    server: str
    clients: int
    sessions: int
    messages: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    error_samples: list[str]
    tls: str  # the protocol and cipher one session negotiated
    server_cpu: float | None  # percent of one core
    client_cpu: float  # percent of one core, all load processes
    other_cpu: float  # percent of one core: everything else on the machine
    server_memory: tuple[float, float, int] | None  # RSS, PSS MiB, processes, after the level

    @property
    def sessions_per_second(self) -> float:
        return self.sessions / self.seconds

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.seconds


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] if ordered else math.nan


def run_level(server: Server, count, duration, processes, size) -> Level:
    processes = max(1, min(processes, count))
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    start_at = time.time() + 0.5
    stop_at = start_at + duration
    shares = [count // processes + (1 if n < count % processes else 0) for n in range(processes)]
    workers = [
        context.Process(
            target=worker, args=(server.host, server.port, share, start_at, stop_at, size, results)
        )
        for share in shares
    ]
    for process in workers:
        process.start()
    time.sleep(max(0.0, start_at - time.time()))
    server_before, machine_before = server.cpu_seconds(), machine_busy_seconds()
    gathered = [results.get(timeout=duration + 120) for _ in workers]
    server_after, machine_after = server.cpu_seconds(), machine_busy_seconds()
    for process in workers:
        process.join()
    latencies = sorted(latency for result in gathered for latency in result.latencies)
    # From the first session started to the last one finished (the level's length if none finished).
    first = min(min(result.first_start for result in gathered), start_at)
    last = max(result.last_end for result in gathered)
    elapsed = last - first if last > first else duration
    server_cpu = (
        None
        if server_before is None or server_after is None
        else (server_after - server_before) / elapsed * 100
    )
    client_cpu = sum(result.cpu_seconds for result in gathered) / elapsed * 100
    machine_cpu = (machine_after - machine_before) / elapsed * 100
    return Level(
        server=server.name,
        clients=count,
        sessions=len(latencies),
        messages=sum(result.messages for result in gathered),
        seconds=elapsed,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        errors=sum(result.errors for result in gathered),
        error_samples=[sample for result in gathered for sample in result.error_samples][:3],
        tls=next((result.tls for result in gathered if result.tls), ""),
        server_cpu=server_cpu,
        client_cpu=client_cpu,
        other_cpu=max(0.0, machine_cpu - (server_cpu or 0) - client_cpu),
        server_memory=server.memory(),
    )


def openssl_sign_rate() -> float | None:
    """RSA-2048 signatures a second on one core (``openssl speed -seconds 3 rsa2048``)."""
    done = subprocess.run(
        ["openssl", "speed", "-seconds", "3", "rsa2048"], capture_output=True, text=True, check=False
    )
    match = re.search(r"^rsa\s+2048 bits\s+\S+s\s+\S+s\s+([\d.]+)\s", done.stdout, re.MULTILINE)
    return float(match.group(1)) if match else None


# --- a throwaway appliance ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Appliance:
    """``runappliance`` in a temporary data directory (first start: the Demo certificate, the
    IncomingMail listener), configured through the console commands."""

    def __init__(self, prefix: str = "bench-smtp-"):
        self.data_dir = Path(tempfile.mkdtemp(prefix=prefix))
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
        self.times: list[float] = []  # when each line came
        self.process: subprocess.Popen | None = None
        self.run("runappliance")

    def run(self, *command: str) -> None:
        """Start ``manage.py COMMAND`` (``runappliance``, or ``rungateway`` alone) and follow its output."""
        self.lines.clear()
        self.times.clear()
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", *command],
            cwd=PROJECT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._collect, args=(self.process,), daemon=True).start()

    def _collect(self, process):
        for line in process.stdout:
            self.times.append(time.time())
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 60) -> float:
        """Until a line of the output matches; when that line came."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            for when, line in zip(list(self.times), list(self.lines), strict=False):
                if re.search(pattern, line):
                    return when
            time.sleep(0.02)
        raise SystemExit(f"the appliance did not print {pattern!r}:\n" + "\n".join(self.lines))

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=PROJECT, env=self.env, capture_output=True, text=True
        )
        if done.returncode:
            raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout

    def start(self) -> None:
        """Ready, with STARTTLS Preferred on the listener and the bench mail dropped (as Postfix's
        discard transport drops it): no delivery attempt competes with the listener."""
        self.wait_for(r"^Appliance ready: ")
        self.manage("listenerconfig", "edit", LISTENER, "hostaccess", "default", "--tls", "preferred")
        self.manage("smtproutes", "new", BENCH_DOMAIN, "--host", "/dev/null")
        # The load comes from one address, far past the per-address limits that protect a listener
        # from strangers: the administrator of a known relay gives it a policy of its own.
        hostaccess = ("listenerconfig", "edit", LISTENER, "hostaccess", "new")
        self.manage(
            *hostaccess, "policy", LOAD_POLICY, "--behavior", "accept",
            "--max-concurrency-per-ip", "10000", "--max-connections-per-minute-per-ip", "100000",
        )  # fmt: skip
        self.manage(*hostaccess, "sendergroup", LOAD_POLICY, "--policy", LOAD_POLICY, "--order", "1",
                    "--senders", "127.0.0.1")  # fmt: skip
        self.commit("bench: STARTTLS preferred, bench mail dropped, the load generator a known relay")

    def commit(self, comment: str) -> None:
        version = int(
            re.search(r"\[configuration version (\d+)\]", self.lines_matching("^Gateway ready")[-1])[1]
        )
        self.manage("commit", "--comment", comment)
        self.wait_for(rf"^Gateway ready: .*\[configuration version {version + 1}\]")

    def lines_matching(self, pattern: str) -> list[str]:
        self.wait_for(pattern)
        return [line for line in list(self.lines) if re.search(pattern, line)]

    def certificate(self, name: str = DEMO) -> tuple[bytes, bytes]:
        """The certificate's chain and private key as PEM (``certconfig export``, PKCS#12)."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.serialization import pkcs12

        passphrase = self.data_dir / "export-pass.txt"
        bundle = self.data_dir / "export.p12"
        passphrase.write_text("Bench-export-42\n")
        self.manage(
            "certconfig", "export", name, "--pkcs12", str(bundle), "--passphrase-file", str(passphrase)
        )
        key, certificate, others = pkcs12.load_key_and_certificates(bundle.read_bytes(), b"Bench-export-42")
        bundle.unlink()
        chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [certificate, *others])
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return chain, key_pem

    def gateway_pid(self) -> int | None:
        if self.process is None:
            return None
        if b"rungateway" in Path(f"/proc/{self.process.pid}/cmdline").read_bytes():
            return self.process.pid
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

    def server(self) -> Server:
        pid = self.gateway_pid()
        return Server(
            "ours",
            "127.0.0.1",
            self.smtp_port,
            cpu_seconds=lambda: postfix.tree_cpu_seconds(pid, waited_children=False),
            memory=lambda: postfix.tree_memory_mib(pid),
        )

    def halt(self) -> None:
        """Stop what runs (SIGINT: a clean stop), keep the data directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def stop(self) -> None:
        self.halt()
        shutil.rmtree(self.data_dir, ignore_errors=True)


# --- the command --------------------------------------------------------------------------


def fmt(value: float | None, pattern: str = "{:.0f}") -> str:
    return "–" if value is None or math.isnan(value) else pattern.format(value)


def ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}×" if theirs else "–"


def memory_text(memory: tuple[float, float, int] | None) -> str:
    if memory is None:
        return "– | –"
    rss, pss, processes = memory
    return f"{rss:.0f} MiB | {pss:.0f} MiB ({processes})"


def print_level(level: Level) -> None:
    print(
        f"| {level.server} | {level.clients} | {level.sessions_per_second:.0f} | "
        f"{level.messages_per_second:.0f} | {fmt(level.p50_ms, '{:.1f}')} | {fmt(level.p99_ms, '{:.1f}')} | "
        f"{level.errors} | {fmt(level.server_cpu)} % | {fmt(level.client_cpu)} % | "
        f"{fmt(level.other_cpu)} % | {memory_text(level.server_memory)} |",
        flush=True,
    )
    for sample in level.error_samples:
        print(f"    error: {sample}", flush=True)


def print_comparison(levels: list[Level], sign_rate: float | None) -> None:
    by = {(level.server, level.clients): level for level in levels}
    counts = sorted({level.clients for level in levels})
    print()
    print(
        "| clients | ours msg/s | Postfix msg/s | ours / Postfix | ours p99 ms | Postfix p99 ms "
        "| handshakes/s ÷ sign rate: ours | Postfix | signing share of server CPU: ours | Postfix |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for count in counts:
        ours, theirs = by.get(("ours", count)), by.get(("Postfix", count))
        if ours is None or theirs is None:
            continue
        cells = [
            str(count),
            f"{ours.messages_per_second:.0f}",
            f"{theirs.messages_per_second:.0f}",
            ratio(ours.messages_per_second, theirs.messages_per_second),
            fmt(ours.p99_ms, "{:.1f}"),
            fmt(theirs.p99_ms, "{:.1f}"),
        ]
        for level in (ours, theirs):
            cells.append(f"{level.sessions_per_second / sign_rate:.1%}" if sign_rate else "–")
        for level in (ours, theirs):
            share = (
                level.sessions_per_second / sign_rate / (level.server_cpu / 100)
                if sign_rate and level.server_cpu
                else None
            )
            cells.append(fmt(share * 100 if share is not None else None, "{:.1f} %"))
        print("| " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,10,100", help="concurrency levels, comma-separated")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per level and server")
    parser.add_argument("--quick", action="store_true", help="5 s a level (for make bench)")
    parser.add_argument(
        "--processes", type=int, default=os.cpu_count(), help="load processes (default: one per core)"
    )
    parser.add_argument("--size", type=int, default=10 * 1024, help="message size in bytes")
    parser.add_argument("--no-postfix", action="store_true", help="measure only our gateway")
    parser.add_argument("--target", metavar="HOST:PORT", help="an SMTP server to measure instead")
    parser.add_argument("--pid", type=int, help="with --target: the server process, for CPU and memory")
    options = parser.parse_args()
    levels = [int(level) for level in options.clients.split(",")]
    duration = 5.0 if options.quick else options.duration
    started = time.monotonic()

    appliance = competitor = None
    servers: list[Server] = []
    try:
        if options.target:
            host, _, port = options.target.rpartition(":")
            servers.append(process_server("target", host, int(port), options.pid))
        else:
            appliance = Appliance()
            appliance.start()
            servers.append(appliance.server())
            if not options.no_postfix:
                chain, key = appliance.certificate()
                competitor = postfix.Postfix("discard", chain, key).start()
                servers.append(
                    Server(
                        "Postfix",
                        "127.0.0.1",
                        competitor.port,
                        cpu_seconds=competitor.cpu_seconds,
                        memory=competitor.memory,
                    )
                )
        print(
            f"SMTP + STARTTLS load: {options.size} B messages, {duration:g} s a level and server, "
            f"up to {options.processes} load processes, {os.cpu_count()} cores, "
            f"load average before: {load_average()}"
        )
        print(
            "Servers: "
            + ", ".join(f"{server.name} {server.host}:{server.port}" for server in servers)
            + (f" (Postfix {postfix.version()})" if competitor else "")
        )
        sign_rate = None if options.target else openssl_sign_rate()
        if sign_rate:
            print(
                f"openssl speed -seconds 3 rsa2048: {sign_rate:,.0f} signs/s on one core "
                f"({1000 / sign_rate:.3f} ms a handshake's signature; {os.cpu_count()} cores: "
                f"{sign_rate * (os.cpu_count() or 1):,.0f} handshakes/s at most)"
            )
        print()
        print(
            "| server | clients | sessions/s | messages/s | p50 ms | p99 ms | errors | server CPU | load CPU "
            "| other CPU | server RSS | server PSS (processes) |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        results = []
        tls_seen = {}
        for count in levels:
            for server in servers:
                level = run_level(server, count, duration, options.processes, options.size)
                results.append(level)
                tls_seen.setdefault(server.name, level.tls)
                print_level(level)
        print()
        print("TLS: " + ", ".join(f"{name} {tls or '–'}" for name, tls in tls_seen.items()))
        if competitor:
            print_comparison(results, sign_rate)
        print(f"\nWhole run: {time.monotonic() - started:.0f} s; load average after: {load_average()}")
    finally:
        if competitor:
            competitor.stop()
        if appliance:
            appliance.stop()


if __name__ == "__main__":
    main()
