"""Listeners: where the appliance accepts mail, and the certificate it offers for TLS (candidate)."""

from __future__ import annotations

from django.db import models

from appliance.config.candidate_levels import AtLevel, level_field

PORT_MIN, PORT_MAX = 1, 65535
# Ranges of the limits a listener and its mail flow policies set (the configuration file's as well).
LIMITS = {
    "max_concurrency": (1, 10000),
    "max_tls_concurrency": (1, 10000),
    "max_message_size": (1024, 100 * 1024 * 1024),
    "max_rcpts_per_msg": (1, 10000),
    "max_msgs_per_session": (1, 10000),
    "max_concurrency_per_ip": (1, 10000),
    "max_connections_per_minute_per_ip": (1, 100000),
}
LIMIT_LABELS = {
    "max_concurrency": "Maximum Concurrent Connections",
    "max_tls_concurrency": "Maximum Concurrent TLS Connections",
    "max_message_size": "Max. Message Size (bytes)",
    "max_rcpts_per_msg": "Max. Recipients Per Message",
    "max_msgs_per_session": "Max. Messages Per Connection",
    "max_concurrency_per_ip": "Max. Concurrent Connections From a Single IP",
    "max_connections_per_minute_per_ip": "Max. Connections Per Minute From a Single IP",
}


def limit_problem(tag: str, value: int) -> str:
    """What is wrong with a limit's value, in the admin's words ("" if nothing)."""
    low, high = LIMITS[tag]
    return (
        "" if low <= value <= high else f"{LIMIT_LABELS[tag]} must be between {low} and {high}, not {value}"
    )


# The limits a mail flow policy sets, or takes from the Default Policy Parameters.
POLICY_LIMITS = (
    "max_message_size",
    "max_rcpts_per_msg",
    "max_msgs_per_session",
    "max_concurrency_per_ip",
    "max_connections_per_minute_per_ip",
)
# The ESA's defaults for the Default Policy Parameters; connections are ours (the bench runs 100 clients).
# Per client address (ACCEPTED and BLOCKED use them): Postfix opens at most 20 connections to one
# destination (default_destination_concurrency_limit), so 20 never slows a well-behaved MTA, and one
# address can hold a fifteenth of a listener's 300; 120 a minute is two a second, ten times what a
# busy sender needs when each connection carries up to 10 messages.
DEFAULT_LIMITS = {
    "max_concurrency": 300,
    "max_tls_concurrency": 200,
    "max_message_size": 10 * 1024 * 1024,
    "max_rcpts_per_msg": 50,
    "max_msgs_per_session": 10,
    "max_concurrency_per_ip": 20,
    "max_connections_per_minute_per_ip": 120,
}


class Listener(models.Model):
    """An SMTP listener on an IP interface and port (Network > Listeners).

    The interface and the certificate are named as in the configuration file;
    commit checks that both exist. An empty certificate name: no certificate
    chosen, the listener offers no TLS.
    """

    class Type(models.TextChoices):
        PUBLIC = "public", "Public"  # accepts mail from the internet
        PRIVATE = "private", "Private"  # relays mail from the organisation's own hosts

    level = level_field()
    name = models.CharField(max_length=64)
    listener_type = models.CharField(max_length=10, choices=Type.choices, default=Type.PUBLIC)
    interface_name = models.CharField(max_length=64)
    port = models.PositiveIntegerField(default=25)
    certificate_name = models.CharField(max_length=64, blank=True)
    # Default Policy Parameters: what a mail flow policy's "Use Default" stands for.
    default_tls = models.CharField(max_length=10, default="off")
    default_tls_verify_client = models.BooleanField(default=False)
    default_tls_mandatory_address_list = models.CharField(max_length=64, blank=True)
    default_max_message_size = models.PositiveIntegerField(default=DEFAULT_LIMITS["max_message_size"])
    default_max_rcpts_per_msg = models.PositiveIntegerField(default=DEFAULT_LIMITS["max_rcpts_per_msg"])
    default_max_msgs_per_session = models.PositiveIntegerField(default=DEFAULT_LIMITS["max_msgs_per_session"])
    default_max_concurrency_per_ip = models.PositiveIntegerField(
        default=DEFAULT_LIMITS["max_concurrency_per_ip"]
    )
    default_max_connections_per_minute_per_ip = models.PositiveIntegerField(
        default=DEFAULT_LIMITS["max_connections_per_minute_per_ip"]
    )
    max_concurrency = models.PositiveIntegerField(default=DEFAULT_LIMITS["max_concurrency"])
    max_tls_concurrency = models.PositiveIntegerField(default=DEFAULT_LIMITS["max_tls_concurrency"])

    every_level = models.Manager()
    objects = AtLevel("listeners")

    class Meta:
        ordering = ["name"]
        default_manager_name = "every_level"
        constraints = [
            models.UniqueConstraint(fields=["level", "name"], name="listener_name_per_level"),
            models.CheckConstraint(
                condition=models.Q(port__gte=PORT_MIN, port__lte=PORT_MAX),
                name="listener_port_in_range",
            ),
            models.CheckConstraint(
                condition=models.Q(listener_type__in=["public", "private"]),
                name="listener_type_known",
            ),
        ]

    def __str__(self):
        return self.name


