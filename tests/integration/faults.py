"""Fault injection at the AWS client boundary (botocore), for the real stack.

The stack, handlers and adapters stay real; only the chosen API call answers
with the given AWS error code, as a throttled or failing service would.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError


@contextmanager
def failing_calls(
    service: str, operation: str, code: str, *, times: int | None = None
) -> Iterator[list[int]]:
    """Make ``service``.``operation`` fail with ``code`` (``times`` times, or always)."""
    original = BaseClient._make_api_call
    failed = [0]

    def patched(self: BaseClient, op: str, params: dict[str, Any]) -> Any:
        if (
            self.meta.service_model.service_name == service
            and op == operation
            and (times is None or failed[0] < times)
        ):
            failed[0] += 1
            raise ClientError({"Error": {"Code": code, "Message": "injected"}}, op)
        return original(self, op, params)

    BaseClient._make_api_call = patched  # type: ignore[method-assign]
    try:
        yield failed
    finally:
        BaseClient._make_api_call = original  # type: ignore[method-assign]
