"""interfaceconfig: IP interfaces from the console (staged; commit applies them)."""

from __future__ import annotations

from appliance import interfaces, workflow
from appliance.config.sections import registry
from appliance.management.base import SubcommandCommand
from appliance.models import Interface, this_machine
from appliance.roles import Capability, require

UNSET = object()


def _port(value: str):
    """A port number, or "off"/"" for a service that is off."""
    if value in ("", "off"):
        return None
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise ValueError(value)
    return int(value)


_port.__name__ = "port (1-65535 or off)"


class Command(SubcommandCommand):
    help = (
        "List, add, edit and delete IP interfaces; each serves the console over HTTPS with its certificate."
    )

    def add_arguments(self, parser):
        action = self.subcommands(parser)

        def settings(sub, new: bool):
            default = None if new else UNSET
            sub.add_argument("name")
            sub.add_argument("--ip", required=new, default=default)
            sub.add_argument("--netmask", type=int, default=24 if new else UNSET, help="prefix length")
            sub.add_argument("--hostname", required=new, default=default)
            sub.add_argument("--http", type=_port, default=default, metavar="PORT|off")
            sub.add_argument("--redirect", choices=["on", "off"], default="on" if new else UNSET)
            sub.add_argument("--https", type=_port, default=default, metavar="PORT|off")
            sub.add_argument(
                "--certificate", default="" if new else UNSET, metavar="NAME", help='"" for none'
            )

        action("list", "the interfaces and what uses them")
        settings(action("new", "add an interface"), new=True)
        edit = action("edit", "change an interface (options not given stay as they are)")
        settings(edit, new=False)
        edit.add_argument("--rename", metavar="NEW_NAME")
        action("delete", "delete an interface nothing uses").add_argument("name")

    def do_list(self, user, **options):
        require(user, Capability.VIEW_CONFIG)
        used = registry.where_used("interfaces", self.mode)
        for interface in Interface.objects.of(this_machine(self.mode)):
            self.stdout.write(
                f"{interface.name}\t{interface.ip_address}/{interface.netmask}\t{interface.hostname}\t"
                f"HTTP {interface.http_port or 'off'}{' (redirect)' if interface.https_redirect else ''}\t"
                f"HTTPS {interface.https_port or 'off'}\t{interface.certificate_name or '-'}\t"
                f"{', '.join(used.get(interface.name, [])) or '-'}"
            )

    def _stage(self, user, item, verb, original=None):
        result = workflow.submit(
            user,
            f"{verb} IP interface {item['interface_name']}",
            lambda: interfaces.save(self.mode, original, item),
            "CLI",
            mode=self.mode,
        )
        self.report(result, f"IP interface {item['interface_name']} {verb}. Use commit to apply it.")

    def do_new(self, user, name, ip, netmask, hostname, http, redirect, https, certificate, **options):
        item = {
            "interface_name": name,
            "ip": ip,
            "netmask": netmask,
            "interface_hostname": hostname,
            "httpd_port": http,
            "https_redirect": redirect == "on" and bool(http),
            "httpsd_port": https,
            "certificate_name": certificate,
        }
        self._stage(user, item, "added")

    def do_edit(self, user, name, rename, **options):
        item = interfaces.item_of(interfaces.get(this_machine(self.mode), name))
        changes = {
            "ip": options["ip"],
            "netmask": options["netmask"],
            "interface_hostname": options["hostname"],
            "httpd_port": options["http"],
            "httpsd_port": options["https"],
            "certificate_name": options["certificate"],
        }
        item.update({tag: value for tag, value in changes.items() if value is not UNSET})
        if options["redirect"] is not UNSET:
            item["https_redirect"] = options["redirect"] == "on"
        elif not item["httpd_port"]:
            item["https_redirect"] = False  # nothing left to redirect
        if rename:
            item["interface_name"] = rename
        self._stage(user, item, "edited", original=name)

    def do_delete(self, user, name, **options):
        result = workflow.submit(
            user,
            f"deleted IP interface {name}",
            lambda: interfaces.delete(self.mode, name),
            "CLI",
            mode=self.mode,
        )
        self.report(result, f"IP interface {name} deleted. Use commit to apply it.")
