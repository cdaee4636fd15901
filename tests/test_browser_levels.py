"""Centralized Management levels in the browser: esa1 of cluster Mail (esa2 joined, not running) on
127.0.0.2, one PostgreSQL database of the module's own. System Administration > SSL Configuration in
Cluster mode, Change Mode… to Machine: esa2, a change it inherits refused, Override Settings, its own
change submitted and committed (Uncommitted Changes naming the level), then Manage Settings > Remove;
the committed levels checked with ``clusterconfig list`` and ``showconfig``."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from playwright.sync_api import Page, expect

from tests.appliance_process import PASSWORD, Appliance, free_port
from tests.browser import WIDE, Console, Problems, chromium_fixture  # noqa: F401 (fixture)
from tests.postgres import PostgresServer
from tests.test_browser_guide import menu, submit
from tests.test_browser_pages import unlabelled_fields
from tests.test_runappliance import ok

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ESA1, ESA2 = "127.0.0.2", "127.0.0.3"


@pytest.fixture(name="esa1", scope="module")
def esa1_fixture(tmp_path_factory):
    """esa1 running (``runappliance --machine esa1``) in cluster Mail, with esa2 joined but not running."""
    folder = tmp_path_factory.mktemp("levels")
    server = PostgresServer()
    key_file = folder / "cluster.key"
    key_file.write_text("the key the operator copies to every machine\n")
    https_port = free_port()
    shared = {
        "APPLIANCE_DATABASE_URL": server.url(),
        "APPLIANCE_SECRET_KEY_FILE": str(key_file),
        "APPLIANCE_LISTEN_ADDRESS": ESA1,
        "APPLIANCE_SMTP_PORT": str(free_port()),
    }
    started: list[Appliance] = []
    try:
        first = Appliance(folder / "esa1", https_port, environment=shared)  # the first start: version 1
        started.append(first)
        first.wait_for(r"^Appliance ready: ")
        assert first.stop() == 0
        ok(first, "clusterconfig", "create", "Mail", "--machine", "esa1")
        ok(first, "clusterconfig", "join", "--machine", "esa2", "--address", ESA2)
        esa1 = Appliance(
            folder / "esa1",
            https_port,
            arguments=("--machine", "esa1"),
            environment={**shared, "APPLIANCE_MACHINE": "esa1"},
        )
        started.append(esa1)
        esa1.wait_for(rf"^Appliance ready: https://{re.escape(ESA1)}:{https_port}/ ")
        yield esa1
    finally:
        for appliance in started:
            appliance.stop()
            print("--- esa1's output (pytest shows it when the test fails)", *appliance.lines, sep="\n")
        server.remove()


@pytest.fixture(name="admin")
def admin_fixture(chromium, esa1):
    """The administrator logged in to esa1's console; the test fails if any page had a problem."""
    problems = Problems()
    context = chromium.new_context(ignore_https_errors=True, viewport=WIDE)
    console = Console(context, f"https://{ESA1}:{esa1.port}", problems)
    console.log_in("admin", PASSWORD)
    yield console
    context.close()
    assert problems.found == [], "\n".join(problems.found)


def mode_bar(page: Page):
    return page.get_by_role("region", name="Centralized Management")


def alert(page: Page, text: str):
    return page.get_by_role("alert").filter(has_text=text)


def change_mode(page: Page, label: str) -> None:
    """Change Mode… in the mode selector above the page."""
    bar = mode_bar(page)
    bar.get_by_label("Change Mode…").select_option(label=label)
    bar.get_by_role("button", name="Change Mode", exact=True).click()
    expect(page.locator("#current-mode")).to_have_text(label)


def labelled(page: Page, where: str) -> None:
    expect(page.locator("main h1")).to_be_visible()
    assert unlabelled_fields(page) == [], f"{where}: fields without a label"


def running_ssl_levels(esa1: Appliance) -> dict[str, str]:
    """The committed configuration's GUI lowest TLS version, per level ("" the cluster's)."""
    document = ET.fromstring(ok(esa1, "showconfig").stdout.encode("iso-8859-1"))
    found = {"": document.findtext("ssl_config/gui_tls_min")}
    for level in document.iter("machine_level"):
        found[f"machine:{level.get('name')}"] = level.findtext("ssl_config/gui_tls_min")
    return found


