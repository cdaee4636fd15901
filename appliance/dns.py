"""Network > DNS: the resolvers the gateway asks for MX, A/AAAA and PTR records (dnspython)."""

from __future__ import annotations

import ipaddress

import dns.exception
import dns.nameserver
import dns.resolver

from appliance.config.sections import Config


def split_server(value: str) -> tuple[str, int]:
    """``address``, ``address:port`` or ``[v6 address]:port`` → (address, port); ValueError if not."""
    text = value.strip()
    port = 53
    if text.startswith("["):
        address, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise ValueError(f"{value!r} is not an address with a port ([address]:port)")
            port = int(rest[1:])
    elif text.count(":") == 1:
        address, port_text = text.split(":")
        if not port_text.isdigit():
            raise ValueError(f"{value!r} has a port that is not a number")
        port = int(port_text)
    else:
        address = text
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an IP address (a port may follow: 10.0.0.1:5353, [::1]:53)"
        ) from None
    if not 1 <= port <= 65535:
        raise ValueError(f"{value!r} has a port out of range (1-65535)")
    return address, port


def validate_server(value: str) -> None:
    split_server(value)


def resolver(config: Config, timeout: float | None = None, kind=dns.resolver.Resolver):
    """A resolver asking the configured servers in priority order, or the machine's when none are set.

    ``kind``: ``dns.asyncresolver.Resolver`` for the gateway's asyncio sessions.
    """
    [settings] = config.get("dns") or [{"dns_ip": [], "dns_ptr_timeout": 20}]
    servers = sorted(settings["dns_ip"], key=lambda s: s["priority"] or 0)
    if servers:
        result = kind(configure=False)
        result.nameservers = [dns.nameserver.Do53Nameserver(*split_server(s["address"])) for s in servers]
    else:
        result = kind()
    result.lifetime = timeout or settings["dns_ptr_timeout"]
    return result


async def verified_reverse_name(resolver_, address: str) -> tuple[str, bool]:
    """The host name the PTR record gives ``address`` ("unknown" if none) and whether that name's
    A/AAAA records lead back to ``address`` (forward-confirmed reverse DNS)."""
    try:
        answer = await resolver_.resolve_address(address)
        name = str(answer[0].target).rstrip(".").lower()
    except dns.exception.DNSException:
        return "unknown", False
    record_type = "AAAA" if ipaddress.ip_address(address).version == 6 else "A"
    try:
        forward = await resolver_.resolve(name, record_type)
    except dns.exception.DNSException:
        return name, False
    wanted = ipaddress.ip_address(address)
    return name, any(ipaddress.ip_address(record.address) == wanted for record in forward)


def lookup(config: Config, name: str, record_type: str = "MX", timeout: float | None = None) -> list[str]:
    """The answers as text (``10 mx.example.org.``); a DNS failure in words as ValueError.

    ``timeout``: seconds for the whole lookup (default: the DNS settings' timeout)."""
    try:
        answer = resolver(config, timeout).resolve(name, record_type)
    except dns.resolver.NXDOMAIN:
        raise ValueError(f"{name} does not exist (NXDOMAIN)") from None
    except dns.resolver.NoAnswer:
        raise ValueError(f"{name} has no {record_type} record") from None
    except dns.resolver.LifetimeTimeout:
        raise ValueError(f"no DNS server answered for {name} in time") from None
    except (dns.resolver.NoNameservers, dns.exception.DNSException) as exc:
        raise ValueError(f"the lookup of {name} failed: {exc}") from None
    return [record.to_text() for record in answer]
