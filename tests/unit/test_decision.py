"""The gate's rule: approved only if every identifiable face is covered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from quitclaim.domain.consent import consent_verdict
from quitclaim.domain.decision import decide_asset, redecide_recorded
from quitclaim.domain.models import (
    AssetStatus,
    Box,
    Consent,
    ConsentVerdict,
    FaceMatch,
    Reason,
)
from tests.unit.strategies import SUBJECTS, consents, faces, instants, purposes

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def _face(subject: str | None, size: int = 120) -> FaceMatch:
    return FaceMatch(Box(0, 0, size, size), subject, 0.3 if subject else None)


def _consent(subject: str, **kw: object) -> Consent:
    base: dict[str, object] = {
        "tenant": "t1",
        "subject_id": subject,
        "consent_id": f"con_{subject}",
        "purposes": frozenset({"web"}),
        "valid_from": NOW - timedelta(days=1),
        "expires_at": NOW + timedelta(days=1),
    }
    base.update(kw)
    return Consent(**base)  # type: ignore[arg-type]


def test_no_faces_is_approved() -> None:
    assert decide_asset([], {}, "web", NOW).status is AssetStatus.APPROVED


def test_unknown_face_blocks() -> None:
    d = decide_asset([_face("sub_a"), _face(None)], {"sub_a": [_consent("sub_a")]}, "web", NOW)
    assert d.status is AssetStatus.QUARANTINED and d.reasons == (Reason.UNKNOWN_FACE,)


def test_small_unknown_face_does_not_block() -> None:
    # Given a face below the minimum size (recorded as not identifiable)
    tiny = FaceMatch(Box(0, 0, 10, 10), None, None, identifiable=False)
    # When decided / Then it is recorded but does not block
    d = decide_asset([tiny], {}, "web", NOW)
    assert d.approved and d.faces[0].reason is None


def test_each_reason_is_reported_once_and_sorted() -> None:
    # Given a revoked and an expired subject, and one with no consent at all
    faces = [_face("kit"), _face("rose"), _face("kit"), _face("nobody")]
    cons = {
        "kit": [_consent("kit", revoked_at=NOW - timedelta(hours=1))],
        "rose": [
            _consent(
                "rose", expires_at=NOW - timedelta(days=1), valid_from=NOW - timedelta(days=30)
            )
        ],
    }
    # When decided / Then every reason appears once, in a stable order
    d = decide_asset(faces, cons, "web", NOW)
    assert d.reasons == (Reason.CONSENT_EXPIRED, Reason.CONSENT_REVOKED, Reason.NO_CONSENT)


def test_out_of_scope() -> None:
    d = decide_asset(
        [_face("alex")], {"alex": [_consent("alex", purposes=frozenset({"print"}))]}, "web", NOW
    )
    assert d.reasons == (Reason.OUT_OF_SCOPE,)


@given(
    face_list=st.lists(faces(), max_size=6),
    consent_list=st.lists(consents(), max_size=8),
    purpose=purposes,
    now=instants,
)
def test_approved_implies_every_identifiable_face_has_valid_in_scope_consent(
    face_list: list[FaceMatch], consent_list: list[Consent], purpose: str, now: datetime
) -> None:
    by_subject: dict[str, list[Consent]] = {s: [] for s in SUBJECTS}
    for c in consent_list:
        by_subject[c.subject_id].append(c)
    decision = decide_asset(face_list, by_subject, purpose, now)
    covered = all(
        not f.identifiable
        or (
            f.subject_id is not None
            and any(
                consent_verdict(c, purpose, now) is ConsentVerdict.VALID
                for c in by_subject[f.subject_id]
            )
        )
        for f in face_list
    )
    # The safety property, both ways: approved exactly when everyone is covered
    assert decision.approved == covered
    # and a quarantine always says why
    assert decision.approved or decision.reasons
    # and every face is accounted for in the decision
    assert len(decision.faces) == len(face_list)


@given(face_list=st.lists(faces(), min_size=1, max_size=6), purpose=purposes, now=instants)
def test_without_consents_any_identifiable_face_blocks(
    face_list: list[FaceMatch], purpose: str, now: datetime
) -> None:
    decision = decide_asset(face_list, {}, purpose, now)
    assert decision.approved == (not any(f.identifiable for f in face_list))


@given(
    face_list=st.lists(faces(), max_size=6),
    consent_list=st.lists(consents(), max_size=8),
    purpose=purposes,
    now=instants,
    waived=st.sets(st.sampled_from(list(Reason))),
)
def test_redecision_only_waives_what_reviewers_waived(
    face_list: list[FaceMatch],
    consent_list: list[Consent],
    purpose: str,
    now: datetime,
    waived: set[Reason],
) -> None:
    by_subject: dict[str, list[Consent]] = {s: [] for s in SUBJECTS}
    for c in consent_list:
        by_subject[c.subject_id].append(c)
    plain = decide_asset(face_list, by_subject, purpose, now)
    again = redecide_recorded(face_list, by_subject, purpose, now, frozenset(waived))
    # Approved exactly when every blocking reason was explicitly waived
    assert again.approved == (set(plain.reasons) <= waived)
    assert set(again.reasons) == set(plain.reasons) - waived
