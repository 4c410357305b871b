"""The hosted quitclaim form in headless Chromium: an adult and a minor sign.

The pages are served by ``serve_api`` on the session's local stack; axe-core
finds no serious or critical violations on the blank form, on a refusal, or
on the thank-you page. Screenshots go to ``build/screenshots/form-*.png``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Browser, Page, expect

from devstack.api_server import serve_api
from quitclaim.bootstrap import forms_service, registry_service
from quitclaim.domain.models import TenantPolicy
from tests.browser.conftest import SCREENSHOTS, Dashboard
from tests.conftest import DEMO_NOW

pytestmark = pytest.mark.browser
TENANT = "form-ui"
TEXTS = {
    "en": {
        "title": "Portrait consent",
        "body": "You allow Example School to publish photographs of you.\n"
        "You can withdraw this consent at any time.",
    },
    "nl": {
        "title": "Portrettoestemming",
        "body": "U staat Example School toe foto's van u te publiceren.\n"
        "U kunt deze toestemming altijd intrekken.",
    },
}


@pytest.fixture(scope="module")
def site(local_stack: Any) -> Iterator[str]:
    # Given a tenant with a published form (web, print, social; one year)
    registry_service().create_tenant(TenantPolicy(tenant=TENANT))
    forms_service().publish(TENANT, "v1", TEXTS, ["web", "print", "social"], 365)
    with serve_api(local_stack) as url:
        yield url


@pytest.fixture
def tab(browser: Browser, site: str) -> Iterator[Dashboard]:
    context = browser.new_context(
        base_url=site, locale="en-GB", viewport={"width": 1024, "height": 900}
    )
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    yield Dashboard(page, errors)
    context.close()
    # Then the page's own script raised nothing
    assert errors == []


def _path(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.path}?{parsed.query}"


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_an_adult_signs_with_a_typed_and_a_drawn_signature(tab: Dashboard) -> None:
    # Given an event link
    link = forms_service().event_link(TENANT, "open-day", 2)
    page = tab.page
    # When a visitor opens it
    page.goto(_path(link.url))
    # Then the form shows the text, each purpose as its own box, and passes axe
    expect(page.get_by_role("heading", level=1)).to_have_text("Portrait consent")
    for purpose in ("web", "print", "social"):
        expect(page.get_by_role("checkbox", name=purpose, exact=True)).not_to_be_checked()
    assert tab.axe_violations() == []
    _shot(page, "form-adult")
    # When they fill it in, tick two purposes, type and draw their signature, and sign
    page.get_by_label("Full name", exact=True).fill("Ada Visitor")
    page.get_by_label("E-mail address (optional", exact=False).first.fill("ada.ui@example.org")
    page.get_by_label("Date of birth").fill("1990-05-01")
    page.get_by_role("checkbox", name="web", exact=True).check()
    page.get_by_role("checkbox", name="print", exact=True).check()
    page.get_by_label("Type your full name as your signature").fill("Ada Visitor")
    page.locator("#drawn").scroll_into_view_if_needed()  # the mouse acts in the viewport
    box = page.locator("#drawn").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 20, box["y"] + 60)
    page.mouse.down()
    page.mouse.move(box["x"] + 120, box["y"] + 30, steps=5)
    page.mouse.move(box["x"] + 220, box["y"] + 80, steps=5)
    page.mouse.up()
    page.get_by_label("I have read the text above and agree to it").check()
    page.get_by_role("button", name="Sign").click()
    # Then the thank-you page says what was recorded
    expect(page.get_by_role("heading", level=1)).to_have_text("Thank you: your consent is recorded")
    expect(page.locator("main")).to_contain_text("Recorded for: print, web")
    assert tab.axe_violations() == []
    _shot(page, "form-adult-signed")
    # And the registry holds the consent, with the drawn signature noted in its evidence
    [sid] = registry_service().find_subjects(TENANT, email="ada.ui@example.org")
    [view] = registry_service().consent_views(TENANT, sid)
    assert view.purposes == ("print", "web") and view.evidence is not None
    pdf, _ = registry_service().consent_document(TENANT, sid, view.consent_id)
    assert b"Drawn signature given: yes" in pdf


def test_a_minor_cannot_sign_without_a_guardian(tab: Dashboard) -> None:
    # Given a personal link for a 12-year-old, opened in Dutch
    subject = registry_service().create_subject(TENANT, "Kim Jong", email="kim.ui@example.org")
    link = forms_service().personal_link(TENANT, subject.subject_id, send=False)
    page = tab.page
    page.goto(_path(link.url) + "&lang=nl")
    expect(page.get_by_role("heading", level=1)).to_have_text("Portrettoestemming")
    expect(page.get_by_label("Volledige naam", exact=True)).to_have_value("Kim Jong")
    born = (DEMO_NOW.date() - timedelta(days=12 * 365 + 40)).isoformat()
    page.get_by_label("Geboortedatum").fill(born)
    page.get_by_role("checkbox", name="web", exact=True).check()
    page.get_by_label("Ik heb de tekst hierboven gelezen").check()
    # When it is signed without a guardian (the browser's own checks are off: novalidate)
    page.get_by_role("button", name="Ondertekenen").click()
    # Then the server refuses, naming the guardian's field, and keeps what was typed
    expect(page.get_by_role("alert")).to_contain_text("guardian_name is required")
    expect(page.get_by_label("Naam van de ouder of voogd")).to_have_attribute(
        "aria-invalid", "true"
    )
    expect(page.get_by_role("checkbox", name="web", exact=True)).to_be_checked()
    assert tab.axe_violations() == []
    _shot(page, "form-minor-refused")
    assert registry_service().consent_views(TENANT, subject.subject_id) == []
    # When the guardian adds their name and typed signature
    page.get_by_label("Naam van de ouder of voogd").fill("Pat Jong")
    page.get_by_label("E-mailadres van de ouder of voogd").fill("pat.ui@example.org")
    page.get_by_label("Handtekening van de ouder of voogd").fill("Pat Jong")
    page.get_by_label("Ik heb de tekst hierboven gelezen").check()
    page.get_by_role("button", name="Ondertekenen").click()
    # Then it is recorded, signed by the guardian
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Dank u: uw toestemming is vastgelegd"
    )
    expect(page.locator("main")).to_contain_text("Ondertekend door Pat Jong")
    assert tab.axe_violations() == []
    _shot(page, "form-minor-signed")
    [view] = registry_service().consent_views(TENANT, subject.subject_id)
    assert view.evidence is not None and view.evidence.signer == "Pat Jong"
    guardian = registry_service().subject(TENANT, subject.subject_id).guardian
    assert guardian is not None and guardian.email == "pat.ui@example.org"
