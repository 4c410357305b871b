"""Webhooks out: our decisions delivered to the tenant's DAMs and CRMs.

Each event from the outbox becomes one delivery per subscribed endpoint,
signed the Standard Webhooks way, retried with exponential backoff and
jitter for at least ``retry_window``, then left in the dead-letter list for
a replay. A batch of outbox messages is delivered side by side within a
time budget (``handle_batch``): an endpoint that never answers costs its own
delivery a retry, never the batch (docs/budgets.md).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from quitclaim.domain.errors import NotFound
from quitclaim.domain.ports import (
    Clock,
    RetrySchedules,
    WebhookRepository,
    WebhookSecrets,
    WebhookSender,
    WebhookSignature,
)
from quitclaim.domain.usage import WEBHOOK_DELIVERIES, UsageIncrement, month_of
from quitclaim.domain.webhooks import (
    ENDPOINTS,
    OutboundDelivery,
    OutboundStatus,
    WebhookEndpoint,
    next_attempt_at,
)
from quitclaim.observability import count, logger

# Schedules fire to the second (AWS: within a minute); a try this close to due is due.
EARLY_SLACK = timedelta(seconds=60)


@dataclass
class WebhookDispatcher:
    """Deliver outbox events to the tenant's endpoints; retry; dead-letter; replay."""

    store: WebhookRepository
    secrets: WebhookSecrets
    signature: WebhookSignature
    sender: WebhookSender
    schedules: RetrySchedules
    clock: Clock  # business time: retry times (the local stack's ticks move it)
    wall_clock: Clock  # transport time: signature timestamps the receiver checks
    retry_window: timedelta = timedelta(hours=24)
    jitter: Callable[[], float] = field(default=random.random)
    # POSTs of one batch in flight at once (``handle_batch``).
    parallelism: int = 16

    def handle(self, message: Mapping[str, Any]) -> list[OutboundDelivery]:
        """One outbox message: an event to fan out, or a replay of one delivery."""
        return [self._complete(step) for step in self._steps(message)]

    def handle_batch(
        self, messages: Sequence[Mapping[str, Any]], budget_s: float
    ) -> list[Exception | None]:
        """A batch of outbox messages, their POSTs side by side within ``budget_s``.

        Store work (rows, claims, outcomes) runs here in order; only the POSTs
        run in parallel, at most ``parallelism`` at once, taken round-robin
        across tenants, each with the time left of the budget as its timeout.
        A POST not started within the budget fails as ``batch_budget``: like
        any failed attempt it is retried on schedule. Returns, per message,
        None or the error that should return it to its queue (a store
        failure); a receiver's failure never fails its message.
        """
        deadline = time.monotonic() + budget_s
        errors: list[Exception | None] = [None] * len(messages)
        sends: list[tuple[int, _Send]] = []
        for index, message in enumerate(messages):
            try:
                for step in self._steps(message):
                    if isinstance(step, _Send):
                        sends.append((index, step))
            except Exception as exc:  # this message alone returns to the queue
                errors[index] = exc
        sends = _round_robin(sends)
        verdicts = self._post_all([send for _, send in sends], deadline)
        for (index, send), (status, error) in zip(sends, verdicts, strict=True):
            try:
                self._finish(send, status, error)
            except Exception as exc:  # the claimed attempt is redone on redelivery
                errors[index] = errors[index] or exc
        return errors

    def fan_out(self, event: Mapping[str, Any]) -> list[OutboundDelivery]:
        return [self._complete(step) for step in self._event_steps(event)]

    def _steps(self, message: Mapping[str, Any]) -> Iterator[OutboundDelivery | _Send]:
        if message.get("kind") == "replay":
            yield self._prepare_stored(str(message["tenant"]), str(message["delivery_id"]))
        else:
            yield from self._event_steps(message)

    def _event_steps(self, event: Mapping[str, Any]) -> Iterator[OutboundDelivery | _Send]:
        tenant = str(event["tenant"])
        event_type = str(event["type"])
        event_id = str(event["id"])
        body = _event_body(event)
        for endpoint in self.store.endpoints(tenant):
            if not endpoint.wants(event_type):
                continue
            delivery_id = (
                "msg_"
                + hashlib.sha256(f"{event_id}#{endpoint.endpoint_id}".encode()).hexdigest()[:26]
            )
            delivery = OutboundDelivery(
                tenant,
                delivery_id,
                endpoint.endpoint_id,
                event_id,
                event_type,
                OutboundStatus.PENDING,
                created_at=self.clock.now(),
            )
            if self.store.create_outbound(delivery, body):
                yield self._prepare(delivery, body, endpoint)
            else:  # a redelivered event: the row exists, go by its current state
                yield self._prepare_stored(tenant, delivery_id)

    def attempt(self, tenant: str, delivery_id: str) -> OutboundDelivery:
        """Try one delivery now if it is due; schedule the next try or give up."""
        return self._complete(self._prepare_stored(tenant, delivery_id))

    def _prepare_stored(self, tenant: str, delivery_id: str) -> OutboundDelivery | _Send:
        found = self.store.outbound(tenant, delivery_id)
        if found is None:
            raise NotFound(f"delivery {delivery_id} not found")
        delivery, body = found
        return self._prepare(delivery, body, None)

    def _complete(self, step: OutboundDelivery | _Send) -> OutboundDelivery:
        """A prepared step sent now (no batch: the sender's own timeout)."""
        if not isinstance(step, _Send):
            return step
        status, error = self.sender.post(step.url, step.headers, step.body.encode("utf-8"))
        return self._finish(step, status, error)

    def _post_all(
        self, sends: Sequence[_Send], deadline: float
    ) -> list[tuple[int | None, str | None]]:
        def post(send: _Send) -> tuple[int | None, str | None]:
            left = deadline - time.monotonic()
            if left <= 0:
                return None, "batch_budget"
            return self.sender.post(
                send.url, send.headers, send.body.encode("utf-8"), timeout_s=left
            )

        if not sends:
            return []
        with ThreadPoolExecutor(max_workers=min(self.parallelism, len(sends))) as pool:
            return list(pool.map(post, sends))

    def _prepare(
        self, delivery: OutboundDelivery, body: str, endpoint: WebhookEndpoint | None
    ) -> OutboundDelivery | _Send:
        """Claim the attempt and sign it; the delivery itself when there is nothing to send."""
        tenant, delivery_id = delivery.tenant, delivery.delivery_id
        now = self.clock.now()
        if delivery.status not in (OutboundStatus.PENDING, OutboundStatus.RETRYING):
            return delivery
        if delivery.next_attempt_at is not None and delivery.next_attempt_at - now > EARLY_SLACK:
            # Early (a redelivered message): make sure the due try is scheduled.
            self.schedules.retry_at(
                tenant, delivery_id, delivery.attempts + 1, delivery.next_attempt_at
            )
            return delivery
        claimed = self.store.claim_attempt(delivery, now)
        if claimed is None:
            return delivery  # another invocation took this attempt
        endpoint = endpoint or self.store.endpoint(tenant, delivery.endpoint_id)
        secrets = self.secrets.get(tenant, ENDPOINTS, delivery.endpoint_id)
        if endpoint is None or secrets is None:
            dead = replace(claimed, status=OutboundStatus.DEAD, last_error="endpoint_removed")
            self.store.record_outbound(dead)
            return dead
        headers = self.signature.headers(
            secrets.valid(now), delivery_id, self.wall_clock.now(), body
        )
        return _Send(claimed, endpoint.url, headers, body, now)

    def _finish(self, send: _Send, status: int | None, error: str | None) -> OutboundDelivery:
        """Record a sent attempt's outcome; schedule the next try or give up."""
        claimed, now = send.claimed, send.at
        tenant, delivery_id = claimed.tenant, claimed.delivery_id
        if error is None:
            done = replace(
                claimed,
                status=OutboundStatus.DELIVERED,
                last_status=status,
                last_error=None,
                next_attempt_at=None,
                delivered_at=now,
            )
            # Billed once per delivery: the first time it reaches the receiver.
            # A replay of a delivered one keeps delivered_at and is not billed again;
            # a usage event is the bill itself, not billed (it would bill itself hourly).
            usage = (
                UsageIncrement(tenant, month_of(now), {WEBHOOK_DELIVERIES: 1})
                if claimed.delivered_at is None and not claimed.event_type.startswith("usage.")
                else None
            )
            self.store.record_outbound(done, usage)
            count("WebhooksDelivered")
            return done
        assert claimed.first_attempt_at is not None
        retry = next_attempt_at(
            claimed.first_attempt_at, now, claimed.attempts, self.retry_window, self.jitter()
        )
        outcome = replace(
            claimed,
            status=OutboundStatus.RETRYING if retry else OutboundStatus.DEAD,
            last_status=status,
            last_error=error,
            next_attempt_at=retry,
        )
        self.store.record_outbound(outcome)
        logger.info(
            "webhook attempt failed",
            tenant=tenant,
            delivery_id=delivery_id,
            attempts=claimed.attempts,
            error=error,
            dead=retry is None,
        )
        if retry is None:
            count("WebhookDeadLetters")
        else:
            count("WebhookRetries")
            self.schedules.retry_at(tenant, delivery_id, claimed.attempts + 1, retry)
        return outcome


@dataclass(frozen=True, slots=True)
class _Send:
    """A claimed, signed attempt waiting for its POST."""

    claimed: OutboundDelivery
    url: str
    headers: dict[str, str]
    body: str
    at: datetime  # business time of the claim: the outcome's time too


def _round_robin(sends: list[tuple[int, _Send]]) -> list[tuple[int, _Send]]:
    """Interleave tenants: one tenant's many endpoints never take every worker first."""
    queues: dict[str, list[tuple[int, _Send]]] = {}
    for item in sends:
        queues.setdefault(item[1].claimed.tenant, []).append(item)
    ordered: list[tuple[int, _Send]] = []
    depth = 0
    while len(ordered) < len(sends):
        ordered.extend(q[depth] for q in queues.values() if depth < len(q))
        depth += 1
    return ordered


def _event_body(event: Mapping[str, Any]) -> str:
    """What the receiver gets: ids and times only (the outbox never holds names)."""
    body = {
        "id": event["id"],
        "type": event["type"],
        "tenant": event["tenant"],
        "occurred_at": event.get("occurred_at"),
        "data": event.get("data") or {},
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True)
