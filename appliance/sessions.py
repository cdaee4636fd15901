"""The Web UI Inactivity Timeout: a console session without a request for that long is logged out.

The timeout is the running configuration's (``<network_access><web_ui_timeout>``, System
Administration > Network Access); SESSION_COOKIE_AGE stays the limit of a session however active.
"""

from __future__ import annotations

import time

from django.contrib import messages
from django.contrib.auth import logout

from appliance import audit, workflow
from appliance.audit import Action
from appliance.sections import web_ui_timeout_minutes
from appliance.views.common import source_of

LAST_ACTIVITY = "last_activity"
# A page's own refresh (Mail Logs' follow) is no sign of someone at the keyboard.
POLL_HEADER = "X-Console-Poll"
# The session is saved (a database write) at most this often for activity alone.
ACTIVITY_RESOLUTION_SECONDS = 30


def mark_login(sender, request, user, **kwargs):
    """A login is activity; stamped here, it is saved with the new session (no save of its own)."""
    request.session[LAST_ACTIVITY] = time.time()


class InactivityTimeoutMiddleware:
    """After AuthenticationMiddleware and MessageMiddleware: the request after the timeout goes on as
    anonymous (LoginRequiredMiddleware sends it to the login page, which says why)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            now = time.time()
            last = request.session.get(LAST_ACTIVITY, now)
            minutes = web_ui_timeout_minutes(workflow.machine_config())  # one query: the running number
            if now - last > minutes * 60:
                user = request.user
                logout(request)
                audit.record(
                    user.username, Action.LOGOUT, f"inactive for {minutes} minutes", source_of(request)
                )
                messages.info(request, f"You were logged out after {minutes} minutes without activity.")
            elif LAST_ACTIVITY not in request.session or (
                POLL_HEADER not in request.headers and now - last >= ACTIVITY_RESOLUTION_SECONDS
            ):
                request.session[LAST_ACTIVITY] = now
        return self.get_response(request)
