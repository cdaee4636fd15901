"""The Certificate Authorities lists: the System List (Mozilla's bundle from certifi) and the Custom List."""

from __future__ import annotations

import datetime
import functools
import ssl
import warnings
from dataclasses import dataclass

import certifi
from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from appliance import https, vault, workflow
from appliance.config.sections import Config, registry
from certificates import pki


@dataclass(frozen=True)
class Authority:
    subject: str
    not_after: datetime.datetime
    fingerprint: str
    pem: str


@functools.cache
def _system_certificates() -> tuple[x509.Certificate, ...]:
    with open(certifi.where(), "rb") as bundle, warnings.catch_warnings():
        # One Mozilla root has a negative serial number; it is still a root Mozilla trusts.
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return tuple(x509.load_pem_x509_certificates(bundle.read()))


@functools.cache
def system_list() -> tuple[Authority, ...]:
    """Mozilla's trusted roots as certifi ships them, read once per process."""
    certificates = _system_certificates()
    return tuple(
        sorted(
            (
                Authority(
                    subject=c.subject.rfc4514_string(),
                    not_after=c.not_valid_after_utc,
                    fingerprint=pki.fingerprint(c),
                    pem=pki.certificate_pem(c),
                )
                for c in certificates
            ),
            key=lambda a: a.subject.lower(),
        )
    )


def anchors_pem(config: Config | None = None) -> str:
    """The trusted CA certificates as PEM: the lists the Certificate Authorities settings enable.

    ``config``: a configuration's section data (default: the running configuration).
    """
    config = workflow.running_config() if config is None else config
    [settings] = config.get("certificate_authorities") or [
        {"system_list_enabled": True, "custom_list_enabled": False}
    ]
    pem = ""
    if settings["system_list_enabled"]:
        pem += "".join(authority.pem for authority in system_list())
    if settings.get("custom_list_enabled"):
        pem += "".join(item.strip() + "\n" for item in settings.get("custom_ca_pem", []))
    return pem


@functools.lru_cache(maxsize=8)
def _custom_certificates(pems: tuple[str, ...]) -> tuple[x509.Certificate, ...]:
    return tuple(x509.load_pem_x509_certificate(pem.encode()) for pem in pems)


def anchors(config: Config | None = None) -> list[x509.Certificate]:
    """The trusted CA certificates as objects (``anchors_pem``'s), for ``certificates.verify``;
    read once per process and Custom List."""
    config = workflow.running_config() if config is None else config
    [settings] = config.get("certificate_authorities") or [
        {"system_list_enabled": True, "custom_list_enabled": False}
    ]
    found = list(_system_certificates()) if settings["system_list_enabled"] else []
    if settings.get("custom_list_enabled"):
        found += _custom_certificates(tuple(settings.get("custom_ca_pem", [])))
    return found


def client_context(certificate_name: str | None = None, config: Config | None = None) -> ssl.SSLContext:
    """A TLS client context that verifies servers against the trusted lists and, if named,
    presents certificate ``certificate_name`` (with its intermediates) as the client certificate."""
    config = workflow.running_config() if config is None else config
    # Not create_default_context(): it would add the operating system's store to the configured lists.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    anchors = anchors_pem(config)
    if anchors:
        context.load_verify_locations(cadata=anchors)
    if certificate_name:
        item = registry.item_named(config, "certificates", certificate_name)
        chain, key = https.certificate_files(item)
        context.load_cert_chain(chain, key, password=vault.runtime_password())
    return context
