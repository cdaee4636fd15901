"""The administrator's Centralized Management mode (``levels.Mode``): the level a page or a console
command sees and changes. A page's mode is its session's, chosen with Change Mode… and carried by the
request (``request.mode``); a console command's is its ``--mode``."""

from __future__ import annotations

from appliance import workflow
from appliance.config import candidate_levels, levels
from appliance.config.sections import registry

SESSION_KEY = "cluster_mode"


def checked_level(level: str) -> str:
    """``level`` if this cluster has it; else ChangeRefused naming what there is."""
    known = registry.level_store.known_levels()
    if level in known:
        return level
    cluster_name = registry.level_store.cluster_name()
    if not cluster_name:
        raise workflow.ChangeRefused(
            f"This appliance is not in a cluster: {levels.describe(level)} does not exist "
            "(every setting is the appliance's own)"
        )
    there = ", ".join(levels.describe(at, cluster_name) for at in known)
    raise workflow.ChangeRefused(f"{levels.describe(level)} is not in the cluster (there are: {there})")


def chosen_level(request) -> str:
    """The level this session's mode edits: the one chosen with Change Mode…, while the cluster still
    has it; the Cluster level otherwise (an appliance of its own has no other)."""
    level = request.session.get(SESSION_KEY, "") if hasattr(request, "session") else ""
    if level and level not in registry.level_store.known_levels():
        del request.session[SESSION_KEY]
        return ""
    return level


class ModeMiddleware:
    """Gives each request its session's mode: ``request.mode``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            request.mode = candidate_levels.mode_for(chosen_level(request))
        except workflow.DATABASE_UNREACHABLE:
            request.mode = levels.CLUSTER_MODE  # the page answers 503 itself if it needs the database
        return self.get_response(request)
