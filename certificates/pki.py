"""Certificates, keys, CSRs and PKCS#12 with ``cryptography``: reading what admins bring, making what they ask.

Every refusal is a ``CertificateError`` (or ValueError for field validators)
whose message names the problem in the administrator's words.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import subprocess
import sys
import warnings
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import ExtensionOID, NameOID
from django.db import models

from appliance.validators import validate_hostname
from appliance.workflow import ChangeRefused
from certificates import pfx

PEM = serialization.Encoding.PEM


class CertificateError(ChangeRefused):
    """A certificate, key or file the appliance refuses; the message says which and why."""


class WrongPassword(CertificateError):
    """The file is fine; its password is not."""


class KeyRefused(CertificateError):
    """A key outside the key policy (``check_key_policy``)."""


class KeyType(models.TextChoices):
    RSA2048 = "rsa2048", "RSA 2048"
    RSA3072 = "rsa3072", "RSA 3072"
    RSA4096 = "rsa4096", "RSA 4096"
    EC256 = "ec256", "ECDSA P-256"
    EC384 = "ec384", "ECDSA P-384"


# --- the key policy: refused before any expensive work -----------------------

RSA_BITS = range(2048, 8192 + 1)
# The curves every TLS peer and CA takes; OpenSSL also loads secp256k1 and Brainpool, few peers do.
# Ed25519 is refused: CAs do not sign it for TLS servers, and mail servers rarely offer it.
SUPPORTED_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
KEY_POLICY = "use RSA 2048–8192 bits or ECDSA P-256/P-384/P-521"


def check_key_policy(key) -> None:
    """The one key policy of every way a key comes in or is made: CertificateError naming the limit.
    It reads the size or curve only, so it runs before OpenSSL's slow checks of an RSA key."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if key.key_size in RSA_BITS:
            return
        name = f"RSA-{key.key_size}"
    elif isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if key.curve.name in SUPPORTED_CURVES:
            return
        name = f"ECDSA {key.curve.name}"
    else:
        name = key_description(key)
    raise KeyRefused(f"{name} keys are not supported: {KEY_POLICY}")


# --- the slow work: in a child process, with a deadline ----------------------

DEADLINE_SECONDS = 15  # well inside gunicorn's 30 s: the page answers, and says what took too long


