"""destconfig: Destination Controls from the console; ``setup`` is Edit Global Settings, the rest the table."""

from __future__ import annotations

import argparse
from pathlib import Path

from appliance.management.base import Refused, SubcommandCommand
from appliance.roles import Capability, require
from destinations import lookup, store
from destinations.entries import LABELS, Entry, shown
from destinations.management.console import add_certificate_options, yes_no
from destinations.models import (
    Destination,
    DestinationControls,
    IpPreference,
    LimitsApplyTo,
    TlsSupport,
)

INHERIT = "default"


def _limit(text: str) -> int | None:
    """A whole number, or ``default`` (None: the Default entry's; on it, No Limit). The range is the store's."""
    if text == INHERIT:
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("give a whole number or default") from None


def _choices(choices) -> list[str]:
    return [*choices.values, INHERIT]


def _entry_options(parser, new: bool) -> None:
    """The settings of an entry; one not typed is absent from the options (SUPPRESS), not None."""
    parser.add_argument(
        "name", help="a domain (example.com), .subdomain (.example.com), IP address, or Default"
    )
    absent = {"default": argparse.SUPPRESS}
    parser.add_argument(
        "--tls",
        required=new,
        choices=TlsSupport.values,
        help="TLS Support (default: the Default entry's)",
        **absent,
    )
    parser.add_argument(
        "--ip-preference", choices=_choices(IpPreference), help="IP Address Preference", **absent
    )
    parser.add_argument(
        "--max-connections",
        type=_limit,
        metavar="N|default",
        help="Concurrent Connections, 1-1000",
        **absent,
    )
    parser.add_argument(
        "--max-messages",
        type=_limit,
        metavar="N|default",
        help="Maximum Messages Per Connection, 1-1000",
        **absent,
    )
    parser.add_argument(
        "--max-recipients-per-minute",
        type=_limit,
        metavar="N|default",
        help="recipients per minute, 1-1000000 (default on the Default entry: No Limit)",
        **absent,
    )
    parser.add_argument(
        "--limits-apply-to",
        choices=_choices(LimitsApplyTo),
        help="domain: one limit for the whole domain; mx_ip: one per MX host IP address",
        **absent,
    )


OPTIONS = {  # option dest → Entry attribute
    "tls": "tls",
    "ip_preference": "ip_preference",
    "max_connections": "max_connections",
    "max_messages": "max_messages_per_connection",
    "max_recipients_per_minute": "max_recipients_per_minute",
    "limits_apply_to": "limits_apply_to",
}


def _given(options: dict) -> dict:
    """The settings typed on the command line; ``default`` as "the Default entry's" (None; TLS ``default``)."""
    given = {}
    for dest, attribute in OPTIONS.items():
        if dest in options:
            value = options[dest]
            given[attribute] = None if value == INHERIT and attribute != "tls" else value
    return given


