"""Benchmark: console pages through gunicorn with a large configuration, against a trivial view.

Run: .venv/bin/python bench/console_load.py [--clients 1,10] [--duration 5] [--processes N]
                                            [--counts 1000,10000,5000]

It makes a throwaway data directory, applies the migrations and runs the first start, commits
``bench/large_config.py``'s configuration (1,000 certificates, 10,000 Destination Controls entries,
5,000 senders in the IncomingMail listener's HAT) and stages a few changes on top of it (a new
certificate, a new, an edited and a deleted destination entry, two senders added), so that
Uncommitted Changes has something to show. Then it serves the console as ``runappliance`` does:
``python -m gunicorn --config appliance/gunicorn_conf.py`` (HTTPS on loopback, gthread workers,
the same worker and thread counts, access log on), with ``DJANGO_SETTINGS_MODULE`` set to
``bench.ceiling_settings``: the appliance's settings and URLs plus ``/bench/ceiling/``, an
``HttpResponse("ok")`` behind the same middleware (the framework's ceiling). The mail gateway and
the HTTP redirects of ``runappliance`` are not started (they are idle for this test).

It logs in through the login form, and for each page and each concurrency level runs that many
clients for ``--duration`` seconds: each client keeps one TLS connection alive and sends GET after
GET (the whole page, as a browser's first request for it), spread over ``--processes`` load
processes of threads. It prints requests/s, p50 and p99 latency, the ratio of requests/s to the
ceiling's at the same level, and the CPU of the gunicorn processes, of the load processes and of
everything else on the machine (percent of one core; a 2-core machine has 200 %).
"""

from __future__ import annotations

import argparse
import http.client
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
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from cpu import CLOCK_TICKS, machine_busy_seconds  # bench/cpu.py: the script's folder is on the path

PROJECT = Path(__file__).resolve().parent.parent
PASSWORD = "Bench-pass-42"
CEILING = ("Trivial view (ceiling)", "/bench/ceiling/")
PAGES = [
    ("Network > Certificates", "/network/certificates/"),
    ("Network > Listeners", "/network/listeners/"),
    ("Mail Policies > Destination Controls", "/services/destination-controls/"),
    ("Uncommitted Changes", "/commit/"),
]
# The changes staged on top of the committed configuration, as an administrator would type them.
PENDING = [
    ["certconfig", "new", "mail-2027", "--cn", "mail.example.com", "--san", "mail.example.com"],
    ["destconfig", "new", "partner.example.net", "--tls", "required"],
    ["destconfig", "edit", "d00042.example.com", "--tls", "preferred", "--max-connections", "50"],
    ["destconfig", "delete", "d00043.example.com"],
    [
        "listenerconfig", "edit", "IncomingMail", "hostaccess", "edit", "sendergroup", "ALLOWED_LIST",
        "--add", "192.0.2.10", "mail.partner.example.net",
    ],
]  # fmt: skip


# --- the data directory (run in a child process: ``--prepare``) ----------------------------


