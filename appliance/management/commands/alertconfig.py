"""alertconfig: System Administration > Alerts from the console, as the ESA's, non-interactive."""

from __future__ import annotations

from appliance import alerts
from appliance.alerts import ALL, AlertClass, AlertRecipient, Severity
from appliance.management.base import SubcommandCommand
from appliance.roles import Capability, require


class Command(SubcommandCommand):
    help = (
        "List, add, edit and delete alert recipients and the alert classes and severities each receives "
        "(changes are staged; commit applies them)."
    )

    def add_arguments(self, parser):
        action = self.subcommands(parser)

        def subscriptions(sub, required: bool):
            sub.add_argument(
                "--class",
                dest="alert_classes",
                action="append",
                choices=[ALL, *AlertClass.values],
                required=required,
                metavar="CLASS",
                help=f"repeat for several: {', '.join([ALL, *AlertClass.values])}",
            )
            sub.add_argument(
                "--severity",
                dest="severities",
                action="append",
                choices=[ALL, *Severity.values],
                required=required,
                metavar="SEVERITY",
                help=f"repeat for several: {', '.join([ALL, *Severity.values])}",
            )

        action("list", "the recipients, as System Administration > Alerts lists them")
        new = action("new", "add a recipient")
        new.add_argument("address")
        subscriptions(new, required=True)
        self.edit_parser = action("edit", "change what is given; --class or --severity replaces that list")
        self.edit_parser.add_argument("address")
        self.edit_parser.add_argument("--new-address", metavar="ADDRESS", help="change the address")
        subscriptions(self.edit_parser, required=False)
        action("delete", "delete a recipient").add_argument("address")

    def do_list(self, user, **options):
        require(user, Capability.VIEW_CONFIG)
        for recipient in AlertRecipient.objects.all():
            self.stdout.write(
                f"{recipient.address}\t{recipient.classes_display()}\t{recipient.severities_display()}"
            )

    def do_new(self, user, address, alert_classes, severities, **options):
        self.stage(
            user,
            f"added alert recipient {address}",
            lambda: alerts.create(address, alert_classes, severities),
            f"Alert recipient {address} added. Use commit to apply it.",
        )

    def do_edit(self, user, address, new_address, alert_classes, severities, **options):
        if new_address is None and alert_classes is None and severities is None:
            self.edit_parser.error("give at least one of --new-address, --class, --severity")
        self.stage(
            user,
            f"edited alert recipient {address}",
            lambda: alerts.edit(
                address, new_address=new_address, alert_classes=alert_classes, severities=severities
            ),
            f"Alert recipient {new_address or address} changed. Use commit to apply it.",
        )

    def do_delete(self, user, address, **options):
        self.stage(
            user,
            f"deleted alert recipient {address}",
            lambda: alerts.delete(address),
            f"Alert recipient {address} deleted. Use commit to apply it.",
        )
