"""Certificate expiry alerts: the gateway tells the alert recipients as certificates near their end.

Watched, in the RUNNING configuration only (a staged certificate has no alert until it is
committed): every appliance certificate (``<certificates>``, the Demo included) and every CA
certificate of the Custom List (``<certificate_authorities><custom_ca_pem>``, enabled or not).
Each time a certificate reaches one of ``expiry.THRESHOLDS`` (fewer than 90, 60, 30, 14, 7, 3, 1
whole days left) or expires, ONE alert goes out, class System, keyed
``certificate-expiry:<SHA-256 fingerprint>:<days|expired>``. Only the threshold reached now is
sent: a certificate first seen with 20 days left gets the 30-day alert, not the 90- and 60-day ones
too. A threshold is never alerted twice, nor a farther one once a nearer one was (a clock set
back); the record of sent alerts (``gateway.alert_mail``) is read at start, so a restarted gateway
remembers. A threshold nobody is subscribed to is not marked: once a recipient subscribes, the
next check sends it. A renewed certificate has a new fingerprint, so its alerts start afresh.

Severities: Information at 90 and 60 days, Warning at 30, 14 and 7, Critical at 3 and 1 day and
once expired. Subjects follow the ESA's form, ``Warning <System> HOST: …`` (``Info`` for
Information).

What is watched and how each alert reads; the gateway checks and sends (``gateway.expiry_alerts``).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509

from appliance import alerts
from appliance.config.sections import Config, registry
from certificates import pki
from certificates.expiry import EXPIRED, days_left, severity_at

KEY_PREFIX = "certificate-expiry:"

PAGE = "Network > Certificates"
AUTHORITIES_PAGE = "Network > Certificate Authorities"


# --- what is watched -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Watched:
    """A certificate of the running configuration: an appliance certificate (``names`` given) or a
    CA of the Custom List (``names`` empty)."""

    certificate: x509.Certificate
    fingerprint: str
    names: tuple[str, ...] = ()  # the entries holding it (one, unless pasted twice)
    used_by: tuple[str, ...] = ()  # "listener 'IncomingMail' (Certificate)", as "where used" says
    signing_request: bool = False  # a CSR waits for the CA (a renewal, or a first signature)
    self_signed: bool = False
    custom_list_enabled: bool = False

    @property
    def is_authority(self) -> bool:
        return not self.names

    @property
    def not_after(self) -> datetime.datetime:
        return self.certificate.not_valid_after_utc


def watched(config: Config, warn: Callable[[str], None]) -> list[Watched]:
    """The appliance certificates, then the Custom List CAs, of ``config``, one per fingerprint;
    ``warn`` is told of each one that cannot be read."""
    found: dict[str, Watched] = {}
    users = registry.where_used_in("certificates", config)
    for item in config.get("certificates", []):
        try:
            certificate = pki.load_certificate(item["certificate_pem"])
        except ValueError:
            warn(f"Certificate expiry check: '{item['certificate_name']}' is unreadable")
            continue
        fingerprint = pki.fingerprint(certificate)
        name = item["certificate_name"]
        earlier = found.get(fingerprint)
        found[fingerprint] = Watched(
            certificate=certificate,
            fingerprint=fingerprint,
            names=(*(earlier.names if earlier else ()), name),
            used_by=(*(earlier.used_by if earlier else ()), *users.get(name, [])),
            signing_request=bool(item.get("csr_pem")) or bool(earlier and earlier.signing_request),
            self_signed=pki.is_self_signed(certificate),
        )
    [authorities] = config.get("certificate_authorities") or [{}]
    for pem in authorities.get("custom_ca_pem", []):
        try:
            certificate = pki.load_certificate(pem)
        except ValueError:
            warn("Certificate expiry check: a Custom List CA certificate is unreadable")
            continue
        fingerprint = pki.fingerprint(certificate)
        found.setdefault(
            fingerprint,
            Watched(
                certificate=certificate,
                fingerprint=fingerprint,
                custom_list_enabled=bool(authorities.get("custom_list_enabled")),
            ),
        )
    return list(found.values())


# --- keys of the record ----------------------------------------------------------------------------


def alert_key(fingerprint: str, threshold: int) -> str:
    return f"{KEY_PREFIX}{fingerprint}:{'expired' if threshold == EXPIRED else threshold}"


def parse_key(key: str) -> tuple[str, int] | None:
    """(fingerprint, threshold) of an expiry alert's key; None for any other alert."""
    if not key.startswith(KEY_PREFIX):
        return None
    fingerprint, _, threshold = key.removeprefix(KEY_PREFIX).rpartition(":")
    if threshold == "expired":
        return fingerprint, EXPIRED
    if threshold.isdigit() and fingerprint:
        return fingerprint, int(threshold)
    return None