def test_a_machine_overrides_the_clusters_ssl_configuration(admin, esa1):
    page = admin.page
    bar = mode_bar(page)

    # 1. Cluster mode: the cluster defines the SSL Configuration.
    menu(page, "System Administration", "SSL Configuration")
    expect(bar).to_contain_text("Mode — Cluster: Mail")
    expect(bar).to_contain_text("Settings are defined at Cluster: Mail.")
    expect(page.locator("#commit-changes")).to_have_count(0)
    labelled(page, "SSL Configuration, Cluster mode")

    # 2. Change Mode… to Machine: esa2: it inherits the cluster's settings.
    change_mode(page, "Machine: esa2")
    expect(page).to_have_url(re.compile(r"/admin/ssl/$"))
    expect(bar).to_contain_text("Settings for this feature are currently defined at: Cluster: Mail.")
    expect(bar.get_by_role("button", name="Override Settings")).to_be_visible()
    expect(page.get_by_label("GUI HTTPS: lowest TLS version")).to_have_value("TLSv1.2")
    labelled(page, "SSL Configuration, Machine: esa2 inheriting")
    admin.screenshot("levels-inherited")

    # 3. What esa2 inherits is shown, not edited: the form is disabled, the mode selector is not. (A
    # change posted all the same is refused, naming the level: tests/test_levels_web.py.)
    expect(page.get_by_label("GUI HTTPS: lowest TLS version")).to_be_disabled()
    expect(page.get_by_role("button", name="Submit")).to_be_disabled()
    expect(page.locator("#change-mode")).to_be_enabled()

    # 4. Override Settings: esa2 gets a copy of its own, and its change is submitted.
    bar.get_by_role("button", name="Override Settings").click()
    expect(alert(page, "The settings are now defined for Machine: esa2.")).to_contain_text(
        "Commit the changes to make them take effect."
    )
    expect(bar).to_contain_text(
        "SSL Configuration: Machine: esa2 has settings of its own, which override those of Cluster: Mail."
    )
    expect(bar.get_by_role("button", name="Override Settings")).to_have_count(0)
    expect(page.get_by_label("GUI HTTPS: lowest TLS version")).to_have_value("TLSv1.2")
    page.get_by_label("GUI HTTPS: lowest TLS version").select_option("TLSv1.3")
    submit(page)
    expect(alert(page, "Your changes have been submitted")).to_be_visible()
    expect(page.get_by_label("GUI HTTPS: lowest TLS version")).to_have_value("TLSv1.3")
    labelled(page, "SSL Configuration, Machine: esa2's own")
    admin.screenshot("levels-overridden")

    # 5. Uncommitted Changes names the level; commit with a comment.
    page.locator("#commit-changes").click()
    expect(page).to_have_url(re.compile(r"/commit/$"))
    captions = page.locator("main table.diff caption")
    expect(captions).to_have_text(["SSL Configuration (Machine: esa2)"])
    rows = page.locator("table.diff tbody tr")
    expect(rows.nth(0).locator("td")).to_have_text(["settings for Machine: esa2", "added", ""])
    # What esa2 runs differently, against what it ran (the cluster's).
    expect(rows.nth(1).locator("td")).to_have_text(
        ["SSL Configuration", "changed", "GUI HTTPS: lowest TLS version", "TLSv1.2", "TLSv1.3"]
    )
    labelled(page, "Uncommitted Changes")
    admin.screenshot("levels-uncommitted")
    page.get_by_label("Comment").fill("esa2 on TLS 1.3")
    submit(page, "Commit Changes")
    expect(alert(page, "Your changes have been committed (version 4).")).to_be_visible()
    expect(page.get_by_text("No Changes Pending")).to_be_visible()

    # 8. (before step 6) What was committed, outside the browser.
    listed = ok(esa1, "clusterconfig", "list").stdout
    assert "Defined below the Cluster level:\n  SSL Configuration: Machine: esa2\n" in listed, listed
    assert running_ssl_levels(esa1) == {"": "TLSv1.2", "machine:esa2": "TLSv1.3"}

    # In Cluster mode the page names esa2 as defining its own; the cluster's settings are unchanged.
    menu(page, "System Administration", "SSL Configuration")
    expect(page.locator("#current-mode")).to_have_text("Machine: esa2")  # the mode stays for the session
    change_mode(page, "Cluster: Mail")
    expect(bar).to_contain_text("Defined as well, and winning there, for: Machine: esa2.")
    expect(page.get_by_label("GUI HTTPS: lowest TLS version")).to_have_value("TLSv1.2")

    # 6. Manage Settings > Remove: esa2 takes the cluster's settings again.
    change_mode(page, "Machine: esa2")
    expect(bar).to_contain_text("Machine: esa2 has settings of its own")
    bar.get_by_text("Manage Settings").click()
    bar.get_by_role("button", name="Remove the settings of Machine: esa2").click()
    expect(alert(page, "The settings of Machine: esa2 are removed.")).to_be_visible()
    expect(bar).to_contain_text("Settings for this feature are currently defined at: Cluster: Mail.")
    expect(bar.get_by_role("button", name="Override Settings")).to_be_visible()
    expect(page.get_by_label("GUI HTTPS: lowest TLS version")).to_have_value("TLSv1.2")
    labelled(page, "SSL Configuration, esa2's settings removed")
    page.locator("#commit-changes").click()
    expect(page.locator("main table.diff caption")).to_have_text(["SSL Configuration (Machine: esa2)"])
    page.get_by_label("Comment").fill("esa2 back on the cluster's SSL Configuration")
    submit(page, "Commit Changes")
    expect(alert(page, "Your changes have been committed (version 5).")).to_be_visible()

    # Back in Cluster mode, nothing is defined below it any more.
    menu(page, "System Administration", "SSL Configuration")
    change_mode(page, "Cluster: Mail")
    expect(bar).to_contain_text("Settings are defined at Cluster: Mail.")
    expect(bar).not_to_contain_text("Defined as well")
    assert "Every feature is defined at the Cluster level." in ok(esa1, "clusterconfig", "list").stdout
    assert running_ssl_levels(esa1) == {"": "TLSv1.2"}
