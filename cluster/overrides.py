"""Override Settings and Manage Settings: defining a feature for a group or a machine, and removing
that definition. Both are staged changes (``workflow.submit``), committed like any other."""

from __future__ import annotations

from appliance import workflow
from appliance.config import candidate_levels, levels
from appliance.config.sections import registry
from appliance.modes import checked_level


def feature(name: str) -> levels.Feature:
    found = registry.features.get(name)
    if found is None:
        raise workflow.ChangeRefused(
            f"There is no feature '{name}' with levels (features: {', '.join(registry.features)})"
        )
    return found


def override(user, feature_name: str, level: str, source: str = ""):
    """Define ``feature_name`` for ``level`` (a group or machine), starting from the settings it has there
    now (those of the level it inherits from)."""
    chosen = feature(feature_name)
    checked_level(level)
    if not level:
        raise workflow.ChangeRefused(
            f"{chosen.title}: the Cluster level always defines these settings; choose a group or a machine to override them for"
        )
    # A feature of several sections (LDAP) that a file gave the level only some of is completed.
    seen = {tag: candidate_levels.mode_for(level).seen(tag) for tag in chosen.sections}
    inherited = {tag: at for tag, at in seen.items() if at != level}
    if not inherited:
        raise workflow.ChangeRefused(
            f"{chosen.title}: {levels.describe(level)} already has settings of its own"
        )
    inherited_from = next(iter(inherited.values()))

    def copy():
        for tag, at in inherited.items():
            registry.level_store.define(tag, level, registry.read(tag, at))

    return workflow.submit(
        user,
        f"{chosen.title}: defined for {levels.describe(level)}, copied from "
        f"{levels.describe(inherited_from, registry.level_store.cluster_name())}",
        copy,
        source,
    )


def remove(user, feature_name: str, level: str, source: str = ""):
    """Remove ``level``'s own settings of ``feature_name``: it takes those of the level above again."""
    chosen = feature(feature_name)
    checked_level(level)
    if not level:
        raise workflow.ChangeRefused(
            f"{chosen.title}: the Cluster level's settings cannot be removed; every machine falls back to them"
        )
    own = [tag for tag in chosen.sections if candidate_levels.mode_for(level).seen(tag) == level]
    if not own:
        raise workflow.ChangeRefused(
            f"{chosen.title}: {levels.describe(level)} has no settings of its own to remove"
        )

    def delete():
        for tag in own:
            registry.level_store.remove(tag, level)

    return workflow.submit(
        user, f"{chosen.title}: settings for {levels.describe(level)} removed", delete, source
    )
