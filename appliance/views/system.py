"""System Administration > System Settings and Audit Log."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import render

from appliance.forms import SslConfigurationForm, SystemSettingsForm
from appliance.models import AuditEvent, SslSettings, SystemSettings
from appliance.roles import Capability, requires
from appliance.sections import SSL_FIELDS
from appliance.views.common import ConsoleRequest, submit_change


@requires(Capability.VIEW_CONFIG)
def system_settings(request: ConsoleRequest):
    current = SystemSettings.load()
    initial = {"hostname": current.hostname, "rollback_versions_kept": current.rollback_versions_kept}
    form = SystemSettingsForm(request.POST or None, initial=initial)
    context = {"form": form}
    if request.method == "POST" and form.is_valid():

        def apply():
            current.hostname = form.cleaned_data["hostname"]
            current.rollback_versions_kept = form.cleaned_data["rollback_versions_kept"]
            current.save()

        return submit_change(
            request,
            "edited system settings",
            apply,
            success_url="system_settings",
            template="appliance/system_settings.html",
            context=context,
        )
    return render(request, "appliance/system_settings.html", context)


@requires(Capability.VIEW_AUDIT)
def audit_log(request: ConsoleRequest):
    events = AuditEvent.objects.all()
    action = request.GET.get("action", "")
    if action in AuditEvent.Action.values:
        events = events.filter(action=action)
    user_name = request.GET.get("user", "").strip()
    if user_name:
        events = events.filter(user_name=user_name)
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "appliance/audit_log.html",
        {"page": page, "actions": AuditEvent.Action.choices, "action": action, "user_name": user_name},
    )


@requires(Capability.VIEW_CONFIG)
def ssl_configuration(request: ConsoleRequest):
    current = SslSettings.load(request.mode.seen("ssl_config"))
    initial = {field: getattr(current, field) for field in SSL_FIELDS}
    form = SslConfigurationForm(request.POST or None, initial=initial)
    context = {"form": form}
    if request.method == "POST" and form.is_valid():

        def apply():
            SslSettings.every_level.filter(pk=current.pk).update(
                **{f: form.cleaned_data[f] for f in SSL_FIELDS}
            )

        response = submit_change(
            request,
            "edited the SSL configuration",
            apply,
            success_url="ssl_configuration",
            template="appliance/ssl_configuration.html",
            context=context,
        )
        if response.status_code == 302:
            messages.warning(
                request,
                "The changes in the settings of the SSL Configuration can cause all related services to restart",
            )
        return response
    return render(request, "appliance/ssl_configuration.html", context)
