"""Checks on a configuration as a whole: references between sections, and rules apps register.

Load and commit both run them, so a running configuration never names a
certificate or an interface that does not exist.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from appliance.config import levels
from appliance.config.sections import Config, references_in, registry
from appliance.config.xmlfile import Document

Check = Callable[[Config], list[str]]
_checks: list[Check] = []
_cluster_checks: list[Check] = []
_warnings: list[Check] = []


def register(check: Check) -> Check:
    """Register a rule on the configuration as each machine runs it; it returns its problems in the
    admin's words."""
    _checks.append(check)
    return check


def register_for_cluster(check: Check) -> Check:
    """Register a rule on the cluster's configuration as a whole: every level, every machine."""
    _cluster_checks.append(check)
    return check


def register_warning(check: Check) -> Check:
    """Register advice shown on commit that does not stop it (the demo certificate in use)."""
    _warnings.append(check)
    return check


Discard = Callable[[Config, Config], list[str]]
_discard_warnings: list[Discard] = []


def register_discard_warning(check: Discard) -> Discard:
    """Register what abandon or rollback must confirm first: ``check(current, target)`` → warnings."""
    _discard_warnings.append(check)
    return check


def discard_warnings(current: Config, target: Config) -> list[str]:
    return [warning for check in _discard_warnings for warning in check(current, target)]


SocketUse = tuple[str, int, str]  # address, port, and who uses it, in words
_socket_users: list[Callable[[Config], list[SocketUse]]] = []


def register_sockets(users: Callable[[Config], list[SocketUse]]) -> None:
    """Register what a section listens on, so no two services claim one address and port."""
    _socket_users.append(users)


def per_machine(check: Callable[[Config], list[str]], config: Config) -> list[str]:
    """``check`` on what each machine of ``config`` runs (its own IP interfaces): a problem every machine
    has is said once, one only some machines have names each of them."""
    machines = registry.machines(config)
    found = {machine: check(registry.for_machine(config, machine)) for machine in machines}
    everywhere = [problem for problem in found[machines[0]] if all(problem in found[m] for m in machines)]
    return everywhere + [
        f"machine '{machine}': {problem}"
        for machine in machines
        for problem in found[machine]
        if problem not in everywhere
    ]


def socket_conflicts(config: Config) -> list[str]:
    """Two services on one address and port of one machine."""
    return per_machine(_machine_socket_conflicts, config)


def _machine_socket_conflicts(config: Config) -> list[str]:
    """Two services on one address and port; an unspecified address (0.0.0.0, ::) takes every address."""
    claimed: dict[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int], str] = {}
    problems = []
    for users in _socket_users:
        for address, port, who in users(config):
            ip = ipaddress.ip_address(address)
            clash = next(
                (
                    (other, owner)
                    for (other, other_port), owner in claimed.items()
                    if other_port == port
                    and other.version == ip.version
                    and (other == ip or other.is_unspecified or ip.is_unspecified)
                ),
                None,
            )
            if clash:
                problems.append(f"{clash[1]} and {who} both use {address} port {port}")
            else:
                claimed[ip, port] = who
    return problems


def new_socket_conflicts(before: list[str]) -> list[str]:
    """Conflicts the candidate has now that ``before`` (its conflicts earlier) did not: a change's own."""
    return [conflict for conflict in socket_conflicts(registry.candidate()) if conflict not in before]


def run_registered(config: Config) -> list[str]:
    return (
        [problem for check in _cluster_checks for problem in check(config)]
        + socket_conflicts(config)
        + per_machine(lambda seen: [problem for check in _checks for problem in check(seen)], config)
    )


def warnings(config: Config) -> list[str]:
    return per_machine(lambda seen: [warning for check in _warnings for warning in check(seen)], config)


def reference_problems(config: Config, document: Document | None = None) -> list[str]:
    """Every field naming an item that ``config`` does not hold, entries within entries included.

    Values that came from ``document`` are reported by line and element. The cluster's settings must
    hold together on their own; with group and machine settings, so must what each machine runs.
    """
    if not any(levels.split(config_key)[1] for config_key in config):
        return _level_reference_problems(config, document)
    # Each machine's own items (IP interfaces) may name what only their machine's level holds.
    cluster_level = {
        key: items for key, items in config.items() if not registry.sections[levels.split(key)[0]].scope
    }
    problems = _level_reference_problems(cluster_level, document)
    found = per_machine(_level_reference_problems, config)
    return problems + [problem for problem in found if problem not in problems]


def _level_reference_problems(config: Config, document: Document | None = None) -> list[str]:
    problems = []
    names = {
        section.tag: {item[section.key] for item in config[section.tag]}
        for section in registry.ordered()
        if section.key and section.tag in config
    }
    for section in registry.ordered():
        for index, item in enumerate(config.get(section.tag, [])):
            for owner, f, name in references_in(section, [item]):
                if f.references not in names or name in names[f.references]:
                    continue
                what = registry.get(f.references).item_tag.replace("_", " ")
                line = None
                if document is not None and section.tag in document.config and f in section.fields:
                    line = document.line(section.tag, index, f.tag)
                if line:
                    problems.append(f"line {line}: <{f.tag}> names {what} '{name}', which does not exist")
                else:
                    problems.append(f"{owner} uses {what} '{name}', which does not exist")
    return problems
