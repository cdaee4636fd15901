"""What the console's views share: the request type, the audit source, and how a form is submitted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from appliance import workflow
from appliance.config import levels
from appliance.forms import CHECK_FIELD, DRAWN_FOR

FIELD_TEMPLATE = "appliance/_field.html"


class ConsoleRequest(HttpRequest):
    htmx: HtmxDetails
    mode: levels.Mode  # the session's (``appliance.modes.ModeMiddleware``)


def back_to_next(request: HttpRequest, fallback: str) -> HttpResponse:
    """Redirect to the form's ``next`` (a page of this console only), else to ``fallback``."""
    next_url = request.POST.get("next", "")
    if next_url.startswith("/") and url_has_allowed_host_and_scheme(
        next_url, {request.get_host()}, require_https=True
    ):
        return HttpResponseRedirect(next_url)
    return redirect(fallback)


def source_of(request: HttpRequest) -> str:
    """How the audit log names where a request came from."""
    return f"GUI {request.META.get('REMOTE_ADDR', '')}"


def field_check(request: ConsoleRequest, form) -> HttpResponse | None:
    """The answer to an inline check, or None when the request is none (the form then goes on as usual).

    A check is the whole form posted with ``_validate=<field>`` (``_field.html`` sends it when the
    field changes, for a ``CheckedForm``). The form is validated; the answer is that field's block,
    with its error or none, and the blocks of the fields it governs that were drawn for another value
    of it, drawn anew without errors and swapped in out of band (one the administrator may be choosing
    in now is left alone when its choices stay). Nothing is submitted, staged or audited.
    """
    name = request.POST.get(CHECK_FIELD) if request.method == "POST" else None
    if not name or not getattr(form, "checked_live", False):
        return None
    if name not in form.fields:
        return HttpResponseBadRequest(f"This form has no field named {name!r}.")
    form.is_valid()
    redrawn = [
        other
        for other in form.governs.get(name, ())
        if other in form.fields and request.POST.get(f"{DRAWN_FOR}{other}") != form[other].drawn_for
    ]
    for other in redrawn:
        form.errors.pop(other, None)  # drawn for the new choice, not judged yet
    blocks = [render_to_string(FIELD_TEMPLATE, {"field": form[name], "field_checked": True}, request)]
    blocks += [
        render_to_string(FIELD_TEMPLATE, {"field": form[other], "field_redrawn": True}, request)
        for other in redrawn
    ]
    return HttpResponse("".join(blocks))


def submit_change(
    request: ConsoleRequest,
    description: str,
    apply: Callable[[], Any],
    *,
    success_url: str,
    template: str,
    context: dict,
) -> HttpResponse:
    """Stage a change through the workflow and answer as the ESA does.

    Success redirects with "Changes submitted"; a Read-Only Operator sees the
    preview of what would change; a refusal re-renders the form with the reason.
    """
    try:
        result = workflow.submit(request.user, description, apply, source_of(request), mode=request.mode)
    except workflow.ChangeRefused as refusal:
        messages.error(request, f"{str(refusal).rstrip('.')}. Nothing was changed.")
        return render(request, template, {**context, "problems": refusal.problems}, status=409)
    if isinstance(result, workflow.Preview):
        messages.warning(
            request,
            "Read-Only Operator: this is what your submit would change. Nothing was stored.",
        )
        return render(request, template, {**context, "preview": result.changes})
    messages.success(request, "Your changes have been submitted. Commit them to make them take effect.")
    if isinstance(result, workflow.Outcome):
        for note in result.notes:
            messages.info(request, note)
        for warning in result.warnings:
            messages.warning(request, warning)
    return redirect(success_url)


def partial_wanted(request: ConsoleRequest) -> bool:
    """The one rule for partials: an htmx request that is not boosted is answered with the named
    partial of the page's template (the fragment it swaps in), any other with the whole page."""
    return bool(request.htmx) and not request.htmx.boosted


def form_page(
    request: ConsoleRequest,
    form,
    submit: Callable[[str, dict], HttpResponse],
    *,
    full_template: str,
    partial_template: str | None = None,
    context: dict | None = None,
) -> HttpResponse:
    """A page with one form, answered by the one rule for htmx: the whole page, or its partial.

    A GET shows the form; an invalid submit shows it again with its errors (400); a valid one is
    ``submit(template, context)``'s answer, given the template this request is answered with, to
    show the form again on a refusal. Its redirect, after an htmx submit, becomes HX-Redirect: the
    browser goes there instead of htmx swapping the next page into the form. Without
    ``partial_template`` the form posts in full and htmx asks only for inline checks of a field
    (``field_check``), answered before anything is submitted.
    """
    if (checked := field_check(request, form)) is not None:
        return checked
    partial = partial_wanted(request)
    template = partial_template if partial and partial_template else full_template
    context = {"form": form, **(context or {})}
    if request.method != "POST" or not form.is_valid():
        return render(request, template, context, status=400 if request.method == "POST" else 200)
    response = submit(template, context)
    if partial and response.status_code == 302:
        return HttpResponseClientRedirect(response["Location"])
    return response


def staged_form_page(
    request: ConsoleRequest,
    form,
    change: Callable[[dict], tuple[str, Callable[[], Any]]],
    *,
    full_template: str,
    partial_template: str | None = None,
    context: dict | None = None,
    success_url: str,
) -> HttpResponse:
    """A ``form_page`` whose submit is staged through the workflow (``submit_change``).

    ``change(cleaned_data)`` gives the audit description and the function that makes the change.
    """

    def submit(template: str, context: dict) -> HttpResponse:
        description, apply = change(form.cleaned_data)
        return submit_change(
            request, description, apply, success_url=success_url, template=template, context=context
        )

    return form_page(
        request,
        form,
        submit,
        full_template=full_template,
        partial_template=partial_template,
        context=context,
    )
