"""The console's answer to an error: a refusal (403) it expects, and one it did not (500, 503)."""

from __future__ import annotations

import sys

from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, HttpResponseServerError
from django.template import loader
from django.utils.log import log_response

from appliance import workflow


def log_refusal(request: HttpRequest, response: HttpResponse, reason: str) -> None:
    """One line for a refused request: path, user, address and reason. Django logs a refusal raised as
    an exception with its traceback, so anyone allowed to send requests could flood the log."""
    user = getattr(request, "user", None)
    name = user.get_username() if user is not None and user.is_authenticated else "anonymous"
    log_response(
        "%s: %s (user %s, %s): %s",
        response.reason_phrase,
        request.path,
        name,
        request.META.get("REMOTE_ADDR", ""),
        reason,
        response=response,
        request=request,
    )


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    reason = str(exception) or "Your role may not open this page."
    response = HttpResponseForbidden(loader.render_to_string("403.html", {"exception": reason}, request))
    log_refusal(request, response, reason)
    return response


def server_error(request):
    """A 500, or a 503 naming the cause when the database cannot be reached: the machine keeps running
    the version it applied, and nothing can be read or changed until the database returns."""
    error = sys.exc_info()[1]
    if not isinstance(error, workflow.DATABASE_UNREACHABLE):
        return HttpResponseServerError(loader.render_to_string("500.html"))
    try:
        version = workflow.announced_version()
    except workflow.DATABASE_UNREACHABLE:
        version = None  # no version file yet, and the database was its fallback
    page = loader.render_to_string(
        "503_database.html", {"version": version, "reason": str(error).strip().splitlines()[0]}
    )
    return HttpResponse(page, status=503, headers={"Retry-After": "10"})
