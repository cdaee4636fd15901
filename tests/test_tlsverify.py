"""TLS Verify (``gateway.tlsprobe`` and the console's ``tlsverify``) against real receiving servers.

Each scenario starts an aiosmtpd server of ``delivery_fixtures`` on loopback: a good chain (leaf and
intermediate, the test root in the Custom List), the intermediate missing (the leaf alone), the
intermediate sent twice, the intermediates in the wrong order (leaf, then the upper intermediate before
the one that signed the leaf), expired, a wrong host name, self-signed, no STARTTLS, STARTTLS answered
454 and a handshake that breaks after ``220``. The probe's findings (TLS up, the verdict's reason, each
certificate line), what it says each TLS Support mode would do, its exit status and its CheckTLS
transcript are checked; then a real delivery under Required - Verify to the same server must agree with
the probe (the other modes' fates for these kinds of server are ``test_delivery_tls``'s matrix, which
``OUTCOMES`` repeats).

Then the console command end to end (exit statuses 0, 3, 4 and its refusals), MX hosts resolved through a
DNS server of the test's own (every MX probed, the worst status wins), and the SMTP route when no HOST is
given.
"""

from __future__ import annotations

import asyncio
import io
import re
import smtplib
import ssl
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.core.management import call_command

from appliance import workflow
from appliance.config.levels import CLUSTER
from destinations.models import TlsSupport
from gateway import tlsprobe
from gateway.delivery.client import peer_chain
from gateway.tlsprobe import CLEAR, ENCRYPTED, NOT_DELIVERED
from listeners import hat
from tests.console import refused
from tests.delivery_fixtures import (  # noqa: F401 (fixtures)
    BROKEN,
    DOMAIN,
    EXPIRED,
    MX_ADDRESS,
    NO_ESMTP,
    PLAIN,
    REFUSAL,
    REFUSES,
    SELF_SIGNED,
    TRUSTED,
    WRONG_NAME,
    destination_change,
    dns_change,
    outbound_fixture,
    receivers_fixture,
    server_context,
    server_pki_fixture,
    smtp_port_fixture,
    zone_fixture,
)
from tests.gateway_fixtures import (  # noqa: F401 (fixtures)
    IN,
    LOOPBACK,
    free_port,
    gateway_fixture,
    loop_thread_fixture,
    mail_log_fixture,
)

EHLO_NAME = "esa.example.com"  # the appliance's hostname in the tests (conftest)
PROBE_SENDER = f"tlsverify@{EHLO_NAME}"
STAMP = r"\[\d{3}\.\d{3}\] "
PAD = " " * 10
DATE = r"\w{3} \d\d \d\d:\d\d:\d\d \d{4} GMT"
EXPIRED_REASON = r"certificate has expired \(not valid after \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)"
NO_ISSUER = "unable to get local issuer certificate: the chain leads to no enabled Certificate Authority"

# The modes in ``tlsprobe.MODES``' order: None, Preferred, Required, Preferred - Verify, Required - Verify.
MODES = [
    TlsSupport.NONE,
    TlsSupport.PREFERRED,
    TlsSupport.REQUIRED,
    TlsSupport.PREFERRED_VERIFY,
    TlsSupport.REQUIRED_VERIFY,
]
C, E, N = CLEAR, ENCRYPTED, NOT_DELIVERED
VERIFIED_TLS = (C, E, E, E, E)
UNVERIFIED_TLS = (C, E, E, E, N)  # test_delivery_tls: wrong name, self-signed, expired
NO_STARTTLS = (C, C, N, C, N)  # test_delivery_tls: plain, 454 (before the 220: on in clear)
AFTER_220 = (C, N, N, N, N)  # test_delivery_tls: broken after 220 (never on in clear)

ROOT, INTERMEDIATE, SUB = "Test Root CA", "Test Intermediate CA", "Test Sub CA"
WRONG_HOST = "elsewhere.test"


