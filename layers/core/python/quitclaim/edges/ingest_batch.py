"""The ingest function's batch: lanes first (admission), then a scan per upload.

The use-cases are imported when a batch arrives, not with the handler: a cold
start pays for them once, inside its first invocation (`make bench`: handler_init).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from quitclaim.edges.batch import processor, settle
from quitclaim.edges.s3_events import uploads_from_message
from quitclaim.observability import audited, lambda_handler, logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch import BatchProcessor
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from quitclaim.usecases.admit_uploads import Admission, Routing
    from quitclaim.usecases.scan_asset import ScanAsset

IngestHandler = Callable[[dict[str, Any], "LambdaContext"], "PartialItemFailureResponse"]


def scan_uploads(service: ScanAsset, body: str) -> None:
    """Scan every upload one message names; raising returns the message."""
    from quitclaim.usecases.uploads import ScanRequest

    for ref in uploads_from_message(body):
        result = service(ScanRequest(ref.bucket, ref.key, ref.version_id, ref.etag))
        logger.debug("scanned", asset_id=result.asset_id, duplicate=result.duplicate)


def route(admission: Admission | None, records: list[dict[str, Any]]) -> Routing:
    """Each message's lane; without a bulk lane (``None``) every message is scanned here."""
    from quitclaim.domain.ports import LANE_ATTRIBUTE, Arrival, Lane
    from quitclaim.usecases.admit_uploads import Routing

    if admission is None:
        return Routing(scan=tuple(r["messageId"] for r in records))
    arrivals = []
    for r in records:
        lane = (r.get("messageAttributes") or {}).get(LANE_ATTRIBUTE) or {}
        on_bulk = lane.get("stringValue") == Lane.BULK.value
        arrivals.append(Arrival(r["messageId"], r["body"], Lane.BULK if on_bulk else Lane.MAIN))
    return admission.route(arrivals)


def ingest_handler(
    record_handler: Callable[[Any], None], admission: Callable[[], Admission | None]
) -> IngestHandler:
    """The handler: forwards acknowledged, failed sends and failed scans returned."""
    per_record = audited("sqs")(record_handler)
    made: list[BatchProcessor] = []  # one per container, at its first batch

    @lambda_handler
    def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
        from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
        from aws_lambda_powertools.utilities.batch.types import PartialItemFailures

        if not made:
            made.append(processor("sqs"))
        records = event["Records"]
        routing = route(admission(), records)
        failures = [PartialItemFailures(itemIdentifier=i) for i in routing.failed]
        keep = set(routing.scan)
        scan = [r for r in records if r["messageId"] in keep]
        if scan:
            try:
                response = settle({**event, "Records": scan}, per_record, made[0], context)
            except BatchProcessingError:
                if not routing.forwarded:
                    raise  # every message failed: a function error, as before admission
                # The forwarded ones are safe on the bulk lane: return only the scans.
                response = {
                    "batchItemFailures": [
                        PartialItemFailures(itemIdentifier=i) for i in routing.scan
                    ]
                }
            failures.extend(response["batchItemFailures"])
        return {"batchItemFailures": failures}

    return handler
