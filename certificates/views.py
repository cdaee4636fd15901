"""Network > Certificates."""

from __future__ import annotations

from django.shortcuts import render

from appliance.config.sections import registry
from appliance.roles import Capability, requires
from certificates import pem
from certificates.models import Certificate


def where_used() -> dict[str, list[str]]:
    """Certificate name → what uses it in the candidate, asked of every section that names certificates."""
    used: dict[str, list[str]] = {}
    for section, f in registry.references_to("certificates"):
        for item in section.read():
            if item.get(f.tag):
                used.setdefault(item[f.tag], []).append(f"{section.item_name(item)} ({f.label})")
    return used


@requires(Capability.VIEW_CONFIG)
def certificate_list(request):
    used = where_used()
    rows = []
    for certificate in Certificate.objects.all():
        leaf = pem.load_certificates(certificate.certificate_pem)[0]
        rows.append(
            {
                "name": certificate.name,
                "common_name": pem.common_name(leaf),
                "issued_by": leaf.issuer.rfc4514_string(),
                "expires": leaf.not_valid_after_utc,
                "used_by": used.get(certificate.name, []),
            }
        )
    return render(request, "certificates/list.html", {"rows": rows})
