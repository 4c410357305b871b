"""Consent validity, evaluated at decision time (never assumed, never from TTL)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from quitclaim.domain.models import Consent, ConsentVerdict, Reason

_REASON_FOR = {
    ConsentVerdict.EXPIRED: Reason.CONSENT_EXPIRED,
    ConsentVerdict.REVOKED: Reason.CONSENT_REVOKED,
    ConsentVerdict.NOT_YET_VALID: Reason.CONSENT_NOT_YET_VALID,
    ConsentVerdict.OUT_OF_SCOPE: Reason.OUT_OF_SCOPE,
}


def consent_verdict(consent: Consent, purpose: str, now: datetime) -> ConsentVerdict:
    """Whether ``consent`` covers ``purpose`` at ``now``.

    A withdrawal wins over everything, even a window that has not opened yet:
    the person said no. ``expires_at`` is exclusive: at that instant the
    consent no longer holds.
    """
    if consent.revoked_at is not None and consent.revoked_at <= now:
        return ConsentVerdict.REVOKED
    if purpose not in consent.purposes:
        return ConsentVerdict.OUT_OF_SCOPE
    if now < consent.valid_from:
        return ConsentVerdict.NOT_YET_VALID
    if consent.expires_at is not None and now >= consent.expires_at:
        return ConsentVerdict.EXPIRED
    return ConsentVerdict.VALID


def best_consent(
    consents: Iterable[Consent], purpose: str, now: datetime
) -> tuple[Consent | None, ConsentVerdict | None]:
    """The consent that decides for one subject, and its verdict.

    Any valid, in-scope consent covers the subject. Otherwise the explanation
    comes from the consents that were *for this purpose* (the newest one, by
    ``valid_from``), because "your consent expired" is the actionable reason,
    not "you once signed something for print". Only when none was for this
    purpose is the reason ``out_of_scope``.
    """
    judged = [(c, consent_verdict(c, purpose, now)) for c in consents]
    if not judged:
        return None, None
    for consent, verdict in judged:
        if verdict is ConsentVerdict.VALID:
            return consent, verdict
    in_scope = [(c, v) for c, v in judged if purpose in c.purposes]
    pool = in_scope or judged
    consent, verdict = max(pool, key=lambda cv: (cv[0].valid_from, cv[0].consent_id))
    if not in_scope:
        verdict = ConsentVerdict.OUT_OF_SCOPE
    return consent, verdict


def reason_for(verdict: ConsentVerdict | None) -> Reason | None:
    """The quarantine reason a non-valid verdict stands for (None when valid)."""
    if verdict is None:
        return Reason.NO_CONSENT
    return _REASON_FOR.get(verdict)
