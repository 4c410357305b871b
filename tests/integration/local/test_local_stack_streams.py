"""DynamoDB streams reach their functions as Lambda delivers them: filters, batches, retries."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from devstack.stack import LocalStack
from tests.integration.local.conftest import Recorder, depth

pytestmark = pytest.mark.integration

RECHECK = "RecheckFunction"
LAMBDA_STREAM_RECORD_KEYS = {
    "eventID",
    "eventName",
    "eventVersion",
    "eventSource",
    "awsRegion",
    "dynamodb",
    "eventSourceARN",
}


def _consent(stack: LocalStack, sk: str, **extra: dict[str, Any]) -> None:
    stack.client("dynamodb").put_item(
        TableName=stack.resources["ConsentsTable"],
        Item={"pk": {"S": "tenant#subject"}, "sk": {"S": sk}, **extra},
    )


def _sequences(event: dict[str, Any]) -> list[str]:
    return [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]


def _sks(event: dict[str, Any]) -> list[str]:
    return [r["dynamodb"]["Keys"]["sk"]["S"] for r in event["Records"]]


def test_consent_changes_reach_recheck_as_lambda_stream_records(quiet_stack: LocalStack) -> None:
    stack = quiet_stack
    recorder = Recorder()
    stack.runtime.override_handler(RECHECK, recorder)
    # Given a consent written, then changed
    _consent(stack, "consent#1", status={"S": "granted"}, blob={"B": b"\x00\x01"})
    _consent(stack, "consent#1", status={"S": "revoked"})
    # When the stack drains
    report = stack.drain(timeout_s=10)
    # Then the recheck function got both records in one batch, shaped as Lambda's
    [call] = recorder.calls
    inserted, modified = call.event["Records"]
    table = stack.client("dynamodb").describe_table(TableName=stack.resources["ConsentsTable"])
    stream_arn = table["Table"]["LatestStreamArn"]
    for record in (inserted, modified):
        assert set(record) == LAMBDA_STREAM_RECORD_KEYS  # no userIdentity on a user's write
        assert record["eventSource"] == "aws:dynamodb"
        assert record["awsRegion"] == stack.region == "eu-central-1"  # not moto's us-east-1
        assert record["eventSourceARN"] == stream_arn
        assert record["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert record["dynamodb"]["Keys"] == {
            "pk": {"S": "tenant#subject"},
            "sk": {"S": "consent#1"},
        }
        assert re.fullmatch(r"\d+", record["dynamodb"]["SequenceNumber"])
        assert isinstance(record["dynamodb"]["SizeBytes"], int)
        assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], int)
    assert (inserted["eventName"], modified["eventName"]) == ("INSERT", "MODIFY")
    assert "OldImage" not in inserted["dynamodb"]
    # Binary attributes arrive base64-encoded, as in Lambda's JSON event
    assert inserted["dynamodb"]["NewImage"]["blob"] == {"B": "AAE="}
    assert modified["dynamodb"]["OldImage"]["status"] == {"S": "granted"}
    assert modified["dynamodb"]["NewImage"]["status"] == {"S": "revoked"}
    assert call.context.function_name == stack.resources[RECHECK]
    assert call.env["AWS_LAMBDA_FUNCTION_NAME"] == stack.resources[RECHECK]
    assert (report.invocations, report.stream_records) == (1, 2)
    # And a second drain delivers nothing again: the shard is checkpointed
    assert not stack.drain(timeout_s=10).stream_records


def test_filter_criteria_drop_records_that_do_not_match(quiet_stack: LocalStack) -> None:
    stack = quiet_stack
    recorder = Recorder()
    stack.runtime.override_handler(RECHECK, recorder)
    # Given an insert and a delete ({"eventName": ["INSERT", "MODIFY"]} on the mapping)
    _consent(stack, "consent#gone")
    stack.client("dynamodb").delete_item(
        TableName=stack.resources["ConsentsTable"],
        Key={"pk": {"S": "tenant#subject"}, "sk": {"S": "consent#gone"}},
    )
    _consent(stack, "consent#kept")
    # When drained
    report = stack.drain(timeout_s=10)
    # Then only the inserts were delivered; the REMOVE was skipped and checkpointed
    assert [r["eventName"] for r in recorder.records] == ["INSERT", "INSERT"]
    assert report.filtered == 1
    assert not stack.drain(timeout_s=10)


def test_a_batch_item_failure_retries_from_that_record(quiet_stack: LocalStack) -> None:
    stack = quiet_stack

    # Given a handler that reports the second record of its first batch as failed
    def respond(event: dict[str, Any], call: int) -> Any:
        if call == 1:
            return {"batchItemFailures": [{"itemIdentifier": _sequences(event)[1]}]}
        return {"batchItemFailures": []}

    recorder = Recorder(respond)
    stack.runtime.override_handler(RECHECK, recorder)
    for sk in ("a", "b", "c"):
        _consent(stack, sk)
    # When drained
    stack.drain(timeout_s=10)
    # Then the retry started at the failed record: "a" was done, "b" and "c" came again
    assert [_sks(call.event) for call in recorder.calls] == [["a", "b", "c"], ["b", "c"]]


def test_an_invalid_item_identifier_fails_the_whole_batch(quiet_stack: LocalStack) -> None:
    stack = quiet_stack

    def respond(event: dict[str, Any], call: int) -> Any:
        return {"batchItemFailures": [{"itemIdentifier": "nope"}]} if call == 1 else None

    recorder = Recorder(respond)
    stack.runtime.override_handler(RECHECK, recorder)
    _consent(stack, "a")
    _consent(stack, "b")
    report = stack.drain(timeout_s=10)
    # Bisected on the error (BisectBatchOnFunctionError), then each half succeeds
    assert [_sks(call.event) for call in recorder.calls] == [["a", "b"], ["a"], ["b"]]
    assert "invalid batchItemFailures" in report.errors[0]


def test_a_poison_record_is_isolated_retried_then_sent_to_the_on_failure_queue(
    quiet_stack: LocalStack,
) -> None:
    stack = quiet_stack

    # Given four consent changes, the third of which always fails the handler
    def respond(event: dict[str, Any], call: int) -> Any:
        if "poison" in _sks(event):
            raise RuntimeError("cannot recheck")
        return None

    recorder = Recorder(respond)
    stack.runtime.override_handler(RECHECK, recorder)
    for sk in ("ok-1", "ok-2", "poison", "ok-3"):
        _consent(stack, sk)
    # When drained
    report = stack.drain(timeout_s=20)
    # Then the batch was split in halves until the poison was alone (splits use no
    # retries), which was tried 1 + MaximumRetryAttempts (5) times, then given up
    assert [_sks(call.event) for call in recorder.calls] == [
        ["ok-1", "ok-2", "poison", "ok-3"],
        ["ok-1", "ok-2"],
        ["poison", "ok-3"],
        *[["poison"]] * 6,
        ["ok-3"],
    ]
    assert report.discarded == 1
    # And Lambda's invocation record for it is on the RecheckDeadLetterQueue
    assert depth(stack, "RecheckDeadLetterQueueUrl") == 1
    [message] = stack.client("sqs").receive_message(
        QueueUrl=stack.outputs["RecheckDeadLetterQueueUrl"]
    )["Messages"]
    failure = json.loads(message["Body"])
    poison = recorder.calls[3].event["Records"][0]
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 6
    assert failure["requestContext"]["functionArn"] == stack.runtime.functions[RECHECK].arn
    assert failure["responseContext"]["functionError"] == "Unhandled"
    info = failure["DDBStreamBatchInfo"]
    assert info["startSequenceNumber"] == info["endSequenceNumber"]
    assert info["startSequenceNumber"] == poison["dynamodb"]["SequenceNumber"]
    assert (info["batchSize"], info["streamArn"]) == (1, poison["eventSourceARN"])
    # And the shard moved on: nothing more to deliver
    assert not stack.drain(timeout_s=10).stream_records


def test_a_latest_mapping_starts_after_what_is_already_in_the_stream(
    quiet_stack: LocalStack,
) -> None:
    stack = quiet_stack
    # Given a record already in the subjects stream
    dynamodb = stack.client("dynamodb")
    subjects = stack.resources["SubjectsTable"]
    dynamodb.put_item(TableName=subjects, Item={"tenant": {"S": "t"}, "subject_id": {"S": "old"}})
    stream_arn = dynamodb.describe_table(TableName=subjects)["Table"]["LatestStreamArn"]
    # When a mapping starting at LATEST is added and the runtime re-reads its mappings
    stack.client("lambda").create_event_source_mapping(
        EventSourceArn=stream_arn,
        FunctionName=stack.resources["RemindersFunction"],
        StartingPosition="LATEST",
        BatchSize=1,
    )
    stack.runtime.refresh()
    recorder = Recorder()
    stack.runtime.override_handler("RemindersFunction", recorder)
    dynamodb.put_item(TableName=subjects, Item={"tenant": {"S": "t"}, "subject_id": {"S": "new"}})
    stack.drain(timeout_s=10)
    # Then only the later record reached it
    assert [r["dynamodb"]["Keys"]["subject_id"]["S"] for r in recorder.records] == ["new"]
