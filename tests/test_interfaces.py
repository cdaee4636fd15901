"""Network > IP Interfaces and interfaceconfig: staged changes, refusals, commit with confirmation."""

from __future__ import annotations

import datetime

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from appliance import interfaces, workflow
from appliance.config.levels import CLUSTER, CLUSTER_MODE
from appliance.models import ConfigVersion, Interface, PendingConfirmation
from certificates import pki, store
from tests.console import refused, run

FORM = {
    "intname": "Data1",
    "ip": "127.0.0.2",
    "netmask": "32",
    "hostname": "data.example.org",
    "httpd_port": "8080",
    "https_redirect": "on",
    "httpsd_port": "8443",
    "certificate": "Demo",
}


def test_add_an_interface_through_the_page_and_commit(login, admin):
    client = login(admin)
    response = client.post(reverse("interface_add"), FORM, follow=True)
    page = response.content.decode()
    assert "Your changes have been submitted" in page
    # Demo names esa.example.com only: the page says so.
    assert "does not cover the host name data.example.org" in page
    client.post(reverse("uncommitted_changes"), {"comment": "second interface"})
    [data] = [i for i in workflow.running_config()["interfaces"] if i["interface_name"] == "Data1"]
    assert (data["ip"], data["httpd_port"], data["https_redirect"], data["httpsd_port"]) == (
        "127.0.0.2",
        8080,
        True,
        8443,
    )


@pytest.mark.parametrize(
    "changes,message",
    [
        (
            {"ip": "127.0.0.1"},
            "HTTPS of interface &#x27;Data1&#x27; and HTTPS of interface &#x27;Management&#x27; both use 127.0.0.1 port 8443",
        ),
        ({"httpsd_port": "70000"}, "Ensure this value is less than or equal to 65535"),
        ({"ip": "300.1.1.1"}, "is not an IPv4 or IPv6 address"),
        ({"intname": "Management"}, "An IP interface named &#x27;Management&#x27; already exists"),
        ({"https_redirect": ""}, "must be 1 when HTTP is on: the console is served over HTTPS only"),
        ({"httpd_port": "8443"}, "HTTP and HTTPS cannot share a port"),
        ({"netmask": "40"}, "must be at most 32 for 127.0.0.2"),
        ({"hostname": "bad_host!"}, "is not a valid host name"),
    ],
)
def test_bad_interfaces_are_refused_and_nothing_changes(login, admin, changes, message):
    response = login(admin).post(reverse("interface_add"), {**FORM, **changes})
    assert response.status_code in (400, 409)
    assert message in response.content.decode()
    assert not Interface.objects.of("").filter(name="Data1").exists()
    assert not workflow.has_uncommitted_changes()


def test_an_interface_in_use_cannot_be_deleted(login, admin):
    client = login(admin)
    users = interfaces.users_of(CLUSTER_MODE, "Management")
    response = client.post(reverse("interface_delete", args=["Management"]))
    if users:  # the listeners name it
        assert response.status_code == 409
        assert "cannot be deleted while it is used by" in response.content.decode()
    client.post(reverse("interface_add"), FORM)
    client.post(reverse("interface_delete", args=["Data1"]))
    assert not Interface.objects.of("").filter(name="Data1").exists()


def test_the_commit_check_keeps_the_console_reachable(admin):
    workflow.submit(admin, "no https", lambda: Interface.objects.of("").update(https_port=None))
    with pytest.raises(workflow.ChangeRefused) as refusal:
        workflow.commit(admin)
    assert (
        "At least one IP interface must serve HTTPS, or the console becomes unreachable"
        in refusal.value.problems
    )


def test_interfaceconfig_adds_edits_lists_and_deletes(admin):
    assert (
        run(
            "interfaceconfig",
            "new",
            "Data1",
            "--ip",
            "127.0.0.2",
            "--netmask",
            "32",
            "--hostname",
            "data.example.org",
            "--http",
            "8080",
            "--https",
            "8443",
            "--certificate",
            "Demo",
        )[0]
        == "IP interface Data1 added. Use commit to apply it.\n"
    )
    out, err = run("interfaceconfig", "edit", "Data1", "--https", "9443", "--http", "off")
    assert out == "IP interface Data1 edited. Use commit to apply it.\n"
    assert (
        "Warning: The certificate 'Demo' (esa.example.com) does not cover the host name data.example.org"
        in err
    )
    data = Interface.objects.of("").get(name="Data1")
    assert (data.https_port, data.http_port, data.https_redirect) == (9443, None, False)
    assert "Data1\t127.0.0.2/32\tdata.example.org" in run("interfaceconfig", "list")[0]
    assert refused("interfaceconfig", "edit", "Data1", "--ip", "127.0.0.1", "--https", "8443").startswith(
        "Error: The port is in use: HTTPS of interface 'Data1' and HTTPS of interface 'Management' both use 127.0.0.1 port 8443"
    )
    assert refused("interfaceconfig", "delete", "Nope") == "Error: There is no IP interface named 'Nope'"
    run("interfaceconfig", "delete", "Data1")
    assert not Interface.objects.of("").filter(name="Data1").exists()


