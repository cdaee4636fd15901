"""Network > Listeners in the browser's terms: list, add, edit, delete, the certificate selector and its advice."""

from __future__ import annotations

import html

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from appliance import workflow
from appliance.config.levels import CLUSTER
from appliance.config.sections import registry
from certificates import pki
from listeners.models import Listener
from tests.listener_fixtures import (
    DEMO_WARNING,
    credentials_fixture,  # noqa: F401 (fixture)
    listener_settings,
    listeners,
    stage_certificate,
    stage_listener,
    stage_pending,
    unchanged_fixture,  # noqa: F401 (fixture)
)

RELAY = {
    "name": "Relay",
    "listener_type": "private",
    "interface_name": "Management",
    "port": "587",
    "certificate_name": "",
    "max_concurrency": "300",
    "max_tls_concurrency": "200",
}
SUBMITTED = "Your changes have been submitted. Commit them to make them take effect."


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def page(response) -> str:
    return html.unescape(response.content.decode())


def test_the_list_shows_each_listener_and_the_network_menu_links_it(login, admin):
    stage_listener(admin, "Relay", 587, kind="private")
    client = login(admin)
    with CaptureQueriesContext(connection) as queries:
        text = page(client.get(reverse("listeners:list")))
    assert len(queries) < 15
    assert f'href="{reverse("listeners:list")}">Listeners</a>' in text
    assert "Add Listener..." in text
    for cells in (
        ["IncomingMail", "Public", "Management (127.0.0.1)", "2525", "Demo"],
        ["Relay", "Private", "Management (127.0.0.1)", "587", "—"],
    ):
        row = text[text.index(f">{cells[0]}</a>") :]
        row = row[: row.index("</tr>")]
        for cell in cells[1:]:
            assert cell in row
    assert 'data-confirm="Delete listener Relay?"' in text


def test_the_form_has_the_esa_fields_and_defaults(login, admin):
    text = page(login(admin).get(reverse("listeners:add")))
    for label in ("Name", "Type of Listener", "Interface", "Port", "Certificate"):
        assert f">{label}</label>" in text or f"<legend>{label}</legend>" in text
    assert 'name="port" value="25"' in text
    assert 'value="public" required id="id_listener_type_0" checked' in text
    assert '<option value="Management">Management (127.0.0.1: esa.example.com)</option>' in text


def test_the_certificate_selector_lists_certificates_with_their_status(login, admin, credentials):
    stage_certificate(admin, "Old", credentials.expired)
    stage_pending(admin, "Waiting")
    text = page(login(admin).get(reverse("listeners:add")))
    select = text[
        text.index('name="certificate_name"') : text.index("</select>", text.index('name="certificate_name"'))
    ]
    assert [line.strip() for line in select.splitlines()[1:] if line.strip()] == [
        '<option value="" selected>— none —</option>',
        '<option value="Demo">Demo (Self-signed)</option>',
        '<option value="Old">Old (Expired)</option>',
        '<option value="Waiting">Waiting (Signing request pending)</option>',
    ]


def test_add_stages_a_listener_and_returns_to_the_list(login, admin):
    response = login(admin).post(reverse("listeners:add"), RELAY, follow=True)
    assert response.redirect_chain == [(reverse("listeners:list"), 302)]
    assert messages_of(response) == [SUBMITTED]
    assert listener_settings()[1] == {
        "listener_name": "Relay",
        "listener_type": "private",
        "interface_name": "Management",
        "port": 587,
        "certificate_name": "",
    }
    assert [item["listener_name"] for item in workflow.running_config()["listeners"]] == ["IncomingMail"]
    assert workflow.lock_state().owner_name == "admin"


def test_add_through_htmx_redirects_the_browser_and_re_renders_refusals(login, admin):
    client = login(admin)
    response = client.post(reverse("listeners:add"), RELAY, headers={"HX-Request": "true"})
    assert (response.status_code, response["HX-Redirect"]) == (200, reverse("listeners:list"))
    response = client.post(reverse("listeners:add"), RELAY, headers={"HX-Request": "true"})
    assert response.status_code == 409
    text = page(response)
    assert not text.lstrip().startswith("<!DOCTYPE") and 'hx-target="#listener-form"' in text
    assert "A listener named 'Relay' already exists. Nothing was changed." in text


@pytest.mark.parametrize(
    "change,status,message",
    [
        (
            {"name": "IncomingMail"},
            409,
            "A listener named 'IncomingMail' already exists. Nothing was changed.",
        ),
        ({"name": "bad/name"}, 400, "'bad/name' is not a valid name"),
        ({"interface_name": "Outside"}, 400, "There is no interface named 'Outside'"),
        ({"certificate_name": "Missing"}, 400, "There is no certificate named 'Missing'"),
        ({"port": "0"}, 400, "The port must be between 1 and 65535"),
        ({"port": "65536"}, 400, "The port must be between 1 and 65535"),
        (
            {"listener_type": "internal"},
            400,
            "Select a valid choice. internal is not one of the available choices.",
        ),
        (
            {"port": "2525"},
            409,
            "The port is in use: listener 'IncomingMail' and listener 'Relay' both use 127.0.0.1 port 2525. "
            "Nothing was changed.",
        ),
        (
            {"port": "8443"},
            409,
            "The port is in use: HTTPS of interface 'Management' and listener 'Relay' both use 127.0.0.1 "
            "port 8443. Nothing was changed.",
        ),
    ],
)
def test_bad_input_is_refused_with_a_message_and_nothing_changes(
    login, admin, unchanged, change, status, message
):
    response = login(admin).post(reverse("listeners:add"), {**RELAY, **change})
    assert response.status_code == status
    assert message in page(response)
    unchanged()
    assert not workflow.has_uncommitted_changes()


