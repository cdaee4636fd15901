"""What the console's views share: the request type, the audit source, and how a form is submitted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django_htmx.middleware import HtmxDetails

from appliance import workflow


class ConsoleRequest(HttpRequest):
    htmx: HtmxDetails


def source_of(request: HttpRequest) -> str:
    """How the audit log names where a request came from."""
    return f"GUI {request.META.get('REMOTE_ADDR', '')}"


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
        result = workflow.submit(request.user, description, apply, source_of(request))
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
