"""TLS Verify: probe a domain's mail servers as CheckTLS does, and say what each TLS mode would do.

For each MX host (or the host given, or the SMTP route's): connect, EHLO, STARTTLS,
EHLO again, MAIL FROM, QUIT — recording every step with its time since the
start — and judge the certificate with ``certificates.verify``, the same
verification delivery uses, against the names the ESA's Verify compares: the
domain and the MX host name. ``verdicts`` says, per TLS Support mode, whether
delivery would go encrypted, in clear, or not at all, by the rules of
the delivery engine (``gateway.delivery``).
"""

from __future__ import annotations

import datetime
import ipaddress
import time
from dataclasses import dataclass, field

import aiosmtplib
import dns.asyncresolver
import dns.exception
from cryptography import x509

from appliance import interfaces
from appliance.config.sections import Config, registry
from appliance.sections import system_hostname
from certificates import diagnostics, trust, verify
from destinations import routes
from destinations.models import DEFAULT_DESTINATION, ProbeStatus, TlsSupport
from destinations.validators import canonical_destination
from gateway.delivery import hops
from gateway.delivery.client import client_context, peer_chain
from gateway.delivery.hops import HopFailed, addresses, find_hops, new_resolver

PROBE_SENDER = "tlsverify@{hostname}"
# What each mode does with what the probe found (delivery's rules, in words).
ENCRYPTED, CLEAR, NOT_DELIVERED = "would deliver encrypted", "would deliver in clear", "would not deliver"
MODES = [mode for mode in TlsSupport if mode != TlsSupport.DEFAULT]
# Exit statuses of ``tlsverify`` (1 and 2 keep the console's meaning), kept with each run.
VERIFIED, NOT_VERIFIED, NO_TLS = ProbeStatus.values


@dataclass
class Step:
    at: float  # seconds since the probe of this host began
    text: str


@dataclass
class CertificateLine:
    position: int
    certificate: x509.Certificate
    validated: str  # "ok" or the reason


@dataclass
class HostProbe:
    """What one mail server showed."""

    host: str
    address: str
    port: int
    steps: list[Step] = field(default_factory=list)
    connected: bool = False
    starttls_offered: bool = False
    starttls_refused: str = ""  # the answer other than 220
    tls_failed: str = ""  # the handshake after 220
    protocol: str = ""
    cipher: str = ""
    chain: list[CertificateLine] = field(default_factory=list)
    verdict: verify.Verdict | None = None
    # What is wrong with the chain as sent (order, duplicates, missing issuer, dates, keys).
    findings: list[diagnostics.Finding] = field(default_factory=list)
    error: str = ""

    @property
    def tls_up(self) -> bool:
        return bool(self.protocol)

    @property
    def verified(self) -> bool:
        return bool(self.verdict and self.verdict.valid)

    def outcome(self, mode: str) -> str:
        """What delivery under ``mode`` would do with this server (the delivery engine's rules)."""
        if not self.connected:
            return NOT_DELIVERED
        if mode == TlsSupport.NONE:
            return CLEAR
        if self.tls_failed:  # after 220 no mode goes on in clear
            return NOT_DELIVERED
        if not self.tls_up:
            return CLEAR if mode in (TlsSupport.PREFERRED, TlsSupport.PREFERRED_VERIFY) else NOT_DELIVERED
        if mode == TlsSupport.REQUIRED_VERIFY and not self.verified:
            return NOT_DELIVERED
        return ENCRYPTED

    @property
    def status(self) -> int:
        if not self.tls_up:
            return NO_TLS
        return VERIFIED if self.verified else NOT_VERIFIED

    # What the server showed, in the words of CheckTLS's TestReceiver columns ("": not reached).

    @property
    def connection_text(self) -> str:
        if not self.connected:
            return self.error
        return f"OK, then: {self.error}" if self.error else "OK"

    @property
    def starttls_text(self) -> str:
        if not self.connected:
            return ""
        if self.starttls_refused:
            return f"refused: {self.starttls_refused}"
        if self.tls_failed:
            return f"failed after 220: {self.tls_failed}"
        return "offered and accepted" if self.starttls_offered else "not offered"

    @property
    def tls_text(self) -> str:
        return f"{self.protocol} {self.cipher}" if self.tls_up else ""

    @property
    def certificate_text(self) -> str:
        if self.verdict is None:
            return ""
        return "VALIDATED" if self.verdict.chain_valid else self.verdict.chain_reason

    @property
    def name_text(self) -> str:
        if self.verdict is None:
            return ""
        if self.verdict.name_valid:
            return f"VERIFIED ({self.verdict.matched})"
        names = " | ".join(self.verdict.names) or "(no name)"
        return f"DOES NOT VERIFY ({' | '.join(self.verdict.expected)} != {names})"


