"""Centralized Management's levels from the console: clusterconfig override, removeoverride, setgroup
and list, and --mode on the commands that change a feature (sslconfig here).

Levels need no shared database: the cluster's rows are made directly, and its machines' Management
interfaces and groups committed as any change, so these tests run on SQLite.
"""

from __future__ import annotations

import pytest

from appliance import bootstrap, workflow
from appliance.config import levels
from appliance.config.sections import registry
from appliance.models import AuditEvent, Interface, SslSettings
from cluster import membership
from cluster.models import Cluster, Group, Machine, Override
from tests.console import refused, run

ESA2 = levels.machine("esa2")


@pytest.fixture
def cluster(admin):
    """Cluster Mail: esa1 and esa2 in Main_Group, esa3 in Lab; each with its Management interface."""
    Cluster.objects.create(name="Mail")

    def machines():
        Interface.every_machine.filter(machine="").update(machine="esa1")
        bootstrap.add_management_interface("esa2", "esa2.example.com", "127.0.0.2", 8443)
        bootstrap.add_management_interface("esa3", "esa3.example.com", "127.0.0.3", 8443)
        membership.put_in_group("esa1", "Main_Group")
        membership.put_in_group("esa2", "Main_Group")
        membership.put_in_group("esa3", "Lab")

    workflow.submit(admin, "the machines of cluster Mail", machines)
    workflow.commit(admin)
    for name in ("esa1", "esa2", "esa3"):
        Machine.objects.create(name=name)
    return workflow


def ssl(config, machine: str, setting: str = "gui_tls_min") -> str:
    """The SSL setting ``machine`` runs by ``config``."""
    return registry.for_machine(config, machine)["ssl_config"][0][setting]


def candidate_ssl(machine: str, setting: str = "gui_tls_min") -> str:
    return ssl(registry.candidate(), machine, setting)


def running_ssl(machine: str, setting: str = "gui_tls_min") -> str:
    return ssl(workflow.running_config(), machine, setting)


def nothing_staged() -> bool:
    return workflow.pending_changes() == [] and not workflow.has_uncommitted_changes()


# --- refusals -------------------------------------------------------------------------------------


def test_a_mode_that_is_not_one_is_refused_in_words(cluster):
    assert refused("sslconfig", "set", "gui", "--min", "TLSv1.3", "--mode", "esa2") == (
        "Error: --mode: 'esa2' is not a mode: say cluster, group:NAME or machine:NAME"
    )
    assert refused("clusterconfig", "override", "ssl_config", "--mode", "machine:") == (
        "Error: --mode: 'machine:' is not a mode: say cluster, group:NAME or machine:NAME"
    )
    assert nothing_staged()


def test_an_unknown_machine_or_group_is_refused_naming_what_there_is(cluster):
    there = "(there are: Cluster: Mail, Group: Lab, Group: Main_Group, Machine: esa1, Machine: esa2, Machine: esa3)"
    assert refused("clusterconfig", "override", "ssl_config", "--mode", "machine:esa9") == (
        f"Error: Machine: esa9 is not in the cluster {there}"
    )
    assert refused("sslconfig", "set", "gui", "--min", "TLSv1.3", "--mode", "group:Nope") == (
        f"Error: Group: Nope is not in the cluster {there}"
    )
    assert refused("clusterconfig", "setgroup", "esa9", "Lab") == (
        "Error: There is no machine 'esa9' in cluster 'Mail' (machines: esa1, esa2, esa3)"
    )
    assert refused("clusterconfig", "setgroup", "esa2", "Lab/2") == (
        "Error: Group name: 'Lab/2' is not a valid name (up to 64 letters, digits, spaces and . _ - @, "
        "starting with a letter or digit)"
    )
    assert refused("clusterconfig", "setgroup", "esa2", "Main_Group") == (
        "Error: Machine 'esa2' is in group 'Main_Group' already"
    )
    assert set(registry.features) == {
        "certificates",
        "listeners",
        "destination_controls",
        "ssl_config",
        "ldap",
    }
    assert refused("clusterconfig", "override", "nope", "--mode", "machine:esa2") == (
        f"Error: There is no feature 'nope' with levels (features: {', '.join(registry.features)})"
    )
    assert nothing_staged()


