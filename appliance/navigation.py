"""The console's top menus and each page's Help; apps add their pages in ``AppConfig.ready()``.

Every page registered here names its section of the help (``help="guide#network-certificates"``: a
document of ``docs/`` served by the console, and a heading id in it). A page outside the menus (a
form, one certificate, one message) takes the help of the registered page whose URL its own URL
starts with (Network > Certificates for ``network/certificates/add/``), unless ``register_help``
gives it a section of its own (Destination Controls > Test TLS).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from django.urls import URLPattern, URLResolver, get_resolver, reverse

from appliance.config import levels
from appliance.roles import Capability, can

MENUS = ("Monitor", "Mail Policies", "Security Services", "Network", "System Administration")
GUIDE = "guide"  # the help of a page that has no section: the guide's beginning


@dataclass(frozen=True)
class Page:
    menu: str
    label: str
    url_name: str
    capability: Capability
    position: int
    help: str = ""  # "doc#anchor"
    # What the page edits, for Centralized Management's mode selector: a feature with levels, the
    # cluster's settings alone (levels.CLUSTER_ONLY), or each machine's (levels.EACH_MACHINE); "" or
    # None: no settings (for a page below another's URL, "" says it does not share the other's).
    feature: str | None = None


@dataclass(frozen=True)
class HelpLink:
    """One section of the help and every page (URL name) whose Help link leads there."""

    target: str  # "doc#anchor", or "doc"
    url_names: frozenset[str]

    @property
    def doc(self) -> str:
        return self.target.partition("#")[0]

    @property
    def anchor(self) -> str:
        return self.target.partition("#")[2]

    @property
    def href(self) -> str:
        url = reverse("help", args=[self.doc])
        return f"{url}#{self.anchor}" if self.anchor else url


class MenuBar(list):
    """The top menus, as ``(menu, pages)`` pairs, and the Help links of every page (``help_links``).

    ``base.html`` shows the link whose ``url_names`` hold the current page's URL name.
    """

    @property
    def help_links(self) -> list[HelpLink]:
        return help_links()


_pages: list[Page] = []
_extra_help: dict[str, str] = {}  # URL name → "doc#anchor", for pages outside the menus


def _checked(help: str) -> str:
    doc, hash, anchor = help.partition("#")
    if not doc or not hash or not anchor:
        raise ValueError(f"help must be 'doc#anchor', not {help!r}")
    return help


def register(
    menu: str,
    label: str,
    url_name: str,
    capability=Capability.VIEW_CONFIG,
    position=100,
    help: str = "",
    feature: str | None = None,
):
    if menu not in MENUS:
        raise ValueError(f"unknown menu {menu!r}")
    _pages.append(Page(menu, label, url_name, capability, position, _checked(help) if help else "", feature))
    help_links.cache_clear()
    features_by_url.cache_clear()


def register_help(url_name: str, help: str) -> None:
    """Give a page outside the menus a help section of its own; the pages below its URL take it too."""
    _extra_help[url_name] = _checked(help)
    help_links.cache_clear()
    features_by_url.cache_clear()


def menus_for(user) -> MenuBar:
    """Each top menu with the pages this user's role may open."""
    pages = sorted(_pages, key=lambda p: (p.position, p.label))
    return MenuBar((menu, [p for p in pages if p.menu == menu and can(user, p.capability)]) for menu in MENUS)


def _routes(patterns, prefix: str = "", namespace: str = ""):
    """(URL name with its namespace, route) of every named URL, in URLconf order."""
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _routes(pattern.url_patterns, route, inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield f"{namespace}{pattern.name}", route


def _below_pages(own: dict[str, str]) -> dict[str, str | None]:
    """Every named URL → its own value in ``own``, else that of the page whose route is the longest
    start of its route (network/listeners/hat/ before network/listeners/); None if no page's is. The
    root (Monitor > Overview) starts no other route."""
    routes: dict[str, str] = {}
    for name, route in _routes(get_resolver().url_patterns):
        routes.setdefault(name, route)
    prefixes = sorted(
        ((routes[name], value) for name, value in own.items() if routes.get(name)),
        key=lambda pair: len(pair[0]),
        reverse=True,
    )
    return {
        name: own[name]
        if name in own
        else next((v for start, v in prefixes if route.startswith(start)), None)
        for name, route in routes.items()
    }


@cache
def help_links() -> list[HelpLink]:
    """Every named page of the URLconf, grouped by the help section its Help link leads to."""
    own = {page.url_name: page.help for page in _pages if page.help} | _extra_help
    targets: dict[str, set[str]] = {}
    for name, target in _below_pages(own).items():
        targets.setdefault(target or GUIDE, set()).add(name)
    return [HelpLink(target, frozenset(names)) for target, names in targets.items()]


@cache
def features_by_url() -> dict[str, str | None]:
    """Every named page → the feature with levels it edits (its own page's, or that of the page it is
    below), for the mode selector; None or "" for a page of none."""
    return _below_pages({page.url_name: page.feature for page in _pages if page.feature is not None})


def feature_for(url_name: str) -> str:
    return features_by_url().get(url_name) or ""


def help_for(url_name: str) -> str:
    """The help section ("doc#anchor") of the page with this URL name; the guide if it has none."""
    return next((link.target for link in help_links() if url_name in link.url_names), GUIDE)


def register_core_pages():
    register("Monitor", "Overview", "overview", Capability.VIEW_STATUS, 0, help="guide#monitor-overview")
    register(
        "Network",
        "IP Interfaces",
        "interfaces",
        position=10,
        help="guide#network-ip-interfaces",
        feature=levels.EACH_MACHINE,
    )
    register("Network", "DNS", "dns", position=12, help="guide#network-dns", feature=levels.CLUSTER_ONLY)
    register(
        "System Administration",
        "Users",
        "users",
        Capability.MANAGE_USERS,
        10,
        help="guide#system-administration-users",
    )
    register(
        "System Administration",
        "Alerts",
        "alert_recipients",
        position=15,
        help="guide#system-administration-alerts",
        feature=levels.CLUSTER_ONLY,
    )
    register(
        "System Administration",
        "System Settings",
        "system_settings",
        position=20,
        help="guide#system-administration-system-settings",
        feature=levels.CLUSTER_ONLY,
    )
    register(
        "System Administration",
        "Network Access",
        "network_access",
        position=22,
        help="guide#system-administration-network-access",
        feature=levels.CLUSTER_ONLY,
    )
    register(
        "System Administration",
        "SSL Configuration",
        "ssl_configuration",
        position=25,
        help="guide#system-administration-ssl-configuration",
        feature="ssl_config",
    )
    register(
        "System Administration",
        "Configuration File",
        "config_file",
        Capability.EXPORT_MASKED,
        30,
        help="guide#system-administration-configuration-file",
    )
    register(
        "System Administration",
        "Configuration Rollback",
        "rollback",
        position=40,
        help="guide#system-administration-configuration-rollback",
    )
    register(
        "System Administration",
        "Audit Log",
        "audit_log",
        Capability.VIEW_AUDIT,
        50,
        help="guide#system-administration-audit-log",
    )
    # Pages of no menu: Commit Changes » (with abandon and confirm below it), the password, Help.
    register_help("uncommitted_changes", "guide#commit-changes")
    register_help("change_password", "guide#change-password")
    register_help("help_index", "guide#help")
