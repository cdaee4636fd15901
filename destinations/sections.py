"""The ``<destination_controls>``, ``<delivery>``, ``<url_filtering>``, ``<ldap>`` and ``<ldap_servers>`` sections.

Each certificate field names a ``<certificate>`` (``references="certificates"``), so
the workflow checks the name at commit and load, Network > Certificates lists the
use, and the Demo warning at commit names it, without code here.

``<destination_controls>`` holds the global settings and, as a ``Kind.ITEMS`` field,
one ``<destination>`` per entry of the table (``destinations.entries``): the parser
runs each child element's validator, and the diff shows each entry as an object.
"""

from __future__ import annotations

from appliance.config import checks, levels
from appliance.config.sections import Config, Field, Item, Kind, Section, registry
from appliance.validators import choice_validator, validate_object_name
from destinations import delivery_settings, entries
from destinations.models import (
    DEFAULT_DESTINATION,
    DELIVERY_DEFAULTS,
    DELIVERY_LIMITS,
    LDAPS_PORT,
    LIMITS,
    DeliverySettings,
    DestinationControls,
    IpPreference,
    LdapServer,
    LdapSettings,
    LimitsApplyTo,
    TlsSupport,
    UrlFiltering,
)
from destinations.validators import (
    validate_bind_dn,
    validate_destination_name,
    validate_dn,
    validate_endpoint,
    validate_host,
)

# --- <destination_controls> ----------------------------------------------------

# Tag → model attribute: the global settings. The entries are the <destination> items.
DESTINATION_CONTROLS = {
    "certificate_name": "certificate_name",
    "send_tls_required_alert": "send_tls_required_alert",
}


def _label(choices):
    return lambda value: choices(value).label if value in choices.values else str(value)


def _limit(tag: str, label: str, attribute: str) -> Field:
    low, high = LIMITS[attribute]
    return Field(tag, label, Kind.INT, default=None, minimum=low, maximum=high)


DESTINATION = Field(
    "destination",
    "Destination",
    Kind.ITEMS,
    child_key="destination_name",
    children=(
        Field("destination_name", "Destination", validate=validate_destination_name),
        Field(
            "tls",
            "TLS Support",
            default=None,
            validate=choice_validator(TlsSupport),
            summarize=_label(TlsSupport),
        ),
        Field(
            "ip_sort_pref",
            "IP Address Preference",
            default=None,
            validate=choice_validator(IpPreference),
            summarize=_label(IpPreference),
        ),
        _limit("max_host_concurrency", "Concurrent Connections", "max_connections"),
        _limit(
            "max_messages_per_connection", "Maximum Messages Per Connection", "max_messages_per_connection"
        ),
        _limit("max_recipients_per_minute", "Recipients per Minute", "max_recipients_per_minute"),
        Field(
            "limits_apply_to",
            "Apply Limits Per Destination",
            default=None,
            validate=choice_validator(LimitsApplyTo),
            summarize=_label(LimitsApplyTo),
        ),
    ),
)


def _read_destination_controls(level):
    [item] = _item(DestinationControls.load(level), DESTINATION_CONTROLS)
    item["destination"] = entries.read_items(level)
    return [item]


def _write_destination_controls(items, level):
    _update(DestinationControls.objects.at(level), DESTINATION_CONTROLS, items)
    entries.replace_table(level, [entries.from_item(child) for child in items[0]["destination"]])


def _clean_destination_controls(item):
    """The Default entry cannot say ``<tls>default</tls>`` (a missing element takes the shipped value)."""
    for child in item["destination"]:
        if child["destination_name"] == DEFAULT_DESTINATION and child["tls"] == TlsSupport.DEFAULT:
            return [
                (
                    "destination",
                    "'Default' has <tls>default</tls>: the Default entry is what 'default' refers to; "
                    "give none, preferred, required, preferred_verify or required_verify",
                )
            ]
    return []


def _item(row, fields: dict[str, str]) -> list[Item]:
    """A section of settings as its one item: the columns of its single row (tag → attribute)."""
    return [{tag: getattr(row, attribute) for tag, attribute in fields.items()}]


def _update(rows, fields: dict[str, str], items: list[Item]) -> None:
    """The single row of ``rows`` (a model's, or a level's: ``objects.at(level)``) takes the item."""
    [item] = items
    rows.update_or_create(defaults={attribute: item[tag] for tag, attribute in fields.items()})


# --- <delivery> ------------------------------------------------------------------


def _delivery_section() -> Section:
    """Network > Mail Delivery: one item; the interface is an ``<interface>``'s name, empty for Auto."""
    labels = delivery_settings.LABELS
    numbers = tuple(
        Field(
            tag,
            labels[tag],
            Kind.INT,
            default=DELIVERY_DEFAULTS[tag],
            minimum=low,
            maximum=high,
            summarize=delivery_settings.seconds_text if tag in delivery_settings.SECONDS else None,
        )
        for tag, (low, high) in DELIVERY_LIMITS.items()
    )
    return Section(
        tag="delivery",
        title="Mail Delivery",
        heading="Network Configuration",
        position=14,  # right after <smtp_routes>
        fields=(
            Field(
                delivery_settings.INTERFACE,
                labels[delivery_settings.INTERFACE],
                default="",
                references="interfaces",
            ),
            *numbers,
        ),
        read=lambda: _item(DeliverySettings.load(), delivery_settings.FIELDS),
        write=lambda items: _update(DeliverySettings.objects, delivery_settings.FIELDS, items),
        clean_item=delivery_settings.clean_item,
    )


