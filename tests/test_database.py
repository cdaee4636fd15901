"""The database choice: SQLite in the data directory, or PostgreSQL (``APPLIANCE_DATABASE_URL``) shared by
several machines, which then seal secrets with the key of one file the operator copies to each."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from appliance.settings import database
from tests.postgres import PostgresServer

PROJECT = Path(__file__).resolve().parent.parent


def test_each_pass_of_the_suite_runs_on_the_database_it_names():
    # make test runs the database-sensitive tests twice: on SQLite, then with APPLIANCE_TEST_DATABASE=postgres.
    expected = "postgresql" if os.environ.get("APPLIANCE_TEST_DATABASE") == "postgres" else "sqlite"
    assert connection.vendor == expected


def test_without_a_url_the_database_is_sqlite_in_the_data_directory(tmp_path):
    chosen = database("", tmp_path)
    assert chosen["ENGINE"] == "django.db.backends.sqlite3"
    assert chosen["NAME"] == tmp_path / "appliance.sqlite3"


def test_a_postgres_url_names_server_account_database_and_options(tmp_path):
    chosen = database("postgresql://mail%40gw:p%2Fss@db.example.com:6432/esa?sslmode=verify-full", tmp_path)
    assert chosen["ENGINE"] == "django.db.backends.postgresql"
    assert (chosen["USER"], chosen["PASSWORD"], chosen["HOST"], chosen["PORT"], chosen["NAME"]) == (
        "mail@gw",
        "p/ss",
        "db.example.com",
        "6432",
        "esa",
    )
    assert chosen["OPTIONS"]["sslmode"] == "verify-full"
    socket_folder = database("postgres:///appliance?host=/run/postgresql", tmp_path)
    assert socket_folder["HOST"] == "/run/postgresql" and "host" not in socket_folder["OPTIONS"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://db/esa", "APPLIANCE_DATABASE_URL must be a postgres:// address, not 'mysql'"),
        (
            "appliance.sqlite3",
            "APPLIANCE_DATABASE_URL must be a postgres:// address, not 'appliance.sqlite3'",
        ),
        ("postgres://db:port/esa", "APPLIANCE_DATABASE_URL has a port that is not a number"),
    ],
)
def test_a_url_that_is_not_postgres_is_refused_in_words(tmp_path, url, message):
    with pytest.raises(ImproperlyConfigured) as refused:
        database(url, tmp_path)
    assert str(refused.value) == message


def manage(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        "APPLIANCE_DATA_DIR": str(data_dir),
        "DJANGO_SETTINGS_MODULE": "appliance.settings",
    }
    for name in ("APPLIANCE_DATABASE_URL", "APPLIANCE_SECRET_KEY_FILE", "APPLIANCE_SECRET_KEY"):
        environment.pop(name, None)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT,
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_machines_sharing_a_postgres_database_share_the_key_of_the_operators_file(tmp_path):
    server = PostgresServer()
    try:
        url = server.url()
        refused = manage(tmp_path / "a", "check", APPLIANCE_DATABASE_URL=url)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert refused.stderr.strip() == (
            "Error: APPLIANCE_DATABASE_URL needs APPLIANCE_SECRET_KEY_FILE: every machine sharing the database "
            "must seal secrets with the same key, a file the operator copies to each"
        )
        key_file = tmp_path / "cluster.key"
        missing = manage(
            tmp_path / "a", "check", APPLIANCE_DATABASE_URL=url, APPLIANCE_SECRET_KEY_FILE=str(key_file)
        )
        assert missing.returncode == 1
        assert (
            f"APPLIANCE_SECRET_KEY_FILE {key_file} cannot be read (No such file or directory)"
            in missing.stderr
        )
        assert not key_file.exists(), "the key file must come from the operator, not be made by one machine"

        key_file.write_text("a long random secret the operator made once\n")
        shared = {"APPLIANCE_DATABASE_URL": url, "APPLIANCE_SECRET_KEY_FILE": str(key_file)}
        assert manage(tmp_path / "a", "migrate", "-v0", **shared).returncode == 0
        sealed = manage(
            tmp_path / "a",
            "shell",
            "-v",
            "0",
            "-c",
            "from appliance import vault; print(vault.seal('the key of Demo'))",
            **shared,
        )
        assert sealed.returncode == 0, sealed.stderr
        token = sealed.stdout.strip()
        opened = manage(
            tmp_path / "b",
            "shell",
            "-v",
            "0",
            "-c",
            f"from appliance import vault; print(vault.unseal({token!r}))",
            **shared,
        )
        assert opened.returncode == 0, opened.stderr
        assert opened.stdout.strip() == "the key of Demo"
        assert (
            not (tmp_path / "a" / "appliance.key").exists()
            and not (tmp_path / "b" / "appliance.key").exists()
        )
        assert not (tmp_path / "a" / "appliance.sqlite3").exists()
    finally:
        server.remove()


def test_an_empty_data_directory_variable_is_refused_and_nothing_is_made(tmp_path):
    # Set but empty would make the current directory the data directory (and chmod it 0700).
    before = (tmp_path.stat().st_mode, sorted(tmp_path.iterdir()))
    result = subprocess.run(
        [sys.executable, str(PROJECT / "manage.py"), "check"],
        cwd=tmp_path,
        env={**os.environ, "APPLIANCE_DATA_DIR": "", "DJANGO_SETTINGS_MODULE": "appliance.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"Error: APPLIANCE_DATA_DIR is set but empty: name a folder, or unset it for {PROJECT / 'var'}"
    )
    assert (tmp_path.stat().st_mode, sorted(tmp_path.iterdir())) == before
