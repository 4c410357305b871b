"""The one Logger, Tracer and Metrics of the package, and the audit event.

Audit events carry ids, boxes, distances, versions and reasons: never names,
encodings or image bytes (Principle 4). ``audit`` refuses unknown fields so a
careless caller cannot slip personal data in.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = "quitclaim"

# X-Ray traces AWS SDK calls only. The SDK's httplib/requests patches record
# every URL, and an S3 URL's path is the object key, which often carries a
# person's name; the outbound webhooks go to tenants' URLs (tests/unit/test_tracing.py).
TRACED_MODULES = ("botocore",)
# Request parameters the X-Ray botocore patch copies into S3 subsegments that
# name objects: removed from its allow-list before anything is traced.
_S3_NAMING_PARAMETERS = frozenset({"Key", "Prefix", "CopySource"})


def _no_object_keys_in_traces(boto_utils: Any) -> None:
    operations = boto_utils.whitelist.get("services", {}).get("s3", {}).get("operations", {})
    for spec in operations.values():
        if "request_parameters" in spec:
            spec["request_parameters"] = [
                p for p in spec["request_parameters"] if p not in _S3_NAMING_PARAMETERS
            ]


_XRAY_BOTO = "aws_xray_sdk.ext.boto_utils"


class _StripWhenLoaded:
    """An import hook: the X-Ray botocore module loads with its S3 key parameters removed.

    Whoever loads it (the tracer below, a test), before it describes any call.
    """

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != _XRAY_BOTO:
            return None
        sys.meta_path.remove(self)  # once; and the lookup below must not find us again
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def load_and_strip(module: Any) -> None:
            load(module)
            _no_object_keys_in_traces(module)

        spec.loader.exec_module = load_and_strip  # type: ignore[method-assign]
        return spec


if _XRAY_BOTO in sys.modules:
    _no_object_keys_in_traces(sys.modules[_XRAY_BOTO])
else:
    sys.meta_path.insert(0, _StripWhenLoaded())


@functools.cache
def _tracer() -> Tracer:
    # Building Powertools' Tracer imports the X-Ray SDK (~0.3 s of every cold
    # start): deferred to the first invocation, still before any AWS call is made.
    return Tracer(service=SERVICE, patch_modules=TRACED_MODULES)


class _DeferredTracer:
    """``Tracer``'s attributes, the real one built on first use (see ``_tracer``)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_tracer(), name)


logger = Logger(service=SERVICE)
tracer = cast(Tracer, _DeferredTracer())
metrics = Metrics(namespace="Quitclaim", service=SERVICE)

_AUDIT_FIELDS = frozenset(
    {
        "tenant",
        "asset_id",
        "status",
        "reasons",
        "purpose",
        "faces",
        "versions",
        "policy",
        "timings_ms",
        "subject_id",
        "consent_id",
        "duplicate",
        "dest_bucket",
        # clearance per channel: purposes, cleared or held, reason codes, expiry
        "clearance",
        "source",
        "reason",
        "endpoint_id",
        "delivery_id",
        # data-subject rights: the request, the asset a variant was made from,
        # how many results a search or export gave (counts, never content)
        "request_id",
        "source_asset_id",
        "results",
        # tenants: onboarding (plan, region pin) and offboarding (when, and
        # per store what remains: counts, never content)
        "plan",
        "region",
        "purge_after",
        "complete",
        "early",
        "stores",
        # metering: a tenant's plan quota (a number)
        "images_per_month",
        # four eyes (domain/four_eyes.py): the key that asked, and both people
        "requested_by",
        "people",
        # key lifecycle (docs/access.md): which key, its successor, its role
        "key_id",
        "new_key_id",
        "role",
        # who acted (``acting_as``, set per API request): the key id or
        # ``user:<sub>``, and a signed-in person's e-mail as SHA-256
        "actor",
        "actor_email_hash",
    }
)


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def log_to_stderr() -> None:
    """Send log lines to stderr (the CLI: stdout is for the command's output)."""
    handler = logger.registered_handler
    if isinstance(handler, logging.StreamHandler):
        handler.setStream(_CurrentStderr())


def audit(action: str, **fields: Any) -> None:
    """Write one structured audit event (the accountable record of an AI step).

    Inside an audit block (every handler invocation opens one) the event is
    also kept for the tenant's hash chain, flushed when the work item succeeds.
    """
    unknown = set(fields) - _AUDIT_FIELDS
    if unknown:
        raise ValueError(f"audit fields not allowed: {sorted(unknown)}")
    if "tenant" not in fields:
        raise ValueError("an audit event names its tenant (each tenant has its own chain)")
    event = {"action": action, **_actor.get(), **fields}
    logger.info(action, extra={"audit": event})
    blocks = _open_blocks.get()
    if blocks:
        # JSON-shaped now (as the log line is), so the chain hashes what was logged.
        blocks[-1].events.append(json.loads(json.dumps(event, default=str)))


_actor: ContextVar[Mapping[str, str]] = ContextVar("audit_actor", default={})  # noqa: B039 (never mutated)


