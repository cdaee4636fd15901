"""addresslistconfig: Mail Policies > Address Lists from the console, non-interactive."""

from __future__ import annotations

from appliance.management.base import SubcommandCommand
from appliance.roles import Capability, require
from listeners import address_lists
from listeners.address_lists import FORMS, AddressList


class Command(SubcommandCommand):
    help = "List, add, edit and delete address lists (changes are staged; commit applies them)."

    def add_arguments(self, parser):
        action = self.subcommands(parser)

        def settings(sub, required: bool):
            sub.add_argument(
                "--address",
                dest="entries",
                action="append",
                required=required,
                metavar="ENTRY",
                help=f"repeat for each entry: {FORMS}" + ("" if required else " (replaces the entries)"),
            )
            sub.add_argument("--description", default="" if required else None)

        action("list", "the address lists and their entries")
        new = action("new", "add an address list")
        new.add_argument("name")
        settings(new, required=True)
        self.edit_parser = action("edit", "change what is given; the rest stays")
        self.edit_parser.add_argument("name")
        self.edit_parser.add_argument("--new-name", metavar="NAME", help="rename the list")
        settings(self.edit_parser, required=False)
        action("delete", "delete an address list").add_argument("name")

    def do_list(self, user, **options):
        require(user, Capability.VIEW_CONFIG)
        for address_list in AddressList.objects.all():
            self.stdout.write(
                f"{address_list.name}\t{address_list.description or '-'}\t{', '.join(address_list.entries)}"
            )

    def do_new(self, user, name, entries, description, **options):
        self.stage(
            user,
            f"created address list {name}",
            lambda: address_lists.create(name, entries, description),
            f"Address list {name} created. Use commit to apply it.",
        )

    def do_edit(self, user, name, new_name, entries, description, **options):
        if new_name is None and entries is None and description is None:
            self.edit_parser.error("give at least one of --new-name, --description, --address")
        self.stage(
            user,
            f"edited address list {name}",
            lambda: address_lists.edit(name, new_name=new_name, description=description, entries=entries),
            f"Address list {new_name or name} changed. Use commit to apply it.",
        )

    def do_delete(self, user, name, **options):
        self.stage(
            user,
            f"deleted address list {name}",
            lambda: address_lists.delete(name),
            f"Address list {name} deleted. Use commit to apply it.",
        )
