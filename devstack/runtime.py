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

DynamoDB streams are read as Lambda's stream poller reads them, one
checkpoint per mapping and shard, with its filters, partial failures,
bisection, retries and OnFailure records: ``stream_poller.StreamPoller``.

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

import importlib.util
import json
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from devstack import gaps
from devstack.deploy import Deployment
from devstack.function_environment import aws_client_env, function_environment
from devstack.invocations import (
    DrainTimeout,
    FunctionSpec,
    InvocationError,
    LambdaContext,
    QueueMapping,
    RunReport,
    StreamMapping,
)
from devstack.lambda_events import (
    batch_item_failures,
    lambda_message_attribute,
)
from devstack.stream_poller import StreamPoller, stream_mapping

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]
# Called with (function logical id, event) before each event-source invocation.
Observer = Callable[[str, dict[str, Any]], None]

# How many stall timeouts a drain that keeps making progress may last in all.
_DRAIN_CAP_FACTOR = 20


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
        self._overrides: dict[str, Handler] = {}
        self.observers: list[Observer] = []
        self._modules: dict[str, ModuleType] = {}
        self.functions: dict[str, FunctionSpec] = {}
        self.mappings: list[QueueMapping] = []
        self.stream_mappings: list[StreamMapping] = []
        self._stream_poller = StreamPoller(
            deployment.client("dynamodbstreams"),
            self._sqs,
            deployment.region,
            self._invoke_from_source,
        )
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
                    streams.append(stream_mapping(esm, arns, self._queue_url))
                else:
                    others.append(esm)
        # A mapping added after deploy would otherwise be pushed by moto too.
        gaps.detach_emulator_pollers(self.deployment.account_id, self.deployment.region)
        self.mappings = mappings
        self.stream_mappings = streams
        for mapping in streams:
            self._stream_poller.start_checkpoints(mapping)
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

    # ------------------------------------------------------------ invocation

    def invoke(self, logical_id: str, event: Any) -> Any:
        """Call the function directly (as a synchronous Invoke); exceptions propagate."""
        spec = self._spec(logical_id)
        with self.lock, function_environment(spec):
            handler = self._handler(spec)
            return handler(event, LambdaContext(spec))

    def _invoke_from_source(
        self, logical_id: str, event: dict[str, Any]
    ) -> tuple[FunctionSpec, Any, str | None]:
        """An event source's invocation, observed first: ``(spec, response, error)``."""
        spec = self._spec(logical_id)
        for observe in list(self.observers):
            observe(spec.logical_id, event)
        response, error = self._run(spec, event)
        return spec, response, error

    def _run(self, spec: FunctionSpec, event: dict[str, Any]) -> tuple[Any, str | None]:
        """One event-source invocation: ``(response, None)`` or ``(None, error)``."""
        with function_environment(spec):
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
                    report.add(self._stream_poller.poll(mapping))
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
                        report.add(self._stream_poller.poll(stream))
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
            failed = batch_item_failures(response, ids)
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
                name: lambda_message_attribute(value)
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


def _chunks(messages: list[dict[str, Any]], size: int = 10) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(messages), size):
        yield messages[start : start + size]
