"""Mail Policies > Recipient Access Table: a public listener's RAT, edited whole or entry by entry.

The page picks a public listener (``?listener=NAME``, else the first by name); a
private listener has no RAT (it relays for its RELAYLIST hosts). Every change is
staged through ``submit_change`` with an operation of ``listeners.rat_forms``, which
ends in ``rat.replace`` (a Read-Only Operator sees a preview). Edit RAT and Import
RAT are checked line by line before the submit, so their errors stand next to the
field. Export RAT and Test Recipient change nothing and read the candidate rows.
"""

from __future__ import annotations

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from appliance.roles import Capability, requires
from appliance.views.common import ConsoleRequest, partial_wanted, staged_form_page, submit_change
from listeners import rat
from listeners.models import Listener, RatEntry
from listeners.rat import ALL
from listeners.rat_forms import EditRatForm, EntryForm, ImportRatForm, RecipientLookupForm
from listeners.views import listener_or_404, listener_page

# --- finding what the URL names ------------------------------------------------------------


def _public_listener(request: ConsoleRequest, name: str) -> Listener:
    row = listener_or_404(request, name)
    if row.listener_type != Listener.Type.PUBLIC:
        raise Http404(rat.PRIVATE.format(name=row.name) + ".")
    return row


def _entry(listener: Listener, recipient: str) -> RatEntry:
    row = listener.rat_entries.filter(recipient=recipient).first()
    if row is None:
        raise Http404(f"The RAT of listener {listener.name} has no entry for '{recipient}'.")
    return row


def _names(level: str, listener_type: str) -> list[str]:
    listeners = Listener.objects.at(level).filter(listener_type=listener_type)
    return list(listeners.order_by("name").values_list("name", flat=True))


# --- the table ---------------------------------------------------------------------------------


def _rat_context(request: ConsoleRequest, listener: Listener | None, **extra) -> dict:
    level = request.mode.seen("listeners")
    return {
        "listener": listener,
        "listener_names": _names(level, Listener.Type.PUBLIC),
        "private_names": _names(level, Listener.Type.PRIVATE),
        "selector_url": reverse("listeners:rat"),
        "entries": list(listener.rat_entries.order_by("position")) if listener else [],
        "lookup_form": RecipientLookupForm(),
        **extra,
    }


@requires(Capability.VIEW_CONFIG)
def rat_overview(request: ConsoleRequest):
    """The listener's RAT in order, with Add Entry, Edit RAT, Import/Export RAT and Test Recipient."""
    name = request.GET.get("listener")
    row = listener_or_404(request, name) if name else None
    if row is not None and row.listener_type != Listener.Type.PUBLIC:
        return render(
            request, "listeners/rat/overview.html", _rat_context(request, None, private_listener=row)
        )
    if row is None:
        public = Listener.objects.at(request.mode.seen("listeners")).filter(
            listener_type=Listener.Type.PUBLIC
        )
        row = public.order_by("name").first()
    return render(request, "listeners/rat/overview.html", _rat_context(request, row))


@requires(Capability.VIEW_CONFIG)
def lookup_recipient(request: ConsoleRequest, listener: str):
    """Which entry decides for an address: the answer alone for htmx, else the page with it."""
    row = _public_listener(request, listener)
    form = RecipientLookupForm(request.GET or None)
    context = {"lookup_form": form, "lookup": None, "lookup_error": ""}
    if form.is_bound and not form.is_valid():
        context["lookup_error"] = " ".join(form.errors["address"])
    elif form.is_valid():
        entries = rat.table(row)
        entry = rat.decide(entries, form.cleaned_data["address"])
        context["lookup"] = {
            "address": form.cleaned_data["address"],
            "entry": entry,
            "order": entries.index(entry) + 1 if entry else None,
            "accepted": entry is not None and entry["action"] == rat.Action.ACCEPT,
        }
    if partial_wanted(request):
        return render(request, "listeners/rat/_test.html", {"listener": row, **context})
    return render(request, "listeners/rat/overview.html", _rat_context(request, row, **context))


# --- Edit RAT, Import RAT, Export RAT --------------------------------------------------------


def _as_text(entries: list[dict]) -> str:
    """The entries as Edit RAT shows them: Export RAT's lines without its header comments."""
    lines = rat.format_table("", entries).splitlines()
    return "".join(f"{line}\n" for line in lines if not line.startswith("#"))


