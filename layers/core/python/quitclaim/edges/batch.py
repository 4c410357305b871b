"""Queue and stream handlers: Powertools' partial batch, the reason each message failed.

``batch_handler`` builds a function's ``handler`` (see there).

SQS moves a message to its dead-letter queue after ``maxReceiveCount``
receives and adds nothing to say why; Lambda's stream poller does the same
for its OnFailure record. So every failed attempt is logged here, at error
level, keyed by what the operator sees in the dead-letter queue (the SQS
``messageId``, which the redrive keeps, or the stream record's sequence
number), with a short code: the ``QuitclaimError`` code, else the
exception's class name. Never the body or the exception's text: either may
carry a name.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.base import FailureResponse
from aws_lambda_powertools.utilities.batch.exceptions import ExceptionInfo
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from quitclaim.domain.errors import QuitclaimError
from quitclaim.observability import audited, count, lambda_handler, logger


def failure_reason(error: BaseException | None) -> str:
    """A code an operator can read and search for; no message text."""
    if isinstance(error, QuitclaimError):
        return error.code
    return type(error).__name__ if error is not None else "unknown"


class ReasonedBatchProcessor(BatchProcessor):
    """``BatchProcessor`` that logs why each record failed (see the module docstring)."""

    def failure_handler(self, record: Any, exception: ExceptionInfo) -> FailureResponse:
        raw = record.raw_event if hasattr(record, "raw_event") else record
        attributes = raw.get("attributes") or {}
        logger.error(
            "message failed; it returns to its source and is dead-lettered after its last try",
            message_id=raw.get("messageId") or (raw.get("dynamodb") or {}).get("SequenceNumber"),
            event_source=raw.get("eventSource") or raw.get("eventSourceARN"),
            receive_count=attributes.get("ApproximateReceiveCount"),
            reason=failure_reason(exception[1]),
        )
        count("MessagesFailed")
        return super().failure_handler(record, exception)


# ---------------------------------------------------------------- the handler factory

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]
# What names a record's audit block: the SQS message id, the stream record's event id.
_WORK_ITEMS = {EventType.SQS: "sqs", EventType.DynamoDBStreams: "stream"}


def settle(
    event: dict[str, Any],
    record_handler: Callable[[Any], None],
    processor: BatchProcessor,
    context: LambdaContext,
) -> PartialItemFailureResponse:
    """Each record through ``record_handler``; the failed ones come back (partial batch)."""
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )


def batch_handler(
    event_type: EventType,
    record_handler: Callable[[Any], None],
    *,
    around: Callable[[list[dict[str, Any]], LambdaContext], AbstractContextManager[object]]
    | None = None,
    otherwise: Handler | None = None,
) -> Handler:
    """A queue or stream function's ``handler``: each record its own audit block.

    ``around`` wraps the batch (work done for all records at once, settled per
    record); ``otherwise`` answers an invocation that carries no records (a
    schedule's), which without it is refused.
    """
    processor = ReasonedBatchProcessor(event_type=event_type)
    per_record = audited(_WORK_ITEMS[event_type])(record_handler)

    @lambda_handler
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        if "Records" not in event:
            if otherwise is None:
                raise ValueError("an invocation without records")
            return otherwise(event, context)
        with around(event["Records"], context) if around else nullcontext():
            return dict(settle(event, per_record, processor, context))

    return handler
