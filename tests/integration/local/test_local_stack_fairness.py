"""The runtime polls its event source mappings fairly, as Lambda polls them side by side."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from devstack.invocations import DrainTimeout
from devstack.stack import LocalStack
from tests.integration.local.conftest import INGEST, Recorder, depth, fresh_stack, send

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lanes_stack() -> Iterator[LocalStack]:
    """One fresh stack for this module (a start-up costs seconds)."""
    started = fresh_stack()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def quiet(lanes_stack: LocalStack) -> Iterator[LocalStack]:
    """The stack with every queue empty, a Recorder as the ingest function."""
    lanes_stack.runtime.override_handler(INGEST, Recorder())
    lanes_stack.drain(timeout_s=10)
    try:
        yield lanes_stack
    finally:
        lanes_stack.runtime.clear_overrides()


def lane_of(stack: LocalStack, event: dict[str, Any]) -> str:
    bulk = stack.outputs["BulkQueueUrl"].rsplit("/", 1)[1]
    return "bulk" if event["Records"][0]["eventSourceARN"].endswith(bulk) else "main"


def fill(stack: LocalStack, main: int, bulk: int) -> None:
    send(stack, *[f"main-{i}" for i in range(main)])
    sqs = stack.client("sqs")
    for i in range(bulk):
        sqs.send_message(QueueUrl=stack.outputs["BulkQueueUrl"], MessageBody=f"bulk-{i}")


def test_one_poll_takes_one_batch_from_each_queue_never_one_queue_first(
    quiet: LocalStack,
) -> None:
    # Given both ingest lanes full, the bulk lane filled last
    stack = quiet
    recorder = Recorder()
    stack.runtime.override_handler(INGEST, recorder)
    fill(stack, main=20, bulk=20)
    # When the runtime polls once
    report = stack.runtime.poll_once()
    # Then each lane got exactly one batch
    assert sorted(lane_of(stack, c.event) for c in recorder.calls) == ["bulk", "main"]
    assert report.invocations == 2


def test_steps_share_turns_in_proportion_to_each_mappings_maximum_concurrency(
    quiet: LocalStack,
) -> None:
    # Given both lanes full: main MaximumConcurrency 10, bulk 2 (the template's defaults)
    stack = quiet
    recorder = Recorder()
    stack.runtime.override_handler(INGEST, recorder)
    fill(stack, main=55, bulk=40)
    # When the runtime steps 12 times, one invocation each
    for _ in range(12):
        assert stack.runtime.step().invocations == 1
    # Then the main lane ran 10 batches and the bulk lane 2, interleaved, not one after the other
    lanes = [lane_of(stack, c.event) for c in recorder.calls]
    assert (lanes.count("main"), lanes.count("bulk")) == (10, 2)
    assert "bulk" in lanes[:7]
    # And a lane left alone keeps its turn: once main is empty, bulk runs every step
    stack.runtime.run_until(lambda: depth(stack, "IngestQueueUrl") == 0)
    before = len(recorder.calls)
    for _ in range(3):
        stack.runtime.step()
    assert [lane_of(stack, c.event) for c in recorder.calls[before:]] == ["bulk"] * 3


def test_run_until_stops_when_nothing_is_left_to_run(quiet: LocalStack) -> None:
    stack = quiet
    stack.runtime.override_handler(INGEST, Recorder())
    send(stack, "only")
    with pytest.raises(DrainTimeout, match="nothing left"):
        stack.runtime.run_until(lambda: False)
    assert depth(stack, "IngestQueueUrl") == 0
