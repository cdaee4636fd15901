"""The Certificate Authorities lists: the System List (Mozilla's bundle from certifi) and the Custom List."""

from __future__ import annotations

import datetime
import functools
import warnings
from dataclasses import dataclass

import certifi
from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from certificates import pki


@dataclass(frozen=True)
class Authority:
    subject: str
    not_after: datetime.datetime
    fingerprint: str
    pem: str


@functools.cache
def system_list() -> tuple[Authority, ...]:
    """Mozilla's trusted roots as certifi ships them, read once per process."""
    with open(certifi.where(), "rb") as bundle, warnings.catch_warnings():
        # One Mozilla root has a negative serial number; it is still a root Mozilla trusts.
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        certificates = x509.load_pem_x509_certificates(bundle.read())
    return tuple(
        sorted(
            (
                Authority(
                    subject=c.subject.rfc4514_string(),
                    not_after=c.not_valid_after_utc,
                    fingerprint=pki.fingerprint(c),
                    pem=pki.certificate_pem(c),
                )
                for c in certificates
            ),
            key=lambda a: a.subject.lower(),
        )
    )
