"""The appliance's own configuration sections: hostname, rollback settings, network access, IP interfaces."""

from __future__ import annotations

import ipaddress

from appliance import dns, tls
from appliance.config import checks, levels
from appliance.config.sections import Config, Field, Kind, Section, registry
from appliance.models import DnsServer, DnsSettings, Interface, SslSettings, SystemSettings
from appliance.validators import validate_hostname, validate_ip_address, validate_object_name

NETWORK = "Network Configuration"
SYSTEM = "System Configuration"


def system_hostname(config: Config) -> str:
    """The system hostname of a configuration (``localhost`` in one without)."""
    return (config.get("hostname") or [{"hostname": "localhost"}])[0]["hostname"]


def _write_hostname(items):
    system = SystemSettings.load()
    system.hostname = items[0]["hostname"]
    system.save(update_fields=["hostname"])


def _write_rollback(items):
    system = SystemSettings.load()
    system.rollback_versions_kept = items[0]["versions_kept"]
    system.save(update_fields=["rollback_versions_kept"])


def _write_network_access(items):
    system = SystemSettings.load()
    system.web_ui_timeout_minutes = items[0]["web_ui_timeout"]
    system.save(update_fields=["web_ui_timeout_minutes"])


WEB_UI_TIMEOUT = Field(
    "web_ui_timeout", "Web UI Inactivity Timeout (minutes)", Kind.INT, default=30, minimum=5, maximum=1440
)


def web_ui_timeout_minutes(config: Config) -> int:
    """After how long without a request a console session ends (a version older than the setting: 30)."""
    return (config.get("network_access") or [{"web_ui_timeout": WEB_UI_TIMEOUT.default}])[0]["web_ui_timeout"]


INTERFACE_FIELDS = {
    "machine": "machine",
    "interface_name": "name",
    "ip": "ip_address",
    "netmask": "netmask",
    "interface_hostname": "hostname",
    "httpd_port": "http_port",
    "https_redirect": "https_redirect",
    "httpsd_port": "https_port",
    "certificate_name": "certificate_name",
}


def _read_interfaces():
    # Every machine's: the configuration is the cluster's, and each machine runs its own part of it.
    return [
        {tag: getattr(interface, attribute) for tag, attribute in INTERFACE_FIELDS.items()}
        for interface in Interface.every_machine.all()
    ]


def _write_interfaces(items):
    Interface.every_machine.all().delete()
    Interface.every_machine.bulk_create(
        Interface(**{attribute: item[tag] for tag, attribute in INTERFACE_FIELDS.items()}) for item in items
    )


