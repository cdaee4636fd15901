"""One host-name matcher, RFC 6125's (``certificates.verify``): verifying a peer, the diagnostics and
the advice on choosing a certificate (``certificates.selectors``) find the same.

The advice once had a matcher of its own (``fnmatch`` over the DNS and IP address SANs, else the
first CN). The cases below are those where it disagreed with verification; each is pinned to what
verification says, with certificates made by ``openssl``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from certificates import selectors, verify
from tests.pki_factory import openssl

OTHER_CN = "/CN=unrelated.invalid"


def certificate(folder: Path, san: str | None, subject: str) -> str:
    """A self-signed certificate's PEM with ``subject`` and, unless None, this subjectAltName."""
    extension = ["-addext", f"subjectAltName={san}"] if san else []
    return openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", folder / "key.pem", "-subj", subject, "-days", "1", *extension,
    ).decode()  # fmt: skip


@pytest.mark.parametrize(
    ("san", "subject", "hostname", "covered"),
    [
        # A wildcard stands for one whole, non-empty label.
        ("DNS:*.example.com", OTHER_CN, ".example.com", False),
        # A "*" anywhere but as the whole left-most label matches nothing, not even the same text.
        ("DNS:f*o.example.com", OTHER_CN, "f*o.example.com", False),
        ("DNS:*", OTHER_CN, "*", False),
        ("DNS:*.*.example.com", OTHER_CN, "a.b.example.com", False),
        ("DNS:*.a*.example.com", OTHER_CN, "x.ab.example.com", False),
        # "?" and "[...]" are characters of the name, not patterns.
        ("DNS:*.ex?mple.com", OTHER_CN, "mx.example.com", False),
        ("DNS:*.ex[ae]mple.com", OTHER_CN, "mx.example.com", False),
        # Only DNS names are compared: an IP address SAN covers no host name, not even its address.
        ("DNS:mx.example.com,IP:192.0.2.10", OTHER_CN, "192.0.2.10", False),
        ("DNS:mx.example.com,IP:2001:db8::1", OTHER_CN, "2001:db8::1", False),
        # No DNS name in the SAN (IP addresses only): the CN counts.
        ("IP:192.0.2.10", "/CN=mx.example.com", "mx.example.com", True),
        # No SAN: every CN counts, not only the first.
        (None, "/CN=a.example.com/CN=mx.example.com", "mx.example.com", True),
    ],
)
def test_the_advice_finds_what_verification_finds(tmp_path, san, subject, hostname, covered):
    pem = certificate(tmp_path, san, subject)
    names = verify.certificate_names(x509.load_pem_x509_certificate(pem.encode()))
    assert verify.covers(names, hostname) is covered
    advice = selectors.problems("Mail", pem, False, [hostname])
    assert any("does not cover the host name" in line for line in advice) is not covered


@pytest.mark.parametrize(
    ("san", "subject", "listed"),
    [
        ("DNS:MX.Example.com,IP:192.0.2.10", OTHER_CN, "mx.example.com"),
        ("IP:192.0.2.10", "/CN=mx.example.com", "mx.example.com"),
        (None, "/CN=a.example.com/CN=mx.example.com", "a.example.com, mx.example.com"),
    ],
)
def test_the_advice_lists_the_names_verification_compares(tmp_path, san, subject, listed):
    advice = selectors.problems("Mail", certificate(tmp_path, san, subject), False, ["other.example.org"])
    assert advice == [f"The certificate 'Mail' ({listed}) does not cover the host name other.example.org"]
