"""What each ESA role may do (ESA-REFERENCE §8), in one place.

Views ask through ``requires``; console commands and the workflow through ``can``.
"""

from __future__ import annotations

import functools
from enum import StrEnum

from django.core.exceptions import PermissionDenied

from appliance.models import Role


class Capability(StrEnum):
    VIEW_STATUS = "view status pages"
    VIEW_CONFIG = "view the configuration"
    PREVIEW = "fill and submit forms to preview a change"
    SUBMIT = "submit changes"
    COMMIT = "commit or abandon changes"
    ABANDON_OTHERS = "abandon another user's changes"
    EXPORT_MASKED = "save the configuration with masked passphrases"
    EXPORT_SECRETS = "save the configuration with encrypted passphrases"
    EXPORT_PLAIN = "save the configuration with plain passphrases"
    SAVE_ON_APPLIANCE = "save files on the appliance"
    VIEW_AUDIT = "view the audit log"
    TEST_CONNECTIONS = "run connection tests (Test Server, Test Connection)"
    MANAGE_USERS = "manage user accounts"


_STAFF = {
    Capability.VIEW_STATUS,
    Capability.VIEW_CONFIG,
    Capability.PREVIEW,
    Capability.SUBMIT,
    Capability.COMMIT,
    Capability.EXPORT_MASKED,
    Capability.EXPORT_SECRETS,
    Capability.SAVE_ON_APPLIANCE,
    Capability.VIEW_AUDIT,
    Capability.TEST_CONNECTIONS,
}

# Senders, recipients and log lines are message data, which the ESA keeps from Guests (no Message
# Tracking): whoever may view the configuration may view them (Queue, Mail Logs, Message Tracking).
MAIL_DATA = Capability.VIEW_CONFIG

ROLE_CAPABILITIES: dict[str, frozenset[Capability]] = {
    Role.ADMINISTRATOR: frozenset(Capability),
    # "Otherwise the same privileges as the Administrator role."
    Role.OPERATOR: frozenset(_STAFF),
    # "Can make and submit changes to see how to configure a feature, but cannot commit them."
    Role.READ_ONLY: frozenset(
        {Capability.VIEW_STATUS, Capability.VIEW_CONFIG, Capability.PREVIEW, Capability.EXPORT_MASKED}
    ),
    # "Can only view status information."
    Role.GUEST: frozenset({Capability.VIEW_STATUS}),
}


def can(user, capability: Capability) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    return capability in ROLE_CAPABILITIES.get(user.role, frozenset())


def require(user, capability: Capability) -> None:
    if not can(user, capability):
        role = Role(user.role).label if getattr(user, "role", None) else "anonymous"
        raise PermissionDenied(f"The {role} role may not {capability}.")


def requires(capability: Capability):
    """View decorator: 403 unless the user's role has ``capability``."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            require(request.user, capability)
            return view(request, *args, **kwargs)

        wrapper.required_capability = capability
        return wrapper

    return decorator