@dataclass
class Expected:
    """What the probe must find on one kind of server."""

    kind: str  # the receiving server of delivery_fixtures
    tls_up: bool
    reason: str | None  # the verdict's reason (a pattern), None: no verdict
    chain: list[tuple[str, str, str]]  # (subject CN, issuer CN, "ok" or the reason as a pattern)
    outcomes: tuple[str, ...]
    status: int
    hostname: str = ""  # the "Cert Hostname …" line after the first certificate (a pattern)


VERIFIED_NAME = re.escape(f"Cert Hostname VERIFIED ({DOMAIN} = {DOMAIN})")
GOOD_CHAIN = [(DOMAIN, INTERMEDIATE, "ok"), (INTERMEDIATE, ROOT, "ok"), (ROOT, ROOT, "ok")]

SCENARIOS = {
    "good-chain": Expected(TRUSTED, True, "ok", GOOD_CHAIN, VERIFIED_TLS, 0, VERIFIED_NAME),
    "missing-intermediate": Expected(
        TRUSTED,
        True,
        re.escape(NO_ISSUER),
        [(DOMAIN, INTERMEDIATE, re.escape(NO_ISSUER))],
        UNVERIFIED_TLS,
        3,
        VERIFIED_NAME,
    ),
    "duplicate-intermediate": Expected(TRUSTED, True, "ok", GOOD_CHAIN, VERIFIED_TLS, 0, VERIFIED_NAME),
    "wrong-order": Expected(
        TRUSTED,
        True,
        "ok",
        [(DOMAIN, SUB, "ok"), (SUB, INTERMEDIATE, "ok"), (INTERMEDIATE, ROOT, "ok"), (ROOT, ROOT, "ok")],
        VERIFIED_TLS,
        0,
        VERIFIED_NAME,
    ),
    "expired": Expected(
        EXPIRED,
        True,
        EXPIRED_REASON,
        [(DOMAIN, INTERMEDIATE, EXPIRED_REASON), (INTERMEDIATE, ROOT, "ok")],
        UNVERIFIED_TLS,
        3,
        VERIFIED_NAME,
    ),
    "wrong-host": Expected(
        WRONG_NAME,
        True,
        re.escape(f"hostname mismatch: {DOMAIN} or {LOOPBACK} is not in {WRONG_HOST}"),
        [(WRONG_HOST, INTERMEDIATE, "ok"), (INTERMEDIATE, ROOT, "ok"), (ROOT, ROOT, "ok")],
        UNVERIFIED_TLS,
        3,
        re.escape(f"Cert Hostname DOES NOT VERIFY ({DOMAIN} | {LOOPBACK} != {WRONG_HOST})"),
    ),
    "self-signed": Expected(
        SELF_SIGNED,
        True,
        "self-signed certificate",
        [(DOMAIN, DOMAIN, "self-signed certificate")],
        UNVERIFIED_TLS,
        3,
        VERIFIED_NAME,
    ),
    "no-starttls": Expected(PLAIN, False, None, [], NO_STARTTLS, 4),
    "starttls-454": Expected(REFUSES, False, None, [], NO_STARTTLS, 4),
    "broken-after-220": Expected(BROKEN, False, None, [], AFTER_220, 4),
}


@pytest.fixture(name="sub_ca", scope="module")
def sub_ca_fixture(server_pki):
    """A second intermediate (Test Sub CA, signed by Test Intermediate CA) and a DOMAIN leaf it signed."""
    sub = server_pki.authorities.intermediate.issue(SUB, ca=True)
    return sub, sub.issue(DOMAIN)


def scenario_context(name: str, server_pki, sub_ca) -> ssl.SSLContext | None:
    """The server's TLS context when the scenario's chain is not the kind's own (None: the kind's)."""
    leaf, intermediate = server_pki.trusted, server_pki.authorities.intermediate
    chains = {
        "missing-intermediate": (leaf, [leaf.cert]),
        "duplicate-intermediate": (leaf, [leaf.cert, intermediate.cert, intermediate.cert]),
    }
    if name == "wrong-order":
        sub, sub_leaf = sub_ca
        chains[name] = (sub_leaf, [sub_leaf.cert, intermediate.cert, sub.cert])  # upper CA first
    if name not in chains:
        return None
    credential, files = chains[name]
    return server_context(files, credential.key)


