"""Creating a cluster, joining and leaving it (``clusterconfig``), and what each machine reports.

The machines of a cluster share one PostgreSQL database and so one committed configuration. IP
interfaces are machine-level (``Interface.machine``): creating the cluster gives the creating
machine the interfaces it had, joining gives the new machine its Management interface. Both are
committed at once, with the cluster's records, in one transaction; they refuse to run over
someone's uncommitted changes, which the commit would otherwise carry along.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.db import connection, transaction
from django.utils import timezone

from appliance import bootstrap, configfile, workflow
from appliance.config import levels
from appliance.config.diff import diff
from appliance.config.sections import Config, registry
from appliance.config.xmlfile import SecretMode
from appliance.models import Interface
from appliance.validators import validate_object_name
from cluster.models import MAIN_GROUP, Cluster, Group, Machine

CHECK_IN_SECONDS = 5.0  # how often a running machine reports its version
SILENT_AFTER = timedelta(seconds=30)  # a machine not heard from for longer is shown as not reporting


def require_shared_database() -> None:
    if connection.vendor != "postgresql":
        raise workflow.ChangeRefused(
            "Centralized Management needs a database the machines share: set APPLIANCE_DATABASE_URL "
            "to the same PostgreSQL database (and APPLIANCE_SECRET_KEY_FILE to the same key file) on "
            "every machine"
        )


def current() -> Cluster | None:
    return Cluster.objects.first()


def _checked_name(what: str, name: str) -> str:
    try:
        validate_object_name(name)
    except ValueError as error:
        raise workflow.ChangeRefused(f"{what}: {error}") from None
    return name


def _refuse_over_uncommitted_changes(what: str) -> None:
    if workflow.has_uncommitted_changes():
        raise workflow.ChangeRefused(
            f"{what} commits the configuration: commit or abandon the uncommitted changes first"
        )


def create(user, name: str, machine: str, source: str = "") -> Cluster:
    """A cluster of this database's configuration, with ``machine`` (the one running it now) in it."""
    require_shared_database()
    _checked_name("Cluster name", name)
    _checked_name("Machine name", machine)
    with transaction.atomic():
        existing = Cluster.objects.select_for_update().first()
        if existing:
            raise workflow.ChangeRefused(f"This database already holds cluster '{existing}'")
        _refuse_over_uncommitted_changes("Creating a cluster")
        cluster = Cluster.objects.create(name=name)
        Machine.objects.create(name=machine)

        def own_interfaces():
            Interface.every_machine.filter(machine="").update(machine=machine)
            put_in_group(machine, MAIN_GROUP)

        workflow.submit(
            user,
            f"IP interfaces given to machine '{machine}', in group '{MAIN_GROUP}'",
            own_interfaces,
            source,
        )
        workflow.commit(user, f"Cluster '{name}' created; machine '{machine}' joined", source=source)
    return cluster


def join(
    user,
    machine: str,
    hostname: str,
    address: str,
    https_port: int,
    group: str = MAIN_GROUP,
    source: str = "",
    mode: levels.Mode = levels.CLUSTER_MODE,
) -> Machine:
    """``machine`` joins the cluster, with a Management interface of its own at ``address`` (in the
    administrator's ``mode``, which must be the Cluster's to change the groups)."""
    require_shared_database()
    _checked_name("Machine name", machine)
    _checked_name("Group name", group)
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().first()
        if cluster is None:
            raise workflow.ChangeRefused(
                "There is no cluster to join: create one first (clusterconfig create)"
            )
        if Machine.objects.filter(name=machine).exists():
            raise workflow.ChangeRefused(f"Machine '{machine}' is already in cluster '{cluster}'")
        _refuse_over_uncommitted_changes("Joining")
        joined = Machine.objects.create(name=machine)

        def management_interface_and_group():
            bootstrap.add_management_interface(machine, hostname, address, https_port)
            put_in_group(machine, group)

        workflow.submit(
            user,
            f"Management interface of machine '{machine}', in group '{group}'",
            management_interface_and_group,
            source,
            mode=mode,
        )
        workflow.commit(user, f"Machine '{machine}' joined cluster '{cluster}'", source=source)
    return joined


def what_joining_changes(
    own: Config, machine: str, hostname: str, address: str, https_port: int, group: str = MAIN_GROUP
):
    """The settings a machine whose configuration is ``own`` would run differently were it to join
    ``group`` (``config.diff``, before → after): the cluster's and the group's in place of its own, and
    a Management interface in place of its interfaces. Nothing is changed."""
    require_shared_database()
    if current() is None:
        raise workflow.ChangeRefused("There is no cluster to join: create one first (clusterconfig create)")
    running = workflow.running_config()
    interface = bootstrap.management_interface(machine, hostname, address, https_port)
    groups = [item for item in running.get(levels.GROUPS, []) if item["group_name"] != group]
    joining = next((item for item in running.get(levels.GROUPS, []) if item["group_name"] == group), None)
    members = [*(joining["machine"] if joining else []), machine]
    joined = {
        **running,
        "interfaces": [*running.get("interfaces", []), interface],
        levels.GROUPS: [*groups, {"group_name": group, "machine": members}],
    }
    return diff(registry.on_its_own(own, ""), registry.on_its_own(joined, machine))


