"""The emulator's gaps, re-checked: each fill happened because the gap is still there.

If a moto upgrade closes a gap, a test here fails: update ``quitclaim.local.gaps``.
"""

from __future__ import annotations

import pytest

from quitclaim.local import gaps
from quitclaim.local.stack import LocalStack
from tests.integration.local.conftest import depth

pytestmark = pytest.mark.integration


def test_the_gap_fills_that_ran_are_the_documented_ones(stack: LocalStack) -> None:
    # Given a fresh stack, Then each documented post-deploy gap was found and filled
    per_stack = [
        "detached moto's own delivery from 1 event source(s)",
        "notification configuration of UploadsBucket",
        "versioning Enabled on UploadsBucket",
        "versioning Enabled on LibraryBucket",
        "versioning Enabled on QuarantineBucket",
        "versioning Enabled on DocumentsBucket",
        "time to live on ConsentsTable.ttl",
    ]
    # The S3 event fill wraps moto once per process: only the first stack reports it.
    once = "S3 event records carry versionId and sequencer"
    assert [f for f in stack.gaps.filled if f != once] == per_stack
    from moto.s3 import notifications

    assert getattr(notifications._get_s3_event, "_quitclaim_completed", False)
    # And the resource types moto skips are recorded, not silently lost
    assert stack.gaps.skipped_resources == {"IngestQueuePolicy": "AWS::SQS::QueuePolicy"}


def test_moto_does_not_consume_messages_after_the_pollers_are_detached(
    stack: LocalStack,
) -> None:
    # Given the deployed stack and its s3:TestEvent in the queue
    sqs = stack.client("sqs")
    queue = stack.outputs["IngestQueueUrl"]
    # When more messages arrive (moto would push each send to Lambda itself)
    sqs.send_message(QueueUrl=queue, MessageBody="x")
    # Then nobody received any of them yet
    messages = sqs.receive_message(
        QueueUrl=queue, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )["Messages"]
    assert len(messages) == 2
    assert {m["Attributes"]["ApproximateReceiveCount"] for m in messages} == {"1"}
    assert depth(stack, "IngestDeadLetterQueueUrl") == 0


def test_stream_records_say_us_east_1_and_the_fill_corrects_them(stack: LocalStack) -> None:
    # Given a write to the consents table (its stream has both images)
    dynamodb, streams = stack.client("dynamodb"), stack.client("dynamodbstreams")
    table = stack.resources["ConsentsTable"]
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "t#s"}, "sk": {"S": "consent#1"}})
    arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    [shard] = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    # When its stream record is read
    [record] = streams.get_records(ShardIterator=iterator)["Records"]
    # Then moto names the wrong region (the gap), and the fill gives Lambda's record
    assert record["awsRegion"] == "us-east-1" != stack.region
    fixed = gaps.lambda_stream_record(record, stack.region, arn)
    assert (fixed["awsRegion"], fixed["eventSourceARN"]) == (stack.region, arn)
    assert fixed["dynamodb"] == record["dynamodb"]
