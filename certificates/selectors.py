"""Choosing a certificate for a service: the choices offered and the advice given.

The guide's classic failure is a certificate whose names cover neither the
interface hostname nor the MX record; an expired certificate or a signing
request still waiting for its CA are the others. Each is a warning, on submit
and on Uncommitted Changes, never a refusal.
"""

from __future__ import annotations

from appliance.config.sections import Config, registry
from certificates import pki, verify
from certificates.models import Certificate


def certificate_choices(level: str, blank: str | None = None) -> list[tuple[str, str]]:
    """The certificates of ``level`` that can serve (every entry has its private key), labelled with
    their status."""
    choices = [("", blank)] if blank is not None else []
    entries = Certificate.objects.at(level).only("name", "csr_pem", "self_signed", "not_before", "not_after")
    for entry in entries:
        choices.append((entry.name, f"{entry.name} ({entry.status.label})"))
    return choices


def problems(name: str, certificate_pem: str, csr_pending: bool, hostnames: list[str]) -> list[str]:
    """What an administrator should know about using certificate ``name`` for these host names."""
    certificate = pki.load_certificate(certificate_pem)
    found = []
    validity = pki.validity_problem(certificate)
    if validity:
        found.append(f"The certificate '{name}': {validity}")
    if csr_pending and pki.is_self_signed(certificate):
        found.append(f"The certificate '{name}' is still self-signed: its signing request waits for the CA")
    names = verify.certificate_names(certificate)  # verify's names and matcher: what verifying will find
    for hostname in hostnames:
        if hostname and not verify.covers(names, hostname):
            found.append(
                f"The certificate '{name}' ({', '.join(names)}) does not cover the host name {hostname}"
            )
    return found


def warnings_for(level: str, name: str, hostnames: list[str] = ()) -> list[str]:
    """Advice for choosing certificate ``name`` (of ``level`` in the candidate) for these host names."""
    entry = Certificate.objects.at(level).filter(name=name).first()
    if entry is None:
        return []
    return problems(name, entry.certificate_pem, bool(entry.csr_pem), list(hostnames))


def configuration_warnings(config: Config) -> list[str]:
    """Every service's certificate checked, for Uncommitted Changes and the commit result."""
    certificates = {item["certificate_name"]: item for item in config.get("certificates", [])}
    found = []
    for section, f in registry.references_to("certificates"):
        for item in config.get(section.tag, []):
            name = item.get(f.tag)
            if not name or name not in certificates:
                continue
            entry = certificates[name]
            hostnames = f.covers(item, config) if f.covers else []
            for problem in problems(name, entry["certificate_pem"], bool(entry["csr_pem"]), hostnames):
                found.append(f"{section.item_name(item)} ({f.label}): {problem}")
    return found
