"""What an administrator does to the certificate store, for the pages and ``certconfig`` alike.

Each operation acts on the certificates of one level (``level``: the one the administrator's mode
sees) and changes candidate rows; it is meant to run inside
``workflow.submit``: nothing takes effect before a commit. A refusal is a
``CertificateError`` naming the problem; nothing is half-saved because the
submit's transaction rolls back.
"""

from __future__ import annotations

from cryptography import x509

from appliance import vault
from appliance.config import levels
from appliance.config.sections import registry
from appliance.validators import validate_object_name
from appliance.workflow import Outcome
from certificates import pki
from certificates.chains import arrange
from certificates.models import AuthoritySettings, Certificate, CustomAuthority
from certificates.pki import CertificateError

DEMO_NAME = "Demo"
MAX_DAYS = 3650 * 3


class DatesRefused(CertificateError):
    """An expired or not-yet-valid certificate: refused unless the administrator accepts it."""


def seal(key) -> str:
    return vault.seal(pki.private_key_pem(key))


def unseal(sealed: str):
    """A key the appliance checked when it came in."""
    return pki.load_private_key(vault.unseal(sealed), thorough=False)


def get(level: str, name: str) -> Certificate:
    certificate = Certificate.objects.at(level).filter(name=name).first()
    if certificate is None:
        raise CertificateError(f"There is no certificate named '{name}'")
    return certificate


def where_used(mode: levels.Mode) -> dict[str, list[str]]:
    """Certificate name → what uses it in the candidate as ``mode`` sees it, asked of every section
    that names certificates."""
    return registry.where_used("certificates", mode)


def users_of(mode: levels.Mode, name: str) -> list[str]:
    return where_used(mode).get(name, [])


def chain_notes(entry: Certificate) -> list[str]:
    """What a client needs besides the served chain, in words."""
    top = (entry.chain or [entry.certificate])[-1]
    if pki.is_self_signed(top):
        return ["Self-signed: clients must trust this certificate itself."]
    issuer = top.issuer.get_attributes_for_oid(pki.NameOID.COMMON_NAME)
    name = issuer[0].value if issuer else top.issuer.rfc4514_string()
    return [f"The last certificate served is issued by '{name}', which clients must already trust."]


def _new_name(level: str, name: str) -> None:
    try:
        validate_object_name(name)
    except ValueError as exc:
        raise CertificateError(f"The certificate name {exc}") from None
    if Certificate.objects.at(level).filter(name=name).exists():
        raise CertificateError(f"A certificate named '{name}' already exists")


def _check_dates(certificate: x509.Certificate, accept: bool, outcome: Outcome) -> None:
    problem = pki.validity_problem(certificate)
    if not problem:
        return
    if not accept:
        raise DatesRefused(f"The certificate {problem}")
    outcome.warnings.append(f"The certificate {problem}; accepted as asked.")


def _check_leaf(certificate: x509.Certificate) -> None:
    # A self-signed certificate often says CA:TRUE (openssl req -x509 does): it serves as itself.
    if pki.is_ca(certificate) and not pki.is_self_signed(certificate):
        raise CertificateError(
            f"{pki.describe(certificate)} is a CA certificate, not a server certificate: "
            "upload it as an intermediate"
        )


# --- create, paste, import ---------------------------------------------------


def create_self_signed(
    level: str, name: str, subject: pki.Subject, days: int, names: list[str], key_type: str, key=None
) -> Certificate:
    """Create Self-Signed Certificate: a new key, the certificate, and a CSR for the same key.

    ``key``: made of ``key_type`` before the submit (``pki.generate_key``), as the pages and
    ``certconfig`` do; made here otherwise."""
    _new_name(level, name)
    subject.validate()
    if not 1 <= days <= MAX_DAYS:
        raise CertificateError(f"The duration must be between 1 and {MAX_DAYS} days")
    for alternative in names:
        try:
            pki.validate_alternative_name(alternative)
        except ValueError as exc:
            raise CertificateError(f"The Subject Alternative Name {exc}") from None
    key = key or pki.generate_key(key_type)
    names = names or [subject.common_name]
    certificate = pki.self_signed(key, subject.name(), names, days)
    request = pki.signing_request(key, subject.name(), names)
    return Certificate.objects.at(level).create(
        name=name,
        certificate_pem=pki.certificate_pem(certificate),
        csr_pem=pki.csr_pem(request),
        private_key_sealed=seal(key),
    )


def create_demo_certificate(hostname: str) -> None:
    """The self-signed certificate the appliance ships with, as the ESA does (no CSR)."""
    key = pki.generate_key(pki.KeyType.RSA2048)
    subject = pki.Subject(common_name=hostname, organization="Mail Gateway Demo Certificate")
    certificate = pki.self_signed(key, subject.name(), [hostname], days=3650)
    Certificate.objects.at(levels.CLUSTER).update_or_create(
        name=DEMO_NAME,
        defaults={"certificate_pem": pki.certificate_pem(certificate), "private_key_sealed": seal(key)},
    )


