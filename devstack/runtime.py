"""The local Lambda runtime: real handlers, in this process, fed like Lambda feeds them.

It reads the deployed event source mappings from the emulator's Lambda API
(moto's CloudFormation creates them, SQS and DynamoDB stream ones alike),
receives from the mapped queues and reads the mapped table streams, and
calls each function's handler with a Lambda-shaped event and context.

SQS batches are settled as Lambda does with ``ReportBatchItemFailures``:

- a normal return: every message not listed in ``batchItemFailures`` is
  deleted; listed ones return to the queue;
- an exception, a timeout, an unserialisable or malformed response: the
  whole batch returns;
- without ``ReportBatchItemFailures`` the response is ignored.

One deliberate difference: a returned message becomes visible again at
once (visibility 0) instead of after the queue's VisibilityTimeout (360 s),
so tests run in seconds; receive counts and the DLQ after
``maxReceiveCount`` receives are exactly SQS's.

DynamoDB streams are read through the emulator's DynamoDB Streams API, one
checkpoint per mapping and shard (``StartingPosition`` TRIM_HORIZON or
LATEST), as Lambda's stream poller does:

- ``FilterCriteria`` patterns are applied to each Lambda-shaped record
  first; a record no filter matches is skipped and checkpointed, never
  delivered (Lambda's event filtering; see ``filter_matches`` for the
  pattern subset supported);
- up to ``BatchSize`` matching records go to one invocation; on success the
  checkpoint moves past them;
- with ``ReportBatchItemFailures`` the checkpoint moves to the first
  reported ``itemIdentifier`` (a SequenceNumber) and the records from there
  are retried; an unknown identifier fails the whole batch;
- a function error (exception, timeout, bad response) retries the batch;
  with ``BisectBatchOnFunctionError`` it is split in two first (a split
  does not use up a retry, as in AWS);
- after ``MaximumRetryAttempts`` retries (-1: forever) the batch is
  discarded: a JSON invocation record goes to the ``OnFailure`` SQS
  destination, and the shard moves on.

Mappings are polled fairly, as Lambda polls them side by side, never one
queue drained before the next is looked at:

- ``poll_once`` (and ``drain``, which repeats it) takes one batch from every
  enabled queue that has messages, then reads every stream once;
- ``step`` runs exactly one invocation: the next queue with messages in a
  smooth weighted round-robin, each mapping weighted by its
  ``ScalingConfig.MaximumConcurrency`` (Lambda runs up to that many of its
  batches at once, so in any stretch of time a mapping with ceiling 10 gets
  five turns for every one of a mapping with ceiling 2); streams are read
  when no queue has a message. ``run_until`` steps until a condition holds.

Stream retries happen on the next poll, without Lambda's back-off delay.
``MaximumRecordAgeInSeconds``, ``ParallelizationFactor``, batching windows
and tumbling windows are not emulated.

Each function's module is imported once, by file path and under a unique
module name (a warm container). Its environment is the deployed function
configuration's variables (resolved by CloudFormation) plus what Lambda
sets (region, credentials - fake ones -, function name...), with the
emulator as ``AWS_ENDPOINT_URL``; it is applied to ``os.environ`` around
the import and each invocation and restored afterwards, and
``quitclaim.config.reset_settings()`` is called at both ends. One
invocation at a time: ``poll_once``, ``drain`` and ``invoke`` hold
``self.lock`` (re-entrant; share it with anything else that swaps the
process environment).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3

from devstack import gaps
from devstack.deploy import Deployment
from devstack.emulator import FAKE_CREDENTIALS
from quitclaim.bootstrap import current_clock, reset_container
from quitclaim.config import reset_settings

log = logging.getLogger(__name__)

# Without ScalingConfig, Lambda scales an SQS mapping up to this many
# concurrent invocations (the account's concurrency permitting).
DEFAULT_SQS_CONCURRENCY = 1250

Handler = Callable[[dict[str, Any], Any], Any]
# Called with (function logical id, event) before each event-source invocation.
Observer = Callable[[str, dict[str, Any]], None]

# Variables that could point boto3 at a real identity or another endpoint;
# they are removed while a function runs, whatever the developer's shell has.
_UNSAFE_VARIABLES = frozenset(
    {
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SECURITY_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_ROLE_SESSION_NAME",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    }
)


def aws_client_env(endpoint_url: str, region: str) -> dict[str, str]:
    """Environment that makes any AWS SDK talk to the emulator and nothing else."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": FAKE_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIALS["aws_secret_access_key"],
        "AWS_SESSION_TOKEN": FAKE_CREDENTIALS["aws_session_token"],
        # No profiles, no instance metadata: nothing real to fall back on.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


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
class _ShardCheckpoint:
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


# The environment the composition root's cached services were built for.
_LAST_CONTAINER_ENVIRONMENT: dict[str, str] | None = None
# What Lambda sets to tell functions apart. The composition root builds its
# services from settings, which these do not feed, so switching between
# functions of one stack keeps them; rebuilding them on every switch cost
# ~150 ms per invocation (new botocore clients), which a tick that alternates
# the sweep and the reminders pays hundreds of times.
_FUNCTION_IDENTITY = frozenset(
    {
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_EXECUTION_ENV",
        "LAMBDA_TASK_ROOT",
        "_HANDLER",
    }
)


