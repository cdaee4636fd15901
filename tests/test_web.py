"""The console over Django's test client: login, roles, the Commit Changes workflow, pages."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from appliance import workflow
from appliance.models import AuditEvent, ConfigVersion, SystemSettings, User
from tests.conftest import PASSWORD, HTTPSClient

CONFIG_PAGES = ["interfaces", "system_settings", "rollback", "uncommitted_changes", "certificates:list"]


def test_plain_http_is_redirected_to_https(client, appliance):
    response = client.get("/login/")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/login/"


def test_pages_need_login(https_client, appliance):
    response = https_client.get(reverse("overview"))
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/")


def test_login_shows_hostname_menus_and_is_audited(https_client, appliance):
    response = https_client.post(reverse("login"), {"username": "admin", "password": PASSWORD}, follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert "esa.example.com" in page
    for menu in ("Monitor", "Mail Policies", "Security Services", "Network", "System Administration"):
        assert menu in page
    assert "No Changes Pending" in page
    assert AuditEvent.objects.filter(action="login", user_name="admin").exists()


def test_wrong_password_is_refused_and_audited(https_client, appliance):
    response = https_client.post(reverse("login"), {"username": "admin", "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert AuditEvent.objects.filter(action="login_failed", user_name="admin").count() == 1


def test_login_is_rate_limited(https_client, appliance, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    for _ in range(3):
        https_client.post(reverse("login"), {"username": "admin", "password": "wrong"})
    # Even the right password is refused once the limit is reached.
    response = https_client.post(reverse("login"), {"username": "admin", "password": PASSWORD})
    assert response.status_code == 429
    assert "Too many failed login attempts" in response.content.decode()
    assert "_auth_user_id" not in https_client.session


def attempt(client, password, address, username="admin"):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)


def lockouts() -> list[tuple[str, str, str]]:
    rows = AuditEvent.objects.filter(action="login_lockout").order_by("id")
    return list(rows.values_list("user_name", "detail", "source"))


def test_a_lockout_is_audited_and_refused_attempts_do_not_extend_it(https_client, appliance, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    for _ in range(10):
        attempt(https_client, "wrong", "192.0.2.66")
    assert AuditEvent.objects.filter(action="login_failed").count() == 3  # the rest never got checked
    assert lockouts() == [
        ("admin", "locked out for 15 minutes: 3 failed logins for admin from this address", "GUI 192.0.2.66"),
        *[
            (
                "admin",
                "refused while locked out: 3 failed logins for admin from this address",
                "GUI 192.0.2.66",
            )
        ]
        * 7,
    ]
    # The failures leave the window; the refusals since, however many, do not hold the lockout.
    old = timezone.now() - timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS + 1)
    AuditEvent.objects.filter(action="login_failed").update(time=old)
    assert attempt(https_client, PASSWORD, "192.0.2.66").status_code == 302


def test_a_flood_from_one_address_never_keeps_out_the_right_password_from_another(
    https_client, appliance, settings
):
    settings.LOGIN_FAILURE_LIMIT = 3
    for number in range(50):
        attempt(https_client, "wrong", "192.0.2.66", username=f"user{number % 20}")
    assert attempt(https_client, "wrong", "192.0.2.66", username="someone").status_code == 429
    assert lockouts()[-1][1] == "refused while locked out: 12 failed logins from this address"
    assert attempt(HTTPSClient(), PASSWORD, "192.0.2.10").status_code == 302


def test_an_account_guessed_from_many_addresses_is_locked_for_those_only(https_client, appliance, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    for number in range(12):
        attempt(https_client, "wrong", f"192.0.2.{100 + number}")
    response = attempt(https_client, PASSWORD, "192.0.2.100")
    assert response.status_code == 429
    assert lockouts()[-1][1] == "refused while locked out: 12 failed logins for admin from all addresses"
    assert attempt(HTTPSClient(), PASSWORD, "192.0.2.10").status_code == 302


def test_post_without_csrf_token_is_refused(appliance, admin):
    strict = HTTPSClient(enforce_csrf_checks=True)
    strict.force_login(admin)
    response = strict.post(
        reverse("system_settings"), {"hostname": "x.example.org", "rollback_versions_kept": 10}
    )
    assert response.status_code == 403
    assert SystemSettings.load().hostname == "esa.example.com"


def test_submit_commit_through_the_pages(login, admin):
    client = login(admin)
    response = client.post(
        reverse("system_settings"),
        {"hostname": "mail.example.org", "rollback_versions_kept": 10},
        follow=True,
    )
    page = response.content.decode()
    assert "Your changes have been submitted" in page
    assert 'id="commit-changes"' in page  # the yellow button
    assert "esa.example.com" in page  # the running hostname stays at the top until commit

    changes = client.get(reverse("uncommitted_changes")).content.decode()
    assert "System hostname" in changes and "mail.example.org" in changes

    response = client.post(reverse("uncommitted_changes"), {"comment": "rename"}, follow=True)
    page = response.content.decode()
    assert "Your changes have been committed (version 2)" in page
    assert "demonstration certificate" in page  # the ESA's warning while Demo is in use
    assert ConfigVersion.objects.get(number=2).comment == "rename"
    assert "No Changes Pending" in page


def test_abandon_through_the_pages(login, admin):
    client = login(admin)
    client.post(reverse("system_settings"), {"hostname": "mail.example.org", "rollback_versions_kept": 10})
    response = client.post(reverse("abandon_changes"), follow=True)
    assert "Your changes have been abandoned." in response.content.decode()
    assert SystemSettings.load().hostname == "esa.example.com"


def test_bad_input_names_the_problem_and_changes_nothing(login, admin):
    client = login(admin)
    response = client.post(reverse("system_settings"), {"hostname": "bad_name!", "rollback_versions_kept": 0})
    page = response.content.decode()
    assert response.status_code == 400
    assert "is not a valid host name" in page
    assert "Ensure this value is greater than or equal to 1" in page
    assert not workflow.has_uncommitted_changes()


def test_second_administrator_is_refused_while_first_has_changes(admin, second_admin):
    first, second = HTTPSClient(), HTTPSClient()
    first.force_login(admin)
    second.force_login(second_admin)
    first.post(reverse("system_settings"), {"hostname": "a.example.org", "rollback_versions_kept": 10})
    response = second.post(
        reverse("system_settings"), {"hostname": "b.example.org", "rollback_versions_kept": 10}
    )
    assert response.status_code == 409
    assert "admin has uncommitted changes since" in response.content.decode()
    assert SystemSettings.load().hostname == "a.example.org"
    # B sees A's diff, and A's changes outlive A's logout.
    assert "a.example.org" in second.get(reverse("uncommitted_changes")).content.decode()
    response = first.post(reverse("logout"), follow=True)
    assert "You logged out with uncommitted changes" in response.content.decode()
    assert workflow.has_uncommitted_changes()
    # An Administrator may abandon them explicitly; it is audited.
    second.post(reverse("abandon_changes"))
    assert not workflow.has_uncommitted_changes()
    assert AuditEvent.objects.filter(action="abandon", user_name="bob", detail__contains="of admin").exists()


def test_read_only_operator_sees_a_preview_that_stores_nothing(login, read_only):
    client = login(read_only)
    response = client.post(
        reverse("system_settings"), {"hostname": "ro.example.org", "rollback_versions_kept": 10}
    )
    page = response.content.decode()
    assert "Nothing was stored" in page
    assert "ro.example.org" in page
    assert SystemSettings.load().hostname == "esa.example.com"
    assert not workflow.has_uncommitted_changes()
    assert client.post(reverse("uncommitted_changes"), {"comment": "x"}).status_code == 403
    assert ConfigVersion.objects.count() == 1
    assert client.post(reverse("abandon_changes")).status_code == 403


@pytest.mark.parametrize("page", CONFIG_PAGES)
def test_guest_sees_status_only(login, guest, page):
    client = login(guest)
    assert client.get(reverse("overview")).status_code == 200
    response = client.get(reverse(page))
    assert response.status_code == 403
    assert "Guest role may not" in response.content.decode()


def test_guest_cannot_submit(login, guest):
    client = login(guest)
    response = client.post(
        reverse("system_settings"), {"hostname": "g.example.org", "rollback_versions_kept": 10}
    )
    assert response.status_code == 403
    assert SystemSettings.load().hostname == "esa.example.com"


@pytest.mark.parametrize("role_fixture", ["operator", "read_only", "guest"])
def test_only_administrators_manage_users(login, request, role_fixture):
    client = login(request.getfixturevalue(role_fixture))
    assert client.get(reverse("users")).status_code == 403
    response = client.post(
        reverse("user_add"),
        {"username": "mallory", "role": "administrator", "password": PASSWORD, "password_again": PASSWORD},
    )
    assert response.status_code == 403
    assert not User.objects.filter(username="mallory").exists()


def test_a_refusal_is_logged_in_one_line_without_a_traceback(login, guest, caplog):
    client = login(guest)
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert client.get(reverse("users")).status_code == 403
    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert record.exc_info is None and "\n" not in record.getMessage()
    assert record.getMessage() == (
        "Forbidden: /admin/users/ (user gus, 127.0.0.1): The Guest role may not manage user accounts."
    )


def test_administrator_adds_edits_and_deletes_a_user(login, admin):
    client = login(admin)
    response = client.post(
        reverse("user_add"),
        {
            "username": "carol",
            "full_name": "Carol",
            "role": "operator",
            "is_active": "on",
            "password": PASSWORD,
            "password_again": PASSWORD,
        },
        follow=True,
    )
    assert "User &#x27;carol&#x27; has been added." in response.content.decode()
    carol = User.objects.get(username="carol")
    assert carol.role == "operator" and carol.check_password(PASSWORD)
    client.post(reverse("user_edit", args=["carol"]), {"full_name": "Carol", "role": "read_only"})
    assert User.objects.get(username="carol").role == "read_only"
    client.post(reverse("user_delete", args=["carol"]))
    assert not User.objects.filter(username="carol").exists()
    assert AuditEvent.objects.filter(action="users", detail="deleted user carol").exists()


def test_user_form_rejects_weak_and_mismatched_passwords(login, admin):
    client = login(admin)
    response = client.post(
        reverse("user_add"), {"username": "dave", "role": "guest", "password": "123", "password_again": "124"}
    )
    assert "The two passwords differ." in response.content.decode()
    response = client.post(
        reverse("user_add"), {"username": "dave", "role": "guest", "password": "123", "password_again": "123"}
    )
    assert "This password is too short" in response.content.decode()
    assert not User.objects.filter(username="dave").exists()


def test_builtin_admin_cannot_be_deleted_or_demoted(login, admin, second_admin):
    client = login(second_admin)
    client.post(reverse("user_delete", args=["admin"]))
    client.post(reverse("user_edit", args=["admin"]), {"full_name": "x", "role": "guest"})
    admin.refresh_from_db()
    assert admin.role == "administrator" and admin.is_active


def test_another_administrator_is_refused_admins_password_in_words(login, admin, second_admin):
    client = login(second_admin)
    new = {"full_name": "", "role": "administrator", "is_active": "on"}
    new |= {"password": "Other-Horse-43", "password_again": "Other-Horse-43"}
    response = client.post(reverse("user_edit", args=["admin"]), new)
    assert response.status_code == 409
    assert (
        "Only &#x27;admin&#x27; can change the password of the user &#x27;admin&#x27;."
        in response.content.decode()
    )
    admin.refresh_from_db()
    assert admin.check_password(PASSWORD)


def test_rollback_page_compares_and_stages(login, admin):
    client = login(admin)
    client.post(reverse("system_settings"), {"hostname": "two.example.org", "rollback_versions_kept": 10})
    client.post(reverse("uncommitted_changes"), {"comment": "two"})
    page = client.get(reverse("rollback")).content.decode()
    assert "two" in page and "(running)" in page
    partial = client.get(reverse("rollback_diff", args=[1]), headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in partial
    assert "two.example.org" in partial and "esa.example.com" in partial
    response = client.post(reverse("rollback"), {"number": "1"}, follow=True)
    assert "Version 1 is staged" in response.content.decode()
    assert SystemSettings.load().hostname == "esa.example.com"
    assert workflow.running_config()["hostname"][0]["hostname"] == "two.example.org"
    assert client.post(reverse("rollback"), {"number": "abc"}).status_code == 302
    assert client.get(reverse("rollback_diff", args=[99])).status_code == 404


def test_audit_log_lists_and_filters(login, admin):
    client = login(admin)
    client.post(reverse("system_settings"), {"hostname": "two.example.org", "rollback_versions_kept": 10})
    page = client.get(reverse("audit_log"), {"action": "submit"}).content.decode()
    assert "edited system settings" in page
    assert "Initial configuration" not in page


def test_certificates_page_lists_demo_and_where_it_is_used(login, admin):
    page = login(admin).get(reverse("certificates:list")).content.decode()
    assert "Demo" in page and "esa.example.com" in page
    assert "interface &#x27;Management&#x27; (HTTPS Certificate)" in page


def test_change_password(login, operator):
    client = login(operator)
    response = client.post(
        reverse("change_password"),
        {"old_password": PASSWORD, "new_password1": "Another-Pass-77", "new_password2": "Another-Pass-77"},
        follow=True,
    )
    assert "Your password has been changed." in response.content.decode()
    operator.refresh_from_db()
    assert operator.check_password("Another-Pass-77")


def test_every_answer_has_the_content_security_policy(login, admin, https_client):
    assert https_client.get(reverse("login"))["Content-Security-Policy"] == "default-src 'self'"
    assert login(admin).get(reverse("overview"))["Content-Security-Policy"] == "default-src 'self'"
    assert https_client.get("/static/js/htmx.min.js")["Content-Security-Policy"] == "default-src 'self'"


INLINE = re.compile(r"<script(?![^>]*\ssrc=)|<style|\sstyle=|\son[a-z]+=|\shx-on|javascript:|data:")


def test_no_template_relies_on_what_the_policy_forbids():
    """Inline scripts, handlers and styles (htmx's hx-on evaluates script) would not run under the CSP."""
    templates = Path(__file__).resolve().parent.parent / "templates"
    found = [
        f"{path.relative_to(templates)}: {match.group()}"
        for path in templates.rglob("*.html")
        for match in INLINE.finditer(path.read_text())
    ]
    assert found == []
