"""Network > SMTP Routes: where mail for a domain goes before MX lookup (rows, ``<smtp_routes>``, ``smtproutes``).

A route names a domain (``example.com``), every host below a domain
(``.example.com``) or everything else (``ALL``, the default route), and lists
destination hosts, each ``host[:port]`` with an optional priority (lower first),
``USEDNS`` (deliver by MX) or ``/dev/null`` (drop the mail; alone in its route).
Delivery asks ``route_for()``: exact domain > longest ``.partial`` > ``ALL`` >
None (use MX). Lookups ask for the few names that could match, never loop over
the table.
"""

from __future__ import annotations

import ipaddress
import re

from appliance import workflow
from appliance.config.sections import Config, Field, Item, Kind, Section, registry
from destinations.models import SmtpRoute
from destinations.validators import validate_host

DEFAULT_ROUTE = "ALL"
USEDNS = "USEDNS"
DEV_NULL = "/dev/null"
SMTP_PORT = 25
PRIORITY_RANGE = (0, 65535)
DOMAIN_SYNTAX = "a domain (example.com), .example.com for every host below it, or ALL for the default route"
HOST_SYNTAX = "host[:port] (mx.example.com, 192.0.2.1:2525, [2001:db8::1]:25), USEDNS or /dev/null"
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class RouteRefused(workflow.ChangeRefused):
    """An SMTP route the appliance refuses; the message says which and why."""


# --- syntax ------------------------------------------------------------------------


def canonical_domain(value: str) -> str:
    """A route's domain as stored: ``ALL``, or lower case with an optional leading dot."""
    text = value.strip()
    if text.upper() == DEFAULT_ROUTE:
        return DEFAULT_ROUTE
    name = text.lower()
    dot = "." if name.startswith(".") else ""
    body = name[len(dot) :].removesuffix(".")
    labels = body.split(".")
    if not body or len(body) > 253 or not all(map(_LABEL.match, labels)) or labels[-1].isdigit():
        raise ValueError(f"{value!r} is not a domain: give {DOMAIN_SYNTAX}")
    return dot + body


def validate_domain(value: str) -> None:
    """A ``<domain>`` as written in a file: already in its stored form."""
    canonical = canonical_domain(value)
    if canonical != value:
        raise ValueError(f"{value!r} must be written as {canonical!r}")


def split_host(value: str) -> tuple[str, int | None]:
    """``host[:port]`` → (host, port, 25 if none); ``USEDNS`` and ``/dev/null`` → (itself, None)."""
    text = value.strip()
    if text in (USEDNS, DEV_NULL):
        return text, None
    port_text = None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{value!r} is not a destination host: give {HOST_SYNTAX}")
        port_text = rest[1:] if rest else None
        try:
            if ipaddress.ip_address(host).version != 6:
                raise ValueError
        except ValueError:
            raise ValueError(f"{value!r}: only an IPv6 address goes in brackets") from None
    else:
        host, colon, port_text = text.partition(":")
        if ":" in port_text:
            raise ValueError(f"{value!r}: put an IPv6 address in brackets, e.g. [2001:db8::1]:25")
        if not colon:
            port_text = None
        try:
            validate_host(host)
        except ValueError:
            raise ValueError(f"{value!r} is not a destination host: give {HOST_SYNTAX}") from None
    if port_text is None:
        return host, SMTP_PORT
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{value!r}: the port must be a number between 1 and 65535")
    return host, int(port_text)


def validate_host_entry(value: str) -> None:
    split_host(value)


def parse_priority(text: str, hop: str) -> int:
    low, high = PRIORITY_RANGE
    number = text.strip().removeprefix("pri=")
    if not number.isdigit() or not low <= int(number) <= high:
        raise ValueError(f"{hop!r}: the priority must be a number between {low} and {high}")
    return int(number)


def parse_line(line: str) -> dict:
    """One hop as the page takes it, ``host[:port] [priority]`` → {"host", "priority"}."""
    words = line.split()
    if not words or len(words) > 2:
        raise ValueError(
            f"{line.strip()!r} is not a destination host: give host[:port] and an optional priority"
        )
    validate_host_entry(words[0])
    priority = parse_priority(words[1], line.strip()) if len(words) == 2 else None
    return {"host": words[0], "priority": priority}


def parse_option(text: str) -> dict:
    """One hop as the console takes it, ``host[:port][/priority]`` (``/pri=N`` as on the ESA)."""
    value = text.strip()
    priority = None
    if value != DEV_NULL and "/" in value:
        value, _, priority_text = value.rpartition("/")
        priority = parse_priority(priority_text, text)
    validate_host_entry(value)
    return {"host": value, "priority": priority}


def host_problems(hosts: list[dict]) -> list[str]:
    """What is wrong with a route's list of hops as a whole."""
    if not hosts:
        return ["Give at least one destination host (or USEDNS, or /dev/null)"]
    names = [hop["host"] for hop in hosts]
    if DEV_NULL in names and len(names) > 1:
        return ["/dev/null drops the mail: it cannot be combined with other destination hosts"]
    repeated = sorted({name for name in names if names.count(name) > 1})
    return [f"The destination host {name} is listed twice" for name in repeated]


