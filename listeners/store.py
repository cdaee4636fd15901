"""What an administrator does to listeners, for Network > Listeners and ``listenerconfig`` alike.

Each operation acts as the administrator's mode sees the candidate (``mode``: its listeners, the
certificates they may offer, its machine's interfaces), changes candidate rows and is meant to run
inside ``workflow.submit``: nothing takes effect before a commit. A refusal is a
``ListenerRefused`` naming the problem; the submit's transaction rolls back
whatever was half done. Listeners' ports join the sockets every service
registers (``checks.register_sockets``): the same rule refuses a port here, on
Network > IP Interfaces and at commit, so a loaded file cannot slip past it.

Interfaces are read as their section reads them (``<interfaces>`` items), so
this module depends on the configuration's element names, not on their rows.
"""

from __future__ import annotations

import os

from appliance import interfaces
from appliance.bootstrap import MANAGEMENT_INTERFACE, BootstrapError
from appliance.config import checks, levels
from appliance.config.sections import Config, Item, registry
from appliance.validators import validate_object_name
from appliance.workflow import ChangeRefused, Outcome
from certificates import selectors
from certificates.models import Certificate
from certificates.store import DEMO_NAME
from listeners import hat, rat
from listeners.models import DEFAULT_LIMITS, PORT_MAX, PORT_MIN, Listener, limit_problem

DEFAULT_LISTENER = "IncomingMail"
DEFAULT_INTERFACE = MANAGEMENT_INTERFACE
DEFAULT_SMTP_PORT = "2525"
LISTENER_LIMITS = ("max_concurrency", "max_tls_concurrency")


class ListenerRefused(ChangeRefused):
    """A listener the appliance refuses; the message says which and why."""


# --- interfaces and sockets ----------------------------------------------------------


def listener_sockets(config: Config) -> list[checks.SocketUse]:
    """The address and port of each listener, for the check that no two services share one."""
    items = config.get("interfaces", [])
    sockets = []
    for listener in config.get("listeners", []):
        interface = interfaces.named(listener["interface_name"], items)
        if interface is not None:  # else the reference check reports the unknown interface
            sockets.append((interface["ip"], listener["port"], f"listener '{listener['listener_name']}'"))
    return sockets


def interface_choices(mode: levels.Mode) -> list[tuple[str, str]]:
    """The candidate interfaces, labelled with their address and hostname."""
    return [
        (item["interface_name"], f"{item['interface_name']} ({item['ip']}: {item['interface_hostname']})")
        for item in interfaces.candidate_items(mode)
    ]


# --- reading -----------------------------------------------------------------------


def get(level: str, name: str) -> Listener:
    listener = Listener.objects.at(level).filter(name=name).first()
    if listener is None:
        raise ListenerRefused(f"There is no listener named '{name}'")
    return listener


def advice(mode: levels.Mode, listener: Listener, items: list[Item]) -> list[str]:
    """What to know about the listener's certificate: expired, still waiting for its CA, or not
    covering the hostname of its interface among ``items`` (the name clients connect to)."""
    if not listener.certificate_name:
        return []
    interface = interfaces.named(listener.interface_name, items)
    hostnames = [interface["interface_hostname"]] if interface else []
    return selectors.warnings_for(mode.seen("certificates"), listener.certificate_name, hostnames)


# --- checking and changing ---------------------------------------------------------


def _check_name(level: str, name: str) -> None:
    try:
        validate_object_name(name)
    except ValueError as exc:
        raise ListenerRefused(f"The listener name {exc}") from None
    if Listener.objects.at(level).filter(name=name).exists():
        raise ListenerRefused(f"A listener named '{name}' already exists")


def _check(mode: levels.Mode, listener: Listener, items: list[Item]) -> None:
    """Each setting of one listener, against the candidate's interfaces and certificates."""
    if listener.listener_type not in Listener.Type.values:
        raise ListenerRefused(
            f"The type of listener must be {' or '.join(Listener.Type.values)}, not {listener.listener_type!r}"
        )
    if interfaces.named(listener.interface_name, items) is None:
        raise ListenerRefused(f"There is no interface named '{listener.interface_name}'")
    if not PORT_MIN <= listener.port <= PORT_MAX:
        raise ListenerRefused(f"The port must be between {PORT_MIN} and {PORT_MAX}, not {listener.port}")
    for tag in LISTENER_LIMITS:
        if problem := limit_problem(tag, getattr(listener, tag)):
            raise ListenerRefused(problem)
    certificates = Certificate.objects.at(mode.seen("certificates"))
    if listener.certificate_name and not certificates.filter(name=listener.certificate_name).exists():
        raise ListenerRefused(f"There is no certificate named '{listener.certificate_name}'")


