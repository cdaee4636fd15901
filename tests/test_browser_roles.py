"""Who may do what, seen in the browser: a Read-Only Operator's submit is a preview with no way to commit;
a second administrator is told whose changes are pending; a bad upload is answered next to its field."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.appliance_process import PASSWORD
from tests.browser import chromium_fixture, console_fixture, live_appliance_fixture  # noqa: F401
from tests.test_browser_guide import menu, submit

pytestmark = [pytest.mark.slow, pytest.mark.browser]

USER_PASSWORD = "Second-pass-4242"


def add_user(page: Page, username: str, role: str) -> None:
    menu(page, "System Administration", "Users")
    page.get_by_role("link", name=re.compile("^Add User")).click()
    page.get_by_label("User Name").fill(username)
    page.get_by_label("Full Name").fill(username.title())
    page.get_by_label("User Role").select_option(label=role)
    page.get_by_label("Password", exact=True).fill(USER_PASSWORD)
    page.get_by_label("Retype Password").fill(USER_PASSWORD)
    submit(page)
    expect(page.get_by_role("cell", name=username, exact=True)).to_be_visible()


def add_destination(page: Page, name: str) -> None:
    menu(page, "Mail Policies", "Destination Controls")
    page.get_by_role("link", name="Add Destination...").click()
    page.get_by_label("Destination", exact=True).fill(name)
    page.get_by_label("TLS Support").select_option("required")
    submit(page)


def test_roles_and_the_change_lock(console):
    admin = console()
    admin_page = admin.log_in("admin", PASSWORD)
    add_user(admin_page, "rita", "Read-Only Operator")
    add_user(admin_page, "bob", "Administrator")

    # A Read-Only Operator submits: the page shows what would change, and nothing is pending.
    rita = console()
    rita_page = rita.log_in("rita", USER_PASSWORD)
    add_destination(rita_page, "rita.example.org")
    expect(rita_page.get_by_role("heading", name="What your submit would change")).to_be_visible()
    expect(rita_page.locator("main")).to_contain_text("rita.example.org")
    expect(rita_page.get_by_text("No Changes Pending")).to_be_visible()
    rita.screenshot("read-only-preview")

    # The administrator's pending change: Bob is told whose it is; Rita finds no way to commit it.
    add_destination(admin_page, "admin.example.org")
    expect(admin_page.locator("#commit-changes")).to_be_visible()
    bob = console()
    bob_page = bob.log_in("bob", USER_PASSWORD)
    expect(bob_page.locator("#commit-changes")).to_have_attribute(
        "title", re.compile(r"^admin has uncommitted changes since \d\d:\d\d$")
    )
    add_destination(bob_page, "bob.example.org")
    expect(bob_page.get_by_role("alert").first).to_contain_text("admin has uncommitted changes since")
    rita_page.reload()
    rita_page.locator("#commit-changes").click()
    expect(rita_page.get_by_text("Your role cannot commit changes.")).to_be_visible()
    expect(rita_page.get_by_role("button", name="Commit Changes")).to_have_count(0)
    expect(rita_page.get_by_role("button", name="Abandon Changes")).to_have_count(0)


def test_a_bad_upload_is_answered_next_to_its_field(console, tmp_path):
    admin = console()
    page = admin.log_in("admin", PASSWORD)
    menu(page, "Network", "Certificates")
    page.get_by_role("link", name="Add Certificate...").click()
    page.get_by_label("Add Certificate", exact=True).select_option(label="Import Certificate (PKCS#12)")
    not_pkcs12 = tmp_path / "mail.p12"
    not_pkcs12.write_text("This is a letter, not a PKCS#12 file.\n")
    page.get_by_label("PKCS#12 file (.p12, .pfx)").set_input_files(not_pkcs12)
    page.get_by_label("Password", exact=True).fill("whatever-42")
    page.get_by_label("Certificate Name").fill("Imported")
    submit(page)
    field = page.locator(".field.has-error").filter(has=page.get_by_label("PKCS#12 file (.p12, .pfx)"))
    expect(field.locator(".error")).to_contain_text("PKCS#12")
    admin.screenshot("bad-upload")
    page.goto(admin.base + "/commit/")  # the earlier test left a change of its own; nothing joined it
    expect(page.locator("main")).not_to_contain_text("Imported")
