"""LDAP server profiles at work: Test Server (the page's button and ``ldapconfig test``).

The test does what the appliance does with a profile: LDAPS to host:port presenting
the LDAP Global Settings certificate (``destinations.probe``, with
``certificates.trust.client_context``), then a bind with ldap3 over the same TLS
settings (the certificate's files from ``appliance.https.certificate_files``, the
trusted lists from ``certificates.trust.anchors_pem``), then, with a base DN, a
search for that entry.
"""

from __future__ import annotations

import math
import ssl
import warnings
from dataclasses import dataclass

import ldap3
from ldap3.core import exceptions as ldap_errors

from appliance import https, vault
from appliance.config.sections import Config, registry
from appliance.workflow import ChangeRefused
from certificates import trust
from destinations import probe


@dataclass(frozen=True)
class Profile:
    """An LDAP server profile with its bind password in plain text, for one test."""

    name: str
    host: str
    port: int
    use_ssl: bool
    bind_dn: str
    bind_password: str
    base_dn: str

    @classmethod
    def from_item(cls, item: dict) -> Profile:
        return cls(
            name=item["ldap_server_name"],
            host=item["hostname"],
            port=item["port"],
            use_ssl=item["use_ssl"],
            bind_dn=item["bind_dn"],
            bind_password=vault.unseal(item["bind_password"]) if item["bind_password"] else "",
            base_dn=item["base_dn"],
        )


def profile(name: str, config: Config) -> Profile:
    """Profile ``name`` of ``config``; ChangeRefused if there is none."""
    for item in config.get("ldap_servers", []):
        if item["ldap_server_name"] == name:
            return Profile.from_item(item)
    raise ChangeRefused(f"There is no LDAP server profile named '{name}'")


def client_certificate(config: Config) -> str:
    """The LDAP Global Settings certificate of ``config`` ('' for none)."""
    [settings] = config.get("ldap") or [{"certificate_name": ""}]
    return settings["certificate_name"]


def test_server(server: Profile, config: Config) -> probe.Report:
    """Test Server: connect as the appliance would, then bind; every step a line of the report.

    ``config``: the configuration whose certificates, trusted lists and LDAP certificate apply (the
    candidate as the administrator's mode sees it, ``candidate_levels.seen_candidate``, so a change
    can be tried before commit).
    """
    report = probe.Report(
        f"Test Server: LDAP server profile '{server.name}' ({server.host} port {server.port})"
    )
    return probe.guarded(report, lambda: _test(report, server, config))


def _test(report: probe.Report, server: Profile, config: Config) -> None:
    certificate = client_certificate(config)
    if server.use_ssl:
        tls = probe.probe_tls(report, server.host, server.port, certificate, config)
        if not tls.established:
            report.conclusion = "The TLS connection failed; no bind was attempted."
            return
        if not tls.verified:
            report.fail(
                "Bind not attempted: the bind password is never sent to a server that is not verified"
            )
            report.conclusion = "The server's certificate did not verify; no bind was attempted."
            return
    else:
        report.warn(
            "Use SSL is off: the connection is not encrypted, no client certificate is presented "
            "and the bind password crosses the network in clear text"
        )
        sock = probe.connect(report, server.host, server.port)
        if sock is None:
            report.conclusion = "The connection failed; no bind was attempted."
            return
        sock.close()
    bound = _bind(report, server, certificate, config)
    tls_part = "The TLS connection works" if server.use_ssl else "The connection works"
    report.conclusion = f"{tls_part}; the bind {'succeeded' if bound else 'failed'}."
    if bound and not report.passed:
        report.conclusion = f"{tls_part}; the bind succeeded; the base DN was not found."


def _tls(certificate_name: str, config: Config, host: str) -> ldap3.Tls:
    """ldap3's TLS with the appliance's settings: the client certificate's files and the trusted lists."""
    chain = key = password = None
    if certificate_name:
        item = registry.item_named(config, "certificates", certificate_name)
        chain, key = https.certificate_files(item)
        password = vault.runtime_password()
    return ldap3.Tls(
        local_private_key_file=key,
        local_certificate_file=chain,
        local_private_key_password=password,
        validate=ssl.CERT_REQUIRED,
        ca_certs_data=trust.anchors_pem(config),
        valid_names=[host],
        sni=host,
    )


def _bind(report: probe.Report, server: Profile, certificate_name: str, config: Config) -> bool:
    who = server.bind_dn or "anonymous"
    target = ldap3.Server(
        server.host,
        port=server.port,
        use_ssl=server.use_ssl,
        tls=_tls(certificate_name, config, server.host) if server.use_ssl else None,
        connect_timeout=probe.TIMEOUT,
        get_info=ldap3.NONE,
    )
    connection = ldap3.Connection(
        target,
        user=server.bind_dn or None,
        password=server.bind_password or None,
        authentication=ldap3.SIMPLE if server.bind_dn else ldap3.ANONYMOUS,
        receive_timeout=math.ceil(probe.TIMEOUT),  # ldap3 packs it as whole seconds
        read_only=True,
        raise_exceptions=False,
    )
    try:
        with warnings.catch_warnings():
            # ldap3 checks the host name with ssl.match_hostname, deprecated but still right.
            warnings.simplefilter("ignore", DeprecationWarning)
            connection.open()
            bound = connection.bind()
        if not bound:
            result = connection.result or {}
            message = f": {result['message']}" if result.get("message") else ""
            report.fail(
                f"The server refused the bind as {who}: {result.get('description', 'failed')}{message}"
            )
            return False
        report.ok(f"Bound as {who}")
        if server.base_dn:
            _search_base(report, connection, server.base_dn)
        return True
    except ldap_errors.LDAPSessionTerminatedByServerError:
        report.fail(
            f"Bind as {who} failed: the server closed the connection without an LDAP answer "
            "(is it an LDAP server, and is Use SSL right for this port?)"
        )
    except (ldap_errors.LDAPResponseTimeoutError, ldap_errors.LDAPSocketReceiveError) as exc:
        report.fail(f"Bind as {who} failed: no LDAP answer within {probe.TIMEOUT:g} seconds ({exc})")
    except ldap_errors.LDAPSocketOpenError as exc:
        report.fail(f"Bind as {who} failed: the LDAP connection could not be opened ({exc})")
    except ldap_errors.LDAPException as exc:
        report.fail(f"Bind as {who} failed: {exc}")
    finally:
        try:
            connection.unbind()
        except ldap_errors.LDAPException:
            pass
    return False


def _search_base(report: probe.Report, connection: ldap3.Connection, base_dn: str) -> None:
    found = connection.search(base_dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=[])
    result = connection.result or {}
    if found or result.get("result") == 0:
        report.ok(f"Base DN {base_dn} found")
    else:
        report.fail(f"Base DN {base_dn} not found: {result.get('description', 'no answer')}")


test_server.__test__ = False  # a feature's name, not a test for pytest to collect
