"""Ingest: SQS batch of S3 ObjectCreated events → scan_asset, partial failures."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from quitclaim.adapters.s3_events import uploads_from_message
from quitclaim.bootstrap import scan_asset_service
from quitclaim.config import get_settings
from quitclaim.observability import audited, logger, metrics, tracer
from quitclaim.usecases.scan_asset import ScanRequest

# Validated at cold start: a container outside the EU refuses to run at all.
get_settings()
processor = BatchProcessor(event_type=EventType.SQS)


@audited("sqs")
def record_handler(record: SQSRecord) -> None:
    """Scan every upload one message names; raising returns the message."""
    service = scan_asset_service()
    for ref in uploads_from_message(record.body):
        result = service(ScanRequest(ref.bucket, ref.key, ref.version_id, ref.etag))
        logger.debug("scanned", asset_id=result.asset_id, duplicate=result.duplicate)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@audited("invocation")
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
