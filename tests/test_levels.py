"""Centralized Management's levels below the console and the pages: the file, the registry's view of a
machine, the diff, the candidate's group and machine definitions, editing in a mode, the commit checks,
load, abandon and rollback.

A cluster of four machines is made from rows (``cluster.models``) and a committed candidate, as
``clusterconfig create`` and ``join`` would leave it: esa1 and esa2 in Main_Group, esa3 in Lab, esa4
in no group. The PostgreSQL pass (``APPLIANCE_TEST_DATABASE=postgres``) runs the same tests.
"""

from __future__ import annotations

import pytest
from lxml import etree

from appliance import bootstrap, vault, workflow
from appliance.config import candidate_levels, levels
from appliance.config.diff import diff
from appliance.config.sections import registry
from appliance.config.xmlfile import ConfigFileError, SecretMode, parse, render, without_header
from appliance.models import Interface, SslSettings, SystemSettings
from appliance.scoped import ScopeNotNamed
from certificates import downloads, pki
from certificates import store as certificate_store
from certificates.models import Certificate
from cluster import membership, overrides
from cluster.models import Cluster, Group, Machine, Override
from destinations.models import LdapServer
from listeners.models import Listener

DECLARATION = '<?xml version="1.0" encoding="ISO-8859-1"?>'
ESA2 = levels.machine("esa2")
MAIN = levels.group("Main_Group")
BIND_SECRET = "Bind-Secret-of-esa2-9"
SSL_FIELDS = [
    f"{service}_{name}"
    for service in ("gui", "inbound", "outbound")
    for name in ("tls_min", "tls_max", "ciphers")
]


def xml(*lines: str) -> bytes:
    """A document: line 1 the declaration, line 2 <config>, then ``lines`` from line 3."""
    return ("\n".join([DECLARATION, "<config>", *lines, "</config>"]) + "\n").encode("latin-1")


def ssl_element(tls_min: str = "TLSv1.2") -> list[str]:
    """An <ssl_config> of four lines (defaults for everything but the console's lowest version)."""
    return [
        "<ssl_config>",
        f"<gui_tls_min>{tls_min}</gui_tls_min>",
        "<gui_tls_max>TLSv1.3</gui_tls_max>",
        "</ssl_config>",
    ]


def refusal(data: bytes, mode: SecretMode = SecretMode.PLAIN) -> list[str]:
    with pytest.raises(ConfigFileError) as refused:
        parse(data, mode)
    return refused.value.problems


# --- a cluster ---------------------------------------------------------------------


@pytest.fixture
def cluster(admin):
    """Cluster 'Mail' of esa1 … esa4, committed; esa1 has the appliance's Management interface."""
    Cluster.objects.create(name="Mail")
    for name in ("esa1", "esa2", "esa3", "esa4"):
        Machine.objects.create(name=name)

    def machines():
        Interface.every_machine.filter(machine="").update(machine="esa1")
        for number, name in ((3, "esa2"), (4, "esa3"), (5, "esa4")):
            bootstrap.add_management_interface(name, f"{name}.example.com", f"127.0.0.{number}", 8443)
        membership.put_in_group("esa1", "Main_Group")
        membership.put_in_group("esa2", "Main_Group")
        membership.put_in_group("esa3", "Lab")

    workflow.submit(admin, "four machines", machines)
    workflow.commit(admin, "cluster")
    return admin


def change(user, level: str, apply, description: str = "change"):
    """Submit ``apply(mode)`` in the mode of ``level``, as a page or a console command with --mode does."""
    mode = candidate_levels.mode_for(level)
    return workflow.submit(user, description, lambda: apply(mode), mode=mode)


def ssl_set(**values):
    def apply(mode):
        row = SslSettings.load(mode.seen("ssl_config"))
        for name, value in values.items():
            setattr(row, name, value)
        row.save()

    return apply


def create_certificate(name: str, subject: pki.Subject):
    return lambda mode: certificate_store.create_self_signed(
        mode.seen("certificates"), name, subject, 30, [], "ec256"
    )


def gui_tls_min(config, key: str = "ssl_config") -> str:
    return config[key][0]["gui_tls_min"]


def add_ldap_server(mode):
    LdapServer.objects.at(mode.seen("ldap_servers")).create(
        name="Corp",
        host="ldap.example.com",
        bind_dn="cn=esa2,dc=example,dc=com",
        bind_password_sealed=vault.seal(BIND_SECRET),
        base_dn="dc=example,dc=com",
    )


@pytest.fixture
def levelled(cluster):
    """Committed: SSL Configuration for Main_Group (console TLS 1.3 at least) and for esa2 (TLS 1.1 at
    least); LDAP for esa2 with a server profile whose bind password is a secret; Certificates for esa2."""
    overrides.override(cluster, "ssl_config", MAIN)
    change(cluster, MAIN, ssl_set(gui_tls_min="TLSv1.3"))
    overrides.override(cluster, "ssl_config", ESA2)
    change(cluster, ESA2, ssl_set(gui_tls_min="TLSv1.1"))
    overrides.override(cluster, "ldap", ESA2)
    change(cluster, ESA2, add_ldap_server)
    overrides.override(cluster, "certificates", ESA2)
    workflow.commit(cluster, "levels")
    return cluster


# --- the file: render and parse ---------------------------------------------------------