def leave(
    user,
    machine: str,
    secrets: SecretMode,
    passphrase: str | None,
    path: Path | None,
    source: str = "",
    mode: levels.Mode = levels.CLUSTER_MODE,
) -> Path:
    """``machine`` leaves the cluster. What it ran (the cluster's settings and its own interfaces,
    certificates and keys included) is written to ``path`` as the configuration of an appliance of
    its own, so nothing is lost: run the machine on a database of its own and load the file. (In the
    administrator's ``mode``, which must be the Cluster's to change the groups.)"""
    require_shared_database()
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().first()
        leaving = Machine.objects.filter(name=machine).first()
        if cluster is None or leaving is None:
            where = f"cluster '{cluster}'" if cluster else "a cluster"
            raise workflow.ChangeRefused(f"Machine '{machine}' is not in {where}")
        if leaving.running and timezone.now() - leaving.checked_in <= SILENT_AFTER:
            raise workflow.ChangeRefused(
                f"Machine '{machine}' is running (it reported at "
                f"{timezone.localtime(leaving.checked_in):%H:%M:%S}): stop it first"
            )
        _refuse_over_uncommitted_changes("Leaving")
        document = configfile.running_document(user, secrets, passphrase, source, machine=machine)
        leaving.delete()
        if Machine.objects.exists():
            change, what = lambda: _remove_machine(machine), "removed"
        else:  # the last machine: the database's configuration is what it ran, an appliance's of its own
            cluster.delete()
            change = lambda: workflow.write_config(registry.on_its_own(registry.candidate(), machine))  # noqa: E731
            what = "no longer a machine's"
        workflow.submit(
            user, f"IP interfaces and settings of machine '{machine}' {what}", change, source, mode=mode
        )
        workflow.commit(user, f"Machine '{machine}' left cluster '{cluster}'", source=source)
        path = (
            path
            or configfile.configuration_dir() / f"{machine}-left-{cluster}-{timezone.now():%Y%m%dT%H%M%S}.xml"
        )
        configfile.write_private(path, document)  # a file that cannot be written undoes the leave
    return path


def put_in_group(machine: str, group: str) -> None:
    """Make ``machine`` (in the candidate) a member of ``group`` alone, creating the group if need be."""
    take_out_of_groups(machine)
    row, _ = Group.objects.get_or_create(name=group)
    row.machines = [*row.machines, machine]
    row.save()


def take_out_of_groups(machine: str) -> None:
    for row in Group.objects.all():
        if machine in row.machines:
            row.machines = [name for name in row.machines if name != machine]
            row.save()


def _remove_machine(machine: str) -> None:
    """The candidate without ``machine``: its interfaces, its group membership, its own settings."""
    Interface.every_machine.filter(machine=machine).delete()
    take_out_of_groups(machine)
    for tag, level in registry.level_store.defined():
        if level == levels.machine(machine):
            registry.level_store.remove(tag, level)


def require_joined(machine: str) -> None:
    """Before a process runs as ``machine``: it must have joined."""
    cluster = current()
    if cluster is None or not Machine.objects.filter(name=machine).exists():
        where = f"cluster '{cluster}'" if cluster else "a cluster"
        raise workflow.ChangeRefused(
            f"machine '{machine}' has not joined {where}: clusterconfig join --machine {machine}"
        )


def check_in(machine: str, version: int | None) -> None:
    """A running machine reports the version its services run."""
    Machine.objects.filter(name=machine).update(
        applied_version=version, checked_in=timezone.now(), running=True
    )


def stopped(machine: str) -> None:
    """A machine that stops cleanly says so: it may leave at once, and is shown as stopped."""
    Machine.objects.filter(name=machine).update(running=False)


@dataclass
class MachineState:
    machine: Machine
    running: int | None  # the cluster's running version
    group: str | None  # in the running configuration

    @property
    def status(self) -> str:
        checked_in: datetime | None = self.machine.checked_in
        if checked_in is None:
            return "never started"
        if not self.machine.running:
            return "stopped"
        if timezone.now() - checked_in > SILENT_AFTER:
            return "not reporting"
        if self.machine.applied_version != self.running:
            return "applying"
        return "current"


def machine_states() -> list[MachineState]:
    running = workflow.running_number()
    config = workflow.running_config(running)
    return [
        MachineState(machine, running, levels.group_of(config, machine.name))
        for machine in Machine.objects.all()
    ]
