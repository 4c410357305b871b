"""The AuditChainStore port: chain heads in DynamoDB, records in the audit bucket.

Table (``AuditHeadsTable``, key ``tenant`` + ``sk``): per tenant one
``sk = "head"`` item (``seq``, ``hash``, ``pending`` while the newest record
is not known to be in the bucket) and one ``sk = "block#<id>"`` marker per
appended block (expires after ``BLOCK_MEMORY``, longer than any retry of its
work item: SQS keeps a message 14 days at most). ``advance`` is one
transaction: the head moves only from the state it was read in, and the
block marker is created only if absent; that serialises one tenant's appends
across Lambdas and makes a retried block a no-op.

Records go to ``audit/<tenant>/<seq>.json`` in the audit bucket (Object Lock,
versioned, SSE-KMS under the stack key by bucket default).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

from botocore.exceptions import ClientError

from quitclaim.domain.audit_chain import ChainHead, chain_prefix, record_key
from quitclaim.domain.errors import DependencyFailed
from quitclaim.domain.ports import Clock

HEAD = "head"
BLOCK_MEMORY = timedelta(days=30)


class DynamoS3AuditChain:
    """Chain heads and block markers in DynamoDB, records in S3."""

    def __init__(self, dynamodb: Any, s3: Any, table: str, bucket: str, clock: Clock) -> None:
        self._ddb = dynamodb
        self._s3 = s3
        self._table = table
        self._bucket = bucket
        self._clock = clock

    def head(self, tenant: str) -> ChainHead | None:
        try:
            item = self._ddb.get_item(
                TableName=self._table,
                Key={"tenant": {"S": tenant}, "sk": {"S": HEAD}},
                ConsistentRead=True,
            ).get("Item")
        except ClientError as exc:
            raise DependencyFailed(f"audit head read failed: {_code(exc)}") from exc
        if item is None:
            return None
        pending = item.get("pending", {}).get("B")
        return ChainHead(
            int(item["seq"]["N"]), item["hash"]["S"], bytes(pending) if pending else None
        )

    def advance(
        self, tenant: str, expected: ChainHead | None, record: Mapping[str, Any], body: bytes
    ) -> str:
        head_put: dict[str, Any] = {
            "TableName": self._table,
            "Item": {
                "tenant": {"S": tenant},
                "sk": {"S": HEAD},
                "seq": {"N": str(record["seq"])},
                "hash": {"S": str(record["hash"])},
                "pending": {"B": body},
            },
        }
        if expected is None:
            head_put["ConditionExpression"] = "attribute_not_exists(sk)"
        else:
            head_put["ConditionExpression"] = "#seq = :seq AND #hash = :hash"
            head_put["ExpressionAttributeNames"] = {"#seq": "seq", "#hash": "hash"}
            head_put["ExpressionAttributeValues"] = {
                ":seq": {"N": str(expected.seq)},
                ":hash": {"S": expected.hash},
            }
        expires = self._clock.now() + BLOCK_MEMORY
        marker = {
            "TableName": self._table,
            "Item": {
                "tenant": {"S": tenant},
                "sk": {"S": f"block#{record['block']}"},
                "seq": {"N": str(record["seq"])},
                "ttl": {"N": str(int(expires.timestamp()))},
            },
            "ConditionExpression": "attribute_not_exists(sk)",
        }
        try:
            self._ddb.transact_write_items(TransactItems=[{"Put": head_put}, {"Put": marker}])
        except ClientError as exc:
            code = _code(exc)
            if code == "TransactionCanceledException":
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                    return "duplicate"
                if reasons and reasons[0] in ("ConditionalCheckFailed", "TransactionConflict"):
                    return "race"
                if "TransactionConflict" in reasons:
                    return "race"
            if code == "TransactionConflictException":
                return "race"
            raise DependencyFailed(f"audit head advance failed: {code}") from exc
        return "advanced"

    def put_record(self, tenant: str, seq: int, body: bytes) -> None:
        try:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=record_key(tenant, seq),
                Body=body,
                ContentType="application/json",
                # Object Lock's default retention needs an integrity checksum on PUT.
                ChecksumAlgorithm="SHA256",
            )
        except ClientError as exc:
            raise DependencyFailed(f"audit record put failed: {_code(exc)}") from exc

    def mark_written(self, tenant: str, seq: int) -> None:
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={"tenant": {"S": tenant}, "sk": {"S": HEAD}},
                UpdateExpression="REMOVE pending",
                ConditionExpression="#seq = :seq",
                ExpressionAttributeNames={"#seq": "seq"},
                ExpressionAttributeValues={":seq": {"N": str(seq)}},
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return  # the head moved on: its mover rolled this record forward first
            raise DependencyFailed(f"audit head update failed: {_code(exc)}") from exc

    def records(self, tenant: str) -> Iterator[tuple[str, bytes]]:
        try:
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=chain_prefix(tenant)
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    body = self._s3.get_object(Bucket=self._bucket, Key=obj["Key"])["Body"].read()
                    yield obj["Key"], bytes(body)
        except ClientError as exc:
            raise DependencyFailed(f"audit records read failed: {_code(exc)}") from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))
