"""The admission counter and the bulk lane against the local stack's DynamoDB and SQS."""

from __future__ import annotations

import json
from typing import Any

import pytest

from quitclaim.adapters.admission import DynamoAdmissionCounter, SqsBulkLane
from quitclaim.domain.errors import DependencyFailed
from quitclaim.usecases.admit_uploads import LANE_ATTRIBUTE, Arrival
from tests.integration.faults import failing_calls

pytestmark = pytest.mark.integration


def test_the_counter_adds_atomically_per_tenant_and_window_and_sets_the_ttl(
    local_stack: Any,
) -> None:
    dynamodb = local_stack.client("dynamodb")
    table = local_stack.resources["AdmissionTable"]
    counter = DynamoAdmissionCounter(dynamodb, table)
    # When two batches of one tenant and one of another are counted in one window
    assert counter.add("int-adm-a", 7, 5, 900) == 5
    assert counter.add("int-adm-a", 7, 3, 900) == 8
    assert counter.add("int-adm-b", 7, 2, 900) == 2
    # Then a new window starts at zero, and each item carries its expiry
    assert counter.add("int-adm-a", 8, 1, 960) == 1
    item = dynamodb.get_item(
        TableName=table, Key={"tenant": {"S": "int-adm-a"}, "window": {"N": "7"}}
    )
    assert item["Item"]["expires"] == {"N": "900"}
    # And a failing table is a DependencyFailed, not a count
    with (
        failing_calls("dynamodb", "UpdateItem", "ProvisionedThroughputExceededException"),
        pytest.raises(DependencyFailed),
    ):
        counter.add("int-adm-a", 7, 1, 900)


def test_the_bulk_lane_forwards_bodies_unchanged_with_the_lane_attribute(
    local_stack: Any,
) -> None:
    sqs = local_stack.client("sqs")
    url = local_stack.outputs["BulkQueueUrl"]
    lane = SqsBulkLane(sqs, url)
    bodies = [json.dumps({"Records": [{"n": i}]}) for i in range(12)]  # two batches of <= 10
    # When twelve messages are forwarded, then one more while SQS refuses
    assert lane.forward([Arrival(f"m{i}", b) for i, b in enumerate(bodies)]) == set()
    with failing_calls("sqs", "SendMessageBatch", "ServiceUnavailable"):
        assert lane.forward([Arrival("late", "{}")]) == {"late"}
    # Then the queue holds exactly the twelve bodies, each marked for the bulk lane
    got: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", []):
        got.extend(batch)
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
            ],
        )
    assert sorted(m["Body"] for m in got) == sorted(bodies)
    assert {m["MessageAttributes"][LANE_ATTRIBUTE]["StringValue"] for m in got} == {"bulk"}
