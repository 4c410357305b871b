"""The AuditChainStore port: chain heads in DynamoDB, records in the audit bucket.

Table (``AuditHeadsTable``, key ``tenant`` + ``sk``): per tenant one
``sk = "head"`` item (``seq``, ``hash``, ``pending`` while the newest record
is not known to be in the bucket) and one ``sk = "block#<id>"`` marker per
appended block (expires after ``BLOCK_MEMORY``, longer than any retry of its
work item: SQS keeps a message 14 days at most). ``advance`` is one
transaction: the head moves only from the state it was read in, and the
block marker is created only if absent; that serialises one tenant's appends
across Lambdas and makes a retried block a no-op.

Lanes (``domain/audit_chain.py``): lane ``k > 0`` has its own head item
under its own partition key, ``tenant = "<tenant>#s<kkk>"`` (``sk = "head"``),
and records ``audit/<tenant>/s<kkk>/<seq>.json``. Block markers live under
``tenant = "<tenant>#b<nn>"``, ``nn`` from the block id's hash: the same
place whatever the lane, so a retry on another lane is still a duplicate.
Spreading the partition keys is the point: DynamoDB gives one partition
about 1,000 write units a second, and a tenant's backlog needs several
times that (docs/audit-capacity.md).

Records go to ``audit/<tenant>/<seq>.json`` in the audit bucket (Object Lock,
versioned, SSE-KMS under the stack key by bucket default), created only:
every put carries ``If-None-Match: *`` (the bucket policy denies any other
put under ``audit/``), so a record is never replaced, and ``records`` reads
every stored version so that one replaced by other means is reported.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

from botocore.exceptions import ClientError

from quitclaim.domain.audit_chain import LANES, ChainHead, chain_prefix, record_key
from quitclaim.domain.audit_checkpoint import checkpoint_prefix
from quitclaim.domain.errors import DependencyFailed
from quitclaim.domain.ports import Clock
from quitclaim.observability import count

HEAD = "head"
# Partition keys the block markers of one tenant are spread over.
MARKER_SPREAD = 16


def head_key(tenant: str, lane: int) -> dict[str, Any]:
    """The key of a lane's head item (lane 0: the original ``tenant`` / ``head``)."""
    return {"tenant": {"S": f"{tenant}#s{lane:03d}" if lane else tenant}, "sk": {"S": HEAD}}


def marker_key(tenant: str, block: str) -> dict[str, Any]:
    """Where a block's marker lives: a function of the block id only."""
    spread = int.from_bytes(hashlib.sha256(block.encode()).digest()[:4], "big") % MARKER_SPREAD
    return {"tenant": {"S": f"{tenant}#b{spread:02d}"}, "sk": {"S": f"block#{block}"}}


BLOCK_MEMORY = timedelta(days=30)
# What S3 answers a create-only put whose key exists (or is being created).
_EXISTS = ("PreconditionFailed", "ConditionalRequestConflict")


