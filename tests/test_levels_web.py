"""The mode selector of the pages of features with levels: Change Mode…, Override Settings, Manage
Settings, and Uncommitted Changes naming the level of each change (on SQLite: levels need no
PostgreSQL, only a cluster's rows)."""

from __future__ import annotations

import html

import pytest
from django.urls import reverse

from appliance import bootstrap, tls, workflow
from appliance.config.sections import registry
from cluster import membership
from cluster.models import Cluster, Machine
from tests.test_certificates_web import SELF_SIGNED

FORM = {
    f"{service}_{name}": value
    for service in ("gui", "inbound", "outbound")
    for name, value in (("tls_min", "TLSv1.2"), ("tls_max", "TLSv1.3"), ("ciphers", tls.INTERMEDIATE_CIPHERS))
}


@pytest.fixture
def cluster(admin):
    """Cluster "Mail": esa1 and esa2 in Main_Group, esa3 in Lab, each with its Management interface."""
    Cluster.objects.create(name="Mail")

    def machines():
        for number, group in ((1, "Main_Group"), (2, "Main_Group"), (3, "Lab")):
            Machine.objects.create(name=f"esa{number}")
            bootstrap.add_management_interface(
                f"esa{number}", f"esa{number}.example.com", f"127.0.0.{number + 1}", 443
            )
            membership.put_in_group(f"esa{number}", group)

    workflow.submit(admin, "three machines", machines)
    workflow.commit(admin)


def page(response) -> str:
    return html.unescape(response.content.decode())


def gui_minimum(machine: str) -> str:
    return registry.for_machine(registry.candidate(), machine)["ssl_config"][0]["gui_tls_min"]


def change_mode(client, level: str, next_url: str):
    return client.post(reverse("cluster:change_mode"), {"level": level, "next": next_url}, follow=True)


def test_an_appliance_of_its_own_shows_no_mode_selector(login, admin):
    assert 'id="mode-bar"' not in page(login(admin).get(reverse("ssl_configuration")))


def test_cluster_mode_shows_where_the_settings_are_defined(login, admin, cluster):
    client = login(admin)
    text = page(client.get(reverse("ssl_configuration")))
    assert "Mode — <strong" in text and "Cluster: Mail" in text
    assert "Settings are defined at <strong>Cluster: Mail</strong>." in text
    for choice in ("Group: Lab", "Group: Main_Group", "Machine: esa1", "Machine: esa2", "Machine: esa3"):
        assert f">{choice}</option>" in text
    # Below a feature's URL, a page of the cluster's settings alone says so; one of no settings has none.
    assert "defined at the Cluster level only" in page(client.get(reverse("listeners:address_lists")))
    assert "Settings are defined at" in page(client.get(reverse("listeners:hat")))
    assert 'id="mode-bar"' not in page(client.get(reverse("audit_log")))


def test_a_machine_overrides_ssl_configuration_and_only_it_runs_them(login, admin, cluster):
    client = login(admin)
    url = reverse("ssl_configuration")
    text = page(change_mode(client, "machine:esa2", url))
    assert "Machine: esa2</strong>" in text
    assert "Settings for this feature are currently defined at: <strong>Cluster: Mail</strong>." in text

    refused = client.post(url, {**FORM, "gui_tls_min": "TLSv1.3"})
    assert refused.status_code == 409
    assert (
        "SSL Configuration: Machine: esa2 uses the settings defined at Cluster: Mail; change the mode to "
        "Cluster: Mail to edit them, or override them for Machine: esa2 first. Nothing was changed."
    ) in page(refused)
    assert not workflow.has_uncommitted_changes()

    text = page(
        client.post(reverse("cluster:override_settings"), {"feature": "ssl_config", "next": url}, follow=True)
    )
    assert "The settings are now defined for Machine: esa2." in text
    assert (
        "SSL Configuration: <strong>Machine: esa2</strong> has settings of its own, which override those of Cluster: Mail."
        in text
    )

    client.post(url, {**FORM, "gui_tls_min": "TLSv1.3"})
    assert [gui_minimum(machine) for machine in ("esa1", "esa2", "esa3")] == ["TLSv1.2", "TLSv1.3", "TLSv1.2"]

    changes = page(client.get(reverse("uncommitted_changes")))
    assert "<caption>SSL Configuration (Machine: esa2)</caption>" in changes
    assert "settings for Machine: esa2" in changes

    workflow.commit(admin, "esa2 takes TLS 1.3 only for its console")
    running = workflow.running_config()
    assert registry.for_machine(running, "esa2")["ssl_config"][0]["gui_tls_min"] == "TLSv1.3"
    assert registry.for_machine(running, "esa1")["ssl_config"][0]["gui_tls_min"] == "TLSv1.2"

    # In Cluster mode the page says who overrides it; the cluster's own settings stay editable.
    text = page(change_mode(client, "", url))
    assert "Defined as well, and winning there, for: Machine: esa2." in text
    client.post(url, {**FORM, "outbound_tls_min": "TLSv1.3"})
    assert "<caption>SSL Configuration (Cluster)</caption>" in page(
        client.get(reverse("uncommitted_changes"))
    )
    assert (
        registry.for_machine(registry.candidate(), "esa2")["ssl_config"][0]["outbound_tls_min"] == "TLSv1.2"
    )


