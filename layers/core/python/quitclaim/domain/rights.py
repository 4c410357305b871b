"""Data-subject rights: what an erasure did and proved, the requests log, volumes.

Pure values and rules (GDPR Art. 15, 17 and 30). Every value here holds ids,
dates, counts and codes; names and contact details appear only in the access
export, which is for the person themselves.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from quitclaim.domain.models import Reason
from quitclaim.domain.records import AssetRecord

# Blockers a redacted variant can remove: faces of people without a valid,
# in-scope consent. ``review_required`` (detect-only) is not one: there the
# gate never learnt who is who, so a person must look.
REDACTABLE_REASONS: frozenset[str] = frozenset(
    r.value
    for r in (
        Reason.UNKNOWN_FACE,
        Reason.NO_CONSENT,
        Reason.CONSENT_EXPIRED,
        Reason.CONSENT_REVOKED,
        Reason.CONSENT_NOT_YET_VALID,
        Reason.OUT_OF_SCOPE,
    )
)

# History actions of an asset record that name a redacted variant's birth.
REDACTED = "redacted"
SUBJECT_ERASED = "subject_erased"


def redactable(record: AssetRecord) -> bool:
    """Whether a held asset's only blockers are faces without consent."""
    return bool(record.reasons) and set(record.reasons) <= REDACTABLE_REASONS


class RequestKind(enum.StrEnum):
    ACCESS = "access"  # Art. 15 export
    SEARCH = "search"  # "where do I appear?" by a selfie (nothing stored)
    ERASURE = "erasure"  # Art. 17


@dataclass(frozen=True, slots=True)
class DataRequest:
    """One data-subject request as logged: ids, counts and codes, never names."""

    tenant: str
    request_id: str
    kind: RequestKind
    at: datetime
    actor: str
    subject_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ErasedItem:
    """What an erasure did in one store (or what it kept there, and why)."""

    store: str
    action: str
    what: str
    count: int
    ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ErasureCheck:
    """One store re-read after an erasure: ``found`` things of the person remain."""

    store: str
    ok: bool
    found: int
    detail: str


@dataclass(frozen=True, slots=True)
class ErasureVerification:
    subject_id: str
    verified_at: datetime
    ok: bool
    checks: tuple[ErasureCheck, ...]


def verification(
    subject_id: str, at: datetime, checks: Iterable[ErasureCheck]
) -> ErasureVerification:
    found = tuple(checks)
    return ErasureVerification(subject_id, at, all(c.ok for c in found), found)


def check(store: str, found: int, what: str, *, allowed: int = 0) -> ErasureCheck:
    """A store holds ``found`` things of the person; ``allowed`` of them may stay."""
    ok = found <= allowed
    detail = f"{found} {what}" if found else f"no {what}"
    return ErasureCheck(store, ok, found, detail)


@dataclass(frozen=True, slots=True)
class ErasureReport:
    """The completeness report of one erasure (GDPR Art. 17 and 5(2))."""

    tenant: str
    subject_id: str
    request_id: str
    erased_at: datetime
    actor: str
    deleted: tuple[ErasedItem, ...]
    kept: tuple[ErasedItem, ...]
    verification: ErasureVerification


@dataclass(frozen=True, slots=True)
class ErasureStatus:
    """A past erasure as logged, verified again now."""

    subject_id: str
    request_id: str
    erased_at: datetime
    actor: str
    report: dict[str, Any]
    verification: ErasureVerification


@dataclass(frozen=True, slots=True)
class Appearance:
    """One asset a person appears in, with only their own faces."""

    asset_id: str
    path: str
    status: str
    reasons: tuple[str, ...]
    location: str | None
    decided_at: datetime
    faces: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class SelfieSearch:
    """The answer to "where do I appear?": computed in memory, nothing stored."""

    request_id: str
    faces_in_photo: int
    subject_id: str | None
    distance: float | None
    appearances: tuple[Appearance, ...]
    template_stored: bool = False


@dataclass(frozen=True, slots=True)
class AccessExport:
    """An Art. 15 export: a ZIP (``manifest.json``, ``summary.html``, documents)."""

    request_id: str
    subject_id: str
    filename: str
    data: bytes
    sha256: str
    counts: dict[str, int]


