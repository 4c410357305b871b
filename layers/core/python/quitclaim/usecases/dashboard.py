"""Read models of the review dashboard: the overview, people, image previews.

Everything is per tenant (the caller's, from the API key) and computed from
the records at read time with the system's clock, so the page never has to
know what "now" is: "expiring within 30 days" is decided here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from quitclaim.domain.errors import Conflict, NotFound, ValidationFailed
from quitclaim.domain.models import AssetStatus
from quitclaim.domain.ports import (
    AssetActivity,
    AssetRepository,
    Clock,
    ConsentExpiries,
    ObjectStore,
    QueueDepths,
    WebhookRepository,
)
from quitclaim.domain.records import AssetRecord
from quitclaim.domain.registry import ConsentView, Page, Subject
from quitclaim.usecases.asset_decisions import META_ASSET_ID
from quitclaim.usecases.compliance_registry import Registry

if TYPE_CHECKING:
    from quitclaim.domain.ports import Thumbnail, Thumbnails

# "Expiring" in the people view; the overview counts these windows.
EXPIRING_SOON_DAYS = 30
EXPIRY_WINDOWS = (30, 60, 90)
MAX_MONTHS = 24
# The overview reads the records of the window; beyond this many it says it
# is incomplete instead of running into the API's 29 s limit.
MAX_OVERVIEW_ASSETS = 5000
THUMBNAIL_SIDE = 640


@dataclass(frozen=True, slots=True)
class MonthVolume:
    """What happened in one calendar month (UTC).

    ``scanned``/``faces``: images first decided that month and their faces;
    ``approved``/``quarantined``/``rejected``/``erased``: decisions that month
    that put an image in that state (a scan, a re-decision, a release, a
    deletion), so one image can count in several months.
    """

    month: str  # YYYY-MM
    scanned: int = 0
    faces: int = 0
    approved: int = 0
    quarantined: int = 0
    rejected: int = 0
    erased: int = 0


@dataclass(frozen=True, slots=True)
class OverviewReport:
    tenant: str
    generated_at: datetime
    months: tuple[MonthVolume, ...]
    # False: the window held more than MAX_OVERVIEW_ASSETS decided images and
    # the volumes count only the first of them.
    volumes_complete: bool
    # Consents (not withdrawn) whose expiry falls within the next N days, by N.
    expiring: dict[str, int]
    # Messages waiting per dead-letter queue of the stack (counts only, shared
    # by every tenant); None where a queue could not be read.
    dead_letters: dict[str, int | None] = field(default_factory=dict)
    # The last accuracy audit's summary, with ``stale`` when the engine, model
    # or threshold changed since (usecases/accuracy_audit.py); None: never run.
    accuracy: dict[str, Any] | None = None


ConsentStatus = Literal["valid", "expiring", "expired", "withdrawn", "not_yet_valid", "none"]


@dataclass(frozen=True, slots=True)
class Person:
    """A subject with their consents and one summary of where they stand."""

    subject: Subject
    consent_status: ConsentStatus
    # The furthest expiry among valid consents (None: open-ended, or none valid).
    valid_until: datetime | None
    consents: tuple[ConsentView, ...] = ()


_STATE_OF = {
    AssetStatus.APPROVED.value: "approved",
    AssetStatus.QUARANTINED.value: "quarantined",
    AssetStatus.REJECTED.value: "rejected",
    AssetStatus.DELETED.value: "erased",
}


def consent_summary(
    views: tuple[ConsentView, ...] | list[ConsentView], now: datetime
) -> tuple[ConsentStatus, datetime | None]:
    """(status, valid_until) of a person from their consents at ``now``."""
    valid = [v for v in views if v.status == "valid"]
    if valid:
        ends = [v.expires_at for v in valid]
        if any(end is None for end in ends):
            return "valid", None
        last = max(end for end in ends if end is not None)
        soon = last < now + timedelta(days=EXPIRING_SOON_DAYS)
        return ("expiring" if soon else "valid"), last
    if not views:
        return "none", None
    latest = max(views, key=lambda v: (v.valid_from, v.version))
    if latest.status == "revoked":
        return "withdrawn", None
    if latest.status == "expired":
        return "expired", None
    return "not_yet_valid", None


def month_volumes(records: list[AssetRecord], months: list[str]) -> tuple[MonthVolume, ...]:
    """Count each record's history into the given months (``YYYY-MM``)."""
    counts: dict[str, dict[str, int]] = {m: {} for m in months}
    for record in records:
        previous: Any = None
        for index, entry in enumerate(record.history):
            status = entry.get("status")
            bucket = counts.get(_month_of(entry.get("at")) or "")
            if bucket is not None:
                if index == 0:
                    bucket["scanned"] = bucket.get("scanned", 0) + 1
                    bucket["faces"] = bucket.get("faces", 0) + len(record.faces)
                state = _STATE_OF.get(str(status))
                if state is not None and status != previous:
                    bucket[state] = bucket.get(state, 0) + 1
            previous = status
    return tuple(MonthVolume(month, **counts[month]) for month in months)


