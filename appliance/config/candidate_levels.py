"""The levels in the candidate: each feature's rows carry their level, and every query names it.

A model of a feature has a ``level`` column (``level_field``) and two managers: ``every_level``, all
rows, and ``objects`` (``AtLevel``), whose queries say the level they read: ``objects.at(level)``,
whose rows created are of that level too. Which level a page or a console command reads is its
mode's (``levels.Mode``: the page's session, a command's ``--mode``): ``mode.seen(tag)``, the level
whose settings of section ``tag`` the mode sees, so the code that reads and writes rows is the same
at every level.

In a mode whose level does not define a feature, the mode sees the definition the level inherits
(the group's, the cluster's), as the ESA shows "Settings are defined at: Cluster". Changing it there
is refused (``workflow.submit``): the administrator overrides the settings for the level first, or
changes the mode.
"""

from __future__ import annotations

from django.db import models

from appliance.config import levels
from appliance.config.sections import registry
from appliance.scoped import ScopedManager, ScopedQuerySet

_models: dict[str, list[type[models.Model]]] = {}  # section tag → its models with a level column


def level_field() -> models.CharField:
    """The ``level`` column of a feature's model."""
    return models.CharField(max_length=140, blank=True, editable=False)


class AtLevel(ScopedManager):
    """The rows of section ``tag`` at one level: ``at(level)``."""

    column, method = "level", "at"

    def __init__(self, tag: str):
        super().__init__()
        self.tag = tag

    def contribute_to_class(self, cls, name):
        super().contribute_to_class(cls, name)
        if not cls._meta.abstract and cls not in _models.setdefault(self.tag, []):
            _models[self.tag].append(cls)

    def at(self, level: str) -> ScopedQuerySet:
        return self.scoped(level)


def delete_rows(tag: str, level: str) -> None:
    """Delete the rows of section ``tag`` at ``level``."""
    for model in _models.get(tag, []):
        model.every_level.filter(level=level).delete()


def groups() -> dict:
    """The candidate's groups, as a configuration's ``GROUPS`` section (for ``levels.chain``)."""
    return {levels.GROUPS: registry.read(levels.GROUPS)}


def mode_for(level: str) -> levels.Mode:
    """The mode of ``level``: of each feature it does not define in the candidate, the level it
    inherits from."""
    if not level:
        return levels.CLUSTER_MODE
    defined: dict[str, set[str]] = {}
    for tag, at in registry.level_store.defined():
        defined.setdefault(tag, set()).add(at)
    chain = levels.chain(groups(), level)
    inherited = {}
    for tag in registry.levelled:
        winner = levels.first_defined(chain, defined.get(tag, ()))
        if winner != level:
            inherited[tag] = winner
    return levels.Mode(level, inherited)


def seen_candidate(mode: levels.Mode) -> dict:
    """The candidate as ``mode`` sees it: of each feature, the settings of the level the mode sees
    (what the pages show); for a test run from a page (Test Server) with what that level runs."""
    config = registry.candidate()
    seen = {config_key: items for config_key, items in config.items() if not levels.split(config_key)[1]}
    for tag in registry.levelled:
        seen[tag] = config.get(levels.key(tag, mode.seen(tag)), seen[tag])
    return seen