def sent_chain(receiver) -> list[str]:
    """The CNs of the certificates the server sends, in its order (what the scenario set up)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with smtplib.SMTP(receiver.address, receiver.port, timeout=10) as client:
        client.starttls(context=context)
        chain = peer_chain(client.sock)
    return [certificate.subject.rfc4514_string().removeprefix("CN=") for certificate in chain]


def probe(config, domain: str = DOMAIN, host: str = "", port: int | None = None) -> list[tlsprobe.HostProbe]:
    return asyncio.run(tlsprobe.probe_domain(config, domain, host, port))


def tlsverify(*args: str) -> tuple[int, str, str]:
    """The console command: its exit status (it always exits), stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit) as exit_status:
        call_command("tlsverify", *args, stdout=out, stderr=err)
    assert "Traceback" not in out.getvalue() + err.getvalue()
    log = settings.DATA_DIR / "logs" / "console_errors.log"
    assert "internal error" not in err.getvalue(), log.read_text()[-1500:] if log.exists() else err.getvalue()
    return exit_status.value.code, out.getvalue(), err.getvalue()


def assert_in_order(lines: list[str], patterns: list[str]) -> None:
    """Each pattern matches (whole) a line after the line the pattern before it matched."""
    shown = "\n".join(lines)
    position = 0
    for pattern in patterns:
        for index in range(position, len(lines)):
            if re.fullmatch(pattern, lines[index]):
                position = index + 1
                break
        else:
            raise AssertionError(f"no line {pattern!r} after line {position}:\n{shown}")


def tls_details(lines: list[str]) -> list[str]:
    """The indented lines after ``Connection converted to SSL``."""
    start = next(i for i, line in enumerate(lines) if line.endswith("] Connection converted to SSL"))
    details = []
    for line in lines[start + 1 :]:
        if not line.startswith(PAD):
            break
        details.append(line)
    return details


def expected_details(expected: Expected) -> list[str]:
    patterns = [rf"{PAD}SSLVersion in use: TLSv1\.3", rf"{PAD}Cipher in use: TLS_[A-Z0-9_]+"]
    total = len(expected.chain)
    for position, (subject, issuer, validated) in enumerate(expected.chain, start=1):
        status = "Cert VALIDATED: ok" if validated == "ok" else f"Cert NOT VALIDATED: {validated}"
        patterns.append(f"{PAD}Certificate {position} of {total} in chain: {status}")
        if position == 1:
            patterns.append(PAD + expected.hostname)
        patterns += [
            f"{PAD}Not Valid Before: {DATE}",
            f"{PAD}Not Valid After: {DATE}",
            f"{PAD}subject= {re.escape('/CN=' + subject)}",
            f"{PAD}issuer= {re.escape('/CN=' + issuer)}",
        ]
    return patterns


