"""Billing use-case with in-memory fakes: claims, crashes, refusals, reconciliation, the bill."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from quitclaim.domain.billing import HourRecord, Ledger, bill, deltas, due_hours
from quitclaim.domain.ports import Account, MeterAnswer, MeteringThrottled, MeterRequest
from quitclaim.usecases.billing_runs import Billing
from tests.unit.fakes import FakeUsage, FixedClock


@dataclass
class MemLedgers:
    items: dict[tuple[str, str], Ledger] = field(default_factory=dict)
    people: list[Account] = field(default_factory=list)
    crash_on_mark: bool = False

    def read(self, tenant: str, month: str) -> Ledger:
        return self.items.get((tenant, month), Ledger(tenant, month))

    meter: FakeUsage | None = None

    def snapshot(
        self, keys: Sequence[tuple[str, str]]
    ) -> tuple[dict[tuple[str, str], Ledger], dict[tuple[str, str], dict[str, int]]]:
        assert self.meter is not None
        return (
            {k: self.read(*k) for k in keys},
            {k: self.meter.counters(*k) for k in keys},
        )

    def claim(
        self, ledger: Ledger, hour: str, cumulative: Mapping[str, int], record: HourRecord | None
    ) -> bool:
        if self.read(ledger.tenant, ledger.month).version != ledger.version:
            return False
        hours = dict(ledger.hours)
        if record is not None:
            hours[hour] = record
        self.items[(ledger.tenant, ledger.month)] = replace(
            ledger,
            version=ledger.version + 1,
            through=hour,
            cumulative=dict(cumulative),
            hours=hours,
        )
        return True

    def mark(self, tenant: str, month: str, record: HourRecord) -> None:
        if self.crash_on_mark:
            raise RuntimeError("crash before mark")
        ledger = self.items[(tenant, month)]
        self.items[(tenant, month)] = replace(ledger, hours={**ledger.hours, record.hour: record})

    def accounts(self) -> list[Account]:
        return list(self.people)

    def set_customer(self, tenant: str, customer: str | None) -> None:
        self.people = [
            replace(a, customer=customer) if a.tenant == tenant else a for a in self.people
        ]


@dataclass
class MemMarketplace:
    held: dict[tuple[str, str, datetime], int] = field(default_factory=dict)
    subscribed: set[str] = field(default_factory=set)
    throttle: int = 0
    calls: int = 0

    def batch_meter(self, requests: Sequence[MeterRequest]) -> list[MeterAnswer]:
        self.calls += 1
        if self.throttle:
            self.throttle -= 1
            raise MeteringThrottled("throttled")
        out = []
        for r in requests:
            key = (r.customer, r.dimension, r.hour)
            if r.customer not in self.subscribed:
                out.append(MeterAnswer("CustomerNotSubscribed"))
            elif key in self.held and self.held[key] != r.quantity:
                out.append(MeterAnswer("DuplicateRecord"))
            else:
                self.held[key] = r.quantity
                out.append(MeterAnswer("Success", f"id-{len(self.held)}"))
        return out


@dataclass
class MemEvents:
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)

    def publish_once(
        self, event_id: str, event_type: str, tenant: str, data: Mapping[str, Any]
    ) -> None:
        self.sent[event_id] = {"type": event_type, "tenant": tenant, "data": dict(data)}


class Crashing:
    def batch_meter(self, requests: Sequence[MeterRequest]) -> list[MeterAnswer]:
        raise RuntimeError("crash before send")


def setup() -> tuple[Billing, FakeUsage, MemLedgers, MemMarketplace, MemEvents, FixedClock]:
    meter, ledgers, market, events = FakeUsage(), MemLedgers(), MemMarketplace(), MemEvents()
    ledgers.meter = meter
    ledgers.people = [Account("acme", "standard", "cust-acme"), Account("solo", "free", None)]
    market.subscribed = {"cust-acme"}
    clock = FixedClock(datetime(2026, 11, 3, 10, 5, tzinfo=UTC))
    service = Billing(ledgers, meter, clock, market, events)
    return service, meter, ledgers, market, events, clock


def test_due_hours_are_the_last_complete_hour_and_the_previous_months_last() -> None:
    assert due_hours(datetime(2026, 12, 1, 0, 5, tzinfo=UTC)) == [
        ("2026-10", datetime(2026, 10, 31, 23, tzinfo=UTC)),
        ("2026-11", datetime(2026, 11, 30, 23, tzinfo=UTC)),
    ]
    assert deltas({"images_scanned": 5, "api_calls": 2}, {"images_scanned": 3}) == {
        "images_scanned": 2,
        "api_calls": 2,
    }


def test_each_hour_is_claimed_once_and_marketplace_holds_exactly_the_counters() -> None:
    # Given two tenants, one with a Marketplace customer, using the API over three hours
    service, meter, _ledgers, market, events, clock = setup()
    for _ in range(3):
        meter.add("acme", "2026-11", {"images_scanned": 2, "api_calls": 1})
        meter.add("solo", "2026-11", {"images_scanned": 1})
        service.run_hour()
        service.run_hour()  # a second run in the same hour claims nothing
        clock.at += timedelta(hours=1)
    # Then Marketplace holds one record per dimension and hour, summing to the counters
    assert len(market.held) == 6
    assert sum(q for (_, d, _), q in market.held.items() if d == "images_scanned") == 6
    # And the event-only tenant was billed through usage.hourly only, with the same figures
    solo = [e for e in events.sent.values() if e["tenant"] == "solo"]
    assert [e["data"]["billed_via"] for e in solo] == ["webhook"] * 3
    assert sum(e["data"]["quantities"]["images_scanned"] for e in solo) == 3
    assert service.reconcile("2026-11").clean


@pytest.mark.parametrize("crash", ["after_claim", "after_send"])
def test_a_crash_then_a_retry_sends_each_record_once(crash: str) -> None:
    service, meter, ledgers, market, _events, clock = setup()
    meter.add("acme", "2026-11", {"images_scanned": 4})
    if crash == "after_claim":
        service.marketplace = Crashing()  # claimed, then the crash before the send
        with pytest.raises(RuntimeError):
            service.run_hour()
        service.marketplace = market
    else:
        ledgers.crash_on_mark = True  # sent, then the crash before the mark
        with pytest.raises(RuntimeError):
            service.run_hour()
        ledgers.crash_on_mark = False
    clock.at += timedelta(hours=1)
    service.run_hour()
    assert market.held == {("cust-acme", "images_scanned", datetime(2026, 11, 3, 9, tzinfo=UTC)): 4}
    assert service.reconcile("2026-11").clean


def test_refusals_each_their_way() -> None:
    service, meter, _ledgers, market, _events, clock = setup()
    meter.add("acme", "2026-11", {"images_scanned": 1})
    # Throttled: kept and re-sent by the next run
    market.throttle = 1
    assert service.run_hour()["throttled"] == 1
    clock.at += timedelta(hours=1)
    assert service.run_hour()["accepted"] == 1
    # Not subscribed: kept, re-sent each run until the customer subscribes
    market.subscribed.clear()
    meter.add("acme", "2026-11", {"images_scanned": 1})
    clock.at += timedelta(hours=1)
    assert service.run_hour()["not_subscribed"] == 1
    assert "sent-accepted=+1" in service.reconcile("2026-11").differences[0].problems
    market.subscribed.add("cust-acme")
    clock.at += timedelta(hours=1)
    assert service.run_hour()["accepted"] == 1
    assert service.reconcile("2026-11").clean


def test_a_counter_changed_by_hand_is_reported_once_the_month_is_closed() -> None:
    service, meter, ledgers, _market, _events, clock = setup()
    meter.add("acme", "2026-11", {"api_calls": 3})
    service.run_hour()
    clock.at = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
    service.run_hour()  # closes November (its last hour, empty)
    assert ledgers.read("acme", "2026-11").closed
    meter.add("acme", "2026-11", {"api_calls": 2})  # by hand, after the month closed
    [line] = service.reconcile("2026-11").differences
    assert (line.tenant, line.dimension, line.problems) == (
        "acme",
        "api_calls",
        ("metered-sent=+2",),
    )


def test_the_bill_projects_linearly_to_month_end() -> None:
    got = bill(
        "2026-11", "standard", {"images_scanned": 100}, 20_000, datetime(2026, 11, 16, tzinfo=UTC)
    )
    [images] = [d for d in got["dimensions"] if d["dimension"] == "images_scanned"]
    assert (images["used"], images["quota"], images["projected"]) == (100, 20_000, 200)
    assert got["projected_amount"] == pytest.approx(200 * 0.002)
