"""The TLS test runs kept (``gateway.probe_history``) and each run compared with the one before.

The probe runs against ``delivery_fixtures``' aiosmtpd servers on loopback, as in ``test_tlsverify`` and
``test_tls_test_page``; between two runs the server changes what it offers, as a real server does when its
certificate is replaced or its TLS settings change: ``serve`` gives the receiver a new STARTTLS context
(or none), which every session from then on takes. For the MX hosts of a domain, the appliance's DNS is
moved to a second zone of the test's own. The comparison is read where an administrator reads it: the
console's output and the Test TLS page.
"""

from __future__ import annotations

import asyncio
import html
import io
import re
import ssl

import pytest
from cryptography import x509
from django.core.management import call_command
from django.urls import reverse

from appliance import workflow
from appliance.config.levels import CLUSTER
from destinations.models import PROBE_RUNS_KEPT, ProbeSource, ProbeStatus, TlsProbeRun
from gateway import probe_history, tlsprobe
from listeners import hat
from tests.delivery_fixtures import (  # noqa: F401 (fixtures)
    DOMAIN,
    EXPIRED,
    MX_ADDRESS,
    PLAIN,
    TRUSTED,
    WRONG_NAME,
    Receiver,
    dns_change,
    outbound_fixture,
    receiver_context,
    receivers_fixture,
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

URL = reverse("tls_test")
HTMX = {"HX-Request": "true"}
WHEN = r"\w{3} \w{3} \d\d \d\d:\d\d:\d\d \d{4}"  # Mon Jan 06 10:00:00 2025, local time
EXPIRED_REASON = r"certificate has expired \(not valid after \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)"
SECOND_MX, THIRD_MX = "127.0.0.26", "127.0.0.27"


def serve(receiver: Receiver, context: ssl.SSLContext | None) -> None:
    """From the next session on, the receiver offers STARTTLS with ``context`` (None: it offers none)."""
    receiver.controller.SMTP_kwargs["tls_context"] = context


def tlsverify(*args: str) -> tuple[int, list[str]]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit) as exit_status:
        call_command("tlsverify", *args, stdout=out, stderr=err)
    assert err.getvalue() == "", err.getvalue()
    return exit_status.value.code, out.getvalue().splitlines()


def console_comparison(lines: list[str]) -> tuple[str, list[str]]:
    """The line that opens the comparison, and the lines under it (without their indent)."""
    [start] = [i for i, line in enumerate(lines) if line.startswith("Compared with the last run (")]
    following = lines[start + 1 :]
    assert all(line.startswith("  ") for line in following), lines
    return lines[start], [line[2:] for line in following]


def page_comparison(content: str) -> tuple[str, list[str]]:
    """The page's sentence about the last run, and the differences listed under it."""
    sentence = re.search(r'<p id="tls-comparison">(.*?)</p>', content, re.S).group(1)
    listed = re.search(r'<ul id="tls-differences">(.*?)</ul>', content, re.S)
    items = re.findall(r"<li>(.*?)</li>", listed.group(1), re.S) if listed else []
    return html.unescape(sentence), [html.unescape(item) for item in items]


def page_runs(content: str) -> list[tuple[str, str, str]]:
    """The rows of the recent runs table: (when, by, result)."""
    table = re.search(r'<table class="cols" id="tls-runs">.*?<tbody>(.*?)</tbody>', content, re.S).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)
    return [tuple(html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)) for row in rows]


def expires(path) -> str:
    return f"{x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc:%Y-%m-%d}"


@pytest.fixture
def trusted_config(outbound, server_pki):
    outbound.trust(server_pki.authorities.root)
    outbound.commit()
    return outbound


# --- the console -------------------------------------------------------------------------------------


