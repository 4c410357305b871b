"""Outbound batches: POSTs side by side within a budget; a slow receiver fails no message.

In-memory store and a scripted sender; the real delivery loop
(``WebhookDispatcher.handle_batch``). The stack-level proof is
tests/e2e/test_tenant_budgets.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from quitclaim.domain.errors import DependencyFailed
from quitclaim.domain.webhooks import (
    OutboundDelivery,
    OutboundStatus,
    SecretSet,
    WebhookEndpoint,
)
from quitclaim.usecases.webhook_dispatch import WebhookDispatcher
from tests.unit.fakes import FixedClock

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


@dataclass
class Store:
    endpoints_by_tenant: dict[str, list[WebhookEndpoint]]
    rows: dict[str, tuple[OutboundDelivery, str]] = field(default_factory=dict)
    broken_tenants: set[str] = field(default_factory=set)

    def endpoints(self, tenant: str) -> list[WebhookEndpoint]:
        if tenant in self.broken_tenants:
            raise DependencyFailed("webhooks table unavailable")
        return list(self.endpoints_by_tenant.get(tenant, []))

    def endpoint(self, tenant: str, endpoint_id: str) -> WebhookEndpoint | None:
        return next((e for e in self.endpoints(tenant) if e.endpoint_id == endpoint_id), None)

    def create_outbound(self, delivery: OutboundDelivery, body: str) -> bool:
        if delivery.delivery_id in self.rows:
            return False
        self.rows[delivery.delivery_id] = (delivery, body)
        return True

    def outbound(self, tenant: str, delivery_id: str) -> tuple[OutboundDelivery, str] | None:
        return self.rows.get(delivery_id)

    def claim_attempt(self, delivery: OutboundDelivery, at: datetime) -> OutboundDelivery:
        claimed = replace(
            delivery,
            attempts=delivery.attempts + 1,
            first_attempt_at=delivery.first_attempt_at or at,
            last_attempt_at=at,
        )
        self.rows[delivery.delivery_id] = (claimed, self.rows[delivery.delivery_id][1])
        return claimed

    def record_outbound(self, delivery: OutboundDelivery, usage: Any = None) -> None:
        self.rows[delivery.delivery_id] = (delivery, self.rows[delivery.delivery_id][1])


class Secrets:
    def get(self, tenant: str, kind: str, name: str, fresh: bool = False) -> SecretSet:
        return SecretSet("whsec_" + "A" * 32)


class Signature:
    def headers(self, secrets: Any, message_id: str, at: datetime, body: str) -> dict[str, str]:
        return {"webhook-id": message_id}


@dataclass
class Schedules:
    due: list[tuple[str, datetime]] = field(default_factory=list)

    def retry_at(self, tenant: str, delivery_id: str, attempt: int, at: datetime) -> None:
        self.due.append((delivery_id, at))


@dataclass
class Sender:
    """Hosts under ``slow`` hang for the whole timeout they are given."""

    slow: set[str]
    calls: list[tuple[str, float | None, float]] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def check_url(self, url: str) -> None:
        pass

    def post(
        self, url: str, headers: Mapping[str, str], body: bytes, timeout_s: float | None = None
    ) -> tuple[int | None, str | None]:
        with self.lock:
            self.calls.append((url, timeout_s, time.monotonic()))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if url.split("/")[2] in self.slow:
                time.sleep(timeout_s if timeout_s is not None else 10.0)
                return None, "timeout"
            time.sleep(0.05)
            return 204, None
        finally:
            with self.lock:
                self.in_flight -= 1


def endpoints(tenant: str, host: str, n: int) -> list[WebhookEndpoint]:
    return [WebhookEndpoint(tenant, f"ep_{tenant}_{i}", f"http://{host}/{i}", ()) for i in range(n)]


def event(tenant: str, n: int) -> dict[str, Any]:
    return {"id": f"evt_{tenant}_{n}", "type": "asset.approved", "tenant": tenant, "data": {}}


def dispatcher(store: Store, sender: Sender, parallelism: int = 16) -> WebhookDispatcher:
    return WebhookDispatcher(
        store=store,  # type: ignore[arg-type]
        secrets=Secrets(),  # type: ignore[arg-type]
        signature=Signature(),  # type: ignore[arg-type]
        sender=sender,
        schedules=Schedules(),
        clock=FixedClock(NOW),
        wall_clock=FixedClock(NOW),
        jitter=lambda: 0.5,
        parallelism=parallelism,
    )


def statuses(store: Store, tenant: str) -> list[tuple[str, str | None]]:
    return sorted(
        (d.status.value, d.last_error) for d, _ in store.rows.values() if d.tenant == tenant
    )


def test_a_tenants_silent_endpoints_cost_only_their_own_deliveries_a_retry() -> None:
    # Given tenant A with five endpoints that never answer and B with one that does
    store = Store({"a": endpoints("a", "silent", 5), "b": endpoints("b", "ok", 1)})
    sender = Sender(slow={"silent"})
    # When one batch holds two events of A's and two of B's, with a 0.5 s budget
    started = time.monotonic()
    errors = dispatcher(store, sender).handle_batch(
        [event("a", 1), event("b", 1), event("a", 2), event("b", 2)], budget_s=0.5
    )
    elapsed = time.monotonic() - started
    # Then no message fails, and the batch took the budget, not 10 s per endpoint
    assert errors == [None, None, None, None]
    assert elapsed < 2.0
    # And B's events are delivered; A's ten deliveries wait for their scheduled retries
    assert statuses(store, "b") == [("delivered", None)] * 2
    assert statuses(store, "a") == [("retrying", "timeout")] * 10
    # And no POST was given more time than the budget
    assert all(timeout is not None and timeout <= 0.5 for _, timeout, _ in sender.calls)


def test_posts_run_side_by_side_round_robin_across_tenants() -> None:
    # Given two POSTs at a time, A's eight deliveries listed before B's one
    store = Store({"a": endpoints("a", "silent", 4), "b": endpoints("b", "ok", 1)})
    sender = Sender(slow={"silent"})
    dispatcher(store, sender, parallelism=2).handle_batch(
        [event("a", 1), event("a", 2), event("b", 1)], budget_s=0.3
    )
    # Then at most two ran at once, B's went out among the first two, and
    # A's that could not start within the budget failed as batch_budget (retried later)
    assert sender.most_in_flight == 2
    assert any(url.startswith("http://ok/") for url, _, _ in sender.calls[:2])
    assert statuses(store, "b") == [("delivered", None)]
    assert ("retrying", "batch_budget") in statuses(store, "a")
    assert {s for s, _ in statuses(store, "a")} == {"retrying"}


def test_a_store_failure_returns_only_its_own_message() -> None:
    # Given tenant C whose endpoint list cannot be read
    store = Store({"b": endpoints("b", "ok", 1)}, broken_tenants={"c"})
    sender = Sender(slow=set())
    # When C's event and B's share a batch
    errors = dispatcher(store, sender).handle_batch([event("c", 1), event("b", 1)], budget_s=1)
    # Then only C's message returns to the queue; B's is delivered
    assert isinstance(errors[0], DependencyFailed) and errors[1] is None
    assert statuses(store, "b") == [("delivered", None)]


def test_one_message_outside_a_batch_is_delivered_as_before() -> None:
    # Given a message handled alone (no batch budget): the sender's own timeout applies
    store = Store({"b": endpoints("b", "ok", 2)})
    sender = Sender(slow=set())
    delivered = dispatcher(store, sender).handle(event("b", 1))
    assert [d.status for d in delivered] == [OutboundStatus.DELIVERED] * 2
    assert [timeout for _, timeout, _ in sender.calls] == [None, None]
    assert all(d.delivered_at == NOW for d in delivered)
