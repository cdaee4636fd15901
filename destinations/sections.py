"""The ``<destination_controls>``, ``<url_filtering>``, ``<ldap>`` and ``<ldap_servers>`` sections.

Each certificate field names a ``<certificate>`` (``references="certificates"``), so
the workflow checks the name at commit and load, Network > Certificates lists the
use, and the Demo warning at commit names it, without code here.
"""

from __future__ import annotations

from appliance.config import checks
from appliance.config.sections import Config, Field, Kind, Section, registry
from appliance.validators import validate_object_name
from destinations.models import LDAPS_PORT, DestinationControls, LdapServer, LdapSettings, UrlFiltering
from destinations.validators import validate_bind_dn, validate_dn, validate_endpoint, validate_host

# --- <destination_controls> ----------------------------------------------------

# Tag → model attribute. Per-destination entries will be a list section of their own
# (the registry's sections are flat); these are the global settings.
DESTINATION_CONTROLS = {
    "certificate_name": "certificate_name",
    "send_tls_required_alert": "send_tls_required_alert",
}


def _read_singleton(model, fields: dict[str, str]):
    row = model.load()
    return [{tag: getattr(row, attribute) for tag, attribute in fields.items()}]


def _writer(model, fields: dict[str, str]):
    def write(items):
        [item] = items
        model.objects.update_or_create(
            pk=1, defaults={attribute: item[tag] for tag, attribute in fields.items()}
        )

    return write


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


def _read_ldap_servers():
    return [
        {tag: getattr(row, attribute) for tag, attribute in LDAP_SERVER.items()}
        for row in LdapServer.objects.all()
    ]


def _write_ldap_servers(items):
    LdapServer.objects.all().delete()
    LdapServer.objects.bulk_create(
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
            ),
            read=lambda: _read_singleton(DestinationControls, DESTINATION_CONTROLS),
            write=_writer(DestinationControls, DESTINATION_CONTROLS),
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
            read=lambda: _read_singleton(UrlFiltering, URL_FILTERING),
            write=_writer(UrlFiltering, URL_FILTERING),
        )
    )
    registry.register(
        Section(
            tag="ldap",
            title="LDAP Global Settings",
            heading="LDAP",
            position=80,
            fields=(Field("certificate_name", "Certificate", default="", references="certificates"),),
            read=lambda: _read_singleton(LdapSettings, LDAP),
            write=_writer(LdapSettings, LDAP),
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
    checks.register(url_filtering_endpoint)
