"""Where a domain's mail goes: its SMTP route, else its MX hosts (then its own address), and their
addresses by the Destination Controls entry's IP preference."""

from __future__ import annotations

import ipaddress

import dns.asyncresolver
import dns.exception

from appliance import dns as appliance_dns
from appliance.config.sections import Config
from destinations import routes
from destinations.models import IpPreference

SMTP_PORT = 25
TIMEOUT = 30


class HopFailed(Exception):
    """This host did not take the mail now; the next host may (``temporary``) or none will."""

    def __init__(self, why: str, permanent: bool = False, dcid: int | None = None):
        super().__init__(why)
        self.permanent, self.dcid = permanent, dcid


def new_resolver(config: Config) -> dns.asyncresolver.Resolver:
    return appliance_dns.resolver(config, TIMEOUT, kind=dns.asyncresolver.Resolver)


async def find_hops(config: Config, domain: str, preference: str | None, resolver=None):
    """(host name, address, port) to try in order; None: the route drops the mail (/dev/null).

    ``resolver``: the configuration's (``Attempts.resolver_for``); by default a new one."""
    if domain.startswith("[") and domain.endswith("]"):  # user@[192.0.2.1], user@[IPv6:2001:db8::1]
        literal = domain[1:-1].removeprefix("IPv6:").removeprefix("ipv6:")
        try:
            return [(literal, str(ipaddress.ip_address(literal)), SMTP_PORT)]
        except ValueError:
            raise HopFailed(f"5.1.2 - {domain} is not an address", permanent=True) from None
    resolver = resolver or new_resolver(config)
    route = routes.route_for(domain, config)
    if route is not None and route[:1] == [routes.DEV_NULL]:
        return None
    names: list[tuple[str, int]] = []
    if route is not None and route != [routes.USEDNS]:
        for hop in route:
            host, port = routes.split_host(hop)
            names.append((host, port or SMTP_PORT))
    else:
        try:
            answer = await resolver.resolve(domain, "MX")
            for record in sorted(answer, key=lambda r: r.preference):
                target = str(record.exchange).rstrip(".")
                if target in ("", "."):
                    raise HopFailed(f"{domain} accepts no mail (null MX)", permanent=True)
                names.append((target, SMTP_PORT))
        except dns.resolver.NXDOMAIN:
            raise HopFailed(f"{domain} does not exist (NXDOMAIN)", permanent=True) from None
        except dns.resolver.NoAnswer:
            names.append((domain, SMTP_PORT))  # no MX: the domain's own address (RFC 5321)
        except dns.exception.DNSException as error:
            raise HopFailed(f"DNS lookup of {domain} failed: {error}") from None
    hops = []
    for name, port in names:
        for address in await addresses(resolver, name, preference):
            hops.append((name, address, port))
    if not hops:
        raise HopFailed(f"no address found for the hosts of {domain}")
    return hops


async def addresses(resolver, name: str, preference: str | None) -> list[str]:
    try:
        return [str(ipaddress.ip_address(name))]
    except ValueError:
        pass
    kinds = {
        IpPreference.IPV4_REQUIRED: ["A"],
        IpPreference.IPV6_REQUIRED: ["AAAA"],
        IpPreference.IPV6_PREFERRED: ["AAAA", "A"],
    }.get(preference, ["A", "AAAA"])
    found = []
    for kind in kinds:
        try:
            found += [record.address for record in await resolver.resolve(name, kind)]
        except dns.exception.DNSException:
            continue
    return found
