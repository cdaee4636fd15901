"""What every console page shows of Centralized Management: the mode selector above a page of settings."""

from __future__ import annotations

from cluster import views


def mode_bar(request):
    if not request.user.is_authenticated:
        return {}
    return {"mode_bar": views.mode_bar(request)}
