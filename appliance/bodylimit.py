"""A request body over the limit: a readable 413 before anything reads it.

Django would refuse it only once the form is parsed (a 400 with a traceback), and a server that answers
without reading what the client is still sending closes the connection with data unread: the client
gets a reset instead of the answer. So the body is refused on its Content-Length and drained, up to a
bound in bytes and time, before the answer goes out; a body past the bound ends the connection.
"""

from __future__ import annotations

import socket
import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template import loader
from django.template.defaultfilters import filesizeformat

from appliance.config.xmlfile import size_limit_text
from appliance.views.errors import log_refusal

# A client whose body is drained reads the answer; beyond these, it gets the reset and the worker is free.
DRAIN_MAX_BYTES = 256 * 1024 * 1024
DRAIN_MAX_SECONDS = 5.0
DRAIN_CHUNK = 256 * 1024


def body_size(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def drain(request: HttpRequest, size: int) -> int:
    """Read and discard up to the bounds; the number of bytes read. The connection's timeout bounds a
    client that stops sending (gunicorn's socket; absent under the test client)."""
    sock = request.META.get("gunicorn.socket")
    deadline = time.monotonic() + DRAIN_MAX_SECONDS
    previous_timeout = sock.gettimeout() if sock else None
    read = 0
    try:
        while read < min(size, DRAIN_MAX_BYTES) and (left := deadline - time.monotonic()) > 0:
            if sock:
                sock.settimeout(left)
            chunk = request.read(min(DRAIN_CHUNK, size - read))
            if not chunk:
                break
            read += len(chunk)
    except OSError:
        pass  # the client stopped sending or went away: it gets what it gets
    finally:
        if sock:
            sock.settimeout(previous_timeout)
    return read


def stop_reading(request: HttpRequest) -> None:
    """Past the bounds, the connection ends here: gunicorn would otherwise read the rest, however large,
    before the next request on it. The client gets a reset instead of the answer."""
    sock = request.META.get("gunicorn.socket")
    if sock:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already gone


class BodyLimitMiddleware:
    """Last in MIDDLEWARE: it answers before any view (or CSRF check) reads the body, and its answer
    passes through every other middleware's headers."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        size = body_size(request)
        if size <= settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return self.get_response(request)
        context = {"size": filesizeformat(size), "limit": size_limit_text()}
        response = HttpResponse(loader.render_to_string("413.html", context, request), status=413)
        drained = drain(request, size)
        if drained < size:
            stop_reading(request)
        log_refusal(request, response, f"{size} bytes sent, {drained} drained")
        return response
