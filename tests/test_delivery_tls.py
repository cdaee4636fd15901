"""Outbound delivery under each TLS Support of Destination Controls, against real receiving servers.

The matrix: the five modes and Default (an entry whose TLS Support is Default, with the Default entry on
Required - Verify) × receiving servers started here on loopback with aiosmtpd (no STARTTLS; STARTTLS
answered 454; a certificate from the trusted test CA with the right name; right CA, wrong name;
self-signed; expired; a handshake that breaks after ``220``; a server that refuses EHLO). Mail reaches
them through an SMTP route, so no DNS is needed; the test CA is in the Custom List, enabled. Each cell
says whether the message was delivered encrypted (the server saw TLS), in clear, or held (still
spooled with its last error, nothing at the server, not even MAIL FROM in clear), and checks the mail
log lines of the connection and of the message.

Then the same through the whole gateway (smtplib into the listener, the delivery loop running), the
certificate name matched by the route's host name, and one cell against a real Postfix.
"""

from __future__ import annotations

import re
import ssl
import time

import pytest

from appliance import workflow
from appliance.config.levels import CLUSTER, CLUSTER_MODE
from appliance.config.sections import registry
from destinations import store
from destinations.models import TlsSupport
from gateway.spool import Spool
from listeners import rat
from tests.delivery_fixtures import (  # noqa: F401 (fixtures)
    BROKEN,
    DOMAIN,
    EXPIRED,
    KINDS,
    MX_ADDRESS,
    NO_ESMTP,
    PLAIN,
    POSTFIX_DOMAIN,
    RECIPIENT,
    REFUSAL,
    REFUSES,
    SELF_SIGNED,
    SENDER,
    TRUSTED,
    WRONG_NAME,
    destination_change,
    dns_change,
    message,
    outbound_fixture,
    postfix_fixture,
    receivers_fixture,
    route_change,
    running,
    server_context,
    server_pki_fixture,
    smtp_port_fixture,
    trust_change,
    wait_for,
    wait_until,
    zone_fixture,
)
from tests.gateway_fixtures import (  # noqa: F401 (fixtures)
    IN,
    LOOPBACK,
    flush_records,
    free_port,
    gateway_fixture,
    loop_thread_fixture,
    mail_log_fixture,
    mid_of,
    send,
)
from tracking.models import Connection, Direction, TlsPolicy, TlsResult

CLEAR, ENCRYPTED, HELD = "delivered in clear", "delivered encrypted", "held"
DEFAULT_ROW = "default"  # the entry says Default; the Default entry says Required - Verify

# What becomes of the message: one row per mode, one column per kind of server (KINDS' order:
# plain, 454, trusted, wrong name, self-signed, expired, broken after 220, EHLO refused).
C, E, H = CLEAR, ENCRYPTED, HELD
FATES = {
    TlsSupport.NONE: (C, C, C, C, C, C, C, C),
    TlsSupport.PREFERRED: (C, C, E, E, E, E, H, C),
    TlsSupport.REQUIRED: (H, H, E, E, E, E, H, H),
    TlsSupport.PREFERRED_VERIFY: (C, C, E, E, E, E, H, C),
    TlsSupport.REQUIRED_VERIFY: (H, H, E, H, H, H, H, H),
}
FATES[DEFAULT_ROW] = FATES[TlsSupport.REQUIRED_VERIFY]
KIND_IDS = {
    PLAIN: "plain",
    REFUSES: "starttls-454",
    TRUSTED: "trusted",
    WRONG_NAME: "wrong-name",
    SELF_SIGNED: "self-signed",
    EXPIRED: "expired",
    BROKEN: "broken-after-220",
    NO_ESMTP: "ehlo-refused",
}
VERIFY_REASONS = {
    WRONG_NAME: re.escape(f"hostname mismatch: {DOMAIN} or {LOOPBACK} is not in elsewhere.test"),
    SELF_SIGNED: re.escape("self-signed certificate"),
    EXPIRED: r"certificate has expired \(not valid after \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)",
}
REQUIRED_CAUSES = {
    PLAIN: "STARTTLS is not in the server's EHLO answer",
    NO_ESMTP: "the server does not speak ESMTP (EHLO refused)",
    REFUSES: f"STARTTLS answered {REFUSAL}",
}


def effective(mode: str) -> str:
    return TlsSupport.REQUIRED_VERIFY if mode == DEFAULT_ROW else mode


