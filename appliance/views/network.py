"""Network > IP Interfaces."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from appliance import interfaces as store
from appliance.config.sections import registry
from appliance.forms import InterfaceForm
from appliance.models import Interface
from appliance.roles import Capability, requires
from appliance.views.common import ConsoleRequest, submit_change
from certificates import selectors


@requires(Capability.VIEW_CONFIG)
def interfaces(request: ConsoleRequest):
    used = registry.where_used("interfaces")
    rows = [(interface, used.get(interface.name, [])) for interface in Interface.objects.all()]
    return render(request, "appliance/interfaces.html", {"rows": rows})


@requires(Capability.VIEW_CONFIG)
def interface_edit(request: ConsoleRequest, name: str | None = None):
    original = None
    if name is not None:
        interface = Interface.objects.filter(name=name).first()
        if interface is None:
            raise Http404(f"There is no IP interface named '{name}'.")
        original = store.item_of(interface)
    choices = selectors.certificate_choices(blank="— none —")
    form = InterfaceForm(
        request.POST or None,
        certificate_choices=choices,
        initial=InterfaceForm.initial_from(original) if original else {"https_redirect": True},
    )
    context = {"form": form, "original": original}
    if request.method != "POST" or not form.is_valid():
        return render(
            request, "appliance/interface_form.html", context, status=400 if request.method == "POST" else 200
        )
    item = form.item()
    response = submit_change(
        request,
        f"{'edited' if original else 'added'} IP interface {item['interface_name']}",
        lambda: store.save(name, item),
        success_url=reverse("interfaces"),
        template="appliance/interface_form.html",
        context=context,
    )
    return response


@requires(Capability.VIEW_CONFIG)
@require_POST
def interface_delete(request: ConsoleRequest, name: str):
    return submit_change(
        request,
        f"deleted IP interface {name}",
        lambda: store.delete(name),
        success_url=reverse("interfaces"),
        template="appliance/interfaces.html",
        context={"rows": [(i, []) for i in Interface.objects.all()]},
    )