def interface_problems(item) -> list[tuple[str, str]]:
    """Checks on one interface, for the file, the page and interfaceconfig alike."""
    problems = []
    netmask_limit = 32 if ipaddress.ip_address(item["ip"]).version == 4 else 128
    if item["netmask"] > netmask_limit:
        problems.append(("netmask", f"must be at most {netmask_limit} for {item['ip']}"))
    if item["httpd_port"] and item["httpd_port"] == item["httpsd_port"]:
        problems.append(("httpd_port", "HTTP and HTTPS cannot share a port"))
    if item["httpd_port"] and not item["https_redirect"]:
        # The console is served encrypted only: plain HTTP exists to send browsers to HTTPS.
        problems.append(
            ("https_redirect", "must be 1 when HTTP is on: the console is served over HTTPS only")
        )
    if item["https_redirect"] and not (item["httpd_port"] and item["httpsd_port"]):
        problems.append(("https_redirect", "needs both an HTTP and an HTTPS port"))
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
            scope="machine",
            fields=(
                Field("machine", "Machine", default="", attribute=True, validate=validate_object_name),
                Field("interface_name", "Name", validate=validate_object_name),
                Field("ip", "IP Address", validate=validate_ip_address),
                Field("netmask", "Netmask", Kind.INT, default=24, minimum=0, maximum=128),
                Field("interface_hostname", "Hostname", validate=validate_hostname),
                Field("httpd_port", "HTTP port", Kind.INT, default=None, minimum=1, maximum=65535),
                Field("https_redirect", "Redirect HTTP to HTTPS", Kind.BOOL, default=False),
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
            clean_item=interface_problems,
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
    registry.register(
        Section(
            tag="network_access",
            title="Network Access",
            heading=SYSTEM,
            position=905,
            fields=(WEB_UI_TIMEOUT,),
            read=lambda: [{"web_ui_timeout": SystemSettings.load().web_ui_timeout_minutes}],
            write=_write_network_access,
        )
    )
    registry.register(
        Section(
            tag="ssl_config",
            title="SSL Configuration",
            heading=SYSTEM,
            position=890,
            fields=tuple(
                field
                for service in tls.Service
                for field in (
                    Field(
                        f"{service}_tls_min",
                        f"{service.label}: lowest TLS version",
                        default=tls.TLSVersion.TLS1_2,
                        validate=_tls_version,
                    ),
                    Field(
                        f"{service}_tls_max",
                        f"{service.label}: highest TLS version",
                        default=tls.TLSVersion.TLS1_3,
                        validate=_tls_version,
                    ),
                    Field(
                        f"{service}_ciphers",
                        f"{service.label}: ciphers",
                        default=tls.INTERMEDIATE_CIPHERS,
                        validate=tls.validate_ciphers,
                    ),
                )
            ),
            read=lambda level: [{f: getattr(SslSettings.load(level), f) for f in SSL_FIELDS}],
            write=_write_ssl,
            clean_item=_clean_ssl,
        )
    )
    registry.register(
        Section(
            tag="dns",
            title="DNS",
            heading=NETWORK,
            position=12,
            fields=(
                Field(
                    "dns_ip",
                    "DNS servers",
                    Kind.ITEMS,
                    container="local_dns",
                    children=(
                        Field("address", "Address", text=True, validate=dns.validate_server),
                        Field(
                            "priority", "Priority", Kind.INT, default=0, minimum=0, maximum=99, attribute=True
                        ),
                    ),
                    child_key="address",
                ),
                Field(
                    "dns_ptr_timeout",
                    "PTR lookup timeout (seconds)",
                    Kind.INT,
                    default=20,
                    minimum=1,
                    maximum=60,
                ),
            ),
            read=_read_dns,
            write=_write_dns,
        )
    )
    registry.register_feature(levels.Feature("ssl_config", "SSL Configuration", ("ssl_config",)))
    checks.register(console_reachable)
    checks.register_sockets(interface_sockets)


def console_reachable(config: Config) -> list[str]:
    """The console must stay reachable, each HTTPS interface with a certificate."""
    served = [i for i in config.get("interfaces", []) if i["httpsd_port"]]
    problems = []
    if not served:
        problems.append("At least one IP interface must serve HTTPS, or the console becomes unreachable")
    for interface in served:
        if not interface["certificate_name"]:
            problems.append(f"interface '{interface['interface_name']}' serves HTTPS but has no certificate")
    return problems


def interface_sockets(config: Config) -> list[checks.SocketUse]:
    return [
        (interface["ip"], interface[tag], f"{service} of interface '{interface['interface_name']}'")
        for interface in config.get("interfaces", [])
        for tag, service in (("httpd_port", "HTTP"), ("httpsd_port", "HTTPS"))
        if interface[tag]
    ]


SSL_FIELDS = [f"{service}_{name}" for service in tls.Service for name in ("tls_min", "tls_max", "ciphers")]


def _tls_version(value: str) -> None:
    if value not in tls.TLSVersion.values:
        raise ValueError(f"must be one of {', '.join(tls.TLSVersion.values)}, not {value!r}")


def _write_ssl(items, level):
    SslSettings.objects.at(level).update_or_create(defaults={f: items[0][f] for f in SSL_FIELDS})


def _clean_ssl(item):
    problems = []
    for service in tls.Service:
        problem = tls.policy_problems(item[f"{service}_tls_min"], item[f"{service}_tls_max"])
        if problem:
            problems.append((f"{service}_tls_min", problem))
    return problems


def _read_dns():
    return [
        {
            "dns_ip": [{"address": s.address, "priority": s.priority} for s in DnsServer.objects.all()],
            "dns_ptr_timeout": DnsSettings.load().ptr_timeout,
        }
    ]


def _write_dns(items):
    [item] = items
    DnsSettings.objects.update_or_create(pk=1, defaults={"ptr_timeout": item["dns_ptr_timeout"]})
    DnsServer.objects.all().delete()
    DnsServer.objects.bulk_create(
        DnsServer(address=entry["address"], priority=entry["priority"] or 0, position=position)
        for position, entry in enumerate(item["dns_ip"])
    )