def tls_lines(mode: str, kind: str, dcid: int) -> list[str]:
    """The log lines (patterns) about TLS of the connection, between ``New SMTP DCID`` and the delivery."""
    mode = effective(mode)
    required = mode in (TlsSupport.REQUIRED, TlsSupport.REQUIRED_VERIFY)
    if mode == TlsSupport.NONE:
        return []
    required_failed = re.escape(
        f"DCID {dcid} IP {LOOPBACK} TLS was required but could not be successfully negotiated: "
        f"{REQUIRED_CAUSES.get(kind)}"
    )
    if kind in (PLAIN, NO_ESMTP):
        return [required_failed] if required else []
    if kind == REFUSES:
        refused = [re.escape(f"DCID {dcid} TLS failed: STARTTLS unexpected response")]
        if not required:
            return refused
        code, words = REFUSAL.split(" ", 1)
        return refused + [
            re.escape(
                f"Connection Error: DCID {dcid} details: {code}-'{words}' interface: Auto "
                "reason: unexpected SMTP response"
            ),
            required_failed,
        ]
    if kind == BROKEN:
        failed = rf"DCID {dcid} TLS failed: (?!STARTTLS unexpected response).+"
        if not required:
            return [failed]
        return [
            failed,
            re.escape(
                f"DCID {dcid} IP {LOOPBACK} TLS was required but could not be successfully negotiated: "
            )
            + r"the TLS handshake failed after 220 \(.+\)",
        ]
    success = rf"DCID {dcid} TLS success protocol TLSv1\.3 cipher \S+ for {re.escape(DOMAIN)}"
    if mode in (TlsSupport.PREFERRED, TlsSupport.REQUIRED):
        return [success]
    if kind == TRUSTED:
        return [success, re.escape(f"DCID {dcid} TLS verified: {DOMAIN} ({DOMAIN})")]
    if mode == TlsSupport.PREFERRED_VERIFY:
        return [success, rf"DCID {dcid} TLS not verified: {VERIFY_REASONS[kind]}; delivering encrypted"]
    return [success, rf"DCID {dcid} TLS failed: verify error: {VERIFY_REASONS[kind]}"]


def assert_lines(lines: list[str], patterns: list[str]) -> None:
    """Each line matches its pattern, in order, and there are no others."""
    shown = "\n".join(lines)
    assert len(lines) == len(patterns), f"logged:\n{shown}\nexpected:\n" + "\n".join(patterns)
    for line, pattern in zip(lines, patterns, strict=True):
        assert re.fullmatch(pattern, line), f"{line!r} is not {pattern!r}\nlogged:\n{shown}"


def configure(outbound, pki, mode: str, *hosts: str) -> None:
    """Mail for DOMAIN goes to ``hosts`` under ``mode``; the test root CA is trusted; committed."""
    outbound.route(DOMAIN, *hosts)
    if mode == DEFAULT_ROW:
        outbound.destination(DOMAIN, TlsSupport.DEFAULT)
        outbound.default_tls(TlsSupport.REQUIRED_VERIFY)
    else:
        outbound.destination(DOMAIN, mode)
    outbound.trust(pki.authorities.root)
    outbound.commit()


def assert_fate(outbound, receiver, mid: int, fate: str) -> None:
    if fate == HELD:
        assert receiver.messages == []
        assert receiver.mail_commands == [], "a held message must not even start in clear"
        assert outbound.queued() == [mid]
        state = outbound.state(mid)
        assert state.attempts == 1
        assert state.done == {}
        assert state.last_error.startswith("4.7.5 - "), state.last_error
        assert state.next_attempt
        return
    [received] = receiver.messages
    assert (received.mail_from, received.rcpt_tos) == (SENDER, [RECIPIENT])
    assert received.data.endswith(message())
    if fate == ENCRYPTED:
        assert received.tls.startswith("TLSv1.3 "), received
        assert receiver.mail_commands == [(SENDER, True)]
    else:
        assert received.tls == ""
        assert receiver.mail_commands == [(SENDER, False)]
    assert outbound.queued() == []


