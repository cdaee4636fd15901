"""Template helpers of Network > Certificates."""

from django import template

from certificates import pki

register = template.Library()


@register.filter
def remaining(delta) -> str:
    """Time Remaining as the ESA shows it: days, or hours in the last day."""
    if delta.total_seconds() <= 0:
        return "Expired"
    if delta.days >= 1:
        return f"{delta.days} day{'s' if delta.days != 1 else ''}"
    return f"{int(delta.total_seconds() // 3600)} hours"


@register.filter
def fingerprint(certificate) -> str:
    return pki.fingerprint(certificate)
