"""Metering and the monthly quota on the local stack: real handlers, real tables.

Reconciliation (issue #9): two tenants run the demo's uploads; the usage
export of each equals what the asset records say, recomputed here from the
records and the buckets; redelivering an S3 event and a webhook delivery that
were already processed changes no counter. Quota: a tenant allowed 3 images a
month uploads 5; 3 are decided, 2 are held in place, and the next month's
release decides them, nothing lost.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from chalice.test import Client
from click.testing import CliRunner
from PIL import Image

from cli.main import main
from devstack.api_server import api_dir, load_app
from devstack.demo import DemoUpload, collect_report, enrol_people, upload_all
from quitclaim.adapters.dynamo import DynamoApiKeys, DynamoAssets, DynamoSubjects
from quitclaim.adapters.dynamo.webhook_store import DynamoWebhooks
from quitclaim.bootstrap import (
    api_keys_service,
    conservation_service,
    onboarding_service,
    registry_service,
    usage_service,
    webhook_admin,
)
from quitclaim.config import get_settings
from quitclaim.domain.records import AssetRecord
from quitclaim.domain.registry import Role
from quitclaim.domain.usage import BYTES_PER_GB
from quitclaim.usecases.keys import ApiKeys
from quitclaim.usecases.ledger import every_asset
from tests.conftest import DEMO_NOW, FACES
from tests.e2e.test_webhooks_out import Receiver

pytestmark = pytest.mark.e2e

# Two tenants of this module's own, each running the demo's uploads ("meter-b" with a
# webhook receiver). Not the "demo" tenant: another test on the worker may have loaded it
# at another clock, and storage is billed from when each image was placed.
TENANTS = ("meter-a", "meter-b")
COUNTERS = ("images_scanned", "faces_processed", "matches_made", "api_calls", "webhook_deliveries")


@pytest.fixture(scope="module")
def api(local_stack: Any) -> Iterator[Client]:
    with Client(load_app(), stage_name="prod", project_dir=str(api_dir())) as client:
        yield client


def get_usage(api: Client, key: str, month: str = "2026-11") -> dict[str, Any]:
    reply = api.http.get(f"/usage?month={month}", headers={"Authorization": f"Bearer {key}"})
    assert reply.status_code == 200, reply.body
    found: dict[str, Any] = json.loads(reply.body)
    return found


def run_demo_uploads(stack: Any, tenant: str, receiver_url: str | None) -> list[DemoUpload]:
    """The demo for one tenant: its people and consents, then every upload, drained."""
    enrol_people(registry_service(), FACES, tenant)
    if receiver_url is not None:
        issued = ApiKeys(DynamoApiKeys()).issue(tenant, Role.ADMIN, "hooks")
        webhook_admin().register_endpoint(
            api_keys_service().resolve(issued.secret).tenant,
            receiver_url,
            ["asset.approved", "asset.quarantined"],
            "DAM",
        )
    files = sorted(p for p in (FACES / "uploads").iterdir() if p.is_file())
    uploads = upload_all(stack.client("s3"), stack.outputs["UploadsBucketName"], files, tenant)
    stack.drain(timeout_s=300)
    return uploads


@pytest.fixture(scope="module")
def demo_runs(local_stack: Any) -> Iterator[dict[str, Any]]:
    # Given two tenants that each ran the demo (the second with a webhook receiver)
    local_stack.clock.set(DEMO_NOW)
    receiver = Receiver()
    url = receiver.start()
    first, second = TENANTS
    try:
        uploads = {second: run_demo_uploads(local_stack, second, url)}
        uploads[first] = run_demo_uploads(local_stack, first, None)
        keys = {
            t: ApiKeys(DynamoApiKeys()).issue(t, Role.REVIEWER, "billing").secret for t in TENANTS
        }
        yield {"uploads": uploads, "keys": keys, "receiver": receiver}
    finally:
        receiver.stop()
        local_stack.clock.set(DEMO_NOW)


def recomputed(stack: Any, tenant: str, now: Any) -> dict[str, float | int]:
    """The expected bill from the records and the buckets, not from the counters."""
    records: list[AssetRecord] = list(every_asset(DynamoAssets(), tenant))
    s3 = stack.client("s3")
    sizes = {
        r.asset_id: s3.head_object(Bucket=r.dest_bucket, Key=r.dest_key)["ContentLength"]
        for r in records
    }
    hours = (now - DEMO_NOW) / timedelta(hours=1)
    placed = {"approved": 0, "quarantined": 0, "rejected": 0}
    for r in records:
        placed[r.status.value] += sizes[r.asset_id]
    delivered = [
        d
        for d in DynamoWebhooks().outbound_deliveries(tenant, "delivered", None)
        if d.delivered_at is not None
    ]
    return {
        "images_scanned": len(records),
        "faces_processed": sum(len(r.faces) for r in records),
        "matches_made": sum(1 for r in records for f in r.faces if f.subject_id),
        "webhook_deliveries": len(delivered),
        "storage_library_gb_month": placed["approved"] * hours / (BYTES_PER_GB * 720),
        "storage_quarantine_gb_month": (placed["quarantined"] + placed["rejected"])
        * hours
        / (BYTES_PER_GB * 720),
    }


def test_each_tenants_usage_matches_its_records_and_redeliveries_change_nothing(
    local_stack: Any, api: Client, demo_runs: dict[str, Any]
) -> None:
    # A malformed month is refused, naming the field
    bad = api.http.get(
        "/usage?month=2026-13", headers={"Authorization": f"Bearer {demo_runs['keys'][TENANTS[0]]}"}
    )
    assert (bad.status_code, json.loads(bad.body)["field"]) == (400, "month")
    # When a day has passed and each tenant asks for its November usage
    later = DEMO_NOW + timedelta(days=1)
    local_stack.clock.set(later)
    for tenant in TENANTS:
        calls_before = usage_service().meter.counters(tenant, "2026-11")["api_calls"]
        got = get_usage(api, demo_runs["keys"][tenant])
        # Then every unit equals what the records and buckets say
        expected = recomputed(local_stack, tenant, later)
        units = got["units"]
        assert got["tenant"] == tenant and got["month"] == "2026-11"
        for unit in ("images_scanned", "faces_processed", "matches_made", "webhook_deliveries"):
            assert units[unit] == expected[unit], (tenant, unit)
        for unit in ("storage_library_gb_month", "storage_quarantine_gb_month"):
            assert units[unit] == pytest.approx(expected[unit], rel=1e-9), (tenant, unit)
        assert units["images_scanned"] == len(list((FACES / "uploads").iterdir()))
        assert units["api_calls"] == calls_before + 1  # this request, counted at the boundary
    second = TENANTS[1]
    uploads = demo_runs["uploads"][second]
    report = collect_report(
        uploads,
        uploads_bucket=local_stack.outputs["UploadsBucketName"],
        s3=local_stack.client("s3"),
        assets=DynamoAssets(),
        subjects=DynamoSubjects(),
        tenant=second,
    )
    assert report["unaccounted"] == []
    assert (
        get_usage(api, demo_runs["keys"][second])["units"]["webhook_deliveries"]
        == len(demo_runs["receiver"].accepted)
        == len(uploads)
    )
    a = second
    before = usage_service().meter.counters(a, "2026-11")
    accepted = len(demo_runs["receiver"].accepted)
    # When an already-processed S3 event is delivered again through the ingest queue
    up = uploads[0]
    event = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": local_stack.outputs["UploadsBucketName"]},
                    "object": {"key": up.key, "versionId": up.version_id, "eTag": up.etag},
                },
            }
        ]
    }
    sqs = local_stack.client("sqs")
    sqs.send_message(QueueUrl=local_stack.outputs["IngestQueueUrl"], MessageBody=json.dumps(event))
    # And a delivered webhook's outbox event and its retry message come again
    delivery = DynamoWebhooks().outbound_deliveries(a, "delivered", None)[0]
    outbox = {
        "id": delivery.event_id,
        "type": delivery.event_type,
        "tenant": a,
        "occurred_at": DEMO_NOW.isoformat(),
        "data": {},
    }
    sqs.send_message(QueueUrl=get_settings().events_queue_url, MessageBody=json.dumps(outbox))
    local_stack.drain()
    local_stack.runtime.invoke(
        "WebhooksOutFunction",
        {"kind": "webhook_retry", "tenant": a, "delivery_id": delivery.delivery_id},
    )
    # Then no counter changed, and the receiver got nothing more
    assert usage_service().meter.counters(a, "2026-11") == before
    assert len(demo_runs["receiver"].accepted) == accepted


def tiny_jpeg(shade: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (shade, shade, shade)).save(out, "JPEG")
    return out.getvalue()


def test_over_quota_uploads_are_held_then_decided_next_month_none_lost(
    local_stack: Any,
) -> None:
    tenant = "meter-quota"
    onboarding_service().create_tenant(
        tenant, name="Meter Quota", plan="free", contact_email="ops@meter.example"
    )
    # Its plan sets its quota (onboarded on the free plan), until the operator overrides it
    from quitclaim.domain.tenancy import PLANS

    assert usage_service().meter.images_per_month(tenant) == PLANS["free"].images_per_month
    # Given a tenant allowed 3 images a month (the operator's plan change)
    runner = CliRunner()
    set_plan = runner.invoke(main, ["quota", "--tenant", tenant, "--images-per-month", "3"])
    assert set_plan.exit_code == 0, set_plan.output
    assert json.loads(set_plan.stdout)["released"] == 0
    s3, bucket = local_stack.client("s3"), local_stack.outputs["UploadsBucketName"]
    try:
        # When it uploads 5
        for n in range(5):
            s3.put_object(Bucket=bucket, Key=f"incoming/{tenant}/{n}.jpg", Body=tiny_jpeg(40 * n))
        local_stack.drain()
        # Then 3 are decided and 2 held where they were put, and the books balance
        report = usage_service().report(tenant, "2026-11")
        assert (report.units["images_scanned"], report.held) == (3, 2)
        held = [r for r in every_asset(DynamoAssets(), tenant) if r.status.value == "held"]
        assert {r.reasons for r in held} == {("quota_exceeded",)}
        waiting = s3.list_objects_v2(Bucket=bucket, Prefix=f"incoming/{tenant}/")["Contents"]
        assert sorted(o["Key"] for o in waiting) == sorted(r.source_key for r in held)
        first = conservation_service().check(tenant)
        assert first.holds, first.violations
        assert (first.decisions, first.held) == (5, 2)
        exported = runner.invoke(main, ["usage", "--tenant", tenant, "--month", "2026-11", "--csv"])
        assert exported.exit_code == 0, exported.output
        rows = exported.stdout.splitlines()
        assert rows[0] == "month,tenant,unit,quantity"
        assert f"2026-11,{tenant},images_scanned,3" in rows
        # When the clock passes midnight into December (the daily release job fires
        # at 00:05 UTC; the clock jumps to the evening before without firing anything)
        local_stack.clock.set(DEMO_NOW.replace(day=30, hour=23))
        local_stack.tick(DEMO_NOW.replace(month=12, day=1, hour=0, minute=10))
        # Then both are decided, counted in December; none lost, none left waiting
        december = usage_service().report(tenant, "2026-12")
        assert (december.units["images_scanned"], december.held) == (2, 0)
        assert usage_service().report(tenant, "2026-11").units["images_scanned"] == 3
        after = conservation_service().check(tenant)
        assert after.holds, after.violations
        assert (after.decisions, after.held, after.library) == (5, 0, 5)
    finally:
        local_stack.clock.set(DEMO_NOW)


def test_the_decision_and_its_counters_commit_together_on_dynamodb(local_stack: Any) -> None:
    from dataclasses import replace

    from quitclaim.domain.errors import QuotaExceeded
    from quitclaim.domain.models import AssetStatus
    from quitclaim.domain.usage import UsageIncrement, scan_units

    meter = usage_service().meter  # built first: binds the models to the stack's tables
    assets, tenant = DynamoAssets(), "meter-tx"
    record = AssetRecord(
        tenant=tenant,
        asset_id="tx1",
        source_bucket="b",
        source_key=f"incoming/{tenant}/a.jpg",
        source_version="v1",
        path="a.jpg",
        purpose="web",
        status=AssetStatus.APPROVED,
        reasons=(),
        dest_bucket="lib",
        dest_key=f"{tenant}/a.jpg",
        decided_at=DEMO_NOW,
    )
    usage = UsageIncrement(tenant, "2026-11", scan_units(record), images_limit=1)
    # Given a first decision written with its usage
    assert assets.create(record, usage) is True
    # When the same decision is written again (a retry, a redelivery)
    assert assets.create(record, usage) is False
    # Then its usage was added once
    counters = meter.counters(tenant, "2026-11")
    assert counters["images_scanned"] == 1
    # And a second image over the limit of 1 is refused whole: no record, no count
    other = replace(record, asset_id="tx2")
    with pytest.raises(QuotaExceeded):
        assets.create(other, usage)
    assert assets.get(tenant, "tx2") is None
    assert meter.counters(tenant, "2026-11") == counters
