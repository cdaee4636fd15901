"""Destination Controls, Mail Delivery (Network), LDAP (System Administration), URL Filtering.

Settings are staged through ``submit_change`` (a Read-Only Operator sees a
preview). Test Server and Test Connection change nothing: they connect out with
the candidate configuration and show the report; as on the ESA, Operators and
Administrators may run them (``TEST``).
"""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Case, F, IntegerField, Value, When
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from appliance.config import candidate_levels
from appliance.roles import Capability, can, require, requires
from appliance.views.common import (
    ConsoleRequest,
    partial_wanted,
    staged_form_page,
    submit_change,
)
from destinations import delivery_settings, entries, forms, ldap, lookup, probe, store, websecurity
from destinations.entries import Entry
from destinations.models import (
    DEFAULT_DESTINATION,
    Destination,
    DestinationControls,
    LdapServer,
    LdapSettings,
    TlsSupport,
    UrlFiltering,
)

TEST = probe.TEST_CAPABILITY


def _test_result(request: ConsoleRequest, template: str, context: dict, report):
    """The report alone for htmx (swapped into #test-result), else the whole page with it."""
    if partial_wanted(request):
        template = "destinations/_test_report.html"
    return render(request, template, {**context, "report": report})


# --- Destination Controls ------------------------------------------------------


PAGE_SIZE = 50
# TLS Support sorts from weakest to strongest, entries that take the Default's first.
_TLS_RANK = Case(
    *(When(tls=value, then=Value(rank)) for rank, value in enumerate(TlsSupport.values)),
    output_field=IntegerField(),
)
DESTINATION_SORTS = {
    "name": "name",
    "tls": _TLS_RANK,
    "ip_preference": "ip_preference",
    "max_connections": "max_connections",
    "max_messages": "max_messages_per_connection",
    "max_recipients": "max_recipients_per_minute",
}


def _table_level(request: ConsoleRequest) -> str:
    """The level whose Destination Controls the request's mode sees."""
    return request.mode.seen("destination_controls")


def _destination_table(request: ConsoleRequest) -> dict:
    """One page of the table (the Default entry apart, always shown), searched and sorted: four queries."""
    level = _table_level(request)
    rows = Destination.objects.at(level).exclude(name=DEFAULT_DESTINATION)
    query = request.GET.get("q", "").strip()
    if query:
        rows = rows.filter(name__icontains=query.strip("[]").lower())
    sort = request.GET.get("sort", "name")
    if sort.removeprefix("-") not in DESTINATION_SORTS:
        sort = "name"
    key = DESTINATION_SORTS[sort.removeprefix("-")]
    key = F(key) if isinstance(key, str) else key
    order = key.desc() if sort.startswith("-") else key.asc()
    page = Paginator(rows.order_by(order, "name"), PAGE_SIZE).get_page(request.GET.get("page"))
    return {"page": page, "query": query, "sort": sort, "default_entry": entries.default_row(level)}


def _destinations_context(request: ConsoleRequest, **extra) -> dict:
    return {
        "settings": DestinationControls.load(_table_level(request)),
        "lookup_form": forms.LookupForm(),
        **_destination_table(request),
        **extra,
    }


@requires(Capability.VIEW_CONFIG)
def destination_controls(request: ConsoleRequest):
    """The global settings, the table (searchable, sortable, 50 a page) and the lookup."""
    if partial_wanted(request):
        return render(request, "destinations/_destination_table.html", _destination_table(request))
    return render(request, "destinations/destination_controls.html", _destinations_context(request))


@requires(Capability.VIEW_CONFIG)
def destination_lookup(request: ConsoleRequest):
    """Which entry applies to an address: the result alone for htmx, else the page with it."""
    form = forms.LookupForm(request.GET or None)
    context = {"lookup_form": form, "match": None, "lookup_error": ""}
    if form.is_valid():
        try:
            context["match"] = lookup.entry_for(_table_level(request), form.cleaned_data["address"])
        except ValueError as exc:
            context["lookup_error"] = str(exc)
    if partial_wanted(request):
        return render(request, "destinations/_lookup.html", context)
    return render(
        request, "destinations/destination_controls.html", _destinations_context(request, **context)
    )


def _destination_row(level: str, name: str) -> Destination:
    if name == DEFAULT_DESTINATION:
        return entries.default_row(level)
    row = Destination.objects.at(level).filter(name=name).first()
    if row is None:
        raise Http404(f"'{name}' was not found in the destination control table.")
    return row


