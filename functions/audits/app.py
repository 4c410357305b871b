"""Accuracy audit worker: run one queued audit job (SQS; docs/accuracy-audit.md)."""

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
from quitclaim.bootstrap import accuracy_jobs_service
from quitclaim.config import get_settings
from quitclaim.observability import audited, logger, metrics, tracer

get_settings()
processor = ReasonedBatchProcessor(event_type=EventType.SQS)


@audited("sqs")
def run_record(record: SQSRecord) -> None:
    """``{"tenant", "job_id"}``: the job records its own failure; only a crash is retried."""
    item = json.loads(record.body)
    accuracy_jobs_service().run(str(item["tenant"]), str(item["job_id"]))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@audited("invocation")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(
            event=event, record_handler=run_record, processor=processor, context=context
        )
    )
