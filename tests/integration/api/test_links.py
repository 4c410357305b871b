"""E-mailed renewal and withdrawal links, through the public API routes.

A real reminder is sent (moto's SES captures it) and its links are followed
the way a person would: GET shows what will happen, POST does it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from quitclaim.bootstrap import console_service, reminders_service
from tests.conftest import DEMO_NOW
from tests.integration.api.conftest import Api, Buckets, assert_error, make_tenant, photo

pytestmark = pytest.mark.integration
TENANT = "api-links"


@pytest.fixture(scope="module")
def mailed(local_stack: Any) -> dict[str, Any]:
    # Given a person with an e-mail address, a consent expiring in 5 days,
    # an approved image of them, and the reminder that went out
    tenant = make_tenant(TENANT)
    console = console_service()
    admin = console.resolve_key(tenant.admin)
    subject = console.create_subject(admin, "Linked Person", email="linked@example.org")
    console.enrol(admin, subject.subject_id, [photo("enroll", "obama", "obama-portrait.jpg")])
    consent = console.grant_consent(
        admin,
        subject.subject_id,
        purposes=["web"],
        valid_from=DEMO_NOW - timedelta(days=360),
        expires_at=DEMO_NOW + timedelta(days=5),
        signer="Linked Person",
        form_version="v1",
    )
    buckets = Buckets(local_stack, TENANT)
    buckets.upload("linked.jpg", photo("uploads", "obama-office.jpg"))
    assert buckets.places("linked.jpg") == ["library"]
    reminders_service().send_due()
    [mail] = [m for m in local_stack.sent_emails() if "linked@example.org" in m["to"]]
    return {
        "admin": admin,
        "subject": subject.subject_id,
        "consent": consent.consent_id,
        "buckets": buckets,
        "renew": _token(mail["text"], "renew"),
        "withdraw": _token(mail["text"], "withdraw"),
    }


def _token(text: str, action: str) -> str:
    url = next(w for w in text.split() if f"/links/{action}?token=" in w)
    return parse_qs(urlparse(url).query)["token"][0]


def _history(mailed: dict[str, Any]) -> list[str]:
    view = console_service().get_consent(mailed["admin"], mailed["subject"], mailed["consent"])
    return [e.event for e in view.history]


def test_a_tampered_link_is_refused_and_changes_nothing(api: Api, mailed: dict[str, Any]) -> None:
    bad = mailed["renew"][:-4] + ("AAAA" if not mailed["renew"].endswith("AAAA") else "BBBB")
    for method in ("GET", "POST"):
        assert_error(api.call(method, f"/links/renew?token={bad}"), 403, "bad_link")
    # A renewal token does not withdraw, and the reverse
    assert_error(api.call("POST", f"/links/withdraw?token={mailed['renew']}"), 403, "bad_link")
    assert _history(mailed) == ["granted"]


def test_following_a_link_needs_a_post(api: Api, mailed: dict[str, Any]) -> None:
    # When a mail scanner (or a person) opens the link
    reply = api.call("GET", f"/links/withdraw?token={mailed['withdraw']}")
    # Then it is checked and explained, and nothing happens yet
    assert reply.status == 200 and reply.json["action"] == "withdraw"
    assert reply.json["consent_id"] == mailed["consent"]
    assert _history(mailed) == ["granted"]
    assert mailed["buckets"].places("linked.jpg") == ["library"]


def test_an_expired_link_is_refused(
    local_stack: Any, chalice_api: Api, mailed: dict[str, Any]
) -> None:
    # Given the links' validity (45 days) has passed
    local_stack.clock.set(DEMO_NOW + timedelta(days=60))
    try:
        reply = chalice_api.call("POST", f"/links/renew?token={mailed['renew']}")
        assert_error(reply, 403, "link_expired")
    finally:
        local_stack.clock.set(DEMO_NOW)
    assert _history(mailed) == ["granted"]


def test_renew_then_withdraw(chalice_api: Api, mailed: dict[str, Any]) -> None:
    # When the person confirms the renewal link
    renewed = chalice_api.call("POST", f"/links/renew?token={mailed['renew']}")
    # Then the consent runs a year past its old end
    assert renewed.status == 200 and renewed.json["status"] == "renewed"
    assert renewed.json["expires_at"].startswith(str((DEMO_NOW + timedelta(days=370)).year))
    assert _history(mailed) == ["granted", "renewed"]
    # When they later confirm the withdrawal link / Then the image leaves the library
    withdrawn = chalice_api.call("POST", f"/links/withdraw?token={mailed['withdraw']}")
    assert withdrawn.status == 200 and withdrawn.json["status"] == "revoked"
    assert mailed["buckets"].places("linked.jpg") == ["quarantine"]
    assert _history(mailed) == ["granted", "renewed", "revoked"]