def assert_transcript(found: tlsprobe.HostProbe, expected: Expected, lines: list[str]) -> None:
    shown = "\n".join(lines)
    stamps = [float(line[1:8]) for line in lines if not line.startswith(PAD)]
    assert all(re.match(STAMP, line) for line in lines if not line.startswith(PAD)), shown
    assert stamps == sorted(stamps), shown
    opening = [
        STAMP + re.escape(f"Trying TLS on {found.host}[{found.address}:{found.port}]"),
        STAMP + r"<-- 220 mx\.dest\.test .+",
        STAMP + re.escape(f"-->EHLO {EHLO_NAME}"),
        STAMP + r"<-- 250-mx\.dest\.test",
    ]
    if expected.kind == PLAIN:
        assert_in_order(
            lines, [*opening, STAMP + r"<-- 250 HELP", STAMP + "STARTTLS is not offered by this server"]
        )
        assert not any("-->STARTTLS" in line or "MAIL FROM" in line for line in lines), shown
        return
    opening += [STAMP + r"<-- 250-STARTTLS", STAMP + r"<-- 250 HELP", STAMP + "-->STARTTLS"]
    if expected.kind == REFUSES:
        assert_in_order(lines, [*opening, STAMP + re.escape(f"<-- {REFUSAL}")])
        assert lines[-1].endswith(f"<-- {REFUSAL}") and "MAIL FROM" not in shown, shown
        return
    if expected.kind == BROKEN:
        assert_in_order(lines, [*opening, STAMP + r"TLS failed after 220: .+"])
        assert "Connection converted to SSL" not in shown and "MAIL FROM" not in shown, shown
        return
    assert_in_order(
        lines,
        [
            *opening,
            STAMP + r"<-- 220 Ready to start TLS",
            STAMP + "Connection converted to SSL",
            STAMP + re.escape(f"-->EHLO {EHLO_NAME}"),
            STAMP + r"<-- 250-mx\.dest\.test",
            STAMP + r"<-- 250 HELP",
            STAMP + "TLS successfully started on this server",
            STAMP + re.escape(f"-->MAIL FROM:<{PROBE_SENDER}>"),
            STAMP + r"<-- 250 2\.1\.0 OK",
            STAMP + "-->QUIT",
            STAMP + r"<-- 221 Bye",
        ],
    )
    after_tls = lines[lines.index(next(x for x in lines if x.endswith("Connection converted to SSL"))) :]
    assert not any(line.endswith("<-- 250-STARTTLS") for line in after_tls), "STARTTLS offered twice"
    details = tls_details(lines)
    patterns = expected_details(expected) + [
        PAD + re.escape(f"Chain {finding.word}: {finding.text} What to do: {finding.advice}")
        for finding in found.findings
    ]
    assert len(details) == len(patterns), shown
    for line, pattern in zip(details, patterns, strict=True):
        assert re.fullmatch(pattern, line), f"{line!r} is not {pattern!r}\n{shown}"


# The diagnostics of the chain each server sends (``certificates.diagnostics.chain_findings``).
CHAIN_FINDINGS = {
    "missing-intermediate": ["chain_incomplete"],
    "duplicate-intermediate": ["duplicate_intermediate"],
    "wrong-order": ["wrong_order"],
    "expired": ["expired"],
    "self-signed": ["self_signed"],
}


# --- the scenarios ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*SCENARIOS])
def test_probe(outbound, receivers, server_pki, sub_ca, name):
    expected = SCENARIOS[name]
    receiver = receivers(expected.kind, context=scenario_context(name, server_pki, sub_ca))
    outbound.route(DOMAIN, receiver.hop)
    outbound.destination(DOMAIN, TlsSupport.REQUIRED_VERIFY)
    outbound.trust(server_pki.authorities.root)
    outbound.commit()
    if name == "wrong-order":
        assert sent_chain(receiver) == [DOMAIN, INTERMEDIATE, SUB]
    if name == "duplicate-intermediate":
        assert sent_chain(receiver) == [DOMAIN, INTERMEDIATE, INTERMEDIATE]
    if name == "missing-intermediate":
        assert sent_chain(receiver) == [DOMAIN]

    [found] = probe(outbound.config, DOMAIN, LOOPBACK, receiver.port)

    assert (found.host, found.address, found.port) == (LOOPBACK, LOOPBACK, receiver.port)
    assert found.connected and found.error == ""
    assert found.tls_up is expected.tls_up
    assert found.starttls_offered is (expected.kind != PLAIN)
    assert found.starttls_refused == (REFUSAL if expected.kind == REFUSES else "")
    assert bool(found.tls_failed) is (expected.kind == BROKEN)
    if expected.tls_up:
        assert found.protocol == "TLSv1.3" and found.cipher.startswith("TLS_")
        assert re.fullmatch(expected.reason, found.verdict.reason), found.verdict.reason
        assert found.verified is (expected.status == 0)
    else:
        assert (found.protocol, found.cipher, found.verdict, found.verified) == ("", "", None, False)
    assert [
        (line.position, line.certificate.subject.rfc4514_string(), line.certificate.issuer.rfc4514_string())
        for line in found.chain
    ] == [(i, f"CN={subject}", f"CN={issuer}") for i, (subject, issuer, _) in enumerate(expected.chain, 1)]
    for line, (_, _, validated) in zip(found.chain, expected.chain, strict=True):
        assert re.fullmatch(validated, line.validated), line.validated
    assert tuple(found.outcome(mode) for mode in MODES) == expected.outcomes
    assert [mode for mode in tlsprobe.MODES] == MODES
    assert found.status == expected.status
    assert_transcript(found, expected, tlsprobe.transcript(found, DOMAIN))
    assert [finding.kind for finding in found.findings] == CHAIN_FINDINGS.get(name, [])
    # The probe says MAIL FROM only over TLS, never in clear.
    assert receiver.mail_commands == ([(PROBE_SENDER, True)] if expected.tls_up else [])

    # Delivery under Required - Verify does with the same server what the probe said.
    mid = outbound.queue()
    outbound.deliver(mid)
    if expected.outcomes[-1] == ENCRYPTED:
        [received] = receiver.messages
        assert received.tls.startswith("TLSv1.3 ")
        assert outbound.queued() == []
    else:
        assert receiver.messages == []
        assert outbound.queued() == [mid]


