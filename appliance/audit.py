"""The audit log: every login, submit, commit, abandon, rollback, load and export."""

from __future__ import annotations

from appliance.models import AuditEvent

Action = AuditEvent.Action


def record(user_name: str, action: str, detail: str = "", source: str = "") -> AuditEvent:
    """Write one audit line; callers inside a workflow transaction get it atomically with the change."""
    return AuditEvent.objects.create(user_name=user_name, action=action, detail=detail, source=source)
