"""The console's top menus; apps add their pages in ``AppConfig.ready()``."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.roles import Capability, can

MENUS = ("Monitor", "Mail Policies", "Security Services", "Network", "System Administration")


@dataclass(frozen=True)
class Page:
    menu: str
    label: str
    url_name: str
    capability: Capability
    position: int


_pages: list[Page] = []


def register(menu: str, label: str, url_name: str, capability=Capability.VIEW_CONFIG, position=100):
    if menu not in MENUS:
        raise ValueError(f"unknown menu {menu!r}")
    _pages.append(Page(menu, label, url_name, capability, position))


def menus_for(user) -> list[tuple[str, list[Page]]]:
    """Each top menu with the pages this user's role may open."""
    pages = sorted(_pages, key=lambda p: (p.position, p.label))
    return [(menu, [p for p in pages if p.menu == menu and can(user, p.capability)]) for menu in MENUS]


def register_core_pages():
    register("Monitor", "Overview", "overview", Capability.VIEW_STATUS, position=0)
    # Senders, recipients and log lines: not for Guests (as the views, mail_monitor.MAIL_DATA).
    register("Monitor", "Queue", "queue", position=20)
    register("Monitor", "Mail Logs", "mail_logs", position=30)
    register("Monitor", "Alerts", "alerts", position=40)
    register("Network", "IP Interfaces", "interfaces", position=10)
    register("Network", "DNS", "dns", position=12)
    register("System Administration", "Users", "users", Capability.MANAGE_USERS, position=10)
    register("System Administration", "System Settings", "system_settings", position=20)
    register("System Administration", "SSL Configuration", "ssl_configuration", position=25)
    register("System Administration", "Configuration File", "config_file", Capability.EXPORT_MASKED, 30)
    register("System Administration", "Configuration Rollback", "rollback", position=40)
    register("System Administration", "Audit Log", "audit_log", Capability.VIEW_AUDIT, position=50)
    register("System Administration", "Log Subscriptions", "log_subscriptions", position=55)
