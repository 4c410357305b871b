"""Outbound webhooks: deliver outbox events (SQS) and scheduled retries."""

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


@audited("sqs")
def deliver_record(record: SQSRecord) -> None:
    """An outbox event (fan out to endpoints) or a replay request."""
    webhook_dispatcher().handle(json.loads(record.body))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@audited("invocation")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" in event:
        return dict(
            process_partial_response(
                event=event, record_handler=deliver_record, processor=processor, context=context
            )
        )
    if event.get("kind") == "webhook_retry":
        delivery = webhook_dispatcher().attempt(str(event["tenant"]), str(event["delivery_id"]))
        return {"status": delivery.status.value, "attempts": delivery.attempts}
    raise ValueError(f"unknown webhooks event kind: {event.get('kind')!r}")
