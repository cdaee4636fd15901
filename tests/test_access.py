"""Every console URL checks the role on the server, not just the menu."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from appliance.roles import ROLE_CAPABILITIES, Capability

# Reachable by any signed-in user (or before signing in): nothing to protect by role.
OPEN_VIEWS = {"login", "logout", "change_password"}


def all_patterns(resolver=None, prefix=""):
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            namespace = f"{entry.namespace}:" if entry.namespace else ""
            yield from all_patterns(entry, prefix + namespace)
        elif isinstance(entry, URLPattern):
            yield prefix + entry.name, entry.callback


@pytest.mark.parametrize(
    "name,view", list(all_patterns()), ids=lambda value: value if isinstance(value, str) else ""
)
def test_every_view_declares_the_capability_it_needs(name, view):
    if name in OPEN_VIEWS:
        return
    assert isinstance(getattr(view, "required_capability", None), Capability), f"{name} has no role check"


def test_roles_are_nested_as_on_the_esa():
    admin, operator, read_only, guest = (
        ROLE_CAPABILITIES[r] for r in ("administrator", "operator", "read_only", "guest")
    )
    assert guest < read_only < operator < admin
    assert Capability.COMMIT not in read_only and Capability.SUBMIT not in read_only
    assert Capability.PREVIEW in read_only
    assert admin - operator == {Capability.MANAGE_USERS, Capability.EXPORT_PLAIN, Capability.ABANDON_OTHERS}
