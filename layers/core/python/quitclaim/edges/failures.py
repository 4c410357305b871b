"""Powertools' batch processor, with the reason each message failed on record.

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

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor
from aws_lambda_powertools.utilities.batch.base import FailureResponse
from aws_lambda_powertools.utilities.batch.exceptions import ExceptionInfo

from quitclaim.domain.errors import QuitclaimError
from quitclaim.observability import count, logger


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
