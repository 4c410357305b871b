"""The gate's rule: approved only if every identifiable face is covered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from quitclaim.domain.clearance import decide_channels, publishing_purposes
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


# ------------------------------------------------------------ clearance per channel


def _by_subject(consent_list: list[Consent]) -> dict[str, list[Consent]]:
    by_subject: dict[str, list[Consent]] = {s: [] for s in SUBJECTS}
    for c in consent_list:
        by_subject[c.subject_id].append(c)
    return by_subject


@given(
    face_list=st.lists(faces(), max_size=6),
    consent_list=st.lists(consents(), max_size=8),
    channels=st.sets(purposes, min_size=1),
    publishing=st.sets(purposes, min_size=1),
    now=instants,
)
def test_each_channel_is_the_gate_for_that_purpose_and_publishing_needs_all(
    face_list: list[FaceMatch],
    consent_list: list[Consent],
    channels: set[str],
    publishing: set[str],
    now: datetime,
) -> None:
    by_subject = _by_subject(consent_list)
    clearance = decide_channels(face_list, by_subject, channels, sorted(publishing), now)
    # Every purpose used (and every publishing one) is decided, each by the one gate
    assert set(clearance.channels) == channels | publishing
    for purpose, decision in clearance.channels.items():
        assert decision == decide_asset(face_list, by_subject, purpose, now)
    # The asset is approved exactly when every publishing channel is cleared
    gate = clearance.gate
    assert gate.approved == all(clearance.channels[p].approved for p in publishing)
    # and held with the publishing channels' reasons, no others
    assert set(gate.reasons) == {r for p in publishing for r in clearance.channels[p].reasons}
    assert gate.approved or gate.reasons
    # The record says the same per channel
    recorded = clearance.as_record()["channels"]
    for purpose, decision in clearance.channels.items():
        assert recorded[purpose] == {
            "cleared": decision.approved,
            "reasons": [r.value for r in decision.reasons],
        }


@given(
    face_list=st.lists(faces(), max_size=6),
    consent_list=st.lists(consents(), max_size=8),
    channels=st.sets(purposes, min_size=1),
    purpose=purposes,
    now=instants,
)
def test_with_the_upload_purpose_alone_publishing_the_decision_is_unchanged(
    face_list: list[FaceMatch],
    consent_list: list[Consent],
    channels: set[str],
    purpose: str,
    now: datetime,
) -> None:
    # Given no publishing purposes configured (the default): the upload's own
    by_subject = _by_subject(consent_list)
    publishing = publishing_purposes(frozenset(), purpose)
    clearance = decide_channels(face_list, by_subject, channels, publishing, now)
    # Then the asset's decision is exactly the one-purpose decision of before
    assert clearance.gate == decide_asset(face_list, by_subject, purpose, now)


@given(
    face_list=st.lists(faces(), max_size=6),
    consent_list=st.lists(consents(), max_size=8),
    channels=st.sets(purposes, min_size=1),
    now=instants,
)
def test_cleared_until_is_the_earliest_expiry_of_a_consent_that_clears(
    face_list: list[FaceMatch], consent_list: list[Consent], channels: set[str], now: datetime
) -> None:
    by_subject = _by_subject(consent_list)
    clearance = decide_channels(face_list, by_subject, channels, sorted(channels)[:1], now)
    by_id = {c.consent_id: c for c in consent_list}
    used = {
        by_id[f.consent_id]
        for d in clearance.channels.values()
        if d.approved
        for f in d.faces
        if f.consent_id is not None
    }
    expiries = [c.expires_at for c in used if c.expires_at is not None]
    assert clearance.until == (min(expiries) if expiries else None)
    # and it lies in the future: a consent that clears is valid now
    assert clearance.until is None or clearance.until > now


@given(
    face_list=st.lists(faces(), max_size=6),
    consent_list=st.lists(consents(), max_size=8),
    channels=st.sets(purposes, min_size=1),
    now=instants,
    waived=st.sets(st.sampled_from(list(Reason))),
)
def test_per_channel_redecision_waives_what_reviewers_waived_in_every_channel(
    face_list: list[FaceMatch],
    consent_list: list[Consent],
    channels: set[str],
    now: datetime,
    waived: set[Reason],
) -> None:
    by_subject = _by_subject(consent_list)
    clearance = decide_channels(
        face_list, by_subject, channels, sorted(channels), now, waived=frozenset(waived)
    )
    for purpose, decision in clearance.channels.items():
        assert decision == redecide_recorded(face_list, by_subject, purpose, now, frozenset(waived))