def test_the_console_compares_with_the_last_run_of_the_same_test(trusted_config, receivers, server_pki):
    receiver = receivers(TRUSTED)
    server = f"{LOOPBACK} [{LOOPBACK}:{receiver.port}]"

    code, lines = tlsverify(DOMAIN, receiver.hop)

    assert code == 0
    assert lines[-1] == (
        f"Nothing to compare with: this is the first run of this test ({DOMAIN} at {receiver.hop})."
    )
    assert not any(line.startswith("Compared with") for line in lines)

    code, lines = tlsverify(DOMAIN, receiver.hop)

    assert code == 0
    header, differences = console_comparison(lines)
    assert re.fullmatch(rf"Compared with the last run \({WHEN}, by admin \(console\)\):", header), header
    assert differences == ["No change."]
    # After the transcript and the verdicts: the comparison is the end of the output.
    assert lines.index(f"TLS Support verdicts for {DOMAIN}:") < lines.index(header)

    # The server's certificate is replaced by one that has expired.
    serve(receiver, receiver_context(EXPIRED, server_pki))
    code, lines = tlsverify(DOMAIN, receiver.hop)

    assert code == 3  # the exit status is still the probe's: TLS up, not verified
    _, differences = console_comparison(lines)
    intermediate = "CN=Test Intermediate CA"
    assert len(differences) == 4, differences
    assert differences[0] == "overall: was TLS up and verified, now: TLS up, not verified"
    assert differences[1] == (
        f"{server}: certificate was CN={DOMAIN} issued by {intermediate}, expires "
        f"{expires(server_pki.trusted.cert)}, now: CN={DOMAIN} issued by {intermediate}, expires "
        f"{expires(server_pki.expired.cert)}"
    )
    assert re.fullmatch(
        re.escape(f"{server}: certificate chain was VALIDATED, now: ") + EXPIRED_REASON, differences[2]
    ), differences[2]
    assert differences[3] == (
        f"{server}: Required - Verify {tlsprobe.ENCRYPTED}, now: {tlsprobe.NOT_DELIVERED}"
    )

    # Another server for the same domain is another test: nothing to compare with.
    other = receivers(TRUSTED)
    code, lines = tlsverify(DOMAIN, other.hop)
    assert code == 0
    assert lines[-1].startswith("Nothing to compare with: ")


def test_every_mx_host_is_compared_new_and_gone_servers_are_named(trusted_config, receivers, zone, smtp_port):
    receivers(TRUSTED, address=MX_ADDRESS, port=smtp_port)
    receivers(WRONG_NAME, address=SECOND_MX, port=smtp_port)
    receivers(PLAIN, address=THIRD_MX, port=smtp_port)
    _, before = zone(
        f"{DOMAIN}. 300 IN MX 10 mx1.{DOMAIN}.\n"
        f"{DOMAIN}. 300 IN MX 20 mx2.{DOMAIN}.\n"
        f"mx1.{DOMAIN}. 300 IN A {MX_ADDRESS}\n"
        f"mx2.{DOMAIN}. 300 IN A {SECOND_MX}\n"
    )
    _, after = zone(
        f"{DOMAIN}. 300 IN MX 10 mx1.{DOMAIN}.\n"
        f"{DOMAIN}. 300 IN MX 30 mx3.{DOMAIN}.\n"
        f"mx1.{DOMAIN}. 300 IN A {MX_ADDRESS}\n"
        f"mx3.{DOMAIN}. 300 IN A {THIRD_MX}\n"
    )
    trusted_config.stage("DNS", dns_change(before))
    trusted_config.commit()

    code, lines = tlsverify(DOMAIN)

    assert code == 3
    assert lines[-1] == f"Nothing to compare with: this is the first run of this test ({DOMAIN})."

    # The domain's MX records change: mx2 goes, mx3 (no STARTTLS) comes.
    trusted_config.stage("DNS", dns_change(after))
    trusted_config.commit()
    code, lines = tlsverify(DOMAIN)

    assert code == 4
    _, differences = console_comparison(lines)
    assert differences == [
        "overall: was TLS up, not verified, now: no TLS or no connection",
        f"new server mx3.{DOMAIN} [{THIRD_MX}:{smtp_port}]: STARTTLS not offered",
        f"server mx2.{DOMAIN} [{SECOND_MX}:{smtp_port}] no longer listed",
    ]
    [run, first] = TlsProbeRun.objects.filter(domain=DOMAIN, server="", listener="")
    assert [server["host"] for server in first.servers] == [f"mx1.{DOMAIN}", f"mx2.{DOMAIN}"]
    assert [server["host"] for server in run.servers] == [f"mx1.{DOMAIN}", f"mx3.{DOMAIN}"]
    assert (run.status, run.user_name, run.source) == (ProbeStatus.NO_TLS, "admin", ProbeSource.CONSOLE)


