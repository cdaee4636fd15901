"""Network > IP Interfaces and ``interfaceconfig``: adding, editing and deleting interfaces.

Runs inside ``workflow.submit``; a refusal is a ``ChangeRefused`` and the
submit's transaction leaves nothing behind.
"""

from __future__ import annotations

from appliance.config import checks, levels
from appliance.config.sections import Config, Item, registry
from appliance.models import Interface, this_machine
from appliance.sections import INTERFACE_FIELDS, interface_problems
from appliance.validators import validate_hostname, validate_ip_address, validate_object_name
from appliance.workflow import ChangeRefused, Outcome


def get(machine: str, name: str) -> Interface:
    interface = Interface.objects.of(machine).filter(name=name).first()
    if interface is None:
        raise ChangeRefused(f"There is no IP interface named '{name}'")
    return interface


def candidate_items(mode: levels.Mode) -> list[Item]:
    """The candidate IP interfaces of the machine ``mode`` sees, as ``<interface>`` items."""
    return registry.for_machine({"interfaces": registry.read("interfaces")}, this_machine(mode))["interfaces"]


def named(name: str, items: list[Item]) -> Item | None:
    """The interface called ``name`` among ``items`` (a configuration's ``<interface>`` items)."""
    return next((item for item in items if item["interface_name"] == name), None)


def users_of(mode: levels.Mode, name: str) -> list[str]:
    return registry.where_used("interfaces", mode).get(name, [])


def _validate(item: dict) -> None:
    for tag, check in (
        ("interface_name", validate_object_name),
        ("ip", validate_ip_address),
        ("interface_hostname", validate_hostname),
    ):
        try:
            check(item[tag])
        except ValueError as exc:
            raise ChangeRefused(f"The {tag.replace('_', ' ')} {exc}") from None
    if item["netmask"] is None or not 0 <= item["netmask"] <= 128:
        raise ChangeRefused(f"The netmask must be a prefix length from 0 to 128, not {item['netmask']}")
    for tag in ("httpd_port", "httpsd_port"):
        if item[tag] is not None and not 1 <= item[tag] <= 65535:
            service = "HTTP" if tag == "httpd_port" else "HTTPS"
            raise ChangeRefused(f"The {service} port must be between 1 and 65535, not {item[tag]}")
    problems = interface_problems(item)
    if problems:
        raise ChangeRefused("; ".join(f"<{tag}> {message}" for tag, message in problems))


def save(mode: levels.Mode, original: str | None, item: dict) -> Outcome:
    """Create (``original`` None) or replace an interface of the machine ``mode`` sees from a
    configuration item; check its sockets.

    Returns advice on its certificate (expired, waiting for its CA, not naming the hostname).
    """
    _validate(item)
    machine = this_machine(mode)
    conflicts_before = checks.socket_conflicts(registry.candidate())
    if original is None or original != item["interface_name"]:
        if Interface.objects.of(machine).filter(name=item["interface_name"]).exists():
            raise ChangeRefused(f"An IP interface named '{item['interface_name']}' already exists")
    if original is not None:
        existing = get(machine, original)
        users = users_of(mode, original)
        if original != item["interface_name"] and users:
            raise ChangeRefused(f"'{original}' cannot be renamed while {', '.join(users)} use it")
        existing.delete()
    # The machine's, unless the item names its machine (the interface being edited).
    fields = {attribute: item[tag] for tag, attribute in INTERFACE_FIELDS.items() if tag in item}
    Interface.every_machine.create(**{"machine": machine, **fields})
    conflicts = checks.new_socket_conflicts(conflicts_before)
    if conflicts:
        raise ChangeRefused("The port is in use: " + "; ".join(conflicts))
    if not item["certificate_name"]:
        return Outcome()
    advice = registry.sections["certificates"].advice
    return Outcome(
        warnings=advice(mode.seen("certificates"), item["certificate_name"], [item["interface_hostname"]])
    )


def delete(mode: levels.Mode, name: str) -> None:
    interface = get(this_machine(mode), name)
    users = users_of(mode, name)
    if users:
        raise ChangeRefused(f"'{name}' cannot be deleted while it is used by {', '.join(users)}")
    interface.delete()


def item_of(interface: Interface) -> dict:
    return {tag: getattr(interface, attribute) for tag, attribute in INTERFACE_FIELDS.items()}


def console_change(running: Config, candidate: Config, host: str, port: int) -> str:
    """The interface serving this browser, if the candidate changes how it is reached; else ''.

    Matched by the HTTPS port (and the address, when the browser used one); a
    change of address, port, certificate (or its content) or the console's SSL
    Configuration may cut the admin off.
    """

    def certificate(config, name):
        item = registry.item_named(config, "certificates", name)
        return item and (
            item["certificate_pem"].strip(),
            [pem.strip() for pem in item["intermediate_certificate"]],
        )

    gui = [f"gui_{name}" for name in ("tls_min", "tls_max", "ciphers")]
    ssl_changes = any(
        (running.get("ssl_config") or [{}])[0].get(f) != (candidate.get("ssl_config") or [{}])[0].get(f)
        for f in gui
    )
    for interface in running.get("interfaces", []):
        if interface["httpsd_port"] != port or host not in (
            interface["ip"],
            interface["interface_hostname"],
            "localhost",
        ):
            continue
        name = interface["interface_name"]
        if ssl_changes:
            return name
        after = registry.item_named(candidate, "interfaces", name)
        if after is None or any(
            after[tag] != interface[tag] for tag in ("ip", "httpsd_port", "certificate_name")
        ):
            return name
        if certificate(running, interface["certificate_name"]) != certificate(
            candidate, after["certificate_name"]
        ):
            return name
    return ""