# How many stall timeouts a drain that keeps making progress may last in all.
_DRAIN_CAP_FACTOR = 20


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


class LocalRuntime:
    """Invokes the stack's real handlers in-process from its event source mappings."""

    def __init__(
        self,
        deployment: Deployment,
        endpoint_url: str,
        *,
        gap_report: gaps.GapReport | None = None,
        enforce_timeout: bool = True,
        lock: threading.RLock | None = None,
    ) -> None:
        self.deployment = deployment
        self.endpoint_url = endpoint_url
        self.enforce_timeout = enforce_timeout
        self.lock = lock if lock is not None else threading.RLock()
        self._sqs = deployment.client("sqs")
        self._streams = deployment.client("dynamodbstreams")
        self._overrides: dict[str, Handler] = {}
        self.observers: list[Observer] = []
        self._modules: dict[str, ModuleType] = {}
        self.functions: dict[str, FunctionSpec] = {}
        self.mappings: list[QueueMapping] = []
        self.stream_mappings: list[StreamMapping] = []
        self._checkpoints: dict[tuple[str, str], _ShardCheckpoint] = {}  # (mapping, shard)
        self._shards: dict[str, list[str]] = {}  # stream ARN -> shard ids
        self._queue_depths: dict[str, int] = {}  # as the last poll found them
        self._turns: dict[str, int] = {}  # step's weighted round-robin, per mapping uuid
        self.other_mappings: list[dict[str, Any]] = []  # other sources: not delivered
        if gap_report is not None:
            missing = gaps.missing_event_source_mappings(gap_report)
            if missing:
                raise InvocationError(
                    f"the emulator did not create event source mappings {missing}"
                )
        self.refresh()

    # ------------------------------------------------------------ discovery

    def refresh(self) -> None:
        """Re-read functions and event source mappings from the emulator."""
        lam = self.deployment.client("lambda")
        by_name = {
            physical: logical
            for logical, physical in self.deployment.resources.items()
            if self.deployment.resource_types.get(logical) == "AWS::Lambda::Function"
        }
        functions: dict[str, FunctionSpec] = {}
        for page in lam.get_paginator("list_functions").paginate():
            for config in page["Functions"]:
                # Other stacks may share the emulator: only this stack's functions.
                logical_id = by_name.get(config["FunctionName"])
                if logical_id is not None:
                    functions[logical_id] = self._function_spec(logical_id, config)
        self.functions = functions
        arns = {spec.arn: spec.logical_id for spec in functions.values()}

        mappings: list[QueueMapping] = []
        streams: list[StreamMapping] = []
        others: list[dict[str, Any]] = []
        for page in lam.get_paginator("list_event_source_mappings").paginate():
            for esm in page["EventSourceMappings"]:
                if esm.get("FunctionArn") not in arns:
                    continue  # another stack's mapping
                source = esm.get("EventSourceArn", "")
                if source.startswith("arn:aws:sqs:"):
                    mappings.append(self._queue_mapping(esm, arns))
                elif source.startswith("arn:aws:dynamodb:") and "/stream/" in source:
                    streams.append(self._stream_mapping(esm, arns))
                else:
                    others.append(esm)
        # A mapping added after deploy would otherwise be pushed by moto too.
        gaps.detach_emulator_pollers(self.deployment.account_id, self.deployment.region)
        self.mappings = mappings
        self.stream_mappings = streams
        for mapping in streams:
            self._start_checkpoints(mapping)
        self.other_mappings = others
        for esm in others:
            log.warning(
                "event source %s is not delivered by the local runtime", esm.get("EventSourceArn")
            )

    def _function_spec(self, logical_id: str, config: dict[str, Any]) -> FunctionSpec:
        resource = self.deployment.template["Resources"].get(logical_id, {})
        properties = resource.get("Properties") or {}
        function_globals = (self.deployment.template.get("Globals") or {}).get("Function") or {}
        code_uri = properties.get("CodeUri", function_globals.get("CodeUri"))
        handler = properties.get("Handler", function_globals.get("Handler"))
        if not isinstance(handler, str):
            handler = config.get("Handler", "")
        code_dir = None
        if isinstance(code_uri, str) and not code_uri.startswith("s3://"):
            candidate = (self.deployment.template_dir / code_uri).resolve()
            code_dir = candidate if candidate.is_dir() or not candidate.suffix else None
        name = config["FunctionName"]
        region = self.deployment.region
        environment = {
            # Lambda traces to an X-Ray daemon that does not exist locally.
            "POWERTOOLS_TRACE_DISABLED": "true",
            **((config.get("Environment") or {}).get("Variables") or {}),
        }
        environment.update(
            {
                **aws_client_env(self.endpoint_url, region),
                # What the Lambda service sets (reserved: the function cannot override them).
                "AWS_LAMBDA_FUNCTION_NAME": name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.get("MemorySize", 128)),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": f"local/[$LATEST]{uuid.uuid4().hex}",
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{config.get('Runtime', 'python3')}",
                "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
                "LAMBDA_TASK_ROOT": str(code_dir or ""),
                "_HANDLER": handler,
            }
        )
        return FunctionSpec(
            logical_id=logical_id,
            name=name,
            arn=config["FunctionArn"],
            handler=handler,
            code_dir=code_dir,
            runtime=config.get("Runtime", ""),
            memory_mb=int(config.get("MemorySize", 128)),
            timeout_s=int(config.get("Timeout", 3)),
            environment=environment,
        )

    def _queue_mapping(self, esm: dict[str, Any], arns: dict[str, str]) -> QueueMapping:
        queue_arn = esm["EventSourceArn"]
        queue_url = self._queue_url(queue_arn)
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["RedrivePolicy"]
        )["Attributes"]
        dlq_url = max_receives = None
        if "RedrivePolicy" in attributes:
            redrive = json.loads(attributes["RedrivePolicy"])
            dlq_url = self._queue_url(redrive["deadLetterTargetArn"])
            max_receives = int(redrive["maxReceiveCount"])
        return QueueMapping(
            uuid=esm["UUID"],
            function=arns[esm["FunctionArn"]],
            queue_arn=queue_arn,
            queue_url=queue_url,
            batch_size=int(esm.get("BatchSize") or 10),
            report_batch_item_failures="ReportBatchItemFailures"
            in (esm.get("FunctionResponseTypes") or []),
            enabled=esm.get("State") in ("Enabled", "Enabling", "Updating"),
            dead_letter_queue_url=dlq_url,
            max_receive_count=max_receives,
            maximum_concurrency=(esm.get("ScalingConfig") or {}).get("MaximumConcurrency"),
        )

    def _queue_url(self, queue_arn: str) -> str:
        _, _, _, _, account, name = queue_arn.split(":", 5)
        url: str = self._sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)[
            "QueueUrl"
        ]
        return url

    def _stream_mapping(self, esm: dict[str, Any], arns: dict[str, str]) -> StreamMapping:
        stream_arn = esm["EventSourceArn"]
        on_failure = ((esm.get("DestinationConfig") or {}).get("OnFailure") or {}).get(
            "Destination"
        )
        if on_failure and not on_failure.startswith("arn:aws:sqs:"):
            # SNS, S3 and Kafka destinations exist in AWS; nothing here uses them yet.
            raise InvocationError(
                f"{arns[esm['FunctionArn']]}: OnFailure destination {on_failure} is not an SQS "
                "queue; the local runtime delivers failure records to SQS only"
            )
        filters = (esm.get("FilterCriteria") or {}).get("Filters", [])
        patterns = [f.get("Pattern", "") for f in filters]
        return StreamMapping(
            uuid=esm["UUID"],
            function=arns[esm["FunctionArn"]],
            stream_arn=stream_arn,
            table_name=stream_arn.split(":", 5)[5].split("/")[1],
            batch_size=int(esm.get("BatchSize") or 100),
            starting_position=str(esm.get("StartingPosition") or "TRIM_HORIZON"),
            report_batch_item_failures="ReportBatchItemFailures"
            in (esm.get("FunctionResponseTypes") or []),
            enabled=esm.get("State") in ("Enabled", "Enabling", "Updating"),
            maximum_retry_attempts=int(esm.get("MaximumRetryAttempts", -1)),
            bisect_on_error=bool(esm.get("BisectBatchOnFunctionError")),
            on_failure_arn=on_failure,
            on_failure_url=self._queue_url(on_failure) if on_failure else None,
            filters=tuple(compile_filter(p) for p in patterns),
        )

    def _shard_ids(self, stream_arn: str, *, refresh: bool = False) -> list[str]:
        if refresh or stream_arn not in self._shards:
            description = self._streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]
            self._shards[stream_arn] = [shard["ShardId"] for shard in description["Shards"]]
        return self._shards[stream_arn]

    def _start_checkpoints(self, mapping: StreamMapping) -> None:
        """Place a new mapping at its StartingPosition (known ones keep their checkpoints)."""
        description = self._streams.describe_stream(StreamArn=mapping.stream_arn)[
            "StreamDescription"
        ]
        self._shards[mapping.stream_arn] = [s["ShardId"] for s in description["Shards"]]
        for shard in description["Shards"]:
            key = (mapping.uuid, shard["ShardId"])
            if key in self._checkpoints:
                continue
            position = int(shard["SequenceNumberRange"]["StartingSequenceNumber"])
            if mapping.starting_position == "LATEST":
                # Everything already in the shard is history for this mapping.
                for record in self._read_from(mapping.stream_arn, shard["ShardId"], position):
                    position = int(record["dynamodb"]["SequenceNumber"]) + 1
            self._checkpoints[key] = _ShardCheckpoint(position=position)

    def _read_from(self, stream_arn: str, shard_id: str, position: int) -> list[dict[str, Any]]:
        iterator = self._streams.get_shard_iterator(
            StreamArn=stream_arn,
            ShardId=shard_id,
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            SequenceNumber=str(position),
        )["ShardIterator"]
        records: list[dict[str, Any]] = []
        while iterator:
            page = self._streams.get_records(ShardIterator=iterator, Limit=1000)
            records.extend(page["Records"])
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
        return records

    # ------------------------------------------------------------ handlers

    def override_handler(self, logical_id: str, handler: Handler | None) -> None:
        """Run ``handler`` instead of the function's code (``None``: back to the code)."""
        self._spec(logical_id)
        if handler is None:
            self._overrides.pop(logical_id, None)
        else:
            self._overrides[logical_id] = handler

    def clear_overrides(self) -> None:
        self._overrides.clear()

    def function_env(self, logical_id: str) -> dict[str, str]:
        """The environment ``logical_id`` runs with."""
        return dict(self._spec(logical_id).environment)

    def _spec(self, logical_id: str) -> FunctionSpec:
        try:
            return self.functions[logical_id]
        except KeyError:
            raise KeyError(
                f"no function {logical_id!r} in the stack; have: {sorted(self.functions)}"
            ) from None

    def _handler(self, spec: FunctionSpec) -> Handler:
        if spec.logical_id in self._overrides:
            return self._overrides[spec.logical_id]
        module = self._modules.get(spec.logical_id) or self._import(spec)
        attribute = spec.handler.rsplit(".", 1)[-1]
        handler: Handler = getattr(module, attribute)
        return handler

    def _import(self, spec: FunctionSpec) -> ModuleType:
        path = spec.module_file
        if path is None or not path.exists():
            raise InvocationError(
                f"{spec.logical_id}: no handler module for {spec.handler!r} "
                f"under {spec.code_dir} (register an override to run it without code)"
            )
        module_name = f"_quitclaim_local_{spec.logical_id}__{path.stem}"
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        if module_spec is None or module_spec.loader is None:
            raise InvocationError(f"cannot import {path}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            # Like a failed Lambda init: the next invocation starts a new container.
            del sys.modules[module_name]
            raise
        self._modules[spec.logical_id] = module
        return module

    @contextmanager
    def _environment(self, spec: FunctionSpec) -> Iterator[None]:
        environment = spec.environment
        unsafe = [
            name
            for name in os.environ
            if name in _UNSAFE_VARIABLES or name.startswith("AWS_ENDPOINT_URL_")
        ]
        touched = set(unsafe) | set(environment)
        saved = {name: value for name, value in os.environ.items() if name in touched}
        saved_session = boto3.DEFAULT_SESSION
        for name in unsafe:
            os.environ.pop(name, None)
        os.environ.update(environment)
        # Sibling modules of the handler import as they do in Lambda (task root on the path).
        code_dir = str(spec.code_dir) if spec.code_dir else None
        if code_dir:
            sys.path.insert(0, code_dir)
        # A fresh "container": settings and boto3's default session re-read the environment.
        boto3.DEFAULT_SESSION = None
        reset_settings()
        global _LAST_CONTAINER_ENVIRONMENT
        relevant = {k: v for k, v in environment.items() if k not in _FUNCTION_IDENTITY}
        if relevant != _LAST_CONTAINER_ENVIRONMENT:
            # Other settings (another stack, or a function with its own variables):
            # services built from the old settings go too.
            reset_container()
            _LAST_CONTAINER_ENVIRONMENT = relevant
        try:
            yield
        finally:
            if code_dir and code_dir in sys.path:
                sys.path.remove(code_dir)
            for name in touched:
                os.environ.pop(name, None)
            os.environ.update(saved)
            boto3.DEFAULT_SESSION = saved_session
            reset_settings()

    # ------------------------------------------------------------ invocation

    def invoke(self, logical_id: str, event: Any) -> Any:
        """Call the function directly (as a synchronous Invoke); exceptions propagate."""
        spec = self._spec(logical_id)
        with self.lock, self._environment(spec):
            handler = self._handler(spec)
            return handler(event, LambdaContext(spec))

    def _run(self, spec: FunctionSpec, event: dict[str, Any]) -> tuple[Any, str | None]:
        """One event-source invocation: ``(response, None)`` or ``(None, error)``."""
        with self._environment(spec):
            started = time.monotonic()
            try:
                handler = self._handler(spec)
                result = handler(event, LambdaContext(spec))
            except (Exception, SystemExit) as exc:
                log.exception("%s failed", spec.logical_id)
                return None, f"{spec.logical_id}: {type(exc).__name__}: {exc}"
            elapsed = time.monotonic() - started
        if self.enforce_timeout and elapsed > spec.timeout_s:
            # Lambda would have killed it; whatever it returned is lost.
            return None, f"{spec.logical_id}: Task timed out after {spec.timeout_s} seconds"
        try:
            # Lambda serialises the response to JSON before it reads it.
            return json.loads(json.dumps(result)), None
        except (TypeError, ValueError) as exc:
            return None, f"{spec.logical_id}: Runtime.MarshalError: {exc}"

    def poll_once(self) -> RunReport:
        """One batch from each enabled queue and stream mapping: invoke, settle, checkpoint."""
        with self.lock:
            report = self._poll_queues()
            for mapping in self.stream_mappings:
                if mapping.enabled:
                    report.add(self._poll_stream(mapping))
            return report

    def _poll_queues(self) -> RunReport:
        report = RunReport()
        depths: dict[str, int] = {}
        for mapping in self.mappings:
            if not mapping.enabled:
                continue
            # An empty queue has nothing to receive and nothing to move to its DLQ:
            # one call instead of three (a tick drains after every firing).
            depths[mapping.queue_url] = self.queue_depth(mapping.queue_url)
            if not depths[mapping.queue_url]:
                continue
            report.add(self._poll_queue(mapping))
        self._queue_depths = depths
        return report

    def _poll_queue(self, mapping: QueueMapping) -> RunReport:
        report = RunReport()
        dlq_before = self.queue_depth(mapping.dead_letter_queue_url)
        messages = self._receive(mapping)
        if messages:
            report.add(self._deliver(mapping, messages))
        # moto moves a message to the DLQ during the receive after its last allowed one.
        report.dead_lettered += max(0, self.queue_depth(mapping.dead_letter_queue_url) - dlq_before)
        return report

    def step(self) -> RunReport:
        """At most one invocation: the next queue with messages, in weighted round-robin.

        When no queue has a message, the streams are read once instead (as
        ``poll_once`` reads them). An empty report: nothing was there.
        """
        with self.lock:
            waiting = [m for m in self.mappings if m.enabled and self.queue_depth(m.queue_url)]
            if not waiting:
                report = RunReport()
                for stream in self.stream_mappings:
                    if stream.enabled:
                        report.add(self._poll_stream(stream))
                return report
            return self._poll_queue(self._next_turn(waiting))

    def _next_turn(self, waiting: list[QueueMapping]) -> QueueMapping:
        # Smooth weighted round-robin: every waiting mapping earns its weight,
        # the richest runs and pays the round's total. Over any stretch, turns
        # follow the weights and no mapping waits longer than one round.
        total = 0
        for mapping in waiting:
            self._turns[mapping.uuid] = self._turns.get(mapping.uuid, 0) + mapping.weight
            total += mapping.weight
        chosen = max(waiting, key=lambda m: self._turns[m.uuid])
        self._turns[chosen.uuid] -= total
        return chosen

    def run_until(
        self, condition: Callable[[], bool], *, max_invocations: int = 10_000
    ) -> RunReport:
        """``step`` until ``condition()`` holds; checked before each step.

        Raises ``DrainTimeout`` (with what was done) when nothing is left to
        run or ``max_invocations`` ran and the condition still does not hold.
        """
        with self.lock:
            total = RunReport()
            idle = 0
            while not condition():
                if total.invocations >= max_invocations:
                    raise DrainTimeout(
                        f"condition not met after {total.invocations} invocations", total
                    )
                step = self.step()
                total.add(step)
                idle = 0 if step else idle + 1
                if idle >= 3:
                    raise DrainTimeout("condition not met and nothing left to run", total)
                if idle:
                    time.sleep(0.02)  # messages in flight elsewhere, or delayed
            return total

    def drain(self, timeout_s: float = 30.0) -> RunReport:
        """Poll until every mapped queue is empty and every mapped stream is read to its end.

        Raises ``DrainTimeout`` after ``timeout_s`` without a delivered record
        (or after 20 times that in all).
        A stream record can queue a message and a message can write a stream
        record, so both are polled until a whole round finds nothing.
        """
        with self.lock:
            return self._drain(timeout_s)

    def _drain(self, timeout_s: float) -> RunReport:
        # ``timeout_s`` bounds a stall, not the work: a drain that keeps
        # delivering records extends its deadline (a loaded machine is slow, not
        # stuck), up to a hard cap that still ends a message looping forever.
        started = time.monotonic()
        deadline = started + timeout_s
        cap = started + timeout_s * _DRAIN_CAP_FACTOR
        total = RunReport()
        while True:
            step = self.poll_once()
            total.add(step)
            if step.messages or step.stream_records:
                deadline = min(cap, time.monotonic() + timeout_s)
            pending: dict[str, int] = {}
            if not (step.messages or step.stream_records or step.filtered or step.discarded):
                if not any(self._queue_depths.values()):
                    return total  # every queue was empty when this quiet round began
                pending = {
                    m.queue_url: depth
                    for m in self.mappings
                    if m.enabled and (depth := self.queue_depth(m.queue_url))
                }
                if not pending:
                    return total
            if time.monotonic() > deadline:
                raise DrainTimeout(
                    f"queues or streams not drained after {timeout_s}s "
                    f"({pending or 'handlers still receiving records'})",
                    total,
                )
            if pending:
                time.sleep(0.02)  # messages in flight elsewhere, or delayed

    def _receive(self, mapping: QueueMapping) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while len(messages) < mapping.batch_size:
            # Lambda's poller uses the queue's own visibility timeout.
            batch = self._sqs.receive_message(
                QueueUrl=mapping.queue_url,
                MaxNumberOfMessages=min(10, mapping.batch_size - len(messages)),
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not batch:
                break
            messages.extend(batch)
        return messages

    def _deliver(self, mapping: QueueMapping, messages: list[dict[str, Any]]) -> RunReport:
        spec = self._spec(mapping.function)
        event = {"Records": [self._record(mapping, m) for m in messages]}
        ids = {m["MessageId"] for m in messages}
        for observe in list(self.observers):
            observe(spec.logical_id, event)
        response, error = self._run(spec, event)
        report = RunReport(invocations=1, messages=len(messages))
        failed: set[str] | None
        if error is not None:
            failed = ids
            report.errors.append(error)
        elif mapping.report_batch_item_failures:
            failed = _batch_item_failures(response, ids)
            if failed is None:
                report.errors.append(
                    f"{spec.logical_id}: invalid batchItemFailures response {response!r}: "
                    "the whole batch returns"
                )
                failed = ids
        else:
            failed = set()
        done = [m for m in messages if m["MessageId"] not in failed]
        back = [m for m in messages if m["MessageId"] in failed]
        for chunk in _chunks(done):
            self._sqs.delete_message_batch(
                QueueUrl=mapping.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                ],
            )
        for chunk in _chunks(back):
            # Visible again now, not after VisibilityTimeout: see the module docstring.
            self._sqs.change_message_visibility_batch(
                QueueUrl=mapping.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                    for i, m in enumerate(chunk)
                ],
            )
        report.succeeded = len(done)
        report.failures = len(back)
        return report

    def _record(self, mapping: QueueMapping, message: dict[str, Any]) -> dict[str, Any]:
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": {
                name: _lambda_message_attribute(value)
                for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": mapping.queue_arn,
            "awsRegion": self.deployment.region,
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        return record

    # ------------------------------------------------------------ streams

    def _poll_stream(self, mapping: StreamMapping) -> RunReport:
        report = RunReport()
        for shard_id in self._shard_ids(mapping.stream_arn):
            key = (mapping.uuid, shard_id)
            checkpoint = self._checkpoints.get(key)
            if checkpoint is None:
                self._start_checkpoints(mapping)
                checkpoint = self._checkpoints[key]
            report.add(self._poll_shard(mapping, shard_id, checkpoint))
        return report

    def _next_records(
        self, mapping: StreamMapping, shard_id: str, checkpoint: _ShardCheckpoint
    ) -> list[dict[str, Any]]:
        if checkpoint.iterator is None:
            checkpoint.iterator = self._streams.get_shard_iterator(
                StreamArn=mapping.stream_arn,
                ShardId=shard_id,
                ShardIteratorType="AT_SEQUENCE_NUMBER",
                SequenceNumber=str(checkpoint.position),
            )["ShardIterator"]
        page = self._streams.get_records(ShardIterator=checkpoint.iterator, Limit=1000)
        records: list[dict[str, Any]] = page["Records"]
        if records:
            # The iterator would move past these; the checkpoint decides what is next.
            checkpoint.iterator = None
        else:
            checkpoint.iterator = page.get("NextShardIterator")
        return records

    def _poll_shard(
        self, mapping: StreamMapping, shard_id: str, checkpoint: _ShardCheckpoint
    ) -> RunReport:
        report = RunReport()
        records = self._next_records(mapping, shard_id, checkpoint)
        limit = checkpoint.segments[0] if checkpoint.segments else mapping.batch_size
        batch: list[dict[str, Any]] = []  # Lambda-shaped, matching records only
        skipped = 0  # non-matching records read after the batch's first one
        window_end = 0  # the last record read for this batch: success checkpoints past it
        for raw in records:
            record = lambda_dynamodb_record(raw, self.deployment.region, mapping.stream_arn)
            sequence = int(record["dynamodb"]["SequenceNumber"])
            if sequence < checkpoint.position:
                continue
            if mapping.filters and not any(filter_matches(p, record) for p in mapping.filters):
                if not batch:
                    checkpoint.position = sequence + 1  # filtered out: checkpointed at once
                    report.filtered += 1
                else:
                    skipped += 1
                    window_end = sequence
                continue
            batch.append(record)
            window_end = sequence
            if len(batch) >= limit:
                break
        if not batch:
            return report
        report.add(self._deliver_stream(mapping, shard_id, checkpoint, batch, skipped, window_end))
        return report

    def _deliver_stream(
        self,
        mapping: StreamMapping,
        shard_id: str,
        checkpoint: _ShardCheckpoint,
        batch: list[dict[str, Any]],
        skipped: int,
        window_end: int,
    ) -> RunReport:
        spec = self._spec(mapping.function)
        event = {"Records": batch}
        for observe in list(self.observers):
            observe(spec.logical_id, event)
        response, error = self._run(spec, event)
        report = RunReport(invocations=1, stream_records=len(batch))
        sequences = [int(r["dynamodb"]["SequenceNumber"]) for r in batch]
        failed: set[str] | None = set()
        if error is None and mapping.report_batch_item_failures:
            failed = _batch_item_failures(response, {str(s) for s in sequences})
            if failed is None:
                error = (
                    f"{spec.logical_id}: invalid batchItemFailures response {response!r}: "
                    "the whole batch is retried"
                )
        if error is None and not failed:
            checkpoint.position = window_end + 1
            checkpoint.attempts = 0
            checkpoint.segments = checkpoint.segments[1:]
            report.filtered += skipped
            return report
        if error is None:
            assert failed
            # Partial failure: done up to the first failed record; the rest is retried.
            first = min(int(f) for f in failed)
            report.errors.append(f"{spec.logical_id}: batch item failures from {first}")
            checkpoint.attempts = checkpoint.attempts + 1 if first == checkpoint.position else 1
            checkpoint.position = first
            remaining = [r for r, s in zip(batch, sequences, strict=True) if s >= first]
            checkpoint.segments = [len(remaining)]
            batch = remaining
        else:
            report.errors.append(error)
            if mapping.bisect_on_error and len(batch) > 1:
                # Split in two; a split does not use up a retry (AWS).
                half = len(batch) // 2
                checkpoint.segments = [half, len(batch) - half, *checkpoint.segments[1:]]
                return report
            checkpoint.attempts += 1
        if 0 <= mapping.maximum_retry_attempts < checkpoint.attempts:
            report.discarded += len(batch)
            self._discard(mapping, shard_id, batch, spec, checkpoint.attempts, error)
            checkpoint.position = int(batch[-1]["dynamodb"]["SequenceNumber"]) + 1
            checkpoint.attempts = 0
            checkpoint.segments = checkpoint.segments[1:]
        return report

    def _discard(
        self,
        mapping: StreamMapping,
        shard_id: str,
        batch: list[dict[str, Any]],
        spec: FunctionSpec,
        attempts: int,
        error: str | None,
    ) -> None:
        """Lambda's invocation record for discarded stream records, to the OnFailure queue."""
        first, last = batch[0]["dynamodb"], batch[-1]["dynamodb"]
        log.warning(
            "%s: giving up on %d stream record(s) %s..%s after %d attempt(s)",
            spec.logical_id,
            len(batch),
            first["SequenceNumber"],
            last["SequenceNumber"],
            attempts,
        )
        if mapping.on_failure_url is None:
            return
        response_context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if error is not None:
            response_context["functionError"] = "Unhandled"
        record = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": spec.arn,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": attempts,
            },
            "responseContext": response_context,
            "version": "1.0",
            # The stack's clock (simulated time), as everything else the stack records.
            "timestamp": _iso(current_clock().now().timestamp()),
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": first["SequenceNumber"],
                "endSequenceNumber": last["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _iso(first.get("ApproximateCreationDateTime")),
                "approximateArrivalOfLastRecord": _iso(last.get("ApproximateCreationDateTime")),
                "batchSize": len(batch),
                "streamArn": mapping.stream_arn,
            },
        }
        self._sqs.send_message(QueueUrl=mapping.on_failure_url, MessageBody=json.dumps(record))

    def queue_depth(self, queue_url: str | None) -> int:
        """Messages visible, in flight or delayed (0 for no queue)."""
        if queue_url is None:
            return 0
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())

    def close(self) -> None:
        """Forget the imported handler modules (the "containers")."""
        for module in self._modules.values():
            sys.modules.pop(module.__name__, None)
        self._modules.clear()
        self._overrides.clear()


