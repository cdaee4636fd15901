"""Certificate diagnostics: what is wrong with a certificate as it is served, and what to do about it.

``chain_findings`` judges a chain as a server sends it (the leaf, then the rest in the order sent)
with no database: dates (the thresholds of ``certificates.expiry``), a chain that does not reach a
trust anchor (naming the issuer that is missing), certificates served twice, out of order or from
another chain, a root served, weak keys and signatures, a self-signed leaf. Path checks go through
``certificates.verify``, the one verification, so the console's verdict is the delivery's. It serves
the appliance's own certificates and, later, a remote server's chain.

``diagnose`` adds, for one entry of the store, its names against the host names of the interfaces and
listeners that use it and against the MX hosts of the domains those listeners accept mail for (a few
DNS lookups within ``MX_BUDGET`` seconds). ``summary`` is the cheap form for the list page: no DNS, a
constant number of queries. The system hostname plays no part: clients see the interfaces' names.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

from appliance import dns
from appliance.alerts import Severity
from appliance.config import levels
from appliance.config.sections import Config, registry
from certificates import expiry, trust, verify
from certificates.models import Certificate
from certificates.pki import describe, fingerprint, issued_by, key_description

MX_BUDGET = 3.0  # seconds for all the MX lookups of one certificate
MX_MINIMUM = 0.05  # a lookup given less time is not started
MINIMUM_EC_BITS = 256
WEAK_HASHES = (hashes.MD5, hashes.SHA1)


# The alerts' scale (``appliance.alerts``): critical, clients fail or will within days; warning, some
# clients fail or will within a month; information, worth knowing, nothing fails.
ORDER = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFORMATION: 2}
BANNERS = {Severity.CRITICAL: "error", Severity.WARNING: "warning", Severity.INFORMATION: "info"}
WORDS = {Severity.CRITICAL: "error", Severity.WARNING: "warning", Severity.INFORMATION: "note"}

# Each kind of finding, as the list page's summary names it.
KINDS = {
    "expired": "expired",
    "expiring": "expiring",
    "not_yet_valid": "not yet valid",
    "chain_incomplete": "chain incomplete",
    "untrusted_root": "untrusted root",
    "not_verified": "not verified",
    "duplicate_intermediate": "intermediate served twice",
    "unrelated_intermediate": "unrelated intermediate",
    "wrong_order": "chain out of order",
    "root_served": "root served",
    "weak_key": "weak key",
    "weak_signature": "weak signature",
    "self_signed": "self-signed",
    "name_mismatch_interface": "does not cover an interface's host name",
    "name_mismatch_mx": "does not cover the MX hosts",
    "mx_unknown": "MX not looked up",
}


@dataclass(frozen=True)
class Finding:
    """One thing wrong: ``text`` says what, ``advice`` what to do, both in an administrator's words."""

    kind: str  # a key of KINDS
    severity: Severity
    text: str
    advice: str

    @property
    def label(self) -> str:
        return KINDS[self.kind]

    @property
    def word(self) -> str:
        """The severity as the pages say it of a certificate: "Error", "Warning", "Note"."""
        return WORDS[self.severity].capitalize()

    @property
    def banner(self) -> str:
        """The banner style of the console's stylesheet (banner-error, banner-warning, banner-info)."""
        return BANNERS[self.severity]


def ordered(findings: list[Finding]) -> list[Finding]:
    """Errors first, then warnings, then notes; the order found within each."""
    return sorted(findings, key=lambda finding: ORDER[finding.severity])


def worst(findings: list[Finding]) -> Finding | None:
    return ordered(findings)[0] if findings else None


def tally(findings: list[Finding]) -> str:
    """How many of each severity, as the list shows it: "1 error, 2 warnings" ("" for none)."""
    parts = []
    for severity in Severity:
        count = sum(1 for finding in findings if finding.severity == severity)
        if count:
            parts.append(f"{count} {WORDS[severity]}{'s' if count != 1 else ''}")
    return ", ".join(parts)


# --- the chain as served -------------------------------------------------------------------------