def assert_record(outbound, dcid: int, mode: str, kind: str, fate: str) -> None:
    """The connection's record for the TLS Connections report: its policy, TLS result and verification."""
    mode = effective(mode)
    flush_records(outbound.runner, outbound.shared)
    record = Connection.objects.of("").get(direction=Direction.OUTGOING, cid=dcid)
    policy = {
        TlsSupport.NONE: TlsPolicy.OFF,
        TlsSupport.PREFERRED: TlsPolicy.PREFERRED,
        TlsSupport.PREFERRED_VERIFY: TlsPolicy.PREFERRED,
        TlsSupport.REQUIRED: TlsPolicy.REQUIRED,
        TlsSupport.REQUIRED_VERIFY: TlsPolicy.REQUIRED,
    }[mode]
    if mode == TlsSupport.NONE or (kind in (PLAIN, NO_ESMTP) and policy == TlsPolicy.PREFERRED):
        result = TlsResult.NONE
    else:
        result = TlsResult.SUCCESS if fate == ENCRYPTED else TlsResult.FAILED
    handshake = kind in (TRUSTED, WRONG_NAME, SELF_SIGNED, EXPIRED) and mode != TlsSupport.NONE
    checked = handshake and mode in (TlsSupport.PREFERRED_VERIFY, TlsSupport.REQUIRED_VERIFY)
    assert (record.policy, record.result, record.verified) == (
        policy,
        result,
        (kind == TRUSTED) if checked else None,
    ), record.detail
    assert (record.domain, record.remote_address, record.mode) == (DOMAIN, LOOPBACK, mode)
    assert record.messages == (0 if fate == HELD else 1)
    assert bool(record.protocol) == handshake  # a Required - Verify refusal came after the handshake


# --- the matrix -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS.get)
@pytest.mark.parametrize("mode", [*FATES], ids=str)
def test_matrix(outbound, receivers, server_pki, mode, kind):
    receiver = receivers(kind)
    configure(outbound, server_pki, mode, receiver.hop)
    fate = FATES[mode][KINDS.index(kind)]
    mid, dcid = outbound.queue(), outbound.next_dcid()

    outbound.deliver(mid)

    assert_fate(outbound, receiver, mid, fate)
    delivered = [] if fate == HELD else [
        re.escape(f"Delivery start DCID {dcid} MID {mid} to RID [0]"),
        re.escape(f"Message done DCID {dcid} MID {mid} to RID [0]"),
    ]  # fmt: skip
    assert_lines(
        outbound.connection(dcid),
        [
            re.escape(f"New SMTP DCID {dcid} interface Auto address {LOOPBACK} port {receiver.port}"),
            *tls_lines(mode, kind, dcid),
            *delivered,
            re.escape(f"DCID {dcid} close"),
        ],
    )
    assert_record(outbound, dcid, mode, kind, fate)
    delayed = [line for line in outbound.lines_about(mid) if line.startswith("Delayed:")]
    if fate == HELD:
        assert_lines(delayed, [rf"Delayed: MID {mid} to RID 0 - 4\.7\.5 - .+"])
    else:
        assert delayed == []
    if effective(mode) == TlsSupport.NONE:
        assert not any("TLS" in line for line in outbound.connection(dcid))


@pytest.mark.parametrize(
    ("entry", "recipient"),
    [(DOMAIN, "rcpt@Dest.TEST"), (f".{DOMAIN}", f"rcpt@mail.{DOMAIN}")],
    ids=["upper-case-address", "subdomain-entry"],
)
def test_required_holds_whatever_the_case_of_the_address_and_below_a_subdomain_entry(
    outbound, receivers, entry, recipient
):
    receiver = receivers(PLAIN)
    outbound.route(entry, receiver.hop)
    outbound.destination(entry, TlsSupport.REQUIRED)
    outbound.commit()
    mid = outbound.queue([recipient])

    outbound.deliver(mid)

    assert receiver.mail_commands == []
    assert outbound.queued() == [mid]
    assert "STARTTLS is not in the server's EHLO answer" in outbound.state(mid).last_error


# --- which names a certificate may carry -----------------------------------------------------------


def test_required_verify_accepts_the_route_host_name(outbound, receivers, server_pki, zone):
    credential = server_pki.authorities.intermediate.issue("mx.route.test")
    receiver = receivers(TRUSTED, context=server_context(server_pki.chain(credential), credential.key))
    resolver, port = zone(f"mx.route.test. 300 IN A {LOOPBACK}\n")
    outbound.stage("DNS", dns_change(port))
    configure(outbound, server_pki, TlsSupport.REQUIRED_VERIFY, f"mx.route.test:{receiver.port}")
    mid, dcid = outbound.queue(), outbound.next_dcid()

    outbound.deliver(mid)

    [received] = receiver.messages
    assert received.tls.startswith("TLSv1.3 ")
    assert f"DCID {dcid} TLS verified: mx.route.test (mx.route.test)" in outbound.connection(dcid)
    assert ("mx.route.test.", "A") in resolver.questions
    assert outbound.queued() == []


