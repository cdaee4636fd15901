"""The inbound gateway with real clients on loopback: ``smtplib``, raw sockets, ``openssl s_client`` and
``swaks`` against committed listeners under each TLS setting and sender group; the mail log lines each
case writes; the spool.
"""

from __future__ import annotations

import json
import os
import re
import smtplib
import socket
import ssl
import time
from types import SimpleNamespace

import pytest
from django.conf import settings

from appliance import workflow
from appliance.config.levels import CLUSTER, CLUSTER_MODE
from appliance.config.sections import registry
from certificates import store as certificate_store
from gateway import maillog
from gateway.spool import Envelope, IdCounter, Spool
from listeners import address_lists, hat, store
from tests import dns_server
from tests.console import run
from tests.gateway_fixtures import (  # noqa: F401
    CLIENT_NAME,
    IN,
    LOOPBACK,
    client_context,
    free_port,
    gateway_fixture,
    loop_thread_fixture,
    mail_log_fixture,
    message,
    mid_of,
    pem_der,
    queued,
    s_client,
    send,
    shown_chain,
    spooled,
    swaks,
)
from tests.pki_factory import make_pki, self_signed

MUST_STARTTLS = b"530 5.7.0 Must issue a STARTTLS command first"


def new_session(icid: int, name: str = "unknown", verified: str = "no", address: str = LOOPBACK) -> str:
    return (
        f"New SMTP ICID {icid} interface Management (127.0.0.1) address {address} "
        f"reverse dns host {name} verified {verified}"
    )


def running_certificate(name: str) -> dict:
    return registry.item_named(workflow.running_config(), "certificates", name)


def listener_tls(tls: str, verify: bool = False, address_list: str = ""):
    """A change: IncomingMail's Default Policy Parameters (what every predefined policy uses)."""
    return lambda: hat.set_default_parameters(
        CLUSTER, IN, tls=tls, tls_verify_client=verify, tls_mandatory_address_list=address_list
    )


@pytest.fixture(name="pki", scope="module")
def pki_fixture(tmp_path_factory):
    """A test root CA and intermediate; a server certificate by the intermediate, a client certificate by
    the root, and a self-signed client certificate nobody trusts."""
    folder = tmp_path_factory.mktemp("gateway-pki")
    authorities = make_pki(folder)
    return SimpleNamespace(
        authorities=authorities,
        server=authorities.intermediate.issue("esa.example.com", kind="ec"),
        client=authorities.root.issue(CLIENT_NAME, kind="ec"),
        stranger=self_signed(folder, "stranger.test", kind="ec"),
    )


def stage_chained_certificate(gateway, pki, name: str = "Chained") -> None:
    """Paste the intermediate-signed server certificate with its intermediate; the listener offers it."""

    def change():
        certificate_store.paste(
            CLUSTER,
            name,
            pki.server.cert.read_bytes(),
            pki.server.key_pem,
            intermediates_data=pki.authorities.intermediate.cert.read_bytes(),
        )
        store.set_certificate(CLUSTER_MODE, IN, name)

    gateway.stage(f"certificate {name}", change)


# --- TLS Off ---------------------------------------------------------------------------------------


