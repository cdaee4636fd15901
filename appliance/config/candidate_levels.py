"""The levels in the candidate: each feature's rows carry their level, and the mode picks the rows.

A model of a feature has a ``level`` column (``level_field``) and two managers: ``every_level``, all
rows, and ``objects`` (``AtLevel``), the rows of the level the current mode sees for the feature. The
mode is the administrator's "Mode — Cluster / Group / Machine" (the page's session, a console
command's ``--mode``); the code that reads and writes rows is the same at every level.

In a mode whose level does not define a feature, ``objects`` shows the definition the level inherits
(the group's, the cluster's), as the ESA shows "Settings are defined at: Cluster". Changing it there
is refused (``workflow.submit``): the administrator overrides the settings for the level first, or
changes the mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial

from django.db import models

from appliance.config import levels
from appliance.config.sections import registry


@dataclass(frozen=True)
class Mode:
    level: str = levels.CLUSTER  # the level edited
    # Section tag → the level whose rows are seen, for the sections ``level`` does not define.
    inherited: dict[str, str] = field(default_factory=dict)

    def seen(self, tag: str) -> str:
        return self.inherited.get(tag, self.level)


CLUSTER_MODE = Mode()
_mode: ContextVar[Mode] = ContextVar("mode", default=CLUSTER_MODE)  # noqa: B039 (frozen, never changed)
_models: dict[str, list[type[models.Model]]] = {}  # section tag → its models with a level column


def current() -> Mode:
    return _mode.get()


def seen_level(tag: str) -> str:
    """The level whose rows of section ``tag`` the current mode reads and writes."""
    return _mode.get().seen(tag)


class LevelField(models.CharField):
    """A ``level`` column. Migrations see it without its default: the rows a migration meets are the
    cluster's, and only a new row takes the level the mode sees."""

    def deconstruct(self):
        name, _path, args, kwargs = super().deconstruct()
        kwargs.pop("default", None)
        return name, "django.db.models.CharField", args, kwargs


def level_field(tag: str) -> models.CharField:
    """The ``level`` column of a model of section ``tag``: new rows take the level the mode sees."""
    return LevelField(max_length=140, blank=True, default=partial(seen_level, tag), editable=False)


class AtLevel(models.Manager):
    """The rows of the level the current mode sees for section ``tag``."""

    def __init__(self, tag: str):
        super().__init__()
        self.tag = tag

    def contribute_to_class(self, cls, name):
        super().contribute_to_class(cls, name)
        if not cls._meta.abstract and cls not in _models.setdefault(self.tag, []):
            _models[self.tag].append(cls)

    def get_queryset(self):
        return super().get_queryset().filter(level=seen_level(self.tag))


@contextmanager
def _using(mode: Mode) -> Iterator[Mode]:
    token = _mode.set(mode)
    try:
        yield mode
    finally:
        _mode.reset(token)


def rows_at(level: str):
    """Within it, every feature reads and writes its rows of ``level`` (defined there or not)."""
    return _using(Mode(level))


def editing(level: str):
    """Within it, the pages and commands work in the mode of ``level``."""
    return _using(mode_for(level))


def groups() -> dict:
    """The candidate's groups, as a configuration's ``GROUPS`` section (for ``levels.chain``)."""
    return {levels.GROUPS: registry.sections[levels.GROUPS].read()}


def mode_for(level: str) -> Mode:
    if not level:
        return Mode()
    defined: dict[str, set[str]] = {}
    for tag, at in registry.level_store.defined():
        defined.setdefault(tag, set()).add(at)
    chain = levels.chain(groups(), level)
    inherited = {}
    for tag in registry.levelled:
        winner = levels.first_defined(chain, defined.get(tag, ()))
        if winner != level:
            inherited[tag] = winner
    return Mode(level, inherited)


def seen_candidate() -> dict:
    """The candidate as the current mode sees it: of each feature, the settings of the level the mode
    sees (what the pages show); for a test run from a page (Test Server) with what that level runs."""
    config = registry.candidate()
    mode = current()
    seen = {config_key: items for config_key, items in config.items() if not levels.split(config_key)[1]}
    for tag in registry.levelled:
        seen[tag] = config.get(levels.key(tag, mode.seen(tag)), seen[tag])
    return seen


def delete_rows(tag: str, level: str) -> None:
    """Delete the rows of section ``tag`` at ``level``."""
    for model in _models.get(tag, []):
        model.every_level.filter(level=level).delete()