@contextmanager
def acting_as(actor: str, email_hash: str = "") -> Iterator[None]:
    """Name who acts in every audit event of the block (an API request's caller).

    ``actor`` is the API key's id or ``user:<sub>`` of a signed-in person; a
    person's e-mail goes in only as ``email_hash`` (docs/sign-in.md).
    """
    fields = {"actor": actor, **({"actor_email_hash": email_hash} if email_hash else {})}
    token = _actor.set(fields)
    try:
        yield
    finally:
        _actor.reset(token)


# ---------------------------------------------------------------- audit blocks
#
# A block is the audit events of one work item (an SQS message, a stream
# record, one invocation, one API request). ``audit_block`` collects them and,
# when the work succeeds, hands them to the sink (the composition root wires
# the tenants' hash chains: usecases/audit_trail.py). A sink failure raises out
# of the work item, so it fails and is retried (fail closed). The block id must
# be deterministic for the work item: its retry then finds the block in the
# chain already and appends nothing twice.

AuditSink = Callable[[str, Sequence[Mapping[str, Any]]], object]


@dataclass
class AuditBlock:
    block_id: str
    events: list[dict[str, Any]] = field(default_factory=list)


_open_blocks: ContextVar[tuple[AuditBlock, ...]] = ContextVar("audit_blocks", default=())
_sink: AuditSink | None = None


def set_audit_sink(sink: AuditSink | None) -> None:
    """Where closed blocks go (bootstrap: the hash chains; tests: a fake)."""
    global _sink
    _sink = sink


def _flush(block_id: str, events: Sequence[Mapping[str, Any]]) -> None:
    if not events:
        return
    if _sink is None:
        raise RuntimeError("audit events but no audit sink: refusing to report success")
    _sink(block_id, events)


@contextmanager
def audit_block(block_id: str) -> Iterator[AuditBlock]:
    """Collect the audit events of one work item; flush them when it succeeds.

    When the work fails, what it audited before failing is flushed as block
    ``<id>~failed`` (best effort; the failure is re-raised either way): those
    steps happened, and a retry may find them done and audit nothing.
    """
    block = AuditBlock(block_id)
    token = _open_blocks.set((*_open_blocks.get(), block))
    try:
        yield block
    except BaseException:
        _open_blocks.reset(token)
        try:
            _flush(f"{block_id}~failed", block.events)
        except Exception:  # the work's own failure is the one to report
            logger.exception("audit block of a failed work item not chained")
        raise
    _open_blocks.reset(token)
    _flush(block_id, block.events)


P = ParamSpec("P")
R = TypeVar("R")


def _sqs_message(record: Any) -> str:
    return f"sqs/{record.message_id}"


def _stream_record(record: Any) -> str:
    return f"stream/{record.event_id}"


def _invocation(event: Any, context: Any) -> str:
    # Lambda keeps the request id across the retries of an async invocation.
    return f"invoke/{context.aws_request_id}"


WORK_ITEMS: dict[str, Callable[..., str]] = {
    "sqs": _sqs_message,  # a record handler's SQSRecord
    "stream": _stream_record,  # a record handler's DynamoDBRecord
    "invocation": _invocation,  # a handler's (event, context)
}


def audited(work_item: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Run a handler (or record handler) as one audit block.

    ``work_item`` ("sqs", "stream", "invocation") says what names the block:
    the SQS message id, the stream record's event id, the invocation's request
    id. Each is the same on every retry of that work, so a retry finds its
    block in the chain already.
    """
    block_id = WORK_ITEMS[work_item]

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            with audit_block(block_id(*args, **kwargs)):
                return fn(*args, **kwargs)

        run.__audited__ = True  # type: ignore[attr-defined]
        return run

    return wrap


def count(name: str, value: float = 1, unit: MetricUnit = MetricUnit.Count) -> None:
    """Add to a metric of this invocation (flushed by the handler decorator)."""
    metrics.add_metric(name=name, unit=unit, value=value)


def timing(name: str, milliseconds: float) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=milliseconds)


def _traced(fn: Callable[[Any, Any], R]) -> Callable[[Any, Any], R]:
    """``tracer.capture_lambda_handler``, applied at the first invocation (see ``_tracer``)."""
    wrapped: list[Callable[[Any, Any], R]] = []

    @functools.wraps(fn)
    def run(event: Any, context: Any) -> R:
        if not wrapped:
            wrapped.append(_tracer().capture_lambda_handler(capture_response=False)(fn))
        return wrapped[0](event, context)

    return run


def lambda_handler(fn: Callable[[Any, Any], R]) -> Callable[[Any, Any], R]:
    """Every function's entry point: context in the logs, a trace, metrics, one audit block.

    The same stack each handler wore as four decorators, outermost first.
    """
    audited_fn: Callable[[Any, Any], R] = audited("invocation")(fn)
    with_metrics: Callable[[Any, Any], R] = metrics.log_metrics(audited_fn)
    return cast(
        Callable[[Any, Any], R],
        logger.inject_lambda_context(clear_state=True)(_traced(with_metrics)),
    )
