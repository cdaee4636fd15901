"""clusterconfig: Centralized Management from the console, as the ESA's command of that name."""

from __future__ import annotations

from pathlib import Path

from django.utils import timezone

from appliance import bootstrap, workflow
from appliance.config import candidate_levels, levels
from appliance.config.sections import registry
from appliance.config.xmlfile import SecretMode, parse
from appliance.management.base import Refused, SubcommandCommand, read_passphrase_file
from appliance.management.commands.saveconfig import add_passphrase_arguments, passphrase_options
from appliance.roles import Capability, require
from appliance.validators import validate_hostname, validate_ip_address, validate_object_name
from cluster import membership, overrides
from cluster.models import MAIN_GROUP, Group, Machine, Override


class Command(SubcommandCommand):
    help = (
        "Create a cluster of the machines that share this PostgreSQL database, join a machine to it or "
        "take one out, list its machines and groups; define a feature's settings for a group or a "
        "machine (override, removeoverride) and move a machine to another group (setgroup), staged. "
        "Creating, joining and leaving commit at once."
    )

    def add_arguments(self, parser):
        action = self.subcommands(parser)
        create = action("create", "make a cluster of this configuration, with the machine running it")
        create.add_argument("name", help="the cluster's name")
        create.add_argument("--machine", required=True, help="this machine's name in the cluster")
        join = action("join", "add a machine, with a Management interface of its own")
        join.add_argument("--machine", required=True, help="the machine's name in the cluster")
        join.add_argument("--group", default=MAIN_GROUP)
        join.add_argument(
            "--address", help="its Management interface's IP address (APPLIANCE_LISTEN_ADDRESS)"
        )
        join.add_argument("--hostname", help="its host name (APPLIANCE_HOSTNAME)")
        join.add_argument("--https-port", type=int, help="its console's HTTPS port (APPLIANCE_HTTPS_PORT)")
        join.add_argument(
            "--preview",
            metavar="FILE",
            help="join nothing: list what the cluster would change on the machine whose saved configuration FILE is",
        )
        join.add_argument("--passphrase-file", help="for a FILE saved with encrypted passphrases")
        leave = action("leave", "take a stopped machine out, its configuration saved to a file first")
        leave.add_argument("--machine", required=True)
        leave.add_argument("--file", help="where to save it (default: the configuration folder)")
        add_passphrase_arguments(leave)
        action(
            "list",
            "the cluster's machines (group, version applied, last report), its groups, and the "
            "features defined below the Cluster level",
        )
        features = ", ".join(registry.features)
        override = action(
            "override",
            "define FEATURE for the level of --mode (group:NAME or machine:NAME), starting from the "
            "settings it inherits there; staged",
        )
        override.add_argument("feature", metavar="FEATURE", help=f"one of: {features}")
        remove = action(
            "removeoverride",
            "remove the settings of FEATURE defined for the level of --mode: it inherits again; staged",
        )
        remove.add_argument("feature", metavar="FEATURE", help=f"one of: {features}")
        setgroup = action("setgroup", "move MACHINE to GROUP (made if new); staged")
        setgroup.add_argument("machine", metavar="MACHINE")
        setgroup.add_argument("group", metavar="GROUP")

    def do_create(self, user, name, machine, **options):
        cluster = membership.create(user, name, machine, source="CLI")
        self.stdout.write(
            f"Cluster '{cluster}' created; machine '{machine}' joined. Start it with runappliance --machine {machine}"
        )

    def do_join(
        self, user, machine, group, address, hostname, https_port, preview, passphrase_file, **options
    ):
        try:
            default_hostname, default_address, default_port = bootstrap.environment()
        except bootstrap.BootstrapError as error:
            raise Refused(str(error)) from None
        address, hostname = address or default_address, hostname or default_hostname
        try:
            validate_ip_address(address)
            validate_hostname(hostname)
        except ValueError as error:
            raise Refused(str(error)) from None
        port = https_port or default_port
        if not 1 <= port <= 65535:
            raise Refused(f"--https-port must be between 1 and 65535, not {port}")
        if preview:
            require(user, Capability.VIEW_CONFIG)
            try:
                data = Path(preview).read_bytes()
            except FileNotFoundError:
                raise Refused(f'the file "{preview}" does not exist') from None
            own = parse(data, SecretMode.PLAIN, read_passphrase_file(passphrase_file))
            changes = membership.what_joining_changes(own.config, machine, hostname, address, port, group)
            self.stdout.write(
                f"Joining would change on {machine}:"
                if changes
                else f"Joining would change nothing on {machine}."
            )
            self.write_changes(changes)
            self.stdout.write("Nothing was changed: join without --preview to join.")
            return
        membership.join(user, machine, hostname, address, port, group, source="CLI", mode=self.mode)
        self.stdout.write(
            f"Machine '{machine}' joined (Management interface {address}, HTTPS port {port}). "
            f"Start it with runappliance --machine {machine}"
        )

    def do_leave(self, user, machine, file, passphrases, passphrase_file, **options):
        secrets, passphrase = passphrase_options(passphrases, passphrase_file)
        path = membership.leave(
            user, machine, secrets, passphrase, Path(file).resolve() if file else None, "CLI", mode=self.mode
        )
        if secrets is SecretMode.PLAIN:
            self.warn("the file holds private keys in plain text")
        self.stdout.write(
            f"Machine '{machine}' left the cluster. What it ran is in {path}: run it on a database of its "
            f"own (without APPLIANCE_DATABASE_URL), then loadconfig that file and commit"
        )

    def do_override(self, user, feature, **options):
        chosen = overrides.feature(feature)
        copied_from = self.mode.seen(chosen.sections[0])
        result = overrides.override(user, feature, self.mode.level, source="CLI")
        here = self._level_title(self.mode.level)
        self.report(
            result,
            f"{chosen.title}: settings for {here} staged, copied from {self._level_title(copied_from)}; "
            f"change them with --mode {self.mode.level or 'cluster'}. Use commit to apply it.",
        )

    def do_removeoverride(self, user, feature, **options):
        level = self.mode.level
        chosen = overrides.feature(feature)
        result = overrides.remove(user, feature, level, source="CLI")
        # What the level inherits once its own settings are gone (the candidate, as staged).
        inherits = candidate_levels.mode_for(level).seen(chosen.sections[0])
        here = self._level_title(level)
        self.report(
            result,
            f"{chosen.title}: settings for {here} removed (staged); {here} uses those of "
            f"{self._level_title(inherits)} again. Use commit to apply it.",
        )

    def do_setgroup(self, user, machine, group, **options):
        cluster = membership.current()
        if cluster is None:
            raise Refused("This appliance is not in a cluster: there are no machines to put in groups")
        if not Machine.objects.filter(name=machine).exists():
            there = ", ".join(Machine.objects.values_list("name", flat=True)) or "none"
            raise Refused(f"There is no machine '{machine}' in cluster '{cluster}' (machines: {there})")
        try:
            validate_object_name(group)
        except ValueError as error:
            raise Refused(f"Group name: {error}") from None
        if levels.group_of(candidate_levels.groups(), machine) == group:
            raise Refused(f"Machine '{machine}' is in group '{group}' already")
        self.stage(
            user,
            f"machine '{machine}' moved to group '{group}'",
            lambda: membership.put_in_group(machine, group),
            f"Machine '{machine}' in group '{group}' staged. Use commit to apply it.",
        )

    @staticmethod
    def _level_title(level: str) -> str:
        cluster = membership.current()
        return levels.describe(level, cluster.name if cluster else "")

    def do_list(self, user, **options):
        require(user, Capability.VIEW_CONFIG)
        cluster = membership.current()
        if cluster is None:
            self.stdout.write("This appliance is not in a cluster.")
            return
        self.stdout.write(f"Cluster {cluster}")
        for state in membership.machine_states():
            machine = state.machine
            reported = (
                timezone.localtime(machine.checked_in).strftime("%Y-%m-%d %H:%M:%S")
                if machine.checked_in
                else "-"
            )
            self.stdout.write(
                f"{machine.name}\t{state.group or '-'}\tversion {machine.applied_version or '-'}\t"
                f"last report {reported}\t{state.status}"
            )
        self._list_levels()

    def _list_levels(self) -> None:
        """The candidate's groups and the features defined for a group or a machine; a line the running
        configuration does not have yet ends in "(uncommitted)"."""
        running = workflow.running_config()
        committed_groups = {item["group_name"]: item["machine"] for item in running.get(levels.GROUPS, [])}
        staged = " (uncommitted)"
        self.stdout.write("Groups:")
        for group in Group.objects.all():
            names = ", ".join(group.machines) or "(no machines)"
            mark = "" if committed_groups.get(group.name) == group.machines else staged
            self.stdout.write(f"  {group.name}: {names}{mark}")
        defined: dict[tuple[str, str], bool] = {}  # (feature title, level) → committed
        for tag, level in Override.objects.values_list("section", "level"):
            feature = registry.feature_of(tag)
            title = feature.title if feature else registry.sections[tag].title
            committed = levels.key(tag, level) in running
            defined[title, level] = defined.get((title, level), True) and committed
        self.stdout.write(
            "Defined below the Cluster level:"
            if defined
            else "Every feature is defined at the Cluster level."
        )
        for (title, level), committed in sorted(
            defined.items(), key=lambda entry: (entry[0][0], levels.kind_and_name(entry[0][1]))
        ):
            self.stdout.write(f"  {title}: {levels.describe(level)}{'' if committed else staged}")
