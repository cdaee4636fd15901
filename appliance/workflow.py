"""The change workflow: submit, commit, abandon, rollback, load.

Views and console commands parse input and call these; each runs in one
transaction, writes its audit line in it, and tells the running services only
after the transaction commits.

One candidate is shared by everyone. The first submit takes the change lock;
while one user holds it, everyone else's submit is refused with the owner's
name, so no update is ever lost. Commit and abandon release it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from appliance import audit
from appliance.audit import Action
from appliance.config import checks, levels
from appliance.config.diff import SectionChange, diff
from appliance.config.sections import Config, registry
from appliance.config.xmlfile import Document, SecretMode, parse, render
from appliance.models import ChangeLock, ConfigVersion, PendingConfirmation, SystemSettings
from appliance.roles import Capability, can, require


class ChangeRefused(Exception):
    """A workflow step that cannot be done; the message says why, in the admin's words."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = problems or []


class ConfirmationNeeded(ChangeRefused):
    """A step that destroys something the administrator may still need; ``problems`` say what."""


@dataclass
class Outcome:
    """What a submitted change wants the administrator to read besides "submitted"."""

    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Preview:
    """A Read-Only Operator's submit: validated, shown, never stored."""

    changes: list[SectionChange]


# --- the running configuration ---------------------------------------------

# (number, config) of the version parsed last; replaced in one assignment, as threads share it.
_running_cache: dict[str, Any] = {"version": (None, None)}


def running_version() -> ConfigVersion | None:
    return ConfigVersion.objects.order_by("-number").first()


def running_number() -> int | None:
    return ConfigVersion.objects.aggregate(number=Max("number"))["number"]


def version_config(version: ConfigVersion) -> Config:
    return _parsed(version.xml)


def _parsed(xml: str) -> Config:
    return parse(xml.encode("latin-1"), SecretMode.SEALED).config


def running_config(number: int | None = None) -> Config:
    """The newest committed configuration, parsed once per process and version.

    ``number``: the newest version, when the caller already knows it (saves a query).
    """
    if number is None:
        number = running_number()
    if number is None:
        return {}
    cached_number, config = _running_cache["version"]
    if cached_number != number:
        try:
            xml = ConfigVersion.objects.values_list("xml", flat=True).get(number=number)
        except DATABASE_UNREACHABLE:
            xml = _kept_copy_of(number)  # a service started while the database is down
        config = _parsed(xml)
        _running_cache["version"] = (number, config)
    return config


def machine_config(number: int | None = None) -> Config:
    """The running configuration as this machine runs it: of the machine-level settings (IP
    interfaces), its own only."""
    return registry.for_machine(running_config(number), settings.MACHINE_NAME)


def pending_changes() -> list[SectionChange]:
    return diff(running_config(), registry.candidate())


def lock_state() -> ChangeLock:
    lock, _ = ChangeLock.objects.get_or_create(pk=1)
    return lock


def has_uncommitted_changes() -> bool:
    """Whether someone holds uncommitted changes (the lock row; no diff is computed)."""
    return ChangeLock.objects.filter(pk=1).exclude(owner_name="").exists()


def _locked() -> ChangeLock:
    # Inside transaction.atomic: SQLite's immediate transactions serialise
    # writers; select_for_update does the same on PostgreSQL.
    lock, _ = ChangeLock.objects.select_for_update().get_or_create(pk=1)
    return lock


def _owner_text(lock: ChangeLock) -> str:
    since = timezone.localtime(lock.since)
    return f"{lock.owner_name} has uncommitted changes since {since:%H:%M}"


def _release(lock: ChangeLock) -> None:
    lock.owner, lock.owner_name, lock.since = None, "", None
    lock.save()


def version_file():
    """Holds the running version number; services watch it instead of querying the database."""
    return settings.DATA_DIR / "run" / "version"


def announced_version() -> int | None:
    """The running version number as the last commit announced it to the services."""
    announced = announced_in_file()
    return running_number() if announced is None else announced


def announced_in_file() -> int | None:
    """The version announced to this machine's services, None before any was (no database read)."""
    try:
        return int(version_file().read_text())
    except (FileNotFoundError, ValueError):
        return None


