"""The administrator's Centralized Management mode: each request runs in it (``cluster.levels``)."""

from __future__ import annotations

from appliance import workflow
from cluster import levels, overrides

SESSION_KEY = "cluster_mode"


def chosen_level(request) -> str:
    """The level this session's mode edits: the one chosen with Change Mode…, while the cluster still
    has it; the Cluster level otherwise (an appliance of its own has no other)."""
    level = request.session.get(SESSION_KEY, "") if hasattr(request, "session") else ""
    if level and level not in overrides.known_levels():
        del request.session[SESSION_KEY]
        return ""
    return level


class ModeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            level = chosen_level(request)
        except workflow.DATABASE_UNREACHABLE:
            level = ""  # the page answers 503 itself if it needs the database
        with levels.editing(level):
            return self.get_response(request)
