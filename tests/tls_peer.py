"""A real TLS server on loopback for the connection tests, and a test PKI staged in the appliance.

``TlsPeer`` serves one certificate, requires (or not) a client certificate signed by a
trusted CA, records the client certificate of every handshake, then answers with a
``responder``: ``not_ldap`` (an HTTP error, as a web server would), ``fake_ldap`` (a bind
and base search answered as an LDAP server would), or ``silent``.
"""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from appliance import workflow
from appliance.config.levels import CLUSTER
from certificates import pki
from certificates import store as certificate_store
from tests.pki_factory import PKI, Credential, make_pki

# --- responders: what the server says after the handshake ------------------------


def not_ldap(tls: ssl.SSLSocket) -> None:
    tls.recv(4096)
    tls.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")


def silent(tls: ssl.SSLSocket) -> None:
    tls.recv(4096)


def _message_id(request: bytes) -> tuple[int, int]:
    """The message ID and the operation tag of a BER-encoded LDAPMessage (short IDs only)."""
    position = 2 if request[1] < 0x80 else 2 + (request[1] & 0x7F)
    assert request[position] == 0x02, request  # INTEGER messageID
    length = request[position + 1]
    message_id = int.from_bytes(request[position + 2 : position + 2 + length], "big")
    return message_id, request[position + 2 + length]


def _answer(message_id: int, operation: int, code: int) -> bytes:
    result = bytes([0x0A, 0x01, code, 0x04, 0x00, 0x04, 0x00])  # resultCode, matchedDN, message
    body = bytes([0x02, 0x01, message_id, operation, len(result)]) + result
    return bytes([0x30, len(body)]) + body


def fake_ldap(password: str):
    """An LDAP server that knows one password and finds every base DN."""

    def respond(tls: ssl.SSLSocket) -> None:
        while True:
            request = tls.recv(4096)
            if not request:
                return
            message_id, operation = _message_id(request)
            if operation == 0x60:  # BindRequest → BindResponse
                code = 0 if password.encode() in request else 49  # success | invalidCredentials
                tls.sendall(_answer(message_id, 0x61, code))
            elif operation == 0x63:  # SearchRequest → SearchResultDone
                tls.sendall(_answer(message_id, 0x65, 0))
            else:  # UnbindRequest
                return

    return respond


# --- the server --------------------------------------------------------------------


@dataclass
class TlsPeer:
    """A TLS server thread on 127.0.0.1; ``with TlsPeer(...) as peer:`` serves until the block ends."""

    credential: Credential
    client_ca: Path | None  # trusted for client certificates; None: no client certificate asked
    responder: object = not_ldap
    maximum_version: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED
    client_certificates: list[x509.Certificate | None] = field(default_factory=list)
    handshake_errors: list[str] = field(default_factory=list)

    def __enter__(self) -> TlsPeer:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.credential.cert, self.credential.key)
        context.maximum_version = self.maximum_version
        if self.client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=str(self.client_ca))
        self._context = context
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._listener.close()

    @property
    def endpoint(self) -> str:
        return f"localhost:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection: socket.socket) -> None:
        connection.settimeout(10)
        try:
            with self._context.wrap_socket(connection, server_side=True) as tls:
                der = tls.getpeercert(binary_form=True)
                self.client_certificates.append(x509.load_der_x509_certificate(der) if der else None)
                self.responder(tls)
        except (ssl.SSLError, OSError) as exc:
            self.handshake_errors.append(str(exc))
            connection.close()


# --- a test PKI staged in the appliance ----------------------------------------------


@dataclass
class Lab:
    pki: PKI
    server: Credential  # the LDAP / Web Security Services server: CN and SAN localhost, by the root
    client: Credential  # staged as certificate "Client", by the root
    stranger: Credential  # staged as certificate "Stranger", by an unrelated CA


def make_lab(folder: Path) -> Lab:
    pki = make_pki(folder)
    return Lab(
        pki=pki,
        server=pki.root.issue("localhost"),
        client=pki.root.issue("esa.example.com"),
        stranger=pki.other.issue("esa.example.com"),
    )


def stage_lab(user, lab: Lab, *, trust_root: bool = True) -> None:
    """Paste "Client" and "Stranger"; with ``trust_root`` the test root goes in the enabled Custom List."""

    def apply():
        certificate_store.paste(CLUSTER, "Client", lab.client.cert.read_bytes(), lab.client.key_pem)
        certificate_store.paste(CLUSTER, "Stranger", lab.stranger.cert.read_bytes(), lab.stranger.key_pem)
        if trust_root:
            certificate_store.add_custom_authorities(lab.pki.root.cert.read_bytes())
            certificate_store.set_authority_lists(True, True)

    workflow.submit(user, "test PKI", apply)


def fingerprint(certificate: x509.Certificate | Credential | None) -> bytes | None:
    """A certificate's SHA-256 fingerprint; of a credential's certificate file too."""
    if isinstance(certificate, Credential):
        certificate = x509.load_pem_x509_certificate(certificate.cert.read_bytes())
    return None if certificate is None else certificate.fingerprint(hashes.SHA256())


def stage_pending(user, name: str = "Pending") -> None:
    """A self-signed certificate whose signing request waits for the CA (a selector warning)."""
    subject = pki.Subject(common_name="pending.example.com")
    workflow.submit(
        user,
        "pending",
        lambda: certificate_store.create_self_signed(CLUSTER, name, subject, 365, [], pki.KeyType.EC256),
    )
