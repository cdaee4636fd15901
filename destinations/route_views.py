"""Network > SMTP Routes: the routes, Add Route, Edit Route and Delete."""

from __future__ import annotations

from django import forms
from django.http import Http404
from django.shortcuts import render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from appliance.forms import config_validator
from appliance.roles import Capability, requires
from appliance.views.common import ConsoleRequest, staged_form_page, submit_change
from destinations import routes
from destinations.models import SmtpRoute


class SmtpRouteForm(forms.Form):
    domain = forms.CharField(
        label="Receiving Domain",
        max_length=254,
        validators=[config_validator(routes.canonical_domain)],
        help_text="example.com, .example.com for every host below it, or ALL for the default route.",
    )
    hosts = forms.CharField(
        label="Destination Hosts",
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text=(
            "One per line: host[:port] and an optional priority (0-65535, lower first), "
            "e.g. mx1.example.net:2525 10; USEDNS delivers by MX; /dev/null drops the mail."
        ),
        error_messages={"required": "Give at least one destination host (or USEDNS, or /dev/null)"},
    )

    def __init__(self, *args, route: SmtpRoute | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if route is not None:
            self.fields["domain"].disabled = True
            self.initial = {
                "domain": route.domain,
                "hosts": "\n".join(
                    hop["host"] if hop["priority"] is None else f"{hop['host']} {hop['priority']}"
                    for hop in route.hosts
                ),
            }

    def clean_hosts(self) -> list[dict]:
        hops, errors = [], []
        for line in self.cleaned_data["hosts"].splitlines():
            if not line.strip():
                continue
            try:
                hops.append(routes.parse_line(line))
            except ValueError as exc:
                errors.append(str(exc))
        errors += [] if errors else routes.host_problems(hops)
        if errors:
            raise forms.ValidationError(errors)
        return hops


def _route(domain: str) -> SmtpRoute:
    route = SmtpRoute.objects.filter(domain=domain).first()
    if route is None:
        raise Http404(f"There is no SMTP route for {domain}.")
    return route


def _list_context() -> dict:
    return {"routes": SmtpRoute.objects.all()}


@requires(Capability.VIEW_CONFIG)
def route_list(request: ConsoleRequest):
    return render(request, "destinations/smtp_routes.html", _list_context())


@requires(Capability.VIEW_CONFIG)
def add_route(request: ConsoleRequest):
    return _form_page(request, None)


@requires(Capability.VIEW_CONFIG)
def edit_route(request: ConsoleRequest, domain: str):
    return _form_page(request, _route(domain))


def _form_page(request: ConsoleRequest, route: SmtpRoute | None):
    def change(data):
        if route is None:
            domain = routes.canonical_domain(data["domain"])
            return f"added SMTP route {domain}", lambda: routes.create(domain, data["hosts"])
        return f"edited SMTP route {route.domain}", lambda: routes.edit(route.domain, data["hosts"])

    return staged_form_page(
        request,
        SmtpRouteForm(request.POST or None, route=route),
        change,
        full_template="destinations/smtp_routes_form.html",
        context={"route": route},
        success_url=reverse("destinations:smtp_routes"),
    )


@requires(Capability.VIEW_CONFIG)
@require_POST
def delete_route(request: ConsoleRequest, domain: str):
    _route(domain)
    return submit_change(
        request,
        f"deleted SMTP route {domain}",
        lambda: routes.delete(domain),
        success_url=reverse("destinations:smtp_routes"),
        template="destinations/smtp_routes.html",
        context=_list_context(),
    )


# Included under the destinations namespace; a domain goes after a fixed word.
urlpatterns = [
    path("", route_list, name="smtp_routes"),
    path("add/", add_route, name="smtp_route_add"),
    path("edit/<str:domain>/", edit_route, name="smtp_route_edit"),
    path("delete/<str:domain>/", delete_route, name="smtp_route_delete"),
]
