"""The ``<certificates>`` configuration section and the shipped Demo certificate."""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

from appliance import vault
from appliance.config import checks
from appliance.config.sections import Field, Kind, Section, registry
from appliance.validators import validate_object_name
from certificates import pem
from certificates.models import Certificate

DEMO_NAME = "Demo"

FIELDS = {
    "certificate_name": "name",
    "certificate": "certificate_pem",
    "intermediate_certificates": "intermediates_pem",
    "key": "private_key_sealed",
}


def _read():
    return [
        {tag: getattr(certificate, attribute) for tag, attribute in FIELDS.items()}
        for certificate in Certificate.objects.all()
    ]


def _write(items):
    Certificate.objects.all().delete()
    Certificate.objects.bulk_create(
        Certificate(**{attribute: item[tag] for tag, attribute in FIELDS.items()}) for item in items
    )


def _clean(item):
    if item["key"] and not pem.key_matches_certificate(item["key"], item["certificate"]):
        return [("key", f"does not match the certificate of '{item['certificate_name']}'")]
    return []


def demo_in_use(config) -> list[str]:
    """The ESA's commit warning when the shipped certificate does any work."""
    users = [
        f"{section.item_name(item)}"
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


def create_demo_certificate(hostname: str) -> None:
    """The self-signed certificate the appliance ships with, as the ESA does."""
    key = pem.generate_key("rsa2048")
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, hostname),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Mail Gateway Demo Certificate"),
        ]
    )
    certificate = pem.self_signed(key, subject, [hostname], days=3650)
    Certificate.objects.update_or_create(
        name=DEMO_NAME,
        defaults={
            "certificate_pem": pem.certificate_pem(certificate),
            "intermediates_pem": "",
            "private_key_sealed": vault.seal(pem.private_key_pem(key)),
        },
    )


def register_sections():
    registry.register(
        Section(
            tag="certificates",
            title="Certificates",
            heading="Certificates",
            position=20,
            item_tag="certificate_profile",
            key="certificate_name",
            fields=(
                Field("certificate_name", "Name", validate=validate_object_name),
                Field(
                    "certificate", "Certificate", validate=pem.validate_certificate, summarize=pem.summarize
                ),
                Field(
                    "intermediate_certificates",
                    "Intermediate certificates",
                    default="",
                    validate=pem.validate_intermediates,
                    summarize=pem.summarize,
                ),
                Field("key", "Private key", Kind.SECRET, validate=pem.validate_private_key),
            ),
            read=_read,
            write=_write,
            clean_item=_clean,
        )
    )
    checks.register_warning(demo_in_use)
