"""Validators of outward connections: hosts, host:port endpoints, distinguished names.

Each raises ValueError with a message in the administrator's words, as
``appliance.validators``; forms, console commands and the configuration file share them.
"""

from __future__ import annotations

import ipaddress
import re

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import parse_dn

from appliance.validators import validate_hostname

PORT_RANGE = (1, 65535)


def validate_host(value: str) -> None:
    """A host name or an IPv4/IPv6 address."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        validate_hostname(value)


def validate_port(port: int) -> None:
    low, high = PORT_RANGE
    if not low <= port <= high:
        raise ValueError(f"the port must be between {low} and {high}, not {port}")


def parse_endpoint(value: str) -> tuple[str, int]:
    """``host:port`` (``[address]:port`` for IPv6) as (host, port); ValueError if it is not one."""
    text = value.strip()
    example = "write it as host:port, e.g. wsa.example.com:443 ([2001:db8::1]:443 for IPv6)"
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ValueError(f"{value!r} is not host:port: {example}")
        port_text = rest[1:]
        try:
            if ipaddress.ip_address(host).version != 6:
                raise ValueError
        except ValueError:
            raise ValueError(f"{value!r}: only an IPv6 address goes in brackets") from None
    else:
        host, colon, port_text = text.rpartition(":")
        if not colon or not host:
            raise ValueError(f"{value!r} is not host:port: {example}")
        if ":" in host:
            raise ValueError(f"{value!r}: put an IPv6 address in brackets, e.g. [2001:db8::1]:443")
        try:
            validate_host(host)
        except ValueError as exc:
            raise ValueError(f"{value!r}: {exc}") from None
    if not port_text.isdigit():
        raise ValueError(f"{value!r}: the port {port_text!r} is not a number")
    port = int(port_text)
    try:
        validate_port(port)
    except ValueError as exc:
        raise ValueError(f"{value!r}: {exc}") from None
    return host, port


def validate_endpoint(value: str) -> None:
    parse_endpoint(value)


def validate_dn(value: str) -> None:
    """A distinguished name as LDAP writes it (``cn=admin,dc=example,dc=com``)."""
    try:
        parse_dn(value)
    except LDAPInvalidDnError:
        raise ValueError(
            f"{value!r} is not a distinguished name (attribute=value pairs separated by commas, "
            "e.g. cn=admin,dc=example,dc=com)"
        ) from None


def validate_bind_dn(value: str) -> None:
    """The bind name: a distinguished name, or an Active Directory user principal (``user@example.com``)."""
    if "=" not in value and re.fullmatch(r"[^@\s]+@[^@\s]+", value):
        return
    validate_dn(value)


# --- Destination Controls entries ------------------------------------------------

DESTINATION_SYNTAX = (
    "a domain (example.com), a subdomain form for every host below a domain (.example.com), "
    "or an IPv4 or IPv6 address (192.0.2.1, 2001:db8::1)"
)
_DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def canonical_destination(value: str) -> str:
    """A destination name as stored: lower case, an address in its short form, ``Default`` for the default row.

    Accepts ``[192.0.2.1]`` and ``[IPv6:2001:db8::1]`` as the ESA shows and mail writes them.
    """
    text = value.strip()
    if text.lower() == "default":
        return "Default"
    inner = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    inner = inner[5:] if inner[:5].lower() == "ipv6:" else inner
    try:
        return str(ipaddress.ip_address(inner))
    except ValueError:
        if inner != text:
            raise ValueError(f"{value!r} is not an IP address: only an address goes in brackets") from None
    name = text.lower()
    dot = "." if name.startswith(".") else ""
    body = name[len(dot) :].removesuffix(".")
    if body and not body.isascii():
        try:
            body = body.encode("idna").decode("ascii")
        except UnicodeError:
            body = ""
    labels = body.split(".")
    if not body or len(body) > 253 or not all(map(_DOMAIN_LABEL.match, labels)) or labels[-1].isdigit():
        raise ValueError(f"{value!r} is not a destination: give {DESTINATION_SYNTAX}")
    return dot + body


def validate_destination_name(value: str) -> None:
    """A ``<destination_name>`` as written in a file: already in its stored form."""
    canonical = canonical_destination(value)
    if canonical != value:
        raise ValueError(f"{value!r} must be written as {canonical!r}")
