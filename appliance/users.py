"""User administration: add, edit and delete an account, change one's own password.

Accounts take effect at once: they are not configuration, so nothing is staged or committed. Like
the change workflow's verbs, each function makes its change and writes its ``users`` audit line in
one transaction; the Users and Change Password pages call them. The built-in ``admin`` stays an active
Administrator, cannot be deleted, and only ``admin`` sets its password; nobody deletes their own account.
"""

from __future__ import annotations

from django.db import transaction

from appliance import audit
from appliance.audit import Action
from appliance.models import Role, User
from appliance.roles import Capability, require


class UserRefused(Exception):
    """What cannot be done to an account; the message says why, in the admin's words."""


def _save(acting_user: User, user: User, detail: str, source: str) -> None:
    with transaction.atomic():
        user.save()
        audit.record(acting_user.username, Action.USERS, detail, source)


def create(
    acting_user: User,
    username: str,
    *,
    full_name: str,
    role: str,
    is_active: bool,
    password: str,
    source: str = "",
) -> User:
    require(acting_user, Capability.MANAGE_USERS)
    user = User(username=username, first_name=full_name, role=role, is_active=is_active)
    user.set_password(password)
    _save(acting_user, user, f"added user {username} ({user.get_role_display()})", source)
    return user


def edit(
    acting_user: User,
    user: User,
    *,
    full_name: str,
    role: str,
    is_active: bool,
    password: str = "",
    source: str = "",
) -> User:
    """Change an account; an empty ``password`` keeps the current one."""
    require(acting_user, Capability.MANAGE_USERS)
    if user.is_builtin_admin and (role != Role.ADMINISTRATOR or not is_active):
        raise UserRefused(f"The user '{user.username}' is built in: it stays an active Administrator.")
    # The built-in account is the way back in: another Administrator must not be able to take it over.
    if user.is_builtin_admin and password and acting_user != user:
        raise UserRefused(f"Only '{user.username}' can change the password of the user '{user.username}'.")
    user.first_name, user.role, user.is_active = full_name, role, is_active
    if password:
        user.set_password(password)
    _save(acting_user, user, f"edited user {user.username} ({user.get_role_display()})", source)
    return user


def delete(acting_user: User, user: User, source: str = "") -> None:
    require(acting_user, Capability.MANAGE_USERS)
    if user.is_builtin_admin or user == acting_user:
        raise UserRefused(f"The user '{user.username}' cannot be deleted.")
    with transaction.atomic():
        user.delete()
        audit.record(acting_user.username, Action.USERS, f"deleted user {user.username}", source)


def change_own_password(user: User, password: str, source: str = "") -> None:
    user.set_password(password)
    _save(user, user, "changed own password", source)
