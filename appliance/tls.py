"""System Administration > SSL Configuration: TLS versions and ciphers per service.

One policy per service (the console's HTTPS, inbound SMTP, outbound SMTP),
applied to every ``ssl.SSLContext`` that service builds. Defaults follow
Mozilla's "intermediate" profile.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from django.db import models

from appliance.config.sections import Config

# Mozilla's "intermediate" profile: TLS 1.2 with AEAD suites (TLS 1.3 suites are not set by this string).
INTERMEDIATE_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"
)


class TLSVersion(models.TextChoices):
    TLS1_0 = "TLSv1.0", "TLS 1.0"
    TLS1_1 = "TLSv1.1", "TLS 1.1"
    TLS1_2 = "TLSv1.2", "TLS 1.2"
    TLS1_3 = "TLSv1.3", "TLS 1.3"


VERSIONS = {
    TLSVersion.TLS1_0: ssl.TLSVersion.TLSv1,
    TLSVersion.TLS1_1: ssl.TLSVersion.TLSv1_1,
    TLSVersion.TLS1_2: ssl.TLSVersion.TLSv1_2,
    TLSVersion.TLS1_3: ssl.TLSVersion.TLSv1_3,
}


class Service(models.TextChoices):
    GUI = "gui", "GUI HTTPS"
    INBOUND = "inbound", "Inbound SMTP"
    OUTBOUND = "outbound", "Outbound SMTP"


@dataclass(frozen=True)
class Policy:
    minimum: str = TLSVersion.TLS1_2
    maximum: str = TLSVersion.TLS1_3
    ciphers: str = INTERMEDIATE_CIPHERS

    @property
    def openssl_ciphers(self) -> str:
        # OpenSSL 3 refuses TLS 1.0/1.1 at its default security level: an admin who allows them means it.
        if VERSIONS[self.minimum] < ssl.TLSVersion.TLSv1_2 and "@SECLEVEL" not in self.ciphers:
            return f"{self.ciphers}:@SECLEVEL=0"
        return self.ciphers

    def apply(self, context: ssl.SSLContext) -> None:
        context.minimum_version = VERSIONS[self.minimum]
        context.maximum_version = VERSIONS[self.maximum]
        context.set_ciphers(self.openssl_ciphers)


def validate_ciphers(value: str) -> None:
    """A cipher string OpenSSL accepts, refused with OpenSSL's reason otherwise."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(value)
    except ssl.SSLError as exc:
        reason = getattr(exc, "reason", None) or exc.args[0]
        raise ValueError(f"is not a cipher string OpenSSL accepts: {str(reason).rstrip('.')}") from None


def policy_problems(minimum: str, maximum: str) -> str:
    if list(VERSIONS).index(minimum) > list(VERSIONS).index(maximum):
        return f"the lowest version ({minimum}) is above the highest ({maximum})"
    return ""


def policy(config: Config, service: str) -> Policy:
    """The running (or given) configuration's policy for ``service``."""
    items = config.get("ssl_config")
    if not items:
        return Policy()
    item = items[0]
    return Policy(item[f"{service}_tls_min"], item[f"{service}_tls_max"], item[f"{service}_ciphers"])