def test_tls_off_offers_no_starttls_and_spools_envelope_trace_and_data(gateway):
    icid, before = gateway.next_icid(), queued()
    with gateway.smtp() as client:
        code, _ = client.ehlo()
        assert code == 250
        assert set(client.esmtp_features) == {"size", "8bitmime", "smtputf8", "help"}  # no STARTTLS, no AUTH
        assert client.docmd("STARTTLS") == (454, b"TLS not available")
        code, reply = send(client, recipients=["one@example.com", "two@example.com"])
    assert code == 250
    mid = mid_of(reply)
    assert reply == f"2.0.0 Ok: Message {mid} accepted".encode()
    assert queued() - before == {f"{mid}.msg"}
    envelope, data = spooled(mid)
    received = envelope.pop("received")
    assert envelope == {
        "mid": mid,
        "mail_from": "sender@client.test",
        "rcpt_tos": ["one@example.com", "two@example.com"],
        "icid": icid,
        "listener": IN,
        "peer": LOOPBACK,
        "tls": "",
        "extra": {},
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00", received)
    trace, _, rest = data.partition(b"\r\nFrom: ")
    assert re.fullmatch(
        rb"Received: from client\.test \(unknown \[127\.0\.0\.1\]\)\r\n"
        rb"  by esa\.example\.com with ESMTP id " + str(mid).encode() + rb";\r\n"
        rb"  \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d \+0000",
        trace,
    ), trace
    assert b"From: " + rest == message()
    assert gateway.log.closed(icid) == [
        new_session(icid),
        f"ICID {icid} ACCEPT SG ALL match ALL",
        f"Start MID {mid} ICID {icid}",
        f"MID {mid} ICID {icid} From: <sender@client.test>",
        f"MID {mid} ICID {icid} RID 0 To: <one@example.com>",
        f"MID {mid} ICID {icid} RID 1 To: <two@example.com>",
        f"ICID {icid} close",
    ]
    assert f"Message finished MID {mid} done" in gateway.log.lines
    assert not any("TLS" in line for line in gateway.log.session(icid))


def test_tls_off_swaks_sends_in_clear_and_cannot_start_tls(gateway):
    plain = swaks(gateway.port, "--body", "Plain swaks.")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    mid = mid_of(plain.stdout)
    assert b"\r\n\r\nPlain swaks.\r\n" in spooled(mid)[1]
    tls = swaks(gateway.port, "--tls")
    assert tls.returncode != 0
    assert "Host did not advertise STARTTLS" in tls.stdout + tls.stderr


# --- TLS Preferred ---------------------------------------------------------------------------------


def test_preferred_offers_starttls_and_still_takes_mail_in_clear(gateway):
    gateway.stage("preferred", listener_tls("preferred"))
    assert gateway.commit() == []
    icid = gateway.next_icid()
    with gateway.smtp() as client:
        client.ehlo()
        assert client.has_extn("starttls")
        code, reply = send(client)
    assert code == 250
    assert spooled(mid_of(reply))[0]["tls"] == ""
    assert not any("TLS" in line for line in gateway.log.closed(icid))


def test_preferred_over_tls_logs_the_handshake_and_spools_how_it_came(gateway):
    gateway.stage("preferred", listener_tls("preferred"))
    gateway.commit()
    icid = gateway.next_icid()
    with gateway.smtp() as client:
        client.starttls(context=client_context())
        version, cipher = client.sock.version(), client.sock.cipher()[0]
        seen = client.sock.getpeercert(binary_form=True)
        code, reply = send(client)
    assert code == 250
    mid = mid_of(reply)
    assert version == "TLSv1.3"
    assert seen == pem_der(running_certificate("Demo")["certificate_pem"])
    envelope, data = spooled(mid)
    assert envelope["tls"] == f"TLSv1.3 {cipher}"
    assert f" with ESMTPS (version=TLSv1.3 cipher={cipher}) id {mid};".encode() in data
    assert gateway.log.closed(icid) == [
        new_session(icid),
        f"ICID {icid} ACCEPT SG ALL match ALL",
        f"ICID {icid} TLS success protocol TLSv1.3 cipher {cipher}",
        f"Start MID {mid} ICID {icid}",
        f"MID {mid} ICID {icid} From: <sender@client.test>",
        f"MID {mid} ICID {icid} RID 0 To: <rcpt@example.com>",
        f"ICID {icid} close",
    ]


def test_swaks_sends_over_starttls(gateway):
    gateway.stage("preferred", listener_tls("preferred"))
    gateway.commit()
    icid = gateway.next_icid()
    result = swaks(gateway.port, "--tls", "--body", "Over TLS.")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "TLS started" in result.stdout
    mid = mid_of(result.stdout)
    assert spooled(mid)[0]["tls"].startswith("TLSv1.3 ")
    gateway.log.wait(f"ICID {icid} close")
    assert any(
        line.startswith(f"ICID {icid} TLS success protocol TLSv1.3 cipher ") for line in gateway.log.lines
    )


def test_the_inbound_ssl_configuration_applies_to_starttls(gateway):
    gateway.stage("preferred", listener_tls("preferred"))
    run("sslconfig", "set", "inbound", "--max", "TLSv1.2")
    gateway.commit()
    icid = gateway.next_icid()
    with gateway.smtp() as client:
        client.starttls(context=client_context())
        assert client.sock.version() == "TLSv1.2"
        cipher = client.sock.cipher()[0]
        client.noop()
    assert f"ICID {icid} TLS success protocol TLSv1.2 cipher {cipher}" in gateway.log.closed(icid)


def test_the_client_sees_the_committed_certificate_and_after_a_commit_the_new_one(gateway, pki):
    gateway.stage("preferred", listener_tls("preferred"))
    gateway.commit()
    before = s_client(gateway.port)
    assert before.returncode == 0, before.stderr
    assert shown_chain(before.stdout) == [pem_der(running_certificate("Demo")["certificate_pem"])]

    stage_chained_certificate(gateway, pki)
    assert gateway.commit("the listener offers Chained") == []
    committed = running_certificate("Chained")
    after = s_client(gateway.port)
    assert after.returncode == 0, after.stderr
    assert shown_chain(after.stdout) == [
        pem_der(committed["certificate_pem"]),
        *(pem_der(pem) for pem in committed["intermediate_certificate"]),
    ]
    assert len(committed["intermediate_certificate"]) == 1
    assert pem_der(committed["certificate_pem"]) == pki.server.cert_der


def test_a_session_opened_before_a_commit_finishes_on_its_old_settings(gateway, pki):
    gateway.stage("preferred", listener_tls("preferred"))
    gateway.commit()
    demo = pem_der(running_certificate("Demo")["certificate_pem"])
    old = gateway.smtp()
    old.ehlo()
    old_icid = gateway.next_icid() - 1

    stage_chained_certificate(gateway, pki)
    gateway.stage("required", listener_tls("required"))
    assert gateway.commit("Chained, TLS Required") == []

    with gateway.smtp() as new:
        new.ehlo()
        assert new.mail("sender@client.test") == (530, MUST_STARTTLS[4:])
        new.starttls(context=client_context())
        assert new.sock.getpeercert(binary_form=True) == pki.server.cert_der

    # The old session: still Preferred (mail in clear), still the Demo certificate.
    code, reply = send(old)
    assert code == 250, reply
    old.starttls(context=client_context())
    assert old.sock.getpeercert(binary_form=True) == demo
    code, reply = send(old)
    assert code == 250, reply
    old.quit()
    assert not any("was required" in line for line in gateway.log.closed(old_icid))


# --- TLS Required ----------------------------------------------------------------------------------


def test_required_refuses_every_command_but_noop_ehlo_starttls_quit_until_tls(gateway):
    gateway.stage("required", listener_tls("required"))
    gateway.commit()
    icid = gateway.next_icid()
    client = gateway.raw()
    assert client.reply().startswith(b"220 esa.example.com ESMTP")
    assert b"250-STARTTLS" in client.command("EHLO client.test")
    assert client.command("NOOP") == b"250 OK"
    for command in ("MAIL FROM:<sender@client.test>", "RCPT TO:<rcpt@example.com>", "DATA",
                    "HELO client.test", "RSET", "VRFY postmaster", "HELP", "EXPN staff"):  # fmt: skip
        assert client.command(command) == MUST_STARTTLS, command
    assert client.command("STARTTLS") == b"220 Ready to start TLS"
    client.starttls()
    assert b"250-STARTTLS" not in client.command("EHLO client.test")
    assert client.command("MAIL FROM:<sender@client.test>") == b"250 2.1.0 Sender ok"
    assert client.command("RCPT TO:<rcpt@example.com>") == b"250 2.1.5 Recipient ok"
    assert client.command("DATA").startswith(b"354 ")
    mid = mid_of(client.command(message() + b"."))
    assert client.command("QUIT").startswith(b"221 ")
    client.close()
    lines = gateway.log.closed(icid)
    assert lines[:3] == [
        new_session(icid),
        f"ICID {icid} ACCEPT SG ALL match ALL",
        f"ICID {icid} TLS was required but remote host did not initiate it",  # once, however often refused
    ]
    assert lines[3].startswith(f"ICID {icid} TLS success protocol TLSv1.3 cipher ")
    assert lines[4:] == [
        f"Start MID {mid} ICID {icid}",
        f"MID {mid} ICID {icid} From: <sender@client.test>",
        f"MID {mid} ICID {icid} RID 0 To: <rcpt@example.com>",
        f"ICID {icid} close",
    ]


def test_required_quit_in_clear_is_answered_and_not_lost(gateway):
    gateway.stage("required", listener_tls("required"))
    gateway.commit()
    icid = gateway.next_icid()
    with gateway.smtp() as client:
        client.ehlo()
        assert client.mail("sender@client.test")[0] == 530
    assert gateway.log.closed(icid)[-1] == f"ICID {icid} close"
    assert f"ICID {icid} lost" not in gateway.log.lines


def test_required_openssl_s_client_sends_a_whole_message_over_tls(gateway):
    gateway.stage("required", listener_tls("required"))
    gateway.commit()
    icid = gateway.next_icid()
    commands = (
        b"EHLO client.test\nMAIL FROM:<sender@client.test>\nRCPT TO:<rcpt@example.com>\nDATA\n"
        b"Subject: s_client\n\nBy openssl.\n.\nQUIT\n"
    )
    result = s_client(gateway.port, "-ign_eof", "-nocommands", commands=commands)
    assert result.returncode == 0, result.stderr
    mid = mid_of(result.stdout)
    envelope, data = spooled(mid)
    assert envelope["tls"].startswith("TLSv1.3 ")
    assert data.endswith(b"Subject: s_client\r\n\r\nBy openssl.\r\n")
    assert not any("was required" in line for line in gateway.log.closed(icid))


def test_required_swaks_in_clear_is_refused(gateway):
    gateway.stage("required", listener_tls("required"))
    gateway.commit()
    before = queued()
    result = swaks(gateway.port)
    assert result.returncode != 0
    assert "<** 530 5.7.0 Must issue a STARTTLS command first" in result.stdout
    assert queued() == before


# --- the HAT -----------------------------------------------------------------------------------------


def test_a_reject_policy_answers_554_and_closes(gateway):
    gateway.stage("block", lambda: hat.add_senders(CLUSTER, IN, "BLOCKED_LIST", ["127.0.0.1"]))
    gateway.commit()
    icid = gateway.next_icid()
    client = gateway.raw()
    assert client.reply() == b"554 5.7.1 esa.example.com Access denied"
    assert client.rest() == b""
    assert gateway.log.closed(icid) == [
        new_session(icid),
        f"ICID {icid} REJECT SG BLOCKED_LIST match 127.0.0.1",
        f"ICID {icid} close",
    ]


def test_smtplib_sees_the_rejection_as_a_connect_error(gateway):
    gateway.stage("block", lambda: hat.add_senders(CLUSTER, IN, "BLOCKED_LIST", ["127.0.0.0/8"]))
    gateway.commit()
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        gateway.smtp()
    assert refused.value.smtp_code == 554


def test_tcp_refuse_closes_without_a_banner(gateway):
    def change():
        hat.add_senders(CLUSTER, IN, "BLOCKED_LIST", ["127.0.0.1"])
        hat.save_policy(CLUSTER, IN, "BLOCKED", connection_behavior="tcprefuse")

    gateway.stage("refuse", change)
    gateway.commit()
    icid = gateway.next_icid()
    client = gateway.raw()
    assert client.reply() == b""
    assert gateway.log.closed(icid) == [
        new_session(icid),
        f"ICID {icid} TCPREFUSE SG BLOCKED_LIST match 127.0.0.1",
        f"ICID {icid} close",
    ]


def test_a_sender_group_gives_tls_required_while_the_default_is_off(gateway):
    def change():
        hat.add_senders(CLUSTER, IN, "ALLOWED_LIST", ["127.0.0.1"])
        hat.save_policy(CLUSTER, IN, "TRUSTED", tls="required")

    gateway.stage("trusted needs TLS", change)
    gateway.commit()
    icid = gateway.next_icid()
    with gateway.smtp() as client:
        client.ehlo()
        assert client.has_extn("starttls")
        assert client.mail("sender@client.test") == (530, MUST_STARTTLS[4:])
        client.starttls(context=client_context())
        code, _ = send(client)
        assert code == 250
    lines = gateway.log.closed(icid)
    assert lines[1:3] == [
        f"ICID {icid} ACCEPT SG ALLOWED_LIST match 127.0.0.1",
        f"ICID {icid} TLS was required but remote host did not initiate it",
    ]

    # Hosts of other groups keep the Default Policy Parameters: TLS Off.
    gateway.stage("no longer trusted", lambda: hat.remove_senders(CLUSTER, IN, "ALLOWED_LIST", ["127.0.0.1"]))
    gateway.commit()
    icid = gateway.next_icid()
    with gateway.smtp() as client:
        client.ehlo()
        assert not client.has_extn("starttls")
        assert send(client)[0] == 250
    assert f"ICID {icid} ACCEPT SG ALL match ALL" in gateway.log.closed(icid)


def test_continue_passes_the_host_on_to_the_next_group(gateway):
    def change():
        hat.save_policy(CLUSTER, IN, "MONITOR", connection_behavior="continue", create=True)
        hat.save_group(CLUSTER, IN, "MONITORED", policy_name="MONITOR", order=1, create=True)
        hat.add_senders(CLUSTER, IN, "MONITORED", ["127.0.0.0/8"])
        hat.add_senders(CLUSTER, IN, "UNKNOWNLIST", ["127.0.0.1"])

    gateway.stage("monitor", change)
    gateway.commit()
    icid = gateway.next_icid()
    with gateway.smtp() as client:
        assert send(client)[0] == 250
    assert gateway.log.closed(icid)[1] == f"ICID {icid} ACCEPT SG UNKNOWNLIST match 127.0.0.1"


def test_hosts_of_other_addresses_get_their_own_group(gateway):
    gateway.stage("block one host", lambda: hat.add_senders(CLUSTER, IN, "BLOCKED_LIST", ["127.0.0.2"]))
    gateway.commit()
    icid = gateway.next_icid()
    with pytest.raises(smtplib.SMTPConnectError):
        gateway.smtp(source="127.0.0.2")
    with gateway.smtp(source="127.0.0.3") as client:
        assert send(client)[0] == 250
    assert gateway.log.closed(icid) == [
        new_session(icid, address="127.0.0.2"),
        f"ICID {icid} REJECT SG BLOCKED_LIST match 127.0.0.2",
        f"ICID {icid} close",
    ]
    assert gateway.log.closed(icid + 1)[:2] == [
        new_session(icid + 1, address="127.0.0.3"),
        f"ICID {icid + 1} ACCEPT SG ALL match ALL",
    ]


def test_the_recipient_access_table_refuses_other_domains_unless_the_policy_relays(gateway):
    port = free_port()

    def add():
        store.create(CLUSTER_MODE, "Outgoing", "private", "Management", port, "")
        hat.add_senders(CLUSTER, "Outgoing", "RELAYLIST", ["127.0.0.1"])

    gateway.stage("a private listener", add)
    gateway.commit()
    icid = gateway.next_icid()
    with gateway.smtp() as client:
        client.ehlo()
        client.mail("sender@client.test")
        assert client.rcpt("someone@elsewhere.example") == (
            550,
            b"5.7.1 Recipient address rejected: this gateway takes no mail for it",
        )
        assert client.rcpt("rcpt@example.com")[0] == 250
    assert f"ICID {icid} RID 0 reject RAT 'ALL' rcpt <someone@elsewhere.example>" in gateway.log.closed(icid)

    icid = gateway.next_icid()
    with gateway.smtp(port) as client:  # RELAYLIST: relayed, whatever the domain
        code, reply = send(client, recipients=["someone@elsewhere.example"])
    assert code == 250, reply
    assert gateway.log.closed(icid)[1] == f"ICID {icid} RELAY SG RELAYLIST match 127.0.0.1"
    with pytest.raises(smtplib.SMTPConnectError):  # ALL: BLOCKED
        gateway.smtp(port, source="127.0.0.2")


# --- Verify Client Certificate --------------------------------------------------------------------------


@pytest.fixture(name="verifying")
def verifying_fixture(gateway, pki):
    """The test root in the enabled Custom List; ``verifying(tls)`` commits TLS ``tls`` with Verify."""

    def trust():
        certificate_store.add_custom_authorities(pki.authorities.root.cert.read_bytes())
        certificate_store.set_authority_lists(True, True)

    gateway.stage("trust the test root", trust)

    def commit(tls: str):
        gateway.stage(f"{tls} and verify", listener_tls(tls, verify=True))
        assert gateway.commit(f"TLS {tls}, Verify Client Certificate") == []

    return commit


def tls_session(gateway, credential=None) -> tuple[int, int]:
    """STARTTLS (with ``credential`` as client certificate) and a message; (ICID, MID)."""
    icid = gateway.next_icid()
    with gateway.smtp() as client:
        client.starttls(context=client_context(credential))
        code, reply = send(client)
    assert code == 250, reply
    return icid, mid_of(reply)


def refused_handshake(gateway, credential=None) -> int:
    """STARTTLS whose handshake the gateway refuses: the session ends before any command over TLS."""
    icid, before = gateway.next_icid(), queued()
    client = gateway.raw()
    client.reply()
    client.command("EHLO client.test")
    assert client.command("STARTTLS") == b"220 Ready to start TLS"
    with pytest.raises((ssl.SSLError, ConnectionError)):
        client.starttls(client_context(credential))
        # TLS 1.3: the client's side of the handshake ends first; the alert comes with the next read.
        client.command("EHLO client.test")
        client.command("MAIL FROM:<sender@client.test>")
    client.close()
    assert queued() == before
    return icid


def assert_tls_failed(gateway, icid: int, reason: str) -> None:
    assert gateway.log.closed(icid) == [
        new_session(icid),
        f"ICID {icid} ACCEPT SG ALL match ALL",
        f"ICID {icid} TLS failed: {reason}",
        f"ICID {icid} lost",
        f"ICID {icid} close",
    ]


def test_preferred_verify_takes_a_client_without_a_certificate(gateway, verifying):
    verifying("preferred")
    icid, _ = tls_session(gateway)
    assert any(line.startswith(f"ICID {icid} TLS success") for line in gateway.log.closed(icid))


def test_preferred_verify_takes_a_certificate_from_a_trusted_ca(gateway, verifying, pki):
    verifying("preferred")
    icid, mid = tls_session(gateway, pki.client)
    assert spooled(mid)[0]["tls"].startswith("TLSv1.3 ")


def test_preferred_verify_refuses_an_untrusted_certificate(gateway, verifying, pki):
    verifying("preferred")
    icid = refused_handshake(gateway, pki.stranger)
    assert_tls_failed(gateway, icid, "CERTIFICATE_VERIFY_FAILED: self-signed certificate")


def test_required_verify_refuses_a_client_without_a_certificate(gateway, verifying):
    verifying("required")
    icid = refused_handshake(gateway)
    assert_tls_failed(gateway, icid, "PEER_DID_NOT_RETURN_A_CERTIFICATE")


def test_required_verify_takes_a_valid_certificate_with_s_client_and_swaks(gateway, verifying, pki):
    verifying("required")
    icid = gateway.next_icid()
    commands = (
        b"EHLO client.test\nMAIL FROM:<sender@client.test>\nRCPT TO:<rcpt@example.com>\nDATA\nHi.\n.\nQUIT\n"
    )
    result = s_client(gateway.port, "-cert", str(pki.client.cert), "-key", str(pki.client.key),
                      "-ign_eof", "-nocommands", commands=commands)  # fmt: skip
    assert result.returncode == 0, result.stderr
    mid_of(result.stdout)
    assert any(line.startswith(f"ICID {icid} TLS success") for line in gateway.log.closed(icid))
    by_swaks = swaks(
        gateway.port, "--tls", "--tls-cert", str(pki.client.cert), "--tls-key", str(pki.client.key)
    )
    assert by_swaks.returncode == 0, by_swaks.stdout + by_swaks.stderr
    mid_of(by_swaks.stdout)
    without = swaks(gateway.port, "--tls")
    assert without.returncode != 0
    assert "Ok: Message" not in without.stdout


def test_verify_uses_the_certificate_authorities_lists(gateway, verifying, pki):
    """The same client certificate, once its CA leaves the enabled lists, is refused."""
    verifying("required")
    tls_session(gateway, pki.client)
    gateway.stage("custom list off", lambda: certificate_store.set_authority_lists(True, False))
    gateway.commit()
    icid = refused_handshake(gateway, pki.client)
    assert_tls_failed(gateway, icid, "CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate")


# --- TLS is Mandatory for Address List -----------------------------------------------------------


def test_tls_is_mandatory_for_listed_senders_only(gateway):
    def change():
        address_lists.create("Partners", ["partner.example", "boss@client.test"])
        listener_tls("preferred", address_list="Partners")()

    gateway.stage("partners need TLS", change)
    gateway.commit()
    icid = gateway.next_icid()
    with gateway.smtp() as client:
        client.ehlo()
        assert client.mail("someone@Partner.Example") == (530, MUST_STARTTLS[4:])
        assert client.rcpt("rcpt@example.com") == (503, b"Error: need MAIL command")  # no transaction began
        assert client.mail("boss@client.test") == (530, MUST_STARTTLS[4:])
        code, reply = send(client, sender="someone@elsewhere.example")
        assert code == 250, reply
    assert (
        f"ICID {icid} TLS was required for sender <someone@Partner.Example> but remote host did not initiate it"
        in (gateway.log.closed(icid))
    )
    with gateway.smtp() as client:
        client.starttls(context=client_context())
        code, reply = send(client, sender="someone@partner.example")
        assert code == 250, reply
    assert spooled(mid_of(reply))[0]["mail_from"] == "someone@partner.example"


# --- STARTTLS that goes wrong, injected commands, smuggling -------------------------------------------


def test_a_handshake_failing_after_220_closes_and_is_never_continued_in_clear(gateway):
    gateway.stage("preferred", listener_tls("preferred"))
    gateway.commit()
    icid = gateway.next_icid()
    client = gateway.raw()
    client.reply()
    client.command("EHLO client.test")
    assert client.command("STARTTLS") == b"220 Ready to start TLS"
    client.send(b"NOT A CLIENT HELLO\r\nMAIL FROM:<sender@client.test>\r\n")
    answer = client.rest()
    assert not re.search(rb"(^|\r\n)\d{3}[ -]", answer), answer  # no SMTP reply in clear, only an alert
    client.close()
    lines = gateway.log.closed(icid)
    assert lines[2].startswith(f"ICID {icid} TLS failed: ")
    assert lines[2] != f"ICID {icid} TLS failed: "
    assert lines[3:] == [f"ICID {icid} lost", f"ICID {icid} close"]
    assert not any("MID" in line for line in lines)


def test_a_client_gone_during_the_handshake_is_lost(gateway):
    gateway.stage("preferred", listener_tls("preferred"))
    gateway.commit()
    icid = gateway.next_icid()
    client = gateway.raw()
    client.reply()
    assert client.command("STARTTLS") == b"220 Ready to start TLS"
    client.close()
    lines = gateway.log.closed(icid)
    assert lines[2].startswith(f"ICID {icid} TLS failed: ")
    assert lines[3:] == [f"ICID {icid} lost", f"ICID {icid} close"]


@pytest.mark.parametrize("tls", ["preferred", "required"])
def test_commands_injected_after_starttls_are_dropped(gateway, tls):
    gateway.stage(tls, listener_tls(tls))
    gateway.commit()
    client = gateway.raw()
    client.reply()
    client.command("EHLO client.test")
    client.send(b"STARTTLS\r\nMAIL FROM:<injected@attacker.example>\r\n")
    assert client.reply() == b"220 Ready to start TLS"
    client.starttls()  # RawClient.starttls: nothing more came in clear
    assert client.command("EHLO client.test").startswith(b"250-esa.example.com")
    assert client.command("RCPT TO:<rcpt@example.com>") == b"503 Error: need MAIL command"
    assert client.command("QUIT").startswith(b"221 ")
    client.close()


def test_a_second_starttls_inside_tls_is_refused_and_the_session_goes_on(gateway):
    gateway.stage("preferred", listener_tls("preferred"))
    gateway.commit()
    icid = gateway.next_icid()
    client = gateway.raw()
    client.reply()
    client.command("EHLO client.test")
    assert client.command("STARTTLS") == b"220 Ready to start TLS"
    client.starttls()
    client.command("EHLO client.test")
    reply = client.command("STARTTLS")
    assert re.fullmatch(rb"5\d\d .*TLS.*", reply), reply  # RFC 3207: a TLS session is already active
    assert client.command("NOOP") == b"250 OK"
    assert client.command("QUIT").startswith(b"221 ")
    client.close()
    assert not any("TLS failed" in line for line in gateway.log.closed(icid))


SMUGGLED = (
    b"Subject: first\r\n\r\nhello\n.\r\n"
    b"MAIL FROM:<admin@esa.example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n"
    b"Subject: smuggled\r\n\r\nevil\r\n.\r\n"
)


@pytest.mark.parametrize(
    "data",
    [b"Subject: bare LF\n\nbody\r\n.\r\n", b"Subject: bare CR\r\n\r\nbo\rdy\r\n.\r\n", SMUGGLED],
    ids=["bare-lf", "bare-cr", "lf-dot-crlf"],
)
def test_smtp_smuggling_is_refused_and_nothing_is_spooled(gateway, data):
    before, mid = queued(), gateway.next_mid()
    client = gateway.raw()
    client.reply()
    client.command("EHLO client.test")
    client.command("MAIL FROM:<sender@client.test>")
    client.command("RCPT TO:<rcpt@example.com>")
    assert client.command("DATA").startswith(b"354 ")
    client.send(data)
    assert client.reply() == (
        b"554 5.6.11 Message refused: it holds a bare CR or LF (only CR LF may end a line)"
    )
    assert client.command("QUIT").startswith(b"221 ")  # no reply to a smuggled second message
    client.close()
    assert queued() == before
    assert gateway.next_mid() == mid
    assert not any(f"Start MID {mid} " in line for line in gateway.log.lines)


def test_a_message_with_crlf_lines_and_a_stuffed_dot_is_taken_as_sent(gateway):
    client = gateway.raw()
    client.reply()
    client.command("EHLO client.test")
    client.command("MAIL FROM:<sender@client.test>")
    client.command("RCPT TO:<rcpt@example.com>")
    client.command("DATA")
    reply = client.command(b"Subject: dots\r\n\r\n..a line that starts with a dot\r\nend\r\n.")
    client.close()
    assert spooled(mid_of(reply))[1].endswith(
        b"Subject: dots\r\n\r\n.a line that starts with a dot\r\nend\r\n"
    )


# --- reverse DNS --------------------------------------------------------------------------------------


def stage_dns_and_name_entry(gateway, port: int) -> None:
    def change():
        registry.get("dns").write(
            [{"dns_ip": [{"address": f"127.0.0.1:{port}", "priority": 0}], "dns_ptr_timeout": 20}]
        )
        hat.add_senders(CLUSTER, IN, "ALLOWED_LIST", ["mail.test.example"])

    gateway.stage("DNS and a host name in the HAT", change)
    assert gateway.commit() == []


@pytest.fixture(name="zone")
def zone_fixture():
    servers = []

    def start(text: str):
        server, resolver, port = dns_server.start(text)
        servers.append(server)
        return resolver, port

    yield start
    for server in servers:
        server.stop()


def test_a_verified_reverse_name_matches_a_host_name_entry(gateway, zone):
    resolver, port = zone(
        "1.0.0.127.in-addr.arpa. 300 IN PTR mail.test.example.\nmail.test.example. 300 IN A 127.0.0.1\n"
    )
    stage_dns_and_name_entry(gateway, port)
    icid = gateway.next_icid()
    with gateway.smtp() as client:
        code, reply = send(client)
    assert code == 250
    assert b"Received: from client.test (mail.test.example [127.0.0.1])" in spooled(mid_of(reply))[1]
    assert gateway.log.closed(icid)[:2] == [
        new_session(icid, "mail.test.example", "yes"),
        f"ICID {icid} ACCEPT SG ALLOWED_LIST match mail.test.example",
    ]
    assert ("1.0.0.127.in-addr.arpa.", "PTR") in resolver.questions
    assert ("mail.test.example.", "A") in resolver.questions


def test_a_reverse_name_whose_address_does_not_lead_back_is_not_verified(gateway, zone):
    _, port = zone(
        "1.0.0.127.in-addr.arpa. 300 IN PTR mail.test.example.\nmail.test.example. 300 IN A 127.0.0.2\n"
    )
    stage_dns_and_name_entry(gateway, port)
    icid = gateway.next_icid()
    with gateway.smtp() as client:
        assert send(client)[0] == 250
    assert gateway.log.closed(icid)[:2] == [
        new_session(icid, "mail.test.example", "no"),
        f"ICID {icid} ACCEPT SG ALL match ALL",
    ]


def test_a_dns_server_that_never_answers_costs_about_two_seconds(gateway):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((LOOPBACK, 0))
        stage_dns_and_name_entry(gateway, silent.getsockname()[1])
        icid = gateway.next_icid()
        started = time.monotonic()
        client = gateway.raw()
        assert client.reply().startswith(b"220 ")
        waited = time.monotonic() - started
        client.command("QUIT")
        client.close()
    assert 1.8 <= waited < 3.5, waited
    assert gateway.log.closed(icid)[:2] == [new_session(icid), f"ICID {icid} ACCEPT SG ALL match ALL"]


def test_no_reverse_lookup_when_the_hat_lists_no_host_names(gateway, zone):
    resolver, port = zone("1.0.0.127.in-addr.arpa. 300 IN PTR mail.test.example.\n")
    gateway.stage(
        "DNS only",
        lambda: registry.get("dns").write(
            [{"dns_ip": [{"address": f"127.0.0.1:{port}", "priority": 0}], "dns_ptr_timeout": 20}]
        ),
    )
    gateway.commit()
    icid = gateway.next_icid()
    with gateway.smtp() as client:
        client.noop()
    assert gateway.log.closed(icid)[0] == new_session(icid)
    assert resolver.questions == []


# --- listeners come and go with commits -----------------------------------------------------------


def test_a_new_listener_accepts_and_a_removed_one_refuses_new_connections(gateway):
    port = free_port()

    def add():
        store.create(CLUSTER_MODE, "Second", "public", "Management", port, "")
        hat.set_default_parameters(CLUSTER, "Second", tls="preferred")

    gateway.stage("Second", add)
    assert gateway.commit("Second") == []
    with gateway.smtp(port) as client:
        client.ehlo()
        assert not client.has_extn("starttls")  # TLS Preferred, but without a certificate no TLS
        code, reply = send(client)
    assert code == 250
    assert spooled(mid_of(reply))[0]["listener"] == "Second"

    during = gateway.smtp(port)
    during.ehlo()
    gateway.stage("no Second", lambda: store.delete(CLUSTER, "Second"))
    assert gateway.commit("no Second") == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LOOPBACK, port), timeout=5)
    code, reply = send(during)  # a session in progress finishes
    assert code == 250, reply
    assert spooled(mid_of(reply))[0]["listener"] == "Second"
    during.quit()
    with gateway.smtp() as client:  # IncomingMail goes on
        assert client.noop()[0] == 250


