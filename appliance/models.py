"""The appliance core: users, system settings, IP interfaces, and the change workflow's rows.

System settings and IP interfaces are candidate configuration: forms and console
commands edit these rows, a commit turns them into a new ``ConfigVersion``.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models

from appliance.config import levels
from appliance.config.candidate_levels import AtLevel, level_field
from appliance.scoped import OfMachine


class Role(models.TextChoices):
    """The ESA's user roles (ESA-REFERENCE §8)."""

    ADMINISTRATOR = "administrator", "Administrator"
    OPERATOR = "operator", "Operator"
    READ_ONLY = "read_only", "Read-Only Operator"
    GUEST = "guest", "Guest"


class User(AbstractUser):
    """An account of the console and the console commands, with one ESA role."""

    role = models.CharField(max_length=20, choices=Role.choices, default=Role.GUEST)

    class Meta:
        ordering = ["username"]

    def __str__(self):
        return self.username

    @property
    def is_builtin_admin(self) -> bool:
        """The built-in ``admin`` account: cannot be deleted or demoted."""
        return self.username == "admin"


class SystemSettings(models.Model):
    """The single row of system-wide settings (candidate)."""

    hostname = models.CharField(max_length=253)
    rollback_versions_kept = models.PositiveIntegerField(default=10)
    web_ui_timeout_minutes = models.PositiveIntegerField(default=30)

    class Meta:
        verbose_name_plural = "system settings"

    def __str__(self):
        return self.hostname

    @classmethod
    def load(cls) -> SystemSettings:
        settings, _ = cls.objects.get_or_create(pk=1, defaults={"hostname": "localhost"})
        return settings


class SslSettings(models.Model):
    """The single row of System Administration > SSL Configuration (candidate): per service, TLS
    versions from lowest to highest and the OpenSSL cipher string (TLS 1.2 and below)."""

    level = level_field()
    gui_tls_min = models.CharField(max_length=8, default="TLSv1.2")
    gui_tls_max = models.CharField(max_length=8, default="TLSv1.3")
    gui_ciphers = models.TextField()
    inbound_tls_min = models.CharField(max_length=8, default="TLSv1.2")
    inbound_tls_max = models.CharField(max_length=8, default="TLSv1.3")
    inbound_ciphers = models.TextField()
    outbound_tls_min = models.CharField(max_length=8, default="TLSv1.2")
    outbound_tls_max = models.CharField(max_length=8, default="TLSv1.3")
    outbound_ciphers = models.TextField()

    every_level = models.Manager()
    objects = AtLevel("ssl_config")

    class Meta:
        verbose_name_plural = "SSL settings"
        default_manager_name = "every_level"
        constraints = [models.UniqueConstraint(fields=["level"], name="ssl_settings_once_per_level")]

    def __str__(self):
        return "SSL Configuration"

    @classmethod
    def load(cls, level: str) -> SslSettings:
        from appliance.tls import INTERMEDIATE_CIPHERS

        defaults = {f"{service}_ciphers": INTERMEDIATE_CIPHERS for service in ("gui", "inbound", "outbound")}
        return cls.objects.at(level).get_or_create(defaults=defaults)[0]


class DnsSettings(models.Model):
    """The single row of Network > DNS (candidate); no servers means the machine's resolvers."""

    ptr_timeout = models.PositiveSmallIntegerField(default=20)

    class Meta:
        verbose_name_plural = "DNS settings"

    def __str__(self):
        return "DNS"

    @classmethod
    def load(cls) -> DnsSettings:
        return cls.objects.get_or_create(pk=1)[0]


class DnsServer(models.Model):
    """A resolver the gateway asks, lowest priority first (ESA: ``<dns_ip priority="0">``)."""

    address = models.CharField(max_length=64)  # an IP address, optionally with :port ([v6]:port)
    priority = models.PositiveSmallIntegerField(default=0)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["priority", "position"]

    def __str__(self):
        return self.address


def this_machine(mode: levels.Mode) -> str:
    """The machine whose machine-level settings (IP interfaces) ``mode`` sees and changes: the one it
    names (Change Mode…, ``--mode machine:esa2``), else this process's."""
    kind, name = levels.kind_and_name(mode.level)
    return name if kind == levels.MACHINE else settings.MACHINE_NAME


