"""Why a message failed is logged under the id the dead-letter queue shows, body-free."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch import EventType
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from quitclaim.domain.errors import DependencyFailed
from quitclaim.edges.failures import ReasonedBatchProcessor, failure_reason

SECRET_BODY = '{"name": "Zebedee Quillfeather"'


def _fail(record: Any) -> None:
    if "Zebedee" in str(record.raw_event):
        raise ValueError(f"cannot parse {SECRET_BODY}")
    raise DependencyFailed("DynamoDB consents query failed: Throttling")


def _failing(
    kind: EventType, records: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> list[logging.LogRecord]:
    """Run a batch whose every record fails; the reason lines logged."""
    processor = ReasonedBatchProcessor(event_type=kind)
    with (
        caplog.at_level(logging.INFO),
        pytest.raises(BatchProcessingError),
        processor(records, _fail),
    ):
        processor.process()
    return [r for r in caplog.records if hasattr(r, "reason")]


def test_an_sqs_message_failure_names_its_message_id_and_a_code(
    caplog: pytest.LogCaptureFixture,
) -> None:
    event = {
        "Records": [
            {
                "messageId": "m-1",
                "body": SECRET_BODY,
                "attributes": {"ApproximateReceiveCount": "3"},
                "eventSource": "aws:sqs",
            }
        ]
    }
    [line] = _failing(EventType.SQS, event["Records"], caplog)
    assert (line.message_id, line.receive_count, line.reason) == ("m-1", "3", "ValueError")
    assert "Zebedee" not in caplog.text + str(line.__dict__)


def test_a_stream_record_failure_names_its_sequence_number_and_the_error_code(
    caplog: pytest.LogCaptureFixture,
) -> None:
    event = {
        "Records": [
            {
                "eventSourceARN": "arn:aws:dynamodb:eu-central-1:1:table/t/stream/s",
                "dynamodb": {"SequenceNumber": "42", "NewImage": {"tenant": {"S": "t"}}},
            }
        ]
    }
    [line] = _failing(EventType.DynamoDBStreams, event["Records"], caplog)
    assert (line.message_id, line.reason) == ("42", "dependency_failed")


def test_the_reason_is_a_code_never_the_message() -> None:
    assert failure_reason(DependencyFailed("consents of Zebedee")) == "dependency_failed"
    assert failure_reason(KeyError("Zebedee")) == "KeyError"
    assert failure_reason(None) == "unknown"
