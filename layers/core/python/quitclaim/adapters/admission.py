"""The admission counter (DynamoDB) and the bulk lane (SQS) behind ingest's admission step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from quitclaim.domain.errors import DependencyFailed
from quitclaim.usecases.admit_uploads import LANE_ATTRIBUTE, Arrival, Lane

# The table's key and TTL attribute (infra/template.yaml AdmissionTable).
HASH_KEY = "tenant"
RANGE_KEY = "window"
TTL_ATTRIBUTE = "expires"


def _code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "unknown"))
    return type(exc).__name__


class DynamoAdmissionCounter:
    """One item per tenant and window; ``ADD`` is atomic, so concurrent batches count right."""

    def __init__(self, client: Any, table: str) -> None:
        self._dynamodb = client
        self._table = table

    def add(self, tenant: str, window: int, amount: int, expires_at: int) -> int:
        try:
            response = self._dynamodb.update_item(
                TableName=self._table,
                Key={HASH_KEY: {"S": tenant}, RANGE_KEY: {"N": str(window)}},
                UpdateExpression="ADD arrivals :n SET #ttl = :ttl",
                ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":n": {"N": str(amount)},
                    ":ttl": {"N": str(expires_at)},
                },
                ReturnValues="UPDATED_NEW",
            )
        except (BotoCoreError, ClientError) as exc:
            raise DependencyFailed(f"admission counter update failed: {_code(exc)}") from exc
        return int(response["Attributes"]["arrivals"]["N"])


class SqsBulkLane:
    """Forward messages to the bulk queue, body unchanged, marked with the lane attribute."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self._sqs = client
        self._queue = queue_url

    def forward(self, messages: Sequence[Arrival]) -> set[str]:
        failed: set[str] = set()
        for start in range(0, len(messages), 10):  # SendMessageBatch takes 10 at most
            chunk = messages[start : start + 10]
            entries = [
                {
                    # Batch entry ids allow [A-Za-z0-9_-] only; the index is enough.
                    "Id": str(i),
                    "MessageBody": m.body,
                    "MessageAttributes": {
                        LANE_ATTRIBUTE: {"DataType": "String", "StringValue": Lane.BULK.value}
                    },
                }
                for i, m in enumerate(chunk)
            ]
            try:
                response = self._sqs.send_message_batch(QueueUrl=self._queue, Entries=entries)
            except (BotoCoreError, ClientError):
                failed.update(m.message_id for m in chunk)
                continue
            failed.update(chunk[int(f["Id"])].message_id for f in response.get("Failed", []))
        return failed
