"""Probe: the hostile cases of a careless or malicious client, against a running appliance, and how
long a bystander waits meanwhile.

Run: .venv/bin/python bench/hostile_probe.py [--case NAME ...] [--seconds 40]

It starts ``runappliance`` in a throwaway data directory on free loopback ports and runs each case
(all by default). While a case runs, a bystander on another loopback address (127.0.0.2) asks, four
times a second, for the console's login page (a new HTTPS connection each time) and for the SMTP
banner of the listener; the figure of a case is the longest either waited, the case's own time
bounded by ``--seconds``. Every case is bounded in count and time and stops by itself:

- ``pkcs12-iterations``: two uploads at once of a PKCS#12 file made by ``openssl pkcs12 -export -iter
  11000000`` (above any real producer's count) on Network > Certificates > Add Certificate;
- ``rsa-16384``: a self-signed certificate with an RSA-16384 key, pasted with its key;
- ``smtp-idle``: 500 SMTP connections from one address (127.0.0.1) that say nothing;
- ``login-flood``: 40 wrong passwords for admin from 127.0.0.1, then the right one from 127.0.0.2;
- ``big-paste``: a 50 MB configuration pasted on System Administration > Configuration File.

Prints one line a case: what the attacker got, and the bystander's longest wait. The verdict the
issue asks for is under 1 s for every case.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
PASSWORD = "Probe-pass-42"
BYSTANDER = "127.0.0.2"
TLS = ssl._create_unverified_context()  # the appliance's Demo certificate: self-signed


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Console:
    """One administrator's HTTPS session (cookies, CSRF) from ``source``."""

    def __init__(self, port: int, source: str = "127.0.0.1", timeout: float = 120):
        self.port, self.source, self.timeout = port, source, timeout
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: bytes = b"", content_type: str = "") -> tuple[int, str]:
        connection = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=TLS, timeout=self.timeout, source_address=(self.source, 0)
        )
        headers = {
            "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
            "Referer": self.url(path),
        }
        if "csrftoken" in self.cookies:
            headers["X-CSRFToken"] = self.cookies["csrftoken"]
        if content_type:
            headers["Content-Type"] = content_type
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            text = response.read().decode(errors="replace")
        except OSError as error:
            return 0, f"connection failed: {error}"
        finally:
            connection.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            name, value = header.split(";", 1)[0].split("=", 1)
            self.cookies[name] = value
        return response.status, text

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def post_form(self, path: str, fields: dict[str, str]) -> tuple[int, str]:
        self.request("GET", path)  # the CSRF cookie
        body = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": self.cookies.get("csrftoken", "")})
        return self.request("POST", path, body.encode(), "application/x-www-form-urlencoded")

    def post_multipart(self, path: str, fields: dict[str, str], files: dict[str, bytes]) -> tuple[int, str]:
        self.request("GET", path)
        boundary = uuid.uuid4().hex
        parts = []
        for name, value in {**fields, "csrfmiddlewaretoken": self.cookies.get("csrftoken", "")}.items():
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            )
        for name, data in files.items():
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n".encode()
                + data
                + b"\r\n"
            )
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return self.request("POST", path, body, f"multipart/form-data; boundary={boundary}")

    def log_in(self, password: str = PASSWORD) -> tuple[int, str]:
        return self.post_form("/login/", {"username": "admin", "password": password})


class Bystander:
    """Asks four times a second for the login page and the SMTP banner; remembers the longest waits."""

    def __init__(self, https_port: int, smtp_port: int):
        self.https_port, self.smtp_port = https_port, smtp_port
        self.longest = {"console": 0.0, "smtp": 0.0}
        self.failures: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(timeout=120)

    def _timed(self, kind: str, ask) -> None:
        started = time.monotonic()
        try:
            ask()
        except (OSError, AssertionError) as error:
            self.failures.append(f"{kind}: {error}")
        self.longest[kind] = max(self.longest[kind], time.monotonic() - started)

    def _console(self) -> None:
        status, _ = Console(self.https_port, BYSTANDER, timeout=60).request("GET", "/login/")
        assert status == 200, f"login page answered {status}"

    def _smtp(self) -> None:
        with socket.create_connection(
            ("127.0.0.1", self.smtp_port), timeout=60, source_address=(BYSTANDER, 0)
        ) as s:
            banner = s.recv(512)
            assert banner.startswith(b"220"), f"banner {banner[:60]!r}"
            s.sendall(b"QUIT\r\n")

    def _run(self) -> None:
        while not self.stopping.is_set():
            self._timed("console", self._console)
            self._timed("smtp", self._smtp)
            self.stopping.wait(0.25)


class Appliance:
    def __init__(self, data_dir: Path):
        self.https_port, self.smtp_port = free_port(), free_port()
        environment = {
            **os.environ,
            "APPLIANCE_DATA_DIR": str(data_dir),
            "APPLIANCE_HOSTNAME": "esa.example.com",
            "APPLIANCE_HTTPS_PORT": str(self.https_port),
            "APPLIANCE_SMTP_PORT": str(self.smtp_port),
            "APPLIANCE_ADMIN_PASSWORD": PASSWORD,
            "DJANGO_SETTINGS_MODULE": "appliance.settings",
        }
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runappliance"],
            cwd=PROJECT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._collect, daemon=True).start()
        deadline = time.monotonic() + 120
        while not (self._said("Appliance ready") and self._said("Gateway ready")):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("runappliance did not start:\n" + "\n".join(self.lines))
            time.sleep(0.2)

    def _collect(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip())

    def _said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def run_openssl(*arguments: str, folder: Path) -> None:
    subprocess.run(["openssl", *arguments], cwd=folder, check=True, capture_output=True, timeout=600)


