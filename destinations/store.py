"""What an administrator changes in Destination Controls, LDAP and URL Filtering, for pages and console alike.

Each operation acts on one level's rows (``level``) or, when it names a certificate too, as the
administrator's mode sees the candidate (``mode``); it changes candidate rows and is meant to run inside
``workflow.submit``; a refusal is a ``ChangeRefused`` in the administrator's
words, and the submit's transaction leaves nothing half-saved. A certificate
chosen for a service comes back with the selector's advice as warnings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from appliance import vault
from appliance.config import levels
from appliance.validators import validate_object_name
from appliance.workflow import ChangeRefused, Outcome
from certificates import selectors
from certificates import store as certificate_store
from destinations import entries, tablefile
from destinations.entries import Entry
from destinations.models import (
    DEFAULT_DESTINATION,
    LDAPS_PORT,
    Destination,
    DestinationControls,
    LdapServer,
    LdapSettings,
    TlsSupport,
    UrlFiltering,
)
from destinations.validators import (
    canonical_destination,
    parse_endpoint,
    validate_bind_dn,
    validate_dn,
    validate_host,
    validate_port,
)


def _check(validate: Callable[[object], None], value, what: str) -> None:
    try:
        validate(value)
    except ValueError as exc:
        raise ChangeRefused(f"{what}: {exc}") from None


def _certificate(mode: levels.Mode, name: str, outcome: Outcome) -> str:
    """An existing certificate's name (or empty for none), with the advice for choosing it."""
    if name:
        level = mode.seen("certificates")
        certificate_store.get(level, name)  # refuses "There is no certificate named 'X'"
        outcome.warnings += selectors.warnings_for(level, name, [])
    return name


# --- Destination Controls ------------------------------------------------------


def set_destination_controls(
    mode: levels.Mode, certificate_name: str, send_tls_required_alert: bool
) -> Outcome:
    """Edit Global Settings (``destconfig setup``): the certificate for all outgoing TLS and the alert."""
    outcome = Outcome()
    settings = DestinationControls.load(mode.seen("destination_controls"))
    settings.certificate_name = _certificate(mode, certificate_name, outcome)
    settings.send_tls_required_alert = send_tls_required_alert
    settings.save()
    return outcome


def _destination_name(text: str) -> str:
    try:
        return canonical_destination(text)
    except ValueError as exc:
        raise ChangeRefused(str(exc)) from None


def get_destination(level: str, name: str) -> Destination:
    """An entry of ``level``'s table by name as typed (``Example.com``, ``[192.0.2.1]``, ``default``)."""
    canonical = _destination_name(name)
    if canonical == DEFAULT_DESTINATION:
        return entries.default_row(level)
    row = Destination.objects.at(level).filter(name=canonical).first()
    if row is None:
        raise ChangeRefused(f"'{name}' was not found in the destination control table")
    return row


def save_destination(level: str, entry: Entry, original: str | None = None) -> Outcome:
    """Add an entry (``original`` None) or replace entry ``original``, which may be renamed (not the Default)."""
    entry.name = _destination_name(entry.name)
    row = get_destination(level, original) if original is not None else Destination(level=level)
    if row.name == DEFAULT_DESTINATION and not entry.is_default:
        raise ChangeRefused("The Default entry cannot be renamed: it is the entry of every other destination")
    if entry.is_default and row.name != DEFAULT_DESTINATION:
        raise ChangeRefused("The Default entry always exists: edit it instead of adding another")
    if entry.name != row.name and Destination.objects.at(level).filter(name=entry.name).exists():
        raise ChangeRefused(f"The destination '{entry.name}' is already in the table")
    if found := entries.problems(entry):
        raise ChangeRefused(found[0], found[1:])
    for attribute, value in vars(entry).items():
        setattr(row, attribute, value)
    row.save()
    outcome = Outcome()
    if entry.is_default and entry.tls == TlsSupport.NONE:
        outcome.warnings.append(
            "TLS Support of the Default entry is None: mail to every destination without an entry "
            "of its own crosses the network in clear text"
        )
    return outcome


def delete_destinations(level: str, names: list[str]) -> None:
    """Delete entries (the Default entry cannot be deleted); each must exist."""
    rows = [get_destination(level, name) for name in names]
    if any(row.name == DEFAULT_DESTINATION for row in rows):
        raise ChangeRefused(
            "The Default entry cannot be deleted: it holds the settings of every destination "
            "without an entry of its own"
        )
    Destination.objects.at(level).filter(pk__in=[row.pk for row in rows]).delete()


