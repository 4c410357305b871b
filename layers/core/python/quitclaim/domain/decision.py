"""The gate: one pure function decides whether an asset may be published."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from quitclaim.domain.consent import best_consent, reason_for
from quitclaim.domain.models import (
    AssetStatus,
    Consent,
    Decision,
    FaceDecision,
    FaceMatch,
    Reason,
)


def decide_asset(
    faces: Sequence[FaceMatch],
    consents_by_subject: Mapping[str, Sequence[Consent]],
    purpose: str,
    now: datetime,
    unknown_reason: Reason = Reason.UNKNOWN_FACE,
) -> Decision:
    """Approve only when every identifiable face has a valid, in-scope consent.

    A face too small to identify is recorded but does not block. An unknown
    identifiable face always blocks: we cannot ask a stranger. Reasons are
    unique and sorted so equal inputs give equal records.
    """
    face_decisions: list[FaceDecision] = []
    reasons: set[Reason] = set()
    for face in faces:
        if not face.identifiable:
            face_decisions.append(FaceDecision(face, None, None, None))
            continue
        if not face.matchable:
            # Whatever the gallery said, an unjudgeable face is nobody we know.
            face_decisions.append(FaceDecision(face, None, None, Reason.FACE_NOT_MATCHABLE))
            reasons.add(Reason.FACE_NOT_MATCHABLE)
            continue
        if face.subject_id is None:
            face_decisions.append(FaceDecision(face, None, None, unknown_reason))
            reasons.add(unknown_reason)
            continue
        consent, verdict = best_consent(consents_by_subject.get(face.subject_id, ()), purpose, now)
        reason = reason_for(verdict)
        face_decisions.append(
            FaceDecision(face, consent.consent_id if consent else None, verdict, reason)
        )
        if reason is not None:
            reasons.add(reason)
    status = AssetStatus.QUARANTINED if reasons else AssetStatus.APPROVED
    return Decision(status, tuple(sorted(reasons)), tuple(face_decisions))


def redecide_recorded(
    faces: Sequence[FaceMatch],
    consents_by_subject: Mapping[str, Sequence[Consent]],
    purpose: str,
    now: datetime,
    waived: frozenset[Reason] = frozenset(),
) -> Decision:
    """Decide again from recorded faces (no re-scan), after a consent changed.

    ``waived`` are reasons two reviewers explicitly released the asset despite
    (say an unknown bystander); any *other* reason still blocks, so a later
    withdrawal pulls even a released asset.
    """
    decision = decide_asset(faces, consents_by_subject, purpose, now)
    remaining = tuple(r for r in decision.reasons if r not in waived)
    status = AssetStatus.QUARANTINED if remaining else AssetStatus.APPROVED
    return Decision(status, remaining, decision.faces)
