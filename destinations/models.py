"""Connections the appliance makes outward: Destination Controls, LDAP, URL Filtering (candidate).

Each row is candidate configuration, read and written by ``destinations.sections``;
a commit turns it into a new configuration version. Certificates are named, as
in the configuration file; the workflow checks that the name exists. The one
exception is ``TlsProbeRun``, a record of the TLS tests run, which no section reads.
"""

from __future__ import annotations

import ipaddress

from django.db import models, transaction
from django.utils import timezone

from appliance.config.candidate_levels import AtLevel, level_field


class DestinationControls(models.Model):
    """Mail Policies > Destination Controls > Edit Global Settings: the single row.

    The per-destination entries are ``Destination`` rows beside this one; these two
    settings are global on the ESA, "not a per-domain setting".
    """

    level = level_field()
    # The certificate presented on every outgoing TLS connection; empty: none.
    certificate_name = models.CharField(max_length=64, blank=True)
    send_tls_required_alert = models.BooleanField(default=False)

    every_level = models.Manager()
    objects = AtLevel("destination_controls")

    class Meta:
        default_manager_name = "every_level"
        constraints = [models.UniqueConstraint(fields=["level"], name="destination_controls_once_per_level")]
        verbose_name = "destination controls global settings"
        verbose_name_plural = "destination controls global settings"

    def __str__(self):
        return "Destination Controls global settings"

    @classmethod
    def load(cls, level: str) -> DestinationControls:
        return cls.objects.at(level).get_or_create()[0]


# Network > Mail Delivery: the ranges of its numbers (the configuration file's as well) and the
# shipped values. Times are seconds; the queue lifetime and the retry waits are those of the ESA's
# Default bounce profile (Maximum Time in Queue 72 hours, Initial / Maximum Time to Wait per Message).
DELIVERY_LIMITS = {
    "max_concurrency": (1, 10_000),
    "max_tls_concurrency": (1, 10_000),
    "max_queue_lifetime": (60, 3_000_000),
    "initial_retry": (60, 86_400),
    "max_retry_interval": (60, 86_400),
}
DELIVERY_DEFAULTS = {
    "max_concurrency": 500,
    "max_tls_concurrency": 100,
    "max_queue_lifetime": 259_200,
    "initial_retry": 60,
    "max_retry_interval": 3_600,
}


class DeliverySettings(models.Model):
    """Network > Mail Delivery (``deliveryconfig``): how the appliance delivers mail, system-wide; the single row.

    ``interface_name`` names the IP interface mail leaves from (its address is the source
    address, its hostname the EHLO name); empty is Auto: the address the operating system
    picks, with the appliance's hostname. A retry waits ``initial_retry`` seconds, each
    later one twice as long as the one before, at most ``max_retry_interval``; a message
    still not delivered after ``max_queue_lifetime`` seconds is bounced.
    """

    # By name, as in the configuration file; the workflow checks the reference. Empty: Auto.
    interface_name = models.CharField(max_length=64, blank=True)
    max_concurrency = models.PositiveIntegerField(default=DELIVERY_DEFAULTS["max_concurrency"])
    max_tls_concurrency = models.PositiveIntegerField(default=DELIVERY_DEFAULTS["max_tls_concurrency"])
    max_queue_lifetime = models.PositiveIntegerField(default=DELIVERY_DEFAULTS["max_queue_lifetime"])
    initial_retry = models.PositiveIntegerField(default=DELIVERY_DEFAULTS["initial_retry"])
    max_retry_interval = models.PositiveIntegerField(default=DELIVERY_DEFAULTS["max_retry_interval"])

    class Meta:
        verbose_name = "mail delivery settings"
        verbose_name_plural = "mail delivery settings"
        constraints = [
            *(
                models.CheckConstraint(
                    condition=models.Q(**{f"{name}__gte": low, f"{name}__lte": high}),
                    name=f"delivery_{name}_range",
                )
                for name, (low, high) in DELIVERY_LIMITS.items()
            ),
            models.CheckConstraint(
                condition=models.Q(max_retry_interval__gte=models.F("initial_retry")),
                name="delivery_retry_interval_not_below_initial",
            ),
        ]

    def __str__(self):
        return "Mail Delivery settings"

    @classmethod
    def load(cls) -> DeliverySettings:
        return cls.objects.get_or_create(pk=1)[0]


DEFAULT_DESTINATION = "Default"


class TlsSupport(models.TextChoices):
    """TLS Support of a destination (ESA-REFERENCE §4.2, §4.3); values as in ``<tls>``."""

    DEFAULT = "default", "Default"  # entries only: the Default entry's setting
    NONE = "none", "None"
    PREFERRED = "preferred", "Preferred"
    REQUIRED = "required", "Required"
    PREFERRED_VERIFY = "preferred_verify", "Preferred - Verify"
    REQUIRED_VERIFY = "required_verify", "Required - Verify"


