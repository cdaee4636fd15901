"""System Administration > System Settings and Audit Log."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.shortcuts import render
from django.urls import reverse

from appliance.forms import NetworkAccessForm, SslConfigurationForm, SystemSettingsForm
from appliance.models import AuditEvent, SslSettings, SystemSettings
from appliance.roles import Capability, requires
from appliance.sections import SSL_FIELDS
from appliance.views.common import ConsoleRequest, staged_form_page
from appliance.workflow import Outcome


@requires(Capability.VIEW_CONFIG)
def system_settings(request: ConsoleRequest):
    current = SystemSettings.load()
    initial = {"hostname": current.hostname, "rollback_versions_kept": current.rollback_versions_kept}

    def change(data):
        def apply():
            current.hostname = data["hostname"]
            current.rollback_versions_kept = data["rollback_versions_kept"]
            current.save()

        return "edited system settings", apply

    return staged_form_page(
        request,
        SystemSettingsForm(request.POST or None, initial=initial),
        change,
        full_template="appliance/system_settings.html",
        success_url=reverse("system_settings"),
    )


@requires(Capability.VIEW_CONFIG)
def network_access(request: ConsoleRequest):
    current = SystemSettings.load()

    def change(data):
        def apply():
            current.web_ui_timeout_minutes = data["web_ui_timeout_minutes"]
            current.save(update_fields=["web_ui_timeout_minutes"])

        return "edited network access", apply

    return staged_form_page(
        request,
        NetworkAccessForm(
            request.POST or None, initial={"web_ui_timeout_minutes": current.web_ui_timeout_minutes}
        ),
        change,
        full_template="appliance/network_access.html",
        success_url=reverse("network_access"),
    )


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

    def change(data):
        def apply():
            SslSettings.every_level.filter(pk=current.pk).update(
                **{f: form.cleaned_data[f] for f in SSL_FIELDS}
            )
            return Outcome(
                warnings=[
                    "The changes in the settings of the SSL Configuration can cause all related services to restart"
                ]
            )

        return "edited the SSL configuration", apply

    return staged_form_page(
        request,
        form,
        change,
        full_template="appliance/ssl_configuration.html",
        success_url=reverse("ssl_configuration"),
    )
