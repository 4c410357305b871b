"""Domain values shared by the use-cases.

Box convention (the only one in the code base): ``Box(left, top, right,
bottom)`` in integer pixels of the image *after* EXIF orientation has been
applied, origin top-left, ``right`` and ``bottom`` exclusive (as Pillow's
``crop``). Adapters convert from their library's convention at the edge.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from quitclaim.domain.backlog import DEFAULT_BACKLOG_CONCURRENCY

# Tenant ids start every storage key and S3 prefix: keep them boring. Ids are
# checked with fullmatch everywhere: Python's "$" also matches before a final
# "\n", so re.match(r"^x$") would let "acme\n" pass as "acme" (tests/unit/test_identifiers.py).
TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def is_tenant_id(value: str) -> bool:
    return bool(TENANT_ID.fullmatch(value))


@dataclass(frozen=True, slots=True)
class Box:
    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def scaled(self, factor: float) -> Box:
        """The same box in an image resized by ``factor``."""
        return Box(
            round(self.left * factor),
            round(self.top * factor),
            round(self.right * factor),
            round(self.bottom * factor),
        )

    def as_list(self) -> list[int]:
        return [self.left, self.top, self.right, self.bottom]


class AssetStatus(enum.StrEnum):
    APPROVED = "approved"
    QUARANTINED = "quarantined"
    REJECTED = "rejected"
    DELETED = "deleted"  # removed by an explicit reviewer or erasure action
    # Not scanned yet: the monthly image quota is used up. The upload stays where
    # it was put (uploads bucket) until a release re-enqueues it for ingest.
    HELD = "held"


class Reason(enum.StrEnum):
    """Why an asset is not in the library. Stable codes: API, reports, metrics."""

    UNKNOWN_FACE = "unknown_face"
    # A face the recogniser cannot judge (too turned, too small between the eyes,
    # too blurred or too occluded for a trustworthy alignment): never matched
    # to anyone, so never approved on a consent it might not belong to.
    FACE_NOT_MATCHABLE = "face_not_matchable"
    NO_CONSENT = "no_consent"
    CONSENT_EXPIRED = "consent_expired"
    CONSENT_REVOKED = "consent_revoked"
    CONSENT_NOT_YET_VALID = "consent_not_yet_valid"
    OUT_OF_SCOPE = "out_of_scope"
    # The tenant runs detection without recognition here: a person must look.
    REVIEW_REQUIRED = "review_required"


class ConsentVerdict(enum.StrEnum):
    VALID = "valid"
    EXPIRED = "expired"
    REVOKED = "revoked"
    NOT_YET_VALID = "not_yet_valid"
    OUT_OF_SCOPE = "out_of_scope"


@dataclass(frozen=True, slots=True)
class Consent:
    """A signed portrait consent (quitclaim), as evaluated at decision time."""

    tenant: str
    subject_id: str
    consent_id: str
    purposes: frozenset[str]
    valid_from: datetime
    expires_at: datetime | None
    revoked_at: datetime | None = None
    version: int = 1


@dataclass(frozen=True, slots=True)
class FaceMatch:
    """One detected face after gallery matching.

    ``subject_id`` is None for an unknown face. ``identifiable`` is False for a
    face below the tenant's minimum size: recorded, never blocking.
    ``matchable`` is False for an identifiable face the recogniser cannot
    judge (``faces.matchability``): it blocks as ``face_not_matchable``.
    """

    box: Box
    subject_id: str | None
    distance: float | None
    identifiable: bool = True
    matchable: bool = True


@dataclass(frozen=True, slots=True)
class FaceDecision:
    face: FaceMatch
    consent_id: str | None
    verdict: ConsentVerdict | None
    reason: Reason | None


@dataclass(frozen=True, slots=True)
class Decision:
    status: AssetStatus
    reasons: tuple[Reason, ...]
    faces: tuple[FaceDecision, ...] = field(default=())

    @property
    def approved(self) -> bool:
        return self.status is AssetStatus.APPROVED


class ScanMode(enum.StrEnum):
    RECOGNIZE = "recognize"  # detect, match against the enrolled, check consent
    DETECT_ONLY = "detect-only"  # no biometrics at all: any identifiable face → review
    OFF = "off"  # no face processing (e.g. product photos); input still validated


@dataclass(frozen=True, slots=True)
class TenantPolicy:
    """Per-tenant knobs the decision depends on (defaults are conservative).

    ``scan_modes`` maps a collection (the first folder of the upload path) to a
    mode; ``"*"`` is the default for every other collection.
    """

    tenant: str
    match_threshold: float = 0.5
    match_margin: float = 0.05
    min_face_px: int = 40
    default_purpose: str = "web"
    purposes: frozenset[str] = frozenset({"web", "social", "print", "internal"})
    scan_modes: tuple[tuple[str, ScanMode], ...] = (("*", ScanMode.RECOGNIZE),)
    unknown_face_policy: str = "quarantine"
    language: str = "en"  # reminder e-mails: "en" or "nl"
    # Publish a redacted variant (faces without consent pixelated) instead of
    # holding the image only, when those faces are its only blockers. Off by default.
    auto_redact: bool = False
    # The purposes an image must be cleared for to be published (library);
    # empty: the upload's own purpose, as before (docs/channels.md).
    publishing_purposes: frozenset[str] = frozenset()
    # How many images of a backlog scan (docs/import.md) are in flight at once.
    backlog_concurrency: int = DEFAULT_BACKLOG_CONCURRENCY
    # Storage limitation (docs/retention.md): days a quarantined image of
    # unknown people and a rejected upload are kept; 0 keeps them until a
    # reviewer acts. The officer's digest: "daily", "weekly" or "off".
    quarantine_retention_days: int = 90
    rejected_retention_days: int = 30
    digest: str = "weekly"

    def scan_mode_for(self, path: str) -> ScanMode:
        """The mode for an upload path (``collection/...``), falling back to ``*``."""
        modes = dict(self.scan_modes)
        collection = path.split("/", 1)[0] if "/" in path else ""
        return modes.get(collection, modes.get("*", ScanMode.RECOGNIZE))


EncodingLike = Sequence[float]
