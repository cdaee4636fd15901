"""clusterconfig and System Administration > Cluster Management, in process. Creating and joining need
the database the machines share: those tests run in make test's PostgreSQL pass; on SQLite the refusal
is what is tested."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from appliance import bootstrap, vault, workflow
from appliance.config.sections import registry
from appliance.config.xmlfile import SecretMode, parse, render
from appliance.models import Interface
from cluster import membership
from cluster.models import Cluster, Machine
from tests.console import refused, run


@pytest.fixture
def shared_database(appliance):
    if connection.vendor != "postgresql":
        pytest.skip("Centralized Management needs PostgreSQL: make test's second pass runs this")


def test_on_sqlite_a_cluster_is_refused_and_nothing_changes(admin):
    if connection.vendor == "postgresql":
        pytest.skip("the refusal is SQLite's")
    line = refused("clusterconfig", "create", "Mail", "--machine", "esa1")
    assert line.startswith(
        "Error: Centralized Management needs a database the machines share: set APPLIANCE_DATABASE_URL"
    )
    assert not Cluster.objects.exists() and not Machine.objects.exists()
    assert run("clusterconfig", "list")[0] == "This appliance is not in a cluster.\n"


def test_create_gives_this_configurations_interfaces_to_the_machine(shared_database, admin, settings):
    version = workflow.running_number()
    out, _ = run("clusterconfig", "create", "Mail", "--machine", "esa1")
    assert out.startswith("Cluster 'Mail' created; machine 'esa1' joined.")
    assert workflow.running_number() == version + 1
    assert list(Interface.every_machine.values_list("machine", "name")) == [("esa1", "Management")]
    assert workflow.machine_config()["interfaces"] == []  # this process is not esa1
    settings.MACHINE_NAME = "esa1"
    assert [i["interface_name"] for i in workflow.machine_config()["interfaces"]] == ["Management"]
    assert '<interface machine="esa1">' in workflow.running_version().xml
    assert refused("clusterconfig", "create", "Other", "--machine", "esa9") == (
        "Error: This database already holds cluster 'Mail'"
    )


def test_join_adds_the_machines_own_management_interface(shared_database, admin, settings):
    run("clusterconfig", "create", "Mail", "--machine", "esa1")
    out, _ = run(
        "clusterconfig", "join", "--machine", "esa2", "--address", "127.0.0.3", "--https-port", "8443"
    )
    assert out.startswith("Machine 'esa2' joined (Management interface 127.0.0.3, HTTPS port 8443).")
    running = workflow.running_config()
    assert sorted((i["machine"], i["interface_name"], i["ip"]) for i in running["interfaces"]) == [
        ("esa1", "Management", "127.0.0.1"),
        ("esa2", "Management", "127.0.0.3"),
    ]
    settings.MACHINE_NAME = "esa2"
    assert [i["ip"] for i in workflow.machine_config()["interfaces"]] == ["127.0.0.3"]
    assert refused("clusterconfig", "join", "--machine", "esa2", "--address", "127.0.0.4") == (
        "Error: Machine 'esa2' is already in cluster 'Mail'"
    )
    assert refused("clusterconfig", "join", "--machine", "esa3", "--address", "not-an-address").startswith(
        "Error: "
    )
    assert not Machine.objects.filter(name="esa3").exists()


def test_joining_refuses_over_uncommitted_changes(shared_database, admin):
    run("clusterconfig", "create", "Mail", "--machine", "esa1")
    run("sethostname", "other.example.com")
    assert refused("clusterconfig", "join", "--machine", "esa2", "--address", "127.0.0.3") == (
        "Error: Joining commits the configuration: commit or abandon the uncommitted changes first"
    )
    assert not Machine.objects.filter(name="esa2").exists()


def test_a_port_two_services_share_on_one_machine_names_the_machine(shared_database, admin, settings):
    run("clusterconfig", "create", "Mail", "--machine", "esa1")
    run("clusterconfig", "join", "--machine", "esa2", "--address", "127.0.0.3", "--https-port", "9443")
    settings.MACHINE_NAME = "esa2"  # esa2's console: its own interfaces
    line = refused(
        "interfaceconfig",
        "new",
        "Data",
        "--ip",
        "127.0.0.3",
        "--hostname",
        "esa2.example.com",
        "--https",
        "9443",
    )
    assert line == (
        "Error: The port is in use: machine 'esa2': HTTPS of interface 'Data' and HTTPS of interface "
        "'Management' both use 127.0.0.3 port 9443"
    )
    # esa1 may use that port on its own address, and a name esa2 uses.
    settings.MACHINE_NAME = "esa1"
    run(
        "interfaceconfig",
        "new",
        "Data",
        "--ip",
        "127.0.0.1",
        "--hostname",
        "esa.example.com",
        "--https",
        "9443",
        "--certificate",
        "Demo",
    )
    assert workflow.validate(registry.candidate()) == []


def test_the_page_shows_each_machines_version_and_report(login, admin):
    Cluster.objects.create(name="Mail")

    def esa4_in_lab():
        bootstrap.add_management_interface("esa4", "esa4.example.com", "127.0.0.9", 443)
        membership.put_in_group("esa4", "Lab")

    workflow.submit(admin, "esa4 in Lab", esa4_in_lab)
    workflow.commit(admin)
    running = workflow.running_number()
    now = timezone.now()
    Machine.objects.create(name="esa1", applied_version=running, checked_in=now, running=True)
    Machine.objects.create(name="esa2", applied_version=running - 1, checked_in=now, running=True)
    Machine.objects.create(
        name="esa3", applied_version=running, checked_in=now - timedelta(minutes=5), running=True
    )
    Machine.objects.create(name="esa5", applied_version=running, checked_in=now - timedelta(minutes=5))
    Machine.objects.create(name="esa4")
    page = login(admin).get(reverse("cluster:machines")).content.decode()
    rows = {
        name: status
        for name, status in [(state.machine.name, state.status) for state in membership.machine_states()]
    }
    assert rows == {
        "esa1": "current",
        "esa2": "applying",
        "esa3": "not reporting",
        "esa4": "never started",
        "esa5": "stopped",
    }
    for name, status in rows.items():
        assert f"<td>{name}</td>" in page and f"<td>{status}</td>" in page
    assert "<td>Lab</td>" in page


def test_the_page_without_a_cluster_says_how_to_make_one(login, admin):
    page = login(admin).get(reverse("cluster:machines")).content.decode()
    assert "This appliance is not in a cluster." in page and "clusterconfig create" in page


def test_a_stopped_machine_leaves_with_what_it_ran_in_a_file(shared_database, admin, tmp_path):
    run("clusterconfig", "create", "Mail", "--machine", "esa1")
    run("clusterconfig", "join", "--machine", "esa2", "--address", "127.0.0.3")
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("Leave-It-Safe-7\n")
    saved = tmp_path / "esa2.xml"
    leave = ("clusterconfig", "leave", "--machine", "esa2", "--file", str(saved))
    leave += ("--passphrases", "encrypt", "--passphrase-file", str(passphrase))
    Machine.objects.filter(name="esa2").update(checked_in=timezone.now(), running=True)
    assert refused(*leave).startswith("Error: Machine 'esa2' is running (it reported at ")
    assert not saved.exists()

    Machine.objects.filter(name="esa2").update(running=False)  # as its supervisor says when it stops
    out, _ = run(*leave)
    assert out.startswith(f"Machine 'esa2' left the cluster. What it ran is in {saved}")
    assert list(Machine.objects.values_list("name", flat=True)) == ["esa1"]
    assert [(i["machine"], i["ip"]) for i in workflow.running_config()["interfaces"]] == [
        ("esa1", "127.0.0.1")
    ]
    assert saved.stat().st_mode & 0o777 == 0o600
    text = saved.read_text(encoding="latin-1")
    assert "machine=" not in text and "BEGIN PRIVATE KEY" not in text  # an appliance's own; keys encrypted
    document = parse(saved.read_bytes(), SecretMode.PLAIN, "Leave-It-Safe-7")
    assert [(i["machine"], i["interface_name"], i["ip"]) for i in document.config["interfaces"]] == [
        ("", "Management", "127.0.0.3")
    ]
    demo = registry.item_named(document.config, "certificates", "Demo")
    assert "PRIVATE KEY" in vault.unseal(demo["private_key"])  # read with the passphrase, sealed again


def test_the_last_machine_to_leave_gives_the_configuration_back_to_an_appliance_of_its_own(
    shared_database, admin, tmp_path
):
    run("clusterconfig", "create", "Mail", "--machine", "esa1")
    run(
        "clusterconfig",
        "leave",
        "--machine",
        "esa1",
        "--file",
        str(tmp_path / "esa1.xml"),
        "--passphrases",
        "mask",
    )
    assert not Cluster.objects.exists() and not Machine.objects.exists()
    assert [i["interface_name"] for i in workflow.machine_config()["interfaces"]] == ["Management"]
    assert refused("clusterconfig", "leave", "--machine", "esa1", "--passphrases", "mask") == (
        "Error: Machine 'esa1' is not in a cluster"
    )


def test_join_preview_lists_what_the_cluster_would_change_and_changes_nothing(
    shared_database, admin, tmp_path
):
    run("clusterconfig", "create", "Mail", "--machine", "esa1")
    # The joining machine's own configuration, as its saveconfig wrote it: another host name, its own
    # interface on 127.0.0.5.
    own = registry.on_its_own(workflow.running_config(), "esa1")
    own["hostname"] = [{"hostname": "esa4.example.com"}]
    management = {**own["interfaces"][0], "ip": "127.0.0.5", "interface_hostname": "esa4.example.com"}
    own["interfaces"] = [management, {**management, "interface_name": "Data", "httpsd_port": 9443}]
    saved = tmp_path / "esa4.xml"
    saved.write_text(render(own, SecretMode.PLAIN), encoding="latin-1")
    version = workflow.running_number()

    out, _ = run(
        "clusterconfig",
        "join",
        "--machine",
        "esa4",
        "--address",
        "127.0.0.5",
        "--hostname",
        "esa4.example.com",
        "--preview",
        str(saved),
    )
    assert out.splitlines() == [
        "Joining would change on esa4:",
        "System hostname: System hostname changed",
        "  Hostname: esa4.example.com -> esa.example.com",
        "IP Interfaces: interface 'Data' deleted",
        "Nothing was changed: join without --preview to join.",
    ]
    assert workflow.running_number() == version and not Machine.objects.filter(name="esa4").exists()

    missing = tmp_path / "missing.xml"
    assert refused("clusterconfig", "join", "--machine", "esa4", "--preview", str(missing)) == (
        f'Error: the file "{missing}" does not exist'
    )
    broken = tmp_path / "broken.xml"
    broken.write_text("<config><hostname>", encoding="latin-1")
    assert refused("clusterconfig", "join", "--machine", "esa4", "--preview", str(broken)).startswith(
        "Error: Parsing failed: "
    )


def test_every_page_of_a_machine_of_a_cluster_names_the_machine(login, admin, settings):
    assert "Machine: " not in login(admin).get(reverse("interfaces")).content.decode()
    settings.MACHINE_NAME = "esa2"
    page = login(admin).get(reverse("interfaces")).content.decode()
    assert "Machine: esa2</span>" in page
