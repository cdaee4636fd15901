"""System Administration > Cluster Management: the cluster's machines and what each runs."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import render

from appliance.roles import Capability, requires
from appliance.views.common import ConsoleRequest
from cluster import membership


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
