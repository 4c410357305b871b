"""Recheck: consents stream → re-decide the assets of each changed subject."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import (
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from quitclaim.adapters.batch import ReasonedBatchProcessor
from quitclaim.bootstrap import recheck_service
from quitclaim.config import get_settings
from quitclaim.observability import audited, logger, metrics, tracer

get_settings()
processor = ReasonedBatchProcessor(event_type=EventType.DynamoDBStreams)


@audited("stream")
def record_handler(record: DynamoDBRecord) -> None:
    """One consent changed: re-decide every asset its subject appears in."""
    image = record.dynamodb.new_image if record.dynamodb else {}
    recheck_service().recheck_subject(
        str(image["tenant"]), str(image["subject_id"]), actor="consents-stream"
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@audited("invocation")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    )
