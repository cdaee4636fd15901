"""Mail Policies > Mail Flow Policies and HAT Overview: each listener's policies and sender groups.

The pages pick a listener (``?listener=NAME``, else the first), parse the forms and
stage every change through ``submit_change`` with an operation of ``listeners.hat``,
which refuses in the admin's words (a Read-Only Operator sees a preview). Find
Senders and Export HAT change nothing and read the candidate rows directly.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from appliance.roles import Capability, requires
from appliance.views.common import ConsoleRequest, partial_wanted, staged_form_page, submit_change
from appliance.workflow import Outcome
from listeners import hat, hatfile
from listeners.hat_forms import (
    AddSendersForm,
    DefaultParametersForm,
    FindSendersForm,
    ImportHatForm,
    PolicyForm,
    SenderGroupForm,
    shown_limit,
    split_senders,
)
from listeners.models import (
    LIMIT_LABELS,
    POLICY_LIMITS,
    InboundTls,
    Listener,
    MailFlowPolicy,
    SenderEntry,
    SenderGroup,
)
from listeners.senders import ALL
from listeners.views import listener_or_404, listener_page

SENDERS_PAGE_SIZE = 100


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


# --- finding what the URL names ------------------------------------------------------------


def _selected_listener(request: ConsoleRequest) -> Listener | None:
    """The listener chosen with ``?listener=``, else the first (None: there is none)."""
    name = request.GET.get("listener")
    first = Listener.objects.at(request.mode.seen("listeners")).order_by("name").first()
    return listener_or_404(request, name) if name else first


def _policy(listener: Listener, name: str) -> MailFlowPolicy:
    row = listener.policies.filter(name=name).first()
    if row is None:
        raise Http404(f"Listener {listener.name} has no mail flow policy named '{name}'.")
    return row


def _group(listener: Listener, name: str) -> SenderGroup:
    row = listener.sender_groups.filter(name=name).first()
    if row is None:
        raise Http404(f"Listener {listener.name} has no sender group named '{name}'.")
    return row


def _selector(listener: Listener | None, url_name: str) -> dict:
    """The listener shown and the others of its level (none shown: its level has none)."""
    names = (
        Listener.objects.at(listener.level).order_by("name").values_list("name", flat=True)
        if listener
        else []
    )
    return {
        "listener": listener,
        "listener_names": names,
        "selector_url": reverse(url_name),
    }


# --- what a policy's TLS comes to ------------------------------------------------------------


def tls_shown(listener: Listener, policy: MailFlowPolicy) -> dict:
    """TLS, Verify Client Certificate and the address list as the table shows them: a policy that
    uses the Default Policy Parameters shows "Use Default (…)" with what they are now."""
    settings = hat.effective_tls(
        {"default_policy_parameters": hat.default_parameters_item(listener)}, hat.policy_item(policy)
    )
    shown = {
        "tls": InboundTls(settings.tls).label,
        "verify": "Yes" if settings.verify_client else "No",
        "address_list": settings.mandatory_address_list or "None",
    }
    if policy.tls == InboundTls.DEFAULT:
        shown = {key: f"Use Default ({value})" for key, value in shown.items()}
    return shown


def limits_shown(listener: Listener, policy: MailFlowPolicy) -> list[str]:
    """The policy's limits in POLICY_LIMITS order as the table shows them: its own, or "Use Default (…)"
    with what the Default Policy Parameters say now."""
    shown = []
    for tag in POLICY_LIMITS:
        own = getattr(policy, tag)
        if own is None:
            shown.append(f"Use Default ({shown_limit(tag, getattr(listener, f'default_{tag}'))})")
        else:
            shown.append(shown_limit(tag, own))
    return shown


def _default_shown(tag: str, value: int) -> str:
    """A Default Policy Parameters limit: a size as entered, in bytes, and in MB or KB."""
    return f"{value} ({shown_limit(tag, value)})" if tag == "max_message_size" else shown_limit(tag, value)


# --- Mail Flow Policies ----------------------------------------------------------------------


def _policies_context(listener: Listener | None) -> dict:
    rows = hat.policies_overview(listener) if listener else []
    for row in rows:
        row.shown = tls_shown(listener, row)
        row.limits_shown = limits_shown(listener, row)
    return {
        **_selector(listener, "listeners:policies"),
        "policies": rows,
        "default_tls": InboundTls(listener.default_tls).label if listener else "",
        "limit_labels": [LIMIT_LABELS[tag] for tag in POLICY_LIMITS],
        "default_limits": [
            (LIMIT_LABELS[tag], _default_shown(tag, getattr(listener, f"default_{tag}")))
            for tag in POLICY_LIMITS
        ]
        if listener
        else [],
    }


@requires(Capability.VIEW_CONFIG)
def policies(request: ConsoleRequest):
    """The listener's policies and its Default Policy Parameters."""
    return render(request, "listeners/hat/policies.html", _policies_context(_selected_listener(request)))


