"""The Web UI Inactivity Timeout (System Administration > Network Access, ``adminaccessconfig``,
``<network_access><web_ui_timeout>``): a console session without a request for that long is logged out."""

from __future__ import annotations

import time

from django.urls import reverse

from appliance import configfile, sessions, workflow
from appliance.config.xmlfile import ConfigFileError, SecretMode
from appliance.models import AuditEvent, SystemSettings
from tests.console import refused, run


def idle_for(client, seconds: float) -> None:
    session = client.session
    session[sessions.LAST_ACTIVITY] = time.time() - seconds
    session.save()


def test_a_session_idle_past_the_timeout_is_logged_out_and_audited(login, admin):
    client = login(admin)
    assert client.get(reverse("overview")).status_code == 200
    idle_for(client, 29 * 60)
    assert client.get(reverse("overview")).status_code == 200  # the default, 30 minutes, not reached
    idle_for(client, 31 * 60)
    response = client.get(reverse("overview"), follow=True)
    assert response.redirect_chain[-1][0].startswith(reverse("login"))
    assert "You were logged out after 30 minutes without activity." in response.content.decode()
    assert "_auth_user_id" not in client.session
    event = AuditEvent.objects.filter(action="logout").get()
    assert (event.user_name, event.detail) == ("admin", "inactive for 30 minutes")


def test_a_pages_own_refresh_is_no_activity(login, admin):
    client = login(admin)
    client.get(reverse("overview"))
    idle_for(client, 20 * 60)
    client.get(reverse("overview"), headers={"X-Console-Poll": "true"})
    idle_for(client, 31 * 60)  # what the poll left is what was there: it did not count
    assert client.get(reverse("overview")).status_code == 302


def test_the_committed_timeout_applies_set_on_the_page(login, admin):
    client = login(admin)
    assert client.post(reverse("network_access"), {"web_ui_timeout_minutes": 4}).status_code == 400
    client.post(reverse("network_access"), {"web_ui_timeout_minutes": 5})
    idle_for(client, 6 * 60)
    assert client.get(reverse("overview")).status_code == 200  # staged, not yet running
    client.post(reverse("uncommitted_changes"), {"comment": "five minutes"})
    assert "<web_ui_timeout>5</web_ui_timeout>" in configfile.running_document(admin, SecretMode.MASK)
    idle_for(client, 6 * 60)
    assert client.get(reverse("overview")).status_code == 302


def test_adminaccessconfig_shows_and_stages_the_timeout(admin):
    assert run("adminaccessconfig") == ("Web UI Inactivity Timeout: 30 minutes\n", "")
    assert refused("adminaccessconfig", "--timeout", "1441") == (
        "Error: The Web UI Inactivity Timeout is 5 to 1440 minutes"
    )
    assert run("adminaccessconfig", "--timeout", "1440")[0] == (
        "Web UI Inactivity Timeout of 1440 minutes staged. Use commit to apply it.\n"
    )
    assert SystemSettings.load().web_ui_timeout_minutes == 1440 and workflow.has_uncommitted_changes()


def test_the_configuration_file_bounds_the_timeout(admin):
    document = b"<config><network_access><web_ui_timeout>4</web_ui_timeout></network_access></config>"
    try:
        configfile.load(admin, document, None, "test")
    except ConfigFileError as error:
        assert any("web_ui_timeout" in problem for problem in error.problems), error.problems
    else:
        raise AssertionError("a timeout of 4 minutes was loaded")
    assert SystemSettings.load().web_ui_timeout_minutes == 30