def test_required_verify_accepts_the_mx_host_name(outbound, receivers, server_pki, zone, smtp_port):
    credential = server_pki.authorities.intermediate.issue(f"mx.{DOMAIN}")  # not the domain itself
    receiver = receivers(
        TRUSTED,
        context=server_context(server_pki.chain(credential), credential.key),
        address=MX_ADDRESS,
        port=smtp_port,
    )
    resolver, port = zone(f"{DOMAIN}. 300 IN MX 10 mx.{DOMAIN}.\nmx.{DOMAIN}. 300 IN A {MX_ADDRESS}\n")
    outbound.stage("DNS", dns_change(port))
    outbound.destination(DOMAIN, TlsSupport.REQUIRED_VERIFY)
    outbound.trust(server_pki.authorities.root)
    outbound.commit()
    mid, dcid = outbound.queue(), outbound.next_dcid()

    outbound.deliver(mid)

    [received] = receiver.messages
    assert received.tls.startswith("TLSv1.3 ")
    assert outbound.connection(dcid)[:3] == [
        f"New SMTP DCID {dcid} interface Auto address {MX_ADDRESS} port {smtp_port}",
        outbound.connection(dcid)[1],
        f"DCID {dcid} TLS verified: mx.{DOMAIN} (mx.{DOMAIN})",
    ]
    assert (f"{DOMAIN}.", "MX") in resolver.questions


def test_a_domain_without_an_entry_takes_the_shipped_default_entry_preferred(outbound, receivers, server_pki):
    receiver = receivers(REFUSES)
    outbound.route(DOMAIN, receiver.hop)
    outbound.commit()
    [controls] = outbound.config["destination_controls"]
    assert [(item["destination_name"], item["tls"]) for item in controls["destination"]] == [
        ("Default", TlsSupport.PREFERRED)
    ]
    mid, dcid = outbound.queue(), outbound.next_dcid()

    outbound.deliver(mid)

    assert_fate(outbound, receiver, mid, CLEAR)  # Preferred: a 454 is before the 220, so on in clear
    assert f"DCID {dcid} TLS failed: STARTTLS unexpected response" in outbound.connection(dcid)


def test_the_global_outbound_certificate_is_presented_when_the_server_asks(outbound, receivers, server_pki):
    demo_pem = registry.item_named(outbound.config, "certificates", "Demo")["certificate_pem"]
    context = server_context(server_pki.chain(server_pki.trusted), server_pki.trusted.key)
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_verify_locations(cadata=demo_pem)
    receiver = receivers(TRUSTED, context=context)
    outbound.stage(
        "outbound certificate",
        lambda: store.set_destination_controls(CLUSTER_MODE, "Demo", send_tls_required_alert=False),
    )
    configure(outbound, server_pki, TlsSupport.REQUIRED, receiver.hop)
    mid = outbound.queue()

    outbound.deliver(mid)

    [received] = receiver.messages
    assert received.client_certificate == ssl.PEM_cert_to_DER_cert(demo_pem)


# --- through the whole gateway -----------------------------------------------------------------------


@pytest.fixture(name="delivering")
def delivering_fixture(gateway, tmp_path):
    """The gateway of ``gateway_fixtures`` on a spool of this test's own, with its delivery loop."""
    gateway.gateway.shared.spool = Spool(tmp_path / "spool")
    gateway.stage(
        "take mail for the test domain", lambda: rat.add_entry(CLUSTER, IN, DOMAIN, "ACCEPT", order=1)
    )
    with running(gateway.runner, gateway.gateway.delivery):
        yield gateway


def commit_and_follow(gateway) -> None:
    """Commit; the listeners and the delivery loop take the new running configuration."""
    assert gateway.commit() == []
    gateway.gateway.config = workflow.running_config()  # what ``Gateway._follow`` does


