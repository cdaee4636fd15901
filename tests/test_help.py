"""Help: the documents of docs/ served by the console, and the Help link of every page to its section."""

from __future__ import annotations

import os
import re

import pytest
from django.urls import reverse

from appliance import navigation
from appliance.views import help as help_views

PAGE_HELP = re.compile(r'<a href="([^"]+)" id="page-help"')
HELP_HREF = re.compile(r'href="/help/([\w-]+)/(?:#([\w-]*))?"')


def page_help(response) -> str:
    """The one Help link of a page, as "doc#anchor"."""
    html = response.content.decode()
    links = PAGE_HELP.findall(html)
    assert len(links) == 1, f"{len(links)} Help links"
    match = re.fullmatch(r"/help/([\w-]+)/(?:#([\w-]+))?", links[0])
    assert match, links[0]
    return f"{match.group(1)}#{match.group(2)}" if match.group(2) else match.group(1)


def assert_exists(target: str) -> None:
    doc, _, anchor = target.partition("#")
    assert doc in help_views.DOCS, target
    assert anchor in help_views.render_doc(doc).ids, f"{target}: no such heading"


def test_the_guide_renders_with_heading_ids_and_contents(login, admin):
    response = login(admin).get(reverse("help", args=["guide"]))
    assert response.status_code == 200
    html = response.content.decode()
    assert '<h1 id="administrators-guide">' in html
    assert '<h3 id="network-certificates">Network &gt; Certificates' in html
    assert '<a href="#monitor-tls-connections">Monitor &gt; TLS Connections</a>' in html  # contents
    assert '<a href="/help/console/" aria-current="page">' not in html
    assert 'aria-current="page">Administrator&#x27;s Guide</a>' in html
    # Tables and fenced code blocks are rendered, not left as text.
    assert "<table>" in html
    assert "|---|" not in html


def test_the_index_is_the_guide(login, guest):
    response = login(guest).get(reverse("help_index"))
    assert response.status_code == 200
    assert 'id="monitor-overview"' in response.content.decode()


