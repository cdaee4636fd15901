"""The ``<certificates>`` and ``<certificate_authorities>`` configuration sections."""

from __future__ import annotations

from cryptography import x509

from appliance.config import checks, levels
from appliance.config.sections import Field, Kind, Section, registry
from appliance.validators import validate_object_name
from certificates import downloads, pki, selectors
from certificates.chains import arrange
from certificates.models import AuthoritySettings, Certificate, CustomAuthority
from certificates.store import DEMO_NAME


def _read_certificates(level):
    return [
        {
            "certificate_name": c.name,
            "certificate_pem": c.certificate_pem,
            "intermediate_certificate": list(c.intermediates),
            "csr_pem": c.csr_pem,
            "private_key": c.private_key_sealed,
            "pending_private_key": c.pending_key_sealed,
        }
        for c in Certificate.objects.at(level)
    ]


def _write_certificates(items, level):
    rows = [
        Certificate(
            name=item["certificate_name"],
            certificate_pem=item["certificate_pem"],
            intermediates=list(item["intermediate_certificate"]),
            csr_pem=item["csr_pem"] or "",
            private_key_sealed=item["private_key"],
            pending_key_sealed=item["pending_private_key"] or "",
        )
        for item in items
    ]
    for row in rows:
        row.read_metadata()
    Certificate.objects.at(level).delete()
    Certificate.objects.at(level).bulk_create(rows)


def _clean_certificate(item):
    """Given plaintext keys: the key fits the certificate, the CSR fits a key, the chain is in order."""
    problems = []
    certificate = pki.load_certificate(item["certificate_pem"])
    # The field check (validate_private_key) has signed with each key already: parse them only.
    key = pki.load_private_key(item["private_key"], thorough=False, checked=True)
    if pki.public_key_id(key) != pki.public_key_id(certificate):
        problems.append(("private_key", f"does not match the certificate of '{item['certificate_name']}'"))
    if item["csr_pem"]:
        request = x509.load_pem_x509_csr(item["csr_pem"].encode())
        keys = [key] + (
            [pki.load_private_key(item["pending_private_key"], thorough=False, checked=True)]
            if item["pending_private_key"]
            else []
        )
        if pki.public_key_id(request) not in {pki.public_key_id(k) for k in keys}:
            problems.append(("csr_pem", "was not made with this entry's private key"))
    elif item["pending_private_key"]:
        problems.append(("pending_private_key", "belongs to a renewal: it needs the <csr_pem> made with it"))
    chain = [pki.load_certificate(pem) for pem in item["intermediate_certificate"]]
    try:
        arranged = arrange(certificate, chain)
    except pki.CertificateError as exc:
        problems.append(("intermediate_certificate", str(exc)))
    else:
        if len({pki.fingerprint(c) for c in chain}) != len(chain):
            problems.append(("intermediate_certificate", "lists the same certificate twice"))
        elif arranged.intermediates != chain:
            problems.append(
                (
                    "intermediate_certificate",
                    "must be in chain order (issuer of the certificate first), without the root",
                )
            )
    return problems


def _read_authorities():
    settings = AuthoritySettings.load()
    return [
        {
            "system_list_enabled": settings.system_list_enabled,
            "custom_list_enabled": settings.custom_list_enabled,
            "custom_ca_pem": [authority.pem for authority in CustomAuthority.objects.all()],
        }
    ]


def _write_authorities(items):
    [item] = items
    AuthoritySettings.objects.update_or_create(
        pk=1,
        defaults={
            "system_list_enabled": item["system_list_enabled"],
            "custom_list_enabled": item["custom_list_enabled"],
        },
    )
    CustomAuthority.objects.all().delete()
    CustomAuthority.objects.bulk_create(
        CustomAuthority.from_pem(pem, position) for position, pem in enumerate(item["custom_ca_pem"])
    )


def validate_authority(pem: str) -> None:
    pki.validate_certificate(pem)
    if not pki.is_ca(pki.load_certificate(pem)):
        raise ValueError("is not a CA certificate (its basic constraints do not say CA:TRUE)")


def _clean_authorities(item):
    seen = set()
    for pem in item["custom_ca_pem"]:
        key = pki.fingerprint(pki.load_certificate(pem))
        if key in seen:
            return [("custom_ca_pem", f"lists the CA {pki.describe(pki.load_certificate(pem))} twice")]
        seen.add(key)
    return []


def demo_in_use(config) -> list[str]:
    """The ESA's commit warning when the shipped certificate does any work."""
    users = [
        section.item_name(item)
        for section, f in registry.references_to("certificates")
        for item in config.get(section.tag, [])
        if item.get(f.tag) == DEMO_NAME
    ]
    if not users:
        return []
    return [
        f"You are currently using a demonstration certificate ({DEMO_NAME}) which is not secure "
        f"and is not recommended for general use (used by {', '.join(users)})"
    ]


def register_sections():
    registry.register(
        Section(
            tag="certificates",
            title="Certificates",
            heading="Certificates",
            position=20,
            item_tag="certificate",
            key="certificate_name",
            fields=(
                Field("certificate_name", "Name", validate=validate_object_name),
                Field(
                    "certificate_pem",
                    "Certificate",
                    validate=pki.validate_certificate,
                    summarize=pki.summarize,
                ),
                Field(
                    "intermediate_certificate",
                    "Intermediate certificates",
                    repeated=True,
                    validate=pki.validate_certificate,
                    summarize=pki.summarize,
                ),
                Field(
                    "csr_pem",
                    "Signing request",
                    default="",
                    validate=pki.validate_csr,
                    summarize=pki.summarize_csr,
                ),
                Field("private_key", "Private key", Kind.SECRET, validate=pki.validate_private_key),
                Field(
                    "pending_private_key",
                    "New private key (renewal)",
                    Kind.SECRET,
                    default="",
                    validate=pki.validate_private_key,
                ),
            ),
            read=_read_certificates,
            write=_write_certificates,
            clean_item=_clean_certificate,
            choices=selectors.certificate_choices,
            advice=selectors.warnings_for,
        )
    )
    registry.register(
        Section(
            tag="certificate_authorities",
            title="Certificate Authorities",
            heading="Certificates",
            position=21,
            fields=(
                Field("system_list_enabled", "System List", Kind.BOOL, default=True),
                Field("custom_list_enabled", "Custom List", Kind.BOOL, default=False),
                Field(
                    "custom_ca_pem",
                    "Custom List certificates",
                    repeated=True,
                    validate=validate_authority,
                    summarize=pki.summarize,
                ),
            ),
            read=_read_authorities,
            write=_write_authorities,
            clean_item=_clean_authorities,
        )
    )
    registry.register_feature(levels.Feature("certificates", "Certificates", ("certificates",)))
    checks.register_warning(demo_in_use)
    checks.register_warning(selectors.configuration_warnings)
    checks.register_discard_warning(downloads.destroyed_keys)