def test_through_the_gateway_required_verify_delivers_encrypted(delivering, receivers, server_pki):
    receiver = receivers(TRUSTED)
    delivering.stage("route", route_change(DOMAIN, receiver.hop))
    delivering.stage("entry", destination_change(DOMAIN, TlsSupport.REQUIRED_VERIFY))
    delivering.stage("CA", trust_change(server_pki.authorities.root))
    commit_and_follow(delivering)

    with delivering.smtp() as client:
        code, reply = send(client, SENDER, [RECIPIENT], message())
    assert code == 250
    mid = mid_of(reply)
    [received] = receiver.wait()

    assert received.tls.startswith("TLSv1.3 ")
    assert (received.mail_from, received.rcpt_tos) == (SENDER, [RECIPIENT])
    assert received.data.startswith(b"Received: from client.test (unknown [127.0.0.1])\r\n")
    assert received.data.endswith(message())
    lines = wait_for(delivering.log, rf"Message done DCID \d+ MID {mid} to RID \[0\]")
    dcid = int(re.search(r"DCID (\d+)", lines[-1]).group(1))
    assert f"DCID {dcid} TLS verified: {DOMAIN} ({DOMAIN})" in delivering.log.lines
    wait_until(lambda: delivering.gateway.shared.spool.mids() == [])


def test_through_the_gateway_required_keeps_the_message_from_a_server_without_starttls(
    delivering, receivers, server_pki
):
    receiver = receivers(PLAIN)
    delivering.stage("route", route_change(DOMAIN, receiver.hop))
    delivering.stage("entry", destination_change(DOMAIN, TlsSupport.REQUIRED))
    commit_and_follow(delivering)

    with delivering.smtp() as client:
        code, reply = send(client, SENDER, [RECIPIENT], message())
    assert code == 250
    mid = mid_of(reply)

    wait_for(delivering.log, rf"Delayed: MID {mid} to RID 0 - 4\.7\.5 - .+")
    spool = delivering.gateway.shared.spool
    wait_until(lambda: spool.state(mid).last_error)  # saved just after the line is logged
    assert spool.mids() == [mid]
    assert "STARTTLS is not in the server's EHLO answer" in spool.state(mid).last_error
    assert receiver.messages == [] and receiver.mail_commands == []


# --- a real Postfix ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_postfix_under_required_verify_gets_the_message_over_verified_tls(outbound, postfix, server_pki):
    recipient = f"rcpt@{POSTFIX_DOMAIN}"
    outbound.route(POSTFIX_DOMAIN, f"{LOOPBACK}:{postfix.port}")
    outbound.destination(POSTFIX_DOMAIN, TlsSupport.REQUIRED_VERIFY)
    outbound.trust(server_pki.authorities.root)
    outbound.commit()
    subject = f"to postfix {time.time_ns()}"
    mid = outbound.queue([recipient], data=message(subject=subject, to=recipient))
    dcid = outbound.next_dcid()

    outbound.deliver(mid)

    assert outbound.queued() == []
    lines = outbound.connection(dcid)
    assert re.fullmatch(
        rf"DCID {dcid} TLS success protocol TLSv1\.3 cipher \S+ for {re.escape(POSTFIX_DOMAIN)}", lines[1]
    ), lines
    assert lines[2] == f"DCID {dcid} TLS verified: {POSTFIX_DOMAIN} ({POSTFIX_DOMAIN})"
    found = postfix.message_with(f"Subject: {subject}")
    assert found is not None, postfix.log()
    entry, headers = found
    assert (entry["queue_name"], entry["sender"]) == ("hold", SENDER)
    assert [r["address"] for r in entry["recipients"]] == [recipient]
    assert "(using TLSv1.3 with cipher " in headers
    assert f"by mx.{POSTFIX_DOMAIN} (Postfix) with ESMTPS id {entry['queue_id']}" in headers
    assert "Received: from esa.example.com (localhost [127.0.0.1])" in headers


@pytest.mark.slow
def test_postfix_under_required_verify_for_a_name_its_certificate_lacks_gets_nothing(
    outbound, postfix, server_pki
):
    recipient = "rcpt@other.test"  # Postfix takes mail for other.test; its certificate names postfix.test
    outbound.route("other.test", f"{LOOPBACK}:{postfix.port}")
    outbound.destination("other.test", TlsSupport.REQUIRED_VERIFY)
    outbound.trust(server_pki.authorities.root)
    outbound.commit()
    subject = f"not to postfix {time.time_ns()}"
    mid = outbound.queue([recipient], data=message(subject=subject, to=recipient))
    dcid = outbound.next_dcid()

    outbound.deliver(mid)

    assert outbound.queued() == [mid]
    assert (
        f"DCID {dcid} TLS failed: verify error: hostname mismatch: other.test or {LOOPBACK} "
        f"is not in {POSTFIX_DOMAIN}"
    ) in outbound.connection(dcid)
    assert postfix.message_with(f"Subject: {subject}") is None
