"""Hypothesis strategies for consents and faces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from quitclaim.domain.models import Box, Consent, FaceMatch

PURPOSES = ("web", "social", "print", "internal")
SUBJECTS = ("sub_a", "sub_b", "sub_c")
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)

instants = st.integers(min_value=-400, max_value=400).map(lambda d: EPOCH + timedelta(days=d))
purposes = st.sampled_from(PURPOSES)


@st.composite
def consents(draw: st.DrawFn, subject_id: str | None = None) -> Consent:
    valid_from = draw(instants)
    expires = draw(st.none() | st.integers(1, 500).map(lambda d: valid_from + timedelta(days=d)))
    revoked = draw(st.none() | instants)
    return Consent(
        tenant="t1",
        subject_id=subject_id or draw(st.sampled_from(SUBJECTS)),
        consent_id=f"con_{draw(st.integers(0, 10_000))}",
        purposes=frozenset(draw(st.sets(purposes, min_size=1))),
        valid_from=valid_from,
        expires_at=expires,
        revoked_at=revoked,
    )


@st.composite
def faces(draw: st.DrawFn) -> FaceMatch:
    size = draw(st.integers(5, 400))
    identifiable = size >= 40
    subject = draw(st.none() | st.sampled_from(SUBJECTS))
    return FaceMatch(
        Box(0, 0, size, size),
        subject,
        None if subject is None else draw(st.floats(0, 0.5)),
        identifiable=identifiable,
    )