def test_check_my_own_listener_is_a_test_of_its_own(gateway, zone):
    _, port = zone(f"{DOMAIN}. 300 IN MX 10 mx.{DOMAIN}.\n")
    gateway.stage("DNS", dns_change(port))
    gateway.stage("TLS offered", lambda: hat.set_default_parameters(CLUSTER, IN, tls="preferred"))
    gateway.commit()

    code, lines = tlsverify(DOMAIN, "--listener", IN)

    assert code == 3  # the Demo certificate chains to no trusted CA
    assert (
        lines[-1]
        == f"Nothing to compare with: this is the first run of this test (listener {IN} for {DOMAIN})."
    )

    code, lines = tlsverify(DOMAIN, "--listener", IN)

    assert code == 3
    assert console_comparison(lines)[1] == ["No change."]
    assert TlsProbeRun.objects.filter(domain=DOMAIN, server="", listener=IN).count() == 2
    assert not TlsProbeRun.objects.filter(listener="").exists()


# --- the page -----------------------------------------------------------------------------------------


def test_the_page_compares_with_the_last_run_and_lists_the_recent_ones(
    login, admin, operator, trusted_config, receivers, server_pki
):
    receiver = receivers(TRUSTED)
    server = f"{LOOPBACK} [{LOOPBACK}:{receiver.port}]"
    values = {"domain": DOMAIN, "host": receiver.hop}
    as_operator = login(operator)

    content = as_operator.post(URL, values, headers=HTMX).content.decode()

    sentence, differences = page_comparison(content)
    assert (
        sentence
        == f"Nothing to compare with: this is the first run of this test ({DOMAIN} at {receiver.hop})."
    )
    assert differences == []
    [(when, by, result)] = page_runs(content)
    assert re.fullmatch(WHEN, when) and (by, result) == ("olivia", "TLS up and verified")

    content = as_operator.post(URL, values, headers=HTMX).content.decode()

    sentence, differences = page_comparison(content)
    assert re.fullmatch(rf"No change since the run of {WHEN} by olivia\.", sentence), sentence
    assert differences == []

    # The server now speaks TLS 1.2 at most: another protocol and cipher, the same certificate.
    older = receiver_context(TRUSTED, server_pki)
    older.maximum_version = ssl.TLSVersion.TLSv1_2
    serve(receiver, older)
    content = login(admin).post(URL, values, headers=HTMX).content.decode()

    sentence, differences = page_comparison(content)
    assert re.fullmatch(rf"Compared with the run of {WHEN} by olivia:", sentence), sentence
    assert len(differences) == 2, differences
    assert differences[0] == f"{server}: protocol was TLSv1.3, now: TLSv1.2"
    assert re.fullmatch(re.escape(f"{server}: cipher was TLS_") + r"\S+, now: [A-Z0-9-]+", differences[1])

    # Then it stops offering STARTTLS.
    serve(receiver, None)
    content = login(admin).post(URL, values).content.decode()  # the whole page: the same report

    assert "<html" in content
    sentence, differences = page_comparison(content)
    assert re.fullmatch(rf"Compared with the run of {WHEN} by admin:", sentence), sentence
    assert differences == [
        "overall: was TLS up and verified, now: no TLS or no connection",
        f"{server}: STARTTLS was offered and accepted, now: not offered",
        f"{server}: Preferred {tlsprobe.ENCRYPTED}, now: {tlsprobe.CLEAR}",
        f"{server}: Required {tlsprobe.ENCRYPTED}, now: {tlsprobe.NOT_DELIVERED}",
        f"{server}: Preferred - Verify {tlsprobe.ENCRYPTED}, now: {tlsprobe.CLEAR}",
        f"{server}: Required - Verify {tlsprobe.ENCRYPTED}, now: {tlsprobe.NOT_DELIVERED}",
    ]
    assert [(by, result) for _, by, result in page_runs(content)] == [
        ("admin", "no TLS or no connection"),
        ("admin", "TLS up and verified"),
        ("olivia", "TLS up and verified"),
        ("olivia", "TLS up and verified"),
    ]

    # The console runs the same test: it compares with the page's last run.
    code, lines = tlsverify(DOMAIN, receiver.hop)
    assert code == 4
    header, differences = console_comparison(lines)
    assert re.fullmatch(rf"Compared with the last run \({WHEN}, by admin\):", header), header
    assert differences == ["No change."]
    content = login(admin).post(URL, values, headers=HTMX).content.decode()
    assert page_runs(content)[1][1] == "admin (console)"


