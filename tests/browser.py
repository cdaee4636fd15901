"""The browser suite's pieces: Debian's chromium driven by Playwright against a real ``runappliance``.

Every page a test opens is watched: a console error, an uncaught exception, a request that fails or
a response of 500 or more is a problem, and the test fails at its end listing them. Screenshots go to
``SCREENS_DIR`` (default ``test-artifacts/screens``; ``make screens`` writes ``docs/screens``) and page
times to ``test-artifacts/page-times.json``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.appliance_process import PROJECT, Appliance, free_port

ARTIFACTS = Path(os.environ.get("ARTIFACTS_DIR", PROJECT / "test-artifacts"))
SCREENS = Path(os.environ.get("SCREENS_DIR", ARTIFACTS / "screens"))
WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 400, "height": 800}


class Problems:
    """What went wrong in the pages of one browser context."""

    def __init__(self):
        self.found: list[str] = []
        self.downloads: set[str] = set()  # a download ends its request on purpose
        self.refusals: set[str] = set()  # forms answered 4xx with their errors: the answer, not a fault

    def watch(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.found.append(f"page error: {error}"))
        page.on("download", lambda download: self.downloads.add(download.url))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)

    def _failed(self, request) -> None:
        if request.url not in self.downloads and request.failure != "net::ERR_ABORTED":
            self.found.append(f"request failed: {request.method} {request.url} ({request.failure})")

    def _console(self, message) -> None:
        if message.type != "error":
            return
        # Chromium logs every 4xx answer as an error; a form refused with its errors is meant to get one.
        refused = message.text.startswith("Failed to load resource: the server responded with a status of 4")
        if not (refused and message.location.get("url") in self.refusals):
            self.found.append(f"console: {message.text} ({message.location.get('url')})")

    def _response(self, response) -> None:
        if 400 <= response.status < 500 and response.request.method == "POST":
            self.refusals.add(response.url)
        if response.status >= 500:
            self.found.append(f"HTTP {response.status}: {response.request.method} {response.url}")


class Console:
    """One user's browser on the appliance's console."""

    def __init__(self, context: BrowserContext, base: str, problems: Problems):
        self.context, self.base, self.problems = context, base, problems
        self.page = context.new_page()
        problems.watch(self.page)

    def open(self, path: str) -> Page:
        self.page.goto(self.base + path)
        return self.page

    def log_in(self, username: str, password: str) -> Page:
        page = self.open("/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Login").click()
        page.wait_for_url(lambda url: "/login/" not in url)
        return page

    def screenshot(self, name: str) -> None:
        SCREENS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=SCREENS / f"{name}.png", full_page=True)


@pytest.fixture(name="chromium", scope="module")
def chromium_fixture() -> Browser:
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is missing: make test installs it"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable)
        yield browser
        browser.close()


@pytest.fixture(name="live_appliance", scope="module")
def live_appliance_fixture(tmp_path_factory) -> Appliance:
    """A ``runappliance`` of the module's own (its data directory, its HTTPS port)."""
    running = Appliance(tmp_path_factory.mktemp("browser") / "data", free_port())
    try:
        running.wait_for(r"^Appliance ready: ")
        yield running
    finally:
        running.stop()


@pytest.fixture(name="console")
def console_fixture(chromium, live_appliance):
    """``console(viewport=WIDE)``: a fresh browser context (its own cookies) on the appliance; the
    test fails if any page it opened had a problem."""
    problems = Problems()
    contexts = []

    def open_console(viewport: dict = WIDE) -> Console:
        context = chromium.new_context(ignore_https_errors=True, viewport=viewport, accept_downloads=True)
        contexts.append(context)
        return Console(context, f"https://127.0.0.1:{live_appliance.port}", problems)

    yield open_console
    for context in contexts:
        context.close()
    assert problems.found == [], "\n".join(problems.found)


def record_times(times: dict[str, float]) -> Path:
    """Add page times (ms) to the suite's report; recorded, not asserted."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    report = ARTIFACTS / "page-times.json"
    recorded = json.loads(report.read_text()) if report.exists() else {}
    recorded.update(times)
    report.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")
    return report
