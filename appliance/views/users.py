"""System Administration > Users: accounts and their roles (take effect at once, audited)."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from appliance import users
from appliance.forms import UserForm
from appliance.models import User
from appliance.roles import Capability, requires
from appliance.views.common import ConsoleRequest, form_page, source_of


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

    def submit(template: str, context: dict):
        data = form.cleaned_data
        account = {"full_name": data["full_name"], "role": data["role"], "is_active": data["is_active"]}
        try:
            if instance is None:
                user = users.create(
                    request.user,
                    data["username"],
                    password=data["password"],
                    source=source_of(request),
                    **account,
                )
            else:
                user = users.edit(
                    request.user, instance, password=data["password"], source=source_of(request), **account
                )
        except users.UserRefused as refusal:
            messages.error(request, str(refusal))
            return render(request, template, context, status=409)
        messages.success(request, f"User '{user.username}' has been {'edited' if instance else 'added'}.")
        return redirect("users")

    return form_page(
        request, form, submit, full_template="appliance/user_form.html", context={"instance": instance}
    )


@requires(Capability.MANAGE_USERS)
@require_POST
def user_delete(request: ConsoleRequest, username: str):
    user = get_object_or_404(User, username=username)
    try:
        users.delete(request.user, user, source_of(request))
    except users.UserRefused as refusal:
        messages.error(request, str(refusal))
        return redirect("users")
    messages.success(request, f"User '{username}' has been deleted.")
    return redirect("users")
