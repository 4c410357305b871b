"""Inbound webhooks worker: apply one verified, queued delivery (SQS)."""

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
from quitclaim.bootstrap import apply_inbound_service
from quitclaim.config import get_settings
from quitclaim.observability import audited, logger, metrics, tracer

get_settings()
processor = ReasonedBatchProcessor(event_type=EventType.SQS)


@audited("sqs")
def apply_record(record: SQSRecord) -> None:
    """``{"tenant", "source", "delivery_id"}``: a failure is retried, then dead-lettered."""
    item = json.loads(record.body)
    apply_inbound_service().apply(
        str(item["tenant"]), str(item["source"]), str(item["delivery_id"])
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@audited("invocation")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(
            event=event, record_handler=apply_record, processor=processor, context=context
        )
    )