def test_the_cluster_level_cannot_be_overridden_nor_removed(cluster):
    assert refused("clusterconfig", "override", "ssl_config") == (
        "Error: SSL Configuration: the Cluster level always defines these settings; choose a group or a "
        "machine to override them for"
    )
    assert refused("clusterconfig", "removeoverride", "ssl_config", "--mode", "cluster") == (
        "Error: SSL Configuration: the Cluster level's settings cannot be removed; every machine falls back to them"
    )
    assert refused("clusterconfig", "removeoverride", "ssl_config", "--mode", "machine:esa2") == (
        "Error: SSL Configuration: Machine: esa2 has no settings of its own to remove"
    )
    assert nothing_staged()


def test_without_a_cluster_there_are_no_levels(admin):
    assert refused("clusterconfig", "override", "ssl_config", "--mode", "machine:esa2") == (
        "Error: This appliance is not in a cluster: Machine: esa2 does not exist (every setting is the "
        "appliance's own)"
    )
    assert refused("sslconfig", "print", "--mode", "group:Main_Group").startswith(
        "Error: This appliance is not in a cluster: Group: Main_Group does not exist"
    )
    assert refused("clusterconfig", "setgroup", "esa2", "Lab") == (
        "Error: This appliance is not in a cluster: there are no machines to put in groups"
    )
    assert run("clusterconfig", "list") == ("This appliance is not in a cluster.\n", "")
    assert run("sslconfig", "print", "--mode", "cluster")[0].startswith("GUI HTTPS: TLSv1.2 to TLSv1.3")
    assert nothing_staged()


# --- a machine's own settings ---------------------------------------------------------------------


def test_a_machines_override_changes_that_machine_only(cluster):
    out, _ = run("clusterconfig", "override", "ssl_config", "--mode", "machine:esa2")
    assert out == (
        "SSL Configuration: settings for Machine: esa2 staged, copied from Cluster: Mail; change them "
        "with --mode machine:esa2. Use commit to apply it.\n"
    )
    assert list(Override.objects.values_list("section", "level")) == [("ssl_config", ESA2)]
    assert candidate_ssl("esa2") == candidate_ssl("esa1") == "TLSv1.2"  # a copy, so far

    out, _ = run("sslconfig", "set", "gui", "--min", "TLSv1.3", "--mode", "machine:esa2")
    assert out == "SSL configuration of GUI HTTPS staged. Use commit to apply it.\n"
    assert (candidate_ssl("esa1"), candidate_ssl("esa2"), candidate_ssl("esa3")) == (
        "TLSv1.2",
        "TLSv1.3",
        "TLSv1.2",
    )
    assert registry.candidate()["ssl_config"][0]["gui_tls_min"] == "TLSv1.2"  # the cluster's
    assert "GUI HTTPS: TLSv1.3 to TLSv1.3" in run("sslconfig", "print", "--mode", "machine:esa2")[0]
    assert "GUI HTTPS: TLSv1.2 to TLSv1.3" in run("sslconfig", "print")[0]
    assert "GUI HTTPS: TLSv1.2 to TLSv1.3" in run("sslconfig", "print", "--mode", "machine:esa1")[0]

    changes = {change.title: change for change in workflow.pending_changes()}
    assert list(changes) == ["SSL Configuration (Machine: esa2)"]
    defined, changed = changes["SSL Configuration (Machine: esa2)"].objects
    assert (defined.name, defined.action) == ("settings for Machine: esa2", "added")
    assert [(f.label, f.before, f.after) for f in changed.fields] == [
        ("GUI HTTPS: lowest TLS version", "TLSv1.2", "TLSv1.3")  # against what esa2 ran
    ]

    out, _ = run("commit", "--comment", "esa2 on TLS 1.3")
    assert out.startswith("Changes committed: version ")
    commit_line = AuditEvent.objects.filter(action=AuditEvent.Action.COMMIT).latest("pk").detail
    assert "SSL Configuration (Machine: esa2): 2 change(s)" in commit_line
    assert (running_ssl("esa1"), running_ssl("esa2"), running_ssl("esa3")) == (
        "TLSv1.2",
        "TLSv1.3",
        "TLSv1.2",
    )
    assert '<machine_level name="esa2">' in workflow.running_version().xml

    # A change of esa2's own settings, later, is said to be esa2's.
    run("sslconfig", "set", "gui", "--min", "TLSv1.2", "--mode", "machine:esa2")
    [change] = workflow.pending_changes()
    assert change.title == "SSL Configuration (Machine: esa2)"
    assert [(f.label, f.before, f.after) for f in change.objects[0].fields] == [
        ("GUI HTTPS: lowest TLS version", "TLSv1.3", "TLSv1.2")
    ]