class Command(SubcommandCommand):
    help = "Destination Controls: the global settings and the per-destination table (staged)."

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
        action("list", "the destination table, one entry a line (candidate)")
        _entry_options(action("new", "add a destination entry"), new=True)
        edit = action("edit", "change an entry (Default included); options not given stay as they are")
        _entry_options(edit, new=False)
        edit.add_argument("--rename", metavar="NEW_NAME", help="a new destination for the entry")
        action("delete", "delete entries (not the Default entry)").add_argument(
            "names", nargs="+", metavar="NAME"
        )
        action("lookup", "which entry and TLS mode apply to an address or domain").add_argument("address")
        action("import", "replace the whole table with a text file, one entry a line").add_argument("path")
        action("export", "write the table to a text file (- for standard output)").add_argument("path")

    @property
    def level(self) -> str:
        """The level whose Destination Controls --mode sees."""
        return self.mode.seen("destination_controls")

    # --- global settings -------------------------------------------------

    def do_setup(self, user, certificate=None, tls_required_alert=None, **options):
        if certificate is None and tls_required_alert is None:
            raise Refused(
                "nothing to change: give --certificate NAME, --no-certificate or --[no-]tls-required-alert"
            )
        current = DestinationControls.load(self.level)
        name = current.certificate_name if certificate is None else certificate
        alert = current.send_tls_required_alert if tls_required_alert is None else tls_required_alert
        self.stage(
            user,
            "edited the Destination Controls global settings",
            lambda: store.set_destination_controls(self.mode, name, alert),
            "Destination Controls global settings staged. Use commit to apply them.",
        )

    def do_print(self, user, **options):
        require(user, Capability.VIEW_CONFIG)
        current = DestinationControls.load(self.level)
        self.stdout.write(
            f"Certificate: {current.certificate_name or 'None'}\n"
            f"Send an alert when a required TLS connection fails: {yes_no(current.send_tls_required_alert)}"
        )

    # --- the table: reading ----------------------------------------------

    def do_list(self, user, **options):
        require(user, Capability.VIEW_CONFIG)
        store.get_destination(self.level, "Default")  # made if missing
        rows = sorted(Destination.objects.at(self.level), key=lambda row: (not row.is_default, row.name))
        self.stdout.write(
            "Destination\tTLS Support\tIP Address Preference\tConcurrent Connections\t"
            "Messages per Connection\tRecipients per Minute\tApply Limits To"
        )
        for row in rows:
            cells = [
                shown(attribute, getattr(row, attribute), row.is_default) for attribute in OPTIONS.values()
            ]
            self.stdout.write("\t".join([row.display_name, *cells]))

    def do_lookup(self, user, address, **options):
        require(user, Capability.VIEW_CONFIG)
        try:
            match = lookup.entry_for(self.level, address)
        except ValueError as exc:
            raise Refused(str(exc)) from None
        lines = [f"{address}: {match.reason}", f"Entry: {match.entry.name}"]
        for attribute in OPTIONS.values():
            own = getattr(match.entry, attribute)
            value = (
                match.tls.label if attribute == "tls" else shown(attribute, match.effective(attribute), True)
            )
            inherited = not match.entry.is_default and own in (None, TlsSupport.DEFAULT)
            lines.append(f"{LABELS[attribute]}: {value}{' (Default)' if inherited else ''}")
        self.stdout.write("\n".join(lines))

    def do_export(self, user, path, **options):
        require(user, Capability.VIEW_CONFIG)
        text = store.export_destinations(self.level)
        if path == "-":
            self.stdout.write(text, ending="")
            return
        Path(path).write_text(text, encoding="utf-8")
        count = sum(1 for line in text.splitlines() if not line.startswith("#"))
        self.stdout.write(f"Exported {count:,} entries to {path}")

    # --- the table: changing ---------------------------------------------

    def do_new(self, user, name, **options):
        entry = Entry(name, **{"tls": TlsSupport.DEFAULT, **_given(options)})
        self.stage(
            user,
            f"added destination {name}",
            lambda: store.save_destination(self.level, entry),
            f"Destination {name} staged. Use commit to apply it.",
        )

    def do_edit(self, user, name, rename=None, **options):
        given = _given(options)
        if not given and rename is None:
            raise Refused("nothing to change: give the settings to change (see destconfig edit --help)")

        def apply():
            entry = Entry.of(store.get_destination(self.level, name))
            for attribute, value in given.items():
                setattr(entry, attribute, value)
            if rename is not None:
                entry.name = rename
            return store.save_destination(self.level, entry, original=name)

        self.stage(
            user,
            f"edited destination {name}",
            apply,
            f"Destination {rename or name} staged. Use commit to apply it.",
        )

    def do_delete(self, user, names, **options):
        self.stage(
            user,
            f"deleted destination{'s' if len(names) > 1 else ''} {', '.join(names)}",
            lambda: store.delete_destinations(self.level, names),
            f"Deleted {', '.join(names)}. Use commit to apply it.",
        )

    def do_import(self, user, path, **options):
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise Refused(f'the file "{path}" does not exist') from None
        except UnicodeDecodeError:
            raise Refused(f'the file "{path}" is not UTF-8 text') from None
        self.stage(
            user,
            f"imported the destination table from {Path(path).name}",
            lambda: store.import_destinations(self.level, text),
            "Destination table staged. Use commit to apply it.",
        )
