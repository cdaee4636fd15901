"""Template helpers every console page may use."""

from django import template
from django.utils.html import format_html

register = template.Library()


@register.simple_tag(takes_context=True)
def query_with(context, **changes) -> str:
    """The current query string with ``changes`` applied (paging and sorting keep the search)."""
    query = context["request"].GET.copy()
    for key, value in changes.items():
        query[key] = value
    return query.urlencode()


@register.simple_tag(takes_context=True)
def sort_link(context, key: str, label: str) -> str:
    """A column heading that sorts by ``key``, and reverses on a second click."""
    current = context.get("sort", "name")
    target = f"-{key}" if current == key else key
    arrow = " ▲" if current == key else " ▼" if current == f"-{key}" else ""
    return format_html('<a href="?{}">{}{}</a>', query_with(context, sort=target, page=1), label, arrow)
