"""Guards found in review: redirects, exact names, odd Host headers, stacked confirmations, SSL lock-out."""

from __future__ import annotations

import datetime
import http.client
import socket
import threading

import pytest
from django.urls import reverse
from django.utils import timezone

from appliance import redirects, workflow
from appliance.config.levels import CLUSTER
from appliance.models import PendingConfirmation, SslSettings, SystemSettings
from appliance.validators import validate_hostname, validate_object_name


def set_hostname(name):
    return lambda: SystemSettings.objects.update(hostname=name)


def test_confirm_never_redirects_off_the_appliance(login, admin):
    workflow.submit(admin, "h", set_hostname("two.example.org"))
    workflow.commit(admin, "two", confirm_within=5)
    response = login(admin).post(reverse("confirm_commit"), {"next": "https://evil.example/phish"})
    assert response["Location"] == reverse("overview")
    assert not PendingConfirmation.objects.exists()


@pytest.mark.parametrize("validator", [validate_object_name, validate_hostname])
def test_a_trailing_newline_is_not_part_of_a_valid_name(validator):
    with pytest.raises(ValueError):
        validator("mail\n")


def test_stacked_unconfirmed_commits_roll_back_to_the_last_confirmed_version(admin):
    workflow.submit(admin, "h", set_hostname("two.example.org"))
    workflow.commit(admin, "two", confirm_within=5)
    workflow.submit(admin, "h", set_hostname("three.example.org"))
    workflow.commit(admin, "three", confirm_within=5)
    assert PendingConfirmation.objects.get().previous_number == 1
    PendingConfirmation.objects.update(deadline=timezone.now() - datetime.timedelta(seconds=1))
    assert (
        workflow.roll_back_unconfirmed()
        == "version 3 was not confirmed in time: version 4 restores version 1"
    )
    assert workflow.running_config()["hostname"] == [{"hostname": "esa.example.com"}]


def test_a_change_of_the_consoles_ssl_settings_offers_the_automatic_rollback(login, admin):
    workflow.submit(admin, "tls", lambda: SslSettings.objects.at(CLUSTER).update(gui_tls_min="TLSv1.3"))
    page = (
        login(admin).get(reverse("uncommitted_changes"), headers={"Host": "127.0.0.1:8443"}).content.decode()
    )
    assert "These changes alter how you reach this console (interface 'Management')" in page


@pytest.mark.parametrize(
    "host,location",
    [
        ("mail.example.org:8080", "https://mail.example.org:9443/x"),
        ("[abc", "https://127.0.0.1:9443/x"),
        ("", "https://127.0.0.1:9443/x"),
    ],
)
def test_the_http_redirect_survives_odd_host_headers(host, location):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    servers = redirects.RedirectServers()
    assert (
        servers.apply(
            {
                "interfaces": [
                    {"ip": "127.0.0.1", "httpd_port": port, "https_redirect": True, "httpsd_port": 9443}
                ]
            }
        )
        == []
    )
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.putrequest("GET", "/x", skip_host=True)
        if host:
            connection.putheader("Host", host)
        connection.endheaders()
        response = connection.getresponse()
        assert (response.status, response.headers["Location"]) == (301, location)
    finally:
        servers.close()
    assert not any(t.name.startswith("redirect ") for t in threading.enumerate())
