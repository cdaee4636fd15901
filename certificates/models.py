"""The certificate store and the Certificate Authorities lists (candidate configuration)."""

from __future__ import annotations

import datetime

from django.db import models
from django.utils import timezone

from appliance.config.candidate_levels import AtLevel, level_field
from certificates import pki


class Certificate(models.Model):
    """A named certificate with its private key, intermediates and, while pending, a signing request.

    Private keys are sealed with the appliance key (``appliance.vault``). The
    columns after ``pending_key_sealed`` are read from the PEM on save, so the
    list sorts, searches and pages in the database.
    """

    class Status(models.TextChoices):
        VALID = "valid", "Valid"
        EXPIRED = "expired", "Expired"
        NOT_YET_VALID = "not_yet_valid", "Not yet valid"
        PENDING = "pending", "Signing request pending"
        SELF_SIGNED = "self_signed", "Self-signed"

    level = level_field()
    name = models.CharField(max_length=64)
    certificate_pem = models.TextField()
    intermediates = models.JSONField(default=list)  # PEM texts, leaf → root-ward
    csr_pem = models.TextField(blank=True)
    private_key_sealed = models.TextField()
    # A renewal's new key, kept aside until the certificate signed for it arrives.
    pending_key_sealed = models.TextField(blank=True)

    common_name = models.CharField(max_length=255, blank=True)
    issuer = models.CharField(max_length=500, blank=True)
    domains = models.TextField(blank=True)
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    self_signed = models.BooleanField(default=False)

    every_level = models.Manager()
    objects = AtLevel("certificates")

    class Meta:
        ordering = ["name"]
        default_manager_name = "every_level"
        constraints = [models.UniqueConstraint(fields=["level", "name"], name="certificate_name_per_level")]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        self.read_metadata()
        super().save(*args, **kwargs)

    def read_metadata(self) -> None:
        """Fill the listed columns from the certificate (also before bulk_create)."""
        certificate = pki.load_certificate(self.certificate_pem)
        self.common_name = pki.common_name(certificate)
        self.issuer = certificate.issuer.rfc4514_string()
        self.domains = ", ".join(pki.alternative_names(certificate))
        self.not_before = certificate.not_valid_before_utc
        self.not_after = certificate.not_valid_after_utc
        self.self_signed = pki.is_self_signed(certificate)

    @property
    def certificate(self):
        return pki.load_certificate(self.certificate_pem)

    @property
    def chain(self) -> list:
        return [pki.load_certificate(pem) for pem in self.intermediates]

    @property
    def status(self) -> Status:
        now = timezone.now()
        if self.not_after < now:
            return self.Status.EXPIRED
        if self.not_before > now:
            return self.Status.NOT_YET_VALID
        if self.csr_pem and self.self_signed:
            return self.Status.PENDING
        if self.self_signed:
            return self.Status.SELF_SIGNED
        return self.Status.VALID

    @property
    def time_remaining(self) -> datetime.timedelta:
        return max(self.not_after - timezone.now(), datetime.timedelta(0))


class AuthoritySettings(models.Model):
    """The single row: which Certificate Authorities lists are trusted (ESA: Edit Settings)."""

    system_list_enabled = models.BooleanField(default=True)
    custom_list_enabled = models.BooleanField(default=False)

    class Meta:
        verbose_name_plural = "authority settings"

    def __str__(self):
        return "Certificate Authorities"

    @classmethod
    def load(cls) -> AuthoritySettings:
        return cls.objects.get_or_create(pk=1)[0]


class CustomAuthority(models.Model):
    """A CA certificate of the Custom List, uploaded by an administrator."""

    pem = models.TextField()
    fingerprint = models.CharField(max_length=95, unique=True)
    subject = models.CharField(max_length=500)
    not_after = models.DateTimeField()
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        verbose_name_plural = "custom authorities"

    def __str__(self):
        return self.subject

    @classmethod
    def from_pem(cls, pem: str, position: int = 0) -> CustomAuthority:
        certificate = pki.load_certificate(pem)
        return cls(
            pem=pki.certificate_pem(certificate),
            fingerprint=pki.fingerprint(certificate),
            subject=certificate.subject.rfc4514_string(),
            not_after=certificate.not_valid_after_utc,
            position=position,
        )


class CsrDownload(models.Model):
    """A signing request that left the appliance before its key was committed.

    Abandoning or rolling back changes that would destroy such a key asks for
    confirmation: a certificate the CA signs for it could never be used.
    """

    certificate_name = models.CharField(max_length=64)
    public_key_id = models.CharField(max_length=64, db_index=True)  # SHA-256 of the request's public key
    downloaded = models.DateTimeField(auto_now_add=True)
    user_name = models.CharField(max_length=150)

    class Meta:
        ordering = ["-downloaded"]

    def __str__(self):
        return f"CSR of {self.certificate_name}"