def in_worker(job: dict, what: str) -> dict:
    """``certificates.worker``'s answer to ``job``, stopped after ``DEADLINE_SECONDS``. Run it before
    ``workflow.submit``: the submit's transaction holds the database's write lock."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "certificates.worker"],
            input=json.dumps(job).encode(),
            capture_output=True,
            timeout=DEADLINE_SECONDS,
            cwd=PROJECT_DIR,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CertificateError(f"{what} took longer than {DEADLINE_SECONDS} s and was stopped") from None
    if done.returncode != 0:
        raise CertificateError(f"{what} failed ({done.stderr.decode(errors='replace').strip()[-200:]})")
    return json.loads(done.stdout)


PROJECT_DIR = __file__.rsplit("/certificates/", 1)[0]


def generate_key(key_type: str):
    """A new key of ``KeyType`` ``key_type``, made in the worker (RSA 4096 takes seconds)."""
    key_type = KeyType(key_type)
    if key_type.startswith("rsa"):
        return _generated({"rsa_bits": int(key_type[3:])}, key_type.label)
    return _generated({"curve": "secp256r1" if key_type is KeyType.EC256 else "secp384r1"}, key_type.label)


def generate_key_like(key):
    """A new key of the same algorithm and size (RSA) or curve (ECDSA) as ``key``, within the policy
    (an entry loaded before it, RSA-1024 say, is renewed with the nearest size the policy allows)."""
    if isinstance(key, rsa.RSAPrivateKey):
        bits = min(max(key.key_size, RSA_BITS.start), RSA_BITS.stop - 1)
        return _generated({"rsa_bits": bits}, f"RSA {bits}")
    curve = key.curve.name if key.curve.name in SUPPORTED_CURVES else "secp256r1"
    return _generated({"curve": curve}, f"ECDSA {SUPPORTED_CURVES[curve]}")


def _generated(job: dict, label: str):
    made = in_worker({"job": "generate", **job}, f"Making the {label} key")
    return serialization.load_pem_private_key(made["key"].encode(), None, unsafe_skip_rsa_key_validation=True)


def key_description(key) -> str:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return f"ECDSA {key.curve.name}"
    return type(key).__name__


# --- reading -----------------------------------------------------------------


# What cryptography raises for certificates and keys it parses but cannot use.
UNUSABLE = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)


def readable(certificates: list[x509.Certificate]) -> list[x509.Certificate]:
    """Parse now what cryptography parses lazily (extensions, the key), so a bad one fails here."""
    for certificate in certificates:
        certificate.extensions  # noqa: B018
        certificate.public_key()
    return certificates


def load_certificates(pem: str) -> list[x509.Certificate]:
    """Every certificate in a PEM text, in order; ValueError if there is none or one is broken."""
    try:
        return readable(x509.load_pem_x509_certificates(pem.encode()))
    except UNUSABLE:
        raise ValueError("is not a PEM certificate (-----BEGIN CERTIFICATE----- … block)") from None


def load_certificate(pem: str) -> x509.Certificate:
    return load_certificates(pem)[0]


def validate_certificate(pem: str) -> None:
    if len(load_certificates(pem)) != 1:
        raise ValueError("must hold exactly one certificate")


def load_private_key(
    pem: str, passphrase: str | None = None, *, thorough: bool = True, checked: bool = False
):
    """A PEM private key (PKCS#1, SEC1 or PKCS#8), decrypted with ``passphrase`` if it is encrypted.

    ``thorough``: OpenSSL's full RSA validation (primality of p and q, ~40 ms a key) for a key
    entering the appliance one at a time. A configuration file with 1,000 keys would take 40 s,
    so there a signature made and verified with the key stands in for it (``thorough=False``).
    ``checked``: the key passed ``validate_private_key`` already (a file's field check): parse it only.
    """
    data = pem.encode()
    secret = passphrase.encode() if passphrase else None
    _check_encrypted_key(data)
    try:
        # Parsed only: the size is checked before OpenSSL's RSA check, which grows with it.
        key = serialization.load_pem_private_key(data, password=secret, unsafe_skip_rsa_key_validation=True)
    except TypeError:
        if secret is None:
            raise CertificateError("The private key is encrypted: give its passphrase") from None
        raise CertificateError("The private key is not encrypted, but a passphrase was given") from None
    except ValueError as exc:
        if secret is not None and b"ENCRYPTED" in data:
            raise CertificateError("The passphrase does not decrypt the private key") from None
        raise CertificateError("This is not a PEM private key (RSA or EC)") from exc
    except UnsupportedAlgorithm:
        raise CertificateError(
            f"The private key uses an algorithm or curve this appliance does not support: {KEY_POLICY}"
        ) from None
    check_key_policy(key)
    if not isinstance(key, rsa.RSAPrivateKey) or checked:
        return key
    if thorough:
        try:
            serialization.load_pem_private_key(private_key_pem(key).encode(), None)
        except ValueError:
            raise CertificateError("The private key is damaged: its parts do not belong together") from None
    elif not _signs_correctly(key):
        raise CertificateError("The private key is damaged: its parts do not belong together")
    return key


def _check_encrypted_key(data: bytes) -> None:
    """An encrypted PKCS#8 key's PBKDF2 iterations, refused over the cap before it is decrypted."""
    begin, end = b"-----BEGIN ENCRYPTED PRIVATE KEY-----", b"-----END ENCRYPTED PRIVATE KEY-----"
    if begin not in data or end not in data:
        return
    body = data.split(begin, 1)[1].split(end, 1)[0]
    try:
        pfx.check_encrypted_key(base64.b64decode(body))
    except pfx.TooCostly as refusal:
        raise CertificateError(str(refusal)) from None
    except (pfx.Unreadable, ValueError):
        pass  # cryptography says what is wrong with it


def _signs_correctly(key: rsa.RSAPrivateKey) -> bool:
    sample = b"appliance key check"
    try:
        signature = key.sign(sample, padding.PKCS1v15(), hashes.SHA256())
        key.public_key().verify(signature, sample, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def validate_private_key(pem: str) -> None:
    try:
        load_private_key(pem, thorough=False)
    except KeyRefused as refusal:
        raise ValueError(f"is refused: {refusal}") from None
    except CertificateError:
        raise ValueError("is not an unencrypted PEM private key") from None


def private_key_pem(key) -> str:
    return key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def certificate_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(PEM).decode()


@dataclass
class CertificateFile:
    """What an uploaded file held: certificates in file order, and whether a key block was skipped."""

    certificates: list[x509.Certificate] = field(default_factory=list)
    had_private_key: bool = False


def _usable(certificates: list[x509.Certificate]) -> list[x509.Certificate]:
    try:
        return readable(certificates)
    except UNUSABLE as exc:
        raise CertificateError(
            f"The file holds a certificate this appliance cannot use ({str(exc).rstrip('.') or type(exc).__name__})"
        ) from None


def read_certificate_file(data: bytes) -> CertificateFile:
    """Certificates from PEM (one or a bundle), DER, or PKCS#7 (.p7b, PEM or DER)."""
    content = _read_certificate_file(data)
    _usable(content.certificates)
    return content


def _read_certificate_file(data: bytes) -> CertificateFile:
    if not data.strip():
        raise CertificateError("The file is empty")
    if b"-----BEGIN" in data:
        if b"-----BEGIN PKCS7-----" in data:
            return CertificateFile(_pkcs7(pkcs7.load_pem_pkcs7_certificates, data))
        had_key = b"PRIVATE KEY-----" in data
        try:
            certificates = x509.load_pem_x509_certificates(data)
        except ValueError:
            raise CertificateError("The file has PEM blocks but no readable certificate") from None
        return CertificateFile(certificates, had_key)
    try:
        return CertificateFile([x509.load_der_x509_certificate(data)])
    except ValueError:
        pass
    try:
        return CertificateFile(_pkcs7(pkcs7.load_der_pkcs7_certificates, data))
    except CertificateError:
        raise CertificateError("The file is not a certificate: expected PEM, DER or PKCS#7 (.p7b)") from None


def _pkcs7(loader, data: bytes) -> list[x509.Certificate]:
    try:
        with warnings.catch_warnings():
            # openssl crl2pkcs7 (and Windows) write the certificate set unsorted, which is BER, not DER;
            # cryptography reads it and says so. Such files are what admins have: no warning for them.
            warnings.filterwarnings("ignore", message="PKCS#7 certificates could not be parsed as DER")
            certificates = loader(data)
    except ValueError:
        raise CertificateError("The PKCS#7 file cannot be read") from None
    if not certificates:
        raise CertificateError("The PKCS#7 file holds no certificate")
    return certificates


# --- describing --------------------------------------------------------------


def common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def describe(certificate: x509.Certificate) -> str:
    """How messages name a certificate: its CN, else its whole subject."""
    name = common_name(certificate)
    return f"'{name}'" if name else f"'{certificate.subject.rfc4514_string() or '(empty subject)'}'"


def alternative_names(certificate: x509.Certificate | x509.CertificateSigningRequest) -> list[str]:
    try:
        extension = certificate.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except x509.ExtensionNotFound:
        return []
    names = extension.value.get_values_for_type(x509.DNSName)
    return names + [str(a) for a in extension.value.get_values_for_type(x509.IPAddress)]


def is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def is_self_signed(certificate: x509.Certificate) -> bool:
    if certificate.issuer != certificate.subject:
        return False
    return issued_by(certificate, certificate)


def issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True if ``issuer``'s name and key signed ``certificate``."""
    if certificate.issuer != issuer.subject:
        return False
    try:
        certificate.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def public_key_id(key_or_certificate) -> bytes:
    """The DER public key, to compare a key with a certificate or CSR."""
    public = key_or_certificate.public_key()
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def summarize(pem: str) -> str:
    """One line for the diff: the certificate's common name and expiry."""
    try:
        certificate = load_certificate(pem)
    except ValueError:
        return "(unreadable certificate)"
    return f"CN={common_name(certificate) or '(none)'}, expires {certificate.not_valid_after_utc:%Y-%m-%d}"


def summarize_csr(pem: str) -> str:
    try:
        request = x509.load_pem_x509_csr(pem.encode())
    except ValueError:
        return "(unreadable request)"
    names = request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return f"signing request for CN={names[0].value if names else '(none)'}"


def validate_csr(pem: str) -> None:
    try:
        x509.load_pem_x509_csr(pem.encode())
    except ValueError:
        raise ValueError("is not a PEM certificate signing request") from None


def validity_problem(certificate: x509.Certificate, now: datetime.datetime | None = None) -> str:
    """'' if ``certificate`` is valid now, else why not (expired, not yet valid)."""
    now = now or datetime.datetime.now(datetime.UTC)
    if certificate.not_valid_after_utc < now:
        return f"{describe(certificate)} expired on {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    if certificate.not_valid_before_utc > now:
        return f"{describe(certificate)} is not valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
    return ""


# --- making ------------------------------------------------------------------


def validate_country(value: str) -> None:
    if value and not (len(value) == 2 and value.isascii() and value.isalpha()):
        raise ValueError("Country should be a ISO two character country code (DE, US, …)")


def validate_alternative_name(name: str) -> None:
    """A DNS name (a leading ``*.`` allowed) or an IP address."""
    try:
        ipaddress.ip_address(name)
        return
    except ValueError:
        pass
    try:
        validate_hostname(name.removeprefix("*."))
    except ValueError:
        raise ValueError(f"{name!r} is neither a DNS name nor an IP address") from None


@dataclass
class Subject:
    """The distinguished name fields of Create Self-Signed Certificate."""

    common_name: str
    organization: str = ""
    organizational_unit: str = ""
    city: str = ""
    state: str = ""
    country: str = ""

    def validate(self) -> None:
        """CertificateError naming the field the CA and X.509 would refuse."""
        if not 1 <= len(self.common_name) <= 64:
            raise CertificateError("The Common Name must have 1 to 64 characters")
        try:
            validate_country(self.country)
        except ValueError as exc:
            raise CertificateError(str(exc)) from None
        for label, value in (
            ("Organization", self.organization),
            ("Organizational Unit", self.organizational_unit),
            ("City", self.city),
            ("State", self.state),
        ):
            if len(value) > 128:
                raise CertificateError(f"The {label} may have at most 128 characters")

    def name(self) -> x509.Name:
        parts = [
            (NameOID.COUNTRY_NAME, self.country.upper()),
            (NameOID.STATE_OR_PROVINCE_NAME, self.state),
            (NameOID.LOCALITY_NAME, self.city),
            (NameOID.ORGANIZATION_NAME, self.organization),
            (NameOID.ORGANIZATIONAL_UNIT_NAME, self.organizational_unit),
            (NameOID.COMMON_NAME, self.common_name),
        ]
        return x509.Name([x509.NameAttribute(oid, value) for oid, value in parts if value])


def _general_names(names: list[str]) -> list[x509.GeneralName]:
    result = []
    for name in names:
        try:
            result.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            result.append(x509.DNSName(name))
    return result


def self_signed(key, subject: x509.Name, names: list[str], days: int) -> x509.Certificate:
    """A self-signed server certificate for ``names`` (DNS names or IP addresses)."""
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [x509.ExtendedKeyUsageOID.SERVER_AUTH, x509.ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(_general_names(names)), critical=False)
    return builder.sign(key, hashes.SHA256())


def signing_request(key, subject: x509.Name, names: list[str]) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(_general_names(names)), critical=False)
    return builder.sign(key, hashes.SHA256())


def csr_pem(request: x509.CertificateSigningRequest) -> str:
    return request.public_bytes(PEM).decode()


# --- PKCS#12 -----------------------------------------------------------------


@dataclass
class Pkcs12Content:
    key: object
    certificate: x509.Certificate
    chain: list[x509.Certificate]
    friendly_name: str


UNREADABLE_PKCS12 = "The file is not a readable PKCS#12 file (damaged, or another format)"


def read_pkcs12(data: bytes, password: str) -> Pkcs12Content:
    """Key, certificate and chain of a PKCS#12 file (OpenSSL 1.x and 3, Windows, Java).

    Its iteration counts are read first and refused over ``pfx.MAX_ITERATIONS``; then the worker
    decrypts it (PBKDF2 and OpenSSL's RSA check) within the deadline. Call it before the submit."""
    if not data:
        raise CertificateError("The PKCS#12 file is empty")
    try:
        pfx.check_pkcs12(data)
    except pfx.TooCostly as refusal:
        raise CertificateError(str(refusal)) from None
    except pfx.Unreadable:
        raise CertificateError(UNREADABLE_PKCS12) from None
    job = {"job": "open_pkcs12", "data": base64.b64encode(data).decode(), "password": password or ""}
    opened = in_worker(job, "Opening the PKCS#12 file")
    refused = opened.get("refused")
    if refused == "password":
        raise WrongPassword("The password does not open this PKCS#12 file")
    if refused == "unsupported":
        raise CertificateError(
            f"The PKCS#12 file uses an algorithm or key this appliance does not support: {KEY_POLICY}"
        )
    if refused:
        raise CertificateError(UNREADABLE_PKCS12)
    if opened["key"] is None:
        raise CertificateError("The PKCS#12 file holds no private key, only certificates")
    if opened["certificate"] is None:
        raise CertificateError("The PKCS#12 file holds a private key but no certificate for it")
    # OpenSSL checked the key in the worker: parsed only here.
    key = serialization.load_pem_private_key(
        opened["key"].encode(), None, unsafe_skip_rsa_key_validation=True
    )
    check_key_policy(key)
    certificate = x509.load_pem_x509_certificate(opened["certificate"].encode())
    chain = [x509.load_pem_x509_certificate(pem.encode()) for pem in opened["chain"]]
    _usable([certificate, *chain])
    return Pkcs12Content(key, certificate, chain, opened["friendly_name"])


class Pkcs12Profile(models.TextChoices):
    MODERN = "modern", "Modern (AES-256-CBC, PBKDF2-SHA256, SHA-256 MAC)"
    COMPATIBLE = "compatible", "Compatible (3DES, SHA-1 MAC) for old importers"


def write_pkcs12(
    name: str, key, certificate: x509.Certificate, chain: list[x509.Certificate], password: str, profile: str
) -> bytes:
    if Pkcs12Profile(profile) is Pkcs12Profile.MODERN:
        algorithm, mac = pkcs12.PBES.PBESv2SHA256AndAES256CBC, hashes.SHA256()
    else:
        algorithm, mac = pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC, hashes.SHA1()
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(100_000 if mac.name == "sha256" else 2048)
        .key_cert_algorithm(algorithm)
        .hmac_hash(mac)
        .build(password.encode())
    )
    return pkcs12.serialize_key_and_certificates(name.encode(), key, certificate, chain or None, encryption)