def test_a_server_that_does_not_answer_is_no_connection(outbound):
    port = free_port()  # nothing listens there

    [found] = probe(outbound.config, DOMAIN, LOOPBACK, port)

    assert not found.connected and found.error.startswith("cannot connect: ")
    assert [found.outcome(mode) for mode in MODES] == [NOT_DELIVERED] * 5
    assert found.status == tlsprobe.NO_TLS
    [line] = tlsprobe.transcript(found, DOMAIN)[1:]
    assert re.fullmatch(STAMP + "cannot connect: .+", line)


# --- the console ------------------------------------------------------------------------------------


def verdict_lines(host: str, outcomes: tuple[str, ...]) -> list[str]:
    labels = ["None", "Preferred", "Required", "Preferred - Verify", "Required - Verify"]
    return [f"  {label}: {host} {outcome}" for label, outcome in zip(labels, outcomes, strict=True)]


@pytest.mark.parametrize(
    ("kind", "status", "outcomes"),
    [(TRUSTED, 0, VERIFIED_TLS), (WRONG_NAME, 3, UNVERIFIED_TLS), (PLAIN, 4, NO_STARTTLS)],
    ids=["verified", "not-verified", "no-tls"],
)
def test_console_exit_status(outbound, receivers, server_pki, kind, status, outcomes):
    receiver = receivers(kind)
    outbound.trust(server_pki.authorities.root)
    outbound.commit()

    code, out, err = tlsverify(DOMAIN, receiver.hop)

    assert (code, err) == (status, "")
    lines = out.splitlines()
    assert re.fullmatch(STAMP + re.escape(f"Trying TLS on {LOOPBACK}[{LOOPBACK}:{receiver.port}]"), lines[0])
    assert lines[-7:-1] == [f"TLS Support verdicts for {DOMAIN}:", *verdict_lines(LOOPBACK, outcomes)]
    # Then the comparison with the last run (test_probe_history), here the first.
    assert (
        lines[-1]
        == f"Nothing to compare with: this is the first run of this test ({DOMAIN} at {receiver.hop})."
    )
    if kind == TRUSTED:
        assert f"{PAD}Certificate 1 of 3 in chain: Cert VALIDATED: ok" in lines
        assert f"{PAD}Cert Hostname VERIFIED ({DOMAIN} = {DOMAIN})" in lines
        assert any(line.endswith("] TLS successfully started on this server") for line in lines)
    if kind == WRONG_NAME:
        assert f"{PAD}Cert Hostname DOES NOT VERIFY ({DOMAIN} | {LOOPBACK} != {WRONG_HOST})" in lines


def test_console_no_connection_exits_4(outbound):
    port = free_port()

    code, out, err = tlsverify(DOMAIN, f"{LOOPBACK}:{port}")

    assert (code, err) == (4, "")
    assert f"  Required - Verify: {LOOPBACK} {NOT_DELIVERED}" in out.splitlines()


