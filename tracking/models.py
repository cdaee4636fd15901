"""The gateway's own records: SMTP connections with their TLS outcome, messages and their events.

Written by the gateway process only (``gateway.records.Recorder``, in batches), kept
``RETENTION_DAYS`` days; operational history, not configuration (no section, no commit). In a
cluster every machine numbers its own connections and messages, so each record names its machine
and the console shows those of the machine its mode names, else of the machine it runs on
(``objects.of(machine)``).
"""

from __future__ import annotations

from django.db import models

from appliance.scoped import OfMachine


class Direction(models.TextChoices):
    INCOMING = "in", "Incoming"
    OUTGOING = "out", "Outgoing"


class TlsPolicy(models.TextChoices):
    """The TLS the connection was under: the mail flow policy's (incoming) or the Destination
    Controls entry's (outgoing; the Verify modes count with their base mode)."""

    REQUIRED = "required", "Required"
    PREFERRED = "preferred", "Preferred"
    OFF = "off", "Off"


class TlsResult(models.TextChoices):
    SUCCESS = "success", "Success"
    FAILED = "failed", "Failed"  # TLS was attempted, or required, and did not come up
    NONE = "none", "No TLS"  # not attempted, and not required


class Connection(models.Model):
    """One SMTP connection, recorded when it ends: an ICID (incoming) or a DCID (outgoing)."""

    machine = models.CharField(max_length=64, blank=True)
    direction = models.CharField(max_length=3, choices=Direction.choices)
    cid = models.PositiveBigIntegerField()
    started = models.DateTimeField()
    ended = models.DateTimeField()
    # Incoming: the envelope sender's domain of the first message accepted, else the remote host's
    # verified name, else its address.
    # Outgoing: the destination domain.
    domain = models.CharField(max_length=255)
    remote_address = models.CharField(max_length=64)
    remote_host = models.CharField(max_length=255, blank=True)  # verified reverse DNS, or the MX host
    listener = models.CharField(max_length=64, blank=True)
    policy = models.CharField(max_length=10, choices=TlsPolicy.choices)
    mode = models.CharField(max_length=20, blank=True)  # outgoing: the Destination Controls TLS mode
    result = models.CharField(max_length=10, choices=TlsResult.choices)
    protocol = models.CharField(max_length=16, blank=True)
    cipher = models.CharField(max_length=64, blank=True)
    verified = models.BooleanField(null=True)  # None: the certificate was not checked
    detail = models.TextField(blank=True)  # why TLS failed, or what verification found
    messages = models.PositiveIntegerField(default=0)  # accepted (incoming) or delivered (outgoing)

    every_machine = models.Manager()
    objects = OfMachine()

    class Meta:
        default_manager_name = "every_machine"
        constraints = [
            models.UniqueConstraint(fields=["machine", "direction", "cid"], name="one_record_per_connection")
        ]
        indexes = [
            models.Index(fields=["direction", "started"]),
            models.Index(fields=["direction", "domain", "started"]),
        ]

    def __str__(self):
        return f"{'ICID' if self.direction == Direction.INCOMING else 'DCID'} {self.cid}"


class Message(models.Model):
    """A message the gateway took into its queue: received on a listener, or made by the gateway
    itself (a bounce notice, an alert)."""

    machine = models.CharField(max_length=64, blank=True)
    mid = models.PositiveBigIntegerField()
    received = models.DateTimeField(db_index=True)
    icid = models.PositiveBigIntegerField(null=True)
    listener = models.CharField(max_length=64, blank=True)
    sender = models.CharField(max_length=320, db_index=True)
    recipients = models.TextField()  # one per line, in RID order
    subject = models.CharField(max_length=998, blank=True)
    message_id = models.CharField(max_length=998, blank=True)
    size = models.PositiveBigIntegerField()
    incoming_tls = models.CharField(max_length=100, blank=True)  # "TLSv1.3 TLS_AES_256_GCM_SHA384", or ""

    every_machine = models.Manager()
    objects = OfMachine()

    class Meta:
        ordering = ["-received", "-mid"]
        default_manager_name = "every_machine"
        constraints = [models.UniqueConstraint(fields=["machine", "mid"], name="one_record_per_message")]

    def __str__(self):
        return f"MID {self.mid}"

    @property
    def recipient_list(self) -> list[str]:
        return self.recipients.splitlines()


class Event(models.Model):
    """Something that happened to a message after it was queued: delivered, delayed, bounced, deleted,
    a bounce notice sent for it."""

    class Kind(models.TextChoices):
        DELIVERED = "delivered", "Delivered"
        DELAYED = "delayed", "Delayed"
        BOUNCED = "bounced", "Bounced"
        DELETED = "deleted", "Deleted"
        NOTICE = "notice", "Bounce notice"

    machine = models.CharField(max_length=64, blank=True)
    mid = models.PositiveBigIntegerField(db_index=True)
    time = models.DateTimeField()
    kind = models.CharField(max_length=10, choices=Kind.choices)
    dcid = models.PositiveBigIntegerField(null=True)  # the delivery connection, for its TLS outcome
    recipients = models.TextField(blank=True)  # the recipients it concerns, one per line
    text = models.TextField()

    every_machine = models.Manager()
    objects = OfMachine()

    class Meta:
        ordering = ["time", "id"]
        default_manager_name = "every_machine"

    def __str__(self):
        return f"MID {self.mid} {self.kind}"
