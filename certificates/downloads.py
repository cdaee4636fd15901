"""The guide's warning: commit before sending a CSR to a CA.

Downloading the signing request of an uncommitted certificate is recorded; a
later abandon or rollback that would destroy its key asks for confirmation.
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from django.utils import timezone

from appliance import workflow
from appliance.config import levels
from appliance.config.sections import Config
from certificates import pki
from certificates.models import Certificate, CsrDownload


def _key_id(pem: str, loader) -> str:
    return hashlib.sha256(pki.public_key_id(loader(pem.encode()))).hexdigest()


def request_key_id(csr_pem: str) -> str:
    return _key_id(csr_pem, x509.load_pem_x509_csr)


def is_committed(entry: Certificate) -> bool:
    """Whether the running configuration holds this entry with this signing request (or certificate)."""
    committed = workflow.running_config().get(levels.key("certificates", entry.level), [])
    running = {item["certificate_name"]: item for item in committed}
    item = running.get(entry.name)
    if item is None:
        return False
    if entry.csr_pem:
        return (item["csr_pem"] or "").strip() == entry.csr_pem.strip()
    return item["certificate_pem"].strip() == entry.certificate_pem.strip()


def record(entry: Certificate, user) -> bool:
    """Note a CSR download; True if the certificate was not committed (the admin must be told).

    Committed or not, a later abandon or rollback that destroys the key asks first.
    """
    CsrDownload.objects.create(
        certificate_name=entry.name, public_key_id=request_key_id(entry.csr_pem), user_name=user.username
    )
    return not is_committed(entry)


def _key_ids(config: Config) -> set[str]:
    """Public keys a configuration holds, at every level, seen through its CSRs and certificates (no key
    is unsealed)."""
    ids = set()
    every_level = [config.get("certificates", []), *levels.overrides(config, "certificates").values()]
    for item in (item for items in every_level for item in items):
        ids.add(_key_id(item["certificate_pem"], x509.load_pem_x509_certificate))
        if item["csr_pem"]:
            ids.add(request_key_id(item["csr_pem"]))
    return ids


def destroyed_keys(current: Config, target: Config) -> list[str]:
    """Warnings for keys whose CSR was downloaded and that going from ``current`` to ``target`` destroys."""
    lost = _key_ids(current) - _key_ids(target)
    if not lost:
        return []
    latest = {
        d.public_key_id: d for d in CsrDownload.objects.filter(public_key_id__in=lost).order_by("downloaded")
    }
    return [
        f"The signing request of '{download.certificate_name}' was downloaded by {download.user_name} on "
        f"{timezone.localtime(download.downloaded):%b %d %H:%M}; this destroys its private key, so a certificate "
        "a CA signs for that request could never be used."
        for download in latest.values()
    ]
