"""One inbound SMTP session (aiosmtpd) under the committed HAT and mail flow policy.

The session takes its listener's settings when the host connects (``Inbound``)
and keeps them to the end, so a commit never changes a session in progress.
Before the banner: reverse DNS if the HAT lists host names, then the HAT's
decision — TCP Refuse closes, Reject answers 554, Accept and Relay go on with
the policy's TLS:

  Off        STARTTLS is not offered;
  Preferred  offered; a failed handshake closes the session (never on in clear);
  Required   every command but NOOP, EHLO, STARTTLS and QUIT gets
             ``530 5.7.0 Must issue a STARTTLS command first`` until TLS is up.

Verify Client Certificate asks for the client's certificate and checks it against
the Certificate Authorities lists (optional with Preferred, required with
Required); TLS is Mandatory for Address List refuses MAIL FROM a listed sender
in clear. A message is answered 250 only once the spool holds it (fsync'd).
aiosmtpd ≥ 1.4.6 drops what a client pipelines after STARTTLS; messages with a
bare CR or LF are refused, so nothing can smuggle a second message through us.

Under abuse, as Postfix's anvil and stress mode: past its policy's Max. Concurrent
Connections or Max. Connections Per Minute From a Single IP a client gets 421 and
is closed; while the listener holds more than ``STRESS_SHARE`` of its Maximum
Concurrent Connections, a session that has not yet sent MAIL FROM has
``SMTP_STRESS_TIMEOUT_SECONDS`` for each command instead of ``SMTP_TIMEOUT_SECONDS``.
A MAIL FROM or RCPT TO whose address holds what no envelope address may (a control
character, NUL included, 8-bit without SMTPUTF8, unbalanced angle brackets) gets
501 before anything is logged or queued.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

from aiosmtpd.smtp import SMTP, TLSSetupException, syntax
from django.conf import settings

from appliance.config.sections import Item
from gateway import maillog, records
from gateway.access import Decision, HostAccessTable
from gateway.processes import Admission, ClientCounts, ListenerCounts
from gateway.spool import Envelope, IdCounter, Spool
from listeners import hat, rat
from listeners.models import DEFAULT_LIMITS, LIMIT_LABELS, ConnectionBehavior, InboundTls
from tracking.models import TlsPolicy

ALLOWED_BEFORE_TLS = {"NOOP", "EHLO", "STARTTLS", "QUIT"}
MUST_STARTTLS = "530 5.7.0 Must issue a STARTTLS command first"
BARE_NEWLINE = re.compile(rb"\r(?!\n)|(?<!\r)\n")
TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
STRESS_SHARE = 0.8  # of a listener's Maximum Concurrent Connections: above it, the listener is busy
TOO_MANY_FROM_ADDRESS = {
    Admission.TOO_MANY_OPEN: (
        "max_concurrency_per_ip",
        "421 4.7.0 Too many concurrent SMTP connections from this IP address; please try again later.",
    ),
    Admission.TOO_FAST: (
        "max_connections_per_minute_per_ip",
        "421 4.7.0 Too many SMTP connections from this IP address this minute; please try again later.",
    ),
}
# Characters no envelope address may hold: C0 controls (NUL included) and DEL.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
BAD_ADDRESS = {
    "MAIL": "501 5.1.7 Bad sender address syntax",
    "RCPT": "501 5.1.3 Bad recipient address syntax",
}
ESA_WORDS = {
    "552 Error: Too much mail data": TOO_BIG,
    "552 Error: message size exceeds fixed maximum message size": TOO_BIG,
}


@dataclass
class Inbound:
    """What a listener's sessions need, from one running configuration (immutable once built)."""

    listener: Item  # with its predefined policies, HAT and RAT where the file gave none
    interface: Item
    hat: HostAccessTable
    # Server contexts by client-certificate verification: "none", "optional", "required".
    # Empty: the listener has no certificate, so no TLS whatever the policy says.
    contexts: dict[str, ssl.SSLContext]
    address_list_matches: Callable[[str, str], bool]  # (list name, address), on this configuration
    hostname: str

    @property
    def name(self) -> str:
        return self.listener["listener_name"]


