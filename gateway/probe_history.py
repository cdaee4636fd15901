"""The runs of Test TLS and ``tlsverify`` kept, and what changed since the run before.

``record`` stores a run (``TlsProbeRun``) from the ``HostProbe``s of ``gateway.tlsprobe``:
for each server the words the page shows (connection, STARTTLS, protocol and cipher,
certificate chain, host name), the server certificate and what each TLS Support mode would
do, not the transcript. ``compare`` takes the run before it of the same target and says in
words what differs: the overall result, a server new or no longer listed, and per server the
connection, STARTTLS, protocol, cipher, the certificate, its chain and name checks, and each
mode's verdict. Servers are matched by host name, address and port.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from django.utils import dateformat, timezone

from destinations.models import ProbeSource, ProbeStatus, TlsProbeRun
from gateway import tlsprobe
from gateway.delivery import hops

DATE_FORMAT = "D M d H:i:s Y"  # Django's date format, as the console pages show times
RECENT_SHOWN = 5  # runs listed under Test TLS


@dataclass(frozen=True)
class Target:
    """What a run tested: a domain's servers, one server for the domain, or the appliance's listener."""

    domain: str
    server: str = ""  # host:port
    listener: str = ""

    @classmethod
    def of(cls, domain: str, host: str = "", port: int | None = None, listener: str = "") -> Target:
        if listener:
            return cls(domain, listener=listener)
        if not host:
            return cls(domain)
        host = host.lower()
        shown = f"[{host}]" if ":" in host else host  # an IPv6 address
        return cls(domain, server=f"{shown}:{port or hops.SMTP_PORT}")


@dataclass
class Comparison:
    """A run and the run of its target before it (None: the first run kept)."""

    run: TlsProbeRun
    previous: TlsProbeRun | None
    differences: list[str]


def summarize(found: tlsprobe.HostProbe) -> dict:
    """What one server showed, as a run keeps it (JSON)."""
    verdict = found.verdict
    certificate = None
    if found.chain:
        leaf = found.chain[0].certificate
        certificate = {
            "subject": leaf.subject.rfc4514_string(),
            "issuer": leaf.issuer.rfc4514_string(),
            "not_after": leaf.not_valid_after_utc.isoformat(),
            "sha256": leaf.fingerprint(hashes.SHA256()).hex(),
        }
    return {
        "host": found.host,
        "address": found.address,
        "port": found.port,
        "connection": found.connection_text,
        "starttls": found.starttls_text,
        "tls_up": found.tls_up,
        "protocol": found.protocol,
        "cipher": found.cipher,
        "certificate": certificate,
        "chain_ok": verdict.chain_valid if verdict else None,
        "chain": found.certificate_text,
        "name_ok": verdict.name_valid if verdict else None,
        "names": list(verdict.names) if verdict else [],
        "name": found.name_text,
        "outcomes": {mode.value: found.outcome(mode) for mode in tlsprobe.MODES},
        "status": found.status,
    }


def record(
    target: Target, probes: list[tlsprobe.HostProbe], user_name: str, source: ProbeSource
) -> TlsProbeRun:
    """Keep a run (and only the newest ``PROBE_RUNS_KEPT`` of its target)."""
    run = TlsProbeRun(
        user_name=user_name,
        source=source,
        domain=target.domain,
        server=target.server,
        listener=target.listener,
        status=tlsprobe.overall_status(probes),
        servers=[summarize(found) for found in probes],
    )
    run.save()
    return run


def compare(run: TlsProbeRun) -> Comparison:
    previous = run.of_target().filter(id__lt=run.id).first()
    return Comparison(run, previous, differences(previous, run) if previous else [])


def recent(run: TlsProbeRun, count: int = RECENT_SHOWN) -> list[TlsProbeRun]:
    """The newest runs of ``run``'s target, newest first."""
    return list(run.of_target()[:count])


def when(run: TlsProbeRun) -> str:
    """The time of a run in local time, as the pages show times (``Mon Jan 06 10:00:00 2025``)."""
    return dateformat.format(timezone.localtime(run.ran_at), DATE_FORMAT)


def differences(before: TlsProbeRun, after: TlsProbeRun) -> list[str]:
    """What changed from ``before`` to ``after``, one sentence each; [] when nothing did."""
    lines = []
    if before.status != after.status:
        lines.append(
            f"overall: was {ProbeStatus(before.status).label}, now: {ProbeStatus(after.status).label}"
        )
    old = {_key(server): server for server in before.servers}
    new = {_key(server): server for server in after.servers}
    for key, server in new.items():
        if key in old:
            lines += _changes(old[key], server)
        elif not server["address"]:  # no server found: why
            lines.append(f"now: {server['connection']}")
        else:
            lines.append(f"new server {_label(server)}: {_state(server)}")
    for key, server in old.items():
        if key in new:
            continue
        if server["address"]:
            lines.append(f"server {_label(server)} no longer listed")
        else:
            lines.append(f"no longer: {server['connection']}")
    return lines


def _key(server: dict) -> tuple[str, str, int]:
    return server["host"].lower(), server["address"], server["port"]


def _label(server: dict) -> str:
    """As the page's MX Server column: ``mx1.example.com [192.0.2.1:25]``."""
    where = f"{server['address']}:{server['port']}" if server["address"] else "no address"
    return f"{server['host']} [{where}]"


def _state(server: dict) -> str:
    """A server in a few words, for a new one."""
    if server["connection"] != "OK":
        return server["connection"]
    if not server["tls_up"]:
        return f"STARTTLS {server['starttls']}"
    return (
        f"{server['protocol']} {server['cipher']}, certificate chain {server['chain']}, "
        f"host name {server['name']}"
    )


def _certificate(certificate: dict) -> str:
    expires = certificate["not_after"][:10]
    return f"{certificate['subject']} issued by {certificate['issuer']}, expires {expires}"


def _changes(before: dict, after: dict) -> list[str]:
    label = _label(after)
    lines = []

    def changed(what: str, key: str) -> None:
        if before[key] != after[key]:
            lines.append(f"{label}: {what} was {before[key]}, now: {after[key]}")

    changed("connection", "connection")
    if before["starttls"] and after["starttls"]:  # connected both times
        changed("STARTTLS", "starttls")
    if before["tls_up"] and after["tls_up"]:
        changed("protocol", "protocol")
        changed("cipher", "cipher")
    if before["certificate"] and after["certificate"]:
        if before["certificate"]["sha256"] != after["certificate"]["sha256"]:
            lines.append(
                f"{label}: certificate was {_certificate(before['certificate'])}, "
                f"now: {_certificate(after['certificate'])}"
            )
    if before["chain_ok"] is not None and after["chain_ok"] is not None:
        changed("certificate chain", "chain")
        changed("host name", "name")
    for mode in tlsprobe.MODES:
        was, now = before["outcomes"].get(mode.value), after["outcomes"].get(mode.value)
        if was != now:
            lines.append(f"{label}: {mode.label} {was}, now: {now}")
    return lines
