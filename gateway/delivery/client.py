"""One SMTP connection of delivery: open it, negotiate the TLS its destination's mode asks for,
carry a message over it, end it. It knows nothing of queues, limits or retries."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field

import aiosmtplib
from cryptography import x509

from appliance import https, interfaces, tls, vault
from appliance.config.sections import Config, registry
from appliance.sections import system_hostname
from certificates import trust, verify
from destinations.delivery_settings import delivery_of
from destinations.models import TlsSupport
from gateway import bounces, maillog, records
from gateway.delivery import hops
from gateway.delivery.hops import HopFailed
from tracking.models import Event, TlsPolicy

REQUIRED = (TlsSupport.REQUIRED, TlsSupport.REQUIRED_VERIFY)
VERIFYING = (TlsSupport.PREFERRED_VERIFY, TlsSupport.REQUIRED_VERIFY)


@dataclass
class Outcome:
    """What became of each recipient of one attempt at one domain."""

    delivered: list[str] = field(default_factory=list)
    temporary: dict[str, str] = field(default_factory=dict)  # recipient -> why, in the log's words
    permanent: dict[str, str] = field(default_factory=dict)
    dcid: int | None = None  # the connection of the attempt, when one was opened

    def defer_all(self, recipients: list[str], why: str) -> Outcome:
        self.temporary.update(dict.fromkeys(recipients, why))
        return self


@dataclass
class Connection:
    """An open connection, carrying messages or parked for the next one to its domain."""

    client: aiosmtplib.SMTP
    record: records.ConnectionRecord
    sent: int  # messages sent on it so far
    since: float  # monotonic time it became idle
    slot: asyncio.Semaphore | None = None  # the Concurrent Connections it counts against, open or parked

    @property
    def dcid(self) -> int:
        return self.record.cid


class TlsRefused(Exception):
    """The destination's TLS mode forbids sending on this connection: no other host is tried either."""

    def __init__(self, why: str, dcid: int):
        super().__init__(why)
        self.dcid = dcid


def tls_policy(mode: str) -> str:
    """The report's TLS policy of a Destination Controls mode: the Verify modes count with their base."""
    if mode in REQUIRED:
        return TlsPolicy.REQUIRED
    return TlsPolicy.OFF if mode == TlsSupport.NONE else TlsPolicy.PREFERRED


