"""Network > IP Interfaces."""

from __future__ import annotations

from django.shortcuts import render

from appliance.models import Interface
from appliance.roles import Capability, requires
from appliance.views.common import ConsoleRequest


@requires(Capability.VIEW_CONFIG)
def interfaces(request: ConsoleRequest):
    return render(request, "appliance/interfaces.html", {"interfaces": Interface.objects.all()})
