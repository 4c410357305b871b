"""Queue and stream handlers: one factory, Powertools' partial batch response.

``batch_handler`` builds a function's ``handler``: each record runs in its own
audit block, a failed one comes back to its queue or stream with its reason
logged (``failures``), the rest are acknowledged. Powertools' batch utility
is imported at the first batch, not with the handler (a cold start's import).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from quitclaim.observability import audited, lambda_handler

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch import BatchProcessor
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.typing import LambdaContext

Handler = Callable[[dict[str, Any], "LambdaContext"], dict[str, Any]]
# The kinds of batch: what names a record's audit block is the same word.
KINDS = ("sqs", "stream")


def processor(kind: str) -> BatchProcessor:
    """A fresh reasoned processor for SQS messages or DynamoDB stream records."""
    from aws_lambda_powertools.utilities.batch import EventType

    from quitclaim.edges.failures import ReasonedBatchProcessor

    event_type = {"sqs": EventType.SQS, "stream": EventType.DynamoDBStreams}[kind]
    return ReasonedBatchProcessor(event_type=event_type)


def settle(
    event: dict[str, Any],
    record_handler: Callable[[Any], None],
    batch: BatchProcessor,
    context: LambdaContext,
) -> PartialItemFailureResponse:
    """Each record through ``record_handler``; the failed ones come back (partial batch)."""
    from aws_lambda_powertools.utilities.batch import process_partial_response

    return process_partial_response(
        event=event, record_handler=record_handler, processor=batch, context=context
    )


def batch_handler(
    kind: str,
    record_handler: Callable[[Any], None],
    *,
    around: Callable[[list[dict[str, Any]], LambdaContext], AbstractContextManager[object]]
    | None = None,
    otherwise: Handler | None = None,
) -> Handler:
    """A queue (``"sqs"``) or stream (``"stream"``) function's ``handler``.

    ``around`` wraps the batch (work done for all records at once, settled per
    record); ``otherwise`` answers an invocation that carries no records (a
    schedule's), which without it is refused.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown batch kind: {kind!r}")
    per_record = audited(kind)(record_handler)
    made: list[BatchProcessor] = []  # one per container, at its first batch

    @lambda_handler
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        if "Records" not in event:
            if otherwise is None:
                raise ValueError("an invocation without records")
            return otherwise(event, context)
        if not made:
            made.append(processor(kind))
        with around(event["Records"], context) if around else nullcontext():
            return dict(settle(event, per_record, made[0], context))

    return handler
