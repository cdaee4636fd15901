"""System Administration > Cluster Management, and the mode selector of every page of a feature with
levels (Change Mode…, Override Settings, Manage Settings)."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from appliance import modes, navigation, workflow
from appliance.config import candidate_levels, levels
from appliance.config.sections import registry
from appliance.models import this_machine
from appliance.roles import Capability, requires
from appliance.views.common import ConsoleRequest, back_to_next, source_of
from cluster import membership, overrides
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
    """What the mode selector above a page of settings shows."""

    cluster: str
    page: str  # a feature's name, levels.CLUSTER_ONLY or levels.EACH_MACHINE
    mode: levels.Mode
    choices: list[tuple[str, str]]  # (level, label)

    @property
    def level(self) -> str:
        return self.mode.level

    @property
    def feature(self) -> levels.Feature | None:
        return registry.features.get(self.page)

    @property
    def cluster_only(self) -> bool:
        return self.page == levels.CLUSTER_ONLY

    @property
    def each_machine(self) -> bool:
        return self.page == levels.EACH_MACHINE

    @property
    def machine_shown(self) -> str:
        """Of each machine's settings: whose the page shows (the mode's machine, else this one)."""
        return this_machine(self.mode)

    @property
    def defined_at(self) -> str:
        """The level whose settings the mode sees (of a feature of several sections, one the mode's
        level does not define, if any: the page then offers to complete it)."""
        if self.feature:
            seen = [self.mode.seen(tag) for tag in self.feature.sections]
            return next((at for at in seen if at != self.level), self.level)
        return self.level if self.each_machine else levels.CLUSTER

    @property
    def inherited(self) -> bool:
        """The page shows settings the mode's level does not define: they are not changed here."""
        return self.defined_at != self.level

    @property
    def mode_label(self) -> str:
        return levels.describe(self.level, self.cluster)

    @property
    def defined_at_label(self) -> str:
        return levels.describe(self.defined_at, self.cluster)

    @property
    def falls_back_to(self) -> str:
        """Where the mode's level takes the feature from once its own settings are removed."""
        defined = {at for tag, at in registry.level_store.defined() if tag == self.feature.sections[0]}
        above = levels.chain(candidate_levels.groups(), self.level)[1:]
        return levels.describe(levels.first_defined(above, defined), self.cluster)

    @property
    def defined_below(self) -> list[str]:
        """In Cluster mode: the groups and machines that define the feature themselves."""
        return [
            levels.describe(level)
            for tag, level in registry.level_store.defined()
            if tag == self.feature.sections[0]
        ]


def mode_bar(request) -> ModeBar | None:
    """The mode selector for the page of ``request``, if the page edits settings and this appliance
    is a machine of a cluster."""
    match = request.resolver_match
    page = navigation.feature_for(match.view_name) if match else ""
    cluster = Cluster.objects.first() if page else None
    if cluster is None:
        return None
    return ModeBar(
        cluster=cluster.name,
        page=page,
        mode=request.mode,
        choices=[
            (level, levels.describe(level, cluster.name)) for level in registry.level_store.known_levels()
        ],
    )


@requires(Capability.VIEW_CONFIG)
@require_POST
def change_mode(request: ConsoleRequest):
    try:
        level = modes.checked_level(levels.parse(request.POST.get("level") or "cluster"))
    except (ValueError, workflow.ChangeRefused) as refusal:
        messages.error(request, f"{refusal}. The mode was not changed.")
        return back_to_next(request, "overview")
    request.session[modes.SESSION_KEY] = level
    return back_to_next(request, "overview")


def _stage(request: ConsoleRequest, change, done: str) -> HttpResponse:
    """Stage ``change(user, feature, level, source)`` (override or remove) for the mode's level;
    ``done``: what the administrator reads, with ``{level}`` for the level."""
    level = request.mode.level
    try:
        result = change(request.user, request.POST.get("feature", ""), level, source_of(request))
    except workflow.ChangeRefused as refusal:
        messages.error(request, f"{str(refusal).rstrip('.')}. Nothing was changed.")
    else:
        if isinstance(result, workflow.Preview):
            messages.warning(request, "Read-Only Operator: nothing was stored.")
        else:
            done = done.format(level=levels.describe(level))
            messages.success(request, f"{done} Commit the changes to make them take effect.")
    return back_to_next(request, "overview")


@requires(Capability.VIEW_CONFIG)
@require_POST
def override_settings(request: ConsoleRequest):
    """Override Settings: the mode's level gets settings of its own, a copy of those it inherited."""
    return _stage(request, overrides.override, "The settings are now defined for {level}.")


@requires(Capability.VIEW_CONFIG)
@require_POST
def remove_settings(request: ConsoleRequest):
    """Manage Settings > Remove: the mode's level takes the feature from the level above again."""
    return _stage(request, overrides.remove, "The settings of {level} are removed.")
