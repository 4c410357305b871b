"""Storage limitation: which held images retention deletes, and when (pure).

A quarantined image is deleted by retention only when its *only* blockers are
unknown faces (people nobody can ask: ``unknown_face``), it was decided at
least ``quarantine_retention_days`` ago, no reviewer kept it (``review.kept``,
with a reason) and no four-eyes request waits on it. An image held for any
other reason (an expired or withdrawn consent, a face to review) may return
to the library and is never deleted by time alone. A rejected upload goes
after ``rejected_retention_days``. 0 days switches a rule off.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from quitclaim.domain.errors import ValidationFailed
from quitclaim.domain.models import AssetStatus, Reason, TenantPolicy
from quitclaim.domain.records import AssetRecord

RETENTION_FIELDS = ("quarantine_retention_days", "rejected_retention_days", "digest")
DIGEST_CADENCES = ("daily", "weekly", "off")
MAX_RETENTION_DAYS = 3650
# The retention actor in histories and the audit chain (never a person's key).
RETENTION_ACTOR = "retention"
STRANGER_REASONS = frozenset({Reason.UNKNOWN_FACE.value})
# Review requests waiting for a second person: retention never pre-empts them.
_PENDING = ("pending_release", "pending_reassign", "pending_redaction")


def retention_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the retention and digest fields of a policy change."""
    out: dict[str, Any] = {}
    for name in ("quarantine_retention_days", "rejected_retention_days"):
        if name in changes:
            value = changes[name]
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValidationFailed(f"{name} must be a whole number of days", field=name)
            if not 0 <= value <= MAX_RETENTION_DAYS:
                raise ValidationFailed(
                    f"{name} must be between 0 and {MAX_RETENTION_DAYS}", field=name
                )
            out[name] = value
    if "digest" in changes:
        if changes["digest"] not in DIGEST_CADENCES:
            raise ValidationFailed("digest must be daily, weekly or off", field="digest")
        out["digest"] = changes["digest"]
    return out


def quarantine_cutoff(policy: TenantPolicy, now: datetime) -> datetime | None:
    """Images of unknown people decided before this go (None: the rule is off)."""
    days = policy.quarantine_retention_days
    return None if days <= 0 else now - timedelta(days=days)


def rejected_cutoff(policy: TenantPolicy, now: datetime) -> datetime | None:
    days = policy.rejected_retention_days
    return None if days <= 0 else now - timedelta(days=days)


def stranger_only(record: AssetRecord) -> bool:
    """Held only because of faces of unknown people."""
    return bool(record.reasons) and {str(r) for r in record.reasons} <= STRANGER_REASONS


def due_for_deletion(record: AssetRecord, policy: TenantPolicy, now: datetime) -> str | None:
    """The retention rule that deletes ``record`` now ("quarantine" / "rejected"), or None."""
    if record.status is AssetStatus.QUARANTINED:
        cutoff = quarantine_cutoff(policy, now)
        if cutoff is None or record.decided_at > cutoff or not stranger_only(record):
            return None
        if "kept" in record.review or any(k in record.review for k in _PENDING):
            return None
        return "quarantine"
    if record.status is AssetStatus.REJECTED:
        cutoff = rejected_cutoff(policy, now)
        if cutoff is None or record.decided_at > cutoff:
            return None
        return "rejected"
    return None


def digest_due(policy: TenantPolicy, now: datetime) -> bool:
    """Daily: every run; weekly: Monday's run (UTC); off: never."""
    if policy.digest == "daily":
        return True
    return policy.digest == "weekly" and now.weekday() == 0


def digest_period(policy: TenantPolicy) -> timedelta:
    """What "since the last digest" covers: the cadence's period."""
    return timedelta(days=1) if policy.digest == "daily" else timedelta(days=7)
