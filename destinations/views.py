"""Destination Controls, Mail Delivery (Network), LDAP (System Administration), URL Filtering.

Settings are staged through ``submit_change`` (a Read-Only Operator sees a
preview). Test Server and Test Connection change nothing: they connect out with
the candidate configuration and show the report; as on the ESA, Operators and
Administrators may run them (``TEST``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Case, F, IntegerField, Value, When
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from appliance import workflow
from appliance.config import candidate_levels
from appliance.roles import Capability, can, require, requires
from appliance.views.common import ConsoleRequest, field_check, staged_form_page, submit_change
from destinations import (
    delivery_settings,
    entries,
    forms,
    ldap,
    lookup,
    probe,
    probe_history,
    store,
    tlsprobe,
    websecurity,
)
from destinations.entries import Entry
from destinations.models import (
    DEFAULT_DESTINATION,
    Destination,
    DestinationControls,
    LdapServer,
    LdapSettings,
    ProbeSource,
    TlsProbeRun,
    TlsSupport,
    UrlFiltering,
)

TEST = probe.TEST_CAPABILITY


def _test_result(request: ConsoleRequest, template: str, context: dict, report):
    """The report alone for htmx (swapped into #test-result), else the whole page with it."""
    if request.htmx and not request.htmx.boosted:
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
    if request.htmx and not request.htmx.boosted:
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
    if request.htmx and not request.htmx.boosted:
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
    if (checked := field_check(request, form)) is not None:
        return checked
    partial = request.htmx and not request.htmx.boosted
    template = "destinations/_destination_form.html" if partial else "destinations/destination_entry.html"
    context = {"form": form, "entry": row}
    if request.method != "POST" or not form.is_valid():
        return render(request, template, context, status=400 if request.method == "POST" else 200)
    entry = form.entry(DEFAULT_DESTINATION if for_default else None)
    if row is None:
        description = f"added destination {entry.name}"
    else:
        description = f"edited destination {row.name}"
    response = submit_change(
        request,
        description,
        lambda: store.save_destination(level, entry, original=row.name if row else None),
        success_url=reverse("destinations:destination_controls"),
        template=template,
        context=context,
    )
    if partial and response.status_code == 302:
        return HttpResponseClientRedirect(response["Location"])
    return response


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
    form = forms.ImportTableForm(request.POST or None, request.FILES or None)
    template = "destinations/destination_import.html"
    context = {"form": form}
    if request.method != "POST" or not form.is_valid():
        return render(request, template, context, status=400 if request.method == "POST" else 200)
    text = form.cleaned_data["table"]
    return submit_change(
        request,
        f"imported the destination table from {request.FILES['table'].name}",
        lambda: store.import_destinations(_table_level(request), text),
        success_url=reverse("destinations:destination_controls"),
        template=template,
        context=context,
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
    template = "destinations/destination_controls_settings.html"
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
        full_template=template,
        partial_template=template,  # the form posts in full; htmx asks only for field checks
        context={},
        success_url=reverse("destinations:destination_controls"),
    )


# --- Test TLS --------------------------------------------------------------------


@dataclass
class TlsServerRow:
    """One server of a Test TLS run, in the words of CheckTLS's TestReceiver."""

    probe: tlsprobe.HostProbe
    server: str  # host and address:port
    connect: str
    starttls: str
    tls: str
    cert: str
    name: str
    transcript: list[str]

    @property
    def ok(self) -> bool:
        return self.probe.verified


def _tls_server_row(found: tlsprobe.HostProbe, domain: str) -> TlsServerRow:
    where = f"{found.address}:{found.port}" if found.address else "no address"
    lines = tlsprobe.transcript(found, domain) if found.steps else [f"{found.host}: {found.error}"]
    return TlsServerRow(
        found,
        f"{found.host} [{where}]",
        found.connection_text,
        found.starttls_text or "—",
        found.tls_text or "—",
        found.certificate_text or "—",
        found.name_text or "—",
        lines,
    )


def _tls_report(domain: str, probes: list[tlsprobe.HostProbe]) -> dict:
    rows = [_tls_server_row(found, domain) for found in probes]
    modes = [(mode.label, [found.outcome(mode) for found in probes]) for mode in tlsprobe.MODES]
    return {"domain": domain, "rows": rows, "modes": modes}


@requires(Capability.VIEW_CONFIG)
def tls_test(request: ConsoleRequest):
    """Test TLS: probe a domain's mail servers (or one server) with the running configuration, as
    ``tlsverify`` does, and show CheckTLS's per-server table and what each TLS Support mode would do;
    the run is kept, and compared with the run of the same test before it."""
    running = workflow.machine_config()
    listeners = [item["listener_name"] for item in running.get("listeners", [])]
    form = forms.TlsTestForm(request.POST or None, listeners=listeners)
    context = {"form": form, "may_test": can(request.user, TEST), "tls_report": None}
    partial = request.htmx and not request.htmx.boosted
    template = "destinations/tls_test_form.html" if partial else "destinations/tls_test.html"
    if request.method != "POST":
        return render(request, template, context)
    require(request.user, TEST)
    if not form.is_valid():
        return render(request, template, context, status=400)
    domain = form.cleaned_data["domain"]
    host, port = form.cleaned_data["host"]
    listener = form.cleaned_data["listener"]
    probes = asyncio.run(tlsprobe.probe(running, domain, host, port, listener))
    run = probe_history.record(
        probe_history.Target.of(domain, host, port, listener), probes, request.user.username, ProbeSource.GUI
    )
    context["tls_report"] = _tls_report(domain, probes)
    context["tls_history"] = _tls_history(run)
    return render(request, template, context)


def _tls_history(run: TlsProbeRun) -> dict:
    comparison = probe_history.compare(run)
    previous = comparison.previous
    return {
        "target": run.target,
        "previous": previous,
        "previous_when": probe_history.when(previous) if previous else "",
        "differences": comparison.differences,
        "runs": [(probe_history.when(each), each) for each in probe_history.recent(run)],
    }


# --- Mail Delivery ---------------------------------------------------------------


@requires(Capability.VIEW_CONFIG)
def mail_delivery(request: ConsoleRequest):
    """Network > Mail Delivery: the settings (candidate) and Edit Settings."""
    rows = delivery_settings.describe(request.mode, delivery_settings.current())
    return render(request, "destinations/mail_delivery.html", {"rows": rows})


@requires(Capability.VIEW_CONFIG)
def mail_delivery_settings(request: ConsoleRequest):
    template = "destinations/mail_delivery_settings.html"
    return staged_form_page(
        request,
        forms.MailDeliveryForm(request.POST or None, initial=delivery_settings.current(), mode=request.mode),
        lambda data: (
            "edited the Mail Delivery settings",
            lambda: delivery_settings.set_delivery(request.mode, **data),
        ),
        full_template=template,
        partial_template=template,
        context={},
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
    context = {"form": form}
    template = "destinations/ldap_settings.html"
    if request.method != "POST":
        return render(request, template, context)
    if not form.is_valid():
        return render(request, template, context, status=400)
    return submit_change(
        request,
        "edited the LDAP global settings",
        lambda: store.set_ldap_certificate(request.mode, form.cleaned_data["certificate"]),
        success_url=reverse("destinations:ldap"),
        template=template,
        context=context,
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
            lambda: store.delete_ldap_server(level, server.name),
            success_url=reverse("destinations:ldap"),
            template=template,
            context=context,
        )
    if action == "test":
        require(request.user, TEST)
        report = (
            _ldap_test_typed(request, form, server)
            if form.is_valid()
            else _form_problems(form, "Test Server")
        )
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
        lambda: store.save_ldap_server(level, fields, original=server.name if server else None),
        success_url=reverse("destinations:ldap"),
        template=template,
        context=context,
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
        config = candidate_levels.seen_candidate(request.mode)
        report = websecurity.test_connection(endpoint, certificate, config)
        return _test_result(request, template, context, report)
    if not form.is_valid():
        return render(request, template, context, status=400)
    data = form.cleaned_data
    return submit_change(
        request,
        "edited the URL Filtering settings",
        lambda: store.set_url_filtering(
            request.mode, data["enabled"], data["endpoint"], data["client_certificate"]
        ),
        success_url=reverse("destinations:url_filtering"),
        template=template,
        context=context,
    )