@pytest.mark.parametrize(
    ("domain", "reason"),
    [
        ("not a domain", "is not a destination"),
        ("dest..test", "is not a destination"),
        ("[not-an-address]", "is not an IP address"),
    ],
)
def test_console_refuses_a_bad_domain(appliance, domain, reason):
    assert reason in refused("tlsverify", domain)


def test_console_refuses_a_bad_host(appliance):
    assert refused("tlsverify", DOMAIN, "mx.dest.test:notaport").startswith("Error: ")


def test_console_refuses_a_guest(guest):
    assert refused("tlsverify", DOMAIN, "127.0.0.1:25", "--user", guest.username) == (
        "Error: The Guest role may not run connection tests (Test Server, Test Connection)."
    )


# --- MX hosts and SMTP routes ----------------------------------------------------------------------

SECOND_MX = "127.0.0.26"


def test_every_mx_host_is_probed_and_the_worst_status_wins(outbound, receivers, server_pki, zone, smtp_port):
    first = receivers(TRUSTED, address=MX_ADDRESS, port=smtp_port)
    second = receivers(WRONG_NAME, address=SECOND_MX, port=smtp_port)
    resolver, port = zone(
        f"{DOMAIN}. 300 IN MX 20 mx2.{DOMAIN}.\n"
        f"{DOMAIN}. 300 IN MX 10 mx1.{DOMAIN}.\n"
        f"mx1.{DOMAIN}. 300 IN A {MX_ADDRESS}\n"
        f"mx2.{DOMAIN}. 300 IN A {SECOND_MX}\n"
    )
    outbound.stage("DNS", dns_change(port))
    outbound.trust(server_pki.authorities.root)
    outbound.commit()

    found = probe(outbound.config)

    assert [(p.host, p.address, p.port) for p in found] == [
        (f"mx1.{DOMAIN}", MX_ADDRESS, smtp_port),
        (f"mx2.{DOMAIN}", SECOND_MX, smtp_port),
    ]
    assert [p.status for p in found] == [0, 3]
    assert found[1].verdict.reason == (f"hostname mismatch: {DOMAIN} or mx2.{DOMAIN} is not in {WRONG_HOST}")
    assert (f"{DOMAIN}.", "MX") in resolver.questions
    assert first.mail_commands == second.mail_commands == [(PROBE_SENDER, True)]

    code, out, err = tlsverify(DOMAIN)

    assert (code, err) == (3, "")
    lines = out.splitlines()
    assert_in_order(
        lines,
        [
            STAMP + re.escape(f"Trying TLS on mx1.{DOMAIN}[{MX_ADDRESS}:{smtp_port}]"),
            re.escape(f"{PAD}Cert Hostname VERIFIED ({DOMAIN} = {DOMAIN})"),
            STAMP + "TLS successfully started on this server",
            STAMP + re.escape(f"Trying TLS on mx2.{DOMAIN}[{SECOND_MX}:{smtp_port}]"),
            re.escape(f"{PAD}Cert Hostname DOES NOT VERIFY ({DOMAIN} | mx2.{DOMAIN} != {WRONG_HOST})"),
            STAMP + "TLS successfully started on this server",
            re.escape(f"TLS Support verdicts for {DOMAIN}:"),
            re.escape(f"  Required - Verify: mx1.{DOMAIN} {ENCRYPTED}, mx2.{DOMAIN} {NOT_DELIVERED}"),
        ],
    )


def test_a_domain_that_does_not_exist_is_status_4(outbound, zone):
    _, port = zone(f"{DOMAIN}. 300 IN A {LOOPBACK}\n")
    outbound.stage("DNS", dns_change(port))
    outbound.commit()

    [found] = probe(outbound.config, "nowhere.test")

    assert found.error == "nowhere.test does not exist (NXDOMAIN)"
    assert found.status == 4 and found.outcome(TlsSupport.NONE) == NOT_DELIVERED
    code, out, _ = tlsverify("nowhere.test")
    assert code == 4
    assert out.splitlines()[0] == "nowhere.test: nowhere.test does not exist (NXDOMAIN)"


