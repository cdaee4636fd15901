"""What the certificate tests share: staging a change, and checking that a refusal changed nothing."""

from __future__ import annotations

import pytest
from cryptography import x509

from appliance import workflow
from appliance.config.levels import CLUSTER
from appliance.models import AuditEvent
from certificates import pki
from certificates.models import Certificate
from certificates.pki import CertificateError


def stage(user, apply, description="certificate test"):
    return workflow.submit(user, description, apply)


def fingerprints(*certificates) -> list[str]:
    """SHA-256 fingerprints of certificates given as objects, PEM texts or PEM files."""
    result = []
    for c in certificates:
        if not isinstance(c, x509.Certificate):
            c = pki.load_certificate(c if isinstance(c, str) else c.read_text())
        result.append(pki.fingerprint(c))
    return result


def snapshot():
    return list(
        Certificate.objects.at(CLUSTER)
        .order_by("name")
        .values_list(
            "name", "certificate_pem", "intermediates", "csr_pem", "private_key_sealed", "pending_key_sealed"
        )
    )


def assert_refused(user, apply, message, kind=CertificateError):
    """The change is refused with exactly ``message``; no row, lock or audit line changes."""
    before, locked, events = snapshot(), workflow.has_uncommitted_changes(), AuditEvent.objects.count()
    with pytest.raises(kind) as refusal:
        stage(user, apply)
    assert str(refusal.value) == message
    assert snapshot() == before
    assert workflow.has_uncommitted_changes() == locked
    assert AuditEvent.objects.count() == events
