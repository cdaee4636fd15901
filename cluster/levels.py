"""The cluster's levels as the core sees them (``registry.level_store``): which levels exist, and the
group and machine definitions of the candidate (``Override`` rows beside the features' own rows)."""

from __future__ import annotations

from appliance.config import candidate_levels, levels
from appliance.config.sections import Item, registry
from cluster.models import Cluster, Group, Machine, Override


class CandidateLevels:
    def known_levels(self) -> list[str]:
        """The levels an administrator may choose: the cluster, its groups (candidate), its machines."""
        if not Cluster.objects.exists():
            return [levels.CLUSTER]
        return [
            levels.CLUSTER,
            *(levels.group(name) for name in Group.objects.values_list("name", flat=True)),
            *(levels.machine(name) for name in Machine.objects.values_list("name", flat=True)),
        ]

    def cluster_name(self) -> str:
        """The cluster's name ("" on an appliance of its own), as the levels are described to the admin."""
        cluster = Cluster.objects.first()
        return cluster.name if cluster else ""

    def defined(self) -> list[tuple[str, str]]:
        return list(Override.objects.values_list("section", "level"))

    def replace(self, tag: str, definitions: dict[str, list[Item]]) -> None:
        """Make ``definitions`` (level → items) the group and machine definitions of section ``tag``."""
        for level in Override.objects.filter(section=tag).values_list("level", flat=True):
            if level not in definitions:
                self.remove(tag, level)
        for level, items in definitions.items():
            self.define(tag, level, items)

    def define(self, tag: str, level: str, items: list[Item]) -> None:
        """Make ``items`` section ``tag``'s settings at ``level``."""
        Override.objects.get_or_create(section=tag, level=level)
        registry.write(tag, items, level)

    def remove(self, tag: str, level: str) -> None:
        candidate_levels.delete_rows(tag, level)
        Override.objects.filter(section=tag, level=level).delete()