def test_sealed_round_trip_keeps_every_level(levelled):
    config = workflow.running_config()
    assert diff(config, registry.candidate()) == []
    assert {key for key in config if "@" in key} == {
        "ssl_config@group:Main_Group",
        "ssl_config@machine:esa2",
        "ldap@machine:esa2",
        "ldap_servers@machine:esa2",
        "certificates@machine:esa2",
    }
    document = render(config, SecretMode.SEALED)
    assert parse(document.encode("latin-1"), SecretMode.SEALED).config == config
    assert BIND_SECRET not in document and "PRIVATE KEY" not in document


def test_the_file_holds_one_container_per_level_with_its_sections(levelled):
    document = render(registry.candidate(), SecretMode.PLAIN)
    root = etree.fromstring(document.encode("latin-1"))
    containers = [
        (c.tag, c.get("name"), [s.tag for s in c]) for c in root if c.tag in ("group_level", "machine_level")
    ]
    assert containers == [
        ("group_level", "Main_Group", ["ssl_config"]),
        ("machine_level", "esa2", ["certificates", "ldap", "ldap_servers", "ssl_config"]),
    ]
    assert root.findtext("machine_level/ldap_servers/ldap_server/bind_password") == BIND_SECRET
    assert root.findtext("machine_level/ssl_config/gui_tls_min") == "TLSv1.1"
    assert root.findtext("group_level/ssl_config/gui_tls_min") == "TLSv1.3"
    assert root.findtext("ssl_config/gui_tls_min") == "TLSv1.2"
    assert [g.findtext("group_name") for g in root.find("cluster_groups")] == ["Lab", "Main_Group"]


def test_plain_round_trip_unseals_and_seals_again_the_secrets_of_an_override(levelled):
    config = registry.candidate()
    document = render(config, SecretMode.PLAIN)
    assert BIND_SECRET in document
    parsed = parse(document.encode("latin-1"), SecretMode.PLAIN).config
    [server] = parsed["ldap_servers@machine:esa2"]
    assert server["bind_password"] != BIND_SECRET and vault.unseal(server["bind_password"]) == BIND_SECRET
    [demo] = parsed["certificates@machine:esa2"]
    assert (
        vault.unseal(demo["private_key"])
        == vault.unseal(config["certificates@machine:esa2"][0]["private_key"]).strip()
    )
    assert set(parsed) == set(config)
    assert diff(config, parsed) == []  # sealing is randomised; what the tokens hold is the same


def test_encrypted_round_trip_of_an_override(levelled):
    config = registry.candidate()
    document = render(config, SecretMode.ENCRYPT, "Files-Pass-7")
    assert BIND_SECRET not in document
    parsed = parse(document.encode("latin-1"), SecretMode.ENCRYPT, "Files-Pass-7").config
    assert vault.unseal(parsed["ldap_servers@machine:esa2"][0]["bind_password"]) == BIND_SECRET
    assert diff(config, parsed) == []


def test_save_load_save_is_stable_with_levels(levelled):
    first = render(registry.candidate(), SecretMode.PLAIN)
    again = render(parse(first.encode("latin-1"), SecretMode.PLAIN).config, SecretMode.PLAIN)
    assert without_header(again) == without_header(first)
    sealed = workflow.running_version().xml
    assert without_header(render(workflow.running_config(), SecretMode.SEALED)) == without_header(sealed)


def test_without_groups_the_file_has_no_cluster_groups_and_a_sealed_version_reads_none(admin):
    document = render(registry.candidate(), SecretMode.SEALED)
    assert "cluster_groups" not in document and "_level" not in document
    assert parse(document.encode("latin-1"), SecretMode.SEALED).config[levels.GROUPS] == []
    plain = render(registry.candidate(), SecretMode.PLAIN)
    assert levels.GROUPS not in parse(plain.encode("latin-1"), SecretMode.PLAIN).config


def test_parse_reads_a_hand_written_machine_level(admin):
    data = xml("<ssl_config/>", '<machine_level name="esa2">', *ssl_element("TLSv1.3"), "</machine_level>")
    document = parse(data)
    [item] = document.config["ssl_config@machine:esa2"]
    assert item["gui_tls_min"] == "TLSv1.3" and item["inbound_tls_min"] == "TLSv1.2"
    assert document.line("ssl_config@machine:esa2", 0, "gui_tls_min") == 6


# --- the file: refusals ----------------------------------------------------------------

NOT_A_NAME = (
    "is not a valid name (up to 64 letters, digits, spaces and . _ - @, starting with a letter or digit)"
)


def test_a_cluster_level_section_inside_a_machine_level_is_refused(admin):
    data = xml('<machine_level name="esa2">', "<hostname>esa2.example.com</hostname>", "</machine_level>")
    assert refusal(data) == [
        "line 4: <hostname> is defined at the Cluster level only, not for a group or a machine"
    ]
    data = xml('<group_level name="Lab">', "<cluster_groups/>", "</group_level>")
    assert refusal(data) == [
        "line 4: <cluster_groups> is defined at the Cluster level only, not for a group or a machine"
    ]


def test_the_same_section_twice_at_one_level_is_refused(admin):
    data = xml('<machine_level name="esa2">', *ssl_element(), *ssl_element(), "</machine_level>")
    assert refusal(data) == ["line 8: <ssl_config> appears twice: each section may appear once at a level"]


