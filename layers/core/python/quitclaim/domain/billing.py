"""Billing: hourly usage records, their exactly-once ledger, prices and reconciliation.

Pure. An hour's quantity per dimension is what the month's counters gained since
the tenant's previous claim (``deltas``): the quantities of a month's claims
telescope to its counters, so what was sent can be proved equal to what was
metered without a second set of (hourly) counters on the ingest path.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from quitclaim.domain.usage import COUNTED_UNITS, month_bounds, month_of

# Marketplace dimensions: the counted units, by the same names (the listing's
# dimension keys must be these). Storage is derived, fractional and monthly:
# it is not sent hourly (Marketplace quantities are integers).
DIMENSIONS: tuple[str, ...] = COUNTED_UNITS

USAGE_HOURLY = "usage.hourly"

MARKETPLACE = "marketplace"  # sink: BatchMeterUsage, and the usage.hourly event
WEBHOOK = "webhook"  # sink: the usage.hourly event only (no customer identifier)


class RecordStatus(enum.StrEnum):
    """Where one hour's record of one dimension stands (Marketplace's names where it has them)."""

    PENDING = "Pending"  # claimed, not (yet) answered: sent again by the next run
    SUCCESS = "Success"
    NOT_SUBSCRIBED = "CustomerNotSubscribed"  # kept, re-sent once the customer subscribes
    DUPLICATE = "DuplicateRecord"  # Marketplace holds another quantity: never re-sent
    THROTTLED = "Throttled"  # Marketplace throttled the batch: sent again next run


# Sent again by the next run (a DuplicateRecord is a conflict for the operator).
RETRIED = frozenset({RecordStatus.PENDING, RecordStatus.THROTTLED, RecordStatus.NOT_SUBSCRIBED})


def hour_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_key(hour: datetime) -> str:
    """``YYYY-MM-DDTHH`` (UTC): sorts as time does."""
    return hour.astimezone(UTC).strftime("%Y-%m-%dT%H")


def parse_hour_key(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H").replace(tzinfo=UTC)


def last_hour_of(month: str) -> datetime:
    return month_bounds(month)[1] - timedelta(hours=1)


def due_hours(now: datetime) -> list[tuple[str, datetime]]:
    """(month, hour to claim) for the last complete hour, and the previous month's last.

    The previous month's last hour is due until it is claimed: a run that was
    late (or skipped) still closes the month with what its counters gained.
    """
    last = hour_of(now) - timedelta(hours=1)
    month = month_of(last)
    previous = month_of(month_bounds(month)[0] - timedelta(hours=1))
    return [(previous, last_hour_of(previous)), (month, last)]


def deltas(counters: Mapping[str, int], cumulative: Mapping[str, int]) -> dict[str, int]:
    """What each dimension gained since the last claim (only the ones that did)."""
    gained = {d: int(counters.get(d, 0)) - int(cumulative.get(d, 0)) for d in DIMENSIONS}
    return {d: n for d, n in gained.items() if n > 0}


@dataclass(frozen=True, slots=True)
class HourRecord:
    """One claimed hour of one tenant: its quantities, fixed at the claim, and their fate."""

    hour: str  # hour_key
    sink: str  # MARKETPLACE | WEBHOOK
    customer: str | None
    quantities: dict[str, int]
    statuses: dict[str, str] = field(default_factory=dict)
    record_ids: dict[str, str] = field(default_factory=dict)
    event_published: bool = False

    def unsent(self) -> list[str]:
        """Dimensions to send (again) to Marketplace."""
        if self.sink != MARKETPLACE:
            return []
        return [
            d
            for d in self.quantities
            if RecordStatus(self.statuses.get(d, RecordStatus.PENDING)) in RETRIED
        ]

    def accepted(self, dimension: str) -> int:
        """The quantity the billing system holds for this hour and dimension."""
        if self.sink == WEBHOOK:
            return self.quantities.get(dimension, 0) if self.event_published else 0
        if self.statuses.get(dimension) == RecordStatus.SUCCESS:
            return self.quantities.get(dimension, 0)
        return 0

    def to_json(self) -> dict[str, Any]:
        return {
            "sink": self.sink,
            "customer": self.customer,
            "q": dict(self.quantities),
            "s": dict(self.statuses),
            "id": dict(self.record_ids),
            "event": self.event_published,
        }

    @classmethod
    def from_json(cls, hour: str, data: Mapping[str, Any]) -> HourRecord:
        return cls(
            hour=hour,
            sink=str(data["sink"]),
            customer=data.get("customer"),
            quantities={k: int(v) for k, v in dict(data.get("q") or {}).items()},
            statuses={k: str(v) for k, v in dict(data.get("s") or {}).items()},
            record_ids={k: str(v) for k, v in dict(data.get("id") or {}).items()},
            event_published=bool(data.get("event")),
        )


@dataclass(frozen=True, slots=True)
class Ledger:
    """A tenant's billing of one month: the last claimed hour, the counters then, each hour.

    ``version`` guards every write (optimistic concurrency): two runs cannot both
    claim from the same ``cumulative``.
    """

    tenant: str
    month: str
    version: int = 0
    through: str | None = None  # hour_key of the last claim
    cumulative: dict[str, int] = field(default_factory=dict)
    hours: dict[str, HourRecord] = field(default_factory=dict)

    def sent(self, dimension: str) -> int:
        return sum(h.quantities.get(dimension, 0) for h in self.hours.values())

    def accepted(self, dimension: str) -> int:
        return sum(h.accepted(dimension) for h in self.hours.values())

    @property
    def closed(self) -> bool:
        """Its last hour is claimed: nothing of the month is left to send."""
        return self.through == hour_key(last_hour_of(self.month))


# ---------------------------------------------------------------- prices (a plan setting)

# Price per unit in EUR, per plan; a unit the plan's list does not name is free.
# Plans without a list (a tenant from before plans) are priced as the default plan.
PRICE_LISTS: dict[str, dict[str, float]] = {
    "free": {},
    "standard": {
        "images_scanned": 0.002,
        "faces_processed": 0.0005,
        "matches_made": 0.0005,
        "api_calls": 0.00001,
        "webhook_deliveries": 0.0001,
    },
    "enterprise": {
        "images_scanned": 0.001,
        "faces_processed": 0.0002,
        "matches_made": 0.0002,
        "api_calls": 0.000005,
        "webhook_deliveries": 0.00005,
    },
}
DEFAULT_PRICE_PLAN = "standard"


def price_list(plan: str | None) -> dict[str, float]:
    return PRICE_LISTS.get(plan or DEFAULT_PRICE_PLAN, PRICE_LISTS[DEFAULT_PRICE_PLAN])


def month_elapsed(month: str, now: datetime) -> float:
    """The part of the month gone by at ``now`` (0..1)."""
    start, end = month_bounds(month)
    if now >= end:
        return 1.0
    if now <= start:
        return 0.0
    return (now - start) / (end - start)


def bill(
    month: str,
    plan: str | None,
    units: Mapping[str, float | int],
    images_per_month: int | None,
    now: datetime,
) -> dict[str, Any]:
    """This month's usage per dimension against quota and prices, and the projected amount.

    Projection: linear in time (used / elapsed part of the month); a month
    not begun projects its usage so far.
    """
    prices = price_list(plan)
    elapsed = month_elapsed(month, now)
    lines: list[dict[str, Any]] = []
    amount = projected_amount = 0.0
    for dimension in DIMENSIONS:
        used = units.get(dimension, 0)
        projected = used / elapsed if elapsed > 0 else used
        price = prices.get(dimension, 0.0)
        amount += used * price
        projected_amount += projected * price
        lines.append(
            {
                "dimension": dimension,
                "used": used,
                "quota": images_per_month if dimension == "images_scanned" else None,
                "unit_price": price,
                "amount": round(used * price, 4),
                "projected": round(projected),
                "projected_amount": round(projected * price, 4),
            }
        )
    return {
        "plan": plan,
        "currency": "EUR",
        "month_elapsed": round(elapsed, 4),
        "dimensions": lines,
        "amount": round(amount, 2),
        "projected_amount": round(projected_amount, 2),
    }


# ---------------------------------------------------------------- reconciliation


@dataclass(frozen=True, slots=True)
class ReconLine:
    """One tenant and dimension: the counters, the records, the ledger, Marketplace/event."""

    tenant: str
    dimension: str
    metered: int
    recomputed: int | None  # None: no record to recount it from (api_calls)
    sent: int
    accepted: int
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "dimension": self.dimension,
            "metered": self.metered,
            "recomputed": self.recomputed,
            "sent": self.sent,
            "accepted": self.accepted,
            "problems": list(self.problems),
        }


def compare(
    tenant: str,
    dimension: str,
    metered: int,
    recomputed: int | None,
    ledger: Ledger,
) -> ReconLine:
    """The differences of one line, each named with its size.

    Sent versus metered: exact for a closed month; in the running month the
    ledger holds the counters as of its last claim, so more sent than
    metered is the only possible difference.
    """
    sent, accepted = ledger.sent(dimension), ledger.accepted(dimension)
    problems = []
    if recomputed is not None and recomputed != metered:
        problems.append(f"metered-recomputed={metered - recomputed:+d}")
    if (ledger.closed and sent != metered) or sent > metered:
        problems.append(f"metered-sent={metered - sent:+d}")
    if accepted != sent:
        problems.append(f"sent-accepted={sent - accepted:+d}")
    return ReconLine(tenant, dimension, metered, recomputed, sent, accepted, tuple(problems))


@dataclass(frozen=True, slots=True)
class Reconciliation:
    month: str
    lines: tuple[ReconLine, ...]

    @property
    def differences(self) -> list[ReconLine]:
        return [line for line in self.lines if line.problems]

    @property
    def clean(self) -> bool:
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "clean": self.clean,
            "tenants": len({line.tenant for line in self.lines}),
            "differences": [line.to_json() for line in self.differences],
            "lines": [line.to_json() for line in self.lines],
        }
