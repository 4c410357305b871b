"""The person's pages in headless Chromium: the e-mailed links and the request flow.

A person follows the links from the e-mails the emulator's SES captured, as
they would from their inbox; axe-core finds no serious or critical problem
on any page, and each page's screenshot goes to ``build/screenshots/``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Browser, expect

from devstack.api_server import serve_api
from quitclaim.bootstrap import (
    api_keys_service,
    consent_admin_service,
    onboarding_service,
    reminders_service,
    subject_admin_service,
)
from tests.browser.conftest import Dashboard
from tests.conftest import DEMO_NOW
from tests.integration.api.conftest import Buckets, photo

pytestmark = pytest.mark.browser
TENANT = "person-ui"
CONTACT = "privacy@person-ui.example.org"

Tabs = Callable[..., Dashboard]


@pytest.fixture(scope="module")
def person_url(local_stack: Any) -> Iterator[str]:
    with serve_api(local_stack) as url:
        yield url


@pytest.fixture(scope="module")
def person(local_stack: Any) -> dict[str, Any]:
    # Given a tenant with a contact address and two people: one with a photo in the
    # library and an open-ended consent, one whose consent expires in 5 days
    issued = onboarding_service().create_tenant(TENANT, contact_email=CONTACT)
    admin = api_keys_service().resolve(issued.secret)
    photographed = subject_admin_service().create_subject(
        admin.tenant, "Browser Person", email="browser@example.org"
    )
    subject_admin_service().enrol(
        admin.tenant,
        photographed.subject_id,
        [photo("enroll", "obama", "obama-portrait.jpg")],
        biometric_consent=True,
    )
    before = len(local_stack.sent_emails())
    consent_admin_service().grant_consent(
        admin.tenant,
        photographed.subject_id,
        source="api",
        actor=admin.key_id,
        purposes=["web", "social"],
        valid_from=DEMO_NOW - timedelta(days=1),
        expires_at=None,
        signer="Browser Person",
        form_version="v1",
    )
    renewer = subject_admin_service().create_subject(
        admin.tenant, "Browser Renewer", email="renewer-ui@example.org"
    )
    consent_admin_service().grant_consent(
        admin.tenant,
        renewer.subject_id,
        source="api",
        actor=admin.key_id,
        purposes=["print"],
        valid_from=DEMO_NOW - timedelta(days=360),
        expires_at=DEMO_NOW + timedelta(days=5),
        signer="Browser Renewer",
        form_version="v1",
    )
    buckets = Buckets(local_stack, TENANT)
    buckets.upload("browser.jpg", photo("uploads", "obama-office.jpg"))
    assert buckets.places("browser.jpg") == ["library"]
    reminders_service().send_due()
    mails = local_stack.sent_emails()[before:]
    return {"buckets": buckets, "mails": mails, "stack": local_stack, "key": issued.secret}


@pytest.fixture
def tab(browser: Browser, person_url: str) -> Iterator[Callable[..., Dashboard]]:
    contexts = []
    tabs: list[Dashboard] = []

    def open_tab(locale: str = "en-GB") -> Dashboard:
        context = browser.new_context(base_url=person_url, locale=locale)
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        opened = Dashboard(page, errors)
        tabs.append(opened)
        return opened

    yield open_tab
    for context in contexts:
        context.close()
    assert [e for t in tabs for e in t.errors] == []


def _path(mails: list[dict[str, Any]], to: str, marker: str) -> str:
    text = next(m["text"] for m in mails if to in m["to"] and marker in m["text"])
    url = next(w for w in text.split() if marker in w)
    parsed = urlparse(url)
    return f"{parsed.path}?token={parse_qs(parsed.query)['token'][0]}"


def _clean(tab: Dashboard, name: str) -> None:
    tab.screenshot(name)
    assert tab.axe_violations() == []


def test_withdrawal_from_the_confirmation_mail(tab: Tabs, person: dict[str, Any]) -> None:
    link = _path(person["mails"], "browser@example.org", "/links/withdraw?token=")
    # When the person opens the withdrawal link of their confirmation e-mail (Dutch browser)
    person_tab = tab("nl-NL")
    person_tab.page.goto(link)
    # Then the page says, in Dutch, what will change and for which purposes
    expect(person_tab.page.get_by_role("heading", level=1)).to_have_text("Uw toestemming intrekken")
    expect(person_tab.page.locator(".purposes li")).to_have_text(["social", "web"])
    _clean(person_tab, "person-withdraw-confirm")
    # When they press the button
    started = time.monotonic()
    person_tab.page.get_by_role("button", name="Mijn toestemming intrekken").click()
    # Then the page says what happened and what happens next
    expect(person_tab.page.get_by_role("heading", level=1)).to_have_text(
        "Uw toestemming is ingetrokken"
    )
    expect(person_tab.page.get_by_role("status")).to_contain_text("Wat er nu gebeurt")
    _clean(person_tab, "person-withdraw-done")
    # And their photo is out of the library within 30 s
    while person["buckets"].places("browser.jpg") == ["library"]:
        assert time.monotonic() - started < 30
        time.sleep(0.5)
    # When they open the same link again (English browser)
    again = tab("en-GB")
    again.page.goto(link)
    # Then it says it is withdrawn already, and whom to ask
    expect(again.page.get_by_role("heading", level=1)).to_have_text("Already withdrawn")
    expect(again.page.get_by_role("link", name=CONTACT)).to_be_visible()
    _clean(again, "person-withdraw-again")


def test_renewal_link_page(tab: Tabs, person: dict[str, Any]) -> None:
    link = _path(person["mails"], "renewer-ui@example.org", "/links/renew?token=")
    renewer = tab("en-GB")
    renewer.page.goto(link)
    expect(renewer.page.get_by_role("heading", level=1)).to_have_text("Renew your consent")
    expect(renewer.page.locator("main")).to_contain_text("It now ends on 1 December 2026")
    _clean(renewer, "person-renew-confirm")
    renewer.page.get_by_role("button", name="Renew my consent").click()
    expect(renewer.page.get_by_role("heading", level=1)).to_have_text("Your consent is renewed")
    expect(renewer.page.get_by_role("status")).to_contain_text("1 December 2027")
    _clean(renewer, "person-renew-done")
    # A used renewal link says so
    renewer.page.goto(link)
    expect(renewer.page.get_by_role("heading", level=1)).to_have_text("This link was used already")


def test_an_access_request_without_a_phone_call(tab: Tabs, person: dict[str, Any]) -> None:
    stack = person["stack"]
    # When a person opens the tenant's request page and asks for access by e-mail address
    asker = tab("en-GB")
    asker.page.goto(f"/requests/{TENANT}")
    expect(asker.page.get_by_role("heading", level=1)).to_have_text(
        "Ask for your data, or its erasure"
    )
    _clean(asker, "person-request-form")
    # (a wrong address is named first)
    asker.page.get_by_label("Your e-mail address").fill("not an address")
    asker.page.locator("form").evaluate("f => f.noValidate = true")
    asker.page.get_by_role("button", name="Send me the link").click()
    expect(asker.page.get_by_role("alert")).to_have_text("Enter a valid e-mail address.")
    _clean(asker, "person-request-error")
    before = len(stack.sent_emails())
    asker.page.get_by_label("A copy of my data").check()
    asker.page.get_by_label("Your e-mail address").fill("browser@example.org")
    asker.page.get_by_role("button", name="Send me the link").click()
    # Then they are told to check their inbox
    expect(asker.page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
    _clean(asker, "person-request-sent")
    # When they follow the link in the mail and confirm
    link = _path(stack.sent_emails()[before:], "browser@example.org", "/verify?token=")
    asker.page.goto(link)
    expect(asker.page.get_by_role("heading", level=1)).to_have_text("Confirm your request")
    _clean(asker, "person-request-verify")
    asker.page.get_by_role("button", name="Confirm my request").click()
    # Then the request is registered with its deadline and the export is offered
    expect(asker.page.get_by_role("heading", level=1)).to_have_text("Your request is registered")
    expect(asker.page.get_by_role("status")).to_contain_text("26 December 2026")
    download = asker.page.get_by_role("link", name=re.compile("Download your data"))
    expect(download).to_have_count(1)
    assert "X-Amz-Expires=604800" in (download.get_attribute("href") or "")
    _clean(asker, "person-request-done")


def test_the_officer_sees_the_request_in_the_dashboard(tab: Tabs, person: dict[str, Any]) -> None:
    # Given the access request above was verified and answered
    # When the officer opens the dashboard's overview
    officer = tab("en-GB").sign_in(person["key"])
    officer.go("Overview")
    # Then the request is listed with its deadline, kind and status
    row = officer.page.locator("#requests-rows tr[data-request]")
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(1)).to_have_text("Access (Art. 15)")
    expect(row.locator("td").nth(2)).to_have_text("Answered")
    _clean(officer, "person-requests-dashboard")
