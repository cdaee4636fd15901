"""TLS for the console: one SSL context per HTTPS interface of the running configuration.

gunicorn asks for a context on every connection (``ssl_context`` hook); contexts
are built once per committed version and picked by the socket's local address,
so a commit that changes a certificate applies from the next handshake on.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import ssl
import threading
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from django.conf import settings

from appliance import tls, vault
from appliance.config.sections import Config


@dataclass(frozen=True)
class Endpoint:
    interface: str
    address: str
    port: int
    certificate: str

    @property
    def bind(self) -> str:
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.bind}/"


def endpoints(config: Config) -> list[Endpoint]:
    """Where the running configuration serves the console over HTTPS."""
    return [
        Endpoint(i["interface_name"], i["ip"], i["httpsd_port"], i["certificate_name"])
        for i in config.get("interfaces", [])
        if i["httpsd_port"]
    ]


def runtime_dir():
    return settings.DATA_DIR / "run" / "tls"


def _write_private(path, data: bytes) -> None:
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


def certificate_files(certificate: dict) -> tuple[str, str]:
    """The chain and the (encrypted) key of a certificate as files, for ssl.load_cert_chain."""
    chain = "".join(
        pem.strip() + "\n"
        for pem in [certificate["certificate_pem"], *certificate["intermediate_certificate"]]
    )
    # Named by content and key password, so a rotated appliance key never meets an old file.
    name = hashlib.sha256(chain.encode() + vault.runtime_password()).hexdigest()[:24]
    folder = runtime_dir()
    folder.mkdir(parents=True, exist_ok=True)
    chain_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    if not key_path.exists():
        key = serialization.load_pem_private_key(
            vault.unseal(certificate["private_key"]).encode(), password=None
        )
        encrypted = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(vault.runtime_password()),
        )
        _write_private(chain_path, chain.encode())
        _write_private(key_path, encrypted)
    return str(chain_path), str(key_path)


def forget_certificate_files() -> None:
    """Remove the files of an earlier run (called before the console starts)."""
    shutil.rmtree(runtime_dir(), ignore_errors=True)


def server_context(certificate: dict, policy: tls.Policy) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    policy.apply(context)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    chain_path, key_path = certificate_files(certificate)
    context.load_cert_chain(chain_path, key_path, password=vault.runtime_password())
    return context


def contexts_for(config: Config) -> dict[tuple[str, int], ssl.SSLContext]:
    """(address, port) → context with that interface's certificate and intermediates."""
    certificates = {c["certificate_name"]: c for c in config.get("certificates", [])}
    policy = tls.policy(config, tls.Service.GUI)
    built: dict[str, ssl.SSLContext] = {}
    result = {}
    for endpoint in endpoints(config):
        if endpoint.certificate not in built:
            built[endpoint.certificate] = server_context(certificates[endpoint.certificate], policy)
        result[(endpoint.address, endpoint.port)] = built[endpoint.certificate]
    return result


class ConsoleTLS:
    """The context gunicorn wraps each connection with, rebuilt when the running version changes."""

    def __init__(self, load_config, unreachable: tuple[type[Exception], ...] = ()):
        self._load_config = load_config  # () -> (version number, running Config)
        self._unreachable = unreachable  # what load_config raises when the database is down
        self._lock = threading.Lock()
        self._number = None
        self._dispatcher: ssl.SSLContext | None = None
        self._by_socket: dict[tuple[str, int], ssl.SSLContext] = {}

    def _refresh(self) -> None:
        try:
            number, config = self._load_config()
        except self._unreachable:
            if self._dispatcher is None:
                raise
            return  # the certificates of the version loaded last, until the database returns
        if number == self._number:
            return
        by_socket = contexts_for(config)
        dispatcher = next(iter(by_socket.values()))
        if len({id(context) for context in by_socket.values()}) > 1:
            # Several certificates: switch by the address the client connected to.
            dispatcher.sni_callback = self._select
        self._by_socket, self._dispatcher, self._number = by_socket, dispatcher, number

    def _select(self, ssl_socket, server_name, initial_context):
        address, port = ssl_socket.getsockname()[:2]
        # An interface on 0.0.0.0 or :: is reached on some real address of the machine.
        unspecified = "::" if ":" in address else "0.0.0.0"
        chosen = self._by_socket.get((address, port)) or self._by_socket.get((unspecified, port))
        if chosen is not None:
            ssl_socket.context = chosen

    def context(self) -> ssl.SSLContext:
        with self._lock:
            self._refresh()
            return self._dispatcher
