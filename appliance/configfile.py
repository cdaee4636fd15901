"""System Administration > Configuration File, for the web page and the console commands alike."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from appliance import audit, workflow
from appliance.audit import Action
from appliance.config.sections import registry
from appliance.config.xmlfile import SecretMode, parse, render
from appliance.roles import Capability, require

EXPORT_CAPABILITY = {
    SecretMode.MASK: Capability.EXPORT_MASKED,
    SecretMode.ENCRYPT: Capability.EXPORT_SECRETS,
    SecretMode.PLAIN: Capability.EXPORT_PLAIN,
}


def configuration_dir() -> Path:
    return settings.DATA_DIR / "configuration"


def running_document(
    user, mode: SecretMode, passphrase: str | None = None, source: str = "", machine: str | None = None
) -> str:
    """The running configuration as a file; audited. With ``machine``: what that machine of the
    cluster runs, as the configuration of an appliance of its own."""
    require(user, EXPORT_CAPABILITY[mode])
    if mode is SecretMode.ENCRYPT and not passphrase:
        raise workflow.ChangeRefused("Encrypting passphrases needs a passphrase")
    running = workflow.running_config()
    if machine is not None:
        running = registry.on_its_own(running, machine)
    document = render(running, mode, passphrase, hostname=running["hostname"][0]["hostname"])
    number = workflow.running_number()
    of = f" as machine '{machine}' runs it" if machine else ""
    audit.record(user.username, Action.EXPORT, f"version {number}{of}, {mode} passphrases", source)
    return document


def write_private(path: Path, document: str, new: bool = False) -> None:
    """A configuration file only its owner may read (it may hold secrets, encrypted or plain). ``new``:
    never an existing file (FileExistsError)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_EXCL if new else os.O_TRUNC), 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode otherwise
    with os.fdopen(fd, "w", encoding="latin-1") as handle:
        handle.write(document)


def save_on_appliance(user, mode, passphrase=None, path: Path | None = None, source="") -> Path:
    """Write the running configuration to ``path`` or a new file in the appliance's configuration folder.

    A Read-Only Operator writes nothing on the appliance (it downloads, or ``showconfig``); a second save
    in the same second gets its own name (``-2``, ``-3``, …) instead of the first one's.
    """
    require(user, Capability.SAVE_ON_APPLIANCE)
    document = running_document(user, mode, passphrase, source)
    if path is not None:
        write_private(path, document)
        return path
    hostname = workflow.running_config()["hostname"][0]["hostname"]
    stem = f"{hostname}-{timezone.now():%Y%m%dT%H%M%S}"
    for number in itertools.count(1):
        path = configuration_dir() / (f"{stem}.xml" if number == 1 else f"{stem}-{number}.xml")
        try:
            write_private(path, document, new=True)
            return path
        except FileExistsError:
            continue


def saved_files() -> list[str]:
    """Names of the configuration files saved on the appliance, newest first."""
    folder = configuration_dir()
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.suffix == ".xml" and p.is_file()]
    return [p.name for p in sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)]


def load(user, data: bytes, passphrase: str | None, description: str, source: str = ""):
    """Parse a configuration file and stage the sections it holds (commit applies them)."""
    document = parse(data, SecretMode.PLAIN, passphrase)
    return workflow.load_document(user, document, description, source)
