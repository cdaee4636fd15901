"""SMTP under abuse, as Postfix's anvil and stress mode: a mail flow policy's limits From a Single IP
(421 to the abuser, 220 to everyone else), shorter timeouts before MAIL FROM while a listener is busy,
and envelope addresses no envelope may hold refused with 501 before anything is logged or queued.
Real clients on loopback: sockets bound to 127.0.0.1 (the abuser) and 127.0.0.2 (a bystander), swaks."""

from __future__ import annotations

import time

import pytest

from appliance import workflow
from appliance.config.levels import CLUSTER, CLUSTER_MODE
from appliance.config.sections import registry
from appliance.config.xmlfile import SecretMode, parse, render
from gateway import processes
from gateway.processes import Admission, ClientCounts
from listeners import hat, store
from tests.console import refused, run
from tests.gateway_fixtures import (  # noqa: F401 (fixtures)
    IN,
    gateway_fixture,
    loop_thread_fixture,
    mail_log_fixture,
    queued,
    swaks,
)

ABUSER, BYSTANDER = "127.0.0.1", "127.0.0.2"
TOO_MANY_OPEN = (
    b"421 4.7.0 Too many concurrent SMTP connections from this IP address; please try again later."
)
TOO_FAST = b"421 4.7.0 Too many SMTP connections from this IP address this minute; please try again later."


def limit_accepted(gateway, **limits) -> None:
    gateway.stage("limits", lambda: hat.save_policy(CLUSTER, IN, "ACCEPTED", limits=limits))
    assert gateway.commit() == []


def banner(gateway, source: str):
    client = gateway.raw(source=source)
    return client, client.reply()


def test_past_max_concurrent_connections_from_a_single_ip_the_abuser_gets_421_and_others_are_served(gateway):
    limit_accepted(gateway, max_concurrency_per_ip=3)
    first_icid = gateway.next_icid()
    held = []
    for _ in range(3):
        client, reply = banner(gateway, ABUSER)
        assert reply.startswith(b"220 "), reply
        held.append(client)
    icid = gateway.next_icid()
    refused_client, reply = banner(gateway, ABUSER)
    assert reply == TOO_MANY_OPEN
    assert refused_client.rest() == b""  # closed
    gateway.log.wait(
        f"ICID {icid} refused: address {ABUSER} reached Max. Concurrent Connections From a Single IP (3) "
        "of policy ACCEPTED"
    )
    bystander, reply = banner(gateway, BYSTANDER)
    assert reply.startswith(b"220 "), reply
    bystander.close()
    sent = swaks(gateway.port, "--local-interface", BYSTANDER, "--body", "Served.")
    assert sent.returncode == 0, sent.stdout
    assert "250 2.0.0 Ok: Message" in sent.stdout
    # One of the abuser's connections ends: the address may open one again.
    held.pop(0).close()
    gateway.log.wait(f"ICID {first_icid} close")
    again, reply = banner(gateway, ABUSER)
    assert reply.startswith(b"220 "), reply
    for client in [*held, again]:
        client.close()


def test_past_max_connections_per_minute_from_a_single_ip_the_abuser_gets_421(gateway):
    limit_accepted(gateway, max_connections_per_minute_per_ip=3)
    for _ in range(3):
        client, reply = banner(gateway, ABUSER)
        assert reply.startswith(b"220 "), reply
        assert client.command("QUIT").startswith(b"221")
        client.close()
    icid = gateway.next_icid()
    client, reply = banner(gateway, ABUSER)
    assert reply == TOO_FAST
    assert client.rest() == b""
    gateway.log.wait(
        f"ICID {icid} refused: address {ABUSER} reached Max. Connections Per Minute From a Single IP (3) "
        "of policy ACCEPTED"
    )
    client, reply = banner(gateway, BYSTANDER)
    assert reply.startswith(b"220 "), reply
    client.close()