class DynamoS3AuditChain:
    """Chain heads and block markers in DynamoDB, records in S3."""

    def __init__(self, dynamodb: Any, s3: Any, table: str, bucket: str, clock: Clock) -> None:
        self._ddb = dynamodb
        self._s3 = s3
        self._table = table
        self._bucket = bucket
        self._clock = clock

    def head(self, tenant: str, lane: int = 0) -> ChainHead | None:
        try:
            item = self._ddb.get_item(
                TableName=self._table,
                Key=head_key(tenant, lane),
                ConsistentRead=True,
            ).get("Item")
        except ClientError as exc:
            raise DependencyFailed(f"audit head read failed: {_code(exc)}") from exc
        return None if item is None else _head(item)

    def heads(self, tenant: str) -> dict[int, ChainHead]:
        """Every lane's head (strongly consistent batch reads: one partition key each)."""
        lanes = {head_key(tenant, lane)["tenant"]["S"]: lane for lane in range(LANES + 1)}
        keys = [head_key(tenant, lane) for lane in range(LANES + 1)]
        found: dict[int, ChainHead] = {}
        try:
            while keys:
                batch, keys = keys[:100], keys[100:]
                request = {self._table: {"Keys": batch, "ConsistentRead": True}}
                while request:
                    reply = self._ddb.batch_get_item(RequestItems=request)
                    for item in reply.get("Responses", {}).get(self._table, []):
                        found[lanes[item["tenant"]["S"]]] = _head(item)
                    request = reply.get("UnprocessedKeys") or {}
        except ClientError as exc:
            raise DependencyFailed(f"audit heads read failed: {_code(exc)}") from exc
        return found

    def advance(
        self, tenant: str, expected: ChainHead | None, record: Mapping[str, Any], body: bytes
    ) -> str:
        head_put: dict[str, Any] = {
            "TableName": self._table,
            "Item": {
                **head_key(tenant, int(record.get("lane", 0))),
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
                **marker_key(tenant, str(record["block"])),
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

    def put_record(self, tenant: str, seq: int, body: bytes, lane: int = 0) -> None:
        if not self._put_once(record_key(tenant, seq, lane), body, "application/json", "record"):
            # The record is there: a roll-forward of a put that landed
            # before its appender died (the head serialises seqs, so only
            # that one body was sealed for it). The functions cannot read
            # the bucket; `audit verify` checks what is stored.
            count("AuditRecordExisted")

    def _put_once(self, key: str, body: bytes, content_type: str, what: str) -> bool:
        """Create ``key`` (False: it already exists; a stored object is never replaced)."""
        try:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                # Object Lock's default retention needs an integrity checksum on PUT.
                ChecksumAlgorithm="SHA256",
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if _code(exc) in _EXISTS:
                return False
            raise DependencyFailed(f"audit {what} put failed: {_code(exc)}") from exc
        return True

    def mark_written(self, tenant: str, seq: int, lane: int = 0) -> None:
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key=head_key(tenant, lane),
                UpdateExpression="REMOVE pending",
                ConditionExpression="#seq = :seq",
                ExpressionAttributeNames={"#seq": "seq"},
                ExpressionAttributeValues={":seq": {"N": str(seq)}},
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return  # the head moved on: its mover rolled this record forward first
            raise DependencyFailed(f"audit head update failed: {_code(exc)}") from exc

    def versions(self, tenant: str) -> list[tuple[str, str, str | None]]:
        """``(key, version id, ETag)`` of every stored version in ``records``' order.

        A delete marker has ETag None. One request per 1,000 versions.
        """
        try:
            pages = self._s3.get_paginator("list_object_versions").paginate(
                Bucket=self._bucket, Prefix=chain_prefix(tenant)
            )
            versions: dict[str, list[tuple[str, str]]] = {}
            markers: dict[str, list[str]] = {}
            for page in pages:
                # S3 lists a key's versions newest first.
                for version in page.get("Versions", []):
                    entry = (str(version["VersionId"]), str(version.get("ETag", "")).strip('"'))
                    versions.setdefault(version["Key"], []).insert(0, entry)
                for marker in page.get("DeleteMarkers", []):
                    markers.setdefault(marker["Key"], []).append(str(marker["VersionId"]))
        except ClientError as exc:
            raise DependencyFailed(f"audit records list failed: {_code(exc)}") from exc
        found: list[tuple[str, str, str | None]] = []
        for key in sorted(set(versions) | set(markers)):
            found.extend((key, version_id, etag) for version_id, etag in versions.get(key, []))
            found.extend((key, version_id, None) for version_id in markers.get(key, []))
        return found

    def read_version(self, key: str, version_id: str) -> bytes:
        try:
            body = self._s3.get_object(Bucket=self._bucket, Key=key, VersionId=version_id)
            return bytes(body["Body"].read())
        except ClientError as exc:
            raise DependencyFailed(f"audit record read failed: {_code(exc)}") from exc

    def latest_checkpoint(self, tenant: str) -> bytes | None:
        """The newest checkpoint's bytes (key order is age order), or None."""
        kwargs: dict[str, Any] = {"Bucket": self._bucket, "Prefix": checkpoint_prefix(tenant)}
        newest: str | None = None
        try:
            while True:
                page = self._s3.list_objects_v2(**kwargs)
                for entry in page.get("Contents", []):
                    newest = max(newest or "", str(entry["Key"]))
                if not page.get("IsTruncated"):
                    break
                kwargs["ContinuationToken"] = page["NextContinuationToken"]
            if newest is None:
                return None
            body = self._s3.get_object(Bucket=self._bucket, Key=newest)["Body"]
            return bytes(body.read())
        except ClientError as exc:
            raise DependencyFailed(f"audit checkpoint read failed: {_code(exc)}") from exc

    def put_checkpoint(self, key: str, data: bytes) -> None:
        # An existing one is the same chain checkpointed twice: same name, same digest prefix.
        self._put_once(key, data, "application/gzip", "checkpoint")

    def records(self, tenant: str) -> Iterator[tuple[str, bytes | None]]:
        """Every stored version of every record (oldest first per key), and delete markers.

        A listing of current objects would show only the newest version: a
        record overwritten with a re-sealed body would pass. Needs
        ``s3:ListBucketVersions`` and ``s3:GetObjectVersion`` (an operator's).
        """
        try:
            pages = self._s3.get_paginator("list_object_versions").paginate(
                Bucket=self._bucket, Prefix=chain_prefix(tenant)
            )
            versions: dict[str, list[str]] = {}
            markers: dict[str, int] = {}
            for page in pages:
                # S3 lists a key's versions newest first.
                for version in page.get("Versions", []):
                    versions.setdefault(version["Key"], []).insert(0, version["VersionId"])
                for marker in page.get("DeleteMarkers", []):
                    markers[marker["Key"]] = markers.get(marker["Key"], 0) + 1
            for key in sorted(set(versions) | set(markers)):
                for version_id in versions.get(key, []):
                    body = self._s3.get_object(Bucket=self._bucket, Key=key, VersionId=version_id)
                    yield key, bytes(body["Body"].read())
                for _ in range(markers.get(key, 0)):
                    yield key, None
        except ClientError as exc:
            raise DependencyFailed(f"audit records read failed: {_code(exc)}") from exc


def _head(item: Mapping[str, Any]) -> ChainHead:
    pending = item.get("pending", {}).get("B")
    return ChainHead(int(item["seq"]["N"]), item["hash"]["S"], bytes(pending) if pending else None)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))