def test_a_listener_moved_to_another_port_follows_the_commit(gateway):
    old, new = gateway.port, free_port()
    gateway.stage("move", lambda: store.edit(CLUSTER_MODE, IN, port=new))
    assert gateway.commit("move") == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LOOPBACK, old), timeout=5)
    with gateway.smtp(new) as client:
        assert client.noop()[0] == 250


def test_a_port_another_program_holds_is_reported_and_the_rest_still_served(gateway):
    with socket.create_server((LOOPBACK, 0)) as taken:
        port = taken.getsockname()[1]
        gateway.stage("Third", lambda: store.create(CLUSTER_MODE, "Third", "public", "Management", port, ""))
        assert gateway.commit("Third") == [
            f"listener 'Third' cannot listen on 127.0.0.1 port {port} (Address already in use)"
        ]
    with gateway.smtp() as client:
        assert client.noop()[0] == 250
    assert gateway.apply() == []  # the port is free again: the next apply takes it
    with gateway.smtp(port) as client:
        assert client.noop()[0] == 250


# --- the session's end, the mail log file -----------------------------------------------------------


def test_a_client_that_drops_the_connection_is_lost(gateway):
    icid = gateway.next_icid()
    client = gateway.raw()
    client.reply()
    client.command("EHLO client.test")
    client.close()
    assert gateway.log.closed(icid)[-2:] == [f"ICID {icid} lost", f"ICID {icid} close"]


