"""The review dashboard in a real browser.

Debian's Chromium (``/usr/bin/chromium``; ``.ci/run`` installs it) driven by
Playwright, against ``serve_api`` (the server ``quitclaim local up`` runs) on
the session's local stack, with the demo loaded into its own tenant by the
same ``load_demo`` that ``quitclaim local up --demo`` uses. No browser is
downloaded (``playwright install`` is never run): a missing Chromium fails.

Screenshots of every view are written to ``build/screenshots/``.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from devstack.api_server import serve_api
from devstack.scenario import DemoData, load_demo
from tests.conftest import FACES, REPO_ROOT

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO_ROOT / "build" / "screenshots"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
# Its own tenant: the e2e demo test loads the demo as "demo" on the same stack.
TENANT = "demo-ui"


@pytest.fixture(scope="session")
def demo(local_stack: Any) -> DemoData:
    # Given the demo's five people, their consents and the thirteen photos, processed
    with local_stack.lock:
        return load_demo(local_stack, FACES, echo=lambda _: None, tenant=TENANT)


@pytest.fixture(scope="session")
def base_url(local_stack: Any, demo: DemoData) -> Iterator[str]:
    with serve_api(local_stack) as url:
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the dashboard's browser tests need Debian's Chromium "
            "(apt-get install -y chromium; .ci/run does this)"
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Dashboard:
    """One person's browser tab on the dashboard."""

    def __init__(self, page: Page, errors: list[str]) -> None:
        self.page = page
        self.errors = errors

    def sign_in(self, key: str) -> Dashboard:
        self.page.goto("/")
        self.page.get_by_label("API key").fill(key)
        self.page.get_by_role("button", name="Sign in", exact=True).click()
        expect(self.page.get_by_role("heading", level=1)).to_have_text("Quarantine queue")
        expect(self.page.locator("#queue-count")).not_to_have_text("Loading…")
        return self

    def go(self, link: str) -> None:
        self.page.get_by_role("navigation").get_by_role("link", name=link).click()

    def queue_paths(self) -> list[str]:
        expect(self.page.locator("#queue-count")).not_to_have_text("Loading…")
        return self.page.locator("#queue-list .path").all_inner_texts()

    def item(self, path: str) -> Any:
        return self.page.locator("#queue-list li").filter(
            has=self.page.locator(".path", has_text=path)
        )

    def open(self, path: str) -> None:
        self.item(path).get_by_role("button").click()
        expect(self.page.locator("#detail-title")).to_have_text(path)
        expect(self.page.locator("#detail-image img")).to_be_visible()

    def filter_status(self, status_label: str) -> None:
        self.page.get_by_label("Status").select_option(label=status_label)
        self.page.get_by_role("button", name="Apply").click()
        expect(self.page.locator("#queue-count")).not_to_have_text("Loading…")

    def act(self, button: str, justification: str) -> None:
        self.page.locator("#detail-actions").get_by_role("button", name=button).click()
        dialog = self.page.get_by_role("dialog")
        expect(dialog).to_be_visible()
        dialog.get_by_label("Justification").fill(justification)
        dialog.locator("#confirm-ok").click()
        expect(dialog).to_be_hidden()

    def said(self) -> Any:
        return self.page.locator("#status")

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.wait_for_load_state("networkidle")  # the previews are in
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def axe_violations(self) -> list[dict[str, Any]]:
        """axe-core's serious and critical findings on the page as it is now."""
        if not self.page.evaluate("() => typeof window.axe !== 'undefined'"):
            # Evaluated through the DevTools protocol: the page's own CSP stays on.
            self.page.evaluate(AXE.read_text(encoding="utf-8"))
        found: list[dict[str, Any]] = self.page.evaluate(
            """async () => {
                const result = await axe.run(document, {resultTypes: ["violations"]});
                return result.violations
                    .filter(v => v.impact === "serious" || v.impact === "critical")
                    .map(v => ({id: v.id, impact: v.impact,
                                nodes: v.nodes.map(n => n.target.join(" "))}));
            }"""
        )
        return found


@pytest.fixture
def dashboard(browser: Browser, base_url: str) -> Iterator[Callable[..., Dashboard]]:
    """Opens a fresh tab (own session storage) per call; fails the test on any JS error."""
    contexts = []
    tabs: list[Dashboard] = []

    def open_tab(locale: str = "en-GB") -> Dashboard:
        context = browser.new_context(
            base_url=base_url,
            locale=locale,
            timezone_id="Europe/Amsterdam",
            viewport={"width": 1366, "height": 900},
            accept_downloads=True,
        )
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        page.on(
            "console",
            lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None,
        )
        tab = Dashboard(page, errors)
        tabs.append(tab)
        return tab

    yield open_tab
    for context in contexts:
        context.close()
    # Then no tab logged a script error (a 4xx the test provoked is logged as one: allowed)
    problems = [e for tab in tabs for e in tab.errors if "status of 401" not in e]
    assert problems == []


def api_get(base_url: str, path: str, key: str) -> Any:
    """Read the API directly: what the page shows must be what the system holds."""
    request = urllib.request.Request(base_url + path, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())