# What a database that is down or gone raises (a machine of a cluster keeps running without it).
DATABASE_UNREACHABLE = (OperationalError, InterfaceError)
COMMIT_CHANNEL = "appliance_commit"  # PostgreSQL's LISTEN/NOTIFY channel of new running versions


def kept_copy(number: int) -> Path:
    """This machine's copy of version ``number``, kept when it was announced: a service that starts
    while the database cannot be reached starts from it."""
    return version_file().with_name(f"version-{number}.xml")


def _kept_copy_of(number: int) -> str:
    try:
        return kept_copy(number).read_text(encoding="latin-1")
    except FileNotFoundError:
        raise OperationalError(
            f"the database cannot be reached, and version {number} was never kept here"
        ) from None


def announce(number: int) -> None:
    """Tell this machine's services that version ``number`` runs now (after a commit here, or one
    another machine of the cluster made); keep a copy of it first."""
    copy = kept_copy(number)
    copy.parent.mkdir(parents=True, exist_ok=True)
    # Its secrets are sealed; still, for this machine's services only (mkstemp makes it 0600).
    xml = ConfigVersion.objects.values_list("xml", flat=True).get(number=number)
    _replace_atomically(copy, xml.encode("latin-1"))
    for older in copy.parent.glob("version-*.xml"):
        if older != copy:
            older.unlink(missing_ok=True)
    _replace_atomically(version_file(), f"{number}\n".encode())


