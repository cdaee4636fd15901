"""Testing an outward TLS connection step by step, for Test Server (LDAP) and Test Connection (URL filtering).

The probe connects, makes the TLS handshake with ``certificates.trust.client_context``
(the trusted lists, and the configured client certificate), and reports each step
as a line an administrator reads: connected, protocol and cipher, the server's
certificate and whether it verified (or why not), and whether the client
certificate was asked for, presented and accepted. Every failure is a line, never
a traceback; every network step gives up after ``TIMEOUT`` seconds.
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from cryptography import x509

from appliance import vault
from appliance.config.sections import Config, registry
from appliance.roles import Capability
from certificates import pki, trust

logger = logging.getLogger(__name__)

# Who may run a connection test: it uses the appliance's private keys toward a host of the
# administrator's choosing, so it is an operation, not a view (Operators and Administrators).
TEST_CAPABILITY = Capability.TEST_CONNECTIONS

TIMEOUT = 5.0  # seconds, for each of connect, handshake and answer
# After the handshake, how long to wait for the server's verdict on the client certificate:
# in TLS 1.3 a server refuses it after the client has finished its side of the handshake.
SETTLE = 1.0

# TLS record and handshake message types, as OpenSSL's message callback reports them.
_HANDSHAKE = 22
_CERTIFICATE_REQUEST = 13
_CERTIFICATE_VERIFY = 15


class Status(StrEnum):
    OK = "ok"
    FAILED = "failed"
    WARNING = "warning"
    NOTE = "note"


LABELS = {Status.OK: "OK", Status.FAILED: "FAILED", Status.WARNING: "Warning", Status.NOTE: "Note"}


@dataclass(frozen=True)
class Step:
    status: Status
    text: str

    @property
    def label(self) -> str:
        return LABELS[self.status]

    def __str__(self):
        return f"{self.label}: {self.text}"


@dataclass
class Report:
    """What a test did, step by step; ``conclusion`` sums it up in one sentence."""

    title: str
    steps: list[Step] = field(default_factory=list)
    conclusion: str = ""

    def ok(self, text: str) -> None:
        self.steps.append(Step(Status.OK, text))

    def fail(self, text: str) -> None:
        self.steps.append(Step(Status.FAILED, text))

    def warn(self, text: str) -> None:
        self.steps.append(Step(Status.WARNING, text))

    def note(self, text: str) -> None:
        self.steps.append(Step(Status.NOTE, text))

    @property
    def passed(self) -> bool:
        return not any(step.status is Status.FAILED for step in self.steps)

    @property
    def summary(self) -> str:
        return self.conclusion or ("The test passed." if self.passed else "The test failed.")

    def lines(self) -> list[str]:
        return [self.title, *(str(step) for step in self.steps), self.summary]


def guarded(report: Report, test: Callable[[], None]) -> Report:
    """Run ``test``; an unexpected error becomes the report's last line (the traceback goes to the log)."""
    try:
        test()
    except Exception as exc:  # a test reports; it never raises into a page or a terminal
        logger.exception("%s", report.title)
        report.fail(f"The test stopped on an unexpected error: {type(exc).__name__}: {exc}")
    return report


@dataclass
class TlsResult:
    connected: bool = False
    established: bool = False  # handshake done, and the server kept the connection
    verified: bool = False  # the server's certificate verified against the trusted lists
    presented: bool = False  # the client certificate was presented and the server kept the connection


class _Exchange:
    """Watches the handshake: did the server ask for a client certificate, did the client prove one.

    Through OpenSSL's message callback, which CPython exposes as ``SSLContext._msg_callback``
    (its own tests use it); without it, the report says "offered" instead of "presented".
    """

    supported = hasattr(ssl.SSLContext, "_msg_callback")

    def __init__(self):
        self.requested = False
        self.presented = False

    def watch(self, context: ssl.SSLContext) -> None:
        if self.supported:
            context._msg_callback = self

    def __call__(self, connection, direction, version, content_type, message_type, data):
        if content_type != _HANDSHAKE:
            return
        if direction == "read" and message_type == _CERTIFICATE_REQUEST:
            self.requested = True
        elif direction == "write" and message_type == _CERTIFICATE_VERIFY:
            self.presented = True


