"""The audit chain is append-only on the stack: records are created, never replaced.

Real boto3 against the local emulator (moto honours ``If-None-Match: *`` on
PutObject). A forger with write access who re-seals records and moves the
chain head must still be caught: ``verify`` reads every version of every record.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from quitclaim.adapters.audit_chain_store import HEAD
from quitclaim.bootstrap import audit_trail_service
from quitclaim.config import get_settings
from quitclaim.domain.audit_chain import digest, record_key

pytestmark = pytest.mark.integration


def _chain(tenant: str, blocks: int) -> None:
    trail = audit_trail_service()
    for n in range(blocks):
        trail.append(tenant, f"sqs/{tenant}-{n}", [{"action": "asset.decided", "tenant": tenant}])


def _versions(s3: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    listed = s3.list_object_versions(Bucket=bucket, Prefix=key)
    return [v for v in listed.get("Versions", []) if v["Key"] == key]


def test_a_record_is_written_once_and_never_replaced(local_stack: Any) -> None:
    # Given a chain with one record
    tenant = "audit-create-only"
    _chain(tenant, 1)
    s3, bucket = local_stack.client("s3"), get_settings().audit_bucket
    key = record_key(tenant, 1)
    original = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    store = audit_trail_service().store
    # When the same record is put again with the same bytes (a roll-forward)
    store.put_record(tenant, 1, original)
    # Then that is fine, and writes nothing
    assert len(_versions(s3, bucket, key)) == 1
    # And the emulator itself honours If-None-Match: * (no gap for local/gaps.py)
    with pytest.raises(s3.exceptions.ClientError) as err:
        s3.put_object(Bucket=bucket, Key=key, Body=b"{}", IfNoneMatch="*")
    assert err.value.response["Error"]["Code"] == "PreconditionFailed"
    # When other bytes are put under that record's key through the adapter
    store.put_record(tenant, 1, original.replace(b"asset.decided", b"asset.nothing"))
    # Then nothing is replaced: the record is as it was, one version only
    assert [v["IsLatest"] for v in _versions(s3, bucket, key)] == [True]
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == original


def test_resealed_records_and_a_moved_head_are_reported_as_overwritten(local_stack: Any) -> None:
    # Given a chain of three records, intact
    tenant = "audit-rewritten"
    _chain(tenant, 3)
    trail = audit_trail_service()
    assert trail.verify(tenant).intact
    s3, ddb, settings = local_stack.client("s3"), local_stack.client("dynamodb"), get_settings()
    bucket = settings.audit_bucket
    # When a forger with write access (a plain put, no condition) rewrites
    # records 2 and 3, re-sealing each over the one before, and moves the head
    prev = json.loads(s3.get_object(Bucket=bucket, Key=record_key(tenant, 1))["Body"].read())
    for seq in (2, 3):
        record = json.loads(
            s3.get_object(Bucket=bucket, Key=record_key(tenant, seq))["Body"].read()
        )
        record["events"] = [{"action": "nothing.happened", "tenant": tenant}]
        record["prev"] = prev["hash"]
        record["hash"] = digest(record)
        body = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
        s3.put_object(Bucket=bucket, Key=record_key(tenant, seq), Body=body)
        prev = record
    ddb.update_item(
        TableName=settings.audit_heads_table,
        Key={"tenant": {"S": tenant}, "sk": {"S": HEAD}},
        UpdateExpression="SET #hash = :hash",
        ExpressionAttributeNames={"#hash": "hash"},
        ExpressionAttributeValues={":hash": {"S": prev["hash"]}},
    )
    # Then verify reads every version, and names the first overwritten record
    result = trail.verify(tenant)
    assert not result.intact
    assert result.first_break is not None
    assert (result.first_break.seq, result.first_break.problem) == (2, "overwritten")
    assert result.first_break.key == record_key(tenant, 2)
