"""deliveryconfig: Network > Mail Delivery from the console, as the ESA's ``deliveryconfig`` SETUP, without prompts."""

from __future__ import annotations

import argparse

from appliance.management.base import Refused, SubcommandCommand
from appliance.roles import Capability, require
from destinations import delivery_settings
from destinations.delivery_settings import AUTO, INTERFACE, LABELS, SECONDS
from destinations.models import DELIVERY_LIMITS

AUTO_WORD = "auto"
# Option dest (the <delivery> element) → metavar; the ranges are the store's.
NUMBERS = {
    "max_concurrency": "N",
    "max_tls_concurrency": "N",
    "max_queue_lifetime": "SECONDS",
    "initial_retry": "SECONDS",
    "max_retry_interval": "SECONDS",
}


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"give a whole number, not {text!r}") from None


def _interface(text: str) -> str:
    """An interface name, or ``auto`` (any case) for Auto."""
    return AUTO if text.strip().lower() == AUTO_WORD else text.strip()


class Command(SubcommandCommand):
    help = (
        "Mail delivery: the default delivery interface, outbound concurrency, and how long undelivered "
        "messages are retried (changes are staged; commit applies them)."
    )

    def add_arguments(self, parser):
        action = self.subcommands(parser)
        setup = action("setup", "change the settings; options not given stay as they are")
        setup.add_argument(
            "--interface",
            dest=INTERFACE,
            type=_interface,
            metavar="NAME|auto",
            help="the default delivery interface: an IP interface's name (its address is the source "
            "address, its hostname the EHLO name), or auto: the address the operating system chooses",
        )
        for dest, metavar in NUMBERS.items():
            low, high = DELIVERY_LIMITS[dest]
            unit = " seconds" if dest in SECONDS else ""
            setup.add_argument(
                f"--{dest.replace('_', '-')}",
                dest=dest,
                type=_whole_number,
                metavar=metavar,
                help=f"{LABELS[dest]}, {low}-{high}{unit}",
            )
        action("print", "show the settings (candidate)")

    def do_setup(self, user, **options):
        changes = {tag: options[tag] for tag in (INTERFACE, *NUMBERS) if options.get(tag) is not None}
        if not changes:
            raise Refused(
                "nothing to change: give --interface NAME|auto, --max-concurrency N, --max-tls-concurrency N, "
                "--max-queue-lifetime SECONDS, --initial-retry SECONDS or --max-retry-interval SECONDS"
            )
        self.stage(
            user,
            "edited the Mail Delivery settings",
            lambda: delivery_settings.set_delivery(self.mode, **changes),
            "Mail Delivery settings staged. Use commit to apply them.",
        )

    def do_print(self, user, **options):
        require(user, Capability.VIEW_CONFIG)
        rows = delivery_settings.describe(self.mode, delivery_settings.current())
        self.stdout.write("\n".join(f"{label}: {text}" for label, text in rows))
