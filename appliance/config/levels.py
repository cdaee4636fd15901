"""Centralized Management's levels: where a feature's settings are defined, and which level wins.

A feature (Certificates, Listeners, SSL Configuration, …) is defined at the Cluster level, and may
be defined again (overridden) for a group of machines or for one machine. A machine runs the most
specific definition: its own, else its group's, else the cluster's. A feature moves between levels
as a whole, as on the ESA: the machine-level Certificates replace the cluster's, they are not merged.

Levels are strings: "" (the cluster, and an appliance of its own), "group:NAME", "machine:NAME".
In a configuration (``Config``) the cluster's settings of a section stay under its tag; a group's or
a machine's under ``"TAG@LEVEL"`` (``levels.key``). Which machines form which group is itself a
section (``GROUPS``), so moving a machine to another group is a change committed like any other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CLUSTER = ""
GROUP, MACHINE = "group", "machine"
GROUPS = "cluster_groups"  # the section naming each group's machines
# What a page of settings without levels edits (``navigation.register(feature=…)``): the cluster's
# settings alone (Address Lists), or each machine's own (IP Interfaces).
CLUSTER_ONLY, EACH_MACHINE = "cluster-only", "each-machine"


@dataclass(frozen=True)
class Feature:
    """What the mode selector of a page moves between levels: one or more sections, as a whole."""

    name: str  # as the console commands name it: "ssl_config"
    title: str  # as the pages do: "SSL Configuration"
    sections: tuple[str, ...]


@dataclass(frozen=True)
class Mode:
    """The administrator's "Mode — Cluster / Group / Machine": the level a page or a console command
    changes, and, of each feature that level does not define, the level whose settings it sees (the
    level it inherits from, as the ESA shows "Settings are defined at: Cluster")."""

    level: str = CLUSTER
    # Section tag → the level whose settings are seen, for the sections ``level`` does not define.
    inherited: dict[str, str] = field(default_factory=dict)

    def seen(self, tag: str) -> str:
        """The level whose settings of section ``tag`` the mode reads and writes."""
        return self.inherited.get(tag, self.level)


CLUSTER_MODE = Mode()  # an appliance of its own has no other


def group(name: str) -> str:
    return f"{GROUP}:{name}"


def machine(name: str) -> str:
    return f"{MACHINE}:{name}"


def kind_and_name(level: str) -> tuple[str, str]:
    """("", "") for the cluster, ("group", "G") or ("machine", "M")."""
    kind, _, name = level.partition(":")
    return (kind, name) if name else ("", "")


def describe(level: str, cluster_name: str = "") -> str:
    """A level as the ESA's mode selector writes it: "Cluster: Mail", "Group: Main_Group", "Machine: esa2"."""
    kind, name = kind_and_name(level)
    if not kind:
        return f"Cluster: {cluster_name}" if cluster_name else "Cluster"
    return f"{kind.capitalize()}: {name}"


def parse(text: str) -> str:
    """A level as an administrator types it ("cluster", "group:G", "machine:M"); ValueError if none."""
    text = text.strip()
    if text.lower() == "cluster":
        return CLUSTER
    kind, _, name = text.partition(":")
    if kind.lower() not in (GROUP, MACHINE) or not name.strip():
        raise ValueError(f"{text!r} is not a mode: say cluster, group:NAME or machine:NAME")
    return f"{kind.lower()}:{name.strip()}"


def key(tag: str, level: str) -> str:
    """Where a level's settings of section ``tag`` stand in a ``Config``."""
    return f"{tag}@{level}" if level else tag


def split(config_key: str) -> tuple[str, str]:
    """(section tag, level) of a ``Config`` key."""
    tag, _, level = config_key.partition("@")
    return tag, level


def overrides(config: dict, tag: str) -> dict[str, list]:
    """Level → items of every group and machine definition of section ``tag`` in ``config``."""
    found = {}
    for config_key, items in config.items():
        section, level = split(config_key)
        if level and section == tag:
            found[level] = items
    return found


def group_of(config: dict, machine_name: str) -> str | None:
    """The group ``machine_name`` is in, by the configuration's ``GROUPS`` section; None if none."""
    for item in config.get(GROUPS, []):
        if machine_name in item["machine"]:
            return item["group_name"]
    return None


def chain(config: dict, level: str) -> list[str]:
    """``level`` and the levels it inherits from, the most specific first: a machine's, its group's (by
    ``config``'s ``GROUPS``), the cluster's."""
    kind, name = kind_and_name(level)
    if kind == MACHINE:
        group_name = group_of(config, name)
        return [level, *([group(group_name)] if group_name else []), CLUSTER]
    return [level, CLUSTER] if level else [CLUSTER]


def precedence(config: dict, machine_name: str) -> list[str]:
    """The levels that apply to ``machine_name`` ("" an appliance of its own), the most specific first."""
    return chain(config, machine(machine_name) if machine_name else CLUSTER)


def first_defined(levels_in_order: list[str], defined) -> str:
    """The first of ``levels_in_order`` that defines a section (its levels: ``defined``); the cluster's
    always does."""
    return next(level for level in levels_in_order if not level or level in defined)


def winning(config: dict, tag: str, machine_name: str) -> str:
    """The level whose settings of section ``tag`` ``machine_name`` runs."""
    return first_defined(precedence(config, machine_name), overrides(config, tag))