def overall_status(probes: list[HostProbe]) -> int:
    """The result of a run, ``tlsverify``'s exit status: the worst server's (no server: no TLS)."""
    return max((found.status for found in probes), default=NO_TLS)


def target_domain(text: str) -> str:
    """The domain (or IP address) to test, canonical; ValueError in the admin's words."""
    domain = canonical_destination(text)
    if domain == DEFAULT_DESTINATION or domain.startswith("."):
        raise ValueError(
            "Give one mail domain (example.com) or IP address: the Default entry and .subdomain "
            "entries name no mail servers."
        )
    return domain


def target_host(text: str) -> tuple[str, int | None]:
    """``host[:port]`` to test instead of the domain's servers ("": none); ValueError if it is no server."""
    text = text.strip()
    if not text:
        return "", None
    host, port = routes.split_host(text)
    if port is None:  # USEDNS or /dev/null: route words, not a server
        raise ValueError(f"{text!r} is not a server: give host[:port] (mx.example.com:25)")
    return host, port


class Recorder:
    def __init__(self, probe: HostProbe):
        self.probe, self.start = probe, time.monotonic()

    def __call__(self, text: str) -> None:
        self.probe.steps.append(Step(time.monotonic() - self.start, text))

    def reply(self, response) -> None:
        lines = response.message.splitlines() or [""]
        for index, line in enumerate(lines):
            separator = " " if index == len(lines) - 1 else "-"
            self(f"<-- {response.code}{separator}{line}")


async def probe_domain(
    config: Config, domain: str, host: str = "", port: int | None = None
) -> list[HostProbe]:
    """Every mail server of ``domain`` (or ``host[:port]``), probed one after the other."""
    if host:
        resolver = new_resolver(config)
        found = await addresses(resolver, host, None)
        if not found:
            return [HostProbe(host, "", port or hops.SMTP_PORT, error=f"no address found for {host}")]
        servers = [(host, address, port or hops.SMTP_PORT) for address in found]
    else:
        try:
            ipaddress.ip_address(domain)
            target = f"[{domain}]"  # an address literal, as a recipient would write it
        except ValueError:
            target = domain
        try:
            servers = await find_hops(config, target, None)
        except HopFailed as failure:
            return [HostProbe(domain, "", 0, error=str(failure))]
        if servers is None:
            return [
                HostProbe(
                    domain, "", 0, error=f"the SMTP route of {domain} is /dev/null: its mail is dropped"
                )
            ]
    return [await probe_host(config, domain, name, address, hop_port) for name, address, hop_port in servers]


async def probe(config: Config, domain: str, host: str = "", port: int | None = None, listener: str = ""):
    """What ``tlsverify`` and Test TLS run: the appliance's own ``listener``, else ``host`` (a server
    instead of the domain's), else the domain's servers. ValueError for a listener that is not there."""
    if listener:
        return [await probe_listener(config, listener, domain)]
    return await probe_domain(config, domain, host, port)


async def probe_listener(config: Config, listener_name: str, domain: str = "") -> HostProbe:
    """Check my own listener: the probe against the appliance's own listener, as an outside MTA
    sees it. The certificate should cover the interface's host name and, for ``domain``, the
    host names its MX records give (the names outside MTAs compare)."""
    listener = registry.item_named(config, "listeners", listener_name)
    if listener is None:
        raise ValueError(f"There is no listener named '{listener_name}'")
    interface = interfaces.named(listener["interface_name"], config.get("interfaces", []))
    names = [interface["interface_hostname"]]
    if domain:
        resolver = new_resolver(config)
        try:
            answer = await resolver.resolve(domain, "MX")
            names += [str(record.exchange).rstrip(".").lower() for record in answer]
        except dns.exception.DNSException:
            pass  # no MX to compare: the interface's name still is
    return await probe_host(
        config, domain or names[0], names[0], interface["ip"], listener["port"], expected=names
    )


async def probe_host(
    config: Config, domain: str, host: str, address: str, port: int, expected: list[str] | None = None
) -> HostProbe:
    """One server; the certificate is compared with ``expected`` names (default: the domain and
    the host name, as the ESA's Verify compares them)."""
    probe = HostProbe(host, address, port)
    note = Recorder(probe)
    hostname = system_hostname(config)
    note(f"Trying TLS on {host}[{address}:{port}]")
    client = aiosmtplib.SMTP(
        hostname=address, port=port, local_hostname=hostname, timeout=hops.TIMEOUT, start_tls=False
    )
    try:
        banner = await client.connect()
    except (aiosmtplib.SMTPException, OSError) as error:
        probe.error = f"cannot connect: {error}"
        note(probe.error)
        return probe
    probe.connected = True
    note.reply(banner)
    try:
        await _conversation(client, config, expected or [domain, host], host, hostname, probe, note)
    except (aiosmtplib.SMTPException, OSError) as error:
        probe.error = probe.error or str(error)
        note(f"Error: {error}")
    finally:
        client.close()
    return probe


