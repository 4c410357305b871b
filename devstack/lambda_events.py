"""Events in the shapes Lambda hands a function: stream records, SQS message attributes,
and how Lambda reads a batch's ``batchItemFailures`` answer."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from devstack import gaps


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


def iso_time(value: Any) -> str | None:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")
    return None


def batch_item_failures(response: Any, ids: set[str]) -> set[str] | None:
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


def lambda_message_attribute(value: dict[str, Any]) -> dict[str, Any]:
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
