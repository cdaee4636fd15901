"""The ``<cluster_groups>`` section: which machines form which group (``appliance.config.levels``)."""

from __future__ import annotations

from appliance.config import checks, levels
from appliance.config.sections import Config, Field, Section, registry
from appliance.validators import validate_object_name
from cluster.models import Group


def _read_groups():
    return [{"group_name": group.name, "machine": list(group.machines)} for group in Group.objects.all()]


def _write_groups(items):
    Group.objects.all().delete()
    Group.objects.bulk_create(Group(name=item["group_name"], machines=item["machine"]) for item in items)


def machine_in_one_group(config: Config) -> list[str]:
    """A machine takes the settings of one group at most."""
    found: dict[str, list[str]] = {}
    for item in config.get(levels.GROUPS, []):
        for machine in item["machine"]:
            found.setdefault(machine, []).append(item["group_name"])
    return [
        f"machine '{machine}' is in more than one group ({', '.join(groups)})"
        for machine, groups in found.items()
        if len(groups) > 1
    ]


def levels_exist(config: Config) -> list[str]:
    """Settings defined for a group or machine that the cluster does not have."""
    machines = set(registry.machines(config))
    groups = {item["group_name"] for item in config.get(levels.GROUPS, [])}
    problems = []
    for config_key in config:
        tag, level = levels.split(config_key)
        kind, name = levels.kind_and_name(level)
        if (kind == levels.MACHINE and name not in machines) or (kind == levels.GROUP and name not in groups):
            title = registry.sections[tag].title
            problems.append(f"{title} is defined for {levels.describe(level)}, which is not in the cluster")
    return problems


def register_sections():
    registry.register(
        Section(
            tag=levels.GROUPS,
            title="Cluster Groups",
            heading="Centralized Management",
            position=5,
            item_tag="group",
            key="group_name",
            fields=(
                Field("group_name", "Group", validate=validate_object_name),
                Field("machine", "Machines", repeated=True, validate=validate_object_name),
            ),
            read=_read_groups,
            write=_write_groups,
            optional=True,
        )
    )
    checks.register_for_cluster(machine_in_one_group)
    checks.register_for_cluster(levels_exist)
