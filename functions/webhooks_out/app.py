"""Outbound webhooks: deliver outbox events (SQS) and scheduled retries.

A batch's deliveries are sent side by side within a time budget
(``QC_WEBHOOK_BATCH_BUDGET_S``, at most half of the invocation's remaining
time); an endpoint that does not answer costs its own delivery a scheduled
retry, never the other messages of the batch (docs/budgets.md).
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from quitclaim.adapters.batch import ReasonedBatchProcessor
from quitclaim.bootstrap import webhook_dispatcher
from quitclaim.config import get_settings
from quitclaim.observability import audited, logger, metrics, tracer

get_settings()
processor = ReasonedBatchProcessor(event_type=EventType.SQS)
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


@audited("sqs")
def deliver_record(record: SQSRecord) -> None:
    """Settle one outbox message: its deliveries went out with the batch's."""
    failure = _failures.get(record.message_id)
    if failure is not None:
        raise failure


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@audited("invocation")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" in event:
        budget_s = min(
            get_settings().webhook_batch_budget_s,
            context.get_remaining_time_in_millis() / 2000,
        )
        _failures.clear()
        _failures.update(deliver_batch(event["Records"], budget_s))
        try:
            return dict(
                process_partial_response(
                    event=event, record_handler=deliver_record, processor=processor, context=context
                )
            )
        finally:
            _failures.clear()
    if event.get("kind") == "webhook_retry":
        delivery = webhook_dispatcher().attempt(str(event["tenant"]), str(event["delivery_id"]))
        return {"status": delivery.status.value, "attempts": delivery.attempts}
    raise ValueError(f"unknown webhooks event kind: {event.get('kind')!r}")
