"""One factory builds every queue and stream handler: audit blocks, partial batch, reasons."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest

from quitclaim import observability
from quitclaim.domain.errors import DependencyFailed
from quitclaim.edges.batch import batch_handler

CONTEXT = SimpleNamespace(
    function_name="worker",
    memory_limit_in_mb=1024,
    invoked_function_arn="arn:aws:lambda:eu-central-1:123456789012:function:worker",
    aws_request_id="req-1",
    get_remaining_time_in_millis=lambda: 60_000,
)


def _message(n: int) -> dict[str, Any]:
    return {
        "messageId": f"m-{n}",
        "receiptHandle": "r",
        "body": f'{{"n": {n}}}',
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-central-1:123456789012:q",
        "awsRegion": "eu-central-1",
    }


@pytest.fixture
def chained(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str]]]:
    blocks: list[tuple[str, list[str]]] = []

    def sink(block_id: str, events: Sequence[Mapping[str, Any]]) -> None:
        blocks.append((block_id, [str(e["asset_id"]) for e in events]))

    monkeypatch.setattr(observability, "_sink", sink)
    return blocks


def _work(record: Any) -> None:
    observability.audit("worked", tenant="acme", asset_id=record.message_id)
    if record.message_id == "m-1":
        raise DependencyFailed("the store is down")


def test_each_record_is_its_own_audit_block_and_a_failed_one_comes_back(
    chained: list[tuple[str, list[str]]], caplog: pytest.LogCaptureFixture
) -> None:
    # Given a queue handler built by the factory, whose record m-1 fails
    handler = batch_handler("sqs", _work)
    # When a batch of three arrives
    with caplog.at_level(logging.ERROR):
        response = handler({"Records": [_message(n) for n in range(3)]}, CONTEXT)
    # Then only m-1 returns to the queue, its reason logged by code
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert [getattr(r, "reason", None) for r in caplog.records] == ["dependency_failed"]
    # And each record's events went to the chain as the block its message id names
    assert ("sqs/m-0", ["m-0"]) in chained and ("sqs/m-2", ["m-2"]) in chained
    assert ("sqs/m-1~failed", ["m-1"]) in chained


def test_around_wraps_the_batch_and_otherwise_answers_a_schedule(
    chained: list[tuple[str, list[str]]],
) -> None:
    seen: list[str] = []

    @contextmanager
    def around(records: list[dict[str, Any]], context: Any) -> Iterator[None]:
        seen.append(f"before {len(records)}")
        yield
        seen.append("after")

    # Given a handler with work around its batch and an answer for schedules
    handler = batch_handler(
        "sqs", lambda record: seen.append(record.message_id), around=around,
        otherwise=lambda event, context: {"kind": event["kind"]},
    )  # fmt: skip
    # When a batch and then a scheduled invocation arrive
    handler({"Records": [_message(0)]}, CONTEXT)
    answer = handler({"kind": "sweep"}, CONTEXT)
    # Then the batch ran inside its wrapper, and the schedule got its own answer
    assert seen == ["before 1", "m-0", "after"]
    assert answer == {"kind": "sweep"}
    # And a handler without one refuses an invocation that has no records
    with pytest.raises(ValueError):
        batch_handler("stream", _work)({"kind": "sweep"}, CONTEXT)
