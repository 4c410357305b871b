"""The person's side of a consent on the local stack: the confirmation e-mail,
its standing withdrawal link opened as a page, and the receipt.

The mail is read from the emulator's SES, the link followed as a browser
would (Accept: text/html, a form POST), the photo watched in the buckets.
"""

from __future__ import annotations

import html
import re
import time
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from quitclaim.bootstrap import (
    api_keys_service,
    consent_admin_service,
    onboarding_service,
    registry_service,
    subject_admin_service,
)
from tests.conftest import DEMO_NOW
from tests.integration.api.conftest import Api, Buckets, photo
from tests.integration.faults import failing_calls

pytestmark = pytest.mark.integration
TENANT = "api-person-pages"
CONTACT = "privacy@person-pages.example.org"
BROWSER = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "nl-NL,nl;q=0.9,en;q=0.8",
}
FORM = {**BROWSER, "Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def granted(local_stack: Any) -> dict[str, Any]:
    # Given a tenant with a contact address, a person with an e-mail address and
    # an approved photo of them in the library
    issued = onboarding_service().create_tenant(TENANT, contact_email=CONTACT)
    admin = api_keys_service().resolve(issued.secret)
    subject = subject_admin_service().create_subject(
        admin.tenant, "Paged Person", email="paged@example.org"
    )
    subject_admin_service().enrol(
        admin.tenant,
        subject.subject_id,
        [photo("enroll", "obama", "obama-portrait.jpg")],
        biometric_consent=True,
    )
    before = len(local_stack.sent_emails())
    # When an officer records their consent (no end date: no reminder will ever come)
    consent = consent_admin_service().grant_consent(
        admin.tenant,
        subject.subject_id,
        source="api",
        actor=admin.key_id,
        purposes=["web", "print"],
        valid_from=DEMO_NOW - timedelta(days=1),
        expires_at=None,
        signer="Paged Person",
        form_version="v1",
    )
    buckets = Buckets(local_stack, TENANT)
    buckets.upload("paged.jpg", photo("uploads", "obama-office.jpg"))
    assert buckets.places("paged.jpg") == ["library"]
    mails = [m for m in local_stack.sent_emails()[before:] if "paged@example.org" in m["to"]]
    return {
        "admin": admin,
        "subject": subject.subject_id,
        "consent": consent.consent_id,
        "buckets": buckets,
        "mails": mails,
        "stack": local_stack,
    }


def _link(text: str, action: str) -> str:
    url = next(w for w in text.split() if f"/links/{action}?token=" in w)
    token = parse_qs(urlparse(url).query)["token"][0]
    return f"/links/{action}?token={token}"


def _text(body: bytes) -> str:
    """The page's words, tags stripped (what a person reads)."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body.decode())))


def test_a_grant_sends_a_confirmation_with_a_standing_withdrawal_link(
    granted: dict[str, Any],
) -> None:
    # Then exactly one confirmation went out, naming the purposes, with a withdrawal link
    [mail] = granted["mails"]
    assert "recorded" in mail["subject"]
    assert "print, web" in mail["text"]
    assert "/links/withdraw?token=" in mail["text"]
    assert 'href="http' in mail["html"]


def test_the_withdrawal_page_then_confirm_then_already_withdrawn(
    chalice_api: Api, granted: dict[str, Any]
) -> None:
    link = _link(granted["mails"][0]["text"], "withdraw")
    stack = granted["stack"]
    # When the person opens the link in a Dutch browser
    opened = chalice_api.call("GET", link, headers=BROWSER)
    # Then a page in Dutch says what will change, for which purposes, with one button
    assert opened.status == 200
    assert opened.header("Content-Type") == "text/html; charset=utf-8"
    csp = opened.header("Content-Security-Policy") or ""
    assert "default-src 'none'" in csp and "form-action 'self'" in csp
    assert "script" not in opened.body.decode().lower()
    assert opened.header("X-Frame-Options") == "DENY"
    assert opened.header("Referrer-Policy") == "no-referrer"
    page = _text(opened.body)
    assert "Uw toestemming intrekken" in page and "print" in page and "web" in page
    assert '<html lang="nl">' in opened.body.decode()
    form = re.search(r'<form method="post" action="([^"]+)"', opened.body.decode())
    assert form is not None
    # And opening it changed nothing
    assert granted["buckets"].places("paged.jpg") == ["library"]

    # When they press the button (the form posts to its action)
    before = len(stack.sent_emails())
    started = time.monotonic()
    done = chalice_api.call("POST", html.unescape(form.group(1)), headers=FORM, body=b"")
    # Then the page says what happened and what happens next
    assert done.status == 200, done.body
    text = _text(done.body)
    assert "Uw toestemming is ingetrokken" in text and "Wat er nu gebeurt" in text
    assert CONTACT in text
    # And the photo is out of the library within 30 s
    while granted["buckets"].places("paged.jpg") == ["library"]:
        assert time.monotonic() - started < 30, "the photo is still in the library"
        time.sleep(0.5)
    assert granted["buckets"].places("paged.jpg") == ["quarantine"]
    # And a receipt went out
    receipts = [m for m in stack.sent_emails()[before:] if "paged@example.org" in m["to"]]
    assert [m["subject"] for m in receipts] == [f"Your consent to {TENANT} is withdrawn"]

    # When they open the same link again
    again = chalice_api.call("GET", link, headers=BROWSER)
    # Then the page says it is withdrawn already, and whom to ask
    assert again.status == 409
    assert "Al ingetrokken" in _text(again.body) and CONTACT in _text(again.body)
    # And in English for an English browser
    english = chalice_api.call(
        "GET", link, headers={**BROWSER, "Accept-Language": "en-GB,en;q=0.9"}
    )
    assert "Already withdrawn" in _text(english.body)
    # And a JSON client still gets the JSON answer
    assert chalice_api.call("GET", link).json["error"] == "already_withdrawn"


def test_a_forged_link_gets_a_page_naming_nobody(chalice_api: Api) -> None:
    # When someone opens a forged link
    reply = chalice_api.call(
        "GET", "/links/withdraw?token=" + "A" * 40 + ".forged", headers=BROWSER
    )
    # Then the page says it is not valid, and names no organisation
    assert reply.status == 403
    text = _text(reply.body)
    assert "Deze link is niet geldig" in text
    assert "de organisatie die u de e-mail stuurde" in text


def test_a_bulk_import_sends_no_confirmation_unless_it_asks(
    local_stack: Any, granted: dict[str, Any]
) -> None:
    # Given a person of the tenant (the registry is what webhooks and imports call)
    registry = registry_service()
    sid = registry.create_subject(TENANT, "Imported Person", email="imported@example.org")
    before = len(local_stack.sent_emails())
    # When an import grants without asking for mail / Then none goes out
    registry.grant_consent(TENANT, sid.subject_id, ["web"], DEMO_NOW, None, notify=False)
    assert [m for m in local_stack.sent_emails()[before:] if "imported@" in str(m["to"])] == []
    # When it asks (or a webhook grants) / Then the confirmation goes out
    registry.grant_consent(TENANT, sid.subject_id, ["print"], DEMO_NOW, None, source="webhook")
    mails = [m for m in local_stack.sent_emails()[before:] if "imported@" in str(m["to"])]
    assert [m["subject"] for m in mails] == [f"Your consent to {TENANT} is recorded"]


def test_a_failing_store_gets_the_generic_page(chalice_api: Api, granted: dict[str, Any]) -> None:
    link = _link(granted["mails"][0]["text"], "withdraw")
    # When DynamoDB fails while the person opens their link
    with failing_calls("dynamodb", "GetItem", "InternalServerError"):
        reply = chalice_api.call("GET", link, headers=BROWSER)
    # Then a page says nothing changed (no stack trace, no JSON)
    assert reply.status == 503
    assert reply.header("Content-Type") == "text/html; charset=utf-8"
    assert "Er is niets veranderd" in _text(reply.body)
