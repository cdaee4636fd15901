"""Help: the administrator's documents of ``docs/``, rendered by the console (the appliance may have
no internet). Only the documents named in ``DOCS`` are served; any other name is a 404, so no URL
reaches another file. Each document is rendered once per process and again when its file changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import markdown
from django.conf import settings
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor

from appliance.roles import Capability, requires
from appliance.views.common import ConsoleRequest

# URL name → (file in docs/, title). ARCHITECTURE.md is for the developers, not served.
DOCS = {
    "guide": ("guide.md", "Administrator's Guide"),
    "console": ("console.md", "Console Commands"),
    "config-xml": ("config-xml.md", "The Configuration File (XML)"),
}
DOC_OF_FILE = {filename: doc for doc, (filename, _) in DOCS.items()}
TOC_LEVELS = (2, 3)  # the headings listed beside the document
# A link to another document: console.md#certconfig (or docs/console.md).
DOC_LINK = re.compile(r"^(?:docs/)?([\w.-]+\.md)(#[\w-]*)?$")


def docs_dir() -> Path:
    return Path(settings.BASE_DIR) / "docs"


class _DocLinks(Treeprocessor):
    """``console.md#commit`` → ``/help/console/#commit``: links between documents stay in the console."""

    def run(self, root: ElementTree.Element) -> None:
        for link in root.iter("a"):
            match = DOC_LINK.match(link.get("href", ""))
            if match and match.group(1) in DOC_OF_FILE:
                link.set("href", reverse("help", args=[DOC_OF_FILE[match.group(1)]]) + (match.group(2) or ""))


class DocLinks(Extension):
    def extendMarkdown(self, md: markdown.Markdown) -> None:
        md.treeprocessors.register(_DocLinks(md), "doc_links", 5)


@dataclass(frozen=True)
class Rendered:
    """One document as HTML, with its headings: ``toc`` for the page, ``ids`` for every anchor."""

    mtime_ns: int
    html: SafeString
    toc: list[dict]
    ids: frozenset[str]


_cache: dict[str, Rendered] = {}


def _headings(tokens: list[dict]):
    for token in tokens:
        yield token
        yield from _headings(token["children"])


def render_doc(doc: str) -> Rendered:
    """The document ``doc`` (a key of ``DOCS``) rendered, from the cache while its file is unchanged."""
    path = docs_dir() / DOCS[doc][0]
    try:
        mtime_ns = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise Http404(f"The help document '{doc}' is missing from this appliance.") from None
    cached = _cache.get(doc)
    if cached is not None and cached.mtime_ns == mtime_ns:
        return cached
    converter = markdown.Markdown(
        extensions=["toc", "tables", "fenced_code", DocLinks()],
        extension_configs={"toc": {"permalink": True, "permalink_title": "Link to this section"}},
    )
    html = converter.convert(path.read_text(encoding="utf-8"))
    headings = list(_headings(converter.toc_tokens))
    rendered = Rendered(
        mtime_ns=mtime_ns,
        html=mark_safe(html),  # our own documents, shipped with the appliance
        toc=[
            {"level": h["level"], "id": h["id"], "name": mark_safe(h["name"])}
            for h in headings
            if h["level"] in TOC_LEVELS
        ],
        ids=frozenset(h["id"] for h in headings),
    )
    _cache[doc] = rendered
    return rendered


@requires(Capability.VIEW_STATUS)
def help_page(request: ConsoleRequest, doc: str = "guide"):
    """Help: one document, with the list of documents and its table of contents beside it."""
    if doc not in DOCS:
        raise Http404(f"There is no help document '{doc}'.")
    rendered = render_doc(doc)
    context = {
        "doc": doc,
        "title": DOCS[doc][1],
        "docs": [(name, title) for name, (_, title) in DOCS.items()],
        "html": rendered.html,
        "toc": rendered.toc,
    }
    return render(request, "appliance/help.html", context)