def test_the_same_section_at_the_cluster_and_at_two_levels_is_fine(admin):
    data = xml(
        *ssl_element(),
        '<group_level name="Lab">',
        *ssl_element("TLSv1.3"),
        "</group_level>",
        '<machine_level name="esa2">',
        *ssl_element("TLSv1.1"),
        "</machine_level>",
    )
    config = parse(data).config
    assert [
        gui_tls_min(config, key) for key in ("ssl_config", "ssl_config@group:Lab", "ssl_config@machine:esa2")
    ] == [
        "TLSv1.2",
        "TLSv1.3",
        "TLSv1.1",
    ]


def test_the_same_level_container_twice_is_refused(admin):
    data = xml(
        '<machine_level name="esa2">',
        *ssl_element(),
        "</machine_level>",
        '<machine_level name="esa2">',
        "<ldap><certificate_name>Demo</certificate_name></ldap>",
        "</machine_level>",
    )
    assert refusal(data) == ["line 9: <machine_level> appears twice for Machine: esa2"]
    data = xml('<group_level name="Lab">', *ssl_element(), "</group_level>", '<group_level name="Lab"/>')
    assert refusal(data) == ["line 9: <group_level> appears twice for Group: Lab"]


def test_the_same_level_container_twice_is_refused_even_when_the_first_is_empty(admin):
    data = xml(
        '<machine_level name="esa2"/>', '<machine_level name="esa2">', *ssl_element(), "</machine_level>"
    )
    assert refusal(data) == ["line 4: <machine_level> appears twice for Machine: esa2"]


def test_a_machine_and_a_group_of_the_same_name_are_two_levels(admin):
    data = xml(
        "<ssl_config/>",
        '<group_level name="esa2">', *ssl_element("TLSv1.3"), "</group_level>",
        '<machine_level name="esa2">', *ssl_element(), "</machine_level>",
    )  # fmt: skip
    assert set(parse(data).config) == {"ssl_config", "ssl_config@group:esa2", "ssl_config@machine:esa2"}


def test_a_level_container_without_a_valid_name_is_refused(admin):
    assert refusal(xml("<machine_level>", *ssl_element(), "</machine_level>")) == [
        f"line 3: <machine_level> needs the name of a machine: the name '' {NOT_A_NAME}"
    ]
    assert refusal(xml('<group_level name="">', "</group_level>")) == [
        f"line 3: <group_level> needs the name of a group: the name '' {NOT_A_NAME}"
    ]
    assert refusal(
        xml("<ssl_config/>", '<machine_level name="-esa2/">', *ssl_element(), "</machine_level>")
    ) == [f"line 4: <machine_level> needs the name of a machine: the name '-esa2/' {NOT_A_NAME}"]


def test_a_level_container_with_an_unknown_attribute_is_refused(admin):
    data = xml('<machine_level name="esa2" group="Lab">', *ssl_element(), "</machine_level>")
    assert refusal(data) == ["line 3: <machine_level> has no attribute 'group'"]


def test_problems_inside_a_level_are_reported_with_their_lines(admin):
    data = xml(
        '<machine_level name="esa2">',
        "<ssl_config>",
        "<gui_tls_min>TLSv9</gui_tls_min>",
        "</ssl_config>",
        '<group_level name="Lab"/>',
        "</machine_level>",
    )
    assert refusal(data) == [
        "line 5: <gui_tls_min> must be one of TLSv1.0, TLSv1.1, TLSv1.2, TLSv1.3, not 'TLSv9'",
        "line 7: <group_level> is not a configuration section of this appliance",
    ]


# --- what a machine runs ----------------------------------------------------------------


def test_the_machine_beats_its_group_which_beats_the_cluster(levelled):
    running = workflow.running_config()
    ran = {
        name: gui_tls_min(registry.for_machine(running, name)) for name in ("esa1", "esa2", "esa3", "esa4")
    }
    assert ran == {
        "esa1": "TLSv1.3",  # Main_Group's
        "esa2": "TLSv1.1",  # its own
        "esa3": "TLSv1.2",  # Lab defines nothing: the cluster's
        "esa4": "TLSv1.2",  # in no group: the cluster's
    }
    assert levels.winning(running, "ssl_config", "esa1") == MAIN
    assert levels.winning(running, "ssl_config", "esa4") == levels.CLUSTER
    assert levels.precedence(running, "esa2") == [ESA2, MAIN, levels.CLUSTER]
    assert levels.precedence(running, "esa4") == ["machine:esa4", levels.CLUSTER]
    assert levels.group_of(running, "esa3") == "Lab" and levels.group_of(running, "esa4") is None


def test_a_machine_sees_only_its_own_interfaces_and_every_feature_resolved(levelled):
    running = workflow.running_config()
    seen = registry.for_machine(running, "esa2")
    assert not [key for key in seen if "@" in key]
    assert [(i["machine"], i["ip"]) for i in seen["interfaces"]] == [("esa2", "127.0.0.3")]
    assert [s["ldap_server_name"] for s in seen["ldap_servers"]] == ["Corp"]
    assert registry.for_machine(running, "esa1")["ldap_servers"] == running["ldap_servers"] == []
    assert seen["certificates"] == running["certificates@machine:esa2"]


