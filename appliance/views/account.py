"""Log in, log out, change one's own password."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout, update_session_auth_hash
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from appliance import audit, users, workflow
from appliance.audit import Action
from appliance.models import AuditEvent
from appliance.views.common import ConsoleRequest, form_page, source_of

# Failed logins (a wrong user name or password) allowed in the window, as multiples of
# LOGIN_FAILURE_LIMIT: from one address to any account, and to one account from every address.
ADDRESS_LIMIT_FACTOR = 4
ACCOUNT_LIMIT_FACTOR = 4


def _lockout(username: str, source: str) -> str | None:
    """Why a login for ``username`` from ``source`` is refused before its password is checked, or None.

    Only failures count, never refused attempts: knocking on a lockout does not extend it. An account's
    lockout holds for the addresses that failed on it, so a flood from one address never keeps out the
    right password from another.
    """
    since = timezone.now() - timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)
    failures = AuditEvent.objects.filter(action=Action.LOGIN_FAILED, time__gte=since)
    limit = settings.LOGIN_FAILURE_LIMIT
    from_here = failures.filter(source=source).count()
    if from_here >= limit * ADDRESS_LIMIT_FACTOR:
        return f"{from_here} failed logins from this address"
    on_account = failures.filter(user_name=username)
    on_account_from_here = on_account.filter(source=source).count()
    if on_account_from_here >= limit:
        return f"{on_account_from_here} failed logins for {username} from this address"
    if on_account_from_here and (everywhere := on_account.count()) >= limit * ACCOUNT_LIMIT_FACTOR:
        return f"{everywhere} failed logins for {username} from all addresses"
    return None


@login_not_required
def login_view(request: ConsoleRequest):
    form = AuthenticationForm(request, data=request.POST or None)
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if request.method == "POST":
        username = request.POST.get("username", "")[:150]
        source = source_of(request)
        minutes = settings.LOGIN_FAILURE_WINDOW_SECONDS // 60
        if reason := _lockout(username, source):
            audit.record(username, Action.LOGIN_LOCKOUT, f"refused while locked out: {reason}", source)
            context = {
                "form": AuthenticationForm(request),
                "next": next_url,
                "refusal": f"Too many failed login attempts. Try again in {minutes} minutes.",
            }
            return render(request, "registration/login.html", context, status=429)
        if form.is_valid():
            login(request, form.get_user())
            audit.record(username, Action.LOGIN, "", source)
            if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}, require_https=True):
                next_url = settings.LOGIN_REDIRECT_URL
            return redirect(next_url)
        audit.record(username, Action.LOGIN_FAILED, "wrong user name or password", source)
        if reason := _lockout(username, source):
            detail = f"locked out for {minutes} minutes: {reason}"
            audit.record(username, Action.LOGIN_LOCKOUT, detail, source)
    return render(request, "registration/login.html", {"form": form, "next": next_url})


@require_POST
def logout_view(request: ConsoleRequest):
    user = request.user
    lock = workflow.lock_state()
    audit.record(user.username, Action.LOGOUT, "", source_of(request))
    logout(request)
    if lock.owner_name == user.username:
        messages.warning(
            request,
            "You logged out with uncommitted changes. They stay pending until you commit or "
            "abandon them; other administrators cannot submit changes until then.",
        )
    messages.info(request, "You have been logged out.")
    return redirect("login")


def change_password(request: ConsoleRequest):
    form = PasswordChangeForm(request.user, request.POST or None)

    def submit(template: str, context: dict):
        users.change_own_password(request.user, form.cleaned_data["new_password1"], source_of(request))
        update_session_auth_hash(request, request.user)  # this session stays logged in
        messages.success(request, "Your password has been changed.")
        return redirect("overview")

    return form_page(request, form, submit, full_template="appliance/password.html")
