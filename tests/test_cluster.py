"""Centralized Management: three machines (``runappliance --machine``) on 127.0.0.2, 127.0.0.3 and
127.0.0.4, one PostgreSQL database of the test's own. A commit on one machine is served by all three
(their HTTPS interfaces and their listeners); IP interfaces are each machine's own; a stopped machine
catches up when it starts; with the database stopped every gateway goes on taking mail (one that dies
starts again from its machine's copy of the version), the console says why it cannot answer, commits
are refused, and all resumes when the database returns; a group's and a machine's own settings win
over the cluster's, the machine's over its group's; a machine that leaves runs on a database of its
own with what it ran, certificates and its group's settings included."""

from __future__ import annotations

import os
import signal
import smtplib
import ssl
import time

import pytest
from cryptography import x509

from tests.appliance_process import PASSWORD, Appliance, free_port
from tests.delivery_fixtures import PLAIN, Receiver
from tests.postgres import PostgresServer
from tests.test_runappliance import Browser, ok
from tests.test_spool_crash import gateway_pid

pytestmark = pytest.mark.slow

ADDRESSES = {"esa1": "127.0.0.2", "esa2": "127.0.0.3", "esa3": "127.0.0.4"}
WAIT = 10  # seconds a commit may take to reach every machine (the goal is 2)


def unverified() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


def https_name(address: str, port: int) -> str:
    pem = ssl.get_server_certificate((address, port), timeout=5)
    return common_name(x509.load_pem_x509_certificate(pem.encode()))


def smtp_name(address: str, port: int) -> str:
    with smtplib.SMTP(address, port, local_hostname="client.test", timeout=10) as client:
        client.starttls(context=unverified())
        der = client.sock.getpeercert(binary_form=True)
    return common_name(x509.load_der_x509_certificate(der))


def common_name(certificate: x509.Certificate) -> str:
    return certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value


def served(names, address: str, port: int) -> str:
    try:
        return names(address, port)
    except OSError as error:
        return f"unreachable: {error}"


def wait_until_served(check, wanted: str, addresses, port: int, timeout: float = WAIT) -> float:
    """Seconds until every address serves ``wanted``; AssertionError naming what each serves if not."""
    start = time.monotonic()
    while True:
        seen = {address: served(check, address, port) for address in addresses}
        if all(name == wanted for name in seen.values()):
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"after {timeout} s, wanted {wanted!r}: {seen}")
        time.sleep(0.2)


def starttls_with_tls12(address: str, port: int) -> str:
    """Whether the listener at ``address`` lets a client that speaks TLS 1.2 at most start TLS."""
    context = unverified()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with smtplib.SMTP(address, port, local_hostname="client.test", timeout=10) as client:
        try:
            client.starttls(context=context)
        except ssl.SSLError:
            return "refused"
    return "accepted"


def accepted(address: str, port: int, subject: str) -> bool:
    with smtplib.SMTP(address, port, local_hostname="client.test", timeout=10) as client:
        client.starttls(context=unverified())
        refused = client.sendmail(
            "alice@partner.test", ["bob@example.com"], f"Subject: {subject}\r\n\r\nHi.\r\n"
        )
    return refused == {}


@pytest.fixture
def cluster(tmp_path):
    """esa1 set up (first start), the cluster created, esa2 and esa3 joined; none of them running."""
    server = PostgresServer()
    key_file = tmp_path / "cluster.key"
    key_file.write_text("the key the operator copies to every machine\n")
    https_port, smtp_port = free_port(), free_port()
    shared = {
        "APPLIANCE_DATABASE_URL": server.url(),
        "APPLIANCE_SECRET_KEY_FILE": str(key_file),
        "APPLIANCE_LISTEN_ADDRESS": ADDRESSES["esa1"],
        "APPLIANCE_SMTP_PORT": str(smtp_port),
    }
    machines: dict[str, Appliance] = {}

    def start(machine: str, *arguments: str) -> Appliance:
        """``machine``'s runappliance; its console commands run as that machine (APPLIANCE_MACHINE)."""
        environment = {**shared, "APPLIANCE_MACHINE": machine} if arguments else shared
        appliance = Appliance(tmp_path / machine, https_port, arguments=arguments, environment=environment)
        machines[machine] = appliance
        return appliance

    try:
        first = start("esa1")  # an appliance of its own: the first start makes version 1
        first.wait_for(r"^Appliance ready: ")
        assert first.stop() == 0
        ok(first, "clusterconfig", "create", "Mail", "--machine", "esa1")
        for machine in ("esa2", "esa3"):
            ok(first, "clusterconfig", "join", "--machine", machine, "--address", ADDRESSES[machine])
        yield server, start, https_port, smtp_port
    finally:
        for machine, appliance in machines.items():
            appliance.stop()
            print(f"--- {machine}'s output (pytest shows it when the test fails)", *appliance.lines, sep="\n")
        server.remove()