def test_on_its_own_is_what_the_machine_ran_without_levels_or_groups(levelled):
    running = workflow.running_config()
    own = registry.on_its_own(running, "esa2")
    assert not [key for key in own if "@" in key]
    assert own[levels.GROUPS] == []
    assert gui_tls_min(own) == "TLSv1.1"
    assert [(i["machine"], i["ip"]) for i in own["interfaces"]] == [("", "127.0.0.3")]
    assert vault.unseal(own["ldap_servers"][0]["bind_password"]) == BIND_SECRET
    assert gui_tls_min(registry.on_its_own(running, "esa1")) == "TLSv1.3"
    # As a file of an appliance of its own: no level containers, no groups.
    document = render(own, SecretMode.PLAIN)
    assert "_level" not in document and "cluster_groups" not in document and "machine=" not in document


def test_machines_are_those_with_interfaces_or_in_a_group(levelled):
    running = workflow.running_config()
    assert registry.machines(running) == ["esa1", "esa2", "esa3", "esa4"]
    assert registry.machines({**running, levels.GROUPS: [{"group_name": "New", "machine": ["esa9"]}]}) == [
        "esa1",
        "esa2",
        "esa3",
        "esa4",
        "esa9",
    ]


# --- the diff -----------------------------------------------------------------------------


def test_an_override_added_shows_what_the_level_runs_differently(cluster):
    before = workflow.running_config()
    overrides.override(cluster, "ssl_config", ESA2)
    [section_change] = workflow.pending_changes()
    assert (section_change.level, section_change.title) == (ESA2, "SSL Configuration (Machine: esa2)")
    [added] = section_change.objects  # a copy of what it inherits: nothing runs differently yet
    assert (added.action, added.name, added.fields) == ("added", "settings for Machine: esa2", [])
    change(cluster, ESA2, ssl_set(gui_tls_min="TLSv1.3"))
    [section_change] = workflow.pending_changes()
    added, changed = section_change.objects
    assert (added.action, added.name) == ("added", "settings for Machine: esa2")
    assert [(f.label, f.before, f.after) for f in changed.fields] == [
        ("GUI HTTPS: lowest TLS version", "TLSv1.2", "TLSv1.3")
    ]
    assert diff(before, registry.candidate()) == workflow.pending_changes()


def test_a_list_override_added_lists_its_items(cluster):
    overrides.override(cluster, "certificates", ESA2)
    [section_change] = workflow.pending_changes()
    assert section_change.title == "Certificates (Machine: esa2)"
    assert [(o.action, o.name) for o in section_change.objects] == [("added", "settings for Machine: esa2")]


def test_a_change_within_an_override_names_its_level(levelled):
    change(levelled, ESA2, ssl_set(gui_tls_min="TLSv1.0"))
    [section_change] = workflow.pending_changes()
    assert (section_change.level, section_change.title) == (ESA2, "SSL Configuration (Machine: esa2)")
    [changed] = section_change.objects
    assert (changed.action, changed.name) == ("changed", "SSL Configuration")
    assert [(f.before, f.after) for f in changed.fields] == [("TLSv1.1", "TLSv1.0")]


def test_a_change_at_the_cluster_level_of_a_cluster_names_the_cluster(levelled):
    change(levelled, levels.CLUSTER, ssl_set(gui_tls_min="TLSv1.1"))
    workflow.submit(levelled, "hostname", lambda: SystemSettings.objects.update(hostname="mail.example.com"))
    assert [(c.level, c.title) for c in workflow.pending_changes()] == [
        (levels.CLUSTER, "System hostname"),  # no levels: no level named
        (levels.CLUSTER, "SSL Configuration (Cluster)"),
    ]


def test_on_an_appliance_of_its_own_no_level_is_named(admin):
    change(admin, levels.CLUSTER, ssl_set(gui_tls_min="TLSv1.1"))
    assert [(c.level, c.title) for c in workflow.pending_changes()] == [(levels.CLUSTER, "SSL Configuration")]


def test_an_override_removed_is_deleted(levelled):
    overrides.remove(levelled, "ssl_config", ESA2)
    [section_change] = workflow.pending_changes()
    assert section_change.title == "SSL Configuration (Machine: esa2)"
    # What esa2 then runs differently follows: its group's settings in place of its own.
    deleted, changed = section_change.objects
    assert (deleted.action, deleted.name, deleted.fields) == ("deleted", "settings for Machine: esa2", [])
    assert changed.action == "changed" and changed.fields
    overrides.remove(levelled, "ldap", ESA2)
    assert [(c.title, [(o.action, o.name) for o in c.objects][0]) for c in workflow.pending_changes()] == [
        ("LDAP Global Settings (Machine: esa2)", ("deleted", "settings for Machine: esa2")),
        ("LDAP Server Profiles (Machine: esa2)", ("deleted", "settings for Machine: esa2")),
        ("SSL Configuration (Machine: esa2)", ("deleted", "settings for Machine: esa2")),
    ]


# --- the candidate's levels ---------------------------------------------------------------


def test_an_override_is_in_the_candidate_then_in_the_running_configuration(cluster):
    overrides.override(cluster, "ssl_config", ESA2)
    candidate = registry.candidate()
    assert candidate["ssl_config@machine:esa2"] == candidate["ssl_config"]  # copied from the cluster
    assert "ssl_config@machine:esa2" not in workflow.running_config()
    assert list(Override.objects.values_list("section", "level")) == [("ssl_config", ESA2)]
    change(cluster, ESA2, ssl_set(gui_tls_min="TLSv1.3"))
    version = workflow.commit(cluster, "esa2's own")
    running = workflow.running_config()
    assert gui_tls_min(running, "ssl_config@machine:esa2") == "TLSv1.3"
    assert gui_tls_min(running) == "TLSv1.2"
    assert gui_tls_min(registry.for_machine(running, "esa2")) == "TLSv1.3"
    assert gui_tls_min(registry.for_machine(running, "esa1")) == "TLSv1.2"
    assert '<machine_level name="esa2">' in version.xml


