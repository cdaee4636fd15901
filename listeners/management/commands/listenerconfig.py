"""listenerconfig: Network > Listeners from the console, as the ESA's, non-interactive."""

from __future__ import annotations

from appliance.management.base import SubcommandCommand
from appliance.roles import Capability, require
from listeners import store
from listeners.models import Listener

EDIT_OPTIONS = ("new_name", "listener_type", "interface_name", "port", "certificate_name")


class Command(SubcommandCommand):
    help = (
        "List, add, edit and delete listeners and choose the certificate each offers for TLS "
        "(changes are staged; commit applies them)."
    )

    def add_arguments(self, parser):
        action = self.subcommands(parser)

        def settings(sub, required: bool):
            sub.add_argument("--type", dest="listener_type", choices=Listener.Type.values, required=required)
            sub.add_argument("--interface", dest="interface_name", metavar="NAME", required=required)
            sub.add_argument("--port", type=int, required=required)
            sub.add_argument(
                "--certificate",
                dest="certificate_name",
                metavar="NAME",
                default="" if required else None,
                help='the certificate offered for TLS ("" for none)',
            )

        action("list", "the listeners, as Network > Listeners lists them")
        new = action("new", "add a listener")
        new.add_argument("name")
        settings(new, required=True)
        self.edit_parser = action("edit", "change the settings given; the others stay")
        self.edit_parser.add_argument("name")
        self.edit_parser.add_argument("--new-name", metavar="NAME", help="rename the listener")
        settings(self.edit_parser, required=False)
        certificate = action("certificate", "choose the certificate the listener offers for TLS")
        certificate.add_argument("name")
        certificate.add_argument("certificate_name", metavar="CERTNAME", help='a certificate, or "" for none')
        action("delete", "delete a listener").add_argument("name")

    def do_list(self, user, **options):
        require(user, Capability.VIEW_CONFIG)
        for listener in Listener.objects.all():
            self.stdout.write(
                f"{listener.name}\t{listener.get_listener_type_display()}\t{listener.interface_name}\t"
                f"{listener.port}\t{listener.certificate_name or '-'}"
            )

    def do_new(self, user, name, listener_type, interface_name, port, certificate_name, **options):
        self.stage(
            user,
            f"created listener {name}",
            lambda: store.create(name, listener_type, interface_name, port, certificate_name),
            f"Listener {name} created. Use commit to apply it.",
        )

    def do_edit(self, user, name, **options):
        changes = {key: options[key] for key in EDIT_OPTIONS if options.get(key) is not None}
        if not changes:
            self.edit_parser.error(
                "give at least one of --new-name, --type, --interface, --port, --certificate"
            )
        self.stage(
            user,
            f"edited listener {name}",
            lambda: store.edit(name, **changes),
            f"Listener {changes.get('new_name', name)} changed. Use commit to apply it.",
        )

    def do_certificate(self, user, name, certificate_name, **options):
        chosen = f"certificate {certificate_name}" if certificate_name else "no certificate"
        self.stage(
            user,
            f"chose {chosen} for listener {name}",
            lambda: store.set_certificate(name, certificate_name),
            f"Listener {name} uses {chosen}. Use commit to apply it.",
        )

    def do_delete(self, user, name, **options):
        self.stage(
            user,
            f"deleted listener {name}",
            lambda: store.delete(name),
            f"Listener {name} deleted. Use commit to apply it.",
        )
