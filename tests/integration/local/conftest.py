"""Fixtures for the local stack's own tests: a fresh, isolated stack per test.

Each test gets its own stack name and Stage (bucket names derive from it), so
these tests share the process's emulator with the session ``local_stack``
without seeing its resources, and never run the real handlers: a
``Recorder`` stands in for the ingest function.
"""

from __future__ import annotations

import copy
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from devstack.stack import LocalStack

INGEST = "IngestFunction"
# What a handler sees of the environment (checked by the shape tests).
WATCHED_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_LAMBDA_FUNCTION_NAME",
    "QC_UPLOADS_BUCKET",
    "QC_ASSETS_TABLE",
)


@dataclass
class Call:
    event: dict[str, Any]
    context: Any
    env: dict[str, str | None]

    @property
    def bodies(self) -> list[str]:
        return [r["body"] for r in self.event["Records"]]


class Recorder:
    """A fake handler: records each call, then answers with ``respond(event, call_number)``."""

    def __init__(self, respond: Callable[[dict[str, Any], int], Any] | None = None) -> None:
        self.calls: list[Call] = []
        self.respond = respond or (lambda event, n: None)

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        env = {name: os.environ.get(name) for name in WATCHED_ENV}
        self.calls.append(Call(copy.deepcopy(event), context, env))
        return self.respond(event, len(self.calls))

    @property
    def records(self) -> list[dict[str, Any]]:
        return [r for call in self.calls for r in call.event["Records"]]


def fresh_stack(**kwargs: Any) -> LocalStack:
    """A started stack with a unique name and Stage (no control server unless asked)."""
    tag = f"t{uuid.uuid4().hex[:8]}"
    kwargs.setdefault("stack_name", f"qc-{tag}")
    kwargs.setdefault("parameters", {"Stage": tag})
    # A control file in the working directory would point `quitclaim local tick`
    # at a test's stack instead of a developer's `local up`.
    kwargs.setdefault("control", False)
    return LocalStack(**kwargs).start()


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    """A freshly deployed stack; its s3:TestEvent is still in the ingest queue."""
    started = fresh_stack()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def quiet_stack(stack: LocalStack) -> LocalStack:
    """The stack with its initial s3:TestEvent delivered and no override left."""
    recorder = Recorder()
    stack.runtime.override_handler(INGEST, recorder)
    stack.drain(timeout_s=10)
    stack.runtime.clear_overrides()
    assert [r["body"] for r in recorder.records if "s3:TestEvent" in r["body"]], recorder.records
    return stack


def send(stack: LocalStack, *bodies: str, **kwargs: Any) -> list[str]:
    """Send messages to the ingest queue; their message ids."""
    sqs = stack.client("sqs")
    queue = stack.outputs["IngestQueueUrl"]
    return [
        sqs.send_message(QueueUrl=queue, MessageBody=body, **kwargs)["MessageId"] for body in bodies
    ]


def depth(stack: LocalStack, output: str) -> int:
    """Messages visible, in flight or delayed in the queue named by a stack output."""
    return stack.runtime.queue_depth(stack.outputs[output])