def test_overriding_twice_or_at_the_cluster_or_an_unknown_level_is_refused(cluster):
    overrides.override(cluster, "ssl_config", ESA2)
    with pytest.raises(
        workflow.ChangeRefused, match="^SSL Configuration: Machine: esa2 already has settings of its own$"
    ):
        overrides.override(cluster, "ssl_config", ESA2)
    with pytest.raises(
        workflow.ChangeRefused, match="^SSL Configuration: the Cluster level always defines these settings"
    ):
        overrides.override(cluster, "ssl_config", levels.CLUSTER)
    with pytest.raises(workflow.ChangeRefused, match=r"^Machine: esa9 is not in the cluster \(there are: "):
        overrides.override(cluster, "ssl_config", "machine:esa9")
    with pytest.raises(
        workflow.ChangeRefused, match="^SSL Configuration: Group: Lab has no settings of its own to remove$"
    ):
        overrides.remove(cluster, "ssl_config", levels.group("Lab"))


def test_a_machine_override_copies_its_groups_settings(levelled):
    overrides.override(levelled, "ssl_config", "machine:esa1")
    assert gui_tls_min(registry.candidate(), "ssl_config@machine:esa1") == "TLSv1.3"  # Main_Group's


def test_removing_an_override_gives_the_machine_the_level_above_again(levelled):
    overrides.remove(levelled, "ssl_config", ESA2)
    assert not SslSettings.every_level.filter(level=ESA2).exists()
    workflow.commit(levelled)
    assert gui_tls_min(registry.for_machine(workflow.running_config(), "esa2")) == "TLSv1.3"  # Main_Group's


# --- editing in a mode ---------------------------------------------------------------------


def test_a_machine_mode_reads_the_inherited_settings_until_it_has_its_own(cluster):
    cluster_row = SslSettings.load(levels.CLUSTER)
    mode = candidate_levels.mode_for(ESA2)
    assert mode.seen("ssl_config") == levels.CLUSTER
    assert SslSettings.load(mode.seen("ssl_config")).pk == cluster_row.pk
    overrides.override(cluster, "ssl_config", ESA2)
    mode = candidate_levels.mode_for(ESA2)
    own = SslSettings.load(mode.seen("ssl_config"))
    assert (own.pk != cluster_row.pk, own.level) == (True, ESA2)
    assert mode.seen("certificates") == levels.CLUSTER
    assert SslSettings.load(levels.CLUSTER).pk == cluster_row.pk  # the cluster's mode
    assert SslSettings.every_level.count() == 2


def test_a_query_that_names_no_level_is_refused(cluster):
    with pytest.raises(ScopeNotNamed, match=r"^SslSettings.objects reads the rows of one level: say which"):
        list(SslSettings.objects.all())
    with pytest.raises(ScopeNotNamed, match=r"^Interface.objects reads the rows of one machine"):
        Interface.objects.filter(name="Management").exists()


def test_rows_made_at_a_level_are_of_that_level(cluster):
    subject = pki.Subject(common_name="esa2.example.com")
    certificate_store.create_self_signed(ESA2, "Esa2", subject, 30, [], "ec256")
    add_ldap_server(candidate_levels.mode_for(ESA2))
    assert Certificate.every_level.get(name="Esa2").level == ESA2
    assert LdapServer.every_level.get(name="Corp").level == levels.CLUSTER  # the mode sees the cluster's


def test_a_machine_mode_reads_its_groups_settings(levelled):
    mode = candidate_levels.mode_for("machine:esa1")
    assert mode.seen("ssl_config") == MAIN
    assert SslSettings.load(mode.seen("ssl_config")).gui_tls_min == "TLSv1.3"


def test_changing_inherited_settings_in_a_machine_mode_is_refused(cluster):
    with pytest.raises(workflow.ChangeRefused) as refused:
        change(cluster, ESA2, ssl_set(gui_tls_min="TLSv1.3"))
    assert str(refused.value) == (
        "SSL Configuration: Machine: esa2 uses the settings defined at Cluster: Mail; change the mode to Cluster: Mail "
        "to edit them, or override them for Machine: esa2 first"
    )
    assert SslSettings.load(levels.CLUSTER).gui_tls_min == "TLSv1.2"
    assert not workflow.has_uncommitted_changes()


def test_changing_a_groups_settings_in_a_machine_mode_is_refused_naming_the_group(levelled):
    with pytest.raises(
        workflow.ChangeRefused, match="Machine: esa1 uses the settings defined at Group: Main_Group"
    ):
        change(levelled, "machine:esa1", ssl_set(gui_tls_min="TLSv1.0"))
    assert SslSettings.load(MAIN).gui_tls_min == "TLSv1.3"