def on_machine(appliance: Appliance, machine: str, *args: str):
    """A console command as ``machine`` (its machine-level settings are its own)."""
    own = appliance.env["APPLIANCE_MACHINE"]
    appliance.env["APPLIANCE_MACHINE"] = machine
    try:
        return ok(appliance, *args)
    finally:
        appliance.env["APPLIANCE_MACHINE"] = own


def test_three_machines_serve_one_committed_configuration(cluster):
    server, start, https_port, smtp_port = cluster
    running = {machine: start(machine, "--machine", machine) for machine in ("esa1", "esa2", "esa3")}
    for machine, appliance in running.items():
        appliance.wait_for(rf"^Appliance ready: https://{ADDRESSES[machine]}:{https_port}/ \(Management\)")
        appliance.wait_for(rf"^Gateway ready: IncomingMail {ADDRESSES[machine]}:{smtp_port} ")
    esa1, esa2, esa3 = running.values()
    listed = ok(esa1, "clusterconfig", "list").stdout
    assert listed.startswith("Cluster Mail\n") and all(f"{name}\tMain_Group" in listed for name in ADDRESSES)

    # A stopped machine catches up: esa3 misses the commit, then starts.
    assert esa3.stop() == 0
    sink = Receiver(PLAIN, None)
    ok(esa1, "smtproutes", "new", "example.com", "--host", sink.hop)
    ok(esa1, "certconfig", "new", "Cluster", "--cn", "mail.example.com", "--key", "ec256")
    ok(esa1, "listenerconfig", "edit", "IncomingMail", "--certificate", "Cluster")
    ok(esa1, "listenerconfig", "edit", "IncomingMail", "hostaccess", "default", "--tls", "preferred")
    for machine in ADDRESSES:  # each machine's own interface, from any machine's console
        on_machine(esa1, machine, "interfaceconfig", "edit", "Management", "--certificate", "Cluster")
    ok(esa1, "commit", "--comment", "the cluster's certificate everywhere")
    up = [ADDRESSES["esa1"], ADDRESSES["esa2"]]
    seconds = wait_until_served(https_name, "mail.example.com", up, https_port)
    wait_until_served(smtp_name, "mail.example.com", up, smtp_port)
    print(f"commit served by esa1 and esa2 over HTTPS after {seconds:.2f} s")
    esa3 = start("esa3", "--machine", "esa3")
    wait_until_served(https_name, "mail.example.com", [ADDRESSES["esa3"]], https_port, timeout=60)
    wait_until_served(smtp_name, "mail.example.com", [ADDRESSES["esa3"]], smtp_port)

    # A machine-level setting is that machine's only: esa2's interface gets a certificate of its own.
    ok(esa1, "certconfig", "new", "Esa2Only", "--cn", "esa2.example.com", "--key", "ec256")
    on_machine(esa1, "esa2", "interfaceconfig", "edit", "Management", "--certificate", "Esa2Only")
    ok(esa1, "commit", "--comment", "esa2's own HTTPS certificate")
    wait_until_served(https_name, "esa2.example.com", [ADDRESSES["esa2"]], https_port)
    assert https_name(ADDRESSES["esa1"], https_port) == "mail.example.com"
    assert https_name(ADDRESSES["esa3"], https_port) == "mail.example.com"
    assert smtp_name(ADDRESSES["esa2"], smtp_port) == "mail.example.com"  # the listener is the cluster's

    # The database goes away: mail is still taken everywhere, the console and commits say why not.
    administrator = Browser(https_port, unverified(), ADDRESSES["esa1"])
    administrator.request("GET", "/login/")
    response, _ = administrator.request("POST", "/login/", {"username": "admin", "password": PASSWORD})
    assert response.status == 302
    server.stop()
    for appliance in (esa1, esa2, esa3):
        appliance.wait_for(
            r"^Warning: the database cannot be reached .*keep running configuration version", 30
        )
    # A gateway that dies meanwhile starts again from the copy of the version its machine kept.
    before = len(esa2.lines)
    os.kill(gateway_pid(esa2.process.pid), signal.SIGKILL)
    esa2.wait_for(r"^Warning: the mail gateway exited with status -9; starting it again", 20, before)
    esa2.wait_for(r"^Gateway ready: IncomingMail .*\[configuration version 6\]", 30, before)
    for machine, address in ADDRESSES.items():
        assert accepted(address, smtp_port, f"while the database is down, to {machine}")
    administrator.connect()
    response, page = administrator.request("GET", "/")
    assert response.status == 503, page
    assert "The configuration database cannot be reached" in page
    assert "This machine keeps running configuration version 6" in page  # 1 first start, 2–4 the cluster
    refused = esa1.manage("commit", "--comment", "while the database is down")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith("Error: the configuration database cannot be reached")

    said = {appliance: len(appliance.lines) for appliance in (esa1, esa2, esa3)}
    server.start()
    server.wait_until_up()
    for appliance in (esa1, esa2, esa3):
        appliance.wait_for(r"^The database can be reached again", 30, said[appliance])
        warnings = [
            line for line in appliance.lines if line.startswith("Warning: the database cannot be reached")
        ]
        assert len(warnings) == 1, "the outage is reported once"
    ok(esa1, "certconfig", "new", "Back", "--cn", "back.example.com", "--key", "ec256")
    ok(esa1, "listenerconfig", "edit", "IncomingMail", "--certificate", "Back")
    ok(esa1, "commit", "--comment", "after the database returned")
    wait_until_served(smtp_name, "back.example.com", list(ADDRESSES.values()), smtp_port)
    for machine, address in ADDRESSES.items():
        assert accepted(address, smtp_port, f"after the database returned, to {machine}")
    # Each machine delivered what it took, the mail of the outage included.
    subjects = sorted(
        m.data.split(b"Subject: ")[1].split(b"\r\n")[0].decode() for m in sink.wait(6, timeout=30)
    )
    assert subjects == sorted(
        f"{when}, to {machine}"
        for when in ("while the database is down", "after the database returned")
        for machine in ADDRESSES
    )
    sink.stop()

    # Levels: Main_Group (every machine) asks inbound TLS 1.3, but esa1 defines TLS 1.2 for itself, the
    # most specific level winning; esa2 defines its own listeners, with a certificate of its own.
    ok(esa1, "clusterconfig", "override", "ssl_config", "--mode", "group:Main_Group")
    ok(esa1, "sslconfig", "set", "inbound", "--min", "TLSv1.3", "--mode", "group:Main_Group")
    ok(esa1, "clusterconfig", "override", "ssl_config", "--mode", "machine:esa1")
    ok(esa1, "sslconfig", "set", "inbound", "--min", "TLSv1.2", "--mode", "machine:esa1")
    ok(esa1, "certconfig", "new", "Esa2Mail", "--cn", "mx2.example.com", "--key", "ec256")
    ok(esa1, "clusterconfig", "override", "listeners", "--mode", "machine:esa2")
    ok(esa1, "listenerconfig", "edit", "IncomingMail", "--certificate", "Esa2Mail", "--mode", "machine:esa2")
    ok(esa1, "commit", "--comment", "a group's and two machines' own settings")
    for appliance in (esa1, esa2, esa3):
        appliance.wait_for(r"^Gateway ready: IncomingMail .*\[configuration version 8\]", WAIT)
    assert {machine: smtp_name(address, smtp_port) for machine, address in ADDRESSES.items()} == {
        "esa1": "back.example.com",
        "esa2": "mx2.example.com",
        "esa3": "back.example.com",
    }
    assert {machine: starttls_with_tls12(address, smtp_port) for machine, address in ADDRESSES.items()} == {
        "esa1": "accepted",
        "esa2": "refused",
        "esa3": "refused",
    }

    # esa3 stops and leaves; on a database of its own, with the file it left with, it serves as before.
    assert esa3.stop() == 0
    folder = esa1.data_dir.parent
    (folder / "passphrase").write_text("Leave-It-Safe-7\n")
    saved = folder / "esa3.xml"
    ok(
        esa1,
        "clusterconfig",
        "leave",
        "--machine",
        "esa3",
        "--file",
        str(saved),
        "--passphrases",
        "encrypt",
        "--passphrase-file",
        str(folder / "passphrase"),
    )
    assert "esa3" not in ok(esa1, "clusterconfig", "list").stdout
    standalone = Appliance(
        folder / "esa3-alone",
        https_port,
        environment={"APPLIANCE_LISTEN_ADDRESS": ADDRESSES["esa3"], "APPLIANCE_SMTP_PORT": str(smtp_port)},
    )
    try:
        standalone.wait_for(r"^Appliance ready: ")
        ok(standalone, "loadconfig", str(saved), "--passphrase-file", str(folder / "passphrase"))
        ok(standalone, "commit", "--comment", "what esa3 ran in the cluster")
        wait_until_served(https_name, "mail.example.com", [ADDRESSES["esa3"]], https_port)
        wait_until_served(smtp_name, "back.example.com", [ADDRESSES["esa3"]], smtp_port)
        assert starttls_with_tls12(ADDRESSES["esa3"], smtp_port) == "refused"  # its group's, kept
    finally:
        standalone.stop()
