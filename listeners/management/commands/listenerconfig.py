"""listenerconfig: Network > Listeners from the console, as the ESA's, non-interactive.

``listenerconfig edit NAME hostaccess …`` is the ESA's EDIT > HOSTACCESS menu:
the listener's mail flow policies, Default Policy Parameters and Host Access
Table (``listeners.hat``), with Import/Export HAT (``listeners.hatfile``) and
Find Senders. ``listenerconfig edit NAME rcptaccess …`` is its EDIT > RCPTACCESS
menu: a public listener's Recipient Access Table (``listeners.rat``, with the
entry operations of ``listeners.rat_forms`` that Mail Policies > Recipient Access
Table uses too).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from django.db.models import Prefetch

from appliance.config.sections import Item
from appliance.management.base import Refused, SubcommandCommand, add_common_options
from appliance.roles import Capability, require
from appliance.workflow import Outcome
from listeners import hat, hatfile, rat, store
from listeners.models import (
    LIMIT_LABELS,
    POLICY_LIMITS,
    ConnectionBehavior,
    InboundTls,
    Listener,
    SenderEntry,
)
from listeners.senders import ALL, FORMS

LISTENER_LIMITS = store.LISTENER_LIMITS
EDIT_OPTIONS = ("new_name", "listener_type", "interface_name", "port", "certificate_name", *LISTENER_LIMITS)
YES_NO = {"yes": True, "no": False}
MENUS = "{hostaccess,rcptaccess}"
# A policy's limits: the option that sets each (the tags are the configuration file's).
LIMIT_OPTIONS = {
    "max_message_size": "--max-message-size",
    "max_rcpts_per_msg": "--max-recipients",
    "max_msgs_per_session": "--max-messages",
    "max_concurrency_per_ip": "--max-concurrency-per-ip",
    "max_connections_per_minute_per_ip": "--max-connections-per-minute-per-ip",
}
USE_DEFAULT = "default"


def limit_number(text: str) -> int:
    """A limit of the Default Policy Parameters: a whole number (they are what Use Default means)."""
    if text.strip().lower() == USE_DEFAULT:
        raise argparse.ArgumentTypeError("the Default Policy Parameters hold a number, not default")
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"give a whole number, not {text!r}") from None


def limit_or_default(text: str) -> int | str:
    """A policy's limit as given: a whole number, or ``default`` (Use Default)."""
    if text.strip().lower() == USE_DEFAULT:
        return USE_DEFAULT
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"give a whole number or default, not {text!r}") from None


def policy_name(text: str | None) -> str | None:
    """A policy as given: ``$TRUSTED``, as the ESA shows it, names TRUSTED."""
    return None if text is None else text.removeprefix("$")


def shown_tls(value: str) -> str:
    return InboundTls(value).label if value in InboundTls.values else value


def yes_no(value: bool) -> str:
    return "Yes" if value else "No"


def combined(*outcomes) -> Outcome:
    """One outcome of several operations' notes and warnings."""
    result = Outcome()
    for outcome in outcomes:
        if isinstance(outcome, Outcome):
            result.notes += outcome.notes
            result.warnings += outcome.warnings
    return result


