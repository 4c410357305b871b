"""Fault injection at the AWS client boundary (botocore), for the real stack.

The stack, handlers and adapters stay real; only the chosen API call answers
with the given AWS error code, times out, or succeeds and then "kills the
process", as a throttled, slow or dying service or runtime would. Injected
faults bypass botocore's own retries: they stand for a call that failed after
them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError

# (self, operation, params) -> whether a call is the one a fault is aimed at
Match = Callable[[dict[str, Any]], bool]


class ProcessDied(SystemExit):
    """The function's process ending mid-invocation (a crash, or Lambda's timeout kill).

    A ``SystemExit``, not an ``Exception``: no ``except Exception`` in the
    handler or in Powertools' batch processor can turn it into a clean
    per-message failure. The local runtime settles it as Lambda settles a
    dead invocation: the whole SQS batch returns, a stream batch is retried.
    """


class HandlerCrashed(RuntimeError):
    """A non-AWS failure escaping an asynchronously invoked handler (Lambda retries it)."""


@contextmanager
def _intercept(
    service: str,
    operation: str,
    around: Callable[[Callable[[], Any]], Any],
    *,
    times: int | None,
    match: Match | None,
    skip: int = 0,
) -> Iterator[list[int]]:
    """Route matching calls through ``around(call)``; the others go straight through.

    ``operation`` may name several, ``|``-separated ("BatchWriteItem|TransactWriteItems":
    whichever call writes a table, before and after a change of how it is written).
    """
    original = BaseClient._make_api_call
    seen, hit = [0], [0]
    operations = frozenset(operation.split("|"))

    def patched(self: BaseClient, op: str, params: dict[str, Any]) -> Any:
        aimed = (
            self.meta.service_model.service_name == service
            and op in operations
            and (match is None or match(params))
        )
        if aimed:
            seen[0] += 1
        if aimed and seen[0] > skip and (times is None or hit[0] < times):
            hit[0] += 1
            return around(lambda: original(self, op, params))
        return original(self, op, params)

    BaseClient._make_api_call = patched  # type: ignore[method-assign]
    try:
        yield hit
    finally:
        BaseClient._make_api_call = original  # type: ignore[method-assign]


@contextmanager
def failing_calls(
    service: str,
    operation: str,
    code: str,
    *,
    times: int | None = None,
    match: Match | None = None,
) -> Iterator[list[int]]:
    """Make ``service``.``operation`` fail with ``code`` (``times`` times, or always)."""

    def fail(call: Callable[[], Any]) -> Any:
        raise ClientError({"Error": {"Code": code, "Message": "injected"}}, operation)

    with _intercept(service, operation, fail, times=times, match=match) as hit:
        yield hit


@contextmanager
def timing_out_calls(
    service: str,
    operation: str,
    *,
    connect: bool = False,
    times: int | None = None,
    match: Match | None = None,
) -> Iterator[list[int]]:
    """Make the call time out: ``ReadTimeoutError`` (sent, no answer) or ``ConnectTimeoutError``.

    A read timeout is raised *after* the call reached the service: the write
    may have happened, which is the harder case for the caller.
    """

    def time_out(call: Callable[[], Any]) -> Any:
        if connect:
            raise ConnectTimeoutError(endpoint_url="http://injected")
        call()
        raise ReadTimeoutError(endpoint_url="http://injected")

    with _intercept(service, operation, time_out, times=times, match=match) as hit:
        yield hit


@contextmanager
def crash_after(
    service: str,
    operation: str,
    *,
    times: int | None = 1,
    skip: int = 0,
    match: Match | None = None,
    error: type[BaseException] = ProcessDied,
) -> Iterator[list[int]]:
    """Let the call succeed, then raise ``error``: the process dies right after it.

    ``skip``: let that many matching calls through untouched first (die after
    the second copy of a batch, not the first).
    """

    def die(call: Callable[[], Any]) -> Any:
        call()
        raise error(f"injected crash after {service}.{operation}")

    with _intercept(service, operation, die, times=times, match=match, skip=skip) as hit:
        yield hit


@contextmanager
def after_call(
    service: str,
    operation: str,
    hook: Callable[[], None],
    *,
    times: int = 1,
    skip: int = 0,
    match: Match | None = None,
) -> Iterator[list[int]]:
    """Run ``hook`` right after the call returns, before the caller sees the answer.

    Deterministic interleavings: the code under test is paused at that point
    while ``hook`` does what a concurrent actor would (in the same thread).
    The hook's own AWS calls are not intercepted.
    """
    busy = [False]

    def pause(call: Callable[[], Any]) -> Any:
        result = call()
        if not busy[0]:
            busy[0] = True
            try:
                hook()
            finally:
                busy[0] = False
        return result

    def aimed(params: dict[str, Any]) -> bool:
        return not busy[0] and (match is None or match(params))

    with _intercept(service, operation, pause, times=times, match=aimed, skip=skip) as hit:
        yield hit


def table(name_part: str) -> Match:
    """Match DynamoDB calls on a table whose name contains ``name_part``."""

    def matches(params: dict[str, Any]) -> bool:
        names = [str(params.get("TableName", "")), *params.get("RequestItems", {})]
        for item in params.get("TransactItems", []):
            names.extend(str(v.get("TableName", "")) for v in item.values())
        return any(name_part in n for n in names)

    return matches


def bucket(name: str) -> Match:
    """Match S3 calls on one bucket (for CopyObject: the destination)."""
    return lambda params: params.get("Bucket") == name