def test_a_read_only_operator_sees_the_override_and_nothing_is_stored(cluster, read_only):
    out, _ = run("clusterconfig", "override", "ssl_config", "--mode", "machine:esa2", "--user", "rita")
    lines = out.splitlines()
    assert lines[:2] == [
        "Preview only (Read-Only Operator): nothing was stored.",
        "SSL Configuration (Machine: esa2): settings for Machine: esa2 added",
    ]
    assert not Override.objects.exists()
    assert not SslSettings.every_level.filter(level=ESA2).exists()
    assert nothing_staged()


def test_an_inherited_feature_is_refused_naming_the_level_it_is_defined_at(cluster):
    assert refused("sslconfig", "set", "gui", "--min", "TLSv1.3", "--mode", "machine:esa1") == (
        "Error: SSL Configuration: Machine: esa1 uses the settings defined at Cluster: Mail; change the mode to "
        "Cluster: Mail to edit them, or override them for Machine: esa1 first"
    )
    run("clusterconfig", "override", "ssl_config", "--mode", "group:Main_Group")
    run("commit")
    assert refused("sslconfig", "set", "gui", "--min", "TLSv1.3", "--mode", "machine:esa1") == (
        "Error: SSL Configuration: Machine: esa1 uses the settings defined at Group: Main_Group; change "
        "the mode to Group: Main_Group to edit them, or override them for Machine: esa1 first"
    )
    assert refused("sslconfig", "set", "gui", "--min", "TLSv1.3", "--mode", "group:Lab") == (
        "Error: SSL Configuration: Group: Lab uses the settings defined at Cluster: Mail; change the mode to "
        "Cluster: Mail to edit them, or override them for Group: Lab first"
    )
    assert refused("clusterconfig", "override", "ssl_config", "--mode", "group:Main_Group") == (
        "Error: SSL Configuration: Group: Main_Group already has settings of its own"
    )
    assert nothing_staged()
    assert {running_ssl(name) for name in ("esa1", "esa2", "esa3")} == {"TLSv1.2"}


def test_removeoverride_brings_back_the_clusters_settings(cluster):
    run("clusterconfig", "override", "ssl_config", "--mode", "machine:esa2")
    run("sslconfig", "set", "gui", "--min", "TLSv1.3", "--mode", "machine:esa2")
    run("commit")
    assert running_ssl("esa2") == "TLSv1.3"

    out, _ = run("clusterconfig", "removeoverride", "ssl_config", "--mode", "machine:esa2")
    assert out == (
        "SSL Configuration: settings for Machine: esa2 removed (staged); Machine: esa2 uses those of "
        "Cluster: Mail again. Use commit to apply it.\n"
    )
    assert not Override.objects.exists()
    assert not SslSettings.every_level.filter(level=ESA2).exists()  # no row left at the level
    assert running_ssl("esa2") == "TLSv1.3"  # until the commit
    [change] = workflow.pending_changes()
    assert change.title == "SSL Configuration (Machine: esa2)"
    assert [(o.name, o.action) for o in change.objects] == [
        ("settings for Machine: esa2", "deleted"),
        ("SSL Configuration", "changed"),  # what esa2 then runs differently: the cluster's TLS 1.2
    ]

    run("commit")
    assert running_ssl("esa2") == running_ssl("esa1") == "TLSv1.2"
    assert '<machine_level name="esa2">' not in workflow.running_version().xml
    # esa2 inherits again: changing its settings in its mode is refused, the cluster's change reach it.
    assert refused("sslconfig", "set", "gui", "--min", "TLSv1.3", "--mode", "machine:esa2").startswith(
        "Error: SSL Configuration: Machine: esa2 uses the settings defined at Cluster"
    )
    run("sslconfig", "set", "gui", "--min", "TLSv1.3")
    run("commit")
    assert {running_ssl(name) for name in ("esa1", "esa2", "esa3")} == {"TLSv1.3"}


