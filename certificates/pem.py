"""Reading and making certificates and keys with ``cryptography``.

Validators raise ValueError with a message in the administrator's words.
"""

from __future__ import annotations

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

PEM_CERTIFICATE_END = "-----END CERTIFICATE-----"


def load_certificates(pem: str) -> list[x509.Certificate]:
    """Every certificate in a PEM text, in order; ValueError if there is none or one is broken."""
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise ValueError("is not a PEM certificate (-----BEGIN CERTIFICATE----- … block)") from None
    return certificates


def validate_certificate(pem: str) -> None:
    if len(load_certificates(pem)) != 1:
        raise ValueError("must hold exactly one certificate; put intermediates in their own field")


def validate_intermediates(pem: str) -> None:
    load_certificates(pem)


def load_private_key(pem: str):
    try:
        return serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("is not an unencrypted PEM private key") from None


def validate_private_key(pem: str) -> None:
    load_private_key(pem)


def key_matches_certificate(key_pem: str, certificate_pem: str) -> bool:
    certificate = load_certificates(certificate_pem)[0]
    public = load_private_key(key_pem).public_key()
    raw = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    return public.public_bytes(encoding, raw) == certificate.public_key().public_bytes(encoding, raw)


def common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def summarize(pem: str) -> str:
    """One line for the diff: the certificates' common names and expiry."""
    try:
        certificates = load_certificates(pem)
    except ValueError:
        return "(unreadable certificate)"
    return "; ".join(
        f"CN={common_name(c) or '(none)'}, expires {c.not_valid_after_utc:%Y-%m-%d}" for c in certificates
    )


def generate_key(key_type: str = "rsa2048"):
    if key_type.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[3:]))
    curves = {"ecdsa-p256": ec.SECP256R1(), "ecdsa-p384": ec.SECP384R1()}
    return ec.generate_private_key(curves[key_type])


def private_key_pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def certificate_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def self_signed(key, subject: x509.Name, names: list[str], days: int) -> x509.Certificate:
    """A self-signed server certificate for ``names`` (DNS names or IP addresses)."""
    alternative = []
    for name in names:
        try:
            alternative.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternative.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alternative), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [x509.ExtendedKeyUsageOID.SERVER_AUTH, x509.ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