@dataclass(frozen=True, slots=True)
class ProcessingRecords:
    """The Art. 30 record (JSON) and a DPIA starter (Markdown) of one tenant."""

    tenant: str
    generated_at: datetime
    record: dict[str, Any]
    dpia_markdown: str


# Consent attributes that are personal data or evidence: a tombstone holds none.
# What it keeps: ids, purposes, dates, the outcome and the document's SHA-256.
CONSENT_EVIDENCE: tuple[str, ...] = (
    "signer",
    "form_version",
    "document_key",
    "document_type",
    "document_url",
    "reminders_sent",
)


# ------------------------------------------------------------------ volumes

VOLUME_FIELDS: tuple[str, ...] = (
    "assets_scanned",
    "faces",
    "faces_identifiable",
    "matches",
    "approved",
    "quarantined",
    "rejected",
    "withdrawn",
    "released",
    "redactions",
    "access_requests",
    "selfie_searches",
    "erasures",
)


def month_of(at: datetime | str) -> str:
    text = at.isoformat() if isinstance(at, datetime) else str(at)
    return text[:7]


def monthly_volumes(
    records: Iterable[AssetRecord], requests: Iterable[DataRequest]
) -> list[dict[str, Any]]:
    """Per calendar month (UTC, of the first decision): what the gate processed.

    From the decision records: uploads scanned, faces found (and how many of
    them were identifiable and matched an enrolled person, as recorded now:
    an erasure un-attributes faces), first decisions by status, withdrawals
    from the library, two-reviewer releases and redacted variants. From the
    requests log: access exports, selfie searches and erasures.
    """
    months: dict[str, Counter[str]] = {}

    def bump(month: str, name: str, by: int = 1) -> None:
        months.setdefault(month, Counter())[name] += by

    for record in records:
        history = record.history or ({"at": record.decided_at.isoformat()},)
        # Held over quota is not processing: the month is the one it was scanned in.
        history = tuple(h for h in history if h.get("status") != "held")
        if not history or record.status.value == "held":
            continue
        first = history[0]
        month = month_of(str(first.get("at") or record.decided_at.isoformat()))
        if first.get("action") == REDACTED:
            bump(month, "redactions")
            continue
        bump(month, "assets_scanned")
        bump(month, "faces", len(record.faces))
        bump(month, "faces_identifiable", sum(1 for f in record.faces if f.identifiable))
        bump(month, "matches", sum(1 for f in record.faces if f.subject_id))
        status = str(first.get("status") or record.status.value)
        if status in ("approved", "quarantined", "rejected"):
            bump(month, status)
        previous = status
        for entry in history[1:]:
            now = str(entry.get("status") or previous)
            at = month_of(str(entry.get("at") or first.get("at")))
            if previous == "approved" and now == "quarantined":
                bump(at, "withdrawn")
            if entry.get("action") == "released":
                bump(at, "released")
            previous = now
    names = {
        RequestKind.ACCESS: "access_requests",
        RequestKind.SEARCH: "selfie_searches",
        RequestKind.ERASURE: "erasures",
    }
    for request in requests:
        bump(month_of(request.at), names[RequestKind(request.kind)])
    return [
        {"month": month, **{name: int(months[month][name]) for name in VOLUME_FIELDS}}
        for month in sorted(months)
    ]


def versions_seen(records: Iterable[AssetRecord]) -> list[dict[str, Any]]:
    """Engine and model versions (and thresholds) the decision records name, counted."""
    seen: Counter[tuple[tuple[str, str], ...]] = Counter()
    for record in records:
        if not record.versions:
            continue
        policy = {k: str(v) for k, v in record.policy.items() if k.startswith("match_")}
        seen[tuple(sorted({**record.versions, **policy}.items()))] += 1
    return [{"versions": dict(key), "assets": n} for key, n in sorted(seen.items())]


def faces_of_subject(record: AssetRecord, subject_id: str) -> list[dict[str, Any]]:
    """The person's own faces in a record (never the other people's)."""
    return [
        {"face_index": i, **{k: v for k, v in f.as_dict().items() if k != "subject_id"}}
        for i, f in enumerate(record.faces)
        if f.subject_id == subject_id
    ]