def test_the_shipped_policies_all_limit_each_address(admin):
    item = hat.with_predefined(registry.candidate()["listeners"][0])
    limits = {
        policy["policy_name"]: hat.effective_limits(item, policy) for policy in item["mail_flow_policy"]
    }
    shown = {
        name: (value.max_concurrency_per_ip, value.max_connections_per_minute_per_ip)
        for name, value in limits.items()
    }
    assert shown == {
        "ACCEPTED": (20, 120),
        "BLOCKED": (20, 120),
        "THROTTLED": (10, 60),
        "TRUSTED": (100, 600),
    }
    relayed = hat.predefined_policies("private")[0]
    assert (relayed["policy_name"], relayed["max_concurrency_per_ip"]) == ("RELAYED", 100)


def test_while_the_listener_is_busy_a_session_before_mail_from_gets_the_short_timeout(gateway, settings):
    settings.SMTP_STRESS_TIMEOUT_SECONDS = 1
    gateway.stage("small listener", lambda: store.edit(CLUSTER_MODE, IN, max_concurrency=10))
    assert gateway.commit() == []
    held = [banner(gateway, BYSTANDER)[0] for _ in range(7)]  # with the two below: 9 of 10, busy
    idle, reply = banner(gateway, ABUSER)
    sender, _ = banner(gateway, ABUSER)
    assert sender.command("EHLO client.test").startswith(b"250")
    assert sender.command("MAIL FROM:<sender@client.test>").startswith(b"250")
    started = time.monotonic()
    assert idle.command("EHLO client.test").startswith(b"250")
    assert idle.rest() == b""  # closed by the stress timeout
    assert time.monotonic() - started < 5
    assert sender.command("NOOP").startswith(b"250")  # after MAIL FROM: the full time
    sender.close()
    # The load falls: the full time again.
    for client in held:
        client.close()
    time.sleep(0.5)
    calm, reply = banner(gateway, ABUSER)
    assert calm.command("EHLO client.test").startswith(b"250")
    time.sleep(2)
    assert calm.command("NOOP").startswith(b"250")
    calm.close()


@pytest.mark.parametrize(
    "command,reply",
    [
        (b"MAIL FROM:<a\x00b@client.test>", b"501 5.1.7 Bad sender address syntax: the address holds a control character"),
        (b"MAIL FROM:<a\x1bb@client.test>", b"501 5.1.7 Bad sender address syntax: the address holds a control character"),
        (b"MAIL FROM:<caf\xc3\xa9@client.test>", b"501 5.1.7 Bad sender address syntax: 8-bit characters need SMTPUTF8"),
        (b"MAIL FROM:<\xff@client.test>", b"501 5.1.7 Bad sender address syntax: the address holds bytes that are not UTF-8"),
        (b"MAIL FROM:<<a@client.test>", b"501 5.1.7 Bad sender address syntax: unbalanced angle brackets"),
        (b"MAIL FROM: a@client.test>", b"501 5.1.7 Bad sender address syntax: unbalanced angle brackets"),
    ],
    ids=["nul", "escape", "8-bit", "not-utf8", "two-open", "close-only"],
)  # fmt: skip
def test_a_sender_no_envelope_may_hold_gets_501_and_nothing_is_logged_raw(gateway, command, reply):
    client, _ = banner(gateway, ABUSER)
    assert client.command("EHLO client.test").startswith(b"250")
    assert client.command(command) == reply
    assert client.command("MAIL FROM:<sender@client.test>").startswith(b"250")
    client.close()
    assert not any(any(ord(c) < 32 or ord(c) > 126 for c in line) for line in gateway.log.lines)