# --- <url_filtering> -----------------------------------------------------------

URL_FILTERING = {
    "enabled": "enabled",
    "endpoint": "endpoint",
    "client_certificate_name": "client_certificate_name",
}


def url_filtering_endpoint(config: Config) -> list[str]:
    """URL Filtering cannot be on without a Web Security Services endpoint."""
    [item] = config.get("url_filtering") or [{"enabled": False}]
    if item["enabled"] and not item.get("endpoint"):
        return ["URL Filtering is enabled but has no Web Security Services endpoint (host:port)"]
    return []


# --- <ldap> and <ldap_servers> -------------------------------------------------

LDAP = {"certificate_name": "certificate_name"}

LDAP_SERVER = {
    "ldap_server_name": "name",
    "hostname": "host",
    "port": "port",
    "use_ssl": "use_ssl",
    "bind_dn": "bind_dn",
    "bind_password": "bind_password_sealed",
    "base_dn": "base_dn",
}


def _read_ldap_servers(level):
    return [
        {tag: getattr(row, attribute) for tag, attribute in LDAP_SERVER.items()}
        for row in LdapServer.objects.at(level)
    ]


def _write_ldap_servers(items, level):
    LdapServer.objects.at(level).delete()
    LdapServer.objects.at(level).bulk_create(
        LdapServer(**{attribute: item[tag] for tag, attribute in LDAP_SERVER.items()}) for item in items
    )


def _clean_ldap_server(item):
    if item["bind_password"] and not item["bind_dn"]:
        return [("bind_dn", "is empty, but a bind password is set: give the DN to bind as, or no password")]
    return []


def register_sections():
    registry.register(
        Section(
            tag="destination_controls",
            title="Destination Controls",
            heading="Mail Policies",
            position=60,
            fields=(
                Field(
                    "certificate_name",
                    "Certificate for outgoing TLS",
                    default="",
                    references="certificates",
                ),
                Field(
                    "send_tls_required_alert",
                    "Send an alert when a required TLS connection fails",
                    Kind.BOOL,
                    default=False,
                ),
                DESTINATION,
            ),
            read=_read_destination_controls,
            read_top=lambda level: _item(DestinationControls.load(level), DESTINATION_CONTROLS),
            write=_write_destination_controls,
            clean_item=_clean_destination_controls,
        )
    )
    registry.register(
        Section(
            tag="url_filtering",
            title="URL Filtering",
            heading="Security Services",
            position=70,
            fields=(
                Field("enabled", "URL Category and Reputation Filters", Kind.BOOL, default=False),
                Field("endpoint", "Web Security Services endpoint", default="", validate=validate_endpoint),
                Field(
                    "client_certificate_name",
                    "Client certificate",
                    default="",
                    references="certificates",
                ),
            ),
            read=lambda: _item(UrlFiltering.load(), URL_FILTERING),
            write=lambda items: _update(UrlFiltering.objects, URL_FILTERING, items),
        )
    )
    registry.register(
        Section(
            tag="ldap",
            title="LDAP Global Settings",
            heading="LDAP",
            position=80,
            fields=(Field("certificate_name", "Certificate", default="", references="certificates"),),
            read=lambda level: _item(LdapSettings.load(level), LDAP),
            write=lambda items, level: _update(LdapSettings.objects.at(level), LDAP, items),
        )
    )
    registry.register(
        Section(
            tag="ldap_servers",
            title="LDAP Server Profiles",
            heading="LDAP",
            position=81,
            item_tag="ldap_server",
            key="ldap_server_name",
            fields=(
                Field("ldap_server_name", "Name", validate=validate_object_name),
                Field("hostname", "Host Name", validate=validate_host),
                Field("port", "Port", Kind.INT, default=LDAPS_PORT, minimum=1, maximum=65535),
                Field("use_ssl", "Use SSL", Kind.BOOL, default=True),
                Field("bind_dn", "Bind DN", default="", validate=validate_bind_dn),
                Field("bind_password", "Bind password", Kind.SECRET, default=""),
                Field("base_dn", "Base DN", default="", validate=validate_dn),
            ),
            read=_read_ldap_servers,
            write=_write_ldap_servers,
            clean_item=_clean_ldap_server,
        )
    )
    registry.register(_delivery_section())
    registry.register_feature(
        levels.Feature("destination_controls", "Destination Controls", ("destination_controls",))
    )
    registry.register_feature(levels.Feature("ldap", "LDAP", ("ldap", "ldap_servers")))
    checks.register(url_filtering_endpoint)
