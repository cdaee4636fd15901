"""A ``runappliance`` process of a test's own: its data directory, HTTPS port and output."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
PASSWORD = "Runtime-Pass-42"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Appliance:
    """A runappliance process in its own data directory, its output collected line by line."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        admin_password: str | None = PASSWORD,
        arguments: tuple[str, ...] = (),
        environment: dict[str, str] | None = None,
    ):
        self.data_dir, self.port = data_dir, port
        self.env = {
            **os.environ,
            **(environment or {}),
            "APPLIANCE_DATA_DIR": str(data_dir),
            "APPLIANCE_HOSTNAME": "esa.example.com",
            "APPLIANCE_HTTPS_PORT": str(port),
            "DJANGO_SETTINGS_MODULE": "appliance.settings",
        }
        self.env.pop("APPLIANCE_ADMIN_PASSWORD", None)
        if admin_password:
            self.env["APPLIANCE_ADMIN_PASSWORD"] = admin_password
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runappliance", *arguments],
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

    def wait_for(self, pattern: str, timeout: float = 60, after: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[after:]:
                if re.search(pattern, line):
                    return line
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no line matching {pattern!r}; output:\n" + "\n".join(self.lines))

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=PROJECT, env=self.env, capture_output=True, text=True
        )

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=40)