def _batch_item_failures(response: Any, ids: set[str]) -> set[str] | None:
    """The message ids to retry, or ``None`` when Lambda would fail the whole batch.

    Success: a null/empty response or a null/empty ``batchItemFailures``.
    Whole-batch failure: anything else malformed - an item without an
    ``itemIdentifier``, an empty or unknown one. A response that is not an
    object (AWS documents no case for it) fails the batch: fail closed.
    """
    if response is None:
        return set()
    if not isinstance(response, dict):
        return None
    items = response.get("batchItemFailures")
    if items is None:
        return set()
    if not isinstance(items, list):
        return None
    failed: set[str] = set()
    for item in items:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or identifier not in ids:
            return None
        failed.add(identifier)
    return failed


def _lambda_message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """SQS API message attribute -> the camelCase shape of Lambda's SQS records."""
    result: dict[str, Any] = {
        "stringListValues": value.get("StringListValues", []),
        "binaryListValues": [
            base64.b64encode(v).decode() for v in value.get("BinaryListValues", [])
        ],
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        result["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        result["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return result


def _chunks(messages: list[dict[str, Any]], size: int = 10) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(messages), size):
        yield messages[start : start + size]


# ---------------------------------------------------------------- stream records


def lambda_dynamodb_record(record: dict[str, Any], region: str, stream_arn: str) -> dict[str, Any]:
    """A DynamoDB Streams API record (as boto3 returns it) in the shape Lambda delivers.

    Region and ``eventSourceARN`` are the stack's (gap 6); the creation time is
    epoch seconds, binary attributes are base64, and ``userIdentity`` (only on
    TTL deletions) uses Lambda's lower-case keys ``type`` / ``principalId``.
    """
    fixed = gaps.lambda_stream_record(record, region, stream_arn)
    dynamodb: dict[str, Any] = {}
    for key, value in record["dynamodb"].items():
        if key in ("Keys", "NewImage", "OldImage"):
            dynamodb[key] = {name: _attribute_json(v) for name, v in value.items()}
        elif key == "ApproximateCreationDateTime" and isinstance(value, datetime):
            dynamodb[key] = int(value.timestamp())
        else:
            dynamodb[key] = value
    fixed["dynamodb"] = dynamodb
    identity = record.get("userIdentity")
    if identity:
        fixed["userIdentity"] = {
            "type": identity.get("Type"),
            "principalId": identity.get("PrincipalId"),
        }
    return fixed


def _attribute_json(value: dict[str, Any]) -> dict[str, Any]:
    """One AttributeValue as JSON: boto3's bytes back to base64, nested values too."""
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": base64.b64encode(inner).decode()}
    if kind == "BS":
        return {"BS": [base64.b64encode(v).decode() for v in inner]}
    if kind == "M":
        return {"M": {k: _attribute_json(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [_attribute_json(v) for v in inner]}
    return {kind: inner}


def _iso(value: Any) -> str | None:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")
    return None


# ---------------------------------------------------------------- event filtering

_OPERATORS = frozenset({"exists", "prefix", "suffix", "anything-but", "equals-ignore-case"})


class FilterError(ValueError):
    """A FilterCriteria pattern the local runtime cannot evaluate faithfully."""


def compile_filter(pattern: str) -> dict[str, Any]:
    """Parse a FilterCriteria ``Pattern`` and refuse what ``filter_matches`` does not support.

    Supported: exact values (strings, numbers, booleans, null) in lists,
    nested objects, ``exists``, ``prefix``, ``suffix``, ``anything-but`` (a
    value or a list of values) and ``equals-ignore-case``. ``numeric``,
    ``wildcard``, ``cidr`` and ``$or`` raise instead of silently passing or
    dropping records.
    """
    try:
        parsed = json.loads(pattern)
    except ValueError as exc:
        raise FilterError(f"FilterCriteria pattern is not JSON: {pattern!r}") from exc
    if not isinstance(parsed, dict):
        raise FilterError(f"FilterCriteria pattern must be an object: {pattern!r}")
    _check_pattern(parsed, pattern)
    return parsed


def _check_pattern(node: dict[str, Any], source: str) -> None:
    for key, rule in node.items():
        if key.startswith("$"):
            raise FilterError(f"{key} in {source!r} is not supported locally")
        if isinstance(rule, dict):
            _check_pattern(rule, source)
        elif isinstance(rule, list):
            for matcher in rule:
                if isinstance(matcher, dict):
                    if len(matcher) != 1 or next(iter(matcher)) not in _OPERATORS:
                        raise FilterError(f"matcher {matcher!r} in {source!r} is not supported")
                elif isinstance(matcher, list):
                    raise FilterError(f"nested list {matcher!r} in {source!r}")
        else:
            raise FilterError(f"{key}: a pattern's values must be lists or objects ({source!r})")


def filter_matches(pattern: dict[str, Any], event: Any) -> bool:
    """Whether a Lambda event-filtering pattern matches a (Lambda-shaped) record.

    Every key of the pattern must match (AND); a list of matchers matches when
    any one does (OR); an array in the record matches when any element does.
    """
    if not isinstance(event, dict):
        return False
    for key, rule in pattern.items():
        present = key in event
        value = event.get(key)
        if isinstance(rule, dict):
            if not present or not filter_matches(rule, value):
                return False
        elif not _leaf_matches(rule, present, value):
            return False
    return True


def _leaf_matches(matchers: list[Any], present: bool, value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    for matcher in matchers:
        if isinstance(matcher, dict):
            ((operator, argument),) = matcher.items()
            if operator == "exists":
                if bool(argument) == present:
                    return True
                continue
            if not present:
                continue
            if operator == "prefix" and any(
                isinstance(v, str) and v.startswith(argument) for v in values
            ):
                return True
            if operator == "suffix" and any(
                isinstance(v, str) and v.endswith(argument) for v in values
            ):
                return True
            if operator == "equals-ignore-case" and any(
                isinstance(v, str) and v.casefold() == str(argument).casefold() for v in values
            ):
                return True
            if operator == "anything-but":
                excluded = argument if isinstance(argument, list) else [argument]
                if all(not any(_same(e, v) for e in excluded) for v in values):
                    return True
        elif present and any(_same(matcher, v) for v in values):
            return True
    return False


def _same(expected: Any, actual: Any) -> bool:
    """JSON equality: numbers by value, but ``true`` is not ``1``."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return float(expected) == float(actual)
    return bool(expected == actual)
