"""User administration (``appliance.users``): each change and its ``users`` audit line in one
transaction, and the rules for the built-in admin and one's own account."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from appliance import audit, users
from appliance.models import AuditEvent, Role, User
from tests.conftest import PASSWORD

NEW = {"full_name": "Carol", "role": Role.OPERATOR, "is_active": True, "password": PASSWORD}


def audited() -> list[tuple[str, str, str]]:
    return list(
        AuditEvent.objects.filter(action=AuditEvent.Action.USERS)
        .order_by("id")
        .values_list("user_name", "detail", "source")
    )


def test_add_edit_delete_and_a_password_are_audited(admin, operator):
    carol = users.create(admin, "carol", source="GUI 192.0.2.1", **NEW)
    assert carol.check_password(PASSWORD) and carol.role == Role.OPERATOR
    users.edit(admin, carol, full_name="Carol C", role=Role.GUEST, is_active=False, password="")
    carol.refresh_from_db()
    assert (carol.first_name, carol.role, carol.is_active) == ("Carol C", Role.GUEST, False)
    assert carol.check_password(PASSWORD)  # an empty password keeps the current one
    users.delete(admin, carol)
    users.change_own_password(operator, "Another-Horse-43")
    assert User.objects.get(username="olivia").check_password("Another-Horse-43")
    assert audited() == [
        ("admin", "added user carol (Operator)", "GUI 192.0.2.1"),
        ("admin", "edited user carol (Guest)", ""),
        ("admin", "deleted user carol", ""),
        ("olivia", "changed own password", ""),
    ]
    assert not User.objects.filter(username="carol").exists()


def test_no_change_without_its_audit_line(admin, operator, monkeypatch):
    def olivia() -> User:
        return User.objects.get(username=operator.username)

    def broken(*args, **kwargs):
        raise RuntimeError("the audit log cannot be written")

    monkeypatch.setattr(audit, "record", broken)
    with pytest.raises(RuntimeError):
        users.create(admin, "carol", **NEW)
    with pytest.raises(RuntimeError):
        users.edit(admin, olivia(), full_name="x", role=Role.GUEST, is_active=False)
    with pytest.raises(RuntimeError):
        users.delete(admin, olivia())
    with pytest.raises(RuntimeError):
        users.change_own_password(olivia(), "Another-Horse-43")
    stored = olivia()
    assert (stored.role, stored.is_active, stored.check_password(PASSWORD)) == (Role.OPERATOR, True, True)
    assert not User.objects.filter(username="carol").exists()


@pytest.mark.parametrize(
    "change", [{"role": Role.OPERATOR, "is_active": True}, {"role": Role.ADMINISTRATOR, "is_active": False}]
)
def test_the_builtin_admin_stays_an_active_administrator(admin, second_admin, change):
    with pytest.raises(users.UserRefused, match="'admin' is built in: it stays an active Administrator"):
        users.edit(second_admin, admin, full_name="x", **change)
    admin.refresh_from_db()
    assert (admin.role, admin.is_active, admin.first_name) == (Role.ADMINISTRATOR, True, "")
    assert audited() == []


def test_only_admin_changes_the_builtin_admins_password(admin, second_admin):
    with pytest.raises(users.UserRefused, match="Only 'admin' can change the password of the user 'admin'."):
        users.edit(
            second_admin,
            admin,
            full_name="x",
            role=Role.ADMINISTRATOR,
            is_active=True,
            password="Other-Horse-43",
        )
    admin.refresh_from_db()
    assert admin.check_password(PASSWORD) and admin.first_name == ""
    assert audited() == []
    users.edit(second_admin, admin, full_name="The admin", role=Role.ADMINISTRATOR, is_active=True)
    users.edit(
        admin,
        admin,
        full_name="The admin",
        role=Role.ADMINISTRATOR,
        is_active=True,
        password="Other-Horse-43",
    )
    admin.refresh_from_db()
    assert admin.check_password("Other-Horse-43")


def test_nobody_deletes_the_builtin_admin_or_themselves(admin, second_admin):
    with pytest.raises(users.UserRefused, match="The user 'admin' cannot be deleted."):
        users.delete(second_admin, admin)
    with pytest.raises(users.UserRefused, match="The user 'bob' cannot be deleted."):
        users.delete(second_admin, second_admin)
    assert User.objects.filter(username__in=["admin", "bob"]).count() == 2
    assert audited() == []


def test_only_administrators_manage_users(operator, second_admin):
    with pytest.raises(PermissionDenied):
        users.create(operator, "carol", **NEW)
    with pytest.raises(PermissionDenied):
        users.delete(operator, second_admin)
    assert not User.objects.filter(username="carol").exists()