@pytest.mark.parametrize("doc", ["console", "config-xml"])
def test_the_other_documents_render(login, admin, doc):
    response = login(admin).get(reverse("help", args=[doc]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<pre><code" in html
    assert '<h2 id="' in html


def test_links_between_documents_stay_in_the_console_and_reach_a_heading():
    for doc in help_views.DOCS:
        html = str(help_views.render_doc(doc).html)
        assert not re.search(r'href="(?:docs/)?(?:guide|console|config-xml)\.md', html), doc
        for target_doc, anchor in HELP_HREF.findall(html):
            if anchor:
                assert_exists(f"{target_doc}#{anchor}")
            else:
                assert target_doc in help_views.DOCS
        for anchor in re.findall(r'href="#([\w-]+)"', html):
            assert anchor in help_views.render_doc(doc).ids, f"{doc}#{anchor}"
    guide = str(help_views.render_doc("guide").html)
    assert 'href="/help/console/#certconfig"' in guide


@pytest.mark.parametrize(
    "path",
    [
        "/help/nope/",
        "/help/ARCHITECTURE/",
        "/help/guide.md/",
        "/help/../settings/",
        "/help/..%2Fsettings/",
        "/help/%2e%2e/",
        "/help/../../appliance/settings.py/",
    ],
)
def test_only_the_served_documents_are_found(login, admin, path):
    assert login(admin).get(path).status_code == 404


def test_a_missing_document_file_is_not_found(login, admin, settings, tmp_path):
    settings.BASE_DIR = tmp_path
    assert login(admin).get(reverse("help", args=["console"])).status_code == 404


def test_a_guest_reads_help_and_a_visitor_must_log_in(https_client, login, guest):
    assert https_client.get(reverse("help", args=["guide"])).status_code == 302
    client = login(guest)
    assert client.get(reverse("help", args=["console"])).status_code == 200
    assert page_help(client.get(reverse("overview"))) == "guide#monitor-overview"


def test_a_document_is_rendered_again_when_its_file_changes(settings, tmp_path, monkeypatch):
    monkeypatch.setattr(help_views, "_cache", {})
    settings.BASE_DIR = tmp_path
    (tmp_path / "docs").mkdir()
    source = tmp_path / "docs" / "guide.md"
    source.write_text("# Guide\n\n## First\n")
    first = help_views.render_doc("guide")
    assert help_views.render_doc("guide") is first  # from the cache
    assert first.ids == {"guide", "first"}
    source.write_text("# Guide\n\n## Second\n")
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert help_views.render_doc("guide").ids == {"guide", "second"}


def test_every_menu_page_names_its_section():
    pages = navigation._pages
    assert pages
    for page in pages:
        assert page.help, f"{page.menu} > {page.label} has no help"
        assert_exists(page.help)


def test_every_menu_page_shows_a_help_link_to_its_section(login, admin):
    client = login(admin)
    pages = [page for _, menu_pages in navigation.menus_for(admin) for page in menu_pages]
    assert len(pages) == len(navigation._pages)
    for page in pages:
        response = client.get(reverse(page.url_name))
        assert response.status_code == 200, page.url_name
        target = page_help(response)
        assert target == page.help, page.url_name
        assert_exists(target)


def test_every_page_of_the_console_has_a_section():
    """Every named URL (forms, detail pages, downloads) leads to an existing heading; only the
    login and logout, which show no menus, fall back to the guide's beginning."""
    fallback = set()
    for link in navigation.help_links():
        if link.target == navigation.GUIDE:
            fallback |= link.url_names
        else:
            assert_exists(link.target)
    assert fallback == {"login", "logout"}


@pytest.mark.parametrize(
    ("url_name", "args", "target"),
    [
        ("certificates:detail", ["Demo"], "guide#certificate-page-and-diagnostics"),
        ("certificates:add", [], "guide#network-certificates"),
        ("certificates:system_authorities", [], "guide#network-certificate-authorities"),
        ("tls_test", [], "guide#test-tls"),
        ("destinations:destination_add", [], "guide#mail-policies-destination-controls"),
        ("destinations:mail_delivery_settings", [], "guide#network-mail-delivery"),
        ("interface_add", [], "guide#network-ip-interfaces"),
        ("user_add", [], "guide#system-administration-users"),
        ("listeners:edit", ["IncomingMail"], "guide#network-listeners"),
        ("listeners:group", ["IncomingMail", "ALL"], "guide#mail-policies-hat-overview"),
        ("listeners:default_parameters", ["IncomingMail"], "guide#mail-policies-mail-flow-policies"),
        ("uncommitted_changes", [], "guide#commit-changes"),
        ("change_password", [], "guide#change-password"),
        ("help", ["console"], "guide#help"),
    ],
)
def test_pages_outside_the_menus_take_their_menu_pages_section(login, admin, url_name, args, target):
    response = login(admin).get(reverse(url_name, args=args))
    assert response.status_code == 200
    assert page_help(response) == target
    assert navigation.help_for(url_name) == target


def test_register_refuses_help_without_an_anchor():
    with pytest.raises(ValueError, match="doc#anchor"):
        navigation.register("Network", "Nowhere", "nowhere", help="guide")
    with pytest.raises(ValueError, match="doc#anchor"):
        navigation.register_help("nowhere", "#network")


def test_every_page_starts_with_skip_to_content_and_uses_no_cdn(login, admin):
    html = login(admin).get(reverse("overview")).content.decode()
    body = html[html.index("<body") :]
    body = body[body.index(">") + 1 :].lstrip()
    assert body.startswith('<a class="skip-link" href="#content">Skip to content</a>')
    assert '<main id="content"' in html
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)
    # Each menu opens from the keyboard: its name is a button, and the list opens on focus-within.
    assert (
        '<button type="button" class="menu-button"><span class="menu-title">Network</span></button>' in html
    )


def test_the_stylesheet_works_on_a_narrow_window_and_shows_focus():
    css = (help_views.docs_dir().parent / "static" / "css" / "console.css").read_text()
    assert "@import" not in css and "url(http" not in css
    assert ":focus-visible" in css
    assert ".menu:hover ul, .menu:focus-within ul" in css
    assert "@media (max-width: 720px)" in css
    assert re.search(r"\.panel \{[^}]*overflow-x: auto", css)


def test_a_page_that_does_not_exist_links_to_the_help_index(login, admin):
    response = login(admin).get("/no-such-page/")
    assert response.status_code == 404
    assert '<a href="/help/" id="page-help">Help</a>' in response.content.decode()