def test_a_certificate_created_in_a_machine_mode_with_its_own_certificates_is_the_machines_only(cluster):
    overrides.override(cluster, "certificates", ESA2)
    subject = pki.Subject(common_name="esa2.example.com")
    change(cluster, ESA2, create_certificate("Esa2", subject))
    assert list(Certificate.every_level.filter(name="Esa2").values_list("level", flat=True)) == [ESA2]
    candidate = registry.candidate()
    assert [c["certificate_name"] for c in candidate["certificates"]] == ["Demo"]
    assert [c["certificate_name"] for c in candidate["certificates@machine:esa2"]] == ["Demo", "Esa2"]
    assert [(c.title, [(o.action, o.name) for o in c.objects]) for c in workflow.pending_changes()] == [
        (
            "Certificates (Machine: esa2)",
            [("added", "settings for Machine: esa2"), ("added", "certificate 'Esa2'")],
        )
    ]
    workflow.commit(cluster)
    running = workflow.running_config()
    assert [c["certificate_name"] for c in registry.for_machine(running, "esa2")["certificates"]] == [
        "Demo",
        "Esa2",
    ]
    assert [c["certificate_name"] for c in registry.for_machine(running, "esa3")["certificates"]] == ["Demo"]
    # The same name is free at another level, and a mode that inherits the certificates cannot add one.
    change(cluster, levels.CLUSTER, create_certificate("Esa2", subject), "cluster's")
    assert Certificate.every_level.filter(name="Esa2").count() == 2
    with pytest.raises(
        workflow.ChangeRefused, match="^Certificates: Machine: esa3 uses the settings defined at Cluster"
    ):
        change(cluster, "machine:esa3", create_certificate("Esa3", subject))
    assert not Certificate.every_level.filter(name="Esa3").exists()


# --- the commit's checks ----------------------------------------------------------------------


def test_settings_for_a_machine_not_in_the_cluster_are_refused(cluster):
    items = registry.candidate()["ssl_config"]
    workflow.submit(
        cluster, "esa9's", lambda: registry.level_store.define("ssl_config", "machine:esa9", items)
    )
    workflow.submit(cluster, "Gone's", lambda: registry.level_store.define("ssl_config", "group:Gone", items))
    number = workflow.running_number()
    with pytest.raises(workflow.ChangeRefused) as refused:
        workflow.commit(cluster)
    assert refused.value.problems == [
        "SSL Configuration is defined for Group: Gone, which is not in the cluster",
        "SSL Configuration is defined for Machine: esa9, which is not in the cluster",
    ]
    assert workflow.running_number() == number and workflow.has_uncommitted_changes()


def test_a_machine_in_two_groups_is_refused(cluster):
    workflow.submit(
        cluster, "esa2 in Lab too", lambda: Group.objects.filter(name="Lab").update(machines=["esa3", "esa2"])
    )
    with pytest.raises(workflow.ChangeRefused) as refused:
        workflow.commit(cluster)
    assert refused.value.problems == ["machine 'esa2' is in more than one group (Lab, Main_Group)"]


def use_certificate(name: str):
    return lambda mode: (
        Listener.objects.at(mode.seen("listeners")).filter(name="IncomingMail").update(certificate_name=name)
    )


def test_a_listener_override_may_name_a_certificate_of_the_cluster(cluster):
    subject = pki.Subject(common_name="esa2.example.com")
    change(cluster, levels.CLUSTER, create_certificate("Shared", subject), "Shared")
    overrides.override(cluster, "listeners", ESA2)
    change(cluster, ESA2, use_certificate("Shared"))
    assert workflow.validate(registry.candidate()) == []
    assert workflow.commit(cluster) is not None
    running = workflow.running_config()
    assert registry.for_machine(running, "esa2")["listeners"][0]["certificate_name"] == "Shared"
    assert registry.for_machine(running, "esa1")["listeners"][0]["certificate_name"] == "Demo"


def test_a_listener_override_naming_a_certificate_nowhere_is_refused_naming_the_machine(cluster):
    overrides.override(cluster, "listeners", ESA2)
    change(cluster, ESA2, use_certificate("Nowhere"))
    number = workflow.running_number()
    with pytest.raises(workflow.ChangeRefused) as refused:
        workflow.commit(cluster)
    assert refused.value.problems == [
        "machine 'esa2': listener 'IncomingMail' uses certificate 'Nowhere', which does not exist"
    ]
    assert workflow.running_number() == number


def test_a_listener_override_naming_a_certificate_of_another_machine_is_refused(cluster):
    overrides.override(cluster, "certificates", ESA2)
    subject = pki.Subject(common_name="esa2.example.com")
    change(cluster, ESA2, create_certificate("Esa2", subject))
    overrides.override(cluster, "listeners", MAIN)
    change(cluster, MAIN, use_certificate("Esa2"))  # esa2 has it; esa1, in Main_Group too, has not
    with pytest.raises(workflow.ChangeRefused) as refused:
        workflow.commit(cluster)
    assert refused.value.problems == [
        "machine 'esa1': listener 'IncomingMail' uses certificate 'Esa2', which does not exist"
    ]


def test_a_certificate_removed_from_a_machines_own_certificates_is_refused_where_it_is_used(cluster):
    overrides.override(cluster, "certificates", ESA2)
    change(
        cluster,
        ESA2,
        lambda mode: Certificate.objects.at(mode.seen("certificates")).filter(name="Demo").delete(),
    )
    with pytest.raises(workflow.ChangeRefused) as refused:
        workflow.commit(cluster)
    assert refused.value.problems == [
        "machine 'esa2': interface 'Management' of machine 'esa2' uses certificate 'Demo', which does not exist",
        "machine 'esa2': listener 'IncomingMail' uses certificate 'Demo', which does not exist",
    ]


