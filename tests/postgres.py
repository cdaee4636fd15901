"""A PostgreSQL server of the tests' own: Debian's binaries, a cluster in a temporary folder, loopback
only, trust authentication. As root, it runs as the ``postgres`` user (PostgreSQL refuses root).

Also a pytest plugin (``-p tests.postgres`` in pyproject.toml): with ``APPLIANCE_TEST_DATABASE=postgres``
(make test's second pass) it starts such a server before Django reads its settings, and points the
appliance at it as an operator would, through ``APPLIANCE_DATABASE_URL`` and ``APPLIANCE_SECRET_KEY_FILE``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from tests.appliance_process import free_port


def binaries() -> Path | None:
    """The newest installed PostgreSQL's ``bin`` folder (the ``postgresql`` package)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


class PostgresServer:
    def __init__(self, database: str = "appliance"):
        self.bin = binaries()
        if self.bin is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.folder = Path(tempfile.mkdtemp(prefix="appliance-postgres-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.database = database
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            account = pwd.getpwnam("postgres")
            os.chown(self.folder, account.pw_uid, account.pw_gid)
        self._run("initdb", "--auth=trust", "--username=postgres", "--encoding=UTF8", "-D", str(self.data))
        self.start()
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{database}"')

    def _run(self, program: str, *arguments: str) -> None:
        command = [str(self.bin / program), *arguments]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd=self.folder)

    def url(self, database: str | None = None) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database or self.database}"

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "start"
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def wait_until_up(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=1).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # stopped already
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    if os.environ.get("APPLIANCE_TEST_DATABASE") != "postgres":
        return
    server = PostgresServer()
    early_config.add_cleanup(server.remove)
    key_file = server.folder / "secret.key"
    key_file.write_text("the tests' cluster key\n")
    os.environ["APPLIANCE_DATABASE_URL"] = server.url()
    os.environ["APPLIANCE_SECRET_KEY_FILE"] = str(key_file)
