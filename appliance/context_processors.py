"""What every console page shows around its content: menus, hostname, the Commit Changes button."""

from __future__ import annotations

from django.conf import settings

from appliance import navigation, workflow
from appliance.roles import Capability, can


def console(request):
    user = request.user
    if not user.is_authenticated:
        return {}
    running = workflow.running_config()
    lock = workflow.lock_state()
    return {
        "menus": navigation.menus_for(user),
        "system_hostname": running["hostname"][0]["hostname"] if running else "",
        "machine_name": settings.MACHINE_NAME,  # a machine of a cluster: whose interfaces the pages show
        # Guests see status only: not who changes what.
        "change_lock": lock if lock.owner_name and can(user, Capability.VIEW_CONFIG) else None,
        "may_commit": can(user, Capability.COMMIT),
        "role_label": user.get_role_display(),
        "pending_confirmation": workflow.pending_confirmation(),
    }
