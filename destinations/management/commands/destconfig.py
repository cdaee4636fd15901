"""destconfig: Destination Controls from the console; ``setup`` is Edit Global Settings."""

from __future__ import annotations

import argparse

from appliance.management.base import Refused, SubcommandCommand
from appliance.roles import Capability, require
from destinations import store
from destinations.management.console import add_certificate_options, yes_no
from destinations.models import DestinationControls


class Command(SubcommandCommand):
    help = "Destination Controls global settings: the certificate for outgoing TLS, the required-TLS alert (staged)."

    def add_arguments(self, parser):
        action = self.subcommands(parser)
        setup = action(
            "setup", "the global settings: certificate for all outgoing TLS, alert on required TLS failure"
        )
        add_certificate_options(setup, "presented on every outgoing TLS connection")
        setup.add_argument(
            "--tls-required-alert",
            action=argparse.BooleanOptionalAction,
            help="send an alert when a required TLS connection fails",
        )
        action("print", "show the global settings (candidate)")

    def do_setup(self, user, certificate=None, tls_required_alert=None, **options):
        if certificate is None and tls_required_alert is None:
            raise Refused(
                "nothing to change: give --certificate NAME, --no-certificate or --[no-]tls-required-alert"
            )
        current = DestinationControls.load()
        name = current.certificate_name if certificate is None else certificate
        alert = current.send_tls_required_alert if tls_required_alert is None else tls_required_alert
        self.stage(
            user,
            "edited the Destination Controls global settings",
            lambda: store.set_destination_controls(name, alert),
            "Destination Controls global settings staged. Use commit to apply them.",
        )

    def do_print(self, user, **options):
        require(user, Capability.VIEW_CONFIG)
        current = DestinationControls.load()
        self.stdout.write(
            f"Certificate: {current.certificate_name or 'None'}\n"
            f"Send an alert when a required TLS connection fails: {yes_no(current.send_tls_required_alert)}"
        )