def test_runs_are_not_configuration(login, admin, trusted_config, receivers):
    receiver = receivers(TRUSTED)

    login(admin).post(URL, {"domain": DOMAIN, "host": receiver.hop}, headers=HTMX)

    assert TlsProbeRun.objects.count() == 1
    assert not workflow.has_uncommitted_changes()
    assert workflow.pending_changes() == []


@pytest.mark.parametrize("role", ["read_only", "guest"])
def test_a_role_that_may_not_test_leaves_no_run(request, login, role):
    client = login(request.getfixturevalue(role))

    answer = client.post(URL, {"domain": DOMAIN, "host": f"{LOOPBACK}:25"}, headers=HTMX)

    assert answer.status_code == 403
    assert not TlsProbeRun.objects.exists()


# --- what is kept ----------------------------------------------------------------------------------


def test_only_the_newest_runs_of_each_target_are_kept(trusted_config):
    port = free_port()  # nothing listens there: a quick probe that ends in "cannot connect"
    probes = asyncio.run(tlsprobe.probe_domain(trusted_config.config, DOMAIN, LOOPBACK, port))
    target = probe_history.Target.of(DOMAIN, LOOPBACK, port)
    elsewhere = probe_history.record(probe_history.Target.of(DOMAIN), probes, "admin", ProbeSource.GUI)

    runs = [
        probe_history.record(target, probes, "admin", ProbeSource.GUI) for _ in range(PROBE_RUNS_KEPT + 3)
    ]

    def kept() -> list[TlsProbeRun]:
        return list(TlsProbeRun.objects.filter(domain=DOMAIN, server=target.server))

    assert [run.id for run in kept()] == [run.id for run in reversed(runs)][:PROBE_RUNS_KEPT]
    assert TlsProbeRun.objects.filter(id=elsewhere.id).exists()  # another target's runs stay
    comparison = probe_history.compare(runs[-1])
    assert comparison.previous == runs[-2] and comparison.differences == []
    [server] = runs[-1].servers
    assert server["connection"].startswith("cannot connect: ") and server["starttls"] == ""
    assert server["outcomes"] == {mode.value: tlsprobe.NOT_DELIVERED for mode in tlsprobe.MODES}

    # The console's run of the same target is kept the same way.
    code, _ = tlsverify(DOMAIN, f"{LOOPBACK}:{port}")
    assert code == 4
    newest = kept()
    assert len(newest) == PROBE_RUNS_KEPT
    assert newest[0].source == ProbeSource.CONSOLE and newest[-1].id == runs[4].id
