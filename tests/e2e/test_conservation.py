"""The conservation law on the local stack: the checker holds, and catches each breach.

Real uploads through the deployed handlers, then the checker (``quitclaim
check``) over the real tables, buckets and the tenant's audit chain; each breach is made by hand
behind the system's back and must be reported, then repaired.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import main
from quitclaim.adapters.dynamo import DynamoAssets, DynamoConsents
from quitclaim.bootstrap import audit_trail_service, conservation_service, registry_service
from quitclaim.config import get_settings
from quitclaim.domain.audit_chain import GENESIS, canonical, chain_prefix, record_key, seal
from quitclaim.domain.models import TenantPolicy
from tests.conftest import DEMO_NOW, FACES

pytestmark = pytest.mark.e2e
TENANT = "e2e-conservation"


@pytest.fixture(scope="module")
def world(local_stack: Any) -> dict[str, Any]:
    registry = registry_service()
    registry.create_tenant(TenantPolicy(tenant=TENANT))
    obama = (FACES / "enroll" / "obama" / "obama-portrait.jpg").read_bytes()
    sid = registry.enrol_subject(TENANT, "Obama", [obama], biometric_consent=True)
    consent = registry.grant_consent(
        TENANT, sid, ["web"], DEMO_NOW - timedelta(days=1), DEMO_NOW + timedelta(days=365)
    )
    s3 = local_stack.client("s3")
    uploads = {
        "office.jpg": (FACES / "uploads" / "obama-office.jpg").read_bytes(),
        "stranger.png": (FACES / "uploads" / "stranger-portrait.png").read_bytes(),
        "broken.jpg": b"\xff\xd8\xff\xe0 not really a jpeg",
    }
    for name, data in uploads.items():
        s3.put_object(
            Bucket=local_stack.outputs["UploadsBucketName"],
            Key=f"incoming/{TENANT}/{name}",
            Body=data,
            Metadata={"purpose": "web"},
        )
    local_stack.drain()
    return {"stack": local_stack, "s3": s3, "subject": sid, "consent": consent}


def check() -> Any:
    return conservation_service().check(TENANT)


def rules(report: Any) -> list[tuple[str, str | None]]:
    return sorted((v.rule, v.location) for v in report.violations)


def test_the_law_holds_after_real_uploads(world: dict[str, Any]) -> None:
    report = check()
    assert report.holds, report.violations
    assert (report.decisions, report.library, report.quarantine, report.rejected) == (3, 1, 1, 1)


def test_an_object_put_into_the_library_behind_the_gate_is_an_orphan(
    world: dict[str, Any],
) -> None:
    stack, s3 = world["stack"], world["s3"]
    library = stack.outputs["LibraryBucketName"]
    key = f"{TENANT}/sneaked-in.jpg"
    s3.put_object(Bucket=library, Key=key, Body=b"published without a decision")
    try:
        assert rules(check()) == [("orphan", key)]
    finally:
        s3.delete_object(Bucket=library, Key=key)
    assert check().holds


def test_an_approved_image_missing_from_the_library_is_misplaced(world: dict[str, Any]) -> None:
    stack, s3 = world["stack"], world["s3"]
    library = stack.outputs["LibraryBucketName"]
    key = f"{TENANT}/office.jpg"
    saved = s3.get_object(Bucket=library, Key=key)
    tags = s3.get_object_tagging(Bucket=library, Key=key)["TagSet"]
    s3.delete_object(Bucket=library, Key=key)
    try:
        assert rules(check()) == [("misplaced", key)]
    finally:
        s3.put_object(
            Bucket=library, Key=key, Body=saved["Body"].read(), Metadata=saved["Metadata"]
        )
        # with its clearance tags (docs/channels.md), as it was placed
        s3.put_object_tagging(Bucket=library, Key=key, Tagging={"TagSet": tags})
    assert check().holds


def test_a_library_image_without_its_appearance_rows_is_reported(world: dict[str, Any]) -> None:
    # Given the published image's appearance row lost (as a failed write lost it, issue 19)
    key = f"{TENANT}/office.jpg"
    [asset_id] = DynamoAssets().appearances(TENANT, world["subject"])
    record = DynamoAssets().get(TENANT, asset_id)
    assert record is not None and record.dest_key == key
    DynamoAssets().remove_appearance(TENANT, world["subject"], asset_id)
    try:
        # Then the checker names it: a withdrawal of that person would not find it
        report = check()
        assert rules(report) == [("appearances_missing", key)]
        [violation] = report.violations
        assert violation.asset_id == asset_id and world["subject"] in violation.detail
    finally:
        DynamoAssets().add_appearances(record)
    assert check().holds


def test_a_withdrawal_not_yet_applied_is_caught_then_repaired_by_the_stream(
    world: dict[str, Any],
) -> None:
    # Given the consent withdrawn in the table, the consents stream not yet consumed
    DynamoConsents().revoke(world["consent"], DEMO_NOW, source="test")
    # Then the approved image is reported: its consent no longer holds
    report = check()
    assert [(v.rule, v.detail) for v in report.violations] == [
        ("unconsented", "face 0: consent no longer valid")
    ]
    # When the stream's re-decision runs, the image leaves the library and the law holds
    world["stack"].drain()
    after = check()
    assert after.holds, after.violations
    assert (after.library, after.quarantine) == (0, 2)


def test_the_cli_prints_the_report_and_fails_on_a_breach(world: dict[str, Any]) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["check", "--tenant", TENANT], catch_exceptions=False)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["holds"] is True
    stack, s3 = world["stack"], world["s3"]
    uploads = stack.outputs["UploadsBucketName"]
    key = f"incoming/{TENANT}/never-processed.jpg"
    s3.put_object(Bucket=uploads, Key=key, Body=b"x")  # notification consumed by nobody yet
    try:
        bad = runner.invoke(main, ["check", "--tenant", TENANT], catch_exceptions=False)
        assert bad.exit_code == 1
        assert json.loads(bad.stdout)["violations"][0]["rule"] == "unprocessed"
    finally:
        s3.delete_object(Bucket=uploads, Key=key)
        stack.drain()


def _rewrite(s3: Any, bucket: str, key: str, body: bytes) -> None:
    """Leave ``body`` as the key's only version: a forger who can also purge versions.

    Object Lock forbids that in AWS; the emulator applies none (local/gaps.py), so a
    test can stand for the worst case (and restore what it changed the same way).
    """
    listed = s3.list_object_versions(Bucket=bucket, Prefix=key)
    for v in [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]:
        if v["Key"] == key:
            s3.delete_object(Bucket=bucket, Key=key, VersionId=v["VersionId"])
    s3.put_object(Bucket=bucket, Key=key, Body=body)


def test_a_tampered_audit_chain_breaks_the_law(world: dict[str, Any]) -> None:
    # Given a record of the tenant's audit chain altered in the audit bucket
    s3, bucket = world["s3"], world["stack"].outputs["AuditBucketName"]
    key = record_key(TENANT, 1)
    original = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    _rewrite(s3, bucket, key, original.replace(b'"events":[', b'"events":[{},'))
    try:
        # Then the checker reports the break, where it is
        assert rules(check()) == [("audit_chain", key)]
    finally:
        _rewrite(s3, bucket, key, original)
    assert check().holds


def test_a_decision_left_out_of_a_rebuilt_chain_is_unaudited(world: dict[str, Any]) -> None:
    # Given a forger with write access who rebuilt the whole chain (and its head)
    # without one decision's event: every link verifies
    s3, bucket = world["s3"], world["stack"].outputs["AuditBucketName"]
    settings = get_settings()
    ddb = world["stack"].client("dynamodb")
    head_key = {"tenant": {"S": TENANT}, "sk": {"S": "head"}}
    saved_head = ddb.get_item(TableName=settings.audit_heads_table, Key=head_key)["Item"]
    keys = sorted(
        o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=chain_prefix(TENANT))["Contents"]
    )
    originals = {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}
    hidden = None
    prev = GENESIS
    for k in keys:
        r = json.loads(originals[k])
        events = r["events"]
        if hidden is None and any(e["action"] == "asset.decided" for e in events):
            hidden = next(e["asset_id"] for e in events if e["action"] == "asset.decided")
            events = [e for e in events if e.get("asset_id") != hidden]
        forged = seal(TENANT, r["seq"], prev, r["block"], r["at"], events)
        _rewrite(s3, bucket, k, canonical(forged))
        prev = forged["hash"]
    ddb.put_item(
        TableName=settings.audit_heads_table,
        Item={**head_key, "seq": saved_head["seq"], "hash": {"S": prev}},
    )
    try:
        # Then the chain verifies, but the decision it hides is reported
        assert audit_trail_service().verify(TENANT).intact
        assert [(v.rule, v.asset_id) for v in check().violations] == [("unaudited", hidden)]
    finally:
        for k, body in originals.items():
            _rewrite(s3, bucket, k, body)
        ddb.put_item(TableName=settings.audit_heads_table, Item=saved_head)
    assert check().holds
