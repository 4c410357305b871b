"""E-mailed renewal and withdrawal links, through the public API routes.

A real reminder is sent (moto's SES captures it) and its links are followed
the way a person would: GET shows what will happen, POST does it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from quitclaim.bootstrap import (
    api_keys_service,
    consent_admin_service,
    reminders_service,
    subject_admin_service,
)
from tests.conftest import DEMO_NOW
from tests.integration.api.conftest import Api, Buckets, assert_error, make_tenant, photo

pytestmark = pytest.mark.integration
TENANT = "api-links"


@pytest.fixture(scope="module")
def mailed(local_stack: Any) -> dict[str, Any]:
    # Given a person with an e-mail address, a consent expiring in 5 days,
    # an approved image of them, and the reminder that went out
    tenant = make_tenant(TENANT)
    admin = api_keys_service().resolve(tenant.admin)
    subject = subject_admin_service().create_subject(
        admin.tenant, "Linked Person", email="linked@example.org"
    )
    subject_admin_service().enrol(
        admin.tenant,
        subject.subject_id,
        [photo("enroll", "obama", "obama-portrait.jpg")],
        biometric_consent=True,
    )
    consent = consent_admin_service().grant_consent(
        admin.tenant,
        subject.subject_id,
        source="api",
        actor=admin.key_id,
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
    # (the reminder: every grant also sends a confirmation, docs/person-pages.md)
    [mail] = [m for m in local_stack.sent_emails() if _reminder(m, "linked@example.org")]
    return {
        "admin": admin,
        "subject": subject.subject_id,
        "consent": consent.consent_id,
        "buckets": buckets,
        "renew": _token(mail["text"], "renew"),
        "withdraw": _token(mail["text"], "withdraw"),
    }


def _reminder(mail: dict[str, Any], to: str) -> bool:
    return to in mail["to"] and "/links/renew?token=" in (mail["text"] or "")


def _token(text: str, action: str) -> str:
    url = next(w for w in text.split() if f"/links/{action}?token=" in w)
    return parse_qs(urlparse(url).query)["token"][0]


def _history(mailed: dict[str, Any]) -> list[str]:
    view = consent_admin_service().subject_consent(
        mailed["admin"].tenant, mailed["subject"], mailed["consent"]
    )
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


# ---------------------------------------------------------------- bound links


@pytest.fixture(scope="module")
def bound(local_stack: Any) -> dict[str, Any]:
    # Given two more people of another tenant, each with a consent expiring in
    # 5 days, and the reminders that went out to them (no images needed)
    tenant = make_tenant(f"{TENANT}-bound")
    admin = api_keys_service().resolve(tenant.admin)
    people: dict[str, Any] = {"admin": admin}
    for who in ("renewer", "withdrawer"):
        subject = subject_admin_service().create_subject(
            admin.tenant, f"Bound {who}", email=f"{who}@example.org"
        )
        consent = consent_admin_service().grant_consent(
            admin.tenant,
            subject.subject_id,
            source="api",
            actor=admin.key_id,
            purposes=["web"],
            valid_from=DEMO_NOW - timedelta(days=360),
            expires_at=DEMO_NOW + timedelta(days=5),
            signer=f"Bound {who}",
            form_version="v1",
        )
        people[who] = {"subject": subject.subject_id, "consent": consent.consent_id}
    reminders_service().send_due()
    for who in ("renewer", "withdrawer"):
        [mail] = [m for m in local_stack.sent_emails() if _reminder(m, f"{who}@example.org")]
        people[who]["renew"] = _token(mail["text"], "renew")
        people[who]["withdraw"] = _token(mail["text"], "withdraw")
    return people


def _consent(bound: dict[str, Any], who: str) -> Any:
    person = bound[who]
    return consent_admin_service().subject_consent(
        bound["admin"].tenant, person["subject"], person["consent"]
    )


def test_a_renewal_link_works_once(chalice_api: Api, bound: dict[str, Any]) -> None:
    token = bound["renewer"]["renew"]
    # When the person confirms the renewal link
    first = chalice_api.call("POST", f"/links/renew?token={token}")
    assert first.status == 200 and first.json["status"] == "renewed"
    renewed_until = _consent(bound, "renewer").expires_at
    # And the same link is posted again (a replay, a double click)
    for _ in range(2):
        again = chalice_api.call("POST", f"/links/renew?token={token}")
        # Then it is refused as used, and the consent keeps the one extra year
        assert_error(again, 409, "link_used")
    view = _consent(bound, "renewer")
    assert view.expires_at == renewed_until
    assert [e.event for e in view.history] == ["granted", "renewed"]
    # And checking it (GET) says so too, without changing anything
    assert_error(chalice_api.call("GET", f"/links/renew?token={token}"), 409, "link_used")


def test_a_withdrawal_link_holds_until_the_consent_ends_and_acts_once(
    local_stack: Any, chalice_api: Api, bound: dict[str, Any]
) -> None:
    # Given the person renewed (the consent now runs a year past its old end)
    renewed = chalice_api.call("POST", f"/links/renew?token={bound['withdrawer']['renew']}")
    assert renewed.status == 200
    token = bound["withdrawer"]["withdraw"]
    # When they follow the withdrawal link long after the mail (past the
    # 45 days a renewal link lasts), while the consent is still in force
    local_stack.clock.set(DEMO_NOW + timedelta(days=60))
    try:
        assert chalice_api.call("GET", f"/links/withdraw?token={token}").status == 200
        withdrawn = chalice_api.call("POST", f"/links/withdraw?token={token}")
        # Then it works
        assert withdrawn.status == 200 and withdrawn.json["status"] == "revoked"
        # And following it again changes nothing and says so
        again = chalice_api.call("POST", f"/links/withdraw?token={token}")
        assert_error(again, 409, "already_withdrawn")
    finally:
        local_stack.clock.set(DEMO_NOW)
    history = [e.event for e in _consent(bound, "withdrawer").history]
    assert history == ["granted", "renewed", "revoked"]


def test_a_withdrawal_link_ends_with_the_consent(
    local_stack: Any, chalice_api: Api, bound: dict[str, Any]
) -> None:
    # Given the renewer's consent has run out (its end has passed)
    before = _consent(bound, "renewer")
    end = before.expires_at
    local_stack.clock.set(end + timedelta(days=1))
    try:
        # When its withdrawal link is followed / Then it has expired with it
        reply = chalice_api.call("POST", f"/links/withdraw?token={bound['renewer']['withdraw']}")
        assert_error(reply, 403, "link_expired")
    finally:
        local_stack.clock.set(DEMO_NOW)
    assert _consent(bound, "renewer").history == before.history