@requires(Capability.VIEW_CONFIG)
def add_policy(request: ConsoleRequest, listener: str):
    return _policy_page(request, listener_or_404(request, listener), None)


@requires(Capability.VIEW_CONFIG)
def edit_policy(request: ConsoleRequest, listener: str, name: str):
    row = listener_or_404(request, listener)
    return _policy_page(request, row, _policy(row, name))


def _policy_page(request: ConsoleRequest, listener: Listener, policy: MailFlowPolicy | None):
    form = PolicyForm(
        request.POST or None, initial=PolicyForm.initial_for(policy) if policy else None, listener=listener
    )

    def change(data):
        settings = {
            key: data[key]
            for key in ("connection_behavior", "tls", "tls_verify_client", "tls_mandatory_address_list")
        }
        settings["limits"] = {tag: data[tag] for tag in POLICY_LIMITS}
        if policy is None:
            return (
                f"added mail flow policy {data['name']} to listener {listener.name}",
                lambda: hat.save_policy(listener.level, listener.name, data["name"], create=True, **settings),
            )
        return (
            f"edited mail flow policy {policy.name} of listener {listener.name}",
            lambda: hat.save_policy(
                listener.level, listener.name, policy.name, new_name=data["name"], **settings
            ),
        )

    return staged_form_page(
        request,
        form,
        change,
        full_template="listeners/hat/policy_form.html",
        partial_template="listeners/hat/_policy_form.html",
        context={"listener": listener, "policy": policy},
        success_url=listener_page("listeners:policies", listener),
    )


@requires(Capability.VIEW_CONFIG)
def default_parameters(request: ConsoleRequest, listener: str):
    row = listener_or_404(request, listener)
    form = DefaultParametersForm(
        request.POST or None, initial=DefaultParametersForm.initial_for(row), listener=row
    )

    def change(data):
        return (
            f"edited the Default Policy Parameters of listener {row.name}",
            lambda: hat.set_default_parameters(
                row.level,
                row.name,
                tls=data["tls"],
                tls_verify_client=data["tls_verify_client"],
                tls_mandatory_address_list=data["tls_mandatory_address_list"],
                limits={tag: data[tag] for tag in POLICY_LIMITS},
            ),
        )

    return staged_form_page(
        request,
        form,
        change,
        full_template="listeners/hat/default_parameters.html",
        partial_template="listeners/hat/_default_parameters_form.html",
        context={"listener": row},
        success_url=listener_page("listeners:policies", row),
    )


@requires(Capability.VIEW_CONFIG)
@require_POST
def delete_policy(request: ConsoleRequest, listener: str, name: str):
    """Delete a policy; refused while a sender group uses it (the message names them)."""
    row = listener_or_404(request, listener)
    _policy(row, name)
    return submit_change(
        request,
        f"deleted mail flow policy {name} of listener {row.name}",
        lambda: hat.delete_policy(row.level, row.name, name),
        success_url=listener_page("listeners:policies", row),
        template="listeners/hat/policies.html",
        context=_policies_context(row),
    )


# --- HAT Overview ------------------------------------------------------------------------


def _hat_context(listener: Listener | None, **extra) -> dict:
    return {
        **_selector(listener, "listeners:hat"),
        "groups": hat.groups_overview(listener) if listener else [],
        "find_form": FindSendersForm(),
        **extra,
    }


@requires(Capability.VIEW_CONFIG)
def hat_overview(request: ConsoleRequest):
    """The listener's sender groups in order, Find Senders, Import HAT and Export HAT."""
    return render(request, "listeners/hat/overview.html", _hat_context(_selected_listener(request)))


@requires(Capability.VIEW_CONFIG)
def find_senders(request: ConsoleRequest, listener: str):
    """Which sender group and policy a host gets: the answer alone for htmx, else the page with it."""
    row = listener_or_404(request, listener)
    form = FindSendersForm(request.GET or None)
    context = {"find_form": form, "finding": None, "find_error": ""}
    if form.is_bound and not form.is_valid():
        context["find_error"] = "; ".join(
            f"{form.fields[name].label}: {' '.join(errors)}" for name, errors in form.errors.items()
        )
    elif form.is_valid():
        try:
            finding = hat.find_senders(row, form.cleaned_data["address"], form.cleaned_data["hostname"])
        except hat.HatRefused as refusal:
            context["find_error"] = str(refusal)
        else:
            context["finding"] = finding
            context["finding_tls"] = tls_shown(row, finding.policy) if finding.policy else None
    if partial_wanted(request):
        return render(request, "listeners/hat/_find.html", {"listener": row, **context})
    return render(request, "listeners/hat/overview.html", _hat_context(row, **context))