@requires(Capability.VIEW_CONFIG)
def edit_rat(request: ConsoleRequest, listener: str):
    """Edit RAT: the whole table as text, one entry a line."""
    row = _public_listener(request, listener)
    form = EditRatForm(request.POST or None, initial={"text": _as_text(rat.table(row))})

    def change(data):
        entries = data["entries"]
        return f"edited the RAT of listener {row.name}", lambda: rat.set_table(row.level, row.name, entries)

    return staged_form_page(
        request,
        form,
        change,
        full_template="listeners/rat/edit.html",
        partial_template="listeners/rat/_edit_form.html",
        context={"listener": row},
        success_url=listener_page("listeners:rat", row),
    )


@requires(Capability.VIEW_CONFIG)
def import_rat(request: ConsoleRequest, listener: str):
    """Import RAT: the text (typed or a file) replaces every entry of the listener's RAT."""
    row = _public_listener(request, listener)
    form = ImportRatForm(request.POST or None, request.FILES or None)
    return staged_form_page(
        request,
        form,
        lambda data: (
            f"imported the RAT of listener {row.name}",
            lambda: rat.import_table(row.level, row.name, form.imported_text),
        ),
        full_template="listeners/rat/import.html",
        context={"listener": row},
        success_url=listener_page("listeners:rat", row),
    )


@requires(Capability.VIEW_CONFIG)
def export_rat(request: ConsoleRequest, listener: str):
    """Export RAT: the candidate entries as text, in order, as Import RAT reads it."""
    row = _public_listener(request, listener)
    response = HttpResponse(
        rat.format_table(row.name, rat.table(row)), content_type="text/plain; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="rat-{row.name}.txt"'
    return response


# --- one entry -------------------------------------------------------------------------------


def _others(listener: Listener) -> int:
    return listener.rat_entries.exclude(recipient=ALL).count()


@requires(Capability.VIEW_CONFIG)
def add_entry(request: ConsoleRequest, listener: str):
    row = _public_listener(request, listener)
    form = EntryForm(request.POST or None, entry_count=_others(row))

    def change(data):
        return (
            f"added RAT entry {data['recipient']} to listener {row.name}",
            lambda: rat.add_entry(row.level, row.name, data["recipient"], data["action"], data["order"]),
        )

    return staged_form_page(
        request,
        form,
        change,
        full_template="listeners/rat/entry_form.html",
        partial_template="listeners/rat/_entry_form.html",
        context={"listener": row, "entry": None},
        success_url=listener_page("listeners:rat", row),
    )


@requires(Capability.VIEW_CONFIG)
def edit_entry(request: ConsoleRequest, listener: str, recipient: str):
    row = _public_listener(request, listener)
    entry = _entry(row, recipient)
    order = row.rat_entries.filter(position__lt=entry.position).count() + 1
    form = EntryForm(
        request.POST or None,
        initial={"recipient": entry.recipient, "action": entry.action, "order": order},
        entry_count=_others(row),
        recipient=entry.recipient,
    )

    def change(data):
        if entry.recipient == ALL:  # keeps its recipient and its place
            apply = lambda: rat.edit_entry(row.level, row.name, ALL, action=data["action"])  # noqa: E731
        else:
            apply = lambda: rat.edit_entry(  # noqa: E731
                row.level,
                row.name,
                entry.recipient,
                new_recipient=data["recipient"],
                action=data["action"],
                order=data["order"],
            )
        return f"edited RAT entry {entry.recipient} of listener {row.name}", apply

    return staged_form_page(
        request,
        form,
        change,
        full_template="listeners/rat/entry_form.html",
        partial_template="listeners/rat/_entry_form.html",
        context={"listener": row, "entry": entry},
        success_url=listener_page("listeners:rat", row),
    )


@requires(Capability.VIEW_CONFIG)
@require_POST
def delete_entry(request: ConsoleRequest, listener: str, recipient: str):
    """Delete an entry; ALL stays (its action can change)."""
    row = _public_listener(request, listener)
    _entry(row, recipient)
    return submit_change(
        request,
        f"deleted RAT entry {recipient} of listener {row.name}",
        lambda: rat.delete_entry(row.level, row.name, recipient),
        success_url=listener_page("listeners:rat", row),
        template="listeners/rat/overview.html",
        context=_rat_context(request, row),
    )


# Included under the listeners namespace; names go after a fixed word.
urlpatterns = [
    path("", rat_overview, name="rat"),
    path("edit/<str:listener>/", edit_rat, name="rat_edit"),
    path("import/<str:listener>/", import_rat, name="rat_import"),
    path("export/<str:listener>/", export_rat, name="rat_export"),
    path("test/<str:listener>/", lookup_recipient, name="rat_test"),
    path("add/<str:listener>/", add_entry, name="rat_entry_add"),
    path("entry/<str:listener>/<str:recipient>/", edit_entry, name="rat_entry_edit"),
    path("delete/<str:listener>/<str:recipient>/", delete_entry, name="rat_entry_delete"),
]