def test_a_group_overrides_for_its_machines_and_a_machine_of_its_own_wins(login, admin, cluster):
    client = login(admin)
    url = reverse("ssl_configuration")
    change_mode(client, "group:Main_Group", url)
    client.post(reverse("cluster:override_settings"), {"feature": "ssl_config", "next": url})
    client.post(url, {**FORM, "inbound_tls_min": "TLSv1.3"})
    change_mode(client, "machine:esa1", url)
    text = page(client.get(url))
    assert "currently defined at: <strong>Group: Main_Group</strong>" in text
    client.post(reverse("cluster:override_settings"), {"feature": "ssl_config", "next": url})
    client.post(url, {**FORM, "inbound_tls_min": "TLSv1.3", "gui_tls_min": "TLSv1.3"})
    seen = {
        m: registry.for_machine(registry.candidate(), m)["ssl_config"][0] for m in ("esa1", "esa2", "esa3")
    }
    assert [seen[m]["inbound_tls_min"] for m in ("esa1", "esa2", "esa3")] == ["TLSv1.3", "TLSv1.3", "TLSv1.2"]
    assert [seen[m]["gui_tls_min"] for m in ("esa1", "esa2", "esa3")] == ["TLSv1.3", "TLSv1.2", "TLSv1.2"]

    # Manage Settings > Remove: esa1 falls back to its group's.
    text = page(client.get(url))
    assert "which override those of Group: Main_Group" in text
    text = page(
        client.post(reverse("cluster:remove_settings"), {"feature": "ssl_config", "next": url}, follow=True)
    )
    assert "The settings of Machine: esa1 are removed." in text
    assert "currently defined at: <strong>Group: Main_Group</strong>" in text
    assert gui_minimum("esa1") == "TLSv1.2"


def test_a_machine_overrides_its_certificates_and_adds_one_of_its_own(login, admin, cluster):
    client = login(admin)
    url = reverse("certificates:list")
    change_mode(client, "machine:esa3", url)
    client.post(reverse("cluster:override_settings"), {"feature": "certificates", "next": url})
    response = client.post(
        reverse("certificates:add"),
        {**SELF_SIGNED, "name": "esa3-only", "common_name": "esa3.example.com", "alternative_names": ""},
        follow=True,
    )
    assert response.status_code == 200, page(response)
    names = {
        machine: {
            item["certificate_name"]
            for item in registry.for_machine(registry.candidate(), machine)["certificates"]
        }
        for machine in ("esa1", "esa3")
    }
    assert "esa3-only" in names["esa3"] and "esa3-only" not in names["esa1"]
    assert "esa3-only" in page(client.get(url))
    change_mode(client, "", url)
    assert "esa3-only" not in page(client.get(url))


