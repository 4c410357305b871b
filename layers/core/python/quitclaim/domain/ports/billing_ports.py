"""Billing: the ledger and accounts, AWS Marketplace metering, once-only events, recounts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from quitclaim.domain.errors import DependencyFailed

if TYPE_CHECKING:
    # Signatures only: importing the ports package should not load the billing domain.
    from quitclaim.domain.billing import HourRecord, Ledger
    from quitclaim.domain.records import AssetRecord


@dataclass(frozen=True, slots=True)
class Account:
    """Who is billed: the tenant, its plan, its Marketplace customer (None: event only)."""

    tenant: str
    plan: str | None = None
    customer: str | None = None


@dataclass(frozen=True, slots=True)
class MeterRequest:
    customer: str
    dimension: str
    hour: datetime
    quantity: int


@dataclass(frozen=True, slots=True)
class MeterAnswer:
    status: str  # a RecordStatus value
    record_id: str | None = None


class MeteringThrottled(DependencyFailed):
    """Marketplace throttled the batch (after the client's own retries)."""


class Marketplace(Protocol):
    def batch_meter(self, requests: Sequence[MeterRequest]) -> list[MeterAnswer]:
        """One answer per request, in order; ``MeteringThrottled`` if throttled."""
        ...


class Ledgers(Protocol):
    """The billing ledger: one item per tenant and month (tenant in the key)."""

    def read(self, tenant: str, month: str) -> Ledger: ...

    def snapshot(
        self, keys: Sequence[tuple[str, str]]
    ) -> tuple[dict[tuple[str, str], Ledger], dict[tuple[str, str], dict[str, int]]]:
        """The ledgers and the usage counters of these (tenant, month) pairs, batched."""
        ...

    def claim(
        self,
        ledger: Ledger,
        hour: str,
        cumulative: Mapping[str, int],
        record: HourRecord | None,
    ) -> bool:
        """Add the hour (None: only move ``through``) if the ledger is still at
        ``ledger.version``; False if another writer moved it."""
        ...

    def mark(self, tenant: str, month: str, record: HourRecord) -> None:
        """Store the statuses and event flag of a claimed hour."""
        ...

    def accounts(self) -> list[Account]: ...

    def set_customer(self, tenant: str, customer: str | None) -> None: ...


class Publisher(Protocol):
    def publish_once(
        self, event_id: str, event_type: str, tenant: str, data: Mapping[str, Any]
    ) -> None: ...


class Recount(Protocol):
    """The records a month's counters can be recounted from."""

    def records(self, tenant: str) -> Iterable[AssetRecord]: ...

    def delivered(self, tenant: str) -> Iterable[tuple[str, datetime]]:
        """(event type, delivered at) of each delivered outbound webhook."""
        ...
