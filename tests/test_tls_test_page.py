"""Mail Policies > Destination Controls > Test TLS: the probe of ``gateway.tlsprobe`` from the GUI.

The receiving servers are ``delivery_fixtures``' aiosmtpd servers on loopback, committed as the running
configuration trusts them (the test root in the Custom List), as ``test_tlsverify`` does for the console.
"""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from appliance.config.levels import CLUSTER
from gateway import tlsprobe
from listeners import hat
from tests.delivery_fixtures import (  # noqa: F401 (fixtures)
    DOMAIN,
    PLAIN,
    SELF_SIGNED,
    TRUSTED,
    WRONG_NAME,
    outbound_fixture,
    receivers_fixture,
    server_pki_fixture,
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


def mode_row(content: str, label: str) -> list[str]:
    """The outcomes of the TLS Support mode ``label`` in the second table, one per server."""
    table = re.search(r'<table class="cols" id="tls-modes">(.*?)</table>', content, re.S).group(1)
    row = re.search(rf"<tr><th>{re.escape(label)}</th>(.*?)</tr>", table, re.S).group(1)
    return re.findall(r"<td>(.*?)</td>", row)


def server_cells(content: str) -> list[list[str]]:
    """The cells of the per-server table, tags and surrounding space removed."""
    table = re.search(r'<table class="cols" id="tls-servers">.*?<tbody>(.*?)</tbody>', content, re.S).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)
    return [[cell.strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)] for row in rows]


def field_errors(content: str, name: str) -> list[str]:
    """The errors shown in the field row of ``name``."""
    row = re.search(
        rf'<div class="field has-error">\s*<label for="id_{name}">.*?</div>\s*(?=<div class="field|<div class="actions)',
        content,
        re.S,
    )
    return re.findall(r'<div class="error">(.*?)</div>', row.group(0)) if row else []


@pytest.fixture
def trusted_config(outbound, server_pki):
    outbound.trust(server_pki.authorities.root)
    outbound.commit()
    return outbound


def test_page_renders_and_destination_controls_links_to_it(login, admin):
    client = login(admin)

    page = client.get(URL)

    assert page.status_code == 200
    content = page.content.decode()
    assert 'name="domain"' in content and 'name="host"' in content
    assert f'hx-post="{URL}"' in content and 'hx-indicator="#tls-test-progress"' in content
    assert "Testing…" in content and 'id="tls-test-report"' not in content
    controls = client.get(reverse("destinations:destination_controls")).content.decode()
    assert f'href="{URL}">Test TLS...</a>' in controls


def test_a_trusted_receiver_is_validated_and_verified(login, admin, trusted_config, receivers):
    receiver = receivers(TRUSTED)

    answer = login(admin).post(URL, {"domain": DOMAIN.upper(), "host": receiver.hop}, headers=HTMX)

    assert answer.status_code == 200
    content = answer.content.decode()
    assert "<html" not in content and content.lstrip().startswith('<div id="tls-test">')  # the fragment
    [[server, connect, starttls, tls, cert, name]] = server_cells(content)
    assert server == f"{LOOPBACK} [{LOOPBACK}:{receiver.port}]"
    assert (connect, starttls, cert) == ("OK", "offered and accepted", "VALIDATED")
    assert re.fullmatch(r"TLSv1\.3 TLS_[A-Z0-9_]+", tls)
    assert name == f"VERIFIED ({DOMAIN})"
    assert mode_row(content, "Required - Verify") == [tlsprobe.ENCRYPTED]
    assert mode_row(content, "None") == [tlsprobe.CLEAR]
    assert "<details>" in content and "TLS successfully started on this server" in content
    assert html.escape("-->MAIL FROM:<tlsverify@esa.example.com>") in content
    assert receiver.mail_commands == [("tlsverify@esa.example.com", True)]


def test_a_certificate_for_another_name(login, admin, trusted_config, receivers):
    receiver = receivers(WRONG_NAME)

    content = login(admin).post(URL, {"domain": DOMAIN, "host": receiver.hop}, headers=HTMX)
    content = content.content.decode()

    [[_, _, _, _, cert, name]] = server_cells(content)
    assert cert == "VALIDATED"
    assert name == f"DOES NOT VERIFY ({DOMAIN} | {LOOPBACK} != elsewhere.test)"
    assert mode_row(content, "Required") == [tlsprobe.ENCRYPTED]
    assert mode_row(content, "Required - Verify") == [tlsprobe.NOT_DELIVERED]


def test_a_self_signed_server_gets_the_chain_finding_and_what_to_do(login, admin, trusted_config, receivers):
    receiver = receivers(SELF_SIGNED)

    content = login(admin).post(URL, {"domain": DOMAIN, "host": receiver.hop}, headers=HTMX).content.decode()

    [finding] = re.findall(r'<div class="banner banner-warning" data-kind="([a-z_]+)">', content)
    assert finding == "self_signed"
    assert (
        "report it as FAIL" in content
        and "What to do: The server needs a certificate signed by a CA" in content
    )


