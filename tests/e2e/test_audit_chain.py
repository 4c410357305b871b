"""The audit hash chain on the local stack: real handlers append, verify catches tampering.

Real uploads (rejected ones: no face engine needed) and an API request
through the deployed handlers; every audit
event they log must be in the tenant's chain. Then records are altered,
deleted and swapped in the bucket behind the system's back, and
``quitclaim audit verify`` must name the first broken link (each tampering
is undone before the next).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from chalice.test import Client
from click.testing import CliRunner

from cli.main import main
from devstack.api_server import api_dir, load_app
from quitclaim.adapters.audit_chain_store import DynamoS3AuditChain
from quitclaim.bootstrap import audit_trail_service, onboarding_service
from quitclaim.config import get_settings
from quitclaim.domain.audit_chain import record_key
from quitclaim.observability import SERVICE
from quitclaim.usecases.audit_trail import AuditTrail
from tests.integration.faults import failing_calls
from tests.unit.fakes import FixedClock

pytestmark = pytest.mark.e2e
TENANT = "e2e-audit"


class _Captured(logging.Handler):
    """Every audit event the handlers log (the log line is the event)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.events: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "audit", None)
        if isinstance(event, dict):
            self.events.append(json.loads(json.dumps(event, default=str)))


@pytest.fixture(scope="module")
def world(local_stack: Any) -> dict[str, Any]:
    # Given a tenant (created directly, outside any handler). No faces here:
    # the chain does not care what was decided, and dlib would cost seconds.
    issued = onboarding_service().create_tenant(TENANT)
    s3 = local_stack.client("s3")
    captured = _Captured()
    std = logging.getLogger(SERVICE)
    std.addHandler(captured)
    try:
        # When uploads go through ingest and an API request creates a subject
        for name in ("broken.jpg", "empty.png"):
            s3.put_object(
                Bucket=local_stack.outputs["UploadsBucketName"],
                Key=f"incoming/{TENANT}/{name}",
                Body=f"not an image: {name}".encode(),
                Metadata={"purpose": "web"},
            )
        local_stack.drain()
        with Client(load_app(), stage_name="prod", project_dir=str(api_dir())) as client:
            reply = client.http.post(
                "/subjects",
                headers={
                    "Authorization": f"Bearer {issued.secret}",
                    "Content-Type": "application/json",
                },
                body=json.dumps({"display_name": "Person B"}),
            )
            assert reply.status_code == 201, reply.body
        local_stack.drain()
    finally:
        std.removeHandler(captured)
    return {
        "stack": local_stack,
        "s3": s3,
        "bucket": local_stack.outputs["AuditBucketName"],
        "logged": captured.events,
    }


def verify_cli(tenant: str = TENANT) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(main, ["audit", "verify", "--tenant", tenant, "--json"])
    return result.exit_code, json.loads(result.output)


def _event_key(event: dict[str, Any]) -> str:
    where = ("seq", "lane", "at")  # the record's place, not the event
    return json.dumps({k: v for k, v in event.items() if k not in where}, sort_keys=True)


def test_every_audit_event_of_a_handler_invocation_is_in_the_chain(
    world: dict[str, Any],
) -> None:
    logged = [e for e in world["logged"] if e["tenant"] == TENANT]
    # Then there was something to chain: the decisions and the API's subject
    actions = Counter(e["action"] for e in logged)
    assert actions["asset.decided"] == 2 and actions["subject.created"] == 1, actions
    # And the chain holds exactly what was logged, nothing missing, nothing twice
    chained = audit_trail_service().events(TENANT)
    assert Counter(map(_event_key, chained)) == Counter(map(_event_key, logged))


def test_verify_passes_on_the_untouched_chain(world: dict[str, Any]) -> None:
    code, report = verify_cli()
    assert code == 0, report
    assert report["intact"] and report["records"] >= 3 and report["events"] >= 3
    assert report["first_break"] is None
    # And `audit show` prints those events, one JSON line each, with their record's seq
    shown = CliRunner().invoke(main, ["audit", "show", "--tenant", TENANT])
    lines = [json.loads(line) for line in shown.output.splitlines()]
    assert len(lines) == report["events"] and lines[0]["seq"] == 1
    later = CliRunner().invoke(main, ["audit", "show", "--tenant", TENANT, "--since", "2999-01-01"])
    assert later.exit_code == 0 and later.output == ""


