"""Network > IP Interfaces."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from appliance import dns
from appliance import interfaces as store
from appliance.config import candidate_levels, levels
from appliance.config.sections import registry
from appliance.forms import DnsForm, DnsLookupForm, InterfaceForm
from appliance.models import Interface, this_machine
from appliance.roles import Capability, requires
from appliance.views.common import ConsoleRequest, staged_form_page, submit_change


@requires(Capability.VIEW_CONFIG)
def interfaces(request: ConsoleRequest):
    used = registry.where_used("interfaces", request.mode)
    shown = Interface.objects.of(this_machine(request.mode))
    rows = [(interface, used.get(interface.name, [])) for interface in shown]
    return render(request, "appliance/interfaces.html", {"rows": rows})


@requires(Capability.VIEW_CONFIG)
def interface_edit(request: ConsoleRequest, name: str | None = None):
    original = None
    machine = this_machine(request.mode)
    if name is not None:
        interface = Interface.objects.of(machine).filter(name=name).first()
        if interface is None:
            raise Http404(f"There is no IP interface named '{name}'.")
        original = store.item_of(interface)
    # The certificates the interface's machine runs (its own, its group's or the cluster's), whatever
    # level the mode shows of the other features.
    machine_mode = candidate_levels.mode_for(levels.machine(machine) if machine else levels.CLUSTER)
    choices = [
        ("", "— none —"),
        *registry.sections["certificates"].choices(machine_mode.seen("certificates")),
    ]
    form = InterfaceForm(
        request.POST or None,
        certificate_choices=choices,
        initial=InterfaceForm.initial_from(original) if original else {"https_redirect": True},
    )

    def change(data):
        item = form.item()
        return (
            f"{'edited' if original else 'added'} IP interface {item['interface_name']}",
            lambda: store.save(request.mode, name, item),
        )

    return staged_form_page(
        request,
        form,
        change,
        full_template="appliance/interface_form.html",
        context={"original": original},
        success_url=reverse("interfaces"),
    )


@requires(Capability.VIEW_CONFIG)
@require_POST
def interface_delete(request: ConsoleRequest, name: str):
    return submit_change(
        request,
        f"deleted IP interface {name}",
        lambda: store.delete(request.mode, name),
        success_url=reverse("interfaces"),
        template="appliance/interfaces.html",
        context={"rows": [(i, []) for i in Interface.objects.of(this_machine(request.mode))]},
    )


def _dns_item(entries, ptr_timeout) -> list[dict]:
    return [{"dns_ip": entries, "dns_ptr_timeout": ptr_timeout}]


@requires(Capability.VIEW_CONFIG)
def dns_settings(request: ConsoleRequest):
    [current] = registry.get("dns").read()
    lines = "\n".join(f"{e['address']} {e['priority']}" for e in current["dns_ip"])
    form = DnsForm(
        request.POST if request.POST.get("action") == "save" else None,
        initial={"servers": lines, "ptr_timeout": current["dns_ptr_timeout"]},
    )
    lookup_form = DnsLookupForm(request.POST if request.POST.get("action") == "lookup" else None)
    context = {"lookup_form": lookup_form, "servers": current["dns_ip"]}
    if lookup_form.is_bound:  # the page's second form: it asks the servers and changes nothing
        if lookup_form.is_valid():
            name, record_type = lookup_form.cleaned_data["name"], lookup_form.cleaned_data["record_type"]
            try:
                context["answers"] = dns.lookup(registry.candidate(), name, record_type)
            except ValueError as exc:
                context["lookup_error"] = str(exc)
        return render(request, "appliance/dns.html", {"form": form, **context})
    return staged_form_page(
        request,
        form,
        lambda data: (
            "edited the DNS settings",
            lambda: registry.get("dns").write(_dns_item(data["servers"], data["ptr_timeout"])),
        ),
        full_template="appliance/dns.html",
        context=context,
        success_url=reverse("dns"),
    )