def _group_order(group: SenderGroup) -> int:
    """The group's place in the HAT, 1 first (positions may have gaps after a delete)."""
    return SenderGroup.objects.filter(listener_id=group.listener_id, position__lt=group.position).count() + 1


@requires(Capability.VIEW_CONFIG)
def add_group(request: ConsoleRequest, listener: str):
    return _group_form_page(request, listener_or_404(request, listener), None)


@requires(Capability.VIEW_CONFIG)
def edit_group(request: ConsoleRequest, listener: str, name: str):
    row = listener_or_404(request, listener)
    return _group_form_page(request, row, _group(row, name))


def _group_form_page(request: ConsoleRequest, listener: Listener, group: SenderGroup | None):
    """Add Sender Group (then, on "Submit and Add Senders", its Add Senders page) or Edit Sender Group."""
    initial = (
        {
            "name": group.name,
            "order": _group_order(group),
            "comment": group.comment,
            "policy": group.policy_name,
        }
        if group
        else None
    )
    form = SenderGroupForm(
        request.POST or None,
        initial=initial,
        listener=listener,
        group=group,
        group_count=listener.sender_groups.exclude(name=ALL).count(),
    )

    def change(data):
        settings = {"policy_name": data["policy"], "comment": data["comment"]}
        if group is None:
            return (
                f"added sender group {data['name']} to listener {listener.name}",
                lambda: hat.save_group(
                    listener.level, listener.name, data["name"], order=data["order"], create=True, **settings
                ),
            )
        if group.name == ALL:  # keeps its name and its place
            return (
                f"edited sender group ALL of listener {listener.name}",
                lambda: hat.save_group(listener.level, listener.name, ALL, **settings),
            )
        return (
            f"edited sender group {group.name} of listener {listener.name}",
            lambda: hat.save_group(
                listener.level,
                listener.name,
                group.name,
                new_name=data["name"],
                order=data["order"],
                **settings,
            ),
        )

    success_url = listener_page("listeners:hat", listener)
    if request.method == "POST" and form.is_valid():
        name = form.cleaned_data["name"]
        if group is None and request.POST.get("then") == "add_senders":
            success_url = reverse("listeners:senders_add", args=[listener.name, name])
        elif group is not None:
            success_url = reverse("listeners:group", args=[listener.name, name])
    return staged_form_page(
        request,
        form,
        change,
        full_template="listeners/hat/group_form.html",
        partial_template="listeners/hat/_group_form.html",
        context={"listener": listener, "group": group},
        success_url=success_url,
    )


@requires(Capability.VIEW_CONFIG)
@require_POST
def delete_group(request: ConsoleRequest, listener: str, name: str):
    row = listener_or_404(request, listener)
    _group(row, name)
    return submit_change(
        request,
        f"deleted sender group {name} of listener {row.name}",
        lambda: hat.delete_group(row.level, row.name, name),
        success_url=listener_page("listeners:hat", row),
        template="listeners/hat/overview.html",
        context=_hat_context(row),
    )


# --- one sender group ------------------------------------------------------------------------


def _entries(request: ConsoleRequest, group: SenderGroup) -> dict:
    """One page of the group's senders, in order, searched by ``q``: two queries."""
    rows = group.entries.order_by("position").only("id", "group_id", "host", "position")
    query = request.GET.get("q", "").strip()
    if query:
        rows = rows.filter(host__icontains=query)
    page = Paginator(rows, SENDERS_PAGE_SIZE).get_page(request.GET.get("page"))
    return {"page": page, "query": query}


def _group_context(request: ConsoleRequest, listener: Listener, group: SenderGroup) -> dict:
    return {
        "listener": listener,
        "group": group,
        "order": _group_order(group),
        "policy": listener.policies.filter(name=group.policy_name).first(),
        **_entries(request, group),
    }