@requires(Capability.VIEW_CONFIG)
def destination_entry(request: ConsoleRequest, name: str | None = None):
    """Add Destination (``name`` None) or edit an entry, the Default entry included."""
    level = _table_level(request)
    row = _destination_row(level, name) if name is not None else None
    for_default = row is not None and row.is_default
    default = Entry.of(row if for_default else entries.default_row(level))
    initial = forms.DestinationForm.initial_for(Entry.of(row)) if row else {"table_tls": TlsSupport.DEFAULT}
    form = forms.DestinationForm(
        request.POST or None, initial=initial, default=default, for_default=for_default
    )

    def change(data):
        entry = form.entry(DEFAULT_DESTINATION if for_default else None)
        description = f"added destination {entry.name}" if row is None else f"edited destination {row.name}"
        return description, lambda: store.save_destination(level, entry, original=row.name if row else None)

    return staged_form_page(
        request,
        form,
        change,
        full_template="destinations/destination_entry.html",
        partial_template="destinations/_destination_form.html",
        context={"entry": row},
        success_url=reverse("destinations:destination_controls"),
    )


@requires(Capability.VIEW_CONFIG)
@require_POST
def destination_delete(request: ConsoleRequest):
    """Delete the entries ticked in the table (the Default entry has no box)."""
    names = request.POST.getlist("name")
    if not names:
        messages.error(request, "Select the destinations to delete.")
        return redirect("destinations:destination_controls")
    return submit_change(
        request,
        f"deleted destination{'s' if len(names) > 1 else ''} {', '.join(names)}",
        lambda: store.delete_destinations(_table_level(request), names),
        success_url=reverse("destinations:destination_controls"),
        template="destinations/destination_controls.html",
        context=_destinations_context(request),
    )


@requires(Capability.VIEW_CONFIG)
def destination_import(request: ConsoleRequest):
    """Import Table...: the file replaces the whole table in one staged change."""
    return staged_form_page(
        request,
        forms.ImportTableForm(request.POST or None, request.FILES or None),
        lambda data: (
            f"imported the destination table from {request.FILES['table'].name}",
            lambda: store.import_destinations(_table_level(request), data["table"]),
        ),
        full_template="destinations/destination_import.html",
        success_url=reverse("destinations:destination_controls"),
    )