def prepare(counts: list[int]) -> None:
    """Migrate, first start, commit the large configuration, stage a few changes (APPLIANCE_DATA_DIR)."""
    sys.path.insert(0, str(PROJECT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "appliance.settings"
    import django

    django.setup()
    from django.core.management import call_command

    from appliance import bootstrap
    from appliance.models import User
    from bench import large_config

    call_command("migrate", interactive=False, verbosity=0)
    bootstrap.first_start()
    started = time.perf_counter()
    large_config.populate(User.objects.get(username="admin"), *counts)
    print(f"committed {counts[0]:,} certificates, {counts[1]:,} destinations, {counts[2]:,} senders "
          f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
    for command in PENDING:
        call_command(*command, stdout=open(os.devnull, "w"))  # noqa: SIM115
    print(f"staged {len(PENDING)} changes")


# --- the server -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def process_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def process_rss_mib(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


class Console:
    """A throwaway data directory with the large configuration, served by gunicorn."""

    def __init__(self, counts: list[int]):
        self.data_dir = Path(tempfile.mkdtemp(prefix="bench-console-"))
        self.port = free_port()
        self.env = {
            **os.environ,
            "APPLIANCE_DATA_DIR": str(self.data_dir),
            "APPLIANCE_HOSTNAME": "esa.example.com",
            "APPLIANCE_HTTPS_PORT": str(self.port),
            "APPLIANCE_SMTP_PORT": str(free_port()),
            "APPLIANCE_ADMIN_PASSWORD": PASSWORD,
        }
        self.server: subprocess.Popen | None = None
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, __file__, "--prepare", "--counts", ",".join(map(str, counts))],
            cwd=PROJECT,
            env={**self.env, "DJANGO_SETTINGS_MODULE": "appliance.settings"},
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise SystemExit(f"preparing the data directory failed:\n{done.stdout}{done.stderr}")
        print(done.stdout.strip().replace("\n", "; "), f"({time.perf_counter() - started:.0f} s with setup)")

    def start(self) -> None:
        """gunicorn as the supervisor starts it, with the bench settings (the ceiling view added)."""
        self.log = open(self.data_dir / "gunicorn.log", "w")  # noqa: SIM115
        self.server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", str(PROJECT / "appliance" / "gunicorn_conf.py")],
            cwd=PROJECT,
            env={**self.env, "DJANGO_SETTINGS_MODULE": "bench.ceiling_settings"},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            if self.server.poll() is not None:
                raise SystemExit("gunicorn exited:\n" + (self.data_dir / "gunicorn.log").read_text())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("gunicorn did not listen in time") from None
                time.sleep(0.1)

    def processes(self) -> list[int]:
        """The gunicorn master and its workers."""
        return [self.server.pid, *children(self.server.pid)] if self.server else []

    def stop(self) -> None:
        if self.server and self.server.poll() is None:
            os.killpg(self.server.pid, signal.SIGTERM)
            try:
                self.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.server.pid, signal.SIGKILL)
                self.server.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)


# --- the client -----------------------------------------------------------------------------


def client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the Demo certificate
    return context


def cookies(response: http.client.HTTPResponse) -> dict[str, str]:
    found = {}
    for header in response.headers.get_all("Set-Cookie") or []:
        name, _, rest = header.partition("=")
        found[name.strip()] = rest.split(";", 1)[0]
    return found


def log_in(port: int) -> str:
    """The Cookie header of a session opened through the login form."""
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=client_context(), timeout=30)
    connection.request("GET", "/login/")
    response = connection.getresponse()
    page = response.read().decode()
    jar = cookies(response)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    body = urllib.parse.urlencode({"username": "admin", "password": PASSWORD, "csrfmiddlewaretoken": token})
    origin = f"https://127.0.0.1:{port}"
    connection.request(
        "POST",
        "/login/",
        body,
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": "; ".join(f"{k}={v}" for k, v in jar.items()),
            "Referer": f"{origin}/login/",
            "Origin": origin,
        },
    )
    response = connection.getresponse()
    response.read()
    jar.update(cookies(response))
    if response.status != 302 or "sessionid" not in jar:
        raise SystemExit(f"logging in failed: {response.status}")
    connection.close()
    return "; ".join(f"{k}={v}" for k, v in jar.items())


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)  # seconds, of 200 answers
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    bytes: int = 0
    first_start: float = math.inf
    last_end: float = 0.0
    cpu_seconds: float = 0.0


def client(port, path, cookie, stop_at, result: Result, lock: threading.Lock) -> None:
    headers = {"Cookie": cookie}
    connection = None
    while (began := time.time()) < stop_at:
        try:
            if connection is None:
                connection = http.client.HTTPSConnection(
                    "127.0.0.1", port, context=client_context(), timeout=30
                )
                connection.connect()
                began = time.time()  # a handshake once per client, not counted in the request
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise http.client.HTTPException(f"{response.status} {response.reason}")
        except (OSError, http.client.HTTPException) as error:
            with lock:
                result.errors += 1
                if len(result.error_samples) < 3:
                    result.error_samples.append(f"{error.__class__.__name__}: {error}")
            if connection is not None:
                connection.close()
            connection = None
            time.sleep(0.01)
            continue
        ended = time.time()
        with lock:
            result.first_start = min(result.first_start, began)
            result.latencies.append(ended - began)
            result.bytes = len(body)
            result.last_end = max(result.last_end, ended)
    if connection is not None:
        connection.close()


def load_process(port, path, cookie, count, start_at, stop_at, results) -> None:
    result, lock = Result(), threading.Lock()
    time.sleep(max(0.0, start_at - time.time()))
    threads = [
        threading.Thread(target=client, args=(port, path, cookie, stop_at, result, lock))
        for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.cpu_seconds = time.process_time()
    results.put(result)


@dataclass
class Level:
    label: str
    clients: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    error_samples: list[str]
    page_kib: float
    server_cpu: float
    client_cpu: float
    other_cpu: float
    server_rss: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] if ordered else math.nan