def test_bad_modes_and_overrides_are_refused_in_words(login, admin, cluster):
    client = login(admin)
    url = reverse("ssl_configuration")
    text = page(change_mode(client, "machine:esa9", url))
    assert "Machine: esa9 is not in the cluster (there are: Cluster: Mail, Group: Lab" in text
    assert "The mode was not changed." in text
    text = page(
        client.post(reverse("cluster:override_settings"), {"feature": "ssl_config", "next": url}, follow=True)
    )
    assert (
        "SSL Configuration: the Cluster level always defines these settings; choose a group or a machine to override them for. Nothing was changed."
        in text
    )
    text = page(
        client.post(reverse("cluster:override_settings"), {"feature": "dns", "next": url}, follow=True)
    )
    assert "There is no feature 'dns' with levels" in text
    change_mode(client, "machine:esa2", url)
    text = page(
        client.post(reverse("cluster:remove_settings"), {"feature": "ssl_config", "next": url}, follow=True)
    )
    assert (
        "SSL Configuration: Machine: esa2 has no settings of its own to remove. Nothing was changed." in text
    )
    assert not workflow.has_uncommitted_changes()


def test_a_read_only_operator_sees_no_override_button(login, read_only, cluster):
    client = login(read_only)
    url = reverse("ssl_configuration")
    change_mode(client, "machine:esa2", url)
    text = page(client.get(url))
    assert "currently defined at" in text and "Override Settings" not in text


def test_the_clusters_settings_without_levels_are_changed_in_cluster_mode_only(login, admin, cluster):
    client = login(admin)
    url = reverse("system_settings")
    assert "These settings are defined at the Cluster level only." in page(client.get(url))
    text = page(change_mode(client, "machine:esa2", url))
    assert "These settings are defined at the Cluster level only (<strong>Cluster: Mail</strong>)" in text
    assert "data-inherited" in text  # the page's forms are greyed out
    refused = client.post(url, {"hostname": "esa2.example.org", "rollback_versions_kept": 10})
    assert (
        "System hostname: these settings are defined at the Cluster level only; change the mode to "
        "Cluster: Mail to edit them. Nothing was changed."
    ) in page(refused)
    assert not workflow.has_uncommitted_changes()


def test_ip_interfaces_are_those_of_the_machine_the_mode_names(login, admin, cluster):
    client = login(admin)
    url = reverse("interfaces")
    text = page(change_mode(client, "machine:esa3", url))
    assert "shown are those of <strong>Machine: esa3</strong>" in text and "127.0.0.4" in text
    assert "127.0.0.3" not in text and "data-inherited" not in text
    form = {
        "intname": "Data",
        "ip": "127.0.0.4",
        "netmask": "32",
        "hostname": "data.esa3.example.com",
        "httpsd_port": "8443",
        "certificate": "Demo",
    }
    client.post(reverse("interface_add"), form)
    added = [
        (item["machine"], item["interface_name"])
        for item in registry.candidate()["interfaces"]
        if item["interface_name"] == "Data"
    ]
    assert added == [("esa3", "Data")]


def test_junk_modes_and_next_addresses_are_refused_in_words(login, admin, cluster):
    client = login(admin)
    for junk in ("junk", "machine:", "group: "):
        response = client.post(reverse("cluster:change_mode"), {"level": junk, "next": "junk"})
        assert response.status_code == 302 and response["Location"] == reverse("overview")
        text = page(client.get(reverse("overview")))
        assert f"{junk.strip()!r} is not a mode: say cluster, group:NAME or machine:NAME" in text
    response = client.post(
        reverse("cluster:change_mode"), {"level": "machine:esa2", "next": "//evil.example/"}
    )
    assert response["Location"] == reverse("overview")


def test_test_server_in_a_machines_mode_tests_that_machines_profile(login, admin, cluster):
    client = login(admin)
    url = reverse("destinations:ldap")
    change_mode(client, "machine:esa2", url)
    client.post(reverse("cluster:override_settings"), {"feature": "ldap", "next": url})
    client.post(
        reverse("destinations:ldap_add"),
        {"name": "Esa2Ldap", "host": "127.0.0.1", "port": "1", "bind_dn": "", "base_dn": ""},
    )
    response = client.post(reverse("destinations:ldap_test", args=["Esa2Ldap"]))
    assert response.status_code == 200
    assert "Test Server: LDAP server profile 'Esa2Ldap' (127.0.0.1 port 1)" in page(response)
