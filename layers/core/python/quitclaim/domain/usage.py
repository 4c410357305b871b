"""Metering: the billable units of a tenant per UTC month, and the monthly image quota.

Pure: the rules for what one decision counts, the UTC month of a moment, and
storage as an integral over the recorded placement history. The counters
themselves live in the tenants table (``adapters.dynamo.DynamoUsage``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from quitclaim.domain.errors import ValidationFailed
from quitclaim.domain.models import AssetStatus
from quitclaim.domain.records import AssetRecord

IMAGES_SCANNED = "images_scanned"
FACES_PROCESSED = "faces_processed"
MATCHES_MADE = "matches_made"
API_CALLS = "api_calls"
WEBHOOK_DELIVERIES = "webhook_deliveries"
STORAGE_LIBRARY = "storage_library_gb_month"
STORAGE_QUARANTINE = "storage_quarantine_gb_month"

# Counted by increments (the counters item); storage is derived (see storage_gb_months).
COUNTED_UNITS = (IMAGES_SCANNED, FACES_PROCESSED, MATCHES_MADE, API_CALLS, WEBHOOK_DELIVERIES)
UNITS = (*COUNTED_UNITS, STORAGE_LIBRARY, STORAGE_QUARANTINE)

QUOTA_EXCEEDED = "quota_exceeded"
# Reasons of records filed under no real tenant: nobody to bill.
UNBILLABLE_REASONS = frozenset({"no_tenant_in_key", "unknown_tenant"})

# As AWS bills S3 storage: a GB is 2^30 bytes.
BYTES_PER_GB = 1024**3
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def month_of(at: datetime) -> str:
    """The UTC month of a moment, ``YYYY-MM`` (the counters' key)."""
    return at.astimezone(UTC).strftime("%Y-%m")


def parse_month(text: str, *, field_name: str = "month") -> str:
    """Validate ``YYYY-MM``; a bad value is a 400 that names the field."""
    if not isinstance(text, str) or not _MONTH.fullmatch(text.strip()):
        raise ValidationFailed("month must be YYYY-MM (e.g. 2026-11)", field=field_name)
    return text.strip()


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[start, end) of a ``YYYY-MM`` month in UTC."""
    year, mon = (int(part) for part in parse_month(month).split("-"))
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)
    return start, end


def next_month(month: str) -> str:
    return month_of(month_bounds(month)[1])


def billable(record: AssetRecord) -> bool:
    """Whether a decision is billed to its tenant (a key without a tenant is not)."""
    return record.status is not AssetStatus.HELD and not (UNBILLABLE_REASONS & set(record.reasons))


def scan_units(record: AssetRecord) -> dict[str, int]:
    """What one decision counts: one image, its faces, the faces matched to a person."""
    return {
        IMAGES_SCANNED: 1,
        FACES_PROCESSED: len(record.faces),
        MATCHES_MADE: sum(1 for face in record.faces if face.subject_id),
    }


@dataclass(frozen=True, slots=True)
class UsageIncrement:
    """Counters to add in the same transaction as the write they count.

    ``images_limit``: the tenant's images_per_month; the increment is refused
    (``QuotaExceeded``) when ``images_scanned`` would go over it.
    """

    tenant: str
    month: str
    units: Mapping[str, int]
    images_limit: int | None = None


def _place(status: str) -> str | None:
    """Which metered bucket a status keeps the bytes in (rejected: the quarantine bucket)."""
    if status == AssetStatus.APPROVED.value:
        return STORAGE_LIBRARY
    if status in (AssetStatus.QUARANTINED.value, AssetStatus.REJECTED.value):
        return STORAGE_QUARANTINE
    return None  # held (still an upload), deleted: not stored by us


def placements(record: AssetRecord) -> list[tuple[datetime, str | None]]:
    """(since, unit) steps of where the bytes were, from the append-only history.

    Each decision, re-decision or review action is one history line with its
    time and resulting status, so the steps partition time: a move between
    library and quarantine ends one interval where the next begins, and can
    never be counted twice.
    """
    steps: list[tuple[datetime, str | None]] = []
    for entry in record.history:
        at, status = entry.get("at"), entry.get("status")
        if not at or not status:
            continue
        steps.append((datetime.fromisoformat(str(at)), _place(str(status))))
    if not steps:
        steps.append((record.decided_at, _place(record.status.value)))
    steps.sort(key=lambda step: step[0])
    return steps


def storage_gb_months(
    records: Iterable[AssetRecord], month: str, now: datetime
) -> dict[str, float]:
    """GB-months in library and quarantine: integral of bytes dt / (BYTES_PER_GB x hours in month).

    Up to ``now`` for the running month (the figure grows until the month ends).
    """
    start, end = month_bounds(month)
    stop = min(end, now)
    hours_in_month = (end - start) / timedelta(hours=1)
    byte_hours = {STORAGE_LIBRARY: 0.0, STORAGE_QUARANTINE: 0.0}
    for record in records:
        if not record.size or not billable(record):
            continue
        steps = placements(record)
        for (since, unit), (until, _) in zip(steps, [*steps[1:], (stop, None)], strict=True):
            if unit is None:
                continue
            low, high = max(since, start), min(until, stop)
            if high > low:
                byte_hours[unit] += record.size * ((high - low) / timedelta(hours=1))
    return {unit: value / (BYTES_PER_GB * hours_in_month) for unit, value in byte_hours.items()}


@dataclass(frozen=True, slots=True)
class UsageReport:
    """A tenant's usage in one UTC month, every unit (zero when nothing was counted)."""

    tenant: str
    month: str
    units: dict[str, float | int] = field(default_factory=dict)
    images_per_month: int | None = None  # the quota; None: unlimited
    held: int = 0  # uploads waiting for quota (not billed)
    # This month against quota and the plan's price list, projected (docs/billing.md).
    bill: dict[str, Any] | None = None

    def rows(self) -> list[dict[str, Any]]:
        """One row per unit: month, tenant, unit, quantity (the CSV export)."""
        return [
            {"month": self.month, "tenant": self.tenant, "unit": unit, "quantity": self.units[unit]}
            for unit in UNITS
        ]


def format_quantity(value: float | int) -> str:
    """Counters as integers; GB-months with enough digits for small stores."""
    return str(value) if isinstance(value, int) else f"{value:.9f}"


def usage_csv(report: UsageReport) -> str:
    lines = ["month,tenant,unit,quantity"]
    lines += [
        f"{r['month']},{r['tenant']},{r['unit']},{format_quantity(r['quantity'])}"
        for r in report.rows()
    ]
    return "\n".join(lines) + "\n"


def remaining(limit: int | None, used: Mapping[str, int]) -> int | None:
    """Images still allowed this month (None: unlimited)."""
    if limit is None:
        return None
    return max(0, limit - int(used.get(IMAGES_SCANNED, 0)))
