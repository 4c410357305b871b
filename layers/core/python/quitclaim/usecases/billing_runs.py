"""Billing: each tenant's hourly usage to AWS Marketplace and/or the usage.hourly event.

Exactly once, per tenant and hour (docs/billing.md):

1. **claim**: one conditional write fixes the hour's quantities (what the
   counters gained since the previous claim) with status ``Pending``;
2. **send**: ``BatchMeterUsage`` with the records not yet accepted, and the
   ``usage.hourly`` event (its id derived from tenant and hour);
3. **mark**: each record's status from Marketplace's answer, the event as published.

A crash after 1 or 2 leaves ``Pending`` records that the next run sends again,
with the quantities fixed at the claim: the same record, which Marketplace
accepts as the one it has (and the ledger, not Marketplace, decides what is
sent: an accepted record is never sent again).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from quitclaim.domain.billing import (
    DIMENSIONS,
    MARKETPLACE,
    USAGE_HOURLY,
    WEBHOOK,
    HourRecord,
    Ledger,
    Reconciliation,
    RecordStatus,
    bill,
    compare,
    deltas,
    due_hours,
    hour_key,
    last_hour_of,
    parse_hour_key,
)
from quitclaim.domain.ports import (
    Account,
    Clock,
    Ledgers,
    Marketplace,
    MeteringThrottled,
    MeterRequest,
    Publisher,
    Recount,
    UsageMeter,
)
from quitclaim.domain.usage import (
    FACES_PROCESSED,
    IMAGES_SCANNED,
    MATCHES_MADE,
    WEBHOOK_DELIVERIES,
    UsageReport,
    billable,
    month_of,
    parse_month,
    scan_units,
)
from quitclaim.observability import audit, count, logger


def log_for_digest(result: Reconciliation) -> None:
    """Default operator-digest hook: log and count (retention's digest replaces it)."""
    if result.clean:
        logger.info("billing reconciled", month=result.month, tenants=len(result.lines))
    else:
        logger.warning(
            "billing differences",
            month=result.month,
            differences=[line.to_json() for line in result.differences],
        )
    count("BillingDifferences", len(result.differences))


def event_id(tenant: str, hour: str) -> str:
    return "evt_usage_" + hashlib.sha256(f"{tenant}#{hour}".encode()).hexdigest()[:24]


@dataclass
class Billing:
    ledgers: Ledgers
    meter: UsageMeter
    clock: Clock
    marketplace: Marketplace | None  # None: no product code (every tenant via the event)
    events: Publisher | None
    recount: Recount | None = None
    # The daily reconciliation's result goes here: the operator digest's hook.
    operator_digest_hook: Callable[[Reconciliation], None] = log_for_digest
    stats: dict[str, int] = field(default_factory=dict)

    # ------------------------------------------------------------ the hourly run
    def run_hour(self) -> dict[str, int]:
        """The scheduled run: claim every tenant's due hour(s), send what is not accepted."""
        now = self.clock.now()
        self.stats = dict.fromkeys(
            ("claimed", "records_sent", "accepted", "not_subscribed", "duplicate", "throttled"),
            0,
        )
        accounts, due = self.ledgers.accounts(), due_hours(now)
        # Every ledger and counter this run needs, read in batches: the run
        # fires hourly for every tenant, most of which have nothing new.
        keys = [(a.tenant, month) for a in accounts for month, _ in due]
        ledgers, counters = self.ledgers.snapshot(keys)
        for account in accounts:
            for month, hour in due:
                key = (account.tenant, month)
                ledger = self._claim(account, month, hour, ledgers[key], counters[key])
                self._send_pending(account, ledger)
        return dict(self.stats)

    def _claim(
        self,
        account: Account,
        month: str,
        hour: datetime,
        ledger: Ledger,
        counters: Mapping[str, int],
    ) -> Ledger:
        """Claim the hour if it is due and has usage; the ledger as it now stands.

        ``counters`` were read with ``ledger``: a claim from a stale pair is
        refused by the ledger's version, and the next run claims afresh.
        """
        key = hour_key(hour)
        if ledger.through is not None and ledger.through >= key:
            return ledger  # claimed already (this run retried, or an earlier run)
        gained = deltas(counters, ledger.cumulative)
        cumulative = {d: int(counters.get(d, 0)) for d in DIMENSIONS}
        if not gained:
            # Nothing new: no record (Marketplace wants none for zero). The
            # month's last hour is still claimed, empty: the month is closed.
            if hour == last_hour_of(month) and ledger.version:
                self.ledgers.claim(ledger, key, cumulative, None)
            return ledger
        sink = MARKETPLACE if account.customer and self.marketplace else WEBHOOK
        record = HourRecord(
            hour=key,
            sink=sink,
            customer=account.customer if sink == MARKETPLACE else None,
            quantities=gained,
            statuses=dict.fromkeys(gained, RecordStatus.PENDING.value),
        )
        if self.ledgers.claim(ledger, key, cumulative, record):
            self.stats["claimed"] += 1
            count("MeteringHoursClaimed")
            # Logged, not audited: billing is not an act on the tenant's data.
            logger.info("billing hour claimed", tenant=account.tenant, hour=key, sink=sink)
        # else: another run claimed from the same state; it sends, or the next run does
        return self.ledgers.read(account.tenant, month)

    def _send_pending(self, account: Account, ledger: Ledger) -> None:
        for record in sorted(ledger.hours.values(), key=lambda h: h.hour):
            if record.unsent() or not record.event_published:
                self._send(account.tenant, ledger.month, record)

    def _send(self, tenant: str, month: str, record: HourRecord) -> None:
        if not record.event_published and self.events is not None:
            self.events.publish_once(
                event_id(tenant, record.hour), USAGE_HOURLY, tenant, hourly_event(record)
            )
            record = replace(record, event_published=True)
            self.ledgers.mark(tenant, month, record)
        dims = record.unsent()
        if not dims or self.marketplace is None or record.customer is None:
            return
        hour = parse_hour_key(record.hour)
        requests = [MeterRequest(record.customer, d, hour, record.quantities[d]) for d in dims]
        statuses, ids = dict(record.statuses), dict(record.record_ids)
        try:
            answers = self.marketplace.batch_meter(requests)
        except MeteringThrottled:
            # Left as it was, marked Throttled: the next hourly run sends it again.
            statuses.update(dict.fromkeys(dims, RecordStatus.THROTTLED.value))
            self.stats["throttled"] += len(dims)
            count("MeteringThrottled", len(dims))
            logger.warning("marketplace throttled", tenant=tenant, hour=record.hour)
            self.ledgers.mark(tenant, month, replace(record, statuses=statuses))
            return
        self.stats["records_sent"] += len(dims)
        for request, answer in zip(requests, answers, strict=True):
            statuses[request.dimension] = answer.status
            if answer.record_id:
                ids[request.dimension] = answer.record_id
            self._tally(tenant, record.hour, request.dimension, answer.status)
        self.ledgers.mark(tenant, month, replace(record, statuses=statuses, record_ids=ids))

    def _tally(self, tenant: str, hour: str, dimension: str, status: str) -> None:
        if status == RecordStatus.SUCCESS:
            self.stats["accepted"] += 1
            count("MeteringAccepted")
        elif status == RecordStatus.NOT_SUBSCRIBED:
            # Kept and sent again each run: billed once the customer subscribes.
            self.stats["not_subscribed"] += 1
            count("MeteringNotSubscribed")
            logger.warning("marketplace customer not subscribed", tenant=tenant, hour=hour)
        elif status == RecordStatus.DUPLICATE:
            # Marketplace holds another quantity for this hour: a conflict for
            # the operator (reconcile shows it), never re-sent.
            self.stats["duplicate"] += 1
            count("MeteringDuplicate")
            logger.error(
                "marketplace duplicate record", tenant=tenant, hour=hour, dimension=dimension
            )

    # ------------------------------------------------------------ operator
    def set_customer(self, tenant: str, customer: str | None) -> None:
        """Onboarding: the tenant's Marketplace customer identifier (None: event only)."""
        self.ledgers.set_customer(tenant, customer)
        audit(
            "tenant.marketplace_customer_set",
            tenant=tenant,
            status="set" if customer is not None else "removed",
        )

    def status(self, month: str) -> list[dict[str, Any]]:
        """Every claimed hour of the month with each record's status (the operator's view)."""
        month = parse_month(month)
        rows = []
        for account in self.ledgers.accounts():
            ledger = self.ledgers.read(account.tenant, month)
            for record in sorted(ledger.hours.values(), key=lambda h: h.hour):
                rows.append(
                    {
                        "tenant": account.tenant,
                        "hour": record.hour,
                        "sink": record.sink,
                        "quantities": record.quantities,
                        "statuses": record.statuses,
                        "event_published": record.event_published,
                    }
                )
        return rows

    def reconcile(self, month: str, tenants: Sequence[str] | None = None) -> Reconciliation:
        """Per tenant and dimension: counters, recount from the records, sent, accepted."""
        month = parse_month(month)
        names = tenants or [a.tenant for a in self.ledgers.accounts()]
        lines = []
        for tenant in names:
            metered = self.meter.counters(tenant, month)
            recomputed = self._recompute(tenant, month)
            ledger = self.ledgers.read(tenant, month)
            for dimension in DIMENSIONS:
                lines.append(
                    compare(
                        tenant,
                        dimension,
                        int(metered.get(dimension, 0)),
                        recomputed.get(dimension),
                        ledger,
                    )
                )
        return Reconciliation(month, tuple(lines))

    def reconcile_daily(self) -> dict[str, Any]:
        """The scheduled run: this month and the last, to the operator digest's hook."""
        now = self.clock.now()
        summary: dict[str, Any] = {}
        for month, _ in due_hours(now):
            result = self.reconcile(month)
            self.operator_digest_hook(result)
            summary[month] = len(result.differences)
        return summary

    def _recompute(self, tenant: str, month: str) -> dict[str, int]:
        """The month's counted units from the records (api_calls has none)."""
        if self.recount is None:
            return {}
        found = {IMAGES_SCANNED: 0, FACES_PROCESSED: 0, MATCHES_MADE: 0, WEBHOOK_DELIVERIES: 0}
        for record in self.recount.records(tenant):
            if billable(record) and month_of(record.decided_at) == month:
                for unit, n in scan_units(record).items():
                    found[unit] += n
        for event_type, at in self.recount.delivered(tenant):
            if month_of(at) == month and not event_type.startswith("usage."):
                found[WEBHOOK_DELIVERIES] += 1
        return found

    # ------------------------------------------------------------ customers
    def usage_bill(
        self, tenant: str, plan: str | None, units: Mapping[str, float | int], month: str
    ) -> dict[str, Any]:
        """This month's usage against quota and prices, projected to month end (GET /usage)."""
        return bill(month, plan, units, self.meter.images_per_month(tenant), self.clock.now())


def hourly_event(record: HourRecord) -> dict[str, Any]:
    """The usage.hourly event's data: the hour's figures (the same as Marketplace's)."""
    return {
        "hour": parse_hour_key(record.hour).isoformat(),
        "quantities": {d: record.quantities.get(d, 0) for d in DIMENSIONS},
        "billed_via": record.sink,
    }


def with_bill(report: UsageReport, plan: str | None, now: datetime) -> UsageReport:
    """The report with this month's bill: per dimension against quota and prices, projected."""
    figures = bill(report.month, plan, report.units, report.images_per_month, now)
    return replace(report, bill=figures)