async def _conversation(client, config, expected, host, hostname, probe, note) -> None:
    note(f"-->EHLO {hostname}")
    note.reply(await client.ehlo())
    probe.starttls_offered = client.supports_extension("starttls")
    if not probe.starttls_offered:
        note("STARTTLS is not offered by this server")
        return
    note("-->STARTTLS")
    try:
        response = await client.starttls(tls_context=client_context(config), server_hostname=host)
    except aiosmtplib.SMTPResponseException as refusal:
        probe.starttls_refused = f"{refusal.code} {refusal.message}"
        note(f"<-- {refusal.code} {refusal.message}")
        return
    except (TimeoutError, aiosmtplib.SMTPException, OSError) as error:
        probe.tls_failed = str(error)
        note(f"TLS failed after 220: {error}")
        return
    note.reply(response)
    ssl_object = client.get_transport_info("ssl_object")
    probe.protocol, probe.cipher = ssl_object.version(), ssl_object.cipher()[0]
    note("Connection converted to SSL")
    sent = peer_chain(ssl_object)
    anchors = trust.anchors(config)
    probe.verdict = verify.verify_peer(sent, expected, anchors)
    probe.chain = _chain_lines(sent, anchors, probe.verdict)
    probe.findings = diagnostics.chain_findings(sent[0], sent, anchors) if sent else []
    note(f"-->EHLO {hostname}")
    note.reply(await client.ehlo())
    note("TLS successfully started on this server")
    sender = PROBE_SENDER.format(hostname=hostname)
    note(f"-->MAIL FROM:<{sender}>")
    try:
        note.reply(await client.mail(sender))
    except aiosmtplib.SMTPResponseException as refusal:
        note(f"<-- {refusal.code} {refusal.message}")
    note("-->QUIT")
    note.reply(await client.quit())


def _chain_lines(sent, anchors, verdict) -> list[CertificateLine]:
    """The chain as built to its anchor (the anchor counted, as CheckTLS counts it), else as sent."""
    built = verify.built_chain(sent, anchors)
    if not verdict.chain_valid and sent and built is sent:
        # Out of its dates, the chain is still shown to its anchor, as it was built while valid.
        built = verify.built_chain(
            sent, anchors, at=sent[0].not_valid_before_utc + datetime.timedelta(seconds=1)
        )
    return [
        CertificateLine(
            position, certificate, "ok" if verdict.chain_valid or position > 1 else verdict.chain_reason
        )
        for position, certificate in enumerate(built, start=1)
    ]


def openssl_name(name: x509.Name) -> str:
    """``/C=US/O=Example/CN=mx.example.com``, as CheckTLS shows OpenSSL's one-line names."""
    parts = reversed(name.rfc4514_string().split(","))
    return "/" + "/".join(part.strip() for part in parts)


def transcript(probe: HostProbe, domain: str) -> list[str]:
    """CheckTLS's lines for one server."""
    lines = []
    tls_at = next((s.at for s in probe.steps if s.text == "Connection converted to SSL"), None)
    for step in probe.steps:
        lines.append(f"[{step.at:07.3f}] {step.text}")
        if step.at == tls_at and step.text == "Connection converted to SSL":
            lines += _tls_details(probe, domain)
    return lines


def _tls_details(probe: HostProbe, domain: str) -> list[str]:
    pad = " " * 10
    lines = [f"{pad}SSLVersion in use: {probe.protocol}", f"{pad}Cipher in use: {probe.cipher}"]
    total = len(probe.chain)
    for line in probe.chain:
        cert = line.certificate
        status = "Cert VALIDATED: ok" if line.validated == "ok" else f"Cert NOT VALIDATED: {line.validated}"
        lines.append(f"{pad}Certificate {line.position} of {total} in chain: {status}")
        if line.position == 1 and probe.verdict:
            names = " | ".join(probe.verdict.names)
            if probe.verdict.name_valid:
                lines.append(f"{pad}Cert Hostname VERIFIED ({probe.verdict.matched} = {names})")
            else:
                wanted = " | ".join(probe.verdict.expected)
                lines.append(f"{pad}Cert Hostname DOES NOT VERIFY ({wanted} != {names})")
        lines += [
            f"{pad}Not Valid Before: {cert.not_valid_before_utc:%b %d %H:%M:%S %Y} GMT",
            f"{pad}Not Valid After: {cert.not_valid_after_utc:%b %d %H:%M:%S %Y} GMT",
            f"{pad}subject= {openssl_name(cert.subject)}",
            f"{pad}issuer= {openssl_name(cert.issuer)}",
        ]
    for finding in probe.findings:
        lines.append(f"{pad}Chain {finding.word}: {finding.text} What to do: {finding.advice}")
    return lines