@dataclass
class Shared:
    """What every session of the gateway shares: where ICIDs and MIDs come from, the spool."""

    icids: IdCounter
    mids: IdCounter
    dcids: IdCounter
    spool: Spool
    accepted: Callable[[int], None] = lambda mid: None  # a message is in the spool: delivery may start
    sessions: set = field(default_factory=set)  # open sessions, for a clean stop
    # Open sessions (by listener name) and sessions in TLS ("TLS " and the name), over every process
    # of the gateway: the listeners' concurrency limits.
    open_counts: ListenerCounts = field(default_factory=ListenerCounts)
    client_counts: ClientCounts = field(default_factory=ClientCounts)  # by listener and client address
    recorder: records.Recorder = field(default_factory=records.Recorder)


class InboundSession(SMTP):
    def __init__(self, inbound: Inbound, service: Shared, resolve_name):
        super().__init__(
            _Handler(self),
            hostname=inbound.hostname,
            ident="ESMTP",
            data_size_limit=DEFAULT_LIMITS["max_message_size"],  # the policy's, once the HAT decides
            enable_SMTPUTF8=True,
            decode_data=False,
            timeout=settings.SMTP_TIMEOUT_SECONDS,
        )
        self.inbound, self.service, self.resolve_name = inbound, service, resolve_name
        self.icid = service.icids.take()
        self.decision: Decision | None = None
        self.reverse_name, self.verified = "unknown", False
        self.tls_text = ""
        self.ended = False
        self.counted = self.counted_tls = False
        self.client_key = ""  # "listener address" while ClientCounts counts this connection open
        self.sent_mail_from = False
        self.messages = 0
        self.closing = False  # QUIT, or we closed: the end is not "lost"
        self.reported_missing_tls = False
        self.continued: list[str] = []  # the lines of a multi-line reply so far
        self.record = records.incoming(self.icid, inbound.name)

    # --- before the banner: who is it, and what may it do -------------------------------

    async def _handle_client(self):
        self.service.sessions.add(self)
        name, listener = self.inbound.name, self.inbound.listener
        address = self.record.remote_address = self.session.peer[0]
        if not self.service.open_counts.take(name, listener["max_concurrency"]):
            self._log_new(address)  # no reverse DNS for a connection refused at once
            maillog.info(
                f"ICID {self.icid} refused: listener {name} has its maximum of concurrent connections"
            )
            await self.push("421 4.3.2 Too many concurrent connections; try again later")
            self.closing = True
            self.transport.close()
            return
        self.counted = True
        if self.inbound.hat.needs_names:
            self.reverse_name, self.verified = await self.resolve_name(address)
            if self.verified:
                self.record.remote_host = self.reverse_name
        self._log_new(address)
        self.decision = self.inbound.hat.decide(address, self.reverse_name if self.verified else "")
        behavior = self.decision.behavior
        verdict = {
            ConnectionBehavior.TCPREFUSE: "TCPREFUSE",
            ConnectionBehavior.REJECT: "REJECT",
            ConnectionBehavior.RELAY: "RELAY",
        }.get(behavior, "ACCEPT")
        maillog.info(f"ICID {self.icid} {verdict} SG {self.decision.group} match {self.decision.entry}")
        if behavior == ConnectionBehavior.TCPREFUSE:
            self.closing = True
            self.transport.close()
            return
        self.limits = hat.effective_limits(listener, self.decision.policy)
        if not await self._admit_client(address):
            return
        if behavior == ConnectionBehavior.REJECT:
            await self.push(f"554 5.7.1 {self.hostname} Access denied")
            self.closing = True
            self.transport.close()
            return
        self._apply_tls(self.decision.tls)
        self.data_size_limit = self.limits.max_message_size
        await super()._handle_client()

    async def _admit_client(self, address: str) -> bool:
        """The policy's limits From a Single IP: False (421 sent, closing) past one of them."""
        key = f"{self.inbound.name} {address}"
        limits = self.limits
        admission = self.service.client_counts.admit(
            key, limits.max_concurrency_per_ip, limits.max_connections_per_minute_per_ip
        )
        if admission == Admission.ADMITTED:
            self.client_key = key
            return True
        if admission == Admission.UNTRACKED:
            maillog.warning(
                f"ICID {self.icid} address {address} not limited: the table of client addresses is full"
            )
            return True
        tag, reply = TOO_MANY_FROM_ADDRESS[admission]
        maillog.info(
            f"ICID {self.icid} refused: address {address} reached {LIMIT_LABELS[tag]} ({getattr(limits, tag)}) "
            f"of policy {self.decision.policy['policy_name']}"
        )
        await self.push(reply)
        self.closing = True
        self.transport.close()
        return False

    def _reset_timeout(self, duration: float | None = None) -> None:
        # Postfix's stress mode: while the listener is busy, who has not yet sent MAIL FROM gets little
        # time for each command, so idle connections cannot keep others out.
        if duration is None and not self.sent_mail_from and self._listener_busy():
            duration = settings.SMTP_STRESS_TIMEOUT_SECONDS
        super()._reset_timeout(duration)

    def _listener_busy(self) -> bool:
        name = self.inbound.name
        return self.service.open_counts[name] > STRESS_SHARE * self.inbound.listener["max_concurrency"]

    def _log_new(self, address: str) -> None:
        interface = self.inbound.interface
        maillog.info(
            f"New SMTP ICID {self.icid} interface {interface['interface_name']} ({interface['ip']}) "
            f"address {address} reverse dns host {self.reverse_name} verified {'yes' if self.verified else 'no'}"
        )

    async def push(self, status):
        # aiosmtpd's size refusals, in the words (and with the enhanced code) the ESA uses.
        status = ESA_WORDS.get(status, status)
        if status[3:4] == "-":
            # A line of a multi-line reply (EHLO's) goes out with the reply's last line, in one send:
            # a send a line was a sixth of the gateway's CPU.
            self.continued.append(status)
            return
        if self.continued:
            status = "\r\n".join([*self.continued, status])
            self.continued.clear()
        await super().push(status)

    def _apply_tls(self, tls) -> None:
        if tls.tls == InboundTls.OFF or not self.inbound.contexts:
            self.tls_context = None
        else:
            self.record.policy = tls.tls
            verify = (
                "none"
                if not tls.verify_client
                else "optional"
                if tls.tls == InboundTls.PREFERRED
                else "required"
            )
            self.tls_context = self.inbound.contexts[verify]
        if tls.tls == InboundTls.REQUIRED:
            for command, method in list(self._smtp_methods.items()):
                if command not in ALLOWED_BEFORE_TLS:
                    self._smtp_methods[command] = self._after_tls(command, method)

    def _after_tls(self, command, method):
        async def guarded(arg):
            if self._tls_protocol is None:
                if command in ("MAIL", "RCPT", "DATA") and not self.reported_missing_tls:
                    self.reported_missing_tls = True
                    maillog.info(f"ICID {self.icid} TLS was required but remote host did not initiate it")
                    self.record.tls_failed("TLS was required but remote host did not initiate it")
                await self.push(MUST_STARTTLS)
                return
            await method(arg)

        return guarded

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg):  # noqa: N802 (aiosmtpd's name)
        name = self.inbound.name
        if self._tls_protocol is not None:
            await self.push("503 5.5.1 TLS already active")
            return
        if self.tls_context and not arg:
            if not self.service.open_counts.take(f"TLS {name}", self.inbound.listener["max_tls_concurrency"]):
                await self.push("454 4.7.0 TLS not available due to temporary reason")
                return
            self.counted_tls = True
        await super().smtp_STARTTLS(arg)

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg):  # noqa: N802 (aiosmtpd's name)
        if self.messages >= self.limits.max_msgs_per_session:
            await self.push("421 4.7.0 Too many messages in this session; send the rest in a new one")
            self.closing = True
            self.transport.close()
            return
        utf8 = "SMTPUTF8" in (arg or "").upper().split()[1:]
        if await self._refused_address("MAIL", arg, utf8):
            return
        await super().smtp_MAIL(arg)

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg):  # noqa: N802 (aiosmtpd's name)
        utf8 = "SMTPUTF8" in self.envelope.mail_options
        if await self._refused_address("RCPT", arg, utf8):
            return
        await super().smtp_RCPT(arg)

    async def _refused_address(self, command: str, arg: str | None, utf8: bool) -> bool:
        """501 to an address no envelope may hold, logged without it; whether it was refused."""
        problem = _address_problem(arg or "", utf8)
        if problem:
            maillog.info(f"ICID {self.icid} {command} refused: {problem}")
            await self.push(f"{BAD_ADDRESS[command]}: {problem}")
        return bool(problem)

    async def smtp_AUTH(self, arg):  # noqa: N802 (aiosmtpd's name)
        await self.push("502 5.5.1 SMTP AUTH is not offered here")

    # --- TLS ----------------------------------------------------------------------------

    def tls_established(self) -> None:
        ssl_object = self.session.ssl["ssl_object"]  # aiosmtpd: the TLS layer's extra info
        version, cipher = ssl_object.version(), ssl_object.cipher()[0]
        self.tls_text = f"{version} {cipher}"
        self.record.tls_success(version, cipher)
        maillog.info(f"ICID {self.icid} TLS success protocol {version} cipher {cipher}")

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):
            reason = error.__cause__ or error
            maillog.info(f"ICID {self.icid} TLS failed: {_reason(reason)}")
            self.record.tls_failed(_reason(reason))
            self._end(lost=True)
            return "454 4.7.0 TLS not available due to temporary reason"
        maillog.warning(f"ICID {self.icid} error: {error.__class__.__name__}: {error}")
        return "451 4.3.0 Local error in processing"

    # --- the end --------------------------------------------------------------------------

    @syntax("QUIT")
    async def smtp_QUIT(self, arg):  # noqa: N802 (aiosmtpd's name)
        self.closing = not arg
        await super().smtp_QUIT(arg)

    def connection_lost(self, error):
        super().connection_lost(error)
        self._end(lost=not self.closing)

    def _end(self, lost: bool) -> None:
        if self.ended:
            return
        self.ended = True
        self.service.sessions.discard(self)
        if self.counted:
            self.service.open_counts.release(self.inbound.name)
        if self.counted_tls:
            self.service.open_counts.release(f"TLS {self.inbound.name}")
        if self.client_key:
            self.service.client_counts.release(self.client_key)
        if lost:
            maillog.info(f"ICID {self.icid} lost")
        maillog.info(f"ICID {self.icid} close")
        self.service.recorder.connection(self.record)


