"""The appliance's own configuration sections: hostname, rollback settings, IP interfaces."""

from __future__ import annotations

import ipaddress

from appliance.config import checks
from appliance.config.sections import Config, Field, Kind, Section, registry
from appliance.models import Interface, SystemSettings
from appliance.validators import validate_hostname, validate_ip_address, validate_object_name

NETWORK = "Network Configuration"
SYSTEM = "System Configuration"


def _write_hostname(items):
    system = SystemSettings.load()
    system.hostname = items[0]["hostname"]
    system.save(update_fields=["hostname"])


def _write_rollback(items):
    system = SystemSettings.load()
    system.rollback_versions_kept = items[0]["versions_kept"]
    system.save(update_fields=["rollback_versions_kept"])


INTERFACE_FIELDS = {
    "interface_name": "name",
    "ip": "ip_address",
    "netmask": "netmask",
    "interface_hostname": "hostname",
    "httpsd_port": "https_port",
    "certificate_name": "certificate_name",
}


def _read_interfaces():
    return [
        {tag: getattr(interface, attribute) for tag, attribute in INTERFACE_FIELDS.items()}
        for interface in Interface.objects.all()
    ]


def _write_interfaces(items):
    Interface.objects.all().delete()
    Interface.objects.bulk_create(
        Interface(**{attribute: item[tag] for tag, attribute in INTERFACE_FIELDS.items()}) for item in items
    )


def _clean_interface(item):
    problems = []
    netmask_limit = 32 if ipaddress.ip_address(item["ip"]).version == 4 else 128
    if item["netmask"] > netmask_limit:
        problems.append(("netmask", f"must be at most {netmask_limit} for {item['ip']}"))
    return problems


def register_sections():
    registry.register(
        Section(
            tag="hostname",
            title="System hostname",
            heading=NETWORK,
            position=0,
            fields=(Field("hostname", "Hostname", validate=validate_hostname),),
            read=lambda: [{"hostname": SystemSettings.load().hostname}],
            write=_write_hostname,
        )
    )
    registry.register(
        Section(
            tag="interfaces",
            title="IP Interfaces",
            heading=NETWORK,
            position=10,
            item_tag="interface",
            key="interface_name",
            fields=(
                Field("interface_name", "Name", validate=validate_object_name),
                Field("ip", "IP Address", validate=validate_ip_address),
                Field("netmask", "Netmask", Kind.INT, default=24, minimum=0, maximum=128),
                Field("interface_hostname", "Hostname", validate=validate_hostname),
                Field("httpsd_port", "HTTPS port", Kind.INT, default=None, minimum=1, maximum=65535),
                Field(
                    "certificate_name",
                    "HTTPS Certificate",
                    default="",
                    references="certificates",
                    covers=lambda item, config: [item["interface_hostname"]],
                ),
            ),
            read=_read_interfaces,
            write=_write_interfaces,
            clean_item=_clean_interface,
        )
    )
    registry.register(
        Section(
            tag="config_rollback",
            title="Configuration Rollback",
            heading=SYSTEM,
            position=900,
            fields=(Field("versions_kept", "Versions kept", Kind.INT, default=10, minimum=1, maximum=100),),
            read=lambda: [{"versions_kept": SystemSettings.load().rollback_versions_kept}],
            write=_write_rollback,
        )
    )
    checks.register(console_reachable)


def console_reachable(config: Config) -> list[str]:
    """The console must stay reachable, on distinct sockets, each with a certificate."""
    interfaces = config.get("interfaces", [])
    problems = []
    served = [i for i in interfaces if i["httpsd_port"]]
    if not served:
        problems.append("At least one IP interface must serve HTTPS, or the console becomes unreachable")
    sockets = {}
    for interface in served:
        where = (interface["ip"], interface["httpsd_port"])
        if where in sockets:
            problems.append(
                f"interfaces '{sockets[where]}' and '{interface['interface_name']}' "
                f"both serve HTTPS on {where[0]} port {where[1]}"
            )
        sockets[where] = interface["interface_name"]
        if not interface["certificate_name"]:
            problems.append(f"interface '{interface['interface_name']}' serves HTTPS but has no certificate")
    return problems
