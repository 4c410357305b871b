"""The outbox's batched send (a recheck's chunk of events) delivers each event once, whole.

Real boto3 against the local emulator's SQS.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from quitclaim.adapters.events import SqsEventPublisher
from quitclaim.domain.ports import SystemClock

pytestmark = pytest.mark.integration


def test_publish_many_sends_every_event_ten_to_a_request(local_stack: Any) -> None:
    # Given an empty queue and 23 events (three requests: 10, 10, 3)
    sqs = local_stack.client("sqs")
    url = sqs.create_queue(QueueName="outbox-batch-test")["QueueUrl"]
    events = [("asset.withdrawn", "acme", {"asset_id": f"a{n:02d}"}) for n in range(23)]
    # When they are published together
    SqsEventPublisher(sqs, url, SystemClock()).publish_many(events)
    # Then each is on the queue once, typed, with its tenant and payload
    bodies = []
    while True:
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not got:
            break
        for message in got:
            assert message["MessageAttributes"]["type"]["StringValue"] == "asset.withdrawn"
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert sorted(b["data"]["asset_id"] for b in bodies) == [f"a{n:02d}" for n in range(23)]
    assert {b["tenant"] for b in bodies} == {"acme"}
    assert len({b["id"] for b in bodies}) == 23
