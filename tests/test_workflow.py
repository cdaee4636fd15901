"""Submit, commit, abandon, rollback as service functions, and the change lock between users."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from appliance import workflow
from appliance.config.levels import CLUSTER
from appliance.config.xmlfile import SecretMode, parse
from appliance.models import AuditEvent, ConfigVersion, SystemSettings


def set_hostname(name):
    def apply():
        system = SystemSettings.load()
        system.hostname = name
        system.save()

    return apply


def running_hostname():
    return workflow.running_config()["hostname"][0]["hostname"]


def test_first_start_commits_version_one_with_demo_and_management(appliance):
    version = ConfigVersion.objects.get()
    assert version.number == 1
    config = parse(version.xml.encode("latin-1"), SecretMode.SEALED).config
    assert config["hostname"] == [{"hostname": "esa.example.com"}]
    [interface] = config["interfaces"]
    assert (interface["interface_name"], interface["ip"], interface["httpsd_port"]) == (
        "Management",
        "127.0.0.1",
        8443,
    )
    assert interface["certificate_name"] == "Demo"
    assert [c["certificate_name"] for c in config["certificates"]] == ["Demo"]
    assert not workflow.has_uncommitted_changes()


def test_submit_stages_without_changing_the_running_configuration(admin):
    workflow.submit(admin, "hostname", set_hostname("mail.example.org"))
    assert running_hostname() == "esa.example.com"
    assert workflow.has_uncommitted_changes()
    [change] = workflow.pending_changes()
    assert change.title == "System hostname"
    [field] = change.objects[0].fields
    assert (field.before, field.after) == ("esa.example.com", "mail.example.org")


def test_commit_records_a_version_and_releases_the_lock(admin):
    workflow.submit(admin, "hostname", set_hostname("mail.example.org"))
    version = workflow.commit(admin, "new name")
    assert (version.number, version.user_name, version.comment) == (2, "admin", "new name")
    assert running_hostname() == "mail.example.org"
    assert not workflow.has_uncommitted_changes()
    assert AuditEvent.objects.filter(action="commit", detail__contains='version 2 "new name"').exists()


def test_commit_with_nothing_pending_returns_none(admin):
    assert workflow.commit(admin) is None
    assert ConfigVersion.objects.count() == 1


def test_abandon_restores_the_running_configuration(admin):
    workflow.submit(admin, "hostname", set_hostname("mail.example.org"))
    assert workflow.abandon(admin)
    assert SystemSettings.load().hostname == "esa.example.com"
    assert not workflow.has_uncommitted_changes()


def test_second_user_is_refused_while_first_has_changes(admin, second_admin):
    workflow.submit(admin, "hostname", set_hostname("a.example.org"))
    with pytest.raises(workflow.ChangeRefused, match=r"^admin has uncommitted changes since \d\d:\d\d$"):
        workflow.submit(second_admin, "hostname", set_hostname("b.example.org"))
    assert SystemSettings.load().hostname == "a.example.org"
    with pytest.raises(workflow.ChangeRefused, match="only they can commit"):
        workflow.commit(second_admin)


def test_operator_cannot_abandon_someone_elses_changes_but_administrator_can(admin, operator, second_admin):
    workflow.submit(operator, "hostname", set_hostname("a.example.org"))
    with pytest.raises(workflow.ChangeRefused):
        workflow.abandon(admin.__class__.objects.create(username="op2", role="operator"))
    assert workflow.abandon(second_admin)
    assert AuditEvent.objects.filter(
        action="abandon", user_name="bob", detail__contains="changes of olivia"
    ).exists()


def test_read_only_submit_is_a_preview_that_stores_nothing(read_only):
    result = workflow.submit(read_only, "hostname", set_hostname("ro.example.org"))
    assert isinstance(result, workflow.Preview)
    assert result.changes[0].objects[0].fields[0].after == "ro.example.org"
    assert SystemSettings.load().hostname == "esa.example.com"
    assert not workflow.has_uncommitted_changes()
    with pytest.raises(PermissionDenied):
        workflow.commit(read_only)


def test_guest_changes_nothing(guest):
    with pytest.raises(PermissionDenied):
        workflow.submit(guest, "hostname", set_hostname("g.example.org"))
    assert SystemSettings.load().hostname == "esa.example.com"


def test_rollback_stages_an_old_version_and_commit_applies_it(admin):
    workflow.submit(admin, "hostname", set_hostname("two.example.org"))
    workflow.commit(admin, "two")
    workflow.rollback_to(admin, 1)
    assert SystemSettings.load().hostname == "esa.example.com"
    assert running_hostname() == "two.example.org"
    version = workflow.commit(admin, "back to one")
    assert version.number == 3
    assert running_hostname() == "esa.example.com"


def test_rollback_to_a_version_not_kept_is_refused(admin):
    with pytest.raises(workflow.ChangeRefused, match=r"Version 7 is not kept on this appliance \(kept: 1\)"):
        workflow.rollback_to(admin, 7)


def test_only_the_configured_number_of_versions_is_kept_and_numbers_are_never_reused(admin):
    def keep_two():
        system = SystemSettings.load()
        system.rollback_versions_kept = 2
        system.save()

    workflow.submit(admin, "keep two", keep_two)
    workflow.commit(admin)
    for name in ("a", "b", "c"):
        workflow.submit(admin, "hostname", set_hostname(f"{name}.example.org"))
        workflow.commit(admin)
    assert list(ConfigVersion.objects.values_list("number", flat=True)) == [5, 4]


def test_commit_refuses_a_dangling_certificate_reference_and_changes_nothing(admin):
    from certificates.models import Certificate

    workflow.submit(
        admin, "delete Demo", lambda: Certificate.objects.at(CLUSTER).filter(name="Demo").delete()
    )
    with pytest.raises(workflow.ChangeRefused) as refusal:
        workflow.commit(admin)
    assert refusal.value.problems == [
        "interface 'Management' uses certificate 'Demo', which does not exist",
        "listener 'IncomingMail' uses certificate 'Demo', which does not exist",
    ]
    assert ConfigVersion.objects.count() == 1
    assert workflow.has_uncommitted_changes()


def test_commit_warns_about_the_demo_certificate(admin):
    workflow.submit(admin, "hostname", set_hostname("two.example.org"))
    version = workflow.commit(admin)
    [warning] = workflow.commit_warnings(version)
    assert "demonstration certificate (Demo)" in warning
    assert "interface 'Management'" in warning


def test_commit_announces_the_new_version_to_the_services(admin, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        workflow.submit(admin, "hostname", set_hostname("two.example.org"))
        workflow.commit(admin)
    assert workflow.announced_version() == 2


def test_a_submit_that_changes_nothing_leaves_no_changes_pending(admin):
    workflow.submit(admin, "same hostname", set_hostname("esa.example.com"))
    assert not workflow.has_uncommitted_changes()
    workflow.submit(admin, "hostname", set_hostname("two.example.org"))
    workflow.submit(admin, "hostname back", set_hostname("esa.example.com"))
    assert not workflow.has_uncommitted_changes()


def test_rolling_back_to_the_running_version_stages_nothing(admin):
    workflow.rollback_to(admin, 1)
    assert not workflow.has_uncommitted_changes()


def test_announcing_one_version_twice_at_once_is_safe(tmp_path):
    # The commit's worker and the supervisor (told by NOTIFY) announce a new version at the same moment.
    from concurrent.futures import ThreadPoolExecutor

    target = tmp_path / "version-4.xml"
    contents = [f"<config>{n}</config>".encode() for n in range(8)]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(50):
            list(pool.map(lambda data: workflow._replace_atomically(target, data), contents))
    assert target.read_bytes() in contents
    assert [p.name for p in tmp_path.iterdir()] == ["version-4.xml"]  # no temporary file left
    assert target.stat().st_mode & 0o777 == 0o600
