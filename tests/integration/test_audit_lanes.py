"""Twenty concurrent writers on one tenant's audit chain, on the local stack.

Real boto3 against the emulator (DynamoDB conditional transactions, S3
create-only puts). Each writer has its own ``AuditTrail``, as each Lambda
container has. The writers that lose lane 0 spread over lanes; the whole
must verify through ``quitclaim audit verify``, and tampering with a lane
record behind the system's back must still be caught (the full tamper
matrix is tests/unit/test_audit_lanes.py).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from botocore.config import Config
from click.testing import CliRunner

from cli.main import main
from devstack.emulator import BOTO_CONFIG, fake_session
from quitclaim.adapters.audit_chain_store import DynamoS3AuditChain
from quitclaim.bootstrap import current_clock
from quitclaim.config import get_settings
from quitclaim.usecases.audit_trail import AuditTrail

pytestmark = pytest.mark.integration
TENANT = "audit-lanes-20"
WRITERS, BLOCKS = 20, 3


def verify_cli() -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(main, ["audit", "verify", "--tenant", TENANT, "--json"])
    return result.exit_code, json.loads(result.output)


@pytest.fixture(scope="module")
def chain(local_stack: Any) -> dict[str, Any]:
    # Given twenty writers (own memory each, one client pool big enough for all)
    settings = get_settings()
    config = BOTO_CONFIG.merge(Config(max_pool_connections=WRITERS + 4))
    session = fake_session(settings.region)
    s3 = session.client("s3", endpoint_url=settings.endpoint_url, config=config)
    ddb = session.client("dynamodb", endpoint_url=settings.endpoint_url, config=config)
    store = DynamoS3AuditChain(
        ddb, s3, settings.audit_heads_table, settings.audit_bucket, current_clock()
    )
    start = threading.Barrier(WRITERS)
    failures: list[BaseException] = []

    def work(w: int) -> None:
        trail = AuditTrail(store, current_clock())
        start.wait()
        try:
            for i in range(BLOCKS):
                trail.append(TENANT, f"sqs/{w}-{i}", [{"action": "a", "tenant": TENANT, "w": w}])
        except BaseException as exc:  # surfaced below: a thread's error is otherwise lost
            failures.append(exc)

    # When they all append to one tenant's chain at once
    threads = [threading.Thread(target=work, args=(w,)) for w in range(WRITERS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert failures == []
    return {"s3": s3, "bucket": settings.audit_bucket, "store": store}


def _lane_keys(s3: Any, bucket: str) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"audit/{TENANT}/")
    for item in listed.get("Contents", []):
        parts = item["Key"].split("/")
        lane = int(parts[2][1:]) if len(parts) == 4 else 0
        found.setdefault(lane, []).append(item["Key"])
    return {k: sorted(v) for k, v in found.items()}


def test_twenty_concurrent_writers_leave_a_chain_that_verifies(chain: dict[str, Any]) -> None:
    # Then `audit verify` passes, with every block's event exactly once
    code, report = verify_cli()
    assert code == 0, report
    assert report["intact"] and report["events"] == WRITERS * BLOCKS
    events = CliRunner().invoke(main, ["audit", "show", "--tenant", TENANT]).output
    writers = [json.loads(line)["w"] for line in events.splitlines()]
    assert sorted(writers) == sorted(w for w in range(WRITERS) for _ in range(BLOCKS))
    # And the writers did not queue on one head: they spread over lanes
    assert len(_lane_keys(chain["s3"], chain["bucket"])) > 1


def test_an_altered_lane_record_is_caught_on_the_stack(chain: dict[str, Any]) -> None:
    s3, bucket = chain["s3"], chain["bucket"]
    lanes = _lane_keys(s3, bucket)
    lane = max((k for k in lanes if k), key=lambda k: len(lanes[k]))
    key = lanes[lane][0]
    record = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    record["events"][0]["w"] = -1
    # When a record of a lane is replaced by a plain put (no Object Lock locally)
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(record).encode())
    try:
        code, report = verify_cli()
        # Then verify names it
        assert code == 1
        assert (report["first_break"]["key"], report["first_break"]["problem"]) == (
            key,
            "overwritten",
        )
    finally:
        newest = s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"][0]
        s3.delete_object(Bucket=bucket, Key=key, VersionId=newest["VersionId"])
    assert verify_cli()[0] == 0


def test_a_lanes_cut_tail_is_caught_on_the_stack(chain: dict[str, Any]) -> None:
    s3, bucket = chain["s3"], chain["bucket"]
    lanes = _lane_keys(s3, bucket)
    lane = max((k for k in lanes if k), key=lambda k: len(lanes[k]))
    key = lanes[lane][-1]
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    # When the newest record of a lane is removed with every version
    for version in s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]:
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version["VersionId"])
    try:
        code, report = verify_cli()
        # Then the lane's head says a record is missing there
        assert code == 1
        assert (report["first_break"]["key"], report["first_break"]["problem"]) == (
            key,
            "missing",
        )
    finally:
        s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
    assert verify_cli()[0] == 0