class Interface(models.Model):
    """An IP interface: an address the console and the listeners serve on (candidate). Machine-level:
    in a cluster every machine has its own, under its name; "" on an appliance of its own."""

    machine = models.CharField(max_length=64, blank=True)
    name = models.CharField(max_length=64)
    ip_address = models.GenericIPAddressField()
    netmask = models.PositiveSmallIntegerField(default=24)
    hostname = models.CharField(max_length=253)
    http_port = models.PositiveIntegerField(null=True, blank=True)
    https_redirect = models.BooleanField(default=False)
    https_port = models.PositiveIntegerField(null=True, blank=True)
    # By name, as in the configuration file; the workflow checks the reference.
    certificate_name = models.CharField(max_length=64, blank=True)

    every_machine = models.Manager()
    objects = OfMachine()

    class Meta:
        ordering = ["machine", "name"]
        default_manager_name = "every_machine"
        constraints = [models.UniqueConstraint(fields=["machine", "name"], name="interface_name_per_machine")]

    def __str__(self):
        return self.name


class AlertClass(models.TextChoices):
    SYSTEM = "system", "System"
    HARDWARE = "hardware", "Hardware"
    UPDATER = "updater", "Updater"
    ANTIVIRUS = "antivirus", "Anti-Virus"
    ANTISPAM = "antispam", "Anti-Spam"
    DHAP = "dhap", "Directory Harvest Attack Prevention"
    OUTBREAK = "outbreak", "Virus Outbreak Filters"
    CLUSTERING = "clustering", "Clustering"


class Severity(models.TextChoices):
    """The one scale of how bad a thing is, for alerts and for the certificate diagnostics alike."""

    CRITICAL = "critical", "Critical"
    WARNING = "warning", "Warning"
    INFORMATION = "information", "Information"


class AlertRecipient(models.Model):
    """An address that receives the alerts of the classes and severities it lists (both non-empty)."""

    address = models.CharField(max_length=254, unique=True)
    alert_classes = models.JSONField(default=list)  # AlertClass values, in AlertClass order
    severities = models.JSONField(default=list)  # Severity values, in Severity order

    class Meta:
        ordering = ["address"]

    def __str__(self):
        return self.address

    def classes_display(self) -> str:
        return display_choices(AlertClass, self.alert_classes)

    def severities_display(self) -> str:
        return display_choices(Severity, self.severities)


def display_choices(choices, values: list[str]) -> str:
    """The labels of ``values`` in ``choices`` order, or "All" when every choice is there."""
    if set(values) >= set(choices.values):
        return "All"
    return ", ".join(choices(value).label for value in choices.values if value in values)


class ChangeLock(models.Model):
    """The single row naming who owns the uncommitted changes, and since when.

    Empty owner: the candidate equals the running configuration.
    """

    owner = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    owner_name = models.CharField(max_length=150, blank=True)
    since = models.DateTimeField(null=True)

    def __str__(self):
        return self.owner_name or "no uncommitted changes"


class ConfigVersion(models.Model):
    """A committed configuration: the whole configuration file, immutable once written.

    The newest row is the running configuration. Secrets inside are encrypted
    with the appliance key.
    """

    number = models.PositiveIntegerField(unique=True)
    created = models.DateTimeField(auto_now_add=True)
    user_name = models.CharField(max_length=150)
    comment = models.TextField(blank=True)
    xml = models.TextField()

    class Meta:
        ordering = ["-number"]
        get_latest_by = "number"

    def __str__(self):
        return f"version {self.number}"


class PendingConfirmation(models.Model):
    """A commit made "roll back automatically unless confirmed": what comes back if nobody confirms.

    The previous configuration is copied here, so pruning old versions cannot lose it.
    """

    number = models.PositiveIntegerField()  # the version awaiting confirmation
    previous_number = models.PositiveIntegerField()
    previous_xml = models.TextField()
    deadline = models.DateTimeField()
    user_name = models.CharField(max_length=150)

    def __str__(self):
        return f"version {self.number} until {self.deadline:%H:%M}"


class AuditEvent(models.Model):
    """One line of the audit log: who did what, from where."""

    class Action(models.TextChoices):
        LOGIN = "login", "Login"
        LOGIN_FAILED = "login_failed", "Login failed"
        LOGIN_LOCKOUT = "login_lockout", "Login lockout"
        LOGOUT = "logout", "Logout"
        SUBMIT = "submit", "Submit"
        COMMIT = "commit", "Commit"
        ABANDON = "abandon", "Abandon"
        ROLLBACK = "rollback", "Rollback"
        LOAD = "load", "Load configuration"
        EXPORT = "export", "Export configuration"
        CONFIRM = "confirm", "Confirm commit"
        USERS = "users", "User accounts"
        QUEUE = "queue", "Queue"

    time = models.DateTimeField(auto_now_add=True, db_index=True)
    user_name = models.CharField(max_length=150)
    action = models.CharField(max_length=20, choices=Action.choices)
    detail = models.TextField(blank=True)
    source = models.CharField(max_length=40, blank=True)  # "GUI 127.0.0.1" or "CLI"

    class Meta:
        ordering = ["-time", "-id"]
        indexes = [models.Index(fields=["action", "time"], name="audit_action_time")]

    def __str__(self):
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.user_name} {self.action}"
