"""Events flow as in AWS: S3 -> SQS -> the function, with Lambda's batch semantics."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import time
from typing import Any
from urllib.parse import unquote_plus

import pytest

from devstack.stack import LocalStack
from tests.integration.local.conftest import INGEST, Recorder, depth, send

pytestmark = pytest.mark.integration

LAMBDA_SQS_RECORD_KEYS = {
    "messageId",
    "receiptHandle",
    "body",
    "attributes",
    "messageAttributes",
    "md5OfBody",
    "eventSource",
    "eventSourceARN",
    "awsRegion",
}


def _queue_arn(stack: LocalStack) -> str:
    arn: str = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.outputs["IngestQueueUrl"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    return arn


def test_the_s3_test_event_reaches_the_handler(stack: LocalStack) -> None:
    # Given a fresh stack (S3 sent a TestEvent when its notification was put)
    recorder = Recorder()
    stack.runtime.override_handler(INGEST, recorder)
    # When the queues are drained
    report = stack.drain(timeout_s=10)
    # Then the handler got exactly that one message, and it was deleted
    [record] = recorder.records
    body = json.loads(record["body"])
    assert body["Event"] == "s3:TestEvent"
    assert body["Bucket"] == stack.outputs["UploadsBucketName"]
    assert (report.invocations, report.succeeded, report.failures) == (1, 1, 0)
    assert depth(stack, "IngestQueueUrl") == 0


def test_a_put_under_incoming_queues_an_s3_event_with_the_key_url_encoded(
    quiet_stack: LocalStack,
) -> None:
    stack = quiet_stack
    s3, sqs = stack.client("s3"), stack.client("sqs")
    bucket = stack.outputs["UploadsBucketName"]
    key = "incoming/tenant-a/summer party+1 été.jpg"
    # When one object is put under incoming/ and one elsewhere
    s3.put_object(Bucket=bucket, Key=key, Body=b"jpeg bytes")
    s3.put_object(Bucket=bucket, Key="elsewhere/x.jpg", Body=b"x")
    # Then exactly one message is queued, carrying the ObjectCreated event
    messages = sqs.receive_message(
        QueueUrl=stack.outputs["IngestQueueUrl"], MaxNumberOfMessages=10
    )["Messages"]
    assert len(messages) == 1
    [event] = json.loads(messages[0]["Body"])["Records"]
    assert event["eventSource"] == "aws:s3"
    assert event["eventName"] == "ObjectCreated:Put"
    assert event["awsRegion"] == stack.region
    assert event["s3"]["bucket"]["name"] == bucket
    assert event["s3"]["object"]["size"] == len(b"jpeg bytes")
    # And its key is URL-encoded: '+' for a space, %2B for '+', %XX for UTF-8
    encoded = event["s3"]["object"]["key"]
    assert " " not in encoded and "summer+party%2B1+%C3%A9t%C3%A9.jpg" in encoded
    assert unquote_plus(encoded) == key


def test_the_runtime_invokes_the_handler_with_a_lambda_sqs_event(
    quiet_stack: LocalStack,
) -> None:
    stack = quiet_stack
    recorder = Recorder()
    stack.runtime.override_handler(INGEST, recorder)
    # Given two messages, one with message attributes
    first, second = (
        send(stack, "one")[0],
        send(
            stack,
            "two",
            MessageAttributes={
                "tenant": {"DataType": "String", "StringValue": "t1"},
                "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
            },
        )[0],
    )
    # When the queues are drained
    report = stack.drain(timeout_s=10)
    # Then one invocation got both, as Lambda's SQS records
    [call] = recorder.calls
    records = {r["messageId"]: r for r in call.event["Records"]}
    assert set(records) == {first, second}
    for record in records.values():
        assert set(record) >= LAMBDA_SQS_RECORD_KEYS
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"] == _queue_arn(stack)
        assert record["awsRegion"] == "eu-central-1"
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
        # First delivery: moto's own poller did not receive it before us
        assert record["attributes"]["ApproximateReceiveCount"] == "1"
        assert re.fullmatch(r"\d{13}", record["attributes"]["SentTimestamp"])
    assert records[first]["messageAttributes"] == {}
    assert records[second]["messageAttributes"] == {
        "tenant": {
            "stringValue": "t1",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        },
        "blob": {
            "binaryValue": "AAE=",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "Binary",
        },
    }
    # And the context is Lambda's
    function_name = stack.resources[INGEST]
    context = call.context
    assert context.function_name == function_name
    assert context.memory_limit_in_mb == "2048"
    assert context.invoked_function_arn.endswith(f":function:{function_name}")
    assert re.fullmatch(r"[0-9a-f-]{36}", context.aws_request_id)
    assert 0 < context.get_remaining_time_in_millis() <= 60_000
    # And the handler ran with the function's environment, pointed at the emulator
    assert call.env["AWS_ENDPOINT_URL"] == stack.endpoint_url
    assert call.env["AWS_REGION"] == call.env["AWS_DEFAULT_REGION"] == "eu-central-1"
    assert call.env["AWS_ACCESS_KEY_ID"] == "testing"
    assert call.env["AWS_LAMBDA_FUNCTION_NAME"] == function_name
    assert call.env["QC_UPLOADS_BUCKET"] == stack.outputs["UploadsBucketName"]
    assert call.env["QC_ASSETS_TABLE"] == stack.resources["AssetsTable"]
    assert (report.invocations, report.messages, report.succeeded) == (1, 2, 2)
    assert depth(stack, "IngestQueueUrl") == 0


def test_batches_are_at_most_the_mappings_batch_size(quiet_stack: LocalStack) -> None:
    stack = quiet_stack
    recorder = Recorder()
    stack.runtime.override_handler(INGEST, recorder)
    # Given twelve queued messages and BatchSize 5
    send(stack, *[f"m{i}" for i in range(12)])
    # When drained
    report = stack.drain(timeout_s=10)
    # Then they came in three batches of at most five, each message once
    assert sorted(len(call.bodies) for call in recorder.calls) == [2, 5, 5]
    assert sorted(r["body"] for r in recorder.records) == sorted(f"m{i}" for i in range(12))
    assert report.invocations == 3 and report.succeeded == 12


def test_one_batch_item_failure_retries_only_that_message(quiet_stack: LocalStack) -> None:
    stack = quiet_stack
    ids = send(stack, "a", "b", "c")
    failing = ids[1]

    # Given a handler that reports message "b" as failed on its first delivery only
    def respond(event: dict[str, Any], call: int) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": failing}] if call == 1 else []}

    recorder = Recorder(respond)
    stack.runtime.override_handler(INGEST, recorder)
    # When the queues are drained
    report = stack.drain(timeout_s=10)
    # Then the first batch had all three, and only "b" came back, on its second receive
    assert [sorted(call.bodies) for call in recorder.calls] == [["a", "b", "c"], ["b"]]
    [retried] = recorder.calls[1].event["Records"]
    assert retried["messageId"] == failing
    assert retried["attributes"]["ApproximateReceiveCount"] == "2"
    assert (report.invocations, report.succeeded, report.failures) == (2, 3, 1)
    assert depth(stack, "IngestQueueUrl") == depth(stack, "IngestDeadLetterQueueUrl") == 0


def test_a_message_that_always_fails_lands_in_the_dlq_after_five_receives(
    quiet_stack: LocalStack,
) -> None:
    stack = quiet_stack
    [poison] = send(stack, "poison")
    # Given a handler that always reports the message as failed
    recorder = Recorder(
        lambda event, n: {
            "batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]
        }
    )
    stack.runtime.override_handler(INGEST, recorder)
    # When the queues are drained
    report = stack.drain(timeout_s=10)
    # Then it was delivered exactly five times (receive counts 1..5) and then dead-lettered
    counts = [r["attributes"]["ApproximateReceiveCount"] for r in recorder.records]
    assert counts == ["1", "2", "3", "4", "5"]
    assert report.dead_lettered == 1 and report.failures == 5
    assert depth(stack, "IngestQueueUrl") == 0
    [dead] = stack.client("sqs").receive_message(
        QueueUrl=stack.outputs["IngestDeadLetterQueueUrl"], MaxNumberOfMessages=10
    )["Messages"]
    assert (dead["MessageId"], dead["Body"]) == (poison, "poison")


def test_a_handler_that_raises_returns_the_whole_batch(quiet_stack: LocalStack) -> None:
    stack = quiet_stack
    send(stack, "a", "b", "c")

    # Given a handler that raises on its first invocation
    def respond(event: dict[str, Any], call: int) -> None:
        if call == 1:
            raise RuntimeError("boom")

    recorder = Recorder(respond)
    stack.runtime.override_handler(INGEST, recorder)
    # When the queues are drained
    report = stack.drain(timeout_s=10)
    # Then all three came back and were delivered again, each on its second receive
    assert [sorted(call.bodies) for call in recorder.calls] == [["a", "b", "c"]] * 2
    second = recorder.calls[1].event["Records"]
    assert {r["attributes"]["ApproximateReceiveCount"] for r in second} == {"2"}
    assert (report.failures, report.succeeded) == (3, 3)
    assert report.errors == ["IngestFunction: RuntimeError: boom"]


@pytest.mark.parametrize(
    "response",
    [
        {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]},
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"id": "wrong key"}]},
        "ok",
    ],
)
def test_a_malformed_response_returns_the_whole_batch(
    quiet_stack: LocalStack, response: Any
) -> None:
    stack = quiet_stack
    send(stack, "a", "b")
    # Given a handler whose first response is malformed
    recorder = Recorder(lambda event, n: response if n == 1 else None)
    stack.runtime.override_handler(INGEST, recorder)
    # When drained, Then both messages came back (as Lambda fails the whole batch)
    report = stack.drain(timeout_s=10)
    assert [sorted(call.bodies) for call in recorder.calls] == [["a", "b"]] * 2
    assert report.failures == 2 and "invalid batchItemFailures" in report.errors[0]


def test_an_invocation_past_the_timeout_returns_the_whole_batch(
    quiet_stack: LocalStack,
) -> None:
    stack = quiet_stack
    runtime = stack.runtime
    # Given a function whose timeout is shorter than its first invocation
    runtime.functions[INGEST] = dataclasses.replace(runtime.functions[INGEST], timeout_s=1)

    def respond(event: dict[str, Any], call: int) -> None:
        if call == 1:
            time.sleep(1.1)

    recorder = Recorder(respond)
    runtime.override_handler(INGEST, recorder)
    send(stack, "slow")
    # When drained, Then the message came back once, as after a Lambda timeout
    report = stack.drain(timeout_s=10)
    assert [call.bodies for call in recorder.calls] == [["slow"], ["slow"]]
    assert report.errors == ["IngestFunction: Task timed out after 1 seconds"]


def test_the_environment_is_the_functions_only_during_the_invocation(
    quiet_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = quiet_stack
    # Given a developer shell with a real-looking profile
    monkeypatch.setenv("AWS_PROFILE", "someones-real-profile")
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    recorder = Recorder()
    stack.runtime.override_handler(INGEST, recorder)
    # When a message is delivered
    send(stack, "x")
    stack.drain(timeout_s=10)
    # Then the handler saw no profile, and the shell's environment is back afterwards
    [call] = recorder.calls
    assert call.env["AWS_PROFILE"] is None
    assert os.environ.get("AWS_PROFILE") == "someones-real-profile"
    assert "AWS_LAMBDA_FUNCTION_NAME" not in os.environ


def test_direct_invoke_returns_the_result_and_raises_the_error(quiet_stack: LocalStack) -> None:
    runtime = quiet_stack.runtime
    # Given a handler that echoes, When invoked directly, Then its result comes back
    runtime.override_handler(
        INGEST, lambda event, context: {"echo": event, "fn": context.function_name}
    )
    result = runtime.invoke(INGEST, {"ping": 1})
    assert result == {"echo": {"ping": 1}, "fn": quiet_stack.resources[INGEST]}

    # And an exception propagates to the caller
    def fail(event: dict[str, Any], context: Any) -> None:
        raise ValueError("nope")

    runtime.override_handler(INGEST, fail)
    with pytest.raises(ValueError, match="nope"):
        runtime.invoke(INGEST, {})
    # And an unknown function is named in the error
    with pytest.raises(KeyError, match="NoSuchFunction"):
        runtime.invoke("NoSuchFunction", {})


def test_observers_see_each_delivered_event(quiet_stack: LocalStack) -> None:
    stack = quiet_stack
    seen: list[tuple[str, list[str]]] = []
    stack.runtime.observers.append(
        lambda fn, event: seen.append((fn, [r["body"] for r in event["Records"]]))
    )
    stack.runtime.override_handler(INGEST, Recorder())
    # When a message is delivered, Then the observer saw the function and the event
    send(stack, "watched")
    stack.drain(timeout_s=10)
    assert seen == [(INGEST, ["watched"])]


def test_poll_once_is_falsy_when_there_is_nothing_to_do(quiet_stack: LocalStack) -> None:
    runtime = quiet_stack.runtime
    runtime.override_handler(INGEST, Recorder())
    # Given an empty queue, Then a poll reports nothing; with a message, something
    assert not runtime.poll_once()
    send(quiet_stack, "x")
    assert runtime.poll_once().succeeded == 1
