"""The durable decision record of one asset (what an auditor reads)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from quitclaim.domain.models import AssetStatus


def asset_id_for(tenant: str, bucket: str, key: str, version: str) -> str:
    """Deterministic id of one uploaded object version.

    Duplicate S3 events for the same version map to the same id, so the
    conditional create of the record is what makes a redelivery a no-op.
    """
    digest = hashlib.sha256(f"{tenant}\x00{bucket}\x00{key}\x00{version}".encode()).hexdigest()
    return digest[:32]


@dataclass(frozen=True, slots=True)
class FaceRecord:
    """One face as recorded: no encoding, no name, pseudonymous subject id."""

    box: list[int]
    frame: int
    identifiable: bool
    subject_id: str | None
    distance: float | None
    consent_id: str | None
    verdict: str | None
    reason: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "box": self.box,
            "frame": self.frame,
            "identifiable": self.identifiable,
            "subject_id": self.subject_id,
            "distance": self.distance,
            "consent_id": self.consent_id,
            "verdict": self.verdict,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class AssetRecord:
    tenant: str
    asset_id: str
    source_bucket: str
    source_key: str
    source_version: str
    path: str
    purpose: str
    status: AssetStatus
    reasons: tuple[str, ...]
    dest_bucket: str
    dest_key: str
    decided_at: datetime
    faces: tuple[FaceRecord, ...] = ()
    versions: dict[str, str] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)
    placed_at: datetime | None = None
    # Optimistic-lock version: every re-decision or review action bumps it.
    version: int = 1
    # Review state, e.g. {"pending_release": {"by": key_id, "at": iso, "justification": ...}}
    review: dict[str, Any] = field(default_factory=dict)
    # Append-only decision history: {"at", "action", "actor", "status", "reasons", ...}
    history: tuple[dict[str, Any], ...] = ()
    # Bytes of the object placed (storage metering): the published form, or the upload's
    # own bytes when rejected or held; None on records from before.
    size: int | None = None
    # SHA-256 (hex) of the bytes placed in the library or quarantine: the
    # published form that was scanned (faces/published.py), not the upload.
    # None for a rejected or held upload (its own bytes, never published) and
    # on records from before.
    published_sha256: str | None = None
    # Clearance per channel (domain/clearance.py, ``Clearance.as_record``);
    # empty on records from before and on rejected or held uploads.
    clearance: dict[str, Any] = field(default_factory=dict)

    @property
    def subject_ids(self) -> tuple[str, ...]:
        return tuple(sorted({f.subject_id for f in self.faces if f.subject_id}))

    @property
    def consent_ids(self) -> tuple[str, ...]:
        return tuple(sorted({f.consent_id for f in self.faces if f.consent_id}))