# --- load, abandon, rollback ------------------------------------------------------------------


def file_of(config, *tags: str) -> bytes:
    return render({tag: config[tag] for tag in tags}, SecretMode.PLAIN).encode("latin-1")


def defined():
    return sorted(Override.objects.values_list("section", "level"))


def test_a_file_without_levels_removes_the_overrides_of_the_sections_it_holds(levelled):
    candidate = registry.candidate()
    data = file_of(candidate, "ssl_config", "certificates")
    assert b"_level" not in data
    workflow.load_document(levelled, parse(data, SecretMode.PLAIN), "load")
    assert defined() == [("ldap", ESA2), ("ldap_servers", ESA2)]
    assert not SslSettings.every_level.exclude(level="").exists()
    assert not Certificate.every_level.exclude(level="").exists()
    after = registry.candidate()
    assert {key for key in after if "@" in key} == {"ldap@machine:esa2", "ldap_servers@machine:esa2"}
    assert after["ldap_servers@machine:esa2"] == candidate["ldap_servers@machine:esa2"]
    assert gui_tls_min(after) == "TLSv1.2"
    workflow.commit(levelled)
    assert gui_tls_min(registry.for_machine(workflow.running_config(), "esa2")) == "TLSv1.2"


def test_a_file_with_levels_replaces_the_overrides_of_the_sections_it_holds(levelled):
    data = xml(*ssl_element(), '<group_level name="Lab">', *ssl_element("TLSv1.3"), "</group_level>")
    workflow.load_document(levelled, parse(data, SecretMode.PLAIN), "load")
    assert [level for section, level in defined() if section == "ssl_config"] == ["group:Lab"]
    assert gui_tls_min(registry.for_machine(registry.candidate(), "esa3")) == "TLSv1.3"
    assert gui_tls_min(registry.for_machine(registry.candidate(), "esa2")) == "TLSv1.2"


def test_a_file_holding_a_section_only_at_a_machines_level_is_refused(cluster):
    # Loading replaces a section at every level: without the cluster's, there is nothing to replace.
    data = xml('<machine_level name="esa2">', *ssl_element("TLSv1.3"), "</machine_level>")
    assert refusal(data) == [
        "line 4: <ssl_config> is defined for Machine: esa2 but not at the top of the file: a file "
        "holding a section holds the cluster's settings of it too"
    ]


def test_abandon_restores_the_overrides(levelled):
    running = workflow.running_config()
    overrides.remove(levelled, "ssl_config", ESA2)
    overrides.override(levelled, "listeners", "machine:esa3")
    change(levelled, MAIN, ssl_set(gui_tls_min="TLSv1.2"))
    assert workflow.has_uncommitted_changes()
    workflow.abandon(levelled)
    assert registry.candidate() == running
    assert defined() == [
        ("certificates", ESA2),
        ("ldap", ESA2),
        ("ldap_servers", ESA2),
        ("ssl_config", MAIN),
        ("ssl_config", ESA2),
    ]
    assert not Listener.every_level.exclude(level="").exists()
    assert not workflow.has_uncommitted_changes()


def test_rollback_restores_the_earlier_overrides(cluster):
    overrides.override(cluster, "ssl_config", ESA2)
    change(cluster, ESA2, ssl_set(gui_tls_min="TLSv1.3"))
    with_override = workflow.commit(cluster, "esa2's").number
    overrides.remove(cluster, "ssl_config", ESA2)
    overrides.override(cluster, "ssl_config", MAIN)
    without = workflow.commit(cluster, "Main_Group's").number
    assert defined() == [("ssl_config", MAIN)]

    workflow.rollback_to(cluster, with_override)
    assert defined() == [("ssl_config", ESA2)]
    assert gui_tls_min(registry.candidate(), "ssl_config@machine:esa2") == "TLSv1.3"
    workflow.commit(cluster, "back")
    assert gui_tls_min(registry.for_machine(workflow.running_config(), "esa2")) == "TLSv1.3"

    workflow.rollback_to(cluster, without)
    assert defined() == [("ssl_config", MAIN)]
    assert not SslSettings.every_level.filter(level=ESA2).exists()
    workflow.rollback_to(cluster, with_override - 1)  # before any override
    assert defined() == [] and SslSettings.every_level.count() == 1


# --- the mode of the request or command around the workflow --------------------------------------
# Pages and console commands pass the administrator's mode to the steps that change settings; the
# whole candidate, commit, abandon and rollback take none: every level is read and written as it is.


def test_the_candidate_read_in_a_machines_mode_is_the_same(levelled):
    change(levelled, ESA2, ssl_set(gui_tls_min="TLSv1.0"))
    outside = registry.candidate()
    candidate_levels.mode_for(ESA2)
    assert registry.candidate() == outside


def test_a_commit_in_a_machines_mode_keeps_the_clusters_settings(levelled):
    change(levelled, ESA2, ssl_set(gui_tls_min="TLSv1.0"))
    workflow.commit(levelled)
    running = workflow.running_config()
    assert gui_tls_min(running) == "TLSv1.2"
    assert gui_tls_min(running, "ssl_config@machine:esa2") == "TLSv1.0"


