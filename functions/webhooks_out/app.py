"""Outbound webhooks: deliver outbox events (SQS) and scheduled retries.

A batch's deliveries are sent side by side within a time budget
(``QC_WEBHOOK_BATCH_BUDGET_S``, at most half of the invocation's remaining
time); an endpoint that does not answer costs its own delivery a scheduled
retry, never the other messages of the batch (docs/budgets.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from quitclaim.bootstrap import webhook_dispatcher
from quitclaim.config import get_settings
from quitclaim.edges.batch import batch_handler

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

get_settings()
# This invocation's failed messages (messageId -> error), settled by deliver_record.
_failures: dict[str, Exception] = {}


def deliver_batch(records: list[dict[str, Any]], budget_s: float) -> dict[str, Exception]:
    """Every message's deliveries at once; the messages that must return to the queue."""
    failures: dict[str, Exception] = {}
    messages: list[tuple[str, dict[str, Any]]] = []
    for record in records:
        try:
            messages.append((record["messageId"], json.loads(record["body"])))
        except ValueError as exc:
            failures[record["messageId"]] = exc
    errors = webhook_dispatcher().handle_batch([m for _, m in messages], budget_s)
    for (message_id, _), error in zip(messages, errors, strict=True):
        if error is not None:
            failures[message_id] = error
    return failures


@contextmanager
def delivered(records: list[dict[str, Any]], context: LambdaContext) -> Iterator[None]:
    """The batch's deliveries, sent before the records are settled one by one."""
    budget_s = min(
        get_settings().webhook_batch_budget_s,
        context.get_remaining_time_in_millis() / 2000,
    )
    _failures.clear()
    _failures.update(deliver_batch(records, budget_s))
    try:
        yield
    finally:
        _failures.clear()


def deliver_record(record: SQSRecord) -> None:
    """Settle one outbox message: its deliveries went out with the batch's."""
    failure = _failures.get(record.message_id)
    if failure is not None:
        raise failure


def retry(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """A scheduled retry of one delivery (``kind: webhook_retry``)."""
    if event.get("kind") == "webhook_retry":
        delivery = webhook_dispatcher().attempt(str(event["tenant"]), str(event["delivery_id"]))
        return {"status": delivery.status.value, "attempts": delivery.attempts}
    raise ValueError(f"unknown webhooks event kind: {event.get('kind')!r}")


handler = batch_handler("sqs", deliver_record, around=delivered, otherwise=retry)
