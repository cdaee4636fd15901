"""clusterconfig: Centralized Management from the console, as the ESA's command of that name."""

from __future__ import annotations

from pathlib import Path

from django.utils import timezone

from appliance import bootstrap
from appliance.config.xmlfile import SecretMode, parse
from appliance.management.base import Refused, SubcommandCommand, read_passphrase_file
from appliance.management.commands.saveconfig import add_passphrase_arguments, passphrase_options
from appliance.roles import Capability, require
from appliance.validators import validate_hostname, validate_ip_address
from cluster import membership
from cluster.models import MAIN_GROUP


class Command(SubcommandCommand):
    help = (
        "Create a cluster of the machines that share this PostgreSQL database, join a machine to it or "
        "take one out, list its machines. Creating, joining and leaving commit at once."
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
        action("list", "the cluster's machines: group, version applied, last report")

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
            changes = membership.what_joining_changes(own.config, machine, hostname, address, port)
            self.stdout.write(
                f"Joining would change on {machine}:"
                if changes
                else f"Joining would change nothing on {machine}."
            )
            self.write_changes(changes)
            self.stdout.write("Nothing was changed: join without --preview to join.")
            return
        membership.join(user, machine, hostname, address, port, group, source="CLI")
        self.stdout.write(
            f"Machine '{machine}' joined (Management interface {address}, HTTPS port {port}). "
            f"Start it with runappliance --machine {machine}"
        )

    def do_leave(self, user, machine, file, passphrases, passphrase_file, **options):
        mode, passphrase = passphrase_options(passphrases, passphrase_file)
        path = membership.leave(
            user, machine, mode, passphrase, Path(file).resolve() if file else None, "CLI"
        )
        if mode is SecretMode.PLAIN:
            self.warn("the file holds private keys in plain text")
        self.stdout.write(
            f"Machine '{machine}' left the cluster. What it ran is in {path}: run it on a database of its "
            f"own (without APPLIANCE_DATABASE_URL), then loadconfig that file and commit"
        )

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
