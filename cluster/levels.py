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
from appliance.config.sections import Item, registry


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


def level_field(tag: str) -> models.CharField:
    """The ``level`` column of a model of section ``tag``: new rows take the level the mode sees."""
    return models.CharField(max_length=140, blank=True, default=partial(seen_level, tag), editable=False)


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


def cluster_name() -> str:
    """The cluster's name ("" on an appliance of its own), as the levels are described to the admin."""
    from cluster.models import Cluster

    cluster = Cluster.objects.first()
    return cluster.name if cluster else ""


def group_of(machine: str) -> str | None:
    """The candidate's group of ``machine``."""
    from cluster.models import Group

    return next((group.name for group in Group.objects.all() if machine in group.machines), None)


def mode_for(level: str) -> Mode:
    if not level:
        return Mode()
    from cluster.models import Override

    defined = set(Override.objects.values_list("section", "level"))
    kind, name = levels.kind_and_name(level)
    group_name = group_of(name) if kind == levels.MACHINE else None
    chain = [level, *([levels.group(group_name)] if group_name else []), levels.CLUSTER]
    inherited = {}
    for tag in registry.levelled:
        winner = next(at for at in chain if not at or (tag, at) in defined)
        if winner != level:
            inherited[tag] = winner
    return Mode(level, inherited)


class CandidateLevels:
    """The group and machine definitions of the candidate, for the registry (``LevelStore``)."""

    def defined(self) -> list[tuple[str, str]]:
        from cluster.models import Override

        return list(Override.objects.values_list("section", "level"))

    def rows_at(self, level: str):
        return rows_at(level)

    def replace(self, tag: str, definitions: dict[str, list[Item]]) -> None:
        """Make ``definitions`` (level → items) the group and machine definitions of section ``tag``."""
        from cluster.models import Override

        for level in Override.objects.filter(section=tag).values_list("level", flat=True):
            if level not in definitions:
                self.remove(tag, level)
        for level, items in definitions.items():
            self.define(tag, level, items)

    def define(self, tag: str, level: str, items: list[Item]) -> None:
        """Make ``items`` section ``tag``'s settings at ``level``."""
        from cluster.models import Override

        Override.objects.get_or_create(section=tag, level=level)
        with rows_at(level):
            registry.sections[tag].write(items)

    def remove(self, tag: str, level: str) -> None:
        from cluster.models import Override

        for model in _models.get(tag, []):
            model.every_level.filter(level=level).delete()
        Override.objects.filter(section=tag, level=level).delete()