def test_a_machine_runs_its_own_settings_else_its_groups_else_the_clusters(cluster):
    out, _ = run("clusterconfig", "override", "ssl_config", "--mode", "group:Main_Group")
    assert "copied from Cluster: Mail" in out
    run("sslconfig", "set", "inbound", "--min", "TLSv1.3", "--mode", "group:Main_Group")
    out, _ = run("clusterconfig", "override", "ssl_config", "--mode", "machine:esa2")
    assert out.startswith(
        "SSL Configuration: settings for Machine: esa2 staged, copied from Group: Main_Group;"
    )
    assert candidate_ssl("esa2", "inbound_tls_min") == "TLSv1.3"  # the group's, copied
    run("sslconfig", "set", "inbound", "--min", "TLSv1.0", "--mode", "machine:esa2")
    titles = [change.title for change in workflow.pending_changes()]
    assert titles == ["SSL Configuration (Group: Main_Group)", "SSL Configuration (Machine: esa2)"]
    run("commit")

    running = {name: running_ssl(name, "inbound_tls_min") for name in ("esa1", "esa2", "esa3")}
    assert running == {"esa1": "TLSv1.3", "esa2": "TLSv1.0", "esa3": "TLSv1.2"}
    config = workflow.running_config()
    assert [levels.winning(config, "ssl_config", name) for name in ("esa1", "esa2", "esa3")] == [
        levels.group("Main_Group"),
        ESA2,
        levels.CLUSTER,
    ]

    # A later change of the group's settings reaches esa1, not esa2, which has its own.
    run("sslconfig", "set", "inbound", "--max", "TLSv1.2", "--min", "TLSv1.2", "--mode", "group:Main_Group")
    run("commit")
    assert running_ssl("esa1", "inbound_tls_max") == "TLSv1.2"
    assert running_ssl("esa2", "inbound_tls_max") == running_ssl("esa3", "inbound_tls_max") == "TLSv1.3"

    # Without its own, esa2 takes its group's again, not the cluster's.
    out, _ = run("clusterconfig", "removeoverride", "ssl_config", "--mode", "machine:esa2")
    assert "Machine: esa2 uses those of Group: Main_Group again." in out
    run("commit")
    assert running_ssl("esa2", "inbound_tls_min") == running_ssl("esa1", "inbound_tls_min") == "TLSv1.2"


# --- groups ---------------------------------------------------------------------------------------


def test_setgroup_moves_a_machine_and_what_it_runs_after_the_commit(cluster):
    run("clusterconfig", "override", "ssl_config", "--mode", "group:Main_Group")
    run("sslconfig", "set", "gui", "--min", "TLSv1.3", "--mode", "group:Main_Group")
    run("commit")
    assert (running_ssl("esa1"), running_ssl("esa3")) == ("TLSv1.3", "TLSv1.2")

    out, _ = run("clusterconfig", "setgroup", "esa3", "Main_Group")
    assert out == "Machine 'esa3' in group 'Main_Group' staged. Use commit to apply it.\n"
    assert dict(Group.objects.values_list("name", "machines")) == {
        "Lab": [],
        "Main_Group": ["esa1", "esa2", "esa3"],
    }
    assert running_ssl("esa3") == "TLSv1.2"  # staged: esa3 runs what it ran
    assert candidate_ssl("esa3") == "TLSv1.3"
    [change] = workflow.pending_changes()
    assert change.section.tag == levels.GROUPS
    run("commit")
    assert running_ssl("esa3") == "TLSv1.3"
    assert levels.group_of(workflow.running_config(), "esa3") == "Main_Group"

    # A new group: esa2 leaves Main_Group, and runs the cluster's settings.
    run("clusterconfig", "setgroup", "esa2", "Edge")
    run("commit")
    assert (running_ssl("esa1"), running_ssl("esa2")) == ("TLSv1.3", "TLSv1.2")
    assert levels.group_of(workflow.running_config(), "esa2") == "Edge"


def test_setgroup_by_a_read_only_operator_is_a_preview(cluster, read_only):
    out, _ = run("clusterconfig", "setgroup", "esa3", "Main_Group", "--user", "rita")
    assert out.startswith("Preview only (Read-Only Operator): nothing was stored.\n")
    assert "Cluster Groups" in out
    assert dict(Group.objects.values_list("name", "machines"))["Lab"] == ["esa3"]
    assert nothing_staged()