def test_the_mail_log_file_has_the_esa_format(gateway):
    logger = maillog.logger
    before, propagate = list(logger.handlers), logger.propagate
    maillog.open_log()
    try:
        icid = gateway.next_icid()
        with gateway.smtp() as client:
            client.noop()
        gateway.log.wait(f"ICID {icid} close")
        for handler in logger.handlers:
            handler.flush()
        text = maillog.log_path().read_text()
    finally:
        for handler in [h for h in logger.handlers if h not in before]:
            logger.removeHandler(handler)
            handler.close()
        logger.propagate = propagate
    assert maillog.log_path() == settings.DATA_DIR / "logs" / "mail_logs"
    stamp = (
        r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
        r"\d\d \d\d:\d\d:\d\d \d{4}"
    )
    for expected in (new_session(icid), f"ICID {icid} ACCEPT SG ALL match ALL", f"ICID {icid} close"):
        assert re.search(rf"^{stamp} Info: {re.escape(expected)}$", text, re.M), text


# --- the spool ---------------------------------------------------------------------------------------


def envelope(mid: int) -> Envelope:
    return Envelope(
        mid=mid, mail_from="a@b.example", rcpt_tos=["c@d.example"], received="2026-01-01T00:00:00+00:00"
    )


def test_accept_writes_the_whole_file_in_tmp_then_renames_it_into_the_queue(tmp_path, monkeypatch):
    spool = Spool(tmp_path)
    renamed = []
    real_rename = os.rename

    def rename(source, target):
        # At the rename the file in tmp/ is complete; nothing is in the queue yet.
        renamed.append((source, target, open(source, "rb").read(), list(spool.queue.iterdir())))
        real_rename(source, target)

    monkeypatch.setattr(os, "rename", rename)
    spool.accept(envelope(7), b"Subject: x\r\n\r\nbody\r\n")
    [(source, target, content, queue_then)] = renamed
    assert source == spool.tmp / "7.msg" and target == spool.queue / "7.msg" and queue_then == []
    head = {
        "mid": 7,
        "mail_from": "a@b.example",
        "rcpt_tos": ["c@d.example"],
        "received": "2026-01-01T00:00:00+00:00",
        "icid": 0,
        "listener": "",
        "peer": "",
        "tls": "",
        "extra": {},
    }
    first, _, data = content.partition(b"\n")
    assert json.loads(first) == head and first == json.dumps(head, separators=(",", ":")).encode()
    assert data == b"Subject: x\r\n\r\nbody\r\n"
    assert (spool.queue / "7.msg").read_bytes() == content
    assert list(spool.tmp.iterdir()) == []
    assert spool.read(7) == (envelope(7), b"Subject: x\r\n\r\nbody\r\n")
    assert [m.envelope.mid for m in spool.messages()] == [7]
    assert oct((spool.queue / "7.msg").stat().st_mode & 0o777) == "0o600"