def _save(mode: levels.Mode, listener: Listener) -> Outcome:
    """Check, save, then refuse if its address and port are another service's (the submit rolls back)."""
    items = interfaces.candidate_items(mode)
    _check(mode, listener, items)
    conflicts_before = checks.socket_conflicts(registry.candidate())
    listener.save()
    conflicts = checks.new_socket_conflicts(conflicts_before)
    if conflicts:
        raise ListenerRefused("The port is in use: " + "; ".join(conflicts))
    return Outcome(warnings=advice(mode, listener, items))


def create(
    mode: levels.Mode,
    name: str,
    listener_type: str,
    interface_name: str,
    port: int,
    certificate_name: str = "",
    *,
    max_concurrency: int = DEFAULT_LIMITS["max_concurrency"],
    max_tls_concurrency: int = DEFAULT_LIMITS["max_tls_concurrency"],
) -> Outcome:
    """Add Listener, with the predefined mail flow policies and HAT of its type; the outcome warns
    about the chosen certificate."""
    level = mode.seen("listeners")
    _check_name(level, name)
    listener = Listener(
        level=level,
        name=name,
        listener_type=listener_type,
        interface_name=interface_name,
        port=port,
        certificate_name=certificate_name,
        max_concurrency=max_concurrency,
        max_tls_concurrency=max_tls_concurrency,
    )
    outcome = _save(mode, listener)
    [system] = registry.read("hostname")
    _add_tables(listener, system["hostname"])
    return outcome


def _add_tables(listener: Listener, hostname: str) -> None:
    """A new listener's predefined policies and HAT, and a public one's RAT for the hostname's domain."""
    shipped_rat = rat.shipped(listener.listener_type, hostname)
    hat.write_policies_and_hat(
        [(listener, {"listener_type": listener.listener_type, "rat_entry": shipped_rat})]
    )


def edit(
    mode: levels.Mode,
    name: str,
    *,
    new_name: str | None = None,
    listener_type: str | None = None,
    interface_name: str | None = None,
    port: int | None = None,
    certificate_name: str | None = None,
    max_concurrency: int | None = None,
    max_tls_concurrency: int | None = None,
) -> Outcome:
    """Change the settings given (None: keep); ``certificate_name=""`` chooses no certificate."""
    listener = get(mode.seen("listeners"), name)
    if new_name is not None and new_name != name:
        _check_name(listener.level, new_name)
        listener.name = new_name
    changes = {
        "listener_type": listener_type,
        "interface_name": interface_name,
        "port": port,
        "certificate_name": certificate_name,
        "max_concurrency": max_concurrency,
        "max_tls_concurrency": max_tls_concurrency,
    }
    for attribute, value in changes.items():
        if value is not None:
            setattr(listener, attribute, value)
    return _save(mode, listener)


def set_certificate(mode: levels.Mode, name: str, certificate_name: str) -> Outcome:
    """listenerconfig EDIT > CERTIFICATE: the certificate the listener offers for TLS."""
    return edit(mode, name, certificate_name=certificate_name)


def delete(level: str, name: str) -> None:
    get(level, name).delete()


# --- first start ---------------------------------------------------------------------


def create_default_listener(hostname: str) -> None:
    """The listener the appliance ships with: public, on Management, TLS-capable with Demo, as the ESA."""
    port = os.environ.get("APPLIANCE_SMTP_PORT", DEFAULT_SMTP_PORT)
    if not (port.isascii() and port.isdigit()) or not PORT_MIN <= int(port) <= PORT_MAX:
        raise BootstrapError(f"APPLIANCE_SMTP_PORT must be a port number, not {port!r}")
    listener, created = Listener.objects.at(levels.CLUSTER).update_or_create(
        name=DEFAULT_LISTENER,
        defaults={
            "listener_type": Listener.Type.PUBLIC,
            "interface_name": DEFAULT_INTERFACE,
            "port": int(port),
            "certificate_name": DEMO_NAME,
        },
    )
    if created:
        _add_tables(listener, hostname)