def _address_problem(arg: str, utf8: bool) -> str:
    """What makes a MAIL FROM or RCPT TO argument unusable as an envelope address ("" if nothing).

    aiosmtpd decodes the line as UTF-8 with surrogate escapes, so bytes that are not UTF-8 come here
    as surrogates; the mail log, the spool's JSON and delivery could not take them."""
    if CONTROL.search(arg):
        return "the address holds a control character"
    if any("\udc80" <= char <= "\udcff" for char in arg):
        return "the address holds bytes that are not UTF-8"
    if not utf8 and not arg.isascii():
        return "8-bit characters need SMTPUTF8"
    path = arg.partition(":")[2].strip().split(" ", 1)[0]  # after FROM: or TO:, before any parameter
    if path.count("<") != path.count(">") or path.count("<") > 1 or path.find(">") < path.find("<"):
        return "unbalanced angle brackets"
    return ""


def _reason(error: BaseException) -> str:
    """Why a handshake failed, in the mail log's words: OpenSSL's reason, or the system error."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"{error.reason}: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return error.reason or str(error)
    if isinstance(error, OSError) and error.errno:
        return f"[Errno {error.errno}] {os.strerror(error.errno)}"
    return str(error) or error.__class__.__name__


class _Handler:
    """aiosmtpd's hooks for one session."""

    def __init__(self, session: InboundSession):
        self.owner = session

    def handle_STARTTLS(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name; called, not awaited)
        self.owner.tls_established()
        return True

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        session.host_name = hostname
        return [line for line in responses if not line[4:].startswith("AUTH")]  # no SMTP AUTH here

    async def handle_MAIL(self, server, session, envelope, address, options):  # noqa: N802
        owner = self.owner
        tls = owner.decision.tls
        if tls.mandatory_address_list and server._tls_protocol is None:
            if owner.inbound.address_list_matches(tls.mandatory_address_list, address):
                maillog.info(
                    f"ICID {owner.icid} TLS was required for sender <{address}> but remote host did not initiate it"
                )
                owner.record.policy = TlsPolicy.REQUIRED
                owner.record.tls_failed(f"TLS was required for sender <{address}> but was not started")
                return MUST_STARTTLS
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        owner.sent_mail_from = True
        server._reset_timeout()  # a sender at work: the full time from now on, busy or not
        return "250 2.1.0 Sender ok"

    async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
        owner = self.owner
        if len(envelope.rcpt_tos) >= owner.limits.max_rcpts_per_msg:
            return "452 4.5.3 Too many recipients"
        if owner.decision.behavior != ConnectionBehavior.RELAY:
            entry = rat.decide(owner.inbound.listener["rat_entry"], address)
            if entry is None or entry["action"] != rat.Action.ACCEPT:
                shown = entry["recipient"] if entry else rat.ALL
                maillog.info(
                    f"ICID {owner.icid} RID {len(envelope.rcpt_tos)} reject RAT '{shown}' rcpt <{address}>"
                )
                return "550 5.7.1 Recipient address rejected: this gateway takes no mail for it"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 Recipient ok"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        owner = self.owner
        data = envelope.original_content or b""
        if BARE_NEWLINE.search(data):
            return "554 5.6.11 Message refused: it holds a bare CR or LF (only CR LF may end a line)"
        service = owner.service
        mid = service.mids.take()
        received = datetime.now(UTC)
        trace = _received_header(owner, session, mid, received)
        message = Envelope(
            mid=mid,
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            received=received.isoformat(),
            icid=owner.icid,
            listener=owner.inbound.name,
            peer=session.peer[0],
            tls=owner.tls_text,
        )
        await server.loop.run_in_executor(None, service.spool.accept, message, trace + data)
        service.recorder.message(message, trace + data)
        maillog.info(f"Start MID {mid} ICID {owner.icid}")
        maillog.info(f"MID {mid} ICID {owner.icid} From: <{message.mail_from}>")
        for index, recipient in enumerate(message.rcpt_tos):
            maillog.info(f"MID {mid} ICID {owner.icid} RID {index} To: <{recipient}>")
        maillog.info(f"Message finished MID {mid} done")
        owner.messages += 1
        owner.record.messages += 1
        owner.record.domain = owner.record.domain or message.mail_from.rpartition("@")[2].lower()
        service.accepted(mid)
        return f"250 2.0.0 Ok: Message {mid} accepted"


def _received_header(owner: InboundSession, session, mid: int, when: datetime) -> bytes:
    helo = session.host_name or "unknown"
    protocol = "ESMTPS" if owner.tls_text else "ESMTP"
    tls = f" (version={owner.tls_text.replace(' ', ' cipher=')})" if owner.tls_text else ""
    line = (
        f"Received: from {helo} ({owner.reverse_name} [{session.peer[0]}])\r\n"
        f"  by {owner.hostname} with {protocol}{tls} id {mid};\r\n"
        f"  {format_datetime(when)}\r\n"
    )
    return line.encode("utf-8", "surrogateescape")