def chain_findings(
    leaf: x509.Certificate,
    served: list[x509.Certificate],
    anchors: list[x509.Certificate],
    now: datetime.datetime | None = None,
    *,
    own: bool = False,
) -> list[Finding]:
    """What is wrong with ``leaf`` served with ``served`` (the certificates after it, in the order
    sent; a chain that starts with the leaf itself is taken as sent), checked against ``anchors``
    (the enabled Certificate Authorities lists) at ``now``.

    ``own``: the appliance's own certificate, so the advice names the console's steps; otherwise
    it speaks of the server's administrator.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    if served and fingerprint(served[0]) == fingerprint(leaf):
        served = served[1:]
    advice = _OWN if own else _REMOTE
    trusted = verify.anchor_set(anchors)
    unique, duplicates = _unique(leaf, served)
    path = _path(leaf, unique)
    verified, reason = verify.verify_chain([leaf, *served], anchors, now) if anchors else (False, "")
    related = {fingerprint(c) for c in path}
    if verified:
        related |= {fingerprint(c) for c in verify.built_chain([leaf, *served], anchors, now)}

    findings = _served(leaf, unique, duplicates, path, related, trusted, advice)
    findings += _trust(leaf, path, anchors, trusted, verified, advice)
    findings += _dates(leaf, [c for c in path if not _self_signed(c)], now, advice)
    for certificate in [leaf, *unique]:
        is_anchor = certificate in trusted
        findings += _weakness(certificate, certificate is leaf, is_anchor, advice)
    if _self_signed(leaf):
        findings.append(
            Finding(
                "self_signed",
                Severity.WARNING,
                f"{describe(leaf)} is self-signed. CheckTLS and other outside testers report it as FAIL "
                "(not trusted), and partners whose TLS setting is Required-Verify will not deliver.",
                advice["self_signed"],
            )
        )
    if anchors and not verified and not EXPLAINED & {finding.kind for finding in findings}:
        findings.append(
            Finding(
                "not_verified",
                Severity.CRITICAL,
                f"The chain does not verify: {reason}.",
                advice["not_verified"],
            )
        )
    return ordered(findings)


# The findings that say why a chain does not verify; without one, the verifier's reason is shown.
EXPLAINED = {"expired", "not_yet_valid", "chain_incomplete", "untrusted_root", "weak_key", "weak_signature"}
EXPLAINED |= {"self_signed", "not_verified"}


def _served(leaf, unique, duplicates, path, related, trusted, advice) -> list[Finding]:
    """What the server sends beyond the chain: copies, strangers, the order, the root."""
    findings = [
        Finding(
            "duplicate_intermediate",
            Severity.WARNING,
            f"{describe(certificate)} is served more than once.",
            advice["duplicate_intermediate"],
        )
        for certificate in duplicates
    ]
    findings += [
        Finding(
            "unrelated_intermediate",
            Severity.WARNING,
            f"{describe(certificate)} (issued by {certificate.issuer.rfc4514_string()}) is served "
            f"but is not part of the chain of {describe(leaf)}.",
            advice["unrelated_intermediate"],
        )
        for certificate in unique
        if fingerprint(certificate) not in related
    ]
    findings += _order(path, unique, advice)
    findings += [
        Finding(
            "root_served",
            Severity.INFORMATION,
            f"The root {describe(certificate)} is served: clients use their own copy of a root, "
            "so it only makes every handshake longer.",
            advice["root_served"],
        )
        for certificate in path
        if _self_signed(certificate) and certificate in trusted
    ]
    return findings


def _trust(leaf, path, anchors, trusted, verified, advice) -> list[Finding]:
    """Whether the served chain reaches a trust anchor; if not, the issuer that is missing."""
    top = path[-1] if path else leaf
    if not anchors:
        return [
            Finding(
                "not_verified",
                Severity.INFORMATION,
                "No Certificate Authorities list is enabled, so the chain cannot be checked.",
                "Enable the System List or the Custom List (Network > Certificate Authorities).",
            )
        ]
    if verified or top is leaf and _self_signed(leaf):
        return []
    if _self_signed(top):
        if top in trusted:
            return []
        return [
            Finding(
                "untrusted_root",
                Severity.CRITICAL,
                f"The chain ends at the root {describe(top)}, which is in none of the enabled "
                "Certificate Authorities lists: clients that do not know this private CA fail.",
                advice["untrusted_root"],
            )
        ]
    if _issued_by_anchor(top, anchors):
        return []  # the chain is whole; dates, keys or the verifier's reason say what is wrong
    missing = top.issuer.rfc4514_string() or "(an empty name)"
    return [
        Finding(
            "chain_incomplete",
            Severity.CRITICAL,
            f"The chain is incomplete: the issuer of {describe(top)}, {missing}, is missing. "
            "It is not served and is no trusted CA, so clients cannot reach a trusted root.",
            advice["chain_incomplete"].format(issuer=missing),
        )
    ]


def _unique(leaf, served) -> tuple[list[x509.Certificate], list[x509.Certificate]]:
    """The served certificates once each (the leaf not among them), and those served again."""
    seen, unique, duplicates = {fingerprint(leaf)}, [], []
    for certificate in served:
        key = fingerprint(certificate)
        if key in seen:
            if all(fingerprint(d) != key for d in duplicates):
                duplicates.append(certificate)
            continue
        seen.add(key)
        unique.append(certificate)
    return unique, duplicates


def _path(leaf, unique) -> list[x509.Certificate]:
    """The served certificates from the leaf's issuer upward, each issued (name and signature) by the
    next; it stops at a self-signed root or at a certificate whose issuer is not served."""
    path, current, remaining = [], leaf, list(unique)
    while True:
        issuer = next((c for c in remaining if _linked(current, c)), None)
        if issuer is None:
            return path
        remaining.remove(issuer)
        path.append(issuer)
        if _self_signed(issuer):
            return path
        current = issuer


def _issued_by_anchor(certificate, anchors) -> bool:
    return any(_linked(certificate, anchor) for anchor in anchors if anchor.subject == certificate.issuer)


def _linked(certificate, issuer) -> bool:
    """Issued by ``issuer``: by name and signature, or by name alone when the signature uses a hash
    too weak for ``cryptography`` to check (MD5, SHA-1), which ``weak_signature`` reports."""
    if issued_by(certificate, issuer):
        return True
    return certificate.issuer == issuer.subject and _weak_hash(certificate) is not None


def _self_signed(certificate) -> bool:
    return _linked(certificate, certificate)


def _weak_hash(certificate) -> hashes.HashAlgorithm | None:
    try:
        algorithm = certificate.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None
    return algorithm if isinstance(algorithm, WEAK_HASHES) else None


def _order(path, unique, advice) -> list[Finding]:
    positions = [unique.index(c) for c in path]
    if positions == sorted(positions):
        return []
    served = ", ".join(describe(unique[p]) for p in sorted(positions))
    wanted = ", ".join(describe(c) for c in path)
    return [
        Finding(
            "wrong_order",
            Severity.WARNING,
            f"The intermediates are served out of order ({served}); each certificate should be "
            f"followed by its issuer: {wanted}. Strict clients stop at the first one that does not fit.",
            advice["wrong_order"],
        )
    ]


def _dates(leaf, intermediates, now, advice) -> list[Finding]:
    """The leaf's expiry by the thresholds; an intermediate's when it ends before the leaf."""
    findings = []
    for certificate in [leaf, *intermediates]:
        is_leaf = certificate is leaf
        name = f"The {'certificate' if is_leaf else 'intermediate'} {describe(certificate)}"
        until = certificate.not_valid_after_utc
        what = advice["intermediate_dates"]
        if is_leaf:
            what = advice["expiring"].format(date=f"{until:%Y-%m-%d}", renew=_renew(leaf))
        if now < certificate.not_valid_before_utc:
            findings.append(
                Finding(
                    "not_yet_valid",
                    Severity.CRITICAL,
                    f"{name} is not valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC: "
                    "clients refuse it until then.",
                    advice["not_yet_valid"] if is_leaf else what,
                )
            )
            continue
        reached = expiry.threshold_reached(until, now)
        if reached is None or (not is_leaf and until >= leaf.not_valid_after_utc):
            continue
        if reached == expiry.EXPIRED:
            text = f"{name} expired on {until:%Y-%m-%d %H:%M} UTC: clients refuse it."
            if is_leaf:
                what = advice["expired"].format(renew=_renew(leaf))
            findings.append(Finding("expired", Severity.CRITICAL, text, what))
            continue
        left = expiry.days_left(until, now)
        severity = expiry.severity_at(reached)
        days = "less than a day" if left < 1 else f"{left} day{'s' if left != 1 else ''}"
        text = f"{name} expires in {days}, on {until:%Y-%m-%d %H:%M} UTC."
        findings.append(Finding("expiring", severity, text, what))
    return findings


def _renew(leaf) -> str:
    if _self_signed(leaf):
        return "Renew on this page gives a new self-signed certificate with the same names"
    return (
        "Renew on this page makes a new signing request; have your CA sign it and upload the signed "
        "certificate (the current one serves until then)"
    )


def _weakness(certificate, is_leaf: bool, is_anchor: bool, advice) -> list[Finding]:
    findings = []
    which = "leaf" if is_leaf else "intermediate"
    key = certificate.public_key()
    weak = ""
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < verify.MINIMUM_RSA_BITS:
        weak = f"under {verify.MINIMUM_RSA_BITS} bits"
    elif isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < MINIMUM_EC_BITS:
        weak = f"a curve under {MINIMUM_EC_BITS} bits"
    elif isinstance(key, dsa.DSAPublicKey):
        weak = "DSA, which TLS clients no longer accept"
    if weak:
        findings.append(
            Finding(
                "weak_key",
                Severity.CRITICAL,
                f"{describe(certificate)} has a {key_description(key)} key: {weak}. "
                "Verifying clients (this appliance among them) refuse it.",
                advice[f"weak_key_{which}"],
            )
        )
    if is_anchor:
        return findings
    algorithm = _weak_hash(certificate)
    if algorithm is not None:
        findings.append(
            Finding(
                "weak_signature",
                Severity.CRITICAL,
                f"{describe(certificate)} is signed with {algorithm.name.upper()}, which clients no "
                "longer accept: such signatures can be forged.",
                advice[f"weak_signature_{which}"],
            )
        )
    return findings


_OWN = {
    "duplicate_intermediate": "Remove the extra copy: remove the intermediate and add it again once.",
    "unrelated_intermediate": (
        "Remove it under Intermediate Certificates; add only the intermediates your CA gave with this "
        "certificate."
    ),
    "wrong_order": ("Remove the intermediates and add them again: the appliance puts them in chain order."),
    "root_served": "Remove the root under Intermediate Certificates.",
    "untrusted_root": (
        "Have the certificate signed by a public CA for mail from the internet; for a private CA, "
        "add its root to the Custom List and give it to the partners who verify."
    ),
    "chain_incomplete": (
        "Add Intermediates on this page: upload the certificate of {issuer}, which your CA provides "
        "with the signed certificate (its chain or CA bundle file)."
    ),
    "not_verified": "Check the intermediates with your CA: add the ones it gives for this certificate.",
    "not_yet_valid": (
        "Wait until then, or upload a certificate valid now; check the appliance's clock if it should be."
    ),
    "expired": "Renew it now: {renew}.",
    "expiring": "Renew it before {date}: {renew}.",
    "intermediate_dates": (
        "Get the current intermediate from your CA (its chain or CA bundle file) and replace this one "
        "under Intermediate Certificates."
    ),
    "weak_key_leaf": (
        "Renew with 'Generate a new private key' (at least RSA 2048 or ECDSA P-256) and have the new "
        "signing request signed."
    ),
    "weak_key_intermediate": (
        "Replace the intermediate with your CA's current one, or get the certificate from another CA."
    ),
    "weak_signature_leaf": "Have your CA sign it again with SHA-256: Renew, then upload the new signed certificate.",
    "weak_signature_intermediate": (
        "Replace the intermediate with your CA's current one (signed with SHA-256)."
    ),
    "self_signed": (
        "Have it signed by a CA: Download Certificate Signing Request (Renew with 'Generate a new private "
        "key' makes one when there is none), send it to your CA, then Upload Signed Certificate with the "
        "intermediates the CA gives."
    ),
}

_REMOTE = {
    "duplicate_intermediate": "The server should send each certificate once.",
    "unrelated_intermediate": "The server should send only its own chain; the administrator should remove this one.",
    "wrong_order": "The server should send its certificate first, then its issuer, then that one's issuer.",
    "root_served": "The server need not send the root.",
    "untrusted_root": (
        "Trusting this private CA needs its root in the Custom List; otherwise the server needs a "
        "certificate from a public CA."
    ),
    "chain_incomplete": "The server should send the intermediate certificate {issuer} after its own.",
    "not_verified": "The server's administrator should check the chain it sends with their CA.",
    "not_yet_valid": "The server's administrator should install a certificate valid now, or fix the server's clock.",
    "expired": "The server's administrator must renew the certificate.",
    "expiring": "The server's administrator should renew the certificate before {date}.",
    "intermediate_dates": "The server should send its CA's current intermediate.",
    "weak_key_leaf": "The server needs a new certificate with a key of at least RSA 2048 or ECDSA P-256.",
    "weak_key_intermediate": "The server should send its CA's current intermediate, or use another CA.",
    "weak_signature_leaf": "The server needs a certificate signed with SHA-256.",
    "weak_signature_intermediate": "The server should send its CA's current intermediate (signed with SHA-256).",
    "self_signed": "The server needs a certificate signed by a CA to be verified.",
}


# --- one entry of the store ----------------------------------------------------------------------


def diagnostics_config(mode: levels.Mode, *, full: bool = True) -> Config:
    """The parts of the candidate the diagnostics read, as ``mode`` sees it: the trust lists, the
    interfaces (the host names the listeners' certificates cover) and every section that names a
    certificate (so ``registry.where_used_in`` answers from it too), each at its top level (no
    destination table); ``full``: also the DNS servers and the listeners' RATs, whose domains' MX
    hosts ``diagnose`` compares. The list page needs no more than the top level."""
    tags = ["certificate_authorities", "interfaces", *(["dns"] if full else [])]
    tags += [section.tag for section in registry.ordered() if _names_certificates(section.fields)]
    nested = {"listeners"} if full else set()  # their RATs: the only nested fields read here
    return {
        tag: registry.read(tag, mode.seen(tag), top=tag not in nested)
        for tag in dict.fromkeys(tags)
        if registry.get(tag)
    }


def _names_certificates(fields) -> bool:
    return any(f.references == "certificates" or _names_certificates(f.children) for f in fields)


def hostnames(config: Config) -> dict[str, dict[str, list[str]]]:
    """Certificate name → host name it should cover → who wants it ("interface 'Management'")."""
    wanted: dict[str, dict[str, list[str]]] = {}
    for section, f in registry.references_to("certificates"):
        if not f.covers:
            continue
        for item in config.get(section.tag, []):
            name = item.get(f.tag)
            if not name:
                continue
            for hostname in f.covers(item, config):
                if hostname:
                    users = wanted.setdefault(name, {}).setdefault(hostname.lower().rstrip("."), [])
                    users.append(section.item_name(item))
    return wanted


def _listed(names: list[str]) -> str:
    return ", ".join(names) or "no name"


def name_findings(entry_name: str, leaf: x509.Certificate, wanted: dict[str, list[str]]) -> list[Finding]:
    """The certificate's names (SANs, else CN) against each host name its users give."""
    names = verify.certificate_names(leaf)
    findings = []
    for hostname, users in wanted.items():
        if verify.covers(names, hostname):
            continue
        findings.append(
            Finding(
                "name_mismatch_interface",
                Severity.WARNING,
                f"'{entry_name}' is for {_listed(names)}; it does not cover {hostname}, the host name of "
                f"{' and '.join(users)}. Clients that verify the name fail.",
                f"Have the certificate issued with {hostname} among its Subject Alternative Names, or "
                "choose a certificate that covers it (or correct the interface's host name).",
            )
        )
    return findings


def served_domains(entry_name: str, config: Config) -> list[tuple[str, str]]:
    """(domain, listener) for each plain domain the listeners using the certificate accept mail for."""
    found = {}
    for listener in config.get("listeners", []):
        if listener.get("certificate_name") != entry_name:
            continue
        for entry in listener.get("rat_entry") or []:
            domain = entry["recipient"]
            if entry["action"] != "accept" or "@" in domain or domain.startswith(".") or domain == "ALL":
                continue
            found.setdefault(domain, listener["listener_name"])
    return list(found.items())


def mx_hosts(config: Config, domain: str, seconds: float) -> list[str]:
    """The MX host names of ``domain`` through the configured DNS servers within ``seconds``;
    ValueError in words when the lookup fails. A null MX ("0 .") gives no host."""
    hosts = []
    for answer in dns.lookup(config, domain, "MX", timeout=seconds):
        host = answer.split()[-1].rstrip(".").lower()
        if host:
            hosts.append(host)
    return hosts


def mx_findings(
    entry_name: str, leaf: x509.Certificate, config: Config, budget: float = MX_BUDGET
) -> list[Finding]:
    """The certificate's names against the MX hosts of the domains its listeners accept mail for:
    the names outside senders that verify compare (the domain itself also counts, as the ESA's
    Verify compares both)."""
    names = verify.certificate_names(leaf)
    deadline = time.monotonic() + budget
    findings = []
    for domain, listener in served_domains(entry_name, config):
        remaining = deadline - time.monotonic()
        try:
            hosts = mx_hosts(config, domain, remaining) if remaining > MX_MINIMUM else None
        except ValueError as failure:
            hosts, problem = None, str(failure)
        else:
            problem = f"no time left (all the lookups get {budget:g} seconds)"
        if hosts is None:
            findings.append(
                Finding(
                    "mx_unknown",
                    Severity.INFORMATION,
                    f"Could not look up MX of {domain}: {problem}.",
                    "Check the servers of Network > DNS; the lookup runs again each time this page opens.",
                )
            )
            continue
        if not hosts or verify.covers(names, domain):
            continue
        missed = [host for host in hosts if not verify.covers(names, host)]
        if not missed:
            continue
        everything = len(missed) == len(hosts)
        findings.append(
            Finding(
                "name_mismatch_mx",
                Severity.WARNING if everything else Severity.INFORMATION,
                f"'{entry_name}' is for {_listed(names)}; "
                + (
                    f"it covers none of the MX hosts of {domain} ({', '.join(hosts)})"
                    if everything
                    else f"it does not cover {', '.join(missed)}, MX hosts of {domain}"
                )
                + f", a domain listener '{listener}' accepts mail for. Senders that verify the "
                "certificate (TLS Required-Verify, CheckTLS) compare these names.",
                "Have the certificate issued with the MX host names among its Subject Alternative Names, "
                "or point the MX records at a name it covers"
                + (
                    "."
                    if everything
                    else "; if those hosts are other gateways, nothing needs to change here."
                ),
            )
        )
    return findings


def diagnose(entry: Certificate, config: Config, lookup_mx: bool = True) -> list[Finding]:
    """Everything wrong with one certificate of the store: its chain, its dates and keys, its names
    against the interfaces and listeners that use it and (``lookup_mx``) the MX hosts of the
    domains those listeners serve, in ``config`` (``diagnostics_config``)."""
    leaf = entry.certificate
    findings = chain_findings(leaf, entry.chain, trust.anchors(config), own=True)
    findings += name_findings(entry.name, leaf, hostnames(config).get(entry.name, {}))
    if lookup_mx:
        findings += mx_findings(entry.name, leaf, config)
    return ordered(findings)


def summary(entries, config: Config) -> dict[str, list[Finding]]:
    """Name → findings of each entry, for the list page: chain, dates, keys and the interfaces'
    host names in ``config`` (``diagnostics_config(full=False)``); no DNS, and no query per entry
    (``entries`` carry their PEM)."""
    anchors = trust.anchors(config)
    wanted = hostnames(config)
    found = {}
    for entry in entries:
        leaf = entry.certificate
        findings = chain_findings(leaf, entry.chain, anchors, own=True)
        findings += name_findings(entry.name, leaf, wanted.get(entry.name, {}))
        found[entry.name] = ordered(findings)
    return found
