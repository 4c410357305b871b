"""moto's TransactWriteItems at a cost per item, not per table (gap 18 in ``gaps.py``).

moto backs each transaction up by deep-copying every table it touches, whole,
to roll back on a failed condition: a transaction on a table of N items costs
O(N), and a load that writes one per upload slows with every upload (a
2,000-upload run spent most of its server time copying the assets table).
DynamoDB checks every condition before it writes anything, so this does the
same: conditions first, against the state before the transaction (the writes
lock is held, and no two operations may touch one item, so the order does
not matter), then the writes. Cancelled on a condition, nothing was written
and nothing needs restoring. Only a write that itself fails (a validation
error, a bug) restores the items written before it from per-item copies.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

_OPERATIONS = frozenset({"ConditionCheck", "Put", "Delete", "Update"})
# One entry per operation, as moto's TransactionCanceledException takes them:
# (code, message, old item) or (None, None, None) for an operation that passed.
Outcome = tuple[Any, Any, Any]
_PASSED: Outcome = (None, None, None)


def install() -> None:
    """Replace moto's ``transact_write_items`` (before the writes' lock wraps it)."""
    from moto.dynamodb.models import DynamoDBBackend

    if getattr(DynamoDBBackend.transact_write_items, "_quitclaim_per_item", False):
        return
    if getattr(DynamoDBBackend.transact_write_items, "_quitclaim_serialised", False):
        raise RuntimeError("transactions must be replaced before writes are serialised")
    transact_write_items._quitclaim_per_item = True  # type: ignore[attr-defined]
    functools.update_wrapper(transact_write_items, DynamoDBBackend.transact_write_items)
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _errors() -> Any:
    from moto.dynamodb import exceptions

    return exceptions


def _fatal() -> tuple[type[Exception], ...]:
    """The failures moto raises for the whole request, not per operation."""
    errors = _errors()
    return (errors.MultipleTransactionsException, errors.MockValidationException)


def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    """moto's backend method: every condition checked, then every write applied."""
    errors = _errors()
    if len(transact_items) > 100:
        raise errors.TooManyTransactionsException()
    outcomes = _conditions(self, transact_items)
    if any(code is not None for code, _, _ in outcomes):
        raise errors.TransactionCanceledException(outcomes)
    written: list[tuple[str, dict[str, Any], Any]] = []
    for index, entry in enumerate(transact_items):
        op_type, op = next(iter(entry.items()))
        key = _key_of(self, op_type, op)
        before = copy.deepcopy(self.get_item(op["TableName"], key))
        try:
            _write(self, op_type, op, key)
        except Exception as exc:
            _undo(self, written)
            if isinstance(exc, _fatal()):
                raise
            outcomes[index] = (type(exc).__name__, str(exc), None)
            raise errors.TransactionCanceledException(outcomes) from exc
        written.append((op["TableName"], key, before))


def _key_of(backend: Any, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        return dict(op["Key"])
    table = backend.get_table(op["TableName"])
    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = op["Item"][table.range_key_attr]
    return key


def _conditions(backend: Any, items: list[dict[str, Any]]) -> list[Outcome]:
    """Each operation's outcome against the state before the transaction."""
    outcomes: list[Outcome] = []
    seen: set[tuple[str, str]] = set()
    for entry in items:
        if len(entry) > 1:
            raise _errors().TransactWriteSingleOpException
        op_type, op = next(iter(entry.items()))
        if op_type not in _OPERATIONS:
            outcomes.append(("ValueError", "Unsupported transaction operation", None))
            continue
        try:
            outcomes.append(_condition(backend, op_type, op, seen))
        except _fatal():
            raise
        except Exception as exc:  # moto reports any other failure per operation
            outcomes.append((type(exc).__name__, str(exc), None))
    return outcomes


def _condition(
    backend: Any, op_type: str, op: dict[str, Any], seen: set[tuple[str, str]]
) -> Outcome:
    from moto.dynamodb.comparisons import get_filter_expression

    key = _key_of(backend, op_type, op)
    unique = (str(op["TableName"]), str(dict(sorted(key.items()))))
    if unique in seen:
        raise _errors().MultipleTransactionsException()
    seen.add(unique)
    current = backend.get_item(op["TableName"], key)
    expression = op.get("ConditionExpression")
    if expression is None or get_filter_expression(
        expression,
        op.get("ExpressionAttributeNames"),
        op.get("ExpressionAttributeValues"),
    ).expr(current):
        return _PASSED
    old = None
    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
        old = current.to_json()["Attributes"]
    failed = _errors().ConditionalCheckFailed(item=old)
    return ("ConditionalCheckFailed", str(failed.message), old)


def _write(backend: Any, op_type: str, op: dict[str, Any], key: dict[str, Any]) -> None:
    common = {
        "condition_expression": op.get("ConditionExpression"),
        "expression_attribute_names": op.get("ExpressionAttributeNames"),
        "expression_attribute_values": op.get("ExpressionAttributeValues"),
    }
    if op_type == "Put":
        backend.put_item(op["TableName"], op["Item"], **common)
    elif op_type == "Delete":
        backend.delete_item(op["TableName"], key, **common)
    elif op_type == "Update":
        backend.update_item(
            op["TableName"], key, update_expression=op["UpdateExpression"], **common
        )


def _undo(backend: Any, written: list[tuple[str, dict[str, Any], Any]]) -> None:
    """Restore the items written before a failed write, newest first."""
    for table, key, item in reversed(written):
        if item is None:
            backend.delete_item(table, key)
        else:
            backend.put_item(table, item.to_json()["Attributes"])