def _add(level: str, name, key, certificate, chain, accept_dates: bool) -> Outcome:
    outcome = Outcome()
    _check_leaf(certificate)
    if pki.public_key_id(key) != pki.public_key_id(certificate):
        raise CertificateError(f"The certificate {pki.describe(certificate)} does not match the private key")
    _check_dates(certificate, accept_dates, outcome)
    arranged = arrange(certificate, chain)
    outcome.notes += arranged.notes
    _new_name(level, name)
    Certificate.objects.at(level).create(
        name=name,
        certificate_pem=pki.certificate_pem(certificate),
        intermediates=[pki.certificate_pem(c) for c in arranged.intermediates],
        private_key_sealed=seal(key),
    )
    return outcome


def paste(
    level: str,
    name: str,
    certificate_data: bytes,
    key_pem: str,
    passphrase: str | None = None,
    intermediates_data: bytes | None = None,
    accept_dates: bool = False,
) -> Outcome:
    """certconfig PASTE: a certificate, its private key (encrypted or not) and intermediates."""
    key = pki.load_private_key(key_pem, passphrase)
    found = pki.read_certificate_file(certificate_data).certificates
    leaf = _matching(found, key, name)
    chain = [c for c in found if c is not leaf]
    if intermediates_data:
        chain += pki.read_certificate_file(intermediates_data).certificates
    return _add(level, name, key, leaf, chain, accept_dates)


def import_pkcs12(
    level: str, name: str, content: pki.Pkcs12Content, accept_dates: bool = False
) -> tuple[str, Outcome]:
    """Import Certificate: key, leaf and chain of a PKCS#12 file opened before the submit
    (``pki.read_pkcs12``); the name defaults to the CN."""
    name = name or pki.common_name(content.certificate) or content.friendly_name
    if not name:
        raise CertificateError("The certificate has no common name: give the certificate a name")
    return name, _add(level, name, content.key, content.certificate, content.chain, accept_dates)


# --- signed certificate and intermediates ------------------------------------


def _matching(found: list[x509.Certificate], key, name: str) -> x509.Certificate:
    """The certificate of ``found`` that belongs to ``key``."""
    target = pki.public_key_id(key)
    for certificate in found:
        if pki.public_key_id(certificate) == target:
            return certificate
    listed = ", ".join(pki.describe(c) for c in found)
    if len(found) == 1:
        raise CertificateError(f"The certificate {listed} does not match the private key of '{name}'")
    raise CertificateError(
        f"None of the certificates in the file ({listed}) matches the private key of '{name}'"
    )


def upload_signed(level: str, name: str, data: bytes, accept_dates: bool = False) -> Outcome:
    """Upload Signed Certificate: replaces the self-signed one and keeps the key (or the renewal key)."""
    entry = get(level, name)
    content = pki.read_certificate_file(data)
    keys = {"current": unseal(entry.private_key_sealed)}
    if entry.pending_key_sealed:
        keys["renewal"] = unseal(entry.pending_key_sealed)
    target = {pki.public_key_id(k): which for which, k in keys.items()}
    leaf = next((c for c in content.certificates if pki.public_key_id(c) in target), None)
    if leaf is None:
        if all(pki.is_ca(c) for c in content.certificates):
            _check_leaf(content.certificates[0])  # only CA certificates: say so, not "does not match"
        _matching(content.certificates, keys["current"], name)  # raises with the names found
    _check_leaf(leaf)
    outcome = Outcome()
    if content.had_private_key:
        outcome.notes.append("The private key block in the file was ignored: the entry keeps its own key.")
    _check_dates(leaf, accept_dates, outcome)
    if pki.is_self_signed(leaf):
        raise CertificateError(f"{pki.describe(leaf)} is self-signed: upload the certificate your CA signed")
    arranged = arrange(leaf, [c for c in content.certificates if c is not leaf])
    if not arranged.intermediates and entry.intermediates:
        try:
            arranged = arrange(leaf, entry.chain)
            outcome.notes.append("The intermediates uploaded before still fit and are kept.")
        except CertificateError:
            outcome.notes.append(
                "The intermediates uploaded before do not belong to the new certificate and were removed."
            )
    outcome.notes += arranged.notes
    if target[pki.public_key_id(leaf)] == "renewal":
        entry.private_key_sealed = entry.pending_key_sealed
    entry.pending_key_sealed = ""
    entry.csr_pem = ""
    entry.certificate_pem = pki.certificate_pem(leaf)
    entry.intermediates = [pki.certificate_pem(c) for c in arranged.intermediates]
    entry.save()
    return outcome


def add_intermediates(level: str, name: str, data: bytes) -> Outcome:
    entry = get(level, name)
    found = pki.read_certificate_file(data).certificates
    arranged = arrange(entry.certificate, entry.chain + found)
    entry.intermediates = [pki.certificate_pem(c) for c in arranged.intermediates]
    entry.save()
    return Outcome(notes=arranged.notes)


