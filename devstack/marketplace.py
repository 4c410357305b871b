"""AWS Marketplace metering on the emulator: moto's gaps filled (gap 19 in ``gaps.py``).

moto 5.2 serves ``BatchMeterUsage`` over its HTTP server (the local stack's
endpoint), but:

- it keeps nothing: an accepted record is answered ``Success`` and forgotten,
  so nothing can be read back and ``DuplicateRecord`` never happens;
- nobody is ever subscribed (it has no API to subscribe a customer; in AWS a
  buyer subscribes through the listing and ``ResolveCustomer``), so every
  record is ``CustomerNotSubscribed``;
- a record sent again with the same quantity is accepted again (AWS answers
  it as the record it holds, and bills it once).

Filled in-process on moto's backend (moto runs in this process):
``complete_marketplace_metering`` wraps ``batch_meter_usage`` to keep accepted
records and answer an identical repeat with the original record id;
``subscribe`` is the buyer's subscription; ``metered_records`` reads back
what Marketplace holds; ``throttle_next`` makes the next calls answer
``ThrottlingException`` as AWS does under load (tests only).
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from devstack.account import ACCOUNT_ID

_LOCK = threading.Lock()
_throttles: dict[str, int] = {"left": 0}


def _backend(region: str, account_id: str = ACCOUNT_ID) -> Any:
    from moto.meteringmarketplace.models import meteringmarketplace_backends

    return meteringmarketplace_backends[account_id][region]


def complete_marketplace_metering() -> None:
    """Keep accepted records; an identical repeat is the record already held (idempotent)."""
    from moto.core.exceptions import JsonRESTError
    from moto.meteringmarketplace.models import MeteringMarketplaceBackend, Result

    original = MeteringMarketplaceBackend.batch_meter_usage
    if getattr(original, "_quitclaim_completed", False):
        return

    @functools.wraps(original)
    def batch_meter_usage(
        self: Any, product_code: str, usage_records: list[dict[str, Any]]
    ) -> list[Any]:
        with _LOCK:
            if _throttles["left"] > 0:
                _throttles["left"] -= 1
                raise JsonRESTError("ThrottlingException", "Rate exceeded")
            held = self.records_by_product[product_code]
            results = []
            for usage in usage_records:
                same = [
                    r
                    for r in held
                    if r.usage_record.customer_identifier == usage["CustomerIdentifier"]
                    and r.usage_record.dimension == usage["Dimension"]
                    and r.usage_record.timestamp == usage["Timestamp"]
                    and r.usage_record.quantity == usage["Quantity"]
                ]
                if same:
                    results.append(same[0])  # AWS: the record it holds, billed once
                    continue
                [result] = original(self, product_code, [usage])
                if result.status == Result.SUCCESS:
                    held.append(result)
                results.append(result)
            return results

    batch_meter_usage._quitclaim_completed = True  # type: ignore[attr-defined]
    MeteringMarketplaceBackend.batch_meter_usage = batch_meter_usage  # type: ignore[method-assign]


def subscribe(product_code: str, customer: str, region: str) -> None:
    """A buyer subscribes to the product (the listing's subscribe + ResolveCustomer)."""
    customers = _backend(region).customers_by_product[product_code]
    if customer not in customers:
        customers.append(customer)


def metered_records(product_code: str, region: str) -> list[dict[str, Any]]:
    """Every record Marketplace accepted: customer, dimension, timestamp, quantity, id."""
    return [
        {
            "customer": r.usage_record.customer_identifier,
            "dimension": r.usage_record.dimension,
            "timestamp": r.usage_record.timestamp,
            "quantity": int(r.usage_record.quantity),
            "record_id": r.metering_record_id,
        }
        for r in list(_backend(region).records_by_product[product_code])
    ]


def throttle_next(calls: int) -> None:
    """The next ``calls`` BatchMeterUsage calls answer ThrottlingException (tests)."""
    with _LOCK:
        _throttles["left"] = calls