def test_abandon_in_a_machines_mode_restores_the_clusters_settings(levelled):
    change(levelled, levels.CLUSTER, ssl_set(gui_tls_min="TLSv1.3"), "cluster's")
    workflow.abandon(levelled)
    assert SslSettings.load(levels.CLUSTER).gui_tls_min == "TLSv1.2"
    assert SslSettings.load(ESA2).gui_tls_min == "TLSv1.1"


def test_abandon_asks_before_destroying_a_machines_key_whose_request_was_downloaded(cluster):
    overrides.override(cluster, "certificates", ESA2)
    subject = pki.Subject(common_name="esa2.example.com")
    change(cluster, ESA2, create_certificate("Esa2", subject))
    downloads.record(Certificate.every_level.get(name="Esa2", level=ESA2), cluster)
    with pytest.raises(workflow.ConfirmationNeeded) as asked:
        workflow.abandon(cluster)
    assert "The signing request of 'Esa2' was downloaded by admin" in asked.value.problems[0]
    assert Certificate.every_level.filter(name="Esa2", level=ESA2).exists()
    workflow.abandon(cluster, confirmed=True)
    assert not Certificate.every_level.filter(name="Esa2").exists()


# --- found in review ----------------------------------------------------------------------


def esa2_certificate(user, name: str = "Esa2Only"):
    """esa2 defines its Certificates, with ``name`` of its own."""
    overrides.override(user, "certificates", ESA2)
    subject = pki.Subject(common_name="esa2.example.com")
    change(user, ESA2, create_certificate(name, subject))


def test_a_machines_interface_may_use_a_certificate_of_its_own_level(cluster):
    esa2_certificate(cluster)

    def interface_certificate(mode):
        Interface.every_machine.filter(machine="esa2").update(certificate_name="Esa2Only")

    change(cluster, ESA2, interface_certificate)
    workflow.commit(cluster, "esa2's console on its own certificate")
    [interface] = registry.for_machine(workflow.running_config(), "esa2")["interfaces"]
    assert interface["certificate_name"] == "Esa2Only"


def test_a_committed_machine_certificate_counts_as_committed(cluster):
    esa2_certificate(cluster)
    entry = Certificate.every_level.get(name="Esa2Only", level=ESA2)
    assert not downloads.is_committed(entry)
    workflow.commit(cluster, "esa2's certificate")
    assert downloads.is_committed(entry)


def test_an_address_list_a_machines_listener_uses_cannot_be_deleted(cluster):
    from listeners import address_lists

    workflow.submit(cluster, "list", lambda: address_lists.create("Strict", ["partner.example"]))
    overrides.override(cluster, "listeners", ESA2)

    def use_it(mode):
        listeners = Listener.objects.at(mode.seen("listeners"))
        listeners.filter(name="IncomingMail").update(default_tls_mandatory_address_list="Strict")

    change(cluster, ESA2, use_it)
    with pytest.raises(address_lists.AddressListRefused) as refused:
        workflow.submit(cluster, "delete", lambda: address_lists.delete("Strict"))
    assert "of Machine: esa2" in str(refused.value) and "listener 'IncomingMail'" in str(refused.value)


def test_loading_certificates_checks_them_against_what_every_level_then_holds(cluster):
    esa2_certificate(cluster)
    overrides.override(cluster, "listeners", ESA2)
    change(
        cluster,
        ESA2,
        lambda mode: Listener.objects.at(mode.seen("listeners")).update(certificate_name="Esa2Only"),
    )
    workflow.commit(cluster, "esa2's listener on its own certificate")
    # A file of the cluster's certificates alone replaces esa2's too: its listener's would be gone.
    document = parse(
        render({"certificates": workflow.running_config()["certificates"]}, SecretMode.PLAIN).encode(
            "latin-1"
        )
    )
    with pytest.raises(workflow.ChangeRefused) as refused:
        workflow.load_document(cluster, document, "cluster's certificates")
    assert "machine 'esa2': listener 'IncomingMail' uses certificate 'Esa2Only'" in " ".join(
        refused.value.problems
    )


def test_rollback_and_load_in_a_machines_mode_change_every_level(levelled):
    first = workflow.running_number()
    change(levelled, ESA2, ssl_set(gui_tls_min="TLSv1.3"))
    workflow.commit(levelled, "esa2 on TLS 1.3")
    workflow.rollback_to(levelled, first)
    assert gui_tls_min(registry.candidate(), "ssl_config@machine:esa2") == "TLSv1.1"
    workflow.commit(levelled, "back")
    saved = render(workflow.running_config(), SecretMode.PLAIN).encode("latin-1")
    workflow.load_document(levelled, parse(saved), "the same file")
    assert not workflow.pending_changes()


def test_a_feature_given_only_some_of_its_sections_at_a_level_is_completed_by_override(cluster):
    running = render(workflow.running_config(), SecretMode.PLAIN)
    with_esa2 = running.replace("</config>", '<machine_level name="esa2"><ldap/></machine_level></config>')
    workflow.load_document(cluster, parse(with_esa2.encode("latin-1")), "esa2's LDAP Global Settings alone")
    assert ("ldap", ESA2) in registry.level_store.defined()
    assert ("ldap_servers", ESA2) not in registry.level_store.defined()
    overrides.override(cluster, "ldap", ESA2)  # completes it: the server profiles are copied
    assert ("ldap_servers", ESA2) in registry.level_store.defined()
    with pytest.raises(workflow.ChangeRefused, match="already has settings of its own"):
        overrides.override(cluster, "ldap", ESA2)