def _month_of(at: Any) -> str | None:
    try:
        moment = datetime.fromisoformat(str(at))
    except ValueError:
        return None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return f"{moment:%Y-%m}"


def _months_back(now: datetime, count: int) -> list[str]:
    year, month = now.year, now.month
    found = []
    for _ in range(count):
        found.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return found[::-1]


@dataclass(frozen=True, slots=True)
class ImageLimits:
    max_bytes: int
    max_pixels: int
    max_frames: int


class Dashboard:
    def __init__(
        self,
        *,
        registry: Registry,
        assets: AssetRepository,
        activity: AssetActivity,
        expiries: ConsentExpiries,
        store: ObjectStore,
        clock: Clock,
        limits: ImageLimits,
        thumbnails: Thumbnails,
        queues: QueueDepths | None = None,
        webhooks: WebhookRepository | None = None,
        accuracy: Callable[[str], dict[str, Any] | None] | None = None,
    ) -> None:
        self._registry = registry
        self._assets = assets
        self._activity = activity
        self._expiries = expiries
        self._store = store
        self._clock = clock
        self._limits = limits
        self._thumbnails = thumbnails
        self._queues = queues
        self._webhooks = webhooks
        self._accuracy = accuracy

    def overview(self, tenant: str, months: int = 12) -> OverviewReport:
        if not 1 <= months <= MAX_MONTHS:
            raise ValidationFailed(f"months must be between 1 and {MAX_MONTHS}", field="months")
        now = self._clock.now()
        window = _months_back(now, months)
        start = datetime.fromisoformat(f"{window[0]}-01T00:00:00+00:00")
        records, complete = self._activity.decided_since(tenant, start, MAX_OVERVIEW_ASSETS)
        horizon = now + timedelta(days=max(EXPIRY_WINDOWS))
        soon = [
            c.expires_at
            for c in self._expiries.expiring_between(tenant, now, horizon)
            if c.revoked_at is None and c.expires_at is not None
        ]
        expiring = {
            str(days): sum(1 for end in soon if end < now + timedelta(days=days))
            for days in EXPIRY_WINDOWS
        }
        return OverviewReport(
            tenant=tenant,
            generated_at=now,
            months=month_volumes(records, window),
            volumes_complete=complete,
            expiring=expiring,
            dead_letters=self._dead_letters(tenant),
            accuracy=self._accuracy(tenant) if self._accuracy is not None else None,
        )

    def _dead_letters(self, tenant: str) -> dict[str, int | None]:
        found = self._queues.depths() if self._queues is not None else {}
        if self._webhooks is not None:
            # This tenant's outbound deliveries that gave up (replayable), not a queue.
            found["webhooks"] = len(self._webhooks.outbound_deliveries(tenant, "dead", None))
        return found

    def people(self, tenant: str, limit: int, cursor: str | None) -> Page:
        """A page of subjects, each with consents and a summary status."""
        page = self._registry.subjects.page(tenant, limit, cursor)
        now = self._clock.now()
        people = []
        for subject in page.items:
            views = tuple(self._registry.consent_views(tenant, subject.subject_id))
            status, valid_until = consent_summary(views, now)
            people.append(Person(subject, status, valid_until, views))
        return Page(tuple(people), page.next_cursor)

    def thumbnail(self, tenant: str, asset_id: str) -> Thumbnail:
        """A preview of a quarantined or approved image, from where it is stored."""
        record = self._assets.get(tenant, asset_id)
        if record is None or record.status is AssetStatus.DELETED:
            raise NotFound(f"asset {asset_id} not found")
        if record.status is AssetStatus.REJECTED:
            # Rejected input could not be decoded safely at ingest: never here either.
            raise Conflict("a rejected upload has no preview", code="no_preview")
        # The object must be this asset's, of this tenant: the record names a
        # place, the object there names its asset (every placement writes it).
        # Another asset's bytes at that place (a later upload of the same path,
        # a stale or forged record) are not shown.
        here = self._store.head(record.dest_bucket, record.dest_key)
        if (
            here is None
            or not record.dest_key.startswith(f"{tenant}/")
            or here.metadata.get(META_ASSET_ID) != asset_id
        ):
            raise NotFound(f"asset {asset_id} not found")
        data = self._store.read(record.dest_bucket, record.dest_key)
        return self._thumbnails.render_thumbnail(
            data,
            max_side=THUMBNAIL_SIDE,
            max_bytes=self._limits.max_bytes,
            max_pixels=self._limits.max_pixels,
            max_frames=self._limits.max_frames,
        )