def test_accept_that_fails_leaves_nothing_behind(tmp_path):
    spool = Spool(tmp_path)
    with pytest.raises(TypeError):
        spool.accept(envelope(8), "not bytes")
    assert list(spool.tmp.iterdir()) == [] and list(spool.queue.iterdir()) == []


def test_recover_removes_what_a_crash_left_in_tmp_and_keeps_the_queue(tmp_path):
    spool = Spool(tmp_path)
    spool.accept(envelope(1), b"kept\r\n")
    (spool.tmp / "2.msg").write_bytes(b'{"mid": 2, "mail_fr')
    (spool.tmp / "3.msg").write_bytes(b"")
    restarted = Spool(tmp_path)
    assert restarted.recover() == 2
    assert list(restarted.tmp.iterdir()) == []
    assert [m.envelope.mid for m in restarted.messages()] == [1]
    assert restarted.recover() == 0


def test_id_counter_never_repeats_a_number_across_restarts(tmp_path):
    path = tmp_path / "run" / "mid"
    taken = []
    for handed_out in (3, 0, 1, 1200, 5):  # a restart after each: a clean stop or a crash, the same
        counter = IdCounter(path)
        taken += [counter.take() for _ in range(handed_out)]
    assert taken == sorted(set(taken)), "numbers repeat or go back"
    assert taken[0] == 1
    assert int(path.read_text()) > taken[-1]


def test_committing_required_tls_on_a_listener_without_certificate_warns(admin):
    workflow.submit(admin, "no certificate", lambda: store.set_certificate(CLUSTER_MODE, "IncomingMail", ""))
    workflow.submit(
        admin, "required", lambda: hat.set_default_parameters(CLUSTER, "IncomingMail", tls="required")
    )
    version = workflow.commit(admin, "required without certificate")
    assert (
        "listener 'IncomingMail': policy ACCEPTED requires TLS, but the listener has no certificate to offer, "
        "so those senders cannot send mail"
    ) in workflow.commit_warnings(version)
