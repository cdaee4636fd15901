"""First start: the configuration an appliance ships with, committed as version 1.

The environment variables read here seed the first configuration only;
afterwards the configuration rules.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable

from django.conf import settings
from django.db import transaction

from appliance import dns, workflow
from appliance.config.sections import Item
from appliance.models import ConfigVersion, DnsServer, Interface, Role, SystemSettings, User
from appliance.sections import INTERFACE_FIELDS
from appliance.validators import validate_hostname, validate_ip_address

_first_start_steps: list[Callable[[str], None]] = []
MANAGEMENT_INTERFACE = "Management"  # the interface every appliance ships with


class BootstrapError(Exception):
    """The environment asks for a first configuration that cannot be made."""


def register_first_start(step: Callable[[str], None]) -> None:
    """Apps add their shipped objects here (the Demo certificate); ``step(hostname)``.

    Steps run after the Management interface exists, in the order registered.
    """
    _first_start_steps.append(step)


def environment() -> tuple[str, str, int]:
    """The host name, address and HTTPS port of the Management interface, from the environment."""
    hostname = os.environ.get("APPLIANCE_HOSTNAME") or socket.getfqdn()
    address = os.environ.get("APPLIANCE_LISTEN_ADDRESS", "127.0.0.1")
    port = os.environ.get("APPLIANCE_HTTPS_PORT", "8443")
    try:
        validate_hostname(hostname)
        validate_ip_address(address)
    except ValueError as exc:
        raise BootstrapError(f"APPLIANCE_HOSTNAME/APPLIANCE_LISTEN_ADDRESS: {exc}") from None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise BootstrapError(f"APPLIANCE_HTTPS_PORT must be a port number, not {port!r}")
    for server in _dns_servers():
        try:
            dns.validate_server(server)
        except ValueError as exc:
            raise BootstrapError(f"APPLIANCE_DNS_SERVER: {exc}") from None
    return hostname, address, int(port)


def _dns_servers() -> list[str]:
    """APPLIANCE_DNS_SERVER: resolvers, comma-separated; none means the machine's."""
    return [s.strip() for s in os.environ.get("APPLIANCE_DNS_SERVER", "").split(",") if s.strip()]


def management_interface(machine: str, hostname: str, address: str, port: int) -> Item:
    """The interface every appliance, and every machine of a cluster, ships with, as an ``<interface>``."""
    return {
        "machine": machine,
        "interface_name": MANAGEMENT_INTERFACE,
        "ip": address,
        "netmask": 32 if ":" not in address else 128,
        "interface_hostname": hostname,
        "httpd_port": None,
        "https_redirect": False,
        "httpsd_port": port,
        "certificate_name": "Demo",
    }


def add_management_interface(machine: str, hostname: str, address: str, port: int) -> None:
    """The candidate's Management interface of ``machine``, made or replaced."""
    item = management_interface(machine, hostname, address, port)
    Interface.every_machine.filter(machine=machine, name=MANAGEMENT_INTERFACE).delete()
    Interface.every_machine.create(**{attribute: item[tag] for tag, attribute in INTERFACE_FIELDS.items()})


def first_start() -> str | None:
    """Make and commit the shipped configuration if none exists.

    Returns the generated admin password (to print once), '' if it came from the
    environment, None if the appliance was already set up.
    """
    if ConfigVersion.objects.exists():
        return None
    hostname, address, port = environment()
    password = os.environ.get("APPLIANCE_ADMIN_PASSWORD") or ""
    generated = "" if password else secrets.token_urlsafe(12)
    with transaction.atomic():
        if ConfigVersion.objects.exists():  # another process was first
            return None
        admin, _ = User.objects.get_or_create(username="admin")
        admin.role = Role.ADMINISTRATOR
        admin.set_password(password or generated)
        admin.save()
        system = SystemSettings.load()
        system.hostname = hostname
        system.save()
        DnsServer.objects.bulk_create(
            DnsServer(address=server, position=position) for position, server in enumerate(_dns_servers())
        )
        add_management_interface(settings.MACHINE_NAME, hostname, address, port)
        for step in _first_start_steps:
            step(hostname)
        try:
            workflow.commit(admin, "Initial configuration", source="first start")
        except workflow.ChangeRefused as refusal:
            # Two first-start variables that contradict each other (the SMTP and HTTPS ports).
            raise BootstrapError("; ".join([str(refusal), *refusal.problems])) from None
    return generated