class IpPreference(models.TextChoices):
    """IP Address Preference: which addresses of an MX host are tried first, or only (ESA ``ip_sort_pref``)."""

    IPV4_PREFERRED = "ipv4_preferred", "IPv4 Preferred"
    IPV6_PREFERRED = "ipv6_preferred", "IPv6 Preferred"
    IPV4_REQUIRED = "ipv4_required", "IPv4 Required"
    IPV6_REQUIRED = "ipv6_required", "IPv6 Required"


class LimitsApplyTo(models.TextChoices):
    """Apply Limits — Per Destination: one limit for the whole domain, or one per MX host address."""

    DOMAIN = "domain", "Entire Domain"
    MX_IP = "mx_ip", "Each Mail Exchanger (MX Record) IP address"


class Destination(models.Model):
    """One entry of the Destination Controls table: how mail to a domain, its subdomains or an IP is delivered.

    ``name`` is a domain (``example.com``), a subdomain form (``.example.com``: every host
    below example.com, not example.com itself), an IPv4/IPv6 address, or ``Default``: the
    entry for every destination without one of its own, which always exists. On other
    entries an empty (null) setting and ``tls == "default"`` take the Default entry's.
    """

    level = level_field()
    name = models.CharField(max_length=255)  # unique at its level: the index behind the lookup
    tls = models.CharField(max_length=20, choices=TlsSupport.choices, default=TlsSupport.DEFAULT)
    # Null, as for the numbers: the Default entry's setting (one meaning of "inherited" for every column).
    ip_preference = models.CharField(  # noqa: DJ001
        max_length=20, choices=IpPreference.choices, null=True, blank=True
    )
    max_connections = models.PositiveIntegerField(null=True, blank=True)
    max_messages_per_connection = models.PositiveIntegerField(null=True, blank=True)
    # Default entry: null is No Limit; other entries: null is the Default entry's.
    max_recipients_per_minute = models.PositiveIntegerField(null=True, blank=True)
    limits_apply_to = models.CharField(  # noqa: DJ001
        max_length=10, choices=LimitsApplyTo.choices, null=True, blank=True
    )

    every_level = models.Manager()
    objects = AtLevel("destination_controls")

    class Meta:
        ordering = ["name"]
        verbose_name = "destination controls entry"
        verbose_name_plural = "destination controls entries"
        default_manager_name = "every_level"
        constraints = [
            models.UniqueConstraint(fields=["level", "name"], name="destination_name_per_level"),
            models.CheckConstraint(
                condition=~models.Q(name=DEFAULT_DESTINATION, tls=TlsSupport.DEFAULT),
                name="destination_default_tls_not_default",
            ),
            models.CheckConstraint(
                condition=models.Q(max_connections__isnull=True)
                | models.Q(max_connections__gte=1, max_connections__lte=1000),
                name="destination_max_connections_range",
            ),
            models.CheckConstraint(
                condition=models.Q(max_messages_per_connection__isnull=True)
                | models.Q(max_messages_per_connection__gte=1, max_messages_per_connection__lte=1000),
                name="destination_max_messages_range",
            ),
            models.CheckConstraint(
                condition=models.Q(max_recipients_per_minute__isnull=True)
                | models.Q(max_recipients_per_minute__gte=1, max_recipients_per_minute__lte=1_000_000),
                name="destination_max_recipients_range",
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_DESTINATION

    @property
    def display_name(self) -> str:
        """As the ESA's table shows it: IP destinations in brackets (``[192.0.2.1]``)."""
        return f"[{self.name}]" if is_ip_name(self.name) else self.name


def is_ip_name(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


# What the Default entry ships with, and takes again when a loaded document leaves a setting out.
# The ESA ships TLS "No"; opportunistic TLS (Preferred) is the safer start, chosen on purpose.
SHIPPED_DEFAULT = {
    "tls": TlsSupport.PREFERRED,
    "ip_preference": IpPreference.IPV6_PREFERRED,
    "max_connections": 50,
    "max_messages_per_connection": 50,
    "max_recipients_per_minute": None,  # No Limit
    "limits_apply_to": LimitsApplyTo.DOMAIN,
}
# Whole-number settings and their ranges (the ESA's GUI ranges; recipients per minute ours).
LIMITS = {
    "max_connections": (1, 1000),
    "max_messages_per_connection": (1, 1000),
    "max_recipients_per_minute": (1, 1_000_000),
}


class LdapSettings(models.Model):
    """System Administration > LDAP > LDAP Global Settings: the single row."""

    level = level_field()
    # The client certificate presented on every LDAPS connection; empty: none.
    certificate_name = models.CharField(max_length=64, blank=True)

    every_level = models.Manager()
    objects = AtLevel("ldap")

    class Meta:
        default_manager_name = "every_level"
        constraints = [models.UniqueConstraint(fields=["level"], name="ldap_settings_once_per_level")]
        verbose_name = "LDAP global settings"
        verbose_name_plural = "LDAP global settings"

    def __str__(self):
        return "LDAP global settings"

    @classmethod
    def load(cls, level: str) -> LdapSettings:
        return cls.objects.at(level).get_or_create()[0]


LDAPS_PORT = 636
LDAP_PORT = 389


class LdapServer(models.Model):
    """An LDAP server profile: where the appliance binds, as whom, and below which base DN."""

    level = level_field()
    name = models.CharField(max_length=64)
    host = models.CharField(max_length=253)
    port = models.PositiveIntegerField(default=LDAPS_PORT)
    use_ssl = models.BooleanField(default=True)
    bind_dn = models.CharField(max_length=1024, blank=True)  # empty: anonymous bind
    # Sealed with the appliance key (appliance.vault); never shown.
    bind_password_sealed = models.TextField(blank=True)
    base_dn = models.CharField(max_length=1024, blank=True)

    every_level = models.Manager()
    objects = AtLevel("ldap_servers")

    class Meta:
        ordering = ["name"]
        verbose_name = "LDAP server profile"
        default_manager_name = "every_level"
        constraints = [
            models.UniqueConstraint(fields=["level", "name"], name="ldap_server_name_per_level"),
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


class SmtpRoute(models.Model):
    """Network > SMTP Routes: where mail for a domain goes instead of the domain's MX hosts.

    ``domain`` is ``example.com`` (that domain only), ``.example.com`` (every host
    below it) or ``ALL`` (the default route, at most one). ``hosts`` are the hops
    in the order given, each ``{"host": "mx.example.net:2525", "priority": 10}``
    (priority None: none given, taken as 0); a host is ``host[:port]``, ``USEDNS``
    (deliver by MX) or ``/dev/null`` (drop the mail, alone in its route).
    """

    domain = models.CharField(max_length=254, unique=True)
    hosts = models.JSONField(default=list)

    class Meta:
        ordering = ["domain"]

    def __str__(self):
        return self.domain

    def hosts_display(self) -> str:
        return ", ".join(
            hop["host"] if hop["priority"] is None else f"{hop['host']}/pri={hop['priority']}"
            for hop in self.hosts
        )


# Test TLS and ``tlsverify``: the newest runs kept per target, to compare each run with the one before.
PROBE_RUNS_KEPT = 20


class ProbeStatus(models.IntegerChoices):
    """A TLS test's result: ``tlsverify``'s exit status, the worst of its servers'."""

    VERIFIED = 0, "TLS up and verified"
    NOT_VERIFIED = 3, "TLS up, not verified"
    NO_TLS = 4, "no TLS or no connection"


class ProbeSource(models.TextChoices):
    GUI = "gui", "GUI"
    CONSOLE = "console", "console"


class TlsProbeRun(models.Model):
    """One run of Mail Policies > Destination Controls > Test TLS or of ``tlsverify``.

    An operational record, like the audit log, not configuration: no section reads or
    writes it, so it is in no configuration file or version and never an uncommitted
    change. Its target is the domain, with the server tested instead of the domain's
    (``server``, ``host:port``) or the appliance's own listener (``listener``); saving a
    run keeps the newest ``PROBE_RUNS_KEPT`` runs of its target. ``servers`` holds what
    each server showed, in the order probed (``gateway.probe_history.summarize``).
    """

    ran_at = models.DateTimeField(default=timezone.now)
    user_name = models.CharField(max_length=150)
    source = models.CharField(max_length=10, choices=ProbeSource.choices)
    domain = models.CharField(max_length=255)
    server = models.CharField(max_length=300, blank=True)
    listener = models.CharField(max_length=64, blank=True)
    status = models.PositiveSmallIntegerField(choices=ProbeStatus.choices)
    servers = models.JSONField(default=list)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["domain", "server", "listener", "-id"], name="tlsproberun_target")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=ProbeStatus.values), name="tlsproberun_status_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(server="") | models.Q(listener=""), name="tlsproberun_server_or_listener"
            ),
        ]

    def __str__(self):
        return f"{self.target} at {self.ran_at:%Y-%m-%d %H:%M:%S}"

    def save(self, *args, **kwargs):
        with transaction.atomic():
            super().save(*args, **kwargs)
            oldest_kept = self.of_target().values_list("id", flat=True)[PROBE_RUNS_KEPT - 1 : PROBE_RUNS_KEPT]
            if oldest_kept:
                self.of_target().filter(id__lt=oldest_kept[0]).delete()

    @property
    def target(self) -> str:
        """What was tested, in words: ``example.com``, ``example.com at mx.example.com:25``."""
        if self.listener:
            return f"listener {self.listener} for {self.domain}"
        return f"{self.domain} at {self.server}" if self.server else self.domain

    @property
    def who(self) -> str:
        return f"{self.user_name} (console)" if self.source == ProbeSource.CONSOLE else self.user_name

    def of_target(self) -> models.QuerySet[TlsProbeRun]:
        """The runs of this run's target, newest first."""
        return TlsProbeRun.objects.filter(
            domain=self.domain, server=self.server, listener=self.listener
        ).order_by("-id")