class Command(SubcommandCommand):
    help = (
        "List, add, edit and delete listeners, choose the certificate each offers for TLS, and edit "
        "a listener's mail flow policies and Host Access Table (edit NAME hostaccess …) and a public "
        "listener's Recipient Access Table (edit NAME rcptaccess …); changes are staged, commit applies them."
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
            sub.add_argument(
                "--max-concurrency",
                dest="max_concurrency",
                type=int,
                metavar="N",
                help=f"{LIMIT_LABELS['max_concurrency']} (new listener: 300)",
            )
            sub.add_argument(
                "--max-tls-concurrency",
                dest="max_tls_concurrency",
                type=int,
                metavar="N",
                help=f"{LIMIT_LABELS['max_tls_concurrency']} (new listener: 200)",
            )

        action("list", "the listeners, as Network > Listeners lists them")
        new = action("new", "add a listener")
        new.add_argument("name")
        settings(new, required=True)
        self.edit_parser = action(
            "edit",
            "change the settings given; the others stay (or: edit NAME hostaccess|rcptaccess ACTION …)",
        )
        self.edit_parser.add_argument("name", metavar="NAME")
        self.edit_parser.add_argument("--new-name", metavar="NAME", help="rename the listener")
        settings(self.edit_parser, required=False)
        menus = self.edit_parser.add_subparsers(dest="menu", metavar=MENUS, required=False)
        self.add_hostaccess(menus)
        self.add_rcptaccess(menus)
        # argparse shows an optional subparser as if it were required: say it is optional.
        usage = self.edit_parser.format_usage().removeprefix("usage: ").rstrip("\n")
        self.edit_parser.usage = usage.replace(f"{MENUS} ...", f"[{MENUS} ACTION ...]")
        certificate = action("certificate", "choose the certificate the listener offers for TLS")
        certificate.add_argument("name")
        certificate.add_argument("certificate_name", metavar="CERTNAME", help='a certificate, or "" for none')
        action("delete", "delete a listener").add_argument("name")

    # --- the HOSTACCESS menu: its arguments ---------------------------------------------
    # Every destination is prefixed ``hat_``: a subparser's values replace the edit parser's
    # of the same name, and the listener's own settings must stay apart.

    def add_hostaccess(self, menus):
        hostaccess = menus.add_parser(
            "hostaccess", help="the listener's mail flow policies and Host Access Table (HAT)"
        )
        add_common_options(hostaccess, defaults=False)
        actions = hostaccess.add_subparsers(dest="hat_action", required=True, metavar="ACTION")

        def action(parent, name: str, help_text: str):
            sub = parent.add_parser(name, help=help_text)
            add_common_options(sub, defaults=False)
            return sub

        def tls_options(sub, tls_choices, address_list_help: str):
            sub.add_argument("--tls", dest="hat_tls", choices=tls_choices)
            sub.add_argument("--verify-client", dest="hat_verify_client", choices=list(YES_NO))
            sub.add_argument(
                "--tls-address-list", dest="hat_address_list", metavar="LIST", help=address_list_help
            )

        def limit_options(sub, use_default: bool):
            for tag, option in LIMIT_OPTIONS.items():
                sub.add_argument(
                    option,
                    dest=f"hat_{tag}",
                    type=limit_or_default if use_default else limit_number,
                    metavar="N|default" if use_default else "N",
                    help=LIMIT_LABELS[tag] + (" (default: Use Default)" if use_default else ""),
                )

        action(actions, "print", "the policies, the Default Policy Parameters and the HAT")

        new = action(actions, "new", "add a sender group or a mail flow policy")
        kinds = new.add_subparsers(dest="hat_kind", required=True, metavar="{sendergroup,policy}")
        group = action(kinds, "sendergroup", "add a sender group, last before ALL unless --order")
        group.add_argument("hat_group", metavar="GROUP")
        group.add_argument("--policy", dest="hat_policy", metavar="POLICY", required=True)
        group.add_argument("--comment", dest="hat_comment", metavar="TEXT")
        group.add_argument("--order", dest="hat_order", type=int, metavar="N", help="1 = first")
        group.add_argument("--senders", dest="hat_add", nargs="+", metavar="HOST", help=FORMS)
        policy = action(kinds, "policy", "add a mail flow policy")
        policy.add_argument("hat_policy_name", metavar="POLICY")
        policy.add_argument(
            "--behavior", dest="hat_behavior", choices=ConnectionBehavior.values, required=True
        )
        tls_options(policy, InboundTls.values, "TLS is Mandatory for Address List (with --tls preferred)")
        limit_options(policy, use_default=True)

        edit = action(actions, "edit", "change what is given of a sender group or mail flow policy")
        kinds = edit.add_subparsers(dest="hat_kind", required=True, metavar="{sendergroup,policy}")
        self.edit_group_parser = group = action(kinds, "sendergroup", "change a sender group")
        group.add_argument("hat_group", metavar="GROUP")
        group.add_argument("--new-name", dest="hat_new_name", metavar="NAME")
        group.add_argument("--policy", dest="hat_policy", metavar="POLICY")
        group.add_argument("--comment", dest="hat_comment", metavar="TEXT")
        group.add_argument("--add", dest="hat_add", nargs="+", metavar="HOST", help=FORMS)
        group.add_argument("--remove", dest="hat_remove", nargs="+", metavar="HOST")
        self.edit_policy_parser = policy = action(kinds, "policy", "change a mail flow policy")
        policy.add_argument("hat_policy_name", metavar="POLICY")
        policy.add_argument("--new-name", dest="hat_new_name", metavar="NAME")
        policy.add_argument("--behavior", dest="hat_behavior", choices=ConnectionBehavior.values)
        tls_options(policy, InboundTls.values, 'TLS is Mandatory for Address List ("" for none)')
        limit_options(policy, use_default=True)

        delete = action(actions, "delete", "delete a sender group or a mail flow policy no group uses")
        delete.add_argument("hat_kind", choices=["sendergroup", "policy"])
        delete.add_argument("hat_item", metavar="NAME")

        move = action(actions, "move", "move a sender group to another place in the HAT")
        move.add_argument("hat_group", metavar="GROUP")
        move.add_argument("hat_order", type=int, metavar="ORDER", help="1 = first; ALL stays last")

        self.default_parser = default = action(
            actions, "default", "the Default Policy Parameters: what a policy's Use Default means"
        )
        tls_options(default, [InboundTls.OFF, InboundTls.PREFERRED, InboundTls.REQUIRED], '"" for none')
        limit_options(default, use_default=False)

        imported = action(actions, "import", "replace the HAT with HAT text (the policies stay)")
        imported.add_argument("hat_file", metavar="FILE", help='a HAT text file; "-" reads standard input')
        exported = action(actions, "export", "the HAT as text, as import reads it")
        exported.add_argument(
            "hat_file", metavar="FILE", nargs="?", default="-", help="standard output if none"
        )

        find = action(actions, "find", "Find Senders: the sender group and policy a host gets, and why")
        find.add_argument("hat_address", metavar="IP")
        find.add_argument(
            "--hostname", dest="hat_hostname", metavar="HOST", default="", help="its verified host name"
        )

    # --- the RCPTACCESS menu: its arguments ----------------------------------------------
    # Destinations are prefixed ``rat_``, as the HOSTACCESS menu's are ``hat_``.

    def add_rcptaccess(self, menus):
        rcptaccess = menus.add_parser("rcptaccess", help="a public listener's Recipient Access Table (RAT)")
        add_common_options(rcptaccess, defaults=False)
        actions = rcptaccess.add_subparsers(dest="rat_command", required=True, metavar="ACTION")

        def action(name: str, help_text: str):
            sub = actions.add_parser(name, help=help_text)
            add_common_options(sub, defaults=False)
            return sub

        def settings(sub, required: bool):
            sub.add_argument("--action", dest="rat_action", choices=rat.Action.values, required=required)
            sub.add_argument(
                "--order", dest="rat_order", type=int, metavar="N", help="1 = first; ALL stays last"
            )

        action("print", "the RAT in order: the first entry that covers a recipient decides")
        new = action("new", "add an entry, last before ALL unless --order")
        new.add_argument("rat_recipient", metavar="RECIPIENT", help=rat.FORMS)
        settings(new, required=True)
        self.edit_entry_parser = edit = action("edit", "change an entry's action or place (ALL: its action)")
        edit.add_argument("rat_recipient", metavar="RECIPIENT")
        settings(edit, required=False)
        action("delete", "delete an entry (not ALL)").add_argument("rat_recipient", metavar="RECIPIENT")
        imported = action("import", "replace the RAT with RAT text")
        imported.add_argument("rat_file", metavar="FILE", help='a RAT text file; "-" reads standard input')
        exported = action("export", "the RAT as text, as import reads it")
        exported.add_argument(
            "rat_file", metavar="FILE", nargs="?", default="-", help="standard output if none"
        )

    @property
    def level(self) -> str:
        """The level whose listeners --mode sees."""
        return self.mode.seen("listeners")

    # --- listeners ---------------------------------------------------------------------

    def do_list(self, user, **options):
        require(user, Capability.VIEW_CONFIG)
        for listener in Listener.objects.at(self.level):
            self.stdout.write(
                f"{listener.name}\t{listener.get_listener_type_display()}\t{listener.interface_name}\t"
                f"{listener.port}\t{listener.certificate_name or '-'}\t"
                f"{listener.max_concurrency}\t{listener.max_tls_concurrency}"
            )

    def do_new(self, user, name, listener_type, interface_name, port, certificate_name, **options):
        limits = {tag: options[tag] for tag in LISTENER_LIMITS if options.get(tag) is not None}
        self.stage(
            user,
            f"created listener {name}",
            lambda: store.create(
                self.mode, name, listener_type, interface_name, port, certificate_name, **limits
            ),
            f"Listener {name} created. Use commit to apply it.",
        )

    def do_edit(self, user, name, **options):
        changes = {key: options[key] for key in EDIT_OPTIONS if options.get(key) is not None}
        menu = options.get("menu")
        if menu and changes:
            self.edit_parser.error(
                f"give the listener's settings or {menu}, not both: they are separate changes"
            )
        if menu == "rcptaccess":
            return getattr(self, f"rat_{options['rat_command']}")(user, name, **options)
        if menu == "hostaccess":
            kind = options["hat_kind"] if options["hat_action"] in ("new", "edit") else ""
            return getattr(self, "_".join(filter(None, ["hat", options["hat_action"], kind])))(
                user, name, **options
            )
        if not changes:
            self.edit_parser.error(
                "give at least one of --new-name, --type, --interface, --port, --certificate, "
                "--max-concurrency, --max-tls-concurrency (or hostaccess ACTION, rcptaccess ACTION)"
            )
        self.stage(
            user,
            f"edited listener {name}",
            lambda: store.edit(self.mode, name, **changes),
            f"Listener {changes.get('new_name', name)} changed. Use commit to apply it.",
        )

    def do_certificate(self, user, name, certificate_name, **options):
        chosen = f"certificate {certificate_name}" if certificate_name else "no certificate"
        self.stage(
            user,
            f"chose {chosen} for listener {name}",
            lambda: store.set_certificate(self.mode, name, certificate_name),
            f"Listener {name} uses {chosen}. Use commit to apply it.",
        )

    def do_delete(self, user, name, **options):
        self.stage(
            user,
            f"deleted listener {name}",
            lambda: store.delete(self.level, name),
            f"Listener {name} deleted. Use commit to apply it.",
        )

    # --- hostaccess: reading -------------------------------------------------------------

    def hat_print(self, user, name, **options):
        require(user, Capability.VIEW_CONFIG)
        listener = hat.listener(self.level, name)
        groups = list(hat.groups_overview(listener).prefetch_related(_entries_in_order()))
        parameters = {"default_policy_parameters": hat.default_parameters_item(listener)}
        self.stdout.write(f"Mail Flow Policies of listener {listener.name}")
        self.stdout.write(
            "Policy\tConnection Behavior\tTLS\tVerify Client Certificate\t"
            "TLS is Mandatory for Address List\t"
            + "".join(f"{LIMIT_LABELS[tag]}\t" for tag in POLICY_LIMITS)
            + "Sender Groups"
        )
        for policy in listener.policies.all():
            tls = hat.effective_tls(parameters, hat.policy_item(policy))
            default = " (Default)" if policy.tls == InboundTls.DEFAULT else ""
            users = [group.name for group in groups if group.policy_name == policy.name]
            self.stdout.write(
                f"{policy.name}\t{policy.get_connection_behavior_display()}\t"
                f"{shown_tls(tls.tls)}{default}\t{yes_no(tls.verify_client)}{default}\t"
                f"{tls.mandatory_address_list or '-'}{default}\t"
                + "".join(f"{_limit_shown(listener, policy, tag)}\t" for tag in POLICY_LIMITS)
                + (", ".join(users) or "-")
            )
        self.stdout.write("")
        self.stdout.write("Default Policy Parameters")
        self.stdout.write(f"TLS: {shown_tls(listener.default_tls)}")
        self.stdout.write(f"Verify Client Certificate: {yes_no(listener.default_tls_verify_client)}")
        self.stdout.write(
            f"TLS is Mandatory for Address List: {listener.default_tls_mandatory_address_list or '-'}"
        )
        for tag in POLICY_LIMITS:
            self.stdout.write(f"{LIMIT_LABELS[tag]}: {getattr(listener, f'default_{tag}')}")
        self.stdout.write("")
        self.stdout.write("Host Access Table: the first sender group that holds a host decides its policy")
        for order, group in enumerate(groups, start=1):
            comment = f" ({group.comment})" if group.comment else ""
            self.stdout.write(f"{order}. {group.name}: policy {group.policy_name}{comment}")
            for entry in group.entries.all():
                self.stdout.write(f"     {entry.host}")
            if not group.entry_count:
                self.stdout.write("     (no senders)")

    def hat_export(self, user, name, hat_file, **options):
        require(user, Capability.VIEW_CONFIG)
        listener = hat.listener(self.level, name)
        items = _hat_items(listener)
        text = hatfile.format_hat(listener.name, items)
        if hat_file == "-":
            self.stdout.write(text, ending="")
            return
        Path(hat_file).write_text(text, encoding="utf-8")
        self.stdout.write(f"Exported the HAT of listener {listener.name} ({_counted(items)}) to {hat_file}")

    def hat_find(self, user, name, hat_address, hat_hostname, **options):
        require(user, Capability.VIEW_CONFIG)
        listener = hat.listener(self.level, name)
        finding = hat.find_senders(listener, hat_address, hat_hostname)
        host = hat_address.strip() + (f" ({hat_hostname.strip()})" if hat_hostname.strip() else "")
        lines = [f"{host}: sender group {finding.group.name}, entry {finding.entry}"]
        if finding.policy is None:
            lines.append(f"Policy: {finding.group.policy_name} (the listener has no such policy)")
        else:
            policy = finding.policy
            tls = hat.effective_tls(
                {"default_policy_parameters": hat.default_parameters_item(listener)}, hat.policy_item(policy)
            )
            default = " (Default)" if policy.tls == InboundTls.DEFAULT else ""
            lines += [
                f"Policy: {policy.name} ({policy.get_connection_behavior_display()})",
                f"TLS: {shown_tls(tls.tls)}{default}",
                f"Verify Client Certificate: {yes_no(tls.verify_client)}{default}",
                f"TLS is Mandatory for Address List: {tls.mandatory_address_list or '-'}{default}",
            ]
        lines += [f"Why: {reason}" for reason in finding.reasons]
        self.stdout.write("\n".join(lines))

    # --- hostaccess: changes ---------------------------------------------------------

    def hat_new_sendergroup(
        self, user, name, hat_group, hat_policy, hat_comment, hat_order, hat_add, **options
    ):
        def apply():
            outcome = hat.save_group(
                self.level,
                name,
                hat_group,
                policy_name=policy_name(hat_policy),
                comment=hat_comment,
                order=hat_order,
                create=True,
            )
            return combined(
                outcome, hat.add_senders(self.level, name, hat_group, hat_add) if hat_add else None
            )

        self.stage(
            user,
            f"added sender group {hat_group} to listener {name}",
            apply,
            f"Sender group {hat_group} added to listener {name}. Use commit to apply it.",
        )

    def hat_new_policy(self, user, name, hat_policy_name, hat_behavior, **options):
        policy = policy_name(hat_policy_name)
        self.stage(
            user,
            f"added mail flow policy {policy} to listener {name}",
            lambda: hat.save_policy(
                self.level,
                name,
                policy,
                create=True,
                connection_behavior=hat_behavior,
                limits=_limits(options),
                **_tls(options),
            ),
            f"Mail flow policy {policy} added to listener {name}. Use commit to apply it.",
        )

    def hat_edit_sendergroup(
        self, user, name, hat_group, hat_new_name, hat_policy, hat_comment, hat_add, hat_remove, **options
    ):
        if all(value is None for value in (hat_new_name, hat_policy, hat_comment, hat_add, hat_remove)):
            self.edit_group_parser.error(
                "give at least one of --new-name, --policy, --comment, --add, --remove"
            )
        group = hat_new_name or hat_group

        def apply():
            outcomes = []
            if any(value is not None for value in (hat_new_name, hat_policy, hat_comment)):
                outcomes.append(
                    hat.save_group(
                        self.level,
                        name,
                        hat_group,
                        new_name=hat_new_name,
                        policy_name=policy_name(hat_policy),
                        comment=hat_comment,
                    )
                )
            if hat_remove:
                outcomes.append(hat.remove_senders(self.level, name, group, hat_remove))
            if hat_add:
                outcomes.append(hat.add_senders(self.level, name, group, hat_add))
            return combined(*outcomes)

        self.stage(
            user,
            f"edited sender group {hat_group} of listener {name}",
            apply,
            f"Sender group {group} of listener {name} changed. Use commit to apply it.",
        )

    def hat_edit_policy(self, user, name, hat_policy_name, hat_new_name, hat_behavior, **options):
        tls, limits = _tls(options), _limits(options)
        if hat_new_name is None and hat_behavior is None and not tls and not limits:
            self.edit_policy_parser.error(
                "give at least one of --new-name, --behavior, --tls, --verify-client, --tls-address-list, "
                + ", ".join(LIMIT_OPTIONS.values())
            )
        policy, new_name = policy_name(hat_policy_name), policy_name(hat_new_name)
        self.stage(
            user,
            f"edited mail flow policy {policy} of listener {name}",
            lambda: hat.save_policy(
                self.level,
                name,
                policy,
                new_name=new_name,
                connection_behavior=hat_behavior,
                limits=limits,
                **tls,
            ),
            f"Mail flow policy {new_name or policy} of listener {name} changed. Use commit to apply it.",
        )

    def hat_delete(self, user, name, hat_kind, hat_item, **options):
        if hat_kind == "policy":
            item = policy_name(hat_item)
            what, delete = f"mail flow policy {item}", lambda: hat.delete_policy(self.level, name, item)
        else:
            what, delete = f"sender group {hat_item}", lambda: hat.delete_group(self.level, name, hat_item)
        self.stage(
            user,
            f"deleted {what} of listener {name}",
            delete,
            f"{what[0].upper()}{what[1:]} of listener {name} deleted. Use commit to apply it.",
        )

    def hat_move(self, user, name, hat_group, hat_order, **options):
        self.stage(
            user,
            f"moved sender group {hat_group} of listener {name} to position {hat_order}",
            lambda: hat.save_group(self.level, name, hat_group, order=hat_order),
            f"Sender group {hat_group} of listener {name} moved to position {hat_order}. "
            "Use commit to apply it.",
        )

    def hat_default(self, user, name, **options):
        tls, limits = _tls(options), _limits(options)
        if not tls and not limits:
            self.default_parser.error(
                "give at least one of --tls, --verify-client, --tls-address-list, "
                + ", ".join(LIMIT_OPTIONS.values())
            )
        self.stage(
            user,
            f"changed the Default Policy Parameters of listener {name}",
            lambda: hat.set_default_parameters(self.level, name, limits=limits, **tls),
            f"Default Policy Parameters of listener {name} changed. Use commit to apply them.",
        )

    def hat_import(self, user, name, hat_file, **options):
        text = _read_text(hat_file)

        def apply():
            groups = hatfile.parse_hat(text)
            hat.replace_hat(self.level, name, groups)
            return Outcome(notes=[f"Imported {_counted(groups)}."])

        source = "standard input" if hat_file == "-" else Path(hat_file).name
        self.stage(
            user,
            f"imported the HAT of listener {name} from {source}",
            apply,
            f"HAT of listener {name} imported. Use commit to apply it.",
        )

    # --- rcptaccess ---------------------------------------------------------------------

    def rat_print(self, user, name, **options):
        require(user, Capability.VIEW_CONFIG)
        listener = rat.public_listener(self.level, name)
        self.stdout.write(
            f"Recipient Access Table of listener {listener.name}: the first entry that covers a recipient decides"
        )
        for order, entry in enumerate(rat.table(listener), start=1):
            self.stdout.write(f"{order}. {entry['recipient']}: {rat.Action(entry['action']).label}")

    def rat_export(self, user, name, rat_file, **options):
        require(user, Capability.VIEW_CONFIG)
        listener = rat.public_listener(self.level, name)
        entries = rat.table(listener)
        text = rat.format_table(listener.name, entries)
        if rat_file == "-":
            self.stdout.write(text, ending="")
            return
        Path(rat_file).write_text(text, encoding="utf-8")
        self.stdout.write(
            f"Exported the RAT of listener {listener.name} ({rat.counted(len(entries))}) to {rat_file}"
        )

    def rat_new(self, user, name, rat_recipient, rat_action, rat_order, **options):
        shown = _shown_recipient(rat_recipient)
        self.stage(
            user,
            f"added RAT entry {shown} to listener {name}",
            lambda: rat.add_entry(self.level, name, rat_recipient, rat_action, rat_order),
            f"RAT entry {shown} added to listener {name}. Use commit to apply it.",
        )

    def rat_edit(self, user, name, rat_recipient, rat_action, rat_order, **options):
        if rat_action is None and rat_order is None:
            self.edit_entry_parser.error("give at least one of --action, --order")
        shown = _shown_recipient(rat_recipient)
        self.stage(
            user,
            f"edited RAT entry {shown} of listener {name}",
            lambda: rat.edit_entry(self.level, name, rat_recipient, action=rat_action, order=rat_order),
            f"RAT entry {shown} of listener {name} changed. Use commit to apply it.",
        )

    def rat_delete(self, user, name, rat_recipient, **options):
        shown = _shown_recipient(rat_recipient)
        self.stage(
            user,
            f"deleted RAT entry {shown} of listener {name}",
            lambda: rat.delete_entry(self.level, name, rat_recipient),
            f"RAT entry {shown} of listener {name} deleted. Use commit to apply it.",
        )

    def rat_import(self, user, name, rat_file, **options):
        text = _read_text(rat_file)
        source = "standard input" if rat_file == "-" else Path(rat_file).name
        self.stage(
            user,
            f"imported the RAT of listener {name} from {source}",
            lambda: rat.import_table(self.level, name, text),
            f"RAT of listener {name} imported. Use commit to apply it.",
        )


def _shown_recipient(text: str) -> str:
    """A recipient as the messages name it: its written form when it is one."""
    try:
        return rat.canonical_recipient(text)
    except ValueError:
        return text.strip()


def _tls(options) -> dict:
    """The TLS settings given, as the keyword arguments of ``hat.save_policy`` and the like."""
    given = {
        "tls": options.get("hat_tls"),
        "tls_verify_client": YES_NO.get(options.get("hat_verify_client")),
        "tls_mandatory_address_list": options.get("hat_address_list"),
    }
    return {key: value for key, value in given.items() if value is not None}


def _limits(options) -> dict:
    """The limits given, for ``hat.save_policy`` and ``hat.set_default_parameters``: None is Use Default."""
    given = {tag: options.get(f"hat_{tag}") for tag in POLICY_LIMITS}
    return {tag: None if value == USE_DEFAULT else value for tag, value in given.items() if value is not None}


def _limit_shown(listener: Listener, policy, tag: str) -> str:
    """A policy's limit as ``print`` shows it: its own, or the Default Policy Parameters' with (Default)."""
    own = getattr(policy, tag)
    return str(own) if own is not None else f"{getattr(listener, f'default_{tag}')} (Default)"


def _entries_in_order() -> Prefetch:
    return Prefetch("entries", SenderEntry.objects.order_by("position").only("group_id", "host"))


def _hat_items(listener: Listener) -> list[Item]:
    """The listener's sender groups as configuration items, in order (two queries)."""
    return [
        {
            "sender_group_name": group.name,
            "policy": group.policy_name,
            "comment": group.comment,
            "host": [entry.host for entry in group.entries.all()],
        }
        for group in listener.sender_groups.order_by("position").prefetch_related(_entries_in_order())
    ]


def _counted(groups: list[Item]) -> str:
    senders = sum(len(group["host"]) for group in groups if group["sender_group_name"] != ALL)
    return f"{_number(len(groups), 'sender group')}, {_number(senders, 'sender')}"


def _number(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise Refused(f'the file "{path}" does not exist') from None
    except UnicodeDecodeError:
        raise Refused(f'the file "{path}" is not UTF-8 text') from None
