"""Template helpers of Network > Certificates."""

from django import template
from django.utils.html import format_html

from appliance.templatetags.console import query_with
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


@register.simple_tag(takes_context=True)
def sort_link(context, key: str, label: str) -> str:
    """A column heading that sorts by ``key``, and reverses on a second click."""
    current = context.get("sort", "name")
    target = f"-{key}" if current == key else key
    arrow = " ▲" if current == key else " ▼" if current == f"-{key}" else ""
    return format_html('<a href="?{}">{}{}</a>', query_with(context, sort=target, page=1), label, arrow)


@register.filter
def fingerprint(certificate) -> str:
    return pki.fingerprint(certificate)