def test_a_server_without_starttls(login, operator, trusted_config, receivers):
    receiver = receivers(PLAIN)

    # Without htmx: the whole page, with the report under the form.
    answer = login(operator).post(URL, {"domain": DOMAIN, "host": receiver.hop})

    assert answer.status_code == 200
    content = answer.content.decode()
    assert "<html" in content
    [[_, connect, starttls, tls, cert, name]] = server_cells(content)
    assert (connect, starttls, tls, cert, name) == ("OK", "not offered", "—", "—", "—")
    assert mode_row(content, "Required") == [tlsprobe.NOT_DELIVERED]
    assert mode_row(content, "Required - Verify") == [tlsprobe.NOT_DELIVERED]
    assert mode_row(content, "Preferred") == [tlsprobe.CLEAR]
    assert "STARTTLS is not offered by this server" in content
    assert receiver.mail_commands == []  # nothing said in clear


def test_a_server_that_does_not_answer(login, admin, trusted_config):
    port = free_port()  # nothing listens there

    content = login(admin).post(URL, {"domain": DOMAIN, "host": f"{LOOPBACK}:{port}"}, headers=HTMX)
    content = content.content.decode()

    [[_, connect, starttls, *_]] = server_cells(content)
    assert connect.startswith("cannot connect: ") and starttls == "—"
    for mode in tlsprobe.MODES:
        assert mode_row(content, mode.label) == [tlsprobe.NOT_DELIVERED]


@pytest.mark.parametrize(
    "values,field,message",
    [
        ({"domain": "not a domain!"}, "domain", "is not a destination"),
        ({"domain": ""}, "domain", "This field is required."),
        ({"domain": "Default"}, "domain", "name no mail servers"),
        ({"domain": ".example.com"}, "domain", "name no mail servers"),
        ({"domain": "example.com", "host": "bad_host"}, "host", "is not a destination host"),
        ({"domain": "example.com", "host": "mx.example.com:99999"}, "host", "the port must be a number"),
        ({"domain": "example.com", "host": "USEDNS"}, "host", "is not a server"),
        ({"domain": "example.com", "host": "/dev/null"}, "host", "is not a server"),
    ],
    ids=["syntax", "empty", "default", "subdomain", "bad-host", "bad-port", "usedns", "dev-null"],
)
def test_bad_values_are_refused_next_to_their_field(login, admin, monkeypatch, values, field, message):
    monkeypatch.setattr(tlsprobe, "probe_domain", probe_never)

    answer = login(admin).post(URL, values, headers=HTMX)

    assert answer.status_code == 400
    content = answer.content.decode()
    errors = field_errors(content, field)
    assert len(errors) == 1 and message in html.unescape(errors[0]), content
    assert 'id="tls-test-report"' not in content


async def probe_never(*args, **kwargs):
    raise AssertionError("the probe ran")


@pytest.mark.parametrize("role", ["read_only", "guest"])
def test_roles_that_may_not_test_are_refused(request, login, monkeypatch, role):
    monkeypatch.setattr(tlsprobe, "probe_domain", probe_never)
    client = login(request.getfixturevalue(role))

    answer = client.post(URL, {"domain": DOMAIN, "host": f"{LOOPBACK}:25"}, headers=HTMX)

    assert answer.status_code == 403
    page = client.get(URL)
    if role == "guest":
        assert page.status_code == 403
    else:  # Read-Only sees the page, without the Test button
        assert page.status_code == 200
        assert "Test</button>" not in page.content.decode()
        assert "Your role may not run connection tests" in page.content.decode()


def test_what_the_server_says_is_escaped(login, admin, trusted_config, receivers):
    hostile = "<script>alert(1)</script>"
    receiver = receivers(PLAIN, hostname=hostile)  # its banner: 220 <script>…

    content = login(admin).post(URL, {"domain": DOMAIN, "host": receiver.hop}, headers=HTMX)
    content = content.content.decode()

    assert hostile not in content
    assert html.escape(f"<-- 220 {hostile}") in content
    transcript = re.search(r'<pre class="mono">(.*?)</pre>', content, re.S).group(1)
    assert all(line.startswith("[") for line in transcript.splitlines())


# --- check my own listener ---------------------------------------------------------------------------


def test_check_my_own_listener_from_the_page(login, admin, gateway):
    gateway.stage("TLS offered", lambda: hat.set_default_parameters(CLUSTER, IN, tls="preferred"))
    gateway.commit()
    client = login(admin)
    assert f'<option value="{IN}">{IN}</option>' in client.get(URL).content.decode()

    content = client.post(URL, {"domain": "example.com", "listener": IN}, headers=HTMX).content.decode()

    [[server, connect, starttls, _, cert, name]] = server_cells(content)
    assert server == f"esa.example.com [{LOOPBACK}:{gateway.port}]"
    assert (connect, starttls, cert) == ("OK", "offered and accepted", "self-signed certificate")
    assert name == "VERIFIED (esa.example.com)"  # the Demo certificate covers the interface's name
    assert 'data-kind="self_signed"' in content
    assert f"this is the first run of this test (listener {IN} for example.com)" in html.unescape(content)


def test_a_listener_and_a_server_at_once_are_refused(login, admin):
    content = login(admin).post(
        URL, {"domain": "example.com", "host": "mx.example.com", "listener": IN}, headers=HTMX
    )
    assert content.status_code == 400
    assert field_errors(content.content.decode(), "listener") == [
        "Test either a server (Host[:port]) or one of your listeners, not both."
    ]
