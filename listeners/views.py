"""Network > Listeners: the list, Add Listener, Edit Listener and Delete."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from appliance import interfaces
from appliance.roles import Capability, requires
from appliance.views.common import ConsoleRequest, staged_form_page, submit_change
from listeners import store
from listeners.forms import ListenerForm
from listeners.models import Listener


def _list_context(request: ConsoleRequest) -> dict:
    by_name = {item["interface_name"]: item for item in interfaces.candidate_items(request.mode)}
    shown = Listener.objects.at(request.mode.seen("listeners"))
    return {"rows": [(listener, by_name.get(listener.interface_name)) for listener in shown]}


def listener_or_404(request: ConsoleRequest, name: str) -> Listener:
    """The listener a URL names, of the level the request's mode sees (the Mail Policies pages use it
    too)."""
    listener = Listener.objects.at(request.mode.seen("listeners")).filter(name=name).first()
    if listener is None:
        raise Http404(f"There is no listener named '{name}'.")
    return listener


def listener_page(url_name: str, listener: Listener) -> str:
    """A page that shows one listener at a time (Mail Flow Policies, HAT Overview, RAT), for it."""
    return f"{reverse(url_name)}?{urlencode({'listener': listener.name})}"


@requires(Capability.VIEW_CONFIG)
def listener_list(request: ConsoleRequest):
    return render(request, "listeners/list.html", _list_context(request))


@requires(Capability.VIEW_CONFIG)
def add_listener(request: ConsoleRequest):
    return _form_page(request, None)


@requires(Capability.VIEW_CONFIG)
def edit_listener(request: ConsoleRequest, name: str):
    return _form_page(request, listener_or_404(request, name))


def _form_page(request: ConsoleRequest, listener: Listener | None):
    """Add (``listener`` None) or edit: the form, then the change staged through the workflow."""
    initial = ListenerForm.initial_for(listener) if listener else None
    form = ListenerForm(request.POST or None, initial=initial, mode=request.mode)

    def change(data):
        keys = ("listener_type", "interface_name", "port", "certificate_name", *store.LISTENER_LIMITS)
        settings = {key: data[key] for key in keys}
        if listener is None:
            return f"created listener {data['name']}", lambda: store.create(
                request.mode, data["name"], **settings
            )
        return f"edited listener {listener.name}", lambda: store.edit(
            request.mode, listener.name, new_name=data["name"], **settings
        )

    return staged_form_page(
        request,
        form,
        change,
        full_template="listeners/form.html",
        partial_template="listeners/_form.html",
        context={"listener": listener},
        success_url=reverse("listeners:list"),
    )


@requires(Capability.VIEW_CONFIG)
@require_POST
def delete_listener(request: ConsoleRequest, name: str):
    listener = listener_or_404(request, name)
    return submit_change(
        request,
        f"deleted listener {name}",
        lambda: store.delete(listener.level, name),
        success_url=reverse("listeners:list"),
        template="listeners/list.html",
        context=_list_context(request),
    )
