"""The certificate store (candidate)."""

from __future__ import annotations

from django.db import models


class Certificate(models.Model):
    """A named certificate with its private key and intermediates, as Network > Certificates lists it.

    The private key is sealed with the appliance key (``appliance.vault``) and never leaves
    the appliance in clear unless an Administrator exports it in plain text.
    """

    name = models.CharField(max_length=64, unique=True)
    certificate_pem = models.TextField()
    intermediates_pem = models.TextField(blank=True)
    private_key_sealed = models.TextField()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name