def test_a_host_name_is_resolved_through_the_appliance_dns(outbound, receivers, server_pki, zone):
    credential = server_pki.authorities.intermediate.issue("mx.route.test")
    receiver = receivers(TRUSTED, context=server_context(server_pki.chain(credential), credential.key))
    resolver, port = zone(f"mx.route.test. 300 IN A {LOOPBACK}\n")
    outbound.stage("DNS", dns_change(port))
    outbound.trust(server_pki.authorities.root)
    outbound.commit()

    [found] = probe(outbound.config, DOMAIN, "mx.route.test", receiver.port)

    assert (found.host, found.address, found.status) == ("mx.route.test", LOOPBACK, 0)
    assert found.verdict.matched == "mx.route.test"  # the host's name, as the ESA's Verify compares it
    assert ("mx.route.test.", "A") in resolver.questions


def test_without_a_host_the_smtp_route_is_probed(outbound, receivers, server_pki):
    receiver = receivers(WRONG_NAME)
    outbound.route(DOMAIN, receiver.hop)
    outbound.trust(server_pki.authorities.root)
    outbound.commit()

    [found] = probe(outbound.config)

    assert (found.host, found.address, found.port) == (LOOPBACK, LOOPBACK, receiver.port)
    assert found.status == 3
    code, out, err = tlsverify(DOMAIN)
    assert (code, err) == (3, "")
    assert re.fullmatch(
        STAMP + re.escape(f"Trying TLS on {LOOPBACK}[{LOOPBACK}:{receiver.port}]"), out.splitlines()[0]
    )
    assert receiver.mail_commands == [(PROBE_SENDER, True), (PROBE_SENDER, True)]


def test_a_server_that_refuses_ehlo_is_no_tls(outbound, receivers):
    receiver = receivers(NO_ESMTP)

    [found] = probe(outbound.config, DOMAIN, LOOPBACK, receiver.port)

    assert found.connected and not found.tls_up and found.error
    assert tuple(found.outcome(mode) for mode in MODES) == NO_STARTTLS  # delivery goes on with HELO
    assert found.status == 4


def test_a_route_to_dev_null_is_reported_not_a_crash(outbound):
    outbound.route(DOMAIN, "/dev/null")
    outbound.commit()

    code, out, err = tlsverify(DOMAIN)

    assert code == 4
    assert DOMAIN in out


def test_a_domain_literal_probes_its_address(outbound, receivers, zone, smtp_port):
    receiver = receivers(PLAIN, address=MX_ADDRESS, port=smtp_port)
    _, port = zone(f"{DOMAIN}. 300 IN A {LOOPBACK}\n")
    outbound.stage("DNS", dns_change(port))
    outbound.commit()

    code, out, err = tlsverify(f"[{MX_ADDRESS}]")

    assert (code, err) == (4, "")
    assert re.fullmatch(
        STAMP + re.escape(f"Trying TLS on {MX_ADDRESS}[{MX_ADDRESS}:{smtp_port}]"), out.splitlines()[0]
    ), out
    assert receiver.mail_commands == []


# --- check my own listener ---------------------------------------------------------------------------


def test_check_my_own_listener_probes_it_as_an_outside_mta(gateway, loop_thread):
    gateway.stage("TLS offered", lambda: hat.set_default_parameters(CLUSTER, IN, tls="preferred"))
    gateway.commit()
    config = workflow.running_config()
    [interface] = config["interfaces"]

    found = loop_thread.run(tlsprobe.probe_listener(config, IN))

    assert (found.address, found.port) == (interface["ip"], gateway.port)
    assert found.tls_up
    # The shipped Demo certificate covers the interface's host name but chains to no trusted CA.
    assert found.verdict.name_valid and found.verdict.matched == interface["interface_hostname"]
    assert found.verdict.chain_reason == "self-signed certificate"
    assert found.status == tlsprobe.NOT_VERIFIED
    assert found.outcome(TlsSupport.REQUIRED_VERIFY) == tlsprobe.NOT_DELIVERED


def test_check_my_own_listener_refuses_an_unknown_listener(admin):
    with pytest.raises(ValueError, match="^There is no listener named 'Nope'$"):
        asyncio.run(tlsprobe.probe_listener(workflow.running_config(), "Nope"))