@requires(Capability.VIEW_CONFIG)
def destination_export(request: ConsoleRequest):
    """Export Table...: the candidate table as text, one entry a line."""
    table = store.export_destinations(_table_level(request))
    response = HttpResponse(table, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="destination-controls.txt"'
    return response


@requires(Capability.VIEW_CONFIG)
def destination_controls_settings(request: ConsoleRequest):
    current = DestinationControls.load(_table_level(request))
    initial = {"certificate": current.certificate_name, "send_tls_req_alert": current.send_tls_required_alert}
    form = forms.DestinationControlsForm(
        request.POST or None, initial=initial, certificates_level=request.mode.seen("certificates")
    )
    return staged_form_page(
        request,
        form,
        lambda data: (
            "edited the Destination Controls global settings",
            lambda: store.set_destination_controls(
                request.mode, data["certificate"], data["send_tls_req_alert"]
            ),
        ),
        full_template="destinations/destination_controls_settings.html",
        success_url=reverse("destinations:destination_controls"),
    )


# --- Mail Delivery ---------------------------------------------------------------


@requires(Capability.VIEW_CONFIG)
def mail_delivery(request: ConsoleRequest):
    """Network > Mail Delivery: the settings (candidate) and Edit Settings."""
    rows = delivery_settings.describe(request.mode, delivery_settings.current())
    return render(request, "destinations/mail_delivery.html", {"rows": rows})


@requires(Capability.VIEW_CONFIG)
def mail_delivery_settings(request: ConsoleRequest):
    return staged_form_page(
        request,
        forms.MailDeliveryForm(request.POST or None, initial=delivery_settings.current(), mode=request.mode),
        lambda data: (
            "edited the Mail Delivery settings",
            lambda: delivery_settings.set_delivery(request.mode, **data),
        ),
        full_template="destinations/mail_delivery_settings.html",
        success_url=reverse("destinations:mail_delivery"),
    )


# --- LDAP ------------------------------------------------------------------------


def _ldap_context(request: ConsoleRequest) -> dict:
    return {
        "servers": LdapServer.objects.at(request.mode.seen("ldap_servers")),
        "settings": LdapSettings.load(request.mode.seen("ldap")),
        "may_test": can(request.user, TEST),
    }


@requires(Capability.VIEW_CONFIG)
def ldap_overview(request: ConsoleRequest):
    return render(request, "destinations/ldap.html", _ldap_context(request))


@requires(Capability.VIEW_CONFIG)
def ldap_settings(request: ConsoleRequest):
    form = forms.LdapSettingsForm(
        request.POST or None,
        initial={"certificate": LdapSettings.load(request.mode.seen("ldap")).certificate_name},
        certificates_level=request.mode.seen("certificates"),
    )
    return staged_form_page(
        request,
        form,
        lambda data: (
            "edited the LDAP global settings",
            lambda: store.set_ldap_certificate(request.mode, data["certificate"]),
        ),
        full_template="destinations/ldap_settings.html",
        success_url=reverse("destinations:ldap"),
    )


@requires(TEST)
@require_POST
def ldap_test(request: ConsoleRequest, name: str):
    """Test Server of a staged profile, with the candidate's certificates and trusted lists."""
    config = candidate_levels.seen_candidate(request.mode)
    if not any(item["ldap_server_name"] == name for item in config.get("ldap_servers", [])):
        raise Http404(f"There is no LDAP server profile named '{name}'.")
    report = ldap.test_server(ldap.profile(name, config), config)
    return _test_result(request, "destinations/ldap.html", _ldap_context(request), report)


@requires(Capability.VIEW_CONFIG)
def ldap_server(request: ConsoleRequest, name: str | None = None):
    """Add or edit a profile; its form's buttons: Submit, Test Server (the values typed), Delete."""
    server = None
    level = request.mode.seen("ldap_servers")
    if name is not None:
        server = LdapServer.objects.at(level).filter(name=name).first()
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
    context = {"server": server, "may_test": can(request.user, TEST)}
    template = "destinations/ldap_server.html"
    action = request.POST.get("action", "submit")
    if request.method == "POST" and action == "delete" and server is not None:
        return submit_change(
            request,
            f"deleted LDAP server profile {server.name}",
            lambda: store.delete_ldap_server(level, server.name),
            success_url=reverse("destinations:ldap"),
            template=template,
            context={**context, "form": forms.LdapServerForm(initial=initial, has_password=has_password)},
        )
    if request.method == "POST" and action == "test":
        require(request.user, TEST)
        report = (
            _ldap_test_typed(request, form, server)
            if form.is_valid()
            else _form_problems(form, "Test Server")
        )
        return _test_result(request, template, {**context, "form": form}, report)

    def change(data):
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
        return (
            f"{verb} LDAP server profile {fields.name}",
            lambda: store.save_ldap_server(level, fields, original=server.name if server else None),
        )

    return staged_form_page(
        request,
        form,
        change,
        full_template=template,
        context=context,
        success_url=reverse("destinations:ldap"),
    )


def _ldap_test_typed(request: ConsoleRequest, form: forms.LdapServerForm, server: LdapServer | None):
    """Test Server with the values in the form; an empty password field uses the stored password."""
    data = form.cleaned_data
    config = candidate_levels.seen_candidate(request.mode)
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
    form = forms.UrlFilteringForm(
        request.POST or None, initial=initial, certificates_level=request.mode.seen("certificates")
    )
    context = {"settings": current, "may_test": can(request.user, TEST)}
    template = "destinations/url_filtering.html"
    action = request.POST.get("action", "submit")
    if request.method == "POST" and action == "test":
        require(request.user, TEST)
        # Test what is typed, even an endpoint not yet valid: the report says what is wrong.
        endpoint = request.POST.get("endpoint", "").strip()
        certificate = form.data.get("client_certificate", "")
        config = candidate_levels.seen_candidate(request.mode)
        report = websecurity.test_connection(endpoint, certificate, config)
        return _test_result(request, template, {**context, "form": form}, report)
    return staged_form_page(
        request,
        form,
        lambda data: (
            "edited the URL Filtering settings",
            lambda: store.set_url_filtering(
                request.mode, data["enabled"], data["endpoint"], data["client_certificate"]
            ),
        ),
        full_template=template,
        context=context,
        success_url=reverse("destinations:url_filtering"),
    )