def test_edit_shows_the_listener_and_stages_the_change(login, admin):
    client = login(admin)
    text = page(client.get(reverse("listeners:edit", args=["IncomingMail"])))
    assert "Edit Listener: IncomingMail" in text
    assert 'name="port" value="2525"' in text
    assert '<option value="Demo" selected>Demo (Self-signed)</option>' in text
    response = client.post(
        reverse("listeners:edit", args=["IncomingMail"]),
        {**RELAY, "name": "Inbound", "port": "2525", "certificate_name": "Demo"},
    )
    assert response.status_code == 302
    assert listener_settings() == [
        {
            "listener_name": "Inbound",
            "listener_type": "private",
            "interface_name": "Management",
            "port": 2525,
            "certificate_name": "Demo",
        }
    ]
    assert client.get(reverse("listeners:edit", args=["IncomingMail"])).status_code == 404


def test_edit_refuses_the_port_of_another_listener(login, admin):
    stage_listener(admin, "Relay", 587)
    before = registry.candidate()
    response = login(admin).post(
        reverse("listeners:edit", args=["Relay"]), {**RELAY, "port": "2525", "listener_type": "public"}
    )
    assert response.status_code == 409
    assert (
        "The port is in use: listener 'IncomingMail' and listener 'Relay' both use 127.0.0.1 port 2525. "
        "Nothing was changed."
    ) in page(response)
    assert registry.candidate() == before


def test_choosing_a_certificate_warns_on_submit_and_on_uncommitted_changes(login, admin, credentials):
    stage_certificate(admin, "Old", credentials.expired)
    stage_certificate(admin, "Other", credentials.other)
    stage_pending(admin, "Waiting")
    expired_on = pki.load_certificate(credentials.expired.cert_pem).not_valid_after_utc
    expired = f"The certificate 'Old': 'esa.example.com' expired on {expired_on:%Y-%m-%d %H:%M} UTC"
    uncovered = "The certificate 'Other' (other.example.org) does not cover the host name esa.example.com"
    waiting = "The certificate 'Waiting' is still self-signed: its signing request waits for the CA"
    client = login(admin)
    for name, port, certificate, warning in (
        ("Expired", 26, "Old", expired),
        ("Uncovered", 27, "Other", uncovered),
        ("Waiting", 28, "Waiting", waiting),
    ):
        fields = {**RELAY, "name": name, "port": port, "certificate_name": certificate}
        response = client.post(reverse("listeners:add"), fields, follow=True)
        assert messages_of(response) == [SUBMITTED, warning]
        assert 'class="banner banner-warning"' in response.content.decode()
    text = page(client.get(reverse("uncommitted_changes")))
    for name, warning in (("Expired", expired), ("Uncovered", uncovered), ("Waiting", waiting)):
        assert f"<li>listener '{name}' (Certificate): {warning}</li>" in text


def test_a_certificate_that_fits_gives_no_warning(login, admin, credentials):
    stage_certificate(admin, "Mail", credentials.good)
    response = login(admin).post(reverse("listeners:add"), {**RELAY, "certificate_name": "Mail"}, follow=True)
    assert messages_of(response) == [SUBMITTED]


def test_commit_gives_the_demo_warning_naming_the_listener(login, admin):
    client = login(admin)
    client.post(reverse("listeners:add"), RELAY)
    response = client.post(reverse("uncommitted_changes"), {"comment": "relay"}, follow=True)
    assert DEMO_WARNING in messages_of(response)
    assert "Your changes have been committed (version 2)." in messages_of(response)


def test_delete_stages_the_removal(login, admin):
    stage_listener(admin, "Relay", 587)
    response = login(admin).post(reverse("listeners:delete", args=["Relay"]), follow=True)
    assert messages_of(response) == [SUBMITTED]
    assert [item["listener_name"] for item in listeners()] == ["IncomingMail"]
    assert login(admin).post(reverse("listeners:delete", args=["Relay"])).status_code == 404
    assert login(admin).get(reverse("listeners:delete", args=["IncomingMail"])).status_code == 405


def test_read_only_sees_a_preview_and_nothing_is_stored(login, read_only, unchanged):
    client = login(read_only)
    response = client.post(reverse("listeners:add"), RELAY)
    assert response.status_code == 200
    text = page(response)
    assert "Read-Only Operator: this is what your submit would change. Nothing was stored." in text
    assert "listener 'Relay'" in text and "587" in text
    response = client.post(reverse("listeners:delete", args=["IncomingMail"]))
    assert "listener 'IncomingMail'" in page(response) and "deleted" in page(response)
    unchanged()
    assert not workflow.has_uncommitted_changes()
    assert Listener.objects.at(CLUSTER).filter(name="IncomingMail").exists()


def test_guest_is_refused_every_listener_page(login, guest, unchanged):
    client = login(guest)
    assert client.get(reverse("listeners:list")).status_code == 403
    assert client.get(reverse("listeners:add")).status_code == 403
    assert client.post(reverse("listeners:add"), RELAY).status_code == 403
    assert client.get(reverse("listeners:edit", args=["IncomingMail"])).status_code == 403
    assert client.post(reverse("listeners:delete", args=["IncomingMail"])).status_code == 403
    unchanged()
    assert "Listeners</a>" not in client.get(reverse("overview")).content.decode()