def _body(s3: Any, bucket: str, seq: int) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=record_key(TENANT, seq))["Body"].read())


def _put(s3: Any, bucket: str, seq: int, body: bytes) -> None:
    # A tamperer's plain put (no If-None-Match): a new version of the record.
    s3.put_object(Bucket=bucket, Key=record_key(TENANT, seq), Body=body)


def _undo(s3: Any, bucket: str, *seqs: int) -> None:
    """Take back a tampering: every version but the first, and every delete marker.

    Possible here only because the emulator applies no Object Lock (local/gaps.py).
    """
    for seq in seqs:
        key = record_key(TENANT, seq)
        listed = s3.list_object_versions(Bucket=bucket, Prefix=key)
        versions = [v for v in listed.get("Versions", []) if v["Key"] == key]
        markers = [m for m in listed.get("DeleteMarkers", []) if m["Key"] == key]
        for later in [*versions[:-1], *markers]:  # listed newest first
            s3.delete_object(Bucket=bucket, Key=key, VersionId=later["VersionId"])


def test_an_altered_record_is_reported_as_overwritten_at_its_seq(world: dict[str, Any]) -> None:
    s3, bucket = world["s3"], world["bucket"]
    record = json.loads(_body(s3, bucket, 2))
    record["events"][0]["status"] = "approved-by-nobody"
    _put(s3, bucket, 2, json.dumps(record).encode())
    try:
        code, report = verify_cli()
        assert code == 1
        assert report["first_break"]["seq"] == 2
        assert report["first_break"]["key"] == record_key(TENANT, 2)
        assert report["first_break"]["problem"] == "overwritten"
    finally:
        _undo(s3, bucket, 2)
    assert verify_cli()[0] == 0


def test_a_deleted_record_is_reported_at_its_seq(world: dict[str, Any]) -> None:
    s3, bucket = world["s3"], world["bucket"]
    key = record_key(TENANT, 2)
    # A delete (a marker; its version stays) is reported as deleted
    s3.delete_object(Bucket=bucket, Key=key)
    try:
        code, report = verify_cli()
        assert code == 1
        assert (report["first_break"]["seq"], report["first_break"]["problem"]) == (2, "deleted")
    finally:
        _undo(s3, bucket, 2)
    assert verify_cli()[0] == 0
    # A record gone with every version (Object Lock forbids it in AWS) is missing
    original = _body(s3, bucket, 2)
    [version] = s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]
    s3.delete_object(Bucket=bucket, Key=key, VersionId=version["VersionId"])
    try:
        code, report = verify_cli()
        assert code == 1
        assert (report["first_break"]["seq"], report["first_break"]["problem"]) == (2, "missing")
    finally:
        s3.put_object(Bucket=bucket, Key=key, Body=original, IfNoneMatch="*")
    assert verify_cli()[0] == 0


def test_two_swapped_records_are_reported_at_the_first(world: dict[str, Any]) -> None:
    s3, bucket = world["s3"], world["bucket"]
    first, third = _body(s3, bucket, 1), _body(s3, bucket, 3)
    _put(s3, bucket, 1, third)
    _put(s3, bucket, 3, first)
    try:
        code, report = verify_cli()
        assert code == 1
        assert (report["first_break"]["seq"], report["first_break"]["problem"]) == (
            1,
            "overwritten",
        )
    finally:
        _undo(s3, bucket, 1, 3)
    assert verify_cli()[0] == 0


def test_the_audit_bucket_is_deployed_versioned(world: dict[str, Any]) -> None:
    s3, bucket = world["s3"], world["bucket"]
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    # Object Lock is not applied by the emulator's CloudFormation (local/gaps.py):
    # tampering works here, and verify is what must catch it.
    with pytest.raises(s3.exceptions.ClientError) as err:
        s3.get_object_lock_configuration(Bucket=bucket)
    assert "ObjectLockConfigurationNotFound" in str(err.value)


def test_concurrent_appenders_on_the_stack_leave_no_gap_and_no_fork(
    world: dict[str, Any],
) -> None:
    tenant = "e2e-audit-concurrent"
    trail = audit_trail_service()

    failures: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(3):
                trail.append(tenant, f"sqs/{n}-{i}", [{"action": "a", "tenant": tenant}])
        except BaseException as exc:  # surfaced below: a thread's error is otherwise lost
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert failures == []
    result = trail.verify(tenant)
    assert result.intact, result.first_break
    # (records: the blocks, plus lane 0's anchors of any lane that contention opened)
    assert result.events == 12 and result.records >= 12