def connect(report: Report, host: str, port: int) -> socket.socket | None:
    """A TCP connection to host:port, reported; None if there is none."""
    try:
        sock = socket.create_connection((host, port), timeout=TIMEOUT)
    except socket.gaierror as exc:
        report.fail(f"The host name {host} cannot be resolved: {exc.strerror}")
    except TimeoutError:
        report.fail(f"No connection to {host} port {port} within {TIMEOUT:g} seconds")
    except ConnectionRefusedError:
        report.fail(f"{host} refused the connection on port {port}: nothing listens there")
    except OSError as exc:
        report.fail(f"Cannot connect to {host} port {port}: {exc.strerror or exc}")
    else:
        address = sock.getpeername()[0]
        where = host if address == host else f"{host} ({address})"
        report.ok(f"Connected to {where} port {port}")
        return sock
    return None


def _reason(exc: ssl.SSLError) -> str:
    """OpenSSL's words without the bracketed code and the source location."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", str(exc.args[1] if len(exc.args) > 1 else exc))
    return re.sub(r"\s*\(_ssl\.c:\d+\)$", "", text)


CLIENT_CERTIFICATE_ALERTS = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the server requires a client certificate",
    "TLSV1_ALERT_UNKNOWN_CA": "the server does not trust the CA that issued the client certificate",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the server rejected the client certificate (bad certificate)",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "the server does not support the client certificate",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the server says the client certificate has expired",
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "the server says the client certificate is revoked",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "the server could not accept the client certificate",
    "TLSV1_ALERT_ACCESS_DENIED": "the server denied access to this client certificate",
}
NOT_TLS = {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST"}
NO_COMMON_VERSION = {"TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE"}


def _describe(item: dict) -> str:
    certificate = pki.load_certificate(item["certificate_pem"])
    return f"'{item['certificate_name']}' ({certificate.subject.rfc4514_string()})"


def _certificate_item(config: Config, name: str) -> dict | None:
    return registry.item_named(config, "certificates", name)


def _lists(config: Config) -> str:
    [settings] = config.get("certificate_authorities") or [{"system_list_enabled": True}]
    enabled = [
        label
        for label, key in (("System List", "system_list_enabled"), ("Custom List", "custom_list_enabled"))
        if settings.get(key)
    ]
    return " and ".join(enabled)


def _context(report: Report, certificate_name: str, config: Config) -> ssl.SSLContext | None:
    if certificate_name and _certificate_item(config, certificate_name) is None:
        report.fail(f"The client certificate '{certificate_name}' does not exist")
        return None
    try:
        return trust.client_context(certificate_name or None, config)
    except (ssl.SSLError, OSError, vault.SecretError) as exc:
        reason = _reason(exc) if isinstance(exc, ssl.SSLError) else str(exc)
        report.fail(f"The client certificate '{certificate_name}' cannot be used: {reason}")
        return None


def _handshake_failure(
    report: Report, exc: Exception, host: str, port: int, certificate_name: str, exchange: _Exchange
) -> None:
    if isinstance(exc, TimeoutError):
        report.fail(
            f"The TLS handshake did not finish within {TIMEOUT:g} seconds: "
            f"does {host} speak TLS on port {port}?"
        )
        return
    reason = getattr(exc, "reason", None) or ""
    if reason == "SSLV3_ALERT_HANDSHAKE_FAILURE" and exchange.requested and not exchange.presented:
        # TLS 1.2: the server asked for a client certificate, got none and ended the handshake.
        reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    if reason in CLIENT_CERTIFICATE_ALERTS:
        _refused(report, CLIENT_CERTIFICATE_ALERTS[reason], certificate_name)
    elif reason in NOT_TLS:
        report.fail(f"{host} does not answer TLS on port {port} ({_reason(exc)}): is the port right?")
    elif reason in NO_COMMON_VERSION:
        report.fail(f"{host} and the appliance share no TLS version (the appliance needs TLS 1.2 or newer)")
    elif isinstance(exc, ssl.SSLEOFError | ConnectionResetError | BrokenPipeError) or reason.startswith(
        "UNEXPECTED_EOF"
    ):
        report.fail(f"{host} closed the connection during the TLS handshake")
    elif reason == "SSLV3_ALERT_HANDSHAKE_FAILURE":
        report.fail(
            f"{host} ended the TLS handshake (handshake failure): it may require a client certificate"
            + ("" if certificate_name else ", and none is configured")
            + ", or share no cipher with the appliance"
        )
    elif isinstance(exc, ssl.SSLError):
        report.fail(f"The TLS handshake failed: {_reason(exc)}")
    else:
        report.fail(f"The TLS handshake failed: {exc.strerror or exc}")


def _refused(report: Report, why: str, certificate_name: str) -> None:
    if certificate_name:
        report.fail(f"The server refused the client certificate '{certificate_name}': {why}")
    else:
        report.fail(f"The server refused the connection: {why}, and none is configured")


def _server_certificate(report: Report, tls: ssl.SSLSocket, config: Config, problem: str | None) -> None:
    certificate = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
    described = (
        f"Server certificate {certificate.subject.rfc4514_string()} "
        f"(issued by {certificate.issuer.rfc4514_string()}, "
        f"valid until {certificate.not_valid_after_utc:%Y-%m-%d})"
    )
    if problem is None:
        report.ok(f"{described}: VERIFIED against the trusted CA lists ({_lists(config)}), host name matches")
    else:
        lists = _lists(config) or "no list is enabled"
        report.fail(f"{described}: NOT verified against the trusted CA lists ({lists}): {problem}")


def _client_certificate(
    report: Report, exchange: _Exchange, certificate_name: str, config: Config, refusal: str | None
) -> None:
    if refusal:
        _refused(report, refusal, certificate_name)
        return
    if certificate_name:
        described = _describe(_certificate_item(config, certificate_name))
        if not exchange.supported:
            report.ok(f"Client certificate {described} offered; the server accepted the connection")
        elif exchange.presented:
            report.ok(f"Client certificate {described} presented; the server accepted it")
        elif exchange.requested:
            report.fail(f"The server asked for a client certificate, but {described} was not presented")
        else:
            report.warn(f"The server did not ask for a client certificate: {described} was not presented")
    elif exchange.requested:
        report.note("The server asked for a client certificate (optional); none is configured")
    else:
        report.note("No client certificate is configured, and the server did not ask for one")


def _settle(tls: ssl.SSLSocket) -> str | None:
    """Wait briefly for a refusal of the client certificate after the handshake; its reason, or None."""
    tls.settimeout(SETTLE)
    try:
        if tls.recv(1) == b"":
            return "the server closed the connection right after the handshake"
    except TimeoutError:
        return None  # the server waits for the client to speak: it kept the connection
    except ssl.SSLError as exc:
        return CLIENT_CERTIFICATE_ALERTS.get(
            exc.reason or "", f"the server ended the connection: {_reason(exc)}"
        )
    except OSError:
        return "the server closed the connection right after the handshake"
    return None


def probe_tls(report: Report, host: str, port: int, certificate_name: str, config: Config) -> TlsResult:
    """Connect and make the TLS handshake presenting ``certificate_name``, reporting each step."""
    result = TlsResult()
    context = _context(report, certificate_name, config)
    if context is None:
        return result
    sock = connect(report, host, port)
    if sock is None:
        return result
    result.connected = True
    exchange = _Exchange()
    exchange.watch(context)
    problem = None
    try:
        tls = context.wrap_socket(sock, server_hostname=host)
        result.verified = True
    except ssl.SSLCertVerificationError as exc:
        problem = exc.verify_message or _reason(exc)
        tls = _unverified_handshake(host, port, certificate_name, config, exchange)
        if tls is None:
            report.fail(f"The server's certificate is NOT verified against the trusted CA lists: {problem}")
            return result
    except (ssl.SSLError, OSError) as exc:
        sock.close()
        _handshake_failure(report, exc, host, port, certificate_name, exchange)
        return result
    with tls:
        cipher, _, bits = tls.cipher()
        negotiated = f"{tls.version()}, cipher {cipher} ({bits} bits)"
        if problem is None:
            report.ok(f"TLS established: {negotiated}")
        else:
            report.note(f"TLS handshake made again without verification, to show the server: {negotiated}")
        _server_certificate(report, tls, config, problem)
        refusal = _settle(tls)
        _client_certificate(report, exchange, certificate_name, config, refusal)
        result.established = refusal is None
        result.presented = result.established and (exchange.presented or not exchange.supported)
    return result


def _unverified_handshake(
    host: str, port: int, certificate_name: str, config: Config, exchange: _Exchange
) -> ssl.SSLSocket | None:
    """The handshake again without verification, only to report what the server presents."""
    context = trust.client_context(certificate_name or None, config)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    exchange.watch(context)
    try:
        sock = socket.create_connection((host, port), timeout=TIMEOUT)
        return context.wrap_socket(sock, server_hostname=host)
    except (ssl.SSLError, OSError):
        return None