def import_destinations(level: str, text: str) -> Outcome:
    """Import Table: the text replaces the whole table; a bad line refuses it all, by line number.

    Without a Default line the Default entry keeps its settings.
    """
    try:
        table = tablefile.parse_table(text)
    except tablefile.TableError as error:
        raise ChangeRefused("The destination table cannot be imported", error.problems) from None
    outcome = Outcome()
    if not any(entry.is_default for entry in table):
        table.append(Entry.of(entries.default_row(level)))
        outcome.notes.append("The file has no Default line: the Default entry keeps its settings.")
    entries.replace_table(level, table)
    outcome.notes.insert(0, f"Imported {len(table):,} entries, the Default entry included.")
    return outcome


def export_destinations(level: str) -> str:
    """Export Table: the candidate table of ``level`` as text (``destinations.tablefile``)."""
    entries.default_row(level)
    return tablefile.format_table([Entry.of(row) for row in Destination.objects.at(level)])


# --- LDAP ------------------------------------------------------------------------


def set_ldap_certificate(mode: levels.Mode, certificate_name: str) -> Outcome:
    """LDAP Global Settings: the client certificate presented on every LDAPS connection."""
    outcome = Outcome()
    settings = LdapSettings.load(mode.seen("ldap"))
    settings.certificate_name = _certificate(mode, certificate_name, outcome)
    settings.save()
    return outcome


@dataclass
class ServerFields:
    """An LDAP server profile as a form or the console gives it; ``bind_password`` None keeps the stored one."""

    name: str
    host: str
    port: int = LDAPS_PORT
    use_ssl: bool = True
    bind_dn: str = ""
    bind_password: str | None = None
    base_dn: str = ""


def get_ldap_server(level: str, name: str) -> LdapServer:
    server = LdapServer.objects.at(level).filter(name=name).first()
    if server is None:
        raise ChangeRefused(f"There is no LDAP server profile named '{name}'")
    return server


def save_ldap_server(level: str, fields: ServerFields, original: str | None = None) -> Outcome:
    """Add a profile (``original`` None) or replace profile ``original`` (which may be renamed)."""
    _check(validate_object_name, fields.name, "Server profile name")
    _check(validate_host, fields.host, "Host Name")
    try:
        validate_port(fields.port)
    except ValueError as exc:
        raise ChangeRefused(str(exc).capitalize()) from None
    if fields.bind_dn:
        _check(validate_bind_dn, fields.bind_dn, "Bind DN")
    if fields.base_dn:
        _check(validate_dn, fields.base_dn, "Base DN")
    server = get_ldap_server(level, original) if original is not None else LdapServer(level=level)
    if fields.name != original and LdapServer.objects.at(level).filter(name=fields.name).exists():
        raise ChangeRefused(f"An LDAP server profile named '{fields.name}' already exists")
    if fields.bind_password and not fields.bind_dn:
        raise ChangeRefused("A bind password needs a Bind DN: give the DN to bind as, or no password")
    if fields.bind_password is not None:
        server.bind_password_sealed = vault.seal(fields.bind_password) if fields.bind_password else ""
    if not fields.bind_dn:
        server.bind_password_sealed = ""  # an anonymous bind has no password
    server.name, server.host, server.port = fields.name, fields.host, fields.port
    server.use_ssl, server.bind_dn, server.base_dn = fields.use_ssl, fields.bind_dn, fields.base_dn
    server.save()
    outcome = Outcome()
    if not fields.use_ssl:
        outcome.warnings.append(
            f"'{fields.name}' does not use SSL: the bind password crosses the network in clear text "
            "and no client certificate is presented"
        )
    return outcome


def delete_ldap_server(level: str, name: str) -> None:
    get_ldap_server(level, name).delete()


# --- URL Filtering -------------------------------------------------------------


def set_url_filtering(
    mode: levels.Mode, enabled: bool, endpoint: str, client_certificate_name: str
) -> Outcome:
    """URL Filtering (``websecurityconfig``): on/off, the Web Security Services endpoint, the client certificate."""
    endpoint = endpoint.strip()
    if endpoint:
        _check(parse_endpoint, endpoint, "Web Security Services endpoint")
    elif enabled:
        raise ChangeRefused("Give the Web Security Services endpoint (host:port) to enable URL Filtering")
    outcome = Outcome()
    settings = UrlFiltering.load()
    settings.enabled, settings.endpoint = enabled, endpoint
    settings.client_certificate_name = _certificate(mode, client_certificate_name, outcome)
    settings.save()
    return outcome