def summary(status: int, text: str) -> str:
    """An answer in a few words: its status and the first error the page shows."""
    found = re.search(r'class="(?:errorlist|banner banner-error)[^"]*"[^>]*>\s*(?:<li>)?([^<]{1,160})', text)
    return f"{status}" + (f" {found[1].strip()!r}" if found else "")


def case_pkcs12_iterations(appliance: Appliance, folder: Path, seconds: float) -> str:
    run_openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=p12.example.com",
        "-keyout",
        "p12.key",
        "-out",
        "p12.pem",
        "-days",
        "30",
        folder=folder,
    )
    run_openssl(
        "pkcs12",
        "-export",
        "-iter",
        "11000000",
        "-maciter",
        "-inkey",
        "p12.key",
        "-in",
        "p12.pem",
        "-passout",
        "pass:probe",
        "-out",
        "slow.p12",
        folder=folder,
    )
    data = (folder / "slow.p12").read_bytes()
    answers: list[str] = []

    def upload():
        console = Console(appliance.https_port, timeout=seconds)
        console.log_in()
        started = time.monotonic()
        status, text = console.post_multipart(
            "/network/certificates/add/",
            {"option": "import", "cert_pass": "probe", "name": ""},
            {"cert_file": data},
        )
        answers.append(f"{summary(status, text)} in {time.monotonic() - started:.1f} s")

    uploads = [threading.Thread(target=upload) for _ in range(2)]
    for thread in uploads:
        thread.start()
    for thread in uploads:
        thread.join(seconds + 10)
    return "; ".join(answers) or "no answer"


def case_rsa_16384(appliance: Appliance, folder: Path, seconds: float) -> str:
    key = folder / "rsa16384.key"
    if not key.exists():
        run_openssl(
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:16384",
            "-out",
            key.name,
            folder=folder,
        )
    run_openssl(
        "req",
        "-x509",
        "-key",
        key.name,
        "-subj",
        "/CN=big.example.com",
        "-days",
        "30",
        "-out",
        "big.pem",
        folder=folder,
    )
    console = Console(appliance.https_port, timeout=seconds)
    console.log_in()
    started = time.monotonic()
    status, text = console.post_form(
        "/network/certificates/add/",
        {
            "option": "paste",
            "name": "big",
            "certificate": (folder / "big.pem").read_text(),
            "private_key": key.read_text(),
        },
    )
    return f"{summary(status, text)} in {time.monotonic() - started:.1f} s"


def case_smtp_idle(appliance: Appliance, folder: Path, seconds: float) -> str:
    held, banners = [], {}
    try:
        for _ in range(500):
            try:
                connection = socket.create_connection(("127.0.0.1", appliance.smtp_port), timeout=5)
            except OSError:
                banners["refused"] = banners.get("refused", 0) + 1
                continue
            held.append(connection)
            try:
                code = connection.recv(512)[:3].decode() or "closed"
            except OSError:
                code = "no banner"
            banners[code] = banners.get(code, 0) + 1
        time.sleep(min(seconds, 5))  # idle, while the bystander asks
    finally:
        for connection in held:
            connection.close()
    return "500 idle connections from 127.0.0.1: " + ", ".join(
        f"{n}× {code}" for code, n in sorted(banners.items())
    )


def case_login_flood(appliance: Appliance, folder: Path, seconds: float) -> str:
    attacker = Console(appliance.https_port, "127.0.0.1", timeout=seconds)
    refused = 0
    for _ in range(40):
        status, text = attacker.log_in("wrong-password")
        refused += status != 302
    user = Console(appliance.https_port, BYSTANDER, timeout=seconds)
    started = time.monotonic()
    status, text = user.log_in()
    verdict = "logged in" if status == 302 else f"refused ({summary(status, text)})"
    return f"40 wrong passwords from 127.0.0.1 ({refused} refused); admin from {BYSTANDER}: {verdict} in {time.monotonic() - started:.2f} s"


def case_big_paste(appliance: Appliance, folder: Path, seconds: float) -> str:
    console = Console(appliance.https_port, timeout=seconds)
    console.log_in()
    started = time.monotonic()
    status, text = console.post_form(
        "/admin/config/load/", {"source": "paste", "pasted": "<config>" + "x" * 50_000_000}
    )
    return f"{summary(status, text)} ({len(text):,} B back) in {time.monotonic() - started:.1f} s"


CASES = {
    "pkcs12-iterations": case_pkcs12_iterations,
    "rsa-16384": case_rsa_16384,
    "smtp-idle": case_smtp_idle,
    "login-flood": case_login_flood,
    "big-paste": case_big_paste,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", choices=list(CASES), help="run only these (repeatable)")
    parser.add_argument("--seconds", type=float, default=40, help="the longest a case may take")
    parser.add_argument("--keys", type=Path, help="a folder that keeps the slow RSA-16384 key between runs")
    options = parser.parse_args()
    if shutil.which("openssl") is None:
        raise SystemExit("openssl is missing (make test installs it)")
    with tempfile.TemporaryDirectory(prefix="hostile-") as temporary:
        folder = options.keys or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"{'case':<18} {'console s':>9} {'smtp s':>7}  what the attacker got")
        for name in options.case or list(CASES):
            appliance = Appliance(Path(temporary) / f"data-{name}")  # each case on a fresh appliance
            try:
                with Bystander(appliance.https_port, appliance.smtp_port) as bystander:
                    time.sleep(0.5)
                    outcome = CASES[name](appliance, folder, options.seconds)
                    time.sleep(0.5)
                longest = bystander.longest
                failures = f" (bystander: {bystander.failures[0]}…)" if bystander.failures else ""
                print(
                    f"{name:<18} {longest['console']:>9.2f} {longest['smtp']:>7.2f}  {outcome}{failures}",
                    flush=True,
                )
            finally:
                appliance.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
