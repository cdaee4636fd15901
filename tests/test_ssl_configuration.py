"""System Administration > SSL Configuration and sslconfig: versions and ciphers per service."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from appliance import tls, workflow
from appliance.config.levels import CLUSTER
from appliance.models import SslSettings
from tests.console import run

FORM = {
    f"{service}_{name}": value
    for service in ("gui", "inbound", "outbound")
    for name, value in (("tls_min", "TLSv1.2"), ("tls_max", "TLSv1.3"), ("ciphers", tls.INTERMEDIATE_CIPHERS))
}


def test_version_one_holds_the_intermediate_profile(appliance):
    [settings] = workflow.running_config()["ssl_config"]
    assert settings["gui_tls_min"] == "TLSv1.2" and settings["outbound_tls_max"] == "TLSv1.3"
    assert settings["inbound_ciphers"] == tls.INTERMEDIATE_CIPHERS


def test_the_page_stages_a_change_and_warns_like_the_esa(login, admin):
    response = login(admin).post(
        reverse("ssl_configuration"), {**FORM, "gui_tls_min": "TLSv1.3"}, follow=True
    )
    page = response.content.decode()
    assert (
        "The changes in the settings of the SSL Configuration can cause all related services to restart"
        in page
    )
    assert SslSettings.load(CLUSTER).gui_tls_min == "TLSv1.3"
    assert workflow.running_config()["ssl_config"][0]["gui_tls_min"] == "TLSv1.2"


@pytest.mark.parametrize(
    "changes,message",
    [
        (
            {"gui_ciphers": "NOT-A-CIPHER"},
            "is not a cipher string OpenSSL accepts: No cipher can be selected",
        ),
        (
            {"inbound_tls_min": "TLSv1.3", "inbound_tls_max": "TLSv1.2"},
            "Inbound SMTP: the lowest version (TLSv1.3) is above the highest (TLSv1.2).",
        ),
        ({"outbound_tls_min": "SSLv3"}, "Select a valid choice. SSLv3 is not one of the available choices."),
    ],
)
def test_bad_settings_are_refused_and_nothing_changes(login, admin, changes, message):
    response = login(admin).post(reverse("ssl_configuration"), {**FORM, **changes})
    assert message in response.content.decode()
    assert not workflow.has_uncommitted_changes()


def test_sslconfig_sets_and_prints(admin):
    assert run("sslconfig", "set", "inbound", "--min", "TLSv1.0")[0] == (
        "SSL configuration of Inbound SMTP staged. Use commit to apply it.\n"
    )
    assert "Inbound SMTP: TLSv1.0 to TLSv1.3" in run("sslconfig", "print")[0]
    err = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("sslconfig", "set", "gui", "--ciphers", "BOGUS", stderr=err)
    assert (
        err.getvalue()
        == "Error: the cipher string is not a cipher string OpenSSL accepts: No cipher can be selected\n"
    )


def test_tls_1_0_lowers_openssls_security_level_for_that_service_only():
    old = tls.Policy(minimum="TLSv1.0")
    assert old.openssl_ciphers.endswith(":@SECLEVEL=0")
    assert tls.Policy().openssl_ciphers == tls.INTERMEDIATE_CIPHERS


def test_a_configuration_file_with_a_bad_cipher_string_is_refused(admin):
    from appliance import configfile
    from appliance.config.xmlfile import ConfigFileError

    with pytest.raises(ConfigFileError) as error:
        configfile.load(
            admin, b"<config><ssl_config><gui_ciphers>NOPE</gui_ciphers></ssl_config></config>", None, "x"
        )
    assert error.value.problems == [
        "line 1: <gui_ciphers> is not a cipher string OpenSSL accepts: No cipher can be selected"
    ]
