"""Ingest: SQS batch of S3 ObjectCreated events → admission → scan_asset, partial failures."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import (
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from aws_lambda_powertools.utilities.batch.types import (
    PartialItemFailureResponse,
    PartialItemFailures,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from quitclaim.adapters.batch import ReasonedBatchProcessor
from quitclaim.adapters.s3_events import uploads_from_message
from quitclaim.bootstrap import admission_service, scan_asset_service
from quitclaim.config import get_settings
from quitclaim.domain.ports import LANE_ATTRIBUTE, Arrival, Lane
from quitclaim.observability import audited, logger, metrics, tracer
from quitclaim.usecases.admit_uploads import Routing
from quitclaim.usecases.uploads import ScanRequest

# Validated at cold start: a container outside the EU refuses to run at all.
get_settings()
processor = ReasonedBatchProcessor(event_type=EventType.SQS)


@audited("sqs")
def record_handler(record: SQSRecord) -> None:
    """Scan every upload one message names; raising returns the message."""
    service = scan_asset_service()
    for ref in uploads_from_message(record.body):
        result = service(ScanRequest(ref.bucket, ref.key, ref.version_id, ref.etag))
        logger.debug("scanned", asset_id=result.asset_id, duplicate=result.duplicate)


def _arrival(record: dict[str, Any]) -> Arrival:
    lane = (record.get("messageAttributes") or {}).get(LANE_ATTRIBUTE) or {}
    on_bulk = lane.get("stringValue") == Lane.BULK.value
    return Arrival(record["messageId"], record["body"], Lane.BULK if on_bulk else Lane.MAIN)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@audited("invocation")
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    records = event["Records"]
    admission = admission_service()
    if admission is None:
        routing = Routing(scan=tuple(r["messageId"] for r in records))
    else:
        routing = admission.route([_arrival(r) for r in records])
    failures = [PartialItemFailures(itemIdentifier=i) for i in routing.failed]
    keep = set(routing.scan)
    scan = [r for r in records if r["messageId"] in keep]
    if scan:
        try:
            response = process_partial_response(
                event={**event, "Records": scan},
                record_handler=record_handler,
                processor=processor,
                context=context,
            )
        except BatchProcessingError:
            if not routing.forwarded:
                raise  # every message failed: a function error, as before admission
            # The forwarded ones are safe on the bulk lane: return only the scans.
            response = PartialItemFailureResponse(
                batchItemFailures=[PartialItemFailures(itemIdentifier=i) for i in routing.scan]
            )
        failures.extend(response["batchItemFailures"])
    return {"batchItemFailures": failures}