@requires(Capability.VIEW_CONFIG)
def group_page(request: ConsoleRequest, listener: str, name: str):
    """The sender group: its settings and senders (100 a page, searchable); POST removes the ticked ones."""
    row = listener_or_404(request, listener)
    group = _group(row, name)
    if request.method != "POST":
        if partial_wanted(request):
            return render(
                request, "listeners/hat/_entries.html", {"group": group, **_entries(request, group)}
            )
        return render(request, "listeners/hat/group.html", _group_context(request, row, group))
    hosts = request.POST.getlist("host")
    here = request.get_full_path()
    if not hosts:
        messages.error(request, "Select the senders to remove.")
        return redirect(here)
    return submit_change(
        request,
        f"removed {_plural(len(hosts), 'sender')} from sender group {group.name} of listener {row.name}",
        lambda: hat.remove_senders(row.level, row.name, group.name, hosts),
        success_url=here,
        template="listeners/hat/group.html",
        context=_group_context(request, row, group),
    )


@requires(Capability.VIEW_CONFIG)
def add_senders(request: ConsoleRequest, listener: str, name: str):
    """Add Senders: at the end of the group; overlaps with other groups come back as notes."""
    row = listener_or_404(request, listener)
    group = _group(row, name)
    form = AddSendersForm(request.POST or None)

    def change(data):
        texts = split_senders(data["senders"])
        return (
            f"added {_plural(len(texts), 'sender')} to sender group {group.name} of listener {row.name}",
            lambda: hat.add_senders(row.level, row.name, group.name, texts),
        )

    return staged_form_page(
        request,
        form,
        change,
        full_template="listeners/hat/add_senders.html",
        partial_template="listeners/hat/_add_senders_form.html",
        context={"listener": row, "group": group},
        success_url=reverse("listeners:group", args=[row.name, group.name]),
    )


# --- Import HAT / Export HAT ---------------------------------------------------------------


def _import(listener: Listener, text: str) -> Outcome:
    groups = hatfile.parse_hat(text)
    hat.replace_hat(listener.level, listener.name, groups)
    count = sum(len(group["host"]) for group in groups if group["sender_group_name"] != ALL)
    return Outcome(
        notes=[f"Imported {_plural(len(groups), 'sender group')} with {_plural(count, 'sender')}."]
    )


@requires(Capability.VIEW_CONFIG)
def import_hat(request: ConsoleRequest, listener: str):
    """Import HAT: the text (typed or a file) replaces the listener's sender groups; its policies stay."""
    row = listener_or_404(request, listener)
    form = ImportHatForm(request.POST or None, request.FILES or None)
    return staged_form_page(
        request,
        form,
        lambda data: (
            f"imported the HAT of listener {row.name}",
            lambda: _import(row, form.imported_text),
        ),
        full_template="listeners/hat/import.html",
        context={"listener": row},
        success_url=listener_page("listeners:hat", row),
    )


@requires(Capability.VIEW_CONFIG)
def export_hat(request: ConsoleRequest, listener: str):
    """Export HAT: the candidate sender groups as text, in order (three queries, however many senders)."""
    row = listener_or_404(request, listener)
    groups = row.sender_groups.order_by("position").prefetch_related(
        Prefetch("entries", SenderEntry.objects.order_by("position").only("group_id", "host"))
    )
    items = [
        {
            "sender_group_name": group.name,
            "policy": group.policy_name,
            "comment": group.comment,
            "host": [entry.host for entry in group.entries.all()],
        }
        for group in groups
    ]
    response = HttpResponse(hatfile.format_hat(row.name, items), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="hat-{row.name}.txt"'
    return response


# Included under the listeners namespace; names go after a fixed word.
policy_urlpatterns = [
    path("", policies, name="policies"),
    path("add/<str:listener>/", add_policy, name="policy_add"),
    path("edit/<str:listener>/<str:name>/", edit_policy, name="policy_edit"),
    path("delete/<str:listener>/<str:name>/", delete_policy, name="policy_delete"),
    path("default/<str:listener>/", default_parameters, name="default_parameters"),
]
hat_urlpatterns = [
    path("", hat_overview, name="hat"),
    path("add/<str:listener>/", add_group, name="group_add"),
    path("edit/<str:listener>/<str:name>/", edit_group, name="group_edit"),
    path("delete/<str:listener>/<str:name>/", delete_group, name="group_delete"),
    path("group/<str:listener>/<str:name>/", group_page, name="group"),
    path("add-senders/<str:listener>/<str:name>/", add_senders, name="senders_add"),
    path("find/<str:listener>/", find_senders, name="find_senders"),
    path("import/<str:listener>/", import_hat, name="hat_import"),
    path("export/<str:listener>/", export_hat, name="hat_export"),
]