def test_a_recipient_no_envelope_may_hold_gets_501_nothing_is_queued_and_smtputf8_is_kept(gateway):
    before = queued()
    client, _ = banner(gateway, ABUSER)
    assert client.command("EHLO client.test").startswith(b"250")
    assert client.command("MAIL FROM:<sender@client.test>").startswith(b"250")
    for bad in (
        b"RCPT TO:<rcpt\x00@example.com>",
        b"RCPT TO:<r\xc3\xa9@example.com>",
        b"RCPT TO:<rcpt@example.com",
    ):
        assert client.command(bad).startswith(b"501 5.1.3 Bad recipient address syntax"), bad
    assert client.command("DATA").startswith(b"503")  # no recipient was taken
    assert client.command("RSET").startswith(b"250")
    assert client.command("MAIL FROM:<sender@client.test> SMTPUTF8").startswith(b"250")
    assert client.command("RCPT TO:<r\xc3\xa9@example.com>".encode("latin-1")).startswith(b"250")
    client.close()
    assert queued() == before
    assert not any("\x00" in line for line in gateway.log.lines)


def test_client_counts_hold_across_processes_and_a_full_table_admits_untracked(monkeypatch):
    counts = ClientCounts()
    child = processes.FORK.Process(target=lambda: [counts.admit("In 192.0.2.1", 2, 100) for _ in range(2)])
    child.start()
    child.join(10)
    assert counts.admit("In 192.0.2.1", 2, 100) == Admission.TOO_MANY_OPEN
    counts.release("In 192.0.2.1")
    assert counts.admit("In 192.0.2.1", 2, 100) == Admission.ADMITTED
    assert counts.admit("In 192.0.2.1", 5, 4) == Admission.TOO_FAST  # the fifth this minute

    monkeypatch.setattr(processes, "CLIENT_ENTRIES", processes.PROBES)  # one probe run: the whole table
    small = ClientCounts()
    for number in range(processes.PROBES):
        assert small.admit(f"In 198.51.100.{number}", 1, 10) == Admission.ADMITTED
    assert small.admit("In 203.0.113.1", 1, 10) == Admission.UNTRACKED
    small.release("In 198.51.100.0")
    assert small.admit("In 203.0.113.1", 1, 10) == Admission.ADMITTED  # the freed slot, reused


def test_the_limits_from_a_single_ip_round_trip_through_the_file_and_the_console(admin):
    workflow.submit(
        admin,
        "per address",
        lambda: hat.save_policy(CLUSTER, IN, "ACCEPTED", limits={"max_concurrency_per_ip": 5}),
    )
    config = {key: registry.candidate()[key] for key in ("listeners", "address_lists")}
    saved = render(config, SecretMode.PLAIN)
    assert "<max_concurrency_per_ip>5</max_concurrency_per_ip>" in saved
    assert "<max_connections_per_minute_per_ip>60</max_connections_per_minute_per_ip>" in saved  # THROTTLED
    assert parse(saved.encode("latin-1")).config == config

    hostaccess = ("listenerconfig", "edit", IN, "hostaccess")
    run(
        *hostaccess,
        "edit",
        "policy",
        "THROTTLED",
        "--max-connections-per-minute-per-ip",
        "30",
        "--user",
        "admin",
    )
    out, _ = run(*hostaccess, "print")
    assert "Max. Connections Per Minute From a Single IP" in out
    assert "\t30\t" in out.split("THROTTLED\t", 1)[1].split("\n", 1)[0]
    # What bench/smtp_load.py commits for its load generator, as for a known relay.
    run(*hostaccess, "new", "policy", "LOADGEN", "--behavior", "accept",
        "--max-concurrency-per-ip", "10000", "--max-connections-per-minute-per-ip", "100000")  # fmt: skip
    run(*hostaccess, "new", "sendergroup", "LOADGEN", "--policy", "LOADGEN", "--order", "1",
        "--senders", "127.0.0.1")  # fmt: skip
    assert "1. LOADGEN: policy LOADGEN" in run(*hostaccess, "print")[0]
    problem = refused(*hostaccess, "edit", "policy", "THROTTLED", "--max-concurrency-per-ip", "0")
    assert "Max. Concurrent Connections From a Single IP must be between 1 and 10000, not 0" in problem
