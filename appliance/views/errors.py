"""The console's answer to an error it did not expect."""

from __future__ import annotations

import sys

from django.http import HttpResponse, HttpResponseServerError
from django.template import loader

from appliance import workflow


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