def run_level(
    console: Console, cookie: str, label: str, path: str, count: int, duration: float, processes: int
):
    processes = max(1, min(processes, count))
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    start_at = time.time() + 0.3
    stop_at = start_at + duration
    shares = [count // processes + (1 if n < count % processes else 0) for n in range(processes)]
    workers = [
        context.Process(
            target=load_process, args=(console.port, path, cookie, share, start_at, stop_at, results)
        )
        for share in shares
    ]
    for process in workers:
        process.start()
    time.sleep(max(0.0, start_at - time.time()))
    server = console.processes()
    server_before = sum(process_cpu_seconds(pid) for pid in server)
    machine_before = machine_busy_seconds()
    gathered = [results.get(timeout=duration + 120) for _ in workers]
    server_after = sum(process_cpu_seconds(pid) for pid in server)
    machine_after = machine_busy_seconds()
    for process in workers:
        process.join()
    latencies = sorted(latency for result in gathered for latency in result.latencies)
    first = min(min(result.first_start for result in gathered), start_at)
    last = max(result.last_end for result in gathered)
    elapsed = last - first if last > first else duration
    server_cpu = (server_after - server_before) / elapsed * 100
    client_cpu = sum(result.cpu_seconds for result in gathered) / elapsed * 100
    machine_cpu = (machine_after - machine_before) / elapsed * 100
    return Level(
        label=label,
        clients=count,
        requests=len(latencies),
        seconds=elapsed,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        errors=sum(result.errors for result in gathered),
        error_samples=[sample for result in gathered for sample in result.error_samples][:3],
        page_kib=max(result.bytes for result in gathered) / 1024,
        server_cpu=server_cpu,
        client_cpu=client_cpu,
        other_cpu=max(0.0, machine_cpu - server_cpu - client_cpu),
        server_rss=sum(process_rss_mib(pid) for pid in server),
    )


def warm_up(port: int, cookie: str, pages, seconds: float) -> None:
    """Every page a few times on every worker, so that imports and template loading are not counted."""
    stop_at = time.time() + seconds
    threads = [
        threading.Thread(target=client, args=(port, path, cookie, stop_at, Result(), threading.Lock()))
        for _, path in pages
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# --- the command ----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,10", help="concurrency levels, comma-separated")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per page and level")
    parser.add_argument(
        "--processes", type=int, default=os.cpu_count(), help="load processes (default: one per core)"
    )
    parser.add_argument(
        "--counts",
        default="1000,10000,5000",
        help="certificates, destinations, senders (default 1000,10000,5000)",
    )
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    counts = [int(value) for value in options.counts.split(",")]
    if options.prepare:
        prepare(counts)
        return
    levels = [int(level) for level in options.clients.split(",")]
    pages = [CEILING, *PAGES]

    console = Console(counts)
    try:
        console.start()
        cookie = log_in(console.port)
        warm_up(console.port, cookie, pages, 3.0)
        print(
            f"gunicorn {len(console.processes()) - 1} workers on https://127.0.0.1:{console.port}; "
            f"{options.duration:g} s a page and level, up to {options.processes} load processes, "
            f"{os.cpu_count()} cores"
        )
        print(
            "| page | clients | requests/s | × ceiling | p50 ms | p99 ms | errors | page KiB | server CPU "
            "| load CPU | other CPU | server RSS |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for count in levels:
            ceiling = None
            for label, path in pages:
                level = run_level(console, cookie, label, path, count, options.duration, options.processes)
                ceiling = ceiling or level.per_second
                print(
                    f"| {label} | {count} | {level.per_second:.1f} | {level.per_second / ceiling:.2f} | "
                    f"{level.p50_ms:.1f} | {level.p99_ms:.1f} | {level.errors} | {level.page_kib:.0f} | "
                    f"{level.server_cpu:.0f} % | {level.client_cpu:.0f} % | {level.other_cpu:.0f} % | "
                    f"{level.server_rss:.0f} MiB |",
                    flush=True,
                )
                for sample in level.error_samples:
                    print(f"    error: {sample}")
    finally:
        console.stop()


if __name__ == "__main__":
    main()