def test_a_retried_work_item_appends_no_second_block(world: dict[str, Any]) -> None:
    # Given an ingest delivery whose chain append fails after the head moved
    stack, s3 = world["stack"], world["s3"]
    trail = audit_trail_service()
    before = trail.verify(TENANT)
    s3.put_object(
        Bucket=stack.outputs["UploadsBucketName"],
        Key=f"incoming/{TENANT}/retried.jpg",
        Body=b"\xff\xd8\xff\xe0 retried, and no jpeg either",
        Metadata={"purpose": "web"},
    )
    sqs = stack.client("sqs")
    queue = stack.resources["IngestQueue"]
    message = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1)["Messages"][0]
    event = {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-central-1:123456789012:ingest",
                "awsRegion": "eu-central-1",
            }
        ]
    }
    with (
        failing_calls("s3", "PutObject", "SlowDown", times=1) as failed,
        pytest.raises(BatchProcessingError),
    ):
        stack.runtime.invoke("IngestFunction", event)
    # Then the delivery failed (a batch of one: the whole invocation), to be retried
    assert failed == [1]
    # When the same message is delivered again
    second = stack.runtime.invoke("IngestFunction", event)
    assert second["batchItemFailures"] == []
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    # Then its decision is in the chain once, in one new record
    after = trail.verify(TENANT)
    assert after.intact, after.first_break
    assert after.records == before.records + 1
    decided = [e for e in trail.events(TENANT) if e["action"] == "asset.decided"]
    assert len(decided) == len({e["asset_id"] for e in decided}) == 3


def test_under_object_lock_a_record_version_cannot_be_deleted(world: dict[str, Any]) -> None:
    # Given a bucket locked as the template asks (moto's CloudFormation drops the
    # lock, local/gaps.py; its S3 API keeps it) and the chain adapter writing to it
    stack = world["stack"]
    s3 = stack.client("s3")
    bucket = "quitclaim-audit-lock-probe"
    s3.create_bucket(
        Bucket=bucket,
        CreateBucketConfiguration={"LocationConstraint": get_settings().region},
        ObjectLockEnabledForBucket=True,
    )
    s3.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
        },
    )
    chain = DynamoS3AuditChain(
        stack.client("dynamodb"), s3, get_settings().audit_heads_table, bucket, FixedClock()
    )
    trail = AuditTrail(chain, FixedClock())
    tenant = "e2e-audit-locked"
    trail.append(tenant, "invoke/r1", [{"action": "a", "tenant": tenant}])
    key = record_key(tenant, 1)
    # Then the record is locked in COMPLIANCE mode, and its version cannot be deleted
    assert s3.head_object(Bucket=bucket, Key=key)["ObjectLockMode"] == "COMPLIANCE"
    version = s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"][0]["VersionId"]
    with pytest.raises(s3.exceptions.ClientError) as err:
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
    assert err.value.response["Error"]["Code"] == "AccessDenied"
    # And a delete marker (allowed) hides it from a listing: verify says so...
    marker = s3.delete_object(Bucket=bucket, Key=key)["VersionId"]
    broken = trail.verify(tenant).first_break
    assert broken is not None and (broken.seq, broken.problem) == (1, "deleted")
    # ...and removing the marker brings the locked version back: intact again
    s3.delete_object(Bucket=bucket, Key=key, VersionId=marker)
    assert trail.verify(tenant).intact


def test_a_registry_change_from_the_cli_is_chained_too(world: dict[str, Any]) -> None:
    # When an operator creates a tenant with the CLI (no handler involved)
    tenant = "e2e-audit-cli"
    done = CliRunner().invoke(
        main,
        ["tenants", "create", tenant, "--name", "Audit CLI", "--contact-email", "ops@example.org"],
    )
    assert done.exit_code == 0, done.output
    # Then its audit event is in the new tenant's chain, and the chain verifies
    assert [e["action"] for e in audit_trail_service().events(tenant)] == ["tenant.created"]
    assert verify_cli(tenant)[0] == 0
