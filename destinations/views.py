"""Mail Policies > Destination Controls, System Administration > LDAP, Security Services > URL Filtering.

Settings are staged through ``submit_change`` (a Read-Only Operator sees a
preview). Test Server and Test Connection change nothing: they connect out with
the candidate configuration and show the report; as on the ESA, Operators and
Administrators may run them (``TEST``).
"""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from appliance.config.sections import registry
from appliance.roles import Capability, can, require, requires
from appliance.views.common import ConsoleRequest, submit_change
from destinations import forms, ldap, probe, store, websecurity
from destinations.models import DestinationControls, LdapServer, LdapSettings, UrlFiltering

TEST = probe.TEST_CAPABILITY


def _test_result(request: ConsoleRequest, template: str, context: dict, report):
    """The report alone for htmx (swapped into #test-result), else the whole page with it."""
    if request.htmx and not request.htmx.boosted:
        template = "destinations/_test_report.html"
    return render(request, template, {**context, "report": report})


# --- Destination Controls ------------------------------------------------------


@requires(Capability.VIEW_CONFIG)
def destination_controls(request: ConsoleRequest):
    return render(request, "destinations/destination_controls.html", {"settings": DestinationControls.load()})


@requires(Capability.VIEW_CONFIG)
def destination_controls_settings(request: ConsoleRequest):
    current = DestinationControls.load()
    initial = {"certificate": current.certificate_name, "send_tls_req_alert": current.send_tls_required_alert}
    form = forms.DestinationControlsForm(request.POST or None, initial=initial)
    context = {"form": form}
    template = "destinations/destination_controls_settings.html"
    if request.method != "POST":
        return render(request, template, context)
    if not form.is_valid():
        return render(request, template, context, status=400)
    data = form.cleaned_data
    return submit_change(
        request,
        "edited the Destination Controls global settings",
        lambda: store.set_destination_controls(data["certificate"], data["send_tls_req_alert"]),
        success_url=reverse("destinations:destination_controls"),
        template=template,
        context=context,
    )


# --- LDAP ------------------------------------------------------------------------


def _ldap_context(request: ConsoleRequest) -> dict:
    return {
        "servers": LdapServer.objects.all(),
        "settings": LdapSettings.load(),
        "may_test": can(request.user, TEST),
    }


@requires(Capability.VIEW_CONFIG)
def ldap_overview(request: ConsoleRequest):
    return render(request, "destinations/ldap.html", _ldap_context(request))


@requires(Capability.VIEW_CONFIG)
def ldap_settings(request: ConsoleRequest):
    form = forms.LdapSettingsForm(
        request.POST or None, initial={"certificate": LdapSettings.load().certificate_name}
    )
    context = {"form": form}
    template = "destinations/ldap_settings.html"
    if request.method != "POST":
        return render(request, template, context)
    if not form.is_valid():
        return render(request, template, context, status=400)
    return submit_change(
        request,
        "edited the LDAP global settings",
        lambda: store.set_ldap_certificate(form.cleaned_data["certificate"]),
        success_url=reverse("destinations:ldap"),
        template=template,
        context=context,
    )


@requires(TEST)
@require_POST
def ldap_test(request: ConsoleRequest, name: str):
    """Test Server of a staged profile, with the candidate's certificates and trusted lists."""
    config = registry.candidate()
    if not any(item["ldap_server_name"] == name for item in config.get("ldap_servers", [])):
        raise Http404(f"There is no LDAP server profile named '{name}'.")
    report = ldap.test_server(ldap.profile(name, config), config)
    return _test_result(request, "destinations/ldap.html", _ldap_context(request), report)


