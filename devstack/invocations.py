"""What the local runtime runs and reports: a deployed function, its event source
mappings, the context object a handler receives, and a run's report."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Without ScalingConfig, Lambda scales an SQS mapping up to this many
# concurrent invocations (the account's concurrency permitting).
DEFAULT_SQS_CONCURRENCY = 1250


@dataclass(frozen=True)
class FunctionSpec:
    """A deployed function and where its code lives in the working tree."""

    logical_id: str
    name: str
    arn: str
    handler: str  # "app.handler"
    code_dir: Path | None  # None: no local directory (only an override can run it)
    runtime: str
    memory_mb: int
    timeout_s: int
    environment: dict[str, str]  # the function's full environment while it runs

    @property
    def module_file(self) -> Path | None:
        if self.code_dir is None:
            return None
        parts = self.handler.rsplit(".", 1)[0].split(".")
        as_file = self.code_dir.joinpath(*parts).with_suffix(".py")
        return as_file if as_file.exists() else self.code_dir.joinpath(*parts, "__init__.py")


@dataclass(frozen=True)
class QueueMapping:
    """An enabled-or-not SQS event source mapping, as the emulator lists it."""

    uuid: str
    function: str  # logical id
    queue_arn: str
    queue_url: str
    batch_size: int
    report_batch_item_failures: bool
    enabled: bool
    dead_letter_queue_url: str | None
    max_receive_count: int | None
    maximum_concurrency: int | None = None  # ScalingConfig; None: Lambda's default

    @property
    def weight(self) -> int:
        """Turns in ``step``'s round-robin: the batches Lambda may run at once."""
        return self.maximum_concurrency or DEFAULT_SQS_CONCURRENCY


@dataclass(frozen=True)
class StreamMapping:
    """A DynamoDB stream event source mapping, as the emulator lists it."""

    uuid: str
    function: str  # logical id
    stream_arn: str
    table_name: str
    batch_size: int
    starting_position: str  # TRIM_HORIZON | LATEST
    report_batch_item_failures: bool
    enabled: bool
    maximum_retry_attempts: int  # -1: until the record expires (here: forever)
    bisect_on_error: bool
    on_failure_arn: str | None
    on_failure_url: str | None
    filters: tuple[dict[str, Any], ...]  # parsed FilterCriteria patterns; () = everything


@dataclass
class ShardCheckpoint:
    """Where a mapping stands in one shard."""

    position: int  # sequence number of the next record to consider
    iterator: str | None = None  # continues from `position` while nothing is retried
    segments: list[int] = field(default_factory=list)  # batch sizes pending after a split
    attempts: int = 0  # retries used by the batch that starts at `position`


@dataclass
class RunReport:
    """What one poll or a drain did."""

    invocations: int = 0
    messages: int = 0  # SQS records delivered, redeliveries included
    succeeded: int = 0  # deleted after a successful invocation
    failures: int = 0  # returned to their queue
    dead_lettered: int = 0  # moved to a DLQ during this run
    stream_records: int = 0  # stream records delivered, retries included
    filtered: int = 0  # stream records no FilterCriteria matched (checkpointed, not delivered)
    discarded: int = 0  # stream records given up after MaximumRetryAttempts
    errors: list[str] = field(default_factory=list)  # one line per failed invocation

    def __bool__(self) -> bool:
        """True when anything happened (``if not runtime.poll_once(): sleep``)."""
        return bool(
            self.invocations
            or self.messages
            or self.dead_lettered
            or self.stream_records
            or self.filtered
            or self.discarded
        )

    def add(self, other: RunReport) -> None:
        self.invocations += other.invocations
        self.messages += other.messages
        self.succeeded += other.succeeded
        self.failures += other.failures
        self.dead_lettered += other.dead_lettered
        self.stream_records += other.stream_records
        self.filtered += other.filtered
        self.discarded += other.discarded
        self.errors.extend(other.errors)


class DrainTimeout(TimeoutError):
    """Queues were still not empty at the deadline; ``report`` holds what was done."""

    def __init__(self, message: str, report: RunReport) -> None:
        super().__init__(message)
        self.report = report


class LambdaContext:
    """The attributes and method of the Python runtime's context object.

    As in the real runtime, ``memory_limit_in_mb`` is a string (it comes from
    ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``).
    """

    def __init__(self, spec: FunctionSpec, request_id: str | None = None) -> None:
        self.function_name = spec.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = spec.arn
        self.memory_limit_in_mb = str(spec.memory_mb)
        self.aws_request_id = request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{spec.name}"
        self.log_stream_name = spec.environment["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + spec.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class InvocationError(RuntimeError):
    """A function could not be run at all (no local code, import failed...)."""
