"""What the listener tests share: certificates made with the PKI factory, staged as an administrator would."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

import pytest

from appliance import workflow
from appliance.config.levels import CLUSTER, CLUSTER_MODE
from appliance.config.sections import registry
from certificates import pki
from certificates import store as certificate_store
from listeners import store
from tests.pki_factory import Credential, self_signed

HOSTNAME = "esa.example.com"  # the Management interface's hostname in the shipped configuration
DEMO_WARNING = (
    "You are currently using a demonstration certificate (Demo) which is not secure and is not "
    "recommended for general use (used by interface 'Management', listener 'IncomingMail')"
)


@pytest.fixture(name="credentials", scope="session")
def credentials_fixture(tmp_path_factory):
    """Self-signed server certificates with keys: for the interface's hostname, expired, another host."""
    folder = tmp_path_factory.mktemp("listener-pki")
    now = datetime.datetime.now(datetime.UTC)
    return SimpleNamespace(
        good=self_signed(folder, HOSTNAME, kind="ec"),
        expired=self_signed(
            folder,
            HOSTNAME,
            kind="ec",
            not_before=now - datetime.timedelta(days=400),
            not_after=now - datetime.timedelta(days=30),
        ),
        other=self_signed(folder, "other.example.org", kind="ec"),
    )


def stage_certificate(user, name: str, credential: Credential) -> None:
    """Paste a certificate and its key, as Add Certificate > Paste does (dates accepted)."""
    workflow.submit(
        user,
        f"pasted certificate {name}",
        lambda: certificate_store.paste(
            CLUSTER, name, credential.cert_pem.encode(), credential.key_pem, accept_dates=True
        ),
    )


def stage_pending(user, name: str, common_name: str = HOSTNAME) -> None:
    """Create Self-Signed Certificate: its signing request waits for the CA."""
    subject = pki.Subject(common_name=common_name)
    workflow.submit(
        user,
        f"created {name}",
        lambda: certificate_store.create_self_signed(CLUSTER, name, subject, 30, [], "ec256"),
    )


def stage_listener(
    user, name: str, port: int, certificate: str = "", interface: str = "Management", kind="public"
):
    return workflow.submit(
        user,
        f"created listener {name}",
        lambda: store.create(CLUSTER_MODE, name, kind, interface, port, certificate),
    )


def listeners() -> list[dict]:
    return registry.read("listeners")


BASIC_SETTINGS = ("listener_name", "listener_type", "interface_name", "port", "certificate_name")


def settings_only(items: list[dict]) -> list[dict]:
    """Listener items without their limits, mail flow policies, HAT and RAT (tests of the basics)."""
    return [{tag: item[tag] for tag in BASIC_SETTINGS} for item in items]


def listener_settings() -> list[dict]:
    return settings_only(listeners())


@pytest.fixture(name="unchanged")
def unchanged_fixture(admin):
    """Call it after a refusal: the candidate is as before and nobody took the change lock for it."""
    before = registry.candidate()
    owner = workflow.lock_state().owner_name

    def check():
        assert registry.candidate() == before
        assert workflow.lock_state().owner_name == owner

    return check
