"""Connections the appliance makes outward: Destination Controls, LDAP, URL Filtering (candidate).

Each row is candidate configuration, read and written by ``destinations.sections``;
a commit turns it into a new configuration version. Certificates are named, as
in the configuration file; the workflow checks that the name exists.
"""

from __future__ import annotations

from django.db import models


class DestinationControls(models.Model):
    """Mail Policies > Destination Controls > Edit Global Settings: the single row.

    Per-destination entries (TLS Support, limits…) are a later issue's rows beside
    this one; these two settings are global on the ESA, "not a per-domain setting".
    """

    # The certificate presented on every outgoing TLS connection; empty: none.
    certificate_name = models.CharField(max_length=64, blank=True)
    send_tls_required_alert = models.BooleanField(default=False)

    class Meta:
        verbose_name = "destination controls global settings"
        verbose_name_plural = "destination controls global settings"

    def __str__(self):
        return "Destination Controls global settings"

    @classmethod
    def load(cls) -> DestinationControls:
        return cls.objects.get_or_create(pk=1)[0]


class LdapSettings(models.Model):
    """System Administration > LDAP > LDAP Global Settings: the single row."""

    # The client certificate presented on every LDAPS connection; empty: none.
    certificate_name = models.CharField(max_length=64, blank=True)

    class Meta:
        verbose_name = "LDAP global settings"
        verbose_name_plural = "LDAP global settings"

    def __str__(self):
        return "LDAP global settings"

    @classmethod
    def load(cls) -> LdapSettings:
        return cls.objects.get_or_create(pk=1)[0]


LDAPS_PORT = 636
LDAP_PORT = 389


class LdapServer(models.Model):
    """An LDAP server profile: where the appliance binds, as whom, and below which base DN."""

    name = models.CharField(max_length=64, unique=True)
    host = models.CharField(max_length=253)
    port = models.PositiveIntegerField(default=LDAPS_PORT)
    use_ssl = models.BooleanField(default=True)
    bind_dn = models.CharField(max_length=1024, blank=True)  # empty: anonymous bind
    # Sealed with the appliance key (appliance.vault); never shown.
    bind_password_sealed = models.TextField(blank=True)
    base_dn = models.CharField(max_length=1024, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "LDAP server profile"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(port__gte=1, port__lte=65535), name="ldap_server_port_range"
            ),
        ]

    def __str__(self):
        return self.name


class UrlFiltering(models.Model):
    """Security Services > URL Filtering: the single row."""

    enabled = models.BooleanField(default=False)
    # The Web Security Services endpoint as host:port ("[2001:db8::1]:443" for IPv6); empty: none.
    endpoint = models.CharField(max_length=300, blank=True)
    # The certificate for Web Security Services authentication; empty: none.
    client_certificate_name = models.CharField(max_length=64, blank=True)

    class Meta:
        verbose_name = "URL filtering settings"
        verbose_name_plural = "URL filtering settings"

    def __str__(self):
        return "URL Filtering"

    @classmethod
    def load(cls) -> UrlFiltering:
        return cls.objects.get_or_create(pk=1)[0]
