"""Monitor > Overview: what runs now."""

from __future__ import annotations

from django.shortcuts import render

from appliance import workflow
from appliance.roles import Capability, requires
from appliance.views.common import ConsoleRequest


@requires(Capability.VIEW_STATUS)
def overview(request: ConsoleRequest):
    running = workflow.machine_config()
    return render(
        request,
        "appliance/overview.html",
        {
            "version": workflow.running_version(),
            "interfaces": running.get("interfaces", []),
            "certificate_count": len(running.get("certificates", [])),
        },
    )