def test_interfaceconfig_refuses_a_port_out_of_range_as_a_usage_error(admin):
    with pytest.raises(
        CommandError, match="argument --https: invalid port \\(1-65535 or off\\) value: '99999'"
    ):
        call_command(
            "interfaceconfig",
            "new",
            "X",
            "--ip",
            "127.0.0.3",
            "--hostname",
            "x.example.org",
            "--https",
            "99999",
        )


def switch_certificate(admin):
    subject = pki.Subject(common_name="esa.example.com")
    workflow.submit(
        admin, "new", lambda: store.create_self_signed(CLUSTER, "New", subject, 30, [], pki.KeyType.EC256)
    )
    workflow.submit(admin, "use", lambda: Interface.objects.of("").update(certificate_name="New"))


def test_a_commit_that_moves_the_console_offers_confirmation(login, admin):
    switch_certificate(admin)
    client = login(admin)
    page = client.get(reverse("uncommitted_changes"), headers={"Host": "127.0.0.1:8443"}).content.decode()
    assert "These changes alter how you reach this console (interface 'Management')" in page
    assert 'name="confirm_needed" id="id_confirm_needed" checked' in page
    client.post(
        reverse("uncommitted_changes"),
        {"comment": "new cert", "confirm_needed": "on", "confirm_minutes": "5"},
    )
    pending = PendingConfirmation.objects.get()
    assert (pending.number, pending.previous_number) == (2, 1)
    page = client.get(reverse("overview")).content.decode()
    assert "Configuration version 2 rolls back to version 1" in page
    client.post(reverse("confirm_commit"))
    assert not PendingConfirmation.objects.exists()
    assert workflow.roll_back_unconfirmed() == ""


def test_an_unconfirmed_commit_rolls_back_by_itself(admin, django_capture_on_commit_callbacks):
    switch_certificate(admin)
    workflow.commit(admin, "new cert", confirm_within=5)
    assert workflow.roll_back_unconfirmed() == ""  # not yet
    PendingConfirmation.objects.update(deadline=timezone.now() - datetime.timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        message = workflow.roll_back_unconfirmed()
    assert message == "version 2 was not confirmed in time: version 3 restores version 1"
    assert workflow.running_config()["interfaces"][0]["certificate_name"] == "Demo"
    assert Interface.objects.of("").get().certificate_name == "Demo"
    assert (
        ConfigVersion.objects.get(number=3).comment
        == "automatic rollback: version 2 was not confirmed in time"
    )
    assert workflow.announced_version() == 3


def test_a_plain_commit_confirms_on_the_console(admin):
    switch_certificate(admin)
    out, err = run("commit", "--confirm-within", "3")
    assert out == "Changes committed: version 2\n"
    assert err.endswith("Warning: version 2 rolls back in 3 minutes unless confirmed (commit again)\n")
    assert run("commit")[0] == "Version 2 confirmed.\n"
    assert not PendingConfirmation.objects.exists()
    assert run("commit")[0] == "No changes to commit.\n"


def test_an_unspecified_address_clashes_with_every_address_on_its_port(admin):
    from appliance.config import checks
    from appliance.config.sections import registry

    config = registry.candidate()
    config["interfaces"].append({**config["interfaces"][0], "interface_name": "Any", "ip": "0.0.0.0"})
    assert "HTTPS of interface 'Management' and HTTPS of interface 'Any' both use 0.0.0.0 port 8443" in (
        checks.socket_conflicts(config)
    )
    config["interfaces"][-1].update(ip="::", interface_name="AnyV6")
    assert not any("AnyV6" in problem for problem in checks.socket_conflicts(config))


def test_a_negative_netmask_is_refused_by_interfaceconfig(admin):
    assert (
        refused(
            "interfaceconfig",
            "new",
            "X",
            "--ip",
            "127.0.0.3",
            "--hostname",
            "x.example.org",
            "--netmask",
            "-1",
        )
        == "Error: The netmask must be a prefix length from 0 to 128, not -1"
    )