@requires(Capability.VIEW_CONFIG)
def ldap_server(request: ConsoleRequest, name: str | None = None):
    """Add or edit a profile; its form's buttons: Submit, Test Server (the values typed), Delete."""
    server = None
    if name is not None:
        server = LdapServer.objects.filter(name=name).first()
        if server is None:
            raise Http404(f"There is no LDAP server profile named '{name}'.")
    initial = (
        {
            "name": server.name,
            "host": server.host,
            "port": server.port,
            "use_ssl": server.use_ssl,
            "bind_dn": server.bind_dn,
            "base_dn": server.base_dn,
        }
        if server
        else {}
    )
    has_password = bool(server and server.bind_password_sealed)
    form = forms.LdapServerForm(request.POST or None, initial=initial, has_password=has_password)
    context = {"form": form, "server": server, "may_test": can(request.user, TEST)}
    template = "destinations/ldap_server.html"
    if request.method != "POST":
        return render(request, template, context)
    action = request.POST.get("action", "submit")
    if action == "delete" and server is not None:
        context["form"] = forms.LdapServerForm(initial=initial, has_password=has_password)
        return submit_change(
            request,
            f"deleted LDAP server profile {server.name}",
            lambda: store.delete_ldap_server(server.name),
            success_url=reverse("destinations:ldap"),
            template=template,
            context=context,
        )
    if action == "test":
        require(request.user, TEST)
        report = _ldap_test_typed(form, server) if form.is_valid() else _form_problems(form, "Test Server")
        return _test_result(request, template, context, report)
    if not form.is_valid():
        return render(request, template, context, status=400)
    data = form.cleaned_data
    fields = store.ServerFields(
        name=data["name"],
        host=data["host"],
        port=data["port"],
        use_ssl=data["use_ssl"],
        bind_dn=data["bind_dn"],
        bind_password=form.new_password,
        base_dn=data["base_dn"],
    )
    verb = "added" if server is None else "edited"
    return submit_change(
        request,
        f"{verb} LDAP server profile {fields.name}",
        lambda: store.save_ldap_server(fields, original=server.name if server else None),
        success_url=reverse("destinations:ldap"),
        template=template,
        context=context,
    )


def _ldap_test_typed(form: forms.LdapServerForm, server: LdapServer | None):
    """Test Server with the values in the form; an empty password field uses the stored password."""
    data = form.cleaned_data
    config = registry.candidate()
    password = form.new_password
    if password is None and server is not None and server.bind_password_sealed and data["bind_dn"]:
        password = ldap.profile(server.name, config).bind_password
    typed = ldap.Profile(
        name=data["name"],
        host=data["host"],
        port=data["port"],
        use_ssl=data["use_ssl"],
        bind_dn=data["bind_dn"],
        bind_password=password or "",
        base_dn=data["base_dn"],
    )
    return ldap.test_server(typed, config)


def _form_problems(form, title: str) -> probe.Report:
    """A test that cannot start: the form's errors, as the report's failed steps."""
    report = probe.Report(title)
    for name, errors in form.errors.items():
        label = form.fields[name].label if name in form.fields else "Form"
        for error in errors:
            report.fail(f"{label}: {error}")
    report.conclusion = "Correct the values, then test again."
    return report


# --- URL Filtering -------------------------------------------------------------


@requires(Capability.VIEW_CONFIG)
def url_filtering(request: ConsoleRequest):
    """The global settings form; its buttons: Submit, and Test Connection (the values typed)."""
    current = UrlFiltering.load()
    initial = {
        "enabled": current.enabled,
        "endpoint": current.endpoint,
        "client_certificate": current.client_certificate_name,
    }
    form = forms.UrlFilteringForm(request.POST or None, initial=initial)
    context = {"form": form, "settings": current, "may_test": can(request.user, TEST)}
    template = "destinations/url_filtering.html"
    if request.method != "POST":
        return render(request, template, context)
    action = request.POST.get("action", "submit")
    if action == "test":
        require(request.user, TEST)
        # Test what is typed, even an endpoint not yet valid: the report says what is wrong.
        endpoint = request.POST.get("endpoint", "").strip()
        certificate = form.data.get("client_certificate", "")
        return _test_result(request, template, context, websecurity.test_connection(endpoint, certificate))
    if not form.is_valid():
        return render(request, template, context, status=400)
    data = form.cleaned_data
    return submit_change(
        request,
        "edited the URL Filtering settings",
        lambda: store.set_url_filtering(data["enabled"], data["endpoint"], data["client_certificate"]),
        success_url=reverse("destinations:url_filtering"),
        template=template,
        context=context,
    )