# --- the <smtp_routes> section -------------------------------------------------------


def _read() -> list[Item]:
    return [
        {"domain": route.domain, "destination_host": [dict(hop) for hop in route.hosts]}
        for route in SmtpRoute.objects.all()
    ]


def _write(items: list[Item]) -> None:
    SmtpRoute.objects.all().delete()
    SmtpRoute.objects.bulk_create(
        SmtpRoute(
            domain=item["domain"],
            hosts=[{"host": hop["host"], "priority": hop["priority"]} for hop in item["destination_host"]],
        )
        for item in items
    )


def _clean(item: Item) -> list[tuple[str | None, str]]:
    return [(None, problem) for problem in host_problems(item["destination_host"])]


def register_section() -> None:
    registry.register(
        Section(
            tag="smtp_routes",
            title="SMTP Routes",
            heading="Network Configuration",
            position=13,
            item_tag="smtp_route",
            key="domain",
            fields=(
                Field("domain", "Receiving Domain", validate=validate_domain),
                Field(
                    "destination_host",
                    "Destination Hosts",
                    Kind.ITEMS,
                    children=(
                        Field("host", "Host", text=True, validate=validate_host_entry),
                        Field(
                            "priority",
                            "Priority",
                            Kind.INT,
                            default=None,
                            minimum=PRIORITY_RANGE[0],
                            maximum=PRIORITY_RANGE[1],
                            attribute=True,
                        ),
                    ),
                    child_key="host",
                ),
            ),
            read=_read,
            write=_write,
            clean_item=_clean,
        )
    )


# --- what delivery asks ----------------------------------------------------------------


def candidate_domains(domain: str) -> list[str]:
    """The route names that could apply to ``domain`` (or ``user@domain``), most specific first."""
    name = canonical_domain(domain.strip().rpartition("@")[2])
    if name == DEFAULT_ROUTE or name.startswith("."):
        raise ValueError(f"{domain!r} is not a domain mail is sent to: give example.com or user@example.com")
    labels = name.split(".")
    return [name] + ["." + ".".join(labels[i:]) for i in range(1, len(labels))] + [DEFAULT_ROUTE]


def ordered_hosts(hosts: list[dict]) -> list[str]:
    """The hops by priority, lower first (none given counts as 0), ties in the order given."""
    return [hop["host"] for hop in sorted(hosts, key=lambda hop: hop["priority"] or 0)]


_index_cache: dict[str, tuple[object, dict[str, list[dict]]]] = {}


def _index(items: list[Item]) -> dict[str, list[dict]]:
    """Domain → hops of a configuration's routes, built once per configuration."""
    cached = _index_cache.get("routes")
    if cached is not None and cached[0] is items:
        return cached[1]
    index = {item["domain"]: item["destination_host"] for item in items}
    _index_cache["routes"] = (items, index)
    return index


def route_for(domain: str, config: Config | None = None) -> list[str] | None:
    """The destination hosts for mail to ``domain`` in priority order; None: no route, use MX.

    Reads the running configuration by default, so an uncommitted route changes nothing.
    """
    if config is None:
        config = workflow.running_config()
    index = _index(config.get("smtp_routes", []))
    for name in candidate_domains(domain):
        if name in index:
            return ordered_hosts(index[name])
    return None


def candidate_route(domain: str) -> SmtpRoute | None:
    """The candidate row that applies to ``domain`` (one indexed query), as the console shows it."""
    names = candidate_domains(domain)
    found = {route.domain: route for route in SmtpRoute.objects.filter(domain__in=names)}
    return next((found[name] for name in names if name in found), None)


# --- what an administrator does (inside workflow.submit) ----------------------------------


def get(domain: str) -> SmtpRoute:
    try:
        name = canonical_domain(domain)
    except ValueError as exc:
        raise RouteRefused(str(exc)) from None
    route = SmtpRoute.objects.filter(domain=name).first()
    if route is None:
        raise RouteRefused(f"There is no SMTP route for {name}")
    return route


def _checked_hosts(hosts: list[dict]) -> list[dict]:
    hosts = [{"host": hop["host"].strip(), "priority": hop.get("priority")} for hop in hosts]
    for hop in hosts:
        try:
            validate_host_entry(hop["host"])
            if hop["priority"] is not None:
                parse_priority(str(hop["priority"]), hop["host"])
        except ValueError as exc:
            raise RouteRefused(str(exc)) from None
    problems = host_problems(hosts)
    if problems:
        raise RouteRefused(problems[0])
    return hosts


def create(domain: str, hosts: list[dict]) -> None:
    try:
        name = canonical_domain(domain)
    except ValueError as exc:
        raise RouteRefused(str(exc)) from None
    if SmtpRoute.objects.filter(domain=name).exists():
        if name == DEFAULT_ROUTE:
            raise RouteRefused("There is already a default route set.")
        raise RouteRefused(f"The value {name} is already in the routing table.")
    SmtpRoute.objects.create(domain=name, hosts=_checked_hosts(hosts))


def edit(domain: str, hosts: list[dict]) -> None:
    """Replace the hops of a route."""
    route = get(domain)
    route.hosts = _checked_hosts(hosts)
    route.save()


def delete(domain: str) -> None:
    get(domain).delete()
