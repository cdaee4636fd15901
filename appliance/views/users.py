"""System Administration > Users: accounts and their roles (take effect at once, audited)."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from appliance import audit
from appliance.audit import Action
from appliance.forms import UserForm
from appliance.models import User
from appliance.roles import Capability, requires
from appliance.views.common import ConsoleRequest, source_of


@requires(Capability.MANAGE_USERS)
def user_list(request: ConsoleRequest):
    return render(request, "appliance/users.html", {"users": User.objects.all()})


@requires(Capability.MANAGE_USERS)
def user_edit(request: ConsoleRequest, username: str | None = None):
    instance = get_object_or_404(User, username=username) if username else None
    initial = {}
    if instance:
        initial = {
            "username": instance.username,
            "full_name": instance.first_name,
            "role": instance.role,
            "is_active": instance.is_active,
        }
    form = UserForm(request.POST or None, instance=instance, initial=initial)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        verb = "edited" if instance else "added"
        audit.record(
            request.user.username,
            Action.USERS,
            f"{verb} user {user.username} ({user.get_role_display()})",
            source_of(request),
        )
        messages.success(request, f"User '{user.username}' has been {verb}.")
        return redirect("users")
    return render(request, "appliance/user_form.html", {"form": form, "instance": instance})


@requires(Capability.MANAGE_USERS)
@require_POST
def user_delete(request: ConsoleRequest, username: str):
    user = get_object_or_404(User, username=username)
    if user.is_builtin_admin or user == request.user:
        messages.error(request, f"The user '{user.username}' cannot be deleted.")
        return redirect("users")
    user.delete()
    audit.record(request.user.username, Action.USERS, f"deleted user {username}", source_of(request))
    messages.success(request, f"User '{username}' has been deleted.")
    return redirect("users")