def remove_intermediate(level: str, name: str, fingerprint: str) -> None:
    entry = get(level, name)
    kept = [c for c in entry.chain if pki.fingerprint(c) != fingerprint]
    if len(kept) == len(entry.intermediates):
        raise CertificateError(f"'{name}' has no such intermediate certificate")
    entry.intermediates = [pki.certificate_pem(c) for c in arrange(entry.certificate, kept).intermediates]
    entry.save()


# --- renew, delete -----------------------------------------------------------


def renewal_key(level: str, name: str):
    """The new key of a renewal: like the entry's. Made before the submit (it may take seconds)."""
    return pki.generate_key_like(unseal(get(level, name).private_key_sealed))


def renew(level: str, name: str, new_key: bool = False, key=None) -> str:
    """Renew: self-signed gets a new self-signed certificate; CA-signed a new CSR, the old one stays in service.

    ``key``: the new key (``renewal_key``) when ``new_key``, made before the submit; made here otherwise.
    Returns what happened, in a sentence.
    """
    entry = get(level, name)
    current = entry.certificate
    if new_key:
        key = key or renewal_key(level, name)
    names = pki.alternative_names(current)
    if entry.self_signed:
        key = key or unseal(entry.private_key_sealed)
        days = max((current.not_valid_after_utc - current.not_valid_before_utc).days, 1)
        renewed = pki.self_signed(key, current.subject, names, days)
        entry.certificate_pem = pki.certificate_pem(renewed)
        entry.private_key_sealed = seal(key)
        if entry.csr_pem or new_key:
            entry.csr_pem = pki.csr_pem(pki.signing_request(key, current.subject, names))
        entry.save()
        return (
            f"'{name}' has a new self-signed certificate valid until {renewed.not_valid_after_utc:%Y-%m-%d}."
        )
    signing_key = key or unseal(entry.private_key_sealed)
    entry.csr_pem = pki.csr_pem(pki.signing_request(signing_key, current.subject, names))
    entry.pending_key_sealed = seal(key) if key else ""
    entry.save()
    return (
        f"'{name}' has a new signing request{' for a new key' if key else ''}; the current certificate "
        "stays in service until the signed one is uploaded."
    )


def delete(mode: levels.Mode, name: str) -> None:
    """Delete certificate ``name`` of the level ``mode`` sees, unless something there uses it."""
    entry = get(mode.seen("certificates"), name)
    users = users_of(mode, name)
    if users:
        raise CertificateError(f"'{name}' cannot be deleted while it is used by {', '.join(users)}")
    entry.delete()


# --- export ------------------------------------------------------------------


PKCS12_MIN_PASSWORD = 8


def export_pkcs12(level: str, name: str, password: str, profile: str) -> bytes:
    if len(password) < PKCS12_MIN_PASSWORD:
        raise CertificateError(f"The file password needs at least {PKCS12_MIN_PASSWORD} characters")
    entry = get(level, name)
    return pki.write_pkcs12(
        name, unseal(entry.private_key_sealed), entry.certificate, entry.chain, password, profile
    )


def export_pem(level: str, name: str, full_chain: bool) -> str:
    entry = get(level, name)
    return (
        entry.certificate_pem.strip()
        + "\n"
        + ("".join(pem.strip() + "\n" for pem in entry.intermediates) if full_chain else "")
    )


# --- Certificate Authorities -------------------------------------------------


def add_custom_authorities(data: bytes) -> Outcome:
    """Custom List import, with the ESA's checks: a CA, not expired, not twice."""
    found = pki.read_certificate_file(data).certificates
    outcome = Outcome()
    known = set(CustomAuthority.objects.values_list("fingerprint", flat=True))
    position = CustomAuthority.objects.count()
    for certificate in found:
        if not pki.is_ca(certificate):
            raise CertificateError(f"{pki.describe(certificate)} is not a CA certificate (no CA:TRUE)")
        problem = pki.validity_problem(certificate)
        if problem:
            raise CertificateError(f"The CA {problem}")
        fingerprint = pki.fingerprint(certificate)
        if fingerprint in known:
            outcome.notes.append(f"The CA {pki.describe(certificate)} is already in the Custom List.")
            continue
        known.add(fingerprint)
        CustomAuthority.from_pem(pki.certificate_pem(certificate), position).save()
        position += 1
        outcome.notes.append(f"Added the CA {pki.describe(certificate)}.")
    return outcome


def remove_custom_authority(fingerprint: str) -> str:
    authority = CustomAuthority.objects.filter(fingerprint=fingerprint).first()
    if authority is None:
        raise CertificateError("The Custom List has no such CA certificate")
    authority.delete()
    return authority.subject


def set_authority_lists(system_enabled: bool, custom_enabled: bool) -> None:
    settings = AuthoritySettings.load()
    settings.system_list_enabled, settings.custom_list_enabled = system_enabled, custom_enabled
    settings.save()