class SmtpClient:
    """Opens, drives and ends delivery's connections; ``shared`` gives the DCIDs and the recorder."""

    def __init__(self, shared):
        self.shared = shared

    async def connect(self, config: Config, domain, mode, host_name, address, port) -> Connection:
        """A new connection to ``address``, greeted but not yet EHLO'd; HopFailed if it cannot be opened."""
        settings = delivery_of(config)
        interface = interfaces.named(settings["default_delivery_interface"], config.get("interfaces", []))
        source = interface["ip"] if interface else None
        ehlo_name = interface["interface_hostname"] if interface else system_hostname(config)
        dcid = self.shared.dcids.take()
        client = aiosmtplib.SMTP(
            hostname=address,
            port=port,
            local_hostname=ehlo_name,
            source_address=(source, 0) if source else None,
            timeout=hops.TIMEOUT,
            start_tls=False,
        )
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError) as error:
            maillog.info(
                f"Connection Error: DCID {dcid} domain: {domain} IP: {address} port: {port} details: {error} "
                f"interface: {source or 'Auto'} reason: network error"
            )
            raise HopFailed(f"4.4.0 - Other network problem ({error})", dcid=dcid) from None
        maillog.info(f"New SMTP DCID {dcid} interface {source or 'Auto'} address {address} port {port}")
        record = records.outgoing(dcid, address, host_name, domain, mode, tls_policy(mode))
        return Connection(client, record, sent=0, since=0.0)

    async def negotiate(self, client, config, record: records.ConnectionRecord) -> None:
        """EHLO and the TLS the mode asks for; TlsRefused when the mode forbids going on."""
        dcid, domain, host_name, mode = record.cid, record.domain, record.remote_host, record.mode
        required = mode in REQUIRED
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError:
            await client.helo()
            if required:
                self._tls_required_failed(record, "the server does not speak ESMTP (EHLO refused)")
            return
        if mode == TlsSupport.NONE:
            return
        if not client.supports_extension("starttls"):
            if required:
                self._tls_required_failed(record, "STARTTLS is not in the server's EHLO answer")
            return
        try:
            await client.starttls(tls_context=client_context(config), server_hostname=host_name)
        except aiosmtplib.SMTPResponseException as refusal:  # an answer other than 220: still in clear
            maillog.info(f"DCID {dcid} TLS failed: STARTTLS unexpected response")
            record.tls_failed(f"STARTTLS answered {refusal.code} {refusal.message}")
            if required:
                maillog.info(
                    f"Connection Error: DCID {dcid} details: {refusal.code}-'{refusal.message}' "
                    f"interface: Auto reason: unexpected SMTP response"
                )
                self._tls_required_failed(record, record.detail)
            return
        except (aiosmtplib.SMTPException, ssl.SSLError, OSError) as error:  # after 220: never on in clear
            maillog.info(f"DCID {dcid} TLS failed: {error}")
            if required:
                self._tls_required_failed(record, f"the TLS handshake failed after 220 ({error})")
            record.tls_failed(f"the TLS handshake failed after 220 ({error})")
            raise TlsRefused(f"4.7.5 - TLS failed after STARTTLS was accepted ({error})", dcid) from None
        ssl_object = client.get_transport_info("ssl_object")
        version, cipher = ssl_object.version(), ssl_object.cipher()[0]
        maillog.info(f"DCID {dcid} TLS success protocol {version} cipher {cipher} for {domain}")
        record.tls_success(version, cipher)
        if mode in VERIFYING:
            verdict = verify.verify_peer(
                peer_chain(ssl_object),
                [domain, host_name],
                trust.anchors(config),
            )
            record.verified = verdict.valid
            if verdict.valid:
                record.detail = f"verified: {verdict.matched} ({', '.join(verdict.names)})"
                maillog.info(f"DCID {dcid} TLS verified: {verdict.matched} ({', '.join(verdict.names)})")
            elif mode == TlsSupport.REQUIRED_VERIFY:
                maillog.info(f"DCID {dcid} TLS failed: verify error: {verdict.reason}")
                record.tls_failed(f"verify error: {verdict.reason}")
                raise TlsRefused(f"4.7.5 - The certificate does not verify ({verdict.reason})", dcid)
            else:
                record.detail = f"not verified: {verdict.reason}"
                maillog.info(f"DCID {dcid} TLS not verified: {verdict.reason}; delivering encrypted")

    def _tls_required_failed(self, record: records.ConnectionRecord, cause: str) -> None:
        maillog.info(
            f"DCID {record.cid} IP {record.remote_address} TLS was required but could not be "
            f"successfully negotiated: {cause}"
        )
        record.tls_failed(cause)
        raise TlsRefused(f"4.7.5 - TLS was required but could not be negotiated ({cause})", record.cid)

    async def transfer(self, connection: Connection, envelope, data, recipients) -> Outcome:
        client, dcid = connection.client, connection.dcid
        outcome = Outcome(dcid=dcid)
        rids = {recipient: envelope.rcpt_tos.index(recipient) for recipient in recipients}
        try:
            await client.mail(envelope.mail_from)
        except aiosmtplib.SMTPResponseException as refusal:
            await self.reset(client)
            return self._refused(outcome, recipients, refusal)
        accepted = []
        for recipient in recipients:
            try:
                await client.rcpt(recipient)
                accepted.append(recipient)
            except aiosmtplib.SMTPResponseException as refusal:
                self._refused(outcome, [recipient], refusal)
        if not accepted:
            await self.reset(client)
            return outcome
        shown = ", ".join(str(rids[r]) for r in accepted)
        maillog.info(f"Delivery start DCID {dcid} MID {envelope.mid} to RID [{shown}]")
        try:
            await client.data(data)
        except aiosmtplib.SMTPResponseException as refusal:
            await self.reset(client)
            return self._refused(outcome, accepted, refusal)
        maillog.info(f"Message done DCID {dcid} MID {envelope.mid} to RID [{shown}]")
        connection.record.messages += 1
        self.shared.recorder.event(
            envelope.mid,
            Event.Kind.DELIVERED,
            f"Delivered to {connection.record.remote_host} ({connection.record.remote_address})",
            accepted,
            dcid,
        )
        outcome.delivered += accepted
        return outcome

    @staticmethod
    async def reset(client) -> None:
        """RSET after a transaction that did not end in DATA, so the connection can carry the next."""
        with contextlib.suppress(aiosmtplib.SMTPException):
            await client.rset()

    def _refused(self, outcome, recipients, refusal) -> Outcome:
        """A refusal per recipient, with the server's enhanced status code when it gave one."""
        why = f"({refusal.code}, ['{refusal.message}'])"
        permanent = 500 <= refusal.code < 600
        status = refusal.message.split(" ", 1)[0]
        if not bounces.ENHANCED_STATUS.fullmatch(status) or status[0] != str(refusal.code)[0]:
            status = "5.0.0" if permanent else "4.0.0"
        for recipient in recipients:
            if permanent:
                outcome.permanent[recipient] = f"{status} - Permanent failure {why}"
            else:
                outcome.temporary[recipient] = f"{status} - Temporary failure {why}"
        return outcome

    async def end(self, connection: Connection, polite: bool = False) -> None:
        """QUIT (``polite``) and close; the connection's slot is free again and its record written."""
        if polite:
            with contextlib.suppress(aiosmtplib.SMTPException):
                await connection.client.quit()
        connection.client.close()
        if connection.slot is not None:
            connection.slot.release()
            connection.slot = None
        maillog.info(f"DCID {connection.dcid} close")
        self.shared.recorder.connection(connection.record)


def client_context(config: Config) -> ssl.SSLContext:
    """TLS for delivery: the Outbound SMTP SSL configuration, no verification by OpenSSL (the mode
    decides, with ``certificates.verify``), and the global outbound certificate for servers that ask."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    tls.policy(config, tls.Service.OUTBOUND).apply(context)
    [controls] = config.get("destination_controls") or [{"certificate_name": ""}]
    if controls.get("certificate_name"):
        item = registry.item_named(config, "certificates", controls["certificate_name"])
        chain, key = https.certificate_files(item)
        context.load_cert_chain(chain, key, password=vault.runtime_password())
    return context


def peer_chain(ssl_object) -> list[x509.Certificate]:
    """The certificates the server sent, in its order (Python 3.11 keeps them on the C object)."""
    native = getattr(ssl_object, "_sslobj", ssl_object)
    chain = native.get_unverified_chain() or []
    return [
        x509.load_der_x509_certificate(certificate.public_bytes(ssl._ssl.ENCODING_DER))
        for certificate in chain
    ]
