"""What every DynamoDB repository shares: tenant keys, page cursors, error mapping, transactions."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from pynamodb.exceptions import PynamoDBException, TransactWriteError
from pynamodb.transactions import TransactWrite

from quitclaim.adapters.dynamo.tables import AssetModel
from quitclaim.domain.errors import DependencyFailed, ValidationFailed

SEP = "#"


def tenant_key(tenant: str, *parts: str) -> str:
    """A partition key that starts with the tenant: ``tenant#part#...``."""
    return SEP.join((tenant, *parts))


def transaction_refused(exc: TransactWriteError, index: int) -> bool:
    reasons = exc.cancellation_reasons if exc.cause_response_code else []
    reason = reasons[index] if index < len(reasons) else None
    return reason is not None and reason.code == "ConditionalCheckFailed"


def transaction() -> TransactWrite:
    return TransactWrite(connection=AssetModel._get_connection().connection)


# DynamoDB's limit on the items of one TransactWriteItems.
MAX_TRANSACTION_ITEMS = 100


@contextmanager
def dependency(what: str) -> Iterator[None]:
    try:
        yield
    except PynamoDBException as exc:
        raise DependencyFailed(f"DynamoDB {what} failed: {_cause(exc)}") from exc


def _cause(exc: PynamoDBException) -> str:
    return str(getattr(exc, "cause_response_code", None) or type(exc).__name__)


def conditional_failed(exc: PynamoDBException) -> bool:
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


def encode_cursor(last_key: Mapping[str, Any] | None) -> str | None:
    """An opaque page cursor (the last evaluated key, base64 JSON)."""
    if not last_key:
        return None
    return base64.urlsafe_b64encode(json.dumps(last_key, sort_keys=True).encode()).decode()


def decode_cursor(cursor: str | None, tenant: str) -> dict[str, Any] | None:
    """Parse a cursor; one that points outside the tenant is refused."""
    if not cursor:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError):
        raise ValidationFailed("cursor is not valid", field="cursor") from None
    if not isinstance(value, dict):
        raise ValidationFailed("cursor is not valid", field="cursor")
    attrs = {k: v.get("S") for k, v in value.items() if isinstance(v, dict)}
    # A cursor from another tenant's listing must not even reach DynamoDB.
    if attrs.get("tenant") != tenant and not str(attrs.get("pk") or "").startswith(f"{tenant}#"):
        raise ValidationFailed("cursor is not valid", field="cursor")
    return value