# --- the message ---------------------------------------------------------------------------------


def _in_days(left: int) -> str:
    if left < 1:
        return "in less than a day"
    return f"in {left} day{'s' if left != 1 else ''}"


def _moment(when: datetime.datetime) -> str:
    return f"{when:%Y-%m-%d %H:%M:%S} UTC"


def _who(item: Watched) -> str:
    """How the subject names it: "certificate 'Mail' (CN=mail.example.com)" or "Custom List CA 'X'"."""
    if item.is_authority:
        return f"Custom List CA certificate {pki.describe(item.certificate)}"
    names = " and ".join(f"'{name}'" for name in item.names)
    common_name = pki.common_name(item.certificate)
    subject = f"CN={common_name}" if common_name else item.certificate.subject.rfc4514_string()
    return f"certificate {names} ({subject or 'empty subject'})"


def _details(item: Watched, left: int) -> list[str]:
    certificate = item.certificate
    lines = []
    if not item.is_authority:
        lines.append(f"Certificate:  {', '.join(item.names)}")
        lines.append(f"Common Name:  {pki.common_name(certificate) or '(none)'}")
    lines += [
        f"Subject:      {certificate.subject.rfc4514_string() or '(empty)'}",
        f"Issued by:    {certificate.issuer.rfc4514_string() or '(empty)'}",
        f"Expires:      {_moment(item.not_after)}"
        + (" (expired)" if left < 0 else f" ({left} day{'s' if left != 1 else ''} left)"),
        f"SHA-256:      {item.fingerprint}",
    ]
    if item.is_authority:
        state = (
            "enabled: it verifies TLS peers" if item.custom_list_enabled else "disabled: nothing uses it now"
        )
        lines.append(f"Custom List:  {state}")
    else:
        lines.append(f"Used by:      {'; '.join(item.used_by) or 'nothing in the committed configuration'}")
    return lines


def _advice(item: Watched) -> str:
    if item.is_authority:
        return (
            "What to do: get the certificate authority's new CA certificate and replace this one in the "
            f"Custom List: {AUTHORITIES_PAGE} > Custom List > Add the new certificate, Delete this one, "
            "then commit your changes."
        )
    name = item.names[0]
    if item.signing_request:
        return (
            f"What to do: a signing request for '{name}' is waiting for your certificate authority. Upload "
            f"the certificate it signs on {PAGE} > {name} (console: certconfig upload {name} --cert FILE) "
            "and commit; if the request was never sent, download it there (Download Certificate Signing "
            f"Request, or certconfig csr {name}) and send it to the CA."
        )
    if item.self_signed:
        return (
            f"What to do: renew it. {PAGE} > {name} > Renew (console: certconfig renew {name}) makes a new "
            "self-signed certificate with the same subject and names; commit your changes to put it in "
            "service."
        )
    return (
        f"What to do: renew it. {PAGE} > {name} > Renew (console: certconfig renew {name}) makes a new "
        "signing request; commit, then download the request (Download Certificate Signing Request, or "
        f"certconfig csr {name}), have your certificate authority sign it, upload the signed certificate "
        f"on the same page (certconfig upload {name} --cert FILE) and commit again. The current "
        f"certificate stays in service until then, and whatever uses '{name}' takes the new one."
    )


def message(item: Watched, threshold: int, now: datetime.datetime, hostname: str) -> tuple[str, str, str]:
    """(severity, subject, text) of the alert for ``item`` at ``threshold``."""
    severity = severity_at(threshold)
    left = days_left(item.not_after, now)
    date = f"{item.not_after:%Y-%m-%d}"
    who = _who(item)
    if item.is_authority:
        where = f"CA certificate {pki.describe(item.certificate)} in the Custom List of {hostname}"
    else:
        where = f"{who} on {hostname}"
    if threshold == EXPIRED:
        summary = f"The {who} has expired ({date})"
        opening = f"The {where} expired on {_moment(item.not_after)}."
        if item.is_authority:
            effect = "Certificates issued under it no longer verify against the Custom List."
        else:
            effect = (
                "Whatever uses it now presents an expired certificate, which mail servers and clients "
                "that verify certificates refuse."
            )
    else:
        summary = f"The {who} will expire {_in_days(left)} ({date})"
        opening = f"The {where} will expire {_in_days(left)}, on {_moment(item.not_after)}."
        if item.is_authority:
            effect = (
                "Once it has expired, certificates issued under it no longer verify against the Custom List."
            )
        else:
            effect = (
                "Once it has expired, whatever uses it presents an expired certificate, which mail servers "
                "and clients that verify certificates refuse."
            )
    subject = alerts.subject(alerts.AlertClass.SYSTEM, severity, hostname, summary)
    text = "\n".join([opening, "", *_details(item, left), "", effect, "", _advice(item)])
    return severity, subject, text
