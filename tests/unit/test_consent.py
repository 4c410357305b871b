"""Consent validity is computed from the dates, scope, revocation and now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from quitclaim.domain.consent import best_consent, consent_verdict
from quitclaim.domain.models import Consent, ConsentVerdict
from tests.unit.strategies import consents, instants, purposes

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def _consent(**kw: object) -> Consent:
    base: dict[str, object] = {
        "tenant": "t1",
        "subject_id": "sub_a",
        "consent_id": "con_1",
        "purposes": frozenset({"web"}),
        "valid_from": NOW - timedelta(days=10),
        "expires_at": NOW + timedelta(days=10),
    }
    base.update(kw)
    return Consent(**base)  # type: ignore[arg-type]


def test_valid_consent_for_its_purpose() -> None:
    # Given a consent for web within its window / When judged now / Then valid
    assert consent_verdict(_consent(), "web", NOW) is ConsentVerdict.VALID


def test_expiry_instant_is_exclusive() -> None:
    # Given a consent that expires exactly now / Then it no longer holds
    assert consent_verdict(_consent(expires_at=NOW), "web", NOW) is ConsentVerdict.EXPIRED


def test_revocation_wins_over_everything() -> None:
    # Given a withdrawn consent that is also out of scope and not yet valid
    c = _consent(revoked_at=NOW - timedelta(seconds=1), valid_from=NOW + timedelta(days=1))
    # Then the withdrawal is the verdict: the person said no
    assert consent_verdict(c, "print", NOW) is ConsentVerdict.REVOKED


def test_future_revocation_does_not_apply_yet() -> None:
    c = _consent(revoked_at=NOW + timedelta(days=1))
    assert consent_verdict(c, "web", NOW) is ConsentVerdict.VALID


def test_out_of_scope_and_not_yet_valid() -> None:
    assert consent_verdict(_consent(), "print", NOW) is ConsentVerdict.OUT_OF_SCOPE
    early = _consent(valid_from=NOW + timedelta(days=1))
    assert consent_verdict(early, "web", NOW) is ConsentVerdict.NOT_YET_VALID


def test_best_consent_prefers_a_valid_one() -> None:
    # Given an expired and a valid consent for the same subject
    old = _consent(
        consent_id="con_old",
        expires_at=NOW - timedelta(days=1),
        valid_from=NOW - timedelta(days=400),
    )
    new = _consent(consent_id="con_new")
    # When the best is chosen / Then the valid one decides
    chosen, verdict = best_consent([old, new], "web", NOW)
    assert chosen is new and verdict is ConsentVerdict.VALID


def test_best_consent_explains_with_the_in_scope_one() -> None:
    # Given a valid print consent and an expired web consent
    printed = _consent(consent_id="con_p", purposes=frozenset({"print"}))
    web = _consent(
        consent_id="con_w", expires_at=NOW - timedelta(days=1), valid_from=NOW - timedelta(days=30)
    )
    # When judged for web / Then "expired" is the actionable reason, not scope
    chosen, verdict = best_consent([printed, web], "web", NOW)
    assert chosen is web and verdict is ConsentVerdict.EXPIRED


def test_no_consents_gives_no_verdict() -> None:
    assert best_consent([], "web", NOW) == (None, None)


@given(consent=consents(), purpose=purposes, now=instants)
def test_valid_verdict_matches_the_definition(
    consent: Consent, purpose: str, now: datetime
) -> None:
    # For any consent and moment: VALID exactly when every condition holds
    expected = (
        purpose in consent.purposes
        and consent.valid_from <= now
        and (consent.expires_at is None or now < consent.expires_at)
        and (consent.revoked_at is None or consent.revoked_at > now)
    )
    assert (consent_verdict(consent, purpose, now) is ConsentVerdict.VALID) == expected


@given(many=st.lists(consents(subject_id="sub_a"), max_size=6), purpose=purposes, now=instants)
def test_best_consent_is_valid_iff_any_is(many: list[Consent], purpose: str, now: datetime) -> None:
    _, verdict = best_consent(many, purpose, now)
    any_valid = any(consent_verdict(c, purpose, now) is ConsentVerdict.VALID for c in many)
    assert (verdict is ConsentVerdict.VALID) == any_valid
