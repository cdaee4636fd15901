"""Shared fixtures: a private data directory, users of every role, the shipped configuration."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from django.test import Client

from appliance.models import Role, User

PASSWORD = "Correct-Horse-42"


def pytest_configure(config):
    from django.conf import settings

    # Keys, saved configurations and the version file of the tests never touch ./var.
    settings.DATA_DIR = Path(tempfile.mkdtemp(prefix="appliance-test-"))
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    config.add_cleanup(lambda: shutil.rmtree(settings.DATA_DIR, ignore_errors=True))


@pytest.fixture
def appliance(db, monkeypatch):
    """A freshly set-up appliance: version 1 with the Demo certificate and the Management interface."""
    from appliance import bootstrap, workflow

    # Each test's database starts empty, so version numbers repeat across tests
    # (never within one appliance): forget the running configuration parsed before.
    monkeypatch.setitem(workflow._running_cache, "version", (None, None))
    monkeypatch.setenv("APPLIANCE_HOSTNAME", "esa.example.com")
    monkeypatch.setenv("APPLIANCE_ADMIN_PASSWORD", PASSWORD)
    monkeypatch.setenv("APPLIANCE_LISTEN_ADDRESS", "127.0.0.1")
    monkeypatch.setenv("APPLIANCE_HTTPS_PORT", "8443")
    bootstrap.first_start()
    return workflow


def make_user(username: str, role: str) -> User:
    user = User(username=username, role=role)
    user.set_password(PASSWORD)
    user.save()
    return user


@pytest.fixture
def admin(appliance):
    return User.objects.get(username="admin")


@pytest.fixture
def operator(appliance):
    return make_user("olivia", Role.OPERATOR)


@pytest.fixture
def second_admin(appliance):
    return make_user("bob", Role.ADMINISTRATOR)


@pytest.fixture
def read_only(appliance):
    return make_user("rita", Role.READ_ONLY)


@pytest.fixture
def guest(appliance):
    return make_user("gus", Role.GUEST)


class HTTPSClient(Client):
    """Django's test client, every request as over HTTPS (the console redirects plain HTTP)."""

    def generic(self, *args, secure=True, **kwargs):
        return super().generic(*args, secure=True, **kwargs)


@pytest.fixture
def https_client():
    return HTTPSClient()


@pytest.fixture
def login(https_client):
    def log_in(user):
        https_client.force_login(user)
        return https_client

    return log_in
