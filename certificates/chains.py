"""Putting an uploaded leaf and its intermediates in the order they are served.

Admins paste chains in the wrong order, twice, with the root, or with a stray
certificate from another CA; each case gets its own note or refusal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509

from certificates.pki import CertificateError, describe, fingerprint, is_self_signed, issued_by


@dataclass
class Chain:
    intermediates: list[x509.Certificate] = field(default_factory=list)  # leaf → root-ward, no root
    notes: list[str] = field(default_factory=list)


def arrange(leaf: x509.Certificate, candidates: list[x509.Certificate]) -> Chain:
    """Order ``candidates`` from the leaf's issuer upward; drop duplicates and roots with a note.

    A certificate that chains to nothing in the set is refused by name.
    """
    chain = Chain()
    remaining: dict[str, x509.Certificate] = {}
    for certificate in candidates:
        key = fingerprint(certificate)
        if key == fingerprint(leaf):
            continue  # the leaf itself, as bundles often carry it
        if key in remaining:
            chain.notes.append(
                f"The intermediate {describe(certificate)} appeared twice; one copy was dropped."
            )
            continue
        remaining[key] = certificate

    current = leaf
    while True:
        issuer = next((c for c in remaining.values() if issued_by(current, c)), None)
        if issuer is None:
            break
        del remaining[fingerprint(issuer)]
        if is_self_signed(issuer):
            chain.notes.append(f"The root {describe(issuer)} is not served: clients must already trust it.")
            break
        chain.intermediates.append(issuer)
        current = issuer

    if remaining:
        names = ", ".join(describe(c) for c in remaining.values())
        raise CertificateError(
            f"{names} {'does' if len(remaining) == 1 else 'do'} not chain to {describe(leaf)} "
            "or to the other intermediates: check that it belongs to this certificate's CA"
        )
    return chain