def _replace_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` through a temporary file of its own: the commit's worker and the supervisor may
    announce the same version at the same moment."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --- the verbs ---------------------------------------------------------------


def submit(
    user,
    description: str,
    apply: Callable[[], Any],
    source: str = "",
    action=Action.SUBMIT,
    mode: levels.Mode = levels.CLUSTER_MODE,
):
    """Stage a change made by ``apply`` in the candidate, in the administrator's ``mode`` (which
    refuses changing settings its level does not define; the Cluster mode refuses none).

    A Read-Only Operator's submit runs ``apply`` and is rolled back: it returns
    a Preview and never stores anything nor takes the lock.
    """
    if not can(user, Capability.SUBMIT):
        require(user, Capability.PREVIEW)
        with transaction.atomic():
            before = registry.candidate()
            savepoint = transaction.savepoint()
            _at_the_modes_level(mode, apply)
            changes = diff(before, registry.candidate())
            transaction.savepoint_rollback(savepoint)
        return Preview(changes)
    with transaction.atomic():
        lock = _locked()
        if lock.owner_name and lock.owner_name != user.username:
            raise ChangeRefused(_owner_text(lock))
        result = _at_the_modes_level(mode, apply)
        if not pending_changes():
            _release(lock)  # back where the running configuration is: nothing to commit
        elif not lock.owner_name:
            lock.owner, lock.owner_name, lock.since = user, user.username, timezone.now()
            lock.save()
        audit.record(user.username, action, description, source)
    return result


def _at_the_modes_level(mode: levels.Mode, apply: Callable[[], Any]):
    """Run ``apply``, refusing a change to settings the mode's level does not define: a feature it
    inherits from another level (a machine's view of the cluster's Certificates), which changes at its
    own level or is overridden first, and, in a group's or machine's mode, the cluster's settings
    without levels (Address Lists). Each machine's own (IP interfaces) change in any mode."""
    cluster_only = [
        tag
        for tag, section in registry.sections.items()
        if mode.level and tag not in registry.levelled and not section.scope
    ]
    watched = [*mode.inherited, *cluster_only]
    before = {tag: registry.read(tag, mode.seen(tag)) for tag in watched}
    result = apply()
    changed = [tag for tag in watched if diff({tag: before[tag]}, {tag: registry.read(tag, mode.seen(tag))})]
    if not changed:
        return result
    [tag, *_] = changed
    here = levels.describe(mode.level)
    there = levels.describe(mode.inherited.get(tag, levels.CLUSTER), registry.level_store.cluster_name())
    if tag in mode.inherited:
        raise ChangeRefused(
            f"{registry.feature_of(tag).title}: {here} uses the settings defined at {there}; change the "
            f"mode to {there} to edit them, or override them for {here} first"
        )
    raise ChangeRefused(
        f"{registry.sections[tag].title}: these settings are defined at the Cluster level only; change the "
        f"mode to {there} to edit them"
    )


def validate(config: Config, document: Document | None = None) -> list[str]:
    """Everything that would make ``config`` invalid as the running configuration."""
    return checks.reference_problems(config, document) + checks.run_registered(config)


def commit(
    user, comment: str = "", source: str = "", confirm_within: int | None = None
) -> ConfigVersion | None:
    """Apply the whole candidate as a new running version; None if nothing changed.

    ``confirm_within`` minutes: unless ``confirm`` is called by then, the
    previous version comes back by itself (the supervisor sees to it). A plain
    commit confirms a commit still awaiting confirmation, as Junos does.
    """
    require(user, Capability.COMMIT)
    with transaction.atomic():
        lock = _locked()
        if lock.owner_name and lock.owner_name != user.username:
            raise ChangeRefused(f"{_owner_text(lock)}; only they can commit them")
        candidate = registry.candidate()
        previous = running_number()
        changes = diff(running_config(previous), candidate)
        if previous is not None and not changes:
            _release(lock)
            return None
        problems = validate(candidate)
        if problems:
            raise ChangeRefused("The changes cannot be committed", problems)
        if confirm_within is None:
            _confirm_pending(user, source)
        elif not 1 <= confirm_within <= 60:
            raise ChangeRefused("Roll back automatically after 1 to 60 minutes")
        elif previous is None:
            raise ChangeRefused("There is no earlier version to roll back to")
        summary = "; ".join(f"{c.title}: {len(c.objects)} change(s)" for c in changes) or "first version"
        version = _record_version(user.username, comment, candidate, previous, summary, source)
        _release(lock)
        if confirm_within is not None:
            # Commits stacked on an unconfirmed one roll back to the last confirmed version, as Junos.
            waiting = PendingConfirmation.objects.first()
            PendingConfirmation.objects.all().delete()
            PendingConfirmation.objects.create(
                number=version.number,
                previous_number=waiting.previous_number if waiting else previous,
                previous_xml=waiting.previous_xml
                if waiting
                else ConfigVersion.objects.get(number=previous).xml,
                deadline=timezone.now() + timedelta(minutes=confirm_within),
                user_name=user.username,
            )
    return version


def _record_version(user_name: str, comment: str, config: Config, previous, summary: str, source: str):
    """Write ``config`` as the next running version (inside the caller's transaction)."""
    system = SystemSettings.load()
    number = (previous or 0) + 1
    version = ConfigVersion.objects.create(
        number=number,
        user_name=user_name,
        comment=comment,
        xml=render(config, SecretMode.SEALED, hostname=system.hostname),
    )
    kept = ConfigVersion.objects.order_by("-number").values_list("pk", flat=True)[
        : max(system.rollback_versions_kept, 1)
    ]
    ConfigVersion.objects.exclude(pk__in=list(kept)).delete()
    detail = f"version {number}" + (f' "{comment}"' if comment else "") + f" ({summary})"
    audit.record(user_name, Action.COMMIT, detail, source)
    transaction.on_commit(lambda: announce(number))
    if connection.vendor == "postgresql":
        # The machines sharing the database wake at once (they poll as well); sent when this commits.
        with connection.cursor() as cursor:
            cursor.execute(f"NOTIFY {COMMIT_CHANNEL}")
    return version


def pending_confirmation() -> PendingConfirmation | None:
    return PendingConfirmation.objects.first()


def _confirm_pending(user, source: str) -> PendingConfirmation | None:
    pending = PendingConfirmation.objects.first()
    if pending is not None:
        pending.delete()
        audit.record(user.username, Action.CONFIRM, f"confirmed version {pending.number}", source)
    return pending


def confirm(user, source: str = "") -> PendingConfirmation | None:
    """Keep a commit that was to roll back automatically; None if none was waiting."""
    require(user, Capability.COMMIT)
    with transaction.atomic():
        return _confirm_pending(user, source)


def roll_back_unconfirmed() -> str:
    """If a commit's confirmation time is over, bring the previous version back; says what it did.

    Uncommitted changes are thrown away: reaching the console again comes first.
    """
    with transaction.atomic():
        pending = PendingConfirmation.objects.select_for_update().first()
        if pending is None or pending.deadline > timezone.now():
            return ""
        config = parse(pending.previous_xml.encode("latin-1"), SecretMode.SEALED).config
        write_config(config)
        _release(_locked())
        comment = f"automatic rollback: version {pending.number} was not confirmed in time"
        version = _record_version(
            pending.user_name,
            comment,
            config,
            running_number(),
            f"back to version {pending.previous_number}",
            "system",
        )
        pending.delete()
        audit.record(pending.user_name, Action.ROLLBACK, comment, "system")
    return f"version {pending.number} was not confirmed in time: version {version.number} restores version {pending.previous_number}"


def commit_warnings(version: ConfigVersion) -> list[str]:
    """Advice about a committed version that did not stop the commit (the demo certificate in use)."""
    return checks.warnings(version_config(version))


def write_config(config: Config) -> None:
    """Replace the candidate sections present in ``config``, each as a whole: a feature's section with
    its group and machine settings."""
    for section in registry.ordered():
        if section.tag not in config:
            continue
        registry.write(section.tag, config[section.tag])
        if section.tag in registry.levelled:
            registry.level_store.replace(section.tag, levels.overrides(config, section.tag))


def _confirm_discard(target: Config, what: str, confirmed: bool) -> None:
    if confirmed:
        return
    warnings = checks.discard_warnings(registry.candidate(), target)
    if warnings:
        raise ConfirmationNeeded(f"{what} needs your confirmation", warnings)


def abandon(user, source: str = "", others: bool = True, confirmed: bool = False) -> str:
    """Return the candidate to the running configuration.

    Returns whose changes were abandoned ("" if nothing was pending). With
    ``others=False`` another user's changes are refused even for an Administrator.
    Destroying what registered discard checks name (a key whose CSR left the
    appliance) needs ``confirmed``.
    """
    require(user, Capability.COMMIT)
    with transaction.atomic():
        lock = _locked()
        owner = lock.owner_name
        if not owner:
            return ""
        detail = "abandoned the uncommitted changes"
        if owner != user.username:
            if not others:
                raise ChangeRefused(f"{_owner_text(lock)}; use --force to abandon them (Administrators only)")
            if not can(user, Capability.ABANDON_OTHERS):
                raise ChangeRefused(f"{_owner_text(lock)}; only they or an Administrator can abandon them")
            detail = f"abandoned the uncommitted changes of {owner}"
        _confirm_discard(running_config(), "Abandoning the changes", confirmed)
        write_config(running_config())
        _release(lock)
        audit.record(user.username, Action.ABANDON, detail, source)
    return owner


def rollback_to(user, number: int, source: str = "", confirmed: bool = False):
    """Stage committed version ``number`` as the candidate (commit applies it)."""
    version = ConfigVersion.objects.filter(number=number).first()
    if version is None:
        kept = ", ".join(str(n) for n in ConfigVersion.objects.values_list("number", flat=True))
        raise ChangeRefused(f"Version {number} is not kept on this appliance (kept: {kept})")
    config = version_config(version)
    if can(user, Capability.SUBMIT):  # a preview destroys nothing: no question
        lock = lock_state()
        if lock.owner_name and lock.owner_name != user.username:
            raise ChangeRefused(_owner_text(lock))
        _confirm_discard(config, f"Rolling back to version {number}", confirmed)
    # A whole version: every level, whatever the administrator's mode (the Cluster mode's submit).
    return submit(
        user, f"staged version {number} for rollback", lambda: write_config(config), source, Action.ROLLBACK
    )


def load_document(user, document: Document, description: str, source: str = ""):
    """Stage a parsed configuration file: the sections it contains replace the candidate's."""
    # As write_config will: a section the document holds replaces the candidate's at every level.
    replaced = {levels.split(config_key)[0] for config_key in document.config}
    kept = {key: items for key, items in registry.candidate().items() if levels.split(key)[0] not in replaced}
    problems = checks.reference_problems({**kept, **document.config}, document)
    if problems:
        raise ChangeRefused("The configuration cannot be loaded", problems)
    # Sections as a whole: every level, whatever the administrator's mode (the Cluster mode's submit).
    return submit(user, description, lambda: write_config(document.config), source, Action.LOAD)
