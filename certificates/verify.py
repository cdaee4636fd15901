"""The one verification of a peer's certificate: delivery, the TLS probe and the diagnostics use it.

The policy, for mail servers as they are (not as the web PKI wishes they were):

- **Chain**: built by ``cryptography``'s verifier from the peer's certificates, in any order, to a
  trust anchor of the enabled Certificate Authorities lists, at the given time. Intermediates must
  be CA certificates (basicConstraints CA:TRUE): without it any server certificate could sign
  others. A CA without keyUsage is accepted (many private CAs omit it); the server certificate's
  own extensions (keyUsage, extendedKeyUsage, a missing subjectAltName) are not judged, and a
  version 1 server certificate (no extensions at all) is accepted: its issuer's signature and its
  dates are checked here, the issuer's chain by the verifier.
- **Keys**: an RSA key under 2048 bits anywhere in the chain fails.
- **Name** (RFC 6125): the subjectAltName DNS names when there are any, else the subject's CN,
  compared without regard to case; a wildcard stands for exactly one whole left-most label
  (``*.example.com`` covers ``mx.example.com``, not ``example.com`` nor ``a.b.example.com``).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import verification
from cryptography.x509.oid import NameOID

MINIMUM_RSA_BITS = 2048
_CA_POLICY = verification.ExtensionPolicy.webpki_defaults_ca().may_be_present(
    x509.KeyUsage, verification.Criticality.AGNOSTIC, None
)
_SERVER_POLICY = verification.ExtensionPolicy.permit_all()


def for_last_anchors(build):
    """``build(anchors)`` once per anchors list: a page checks fifty chains against the same list, and
    a ``Store`` (or a set) of ~120 roots costs as much to build as a verification. One slot, read and
    written whole, so threads never mix one list's value with another's."""
    slot = [(None, None)]

    def cached(anchors):
        key, value = slot[0]
        if key is not anchors:
            value = build(anchors)
            slot[0] = (anchors, value)
        return value

    return cached


_store = for_last_anchors(verification.Store)
anchor_set = for_last_anchors(set)


@dataclass
class Verdict:
    """What verifying a peer found: the chain, then the name."""

    chain_valid: bool
    chain_reason: str  # "ok", or why not in words
    names: list[str] = field(default_factory=list)  # the names the certificate is for (SANs, else CN)
    matched: str = ""  # the expected name that matched, "" if none
    expected: tuple[str, ...] = ()

    @property
    def name_valid(self) -> bool:
        return bool(self.matched)

    @property
    def valid(self) -> bool:
        return self.chain_valid and self.name_valid

    @property
    def reason(self) -> str:
        if not self.chain_valid:
            return self.chain_reason
        if not self.name_valid:
            wanted = " or ".join(self.expected) or "(no name)"
            return f"hostname mismatch: {wanted} is not in {', '.join(self.names) or 'the certificate'}"
        return "ok"


def certificate_names(certificate: x509.Certificate) -> list[str]:
    """The DNS names a certificate is for: its subjectAltName DNS names, else its CN (RFC 6125)."""
    try:
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = sans.value.get_values_for_type(x509.DNSName)
        if names:
            return [name.lower() for name in names]
    except x509.ExtensionNotFound:
        pass
    return [
        str(attribute.value).lower()
        for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ]


def name_matches(pattern: str, hostname: str) -> bool:
    pattern, hostname = pattern.lower().rstrip("."), hostname.lower().rstrip(".")
    if pattern.startswith("*."):
        label, _, rest = hostname.partition(".")
        return bool(label) and rest == pattern[2:] and "*" not in rest
    return "*" not in pattern and pattern == hostname


def covers(names: list[str], hostname: str) -> bool:
    """Whether one of a certificate's names (``certificate_names``) covers ``hostname``: the one
    matcher of verification, the diagnostics and the advice on choosing a certificate."""
    return any(name_matches(name, hostname) for name in names)


def _weak_key(chain: list[x509.Certificate]) -> str:
    for certificate in chain:
        key = certificate.public_key()
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < MINIMUM_RSA_BITS:
            subject = certificate.subject.rfc4514_string()
            return f"weak key: {subject} has an RSA key of {key.key_size} bits (under {MINIMUM_RSA_BITS})"
    return ""


def verify_chain(
    chain: list[x509.Certificate], anchors: list[x509.Certificate], at: datetime.datetime | None = None
) -> tuple[bool, str]:
    """Whether ``chain`` (the server certificate first, the rest as sent) leads to one of ``anchors``."""
    if not chain:
        return False, "no certificate was presented"
    if not anchors:
        return False, "no Certificate Authorities list is enabled"
    weak = _weak_key(chain)
    if weak:
        return False, weak
    moment = at or datetime.datetime.now(datetime.UTC)
    verifier = _verifier(anchors, moment)
    leaf, rest = chain[0], chain[1:]
    if leaf.version == x509.Version.v1:
        return _verify_v1_leaf(verifier, leaf, rest, anchors, moment)
    try:
        verified = verifier.verify(leaf, rest)
    except verification.VerificationError as error:
        return False, _words(str(error), leaf, moment)
    weak = _weak_key(verified.chain)
    return (False, weak) if weak else (True, "ok")


def built_chain(
    chain: list[x509.Certificate], anchors: list[x509.Certificate], at: datetime.datetime | None = None
) -> list[x509.Certificate]:
    """The chain from the server certificate to its trust anchor, as verification built it; the
    chain as sent when it does not verify (or is a version 1 certificate's)."""
    if not chain or not anchors or chain[0].version == x509.Version.v1:
        return chain
    try:
        return list(
            _verifier(anchors, at or datetime.datetime.now(datetime.UTC)).verify(chain[0], chain[1:]).chain
        )
    except verification.VerificationError:
        return chain


def _verifier(anchors: list[x509.Certificate], moment: datetime.datetime):
    return (
        verification.PolicyBuilder()
        .store(_store(anchors))
        .time(moment)
        .extension_policies(ca_policy=_CA_POLICY, ee_policy=_SERVER_POLICY)
        .build_client_verifier()
    )


def _verify_v1_leaf(verifier, leaf, rest, anchors, moment) -> tuple[bool, str]:
    """A version 1 server certificate (no extensions, which the verifier refuses): its dates and its
    issuer's signature checked here, then the issuer's own chain by the verifier."""
    if not leaf.not_valid_before_utc <= moment <= leaf.not_valid_after_utc:
        return False, _words("", leaf, moment)
    for issuer in [*rest, *anchors]:
        if issuer.subject != leaf.issuer:
            continue
        try:
            leaf.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            continue
        if issuer in anchors:
            return True, "ok"
        try:
            verifier.verify(issuer, [c for c in rest if c is not issuer])
        except verification.VerificationError as error:
            return False, _words(str(error), issuer, moment)
        return True, "ok"
    return False, "self-signed certificate" if leaf.issuer == leaf.subject else _words(
        "candidates exhausted", leaf, moment
    )


def _words(error: str, leaf: x509.Certificate, moment: datetime.datetime) -> str:
    """The verifier's reason, said the way an administrator looks for it."""
    if moment > leaf.not_valid_after_utc:
        return f"certificate has expired (not valid after {leaf.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC)"
    if moment < leaf.not_valid_before_utc:
        return f"certificate is not yet valid (not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC)"
    if leaf.issuer == leaf.subject:
        return "self-signed certificate"
    if "candidates exhausted" in error:
        return "unable to get local issuer certificate: the chain leads to no enabled Certificate Authority"
    return error


def verify_peer(
    chain: list[x509.Certificate],
    expected_names: list[str],
    anchors: list[x509.Certificate],
    at: datetime.datetime | None = None,
) -> Verdict:
    """The chain, then whether the certificate covers one of ``expected_names`` (the destination
    domain, the MX or route host name)."""
    chain_valid, reason = verify_chain(chain, anchors, at)
    names = certificate_names(chain[0]) if chain else []
    matched = next((wanted for wanted in expected_names if covers(names, wanted)), "")
    return Verdict(chain_valid, reason, names, matched, tuple(expected_names))