class AddressList(models.Model):
    """A named list of address-list entries (``entries``: the texts as typed, in order, no duplicates)."""

    name = models.CharField(max_length=64, unique=True)
    description = models.CharField(max_length=255, blank=True)
    entries = models.JSONField(default=list)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class ConnectionBehavior(models.TextChoices):
    ACCEPT = "accept", "Accept"
    RELAY = "relay", "Relay"
    REJECT = "reject", "Reject"
    TCPREFUSE = "tcprefuse", "TCP Refuse"
    CONTINUE = "continue", "Continue"  # the HAT goes on to the next matching sender group


class InboundTls(models.TextChoices):
    DEFAULT = "default", "Use Default"
    OFF = "off", "Off"
    PREFERRED = "preferred", "Preferred"
    REQUIRED = "required", "Required"


class MailFlowPolicy(models.Model):
    """A listener's mail flow policy (Mail Policies > Mail Flow Policies): what a sender group's hosts may do.

    ``tls == "default"`` takes the listener's Default Policy Parameters, verification
    and address list included; an empty address list name likewise.
    """

    listener = models.ForeignKey(Listener, on_delete=models.CASCADE, related_name="policies")
    name = models.CharField(max_length=64)
    connection_behavior = models.CharField(max_length=10, choices=ConnectionBehavior.choices)
    tls = models.CharField(max_length=10, choices=InboundTls.choices, default=InboundTls.DEFAULT)
    tls_verify_client = models.BooleanField(default=False)
    tls_mandatory_address_list = models.CharField(max_length=64, blank=True)
    # Null: the listener's Default Policy Parameters ("Use Default").
    max_message_size = models.PositiveIntegerField(null=True, blank=True)
    max_rcpts_per_msg = models.PositiveIntegerField(null=True, blank=True)
    max_msgs_per_session = models.PositiveIntegerField(null=True, blank=True)
    max_concurrency_per_ip = models.PositiveIntegerField(null=True, blank=True)
    max_connections_per_minute_per_ip = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["listener", "name"]
        constraints = [
            models.UniqueConstraint(fields=["listener", "name"], name="policy_name_unique_per_listener"),
        ]

    def __str__(self):
        return self.name


class SenderGroup(models.Model):
    """A sender group of a listener's HAT: hosts, and the mail flow policy they get. Groups are read in
    ``position`` order and the first that matches wins; the last is ALL."""

    listener = models.ForeignKey(Listener, on_delete=models.CASCADE, related_name="sender_groups")
    name = models.CharField(max_length=64)
    position = models.PositiveIntegerField()
    policy_name = models.CharField(max_length=64)
    comment = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["listener", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["listener", "name"], name="sender_group_name_unique_per_listener"
            ),
        ]

    def __str__(self):
        return self.name


class SenderEntry(models.Model):
    """One host entry of a sender group, as typed in the ESA's syntax (``listeners.senders``).

    Address forms also keep the range they cover as two 32-digit hex numbers (IPv4 as
    IPv4-mapped IPv6), so "which group has this IP" is an indexed query, not a loop.
    """

    group = models.ForeignKey(SenderGroup, on_delete=models.CASCADE, related_name="entries")
    position = models.PositiveIntegerField()
    host = models.CharField(max_length=255)
    range_start = models.CharField(max_length=32, blank=True, db_index=True)
    range_end = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["group", "position"]
        verbose_name_plural = "sender entries"
        constraints = [
            models.UniqueConstraint(fields=["group", "host"], name="sender_entry_unique_per_group"),
        ]
        indexes = [models.Index(fields=["host"])]

    def __str__(self):
        return self.host


class RatEntry(models.Model):
    """One entry of a public listener's Recipient Access Table (``listeners.rat``), in ``position`` order."""

    listener = models.ForeignKey(Listener, on_delete=models.CASCADE, related_name="rat_entries")
    position = models.PositiveIntegerField()
    recipient = models.CharField(max_length=255)
    action = models.CharField(max_length=10, choices=[("accept", "Accept"), ("reject", "Reject")])

    class Meta:
        ordering = ["listener", "position"]
        verbose_name = "RAT entry"
        verbose_name_plural = "RAT entries"
        constraints = [
            models.UniqueConstraint(
                fields=["listener", "recipient"], name="rat_recipient_unique_per_listener"
            ),
        ]

    def __str__(self):
        return f"{self.recipient} {self.action}"
