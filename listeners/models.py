"""Listeners: where the appliance accepts mail, and the certificate it offers for TLS (candidate)."""

from __future__ import annotations

from django.db import models

PORT_MIN, PORT_MAX = 1, 65535


class Listener(models.Model):
    """An SMTP listener on an IP interface and port (Network > Listeners).

    The interface and the certificate are named as in the configuration file;
    commit checks that both exist. An empty certificate name: no certificate
    chosen, the listener offers no TLS.
    """

    class Type(models.TextChoices):
        PUBLIC = "public", "Public"  # accepts mail from the internet
        PRIVATE = "private", "Private"  # relays mail from the organisation's own hosts

    name = models.CharField(max_length=64, unique=True)
    listener_type = models.CharField(max_length=10, choices=Type.choices, default=Type.PUBLIC)
    interface_name = models.CharField(max_length=64)
    port = models.PositiveIntegerField(default=25)
    certificate_name = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
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