def test_list_shows_the_groups_and_the_features_defined_below_the_cluster(cluster):
    out, _ = run("clusterconfig", "list")
    assert out.splitlines()[0] == "Cluster Mail"
    assert [line.split("\t")[:2] for line in out.splitlines()[1:4]] == [
        ["esa1", "Main_Group"],
        ["esa2", "Main_Group"],
        ["esa3", "Lab"],
    ]
    assert out.splitlines()[4:] == [
        "Groups:",
        "  Lab: esa3",
        "  Main_Group: esa1, esa2",
        "Every feature is defined at the Cluster level.",
    ]

    run("clusterconfig", "override", "ssl_config", "--mode", "machine:esa2")
    run("clusterconfig", "override", "ldap", "--mode", "group:Lab")  # two sections, one feature
    run("commit")
    run("clusterconfig", "override", "certificates", "--mode", "machine:esa1")
    run("clusterconfig", "setgroup", "esa1", "Lab")
    out, _ = run("clusterconfig", "list")
    assert out.splitlines()[4:] == [
        "Groups:",
        "  Lab: esa3, esa1 (uncommitted)",
        "  Main_Group: esa2 (uncommitted)",
        "Defined below the Cluster level:",
        "  Certificates: Machine: esa1 (uncommitted)",
        "  LDAP: Group: Lab",
        "  SSL Configuration: Machine: esa2",
    ]
    # The machines' lines give the group each runs: the committed one.
    assert out.splitlines()[1].split("\t")[:2] == ["esa1", "Main_Group"]


def test_a_commit_in_a_machines_mode_records_the_clusters_settings_as_they_are(cluster):
    run("clusterconfig", "override", "ssl_config", "--mode", "machine:esa2")
    run("sslconfig", "set", "gui", "--min", "TLSv1.3", "--mode", "machine:esa2")
    run("commit", "--mode", "machine:esa2")
    assert running_ssl("esa2") == "TLSv1.3"
    assert running_ssl("esa1") == "TLSv1.2"


def test_clear_in_a_machines_mode_abandons_the_clusters_changes_too(cluster):
    run("clusterconfig", "override", "ssl_config", "--mode", "machine:esa2")
    run("sslconfig", "set", "gui", "--min", "TLSv1.3", "--mode", "machine:esa2")
    run("commit")
    run("sslconfig", "set", "gui", "--min", "TLSv1.1")
    run("clear", "--mode", "machine:esa2")
    assert workflow.pending_changes() == []
    assert candidate_ssl("esa1") == "TLSv1.2"


def test_a_preview_in_a_machines_mode_lists_that_machines_change_only(cluster, read_only):
    run("clusterconfig", "override", "ssl_config", "--mode", "machine:esa2")
    run("commit")
    out, _ = run("sslconfig", "set", "gui", "--min", "TLSv1.3", "--mode", "machine:esa2", "--user", "rita")
    assert out.splitlines() == [
        "Preview only (Read-Only Operator): nothing was stored.",
        "SSL Configuration (Machine: esa2): SSL Configuration changed",
        "  GUI HTTPS: lowest TLS version: TLSv1.2 -> TLSv1.3",
    ]


def test_interfaceconfig_in_a_machines_mode_shows_and_changes_that_machines_interfaces(cluster):
    listed, _ = run("interfaceconfig", "list", "--mode", "machine:esa3")
    assert "127.0.0.3" in listed and "127.0.0.2" not in listed
    run("interfaceconfig", "edit", "Management", "--hostname", "mx3.example.com", "--mode", "machine:esa3")
    hostnames = {
        item["machine"]: item["interface_hostname"]
        for item in registry.candidate()["interfaces"]
        if item["interface_name"] == "Management"
    }
    assert hostnames["esa3"] == "mx3.example.com" and hostnames["esa2"] == "esa2.example.com"


def test_the_hostname_is_the_clusters_alone_from_the_console_too(cluster):
    # As System Settings refuses it on the page: the hostname has no levels.
    assert refused("sethostname", "esa9.example.com", "--mode", ESA2) == (
        "Error: System hostname: these settings are defined at the Cluster level only; change the mode to "
        "Cluster: Mail to edit them"
    )
    assert nothing_staged()
