"""System Administration > Cluster Management, and the mode selector of every page of a feature with
levels (Change Mode…, Override Settings, Manage Settings)."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.shortcuts import render
from django.views.decorators.http import require_POST

from appliance import navigation, workflow
from appliance.config import levels
from appliance.config.sections import registry
from appliance.roles import Capability, requires
from appliance.views.common import ConsoleRequest, back_to_next, source_of
from cluster import levels as candidate_levels
from cluster import membership, middleware, overrides
from cluster.models import Cluster


@requires(Capability.VIEW_CONFIG)
def machines(request: ConsoleRequest):
    return render(
        request,
        "cluster/machines.html",
        {
            "cluster": membership.current(),
            "states": membership.machine_states(),
            "this_machine": settings.MACHINE_NAME,
            "check_in_seconds": int(membership.CHECK_IN_SECONDS),
            "silent_seconds": int(membership.SILENT_AFTER.total_seconds()),
        },
    )


@dataclass
class ModeBar:
    """What the mode selector above a feature's page shows."""

    cluster: str
    feature: levels.Feature
    level: str  # the mode's
    defined_at: str  # the level whose settings the mode sees
    choices: list[tuple[str, str]]  # (level, label)
    defined_below: list[str]  # in Cluster mode: the groups and machines with settings of their own

    @property
    def mode_label(self) -> str:
        return levels.describe(self.level, self.cluster)

    @property
    def defined_at_label(self) -> str:
        return levels.describe(self.defined_at, self.cluster)

    @property
    def inherited(self) -> bool:
        return self.defined_at != self.level

    @property
    def falls_back_to(self) -> str:
        """Where the mode's level takes the feature from once its own settings are removed."""
        kind, name = levels.kind_and_name(self.level)
        group = candidate_levels.group_of(name) if kind == levels.MACHINE else None
        defined = registry.level_store.defined()
        if group and (self.feature.sections[0], levels.group(group)) in defined:
            return levels.describe(levels.group(group))
        return levels.describe(levels.CLUSTER, self.cluster)


def mode_bar(request) -> ModeBar | None:
    """The mode selector for the page of ``request``, if the page edits a feature with levels and this
    appliance is a machine of a cluster."""
    match = request.resolver_match
    feature_name = navigation.feature_for(match.view_name) if match else ""
    cluster = Cluster.objects.first() if feature_name else None
    if cluster is None:
        return None
    feature = registry.features[feature_name]
    mode = candidate_levels.current()
    return ModeBar(
        cluster=cluster.name,
        feature=feature,
        level=mode.level,
        defined_at=mode.seen(feature.sections[0]),
        choices=[(level, levels.describe(level, cluster.name)) for level in overrides.known_levels()],
        defined_below=[
            levels.describe(level)
            for tag, level in registry.level_store.defined()
            if tag == feature.sections[0]
        ],
    )


@requires(Capability.VIEW_CONFIG)
@require_POST
def change_mode(request: ConsoleRequest):
    level = request.POST.get("level", "")
    try:
        overrides.checked_level(level)
    except workflow.ChangeRefused as refusal:
        messages.error(request, f"{refusal}. The mode was not changed.")
        return back_to_next(request, "overview")
    request.session[middleware.SESSION_KEY] = level
    return back_to_next(request, "overview")


def _staged(request, result, done: str):
    if isinstance(result, workflow.Preview):
        messages.warning(request, "Read-Only Operator: nothing was stored.")
    else:
        messages.success(request, f"{done} Commit the changes to make them take effect.")


@requires(Capability.VIEW_CONFIG)
@require_POST
def override_settings(request: ConsoleRequest):
    """Override Settings: the mode's level gets settings of its own, a copy of those it inherited."""
    level = candidate_levels.current().level
    try:
        result = overrides.override(request.user, request.POST.get("feature", ""), level, source_of(request))
    except workflow.ChangeRefused as refusal:
        messages.error(request, f"{str(refusal).rstrip('.')}. Nothing was changed.")
    else:
        _staged(request, result, f"The settings are now defined for {levels.describe(level)}.")
    return back_to_next(request, "overview")


@requires(Capability.VIEW_CONFIG)
@require_POST
def remove_settings(request: ConsoleRequest):
    """Manage Settings > Remove: the mode's level takes the feature from the level above again."""
    level = candidate_levels.current().level
    try:
        result = overrides.remove(request.user, request.POST.get("feature", ""), level, source_of(request))
    except workflow.ChangeRefused as refusal:
        messages.error(request, f"{str(refusal).rstrip('.')}. Nothing was changed.")
    else:
        _staged(request, result, f"The settings of {levels.describe(level)} are removed.")
    return back_to_next(request, "overview")
