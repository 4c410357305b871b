"""Retention and the officer's digest on the local stack, with the clock moved.

Real uploads through the deployed handlers; the template's daily retention and
digest schedules fire as the clock moves (``stack.tick``); the digest is read
from the emulator's SES. The clock is set back afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from quitclaim.adapters.dynamo import DynamoAssets
from quitclaim.bootstrap import (
    audit_trail_service,
    conservation_service,
    registry_service,
    review_service,
)
from quitclaim.domain.models import AssetStatus, TenantPolicy
from quitclaim.domain.registry import Principal, Role
from quitclaim.domain.tenancy import TenantProfile
from tests.conftest import DEMO_NOW, FACES

pytestmark = pytest.mark.e2e
TENANT = "e2e-retention"
OFFICER = "officer@retention.example.org"
STRANGER = (FACES / "uploads" / "stranger-portrait.png").read_bytes()


@pytest.fixture(scope="module")
def world(local_stack: Any) -> Iterator[dict[str, Any]]:
    # Given a tenant with a contact address and a daily digest
    registry_service().create_tenant(
        replace(TenantPolicy(tenant=TENANT), digest="daily"),
        TenantProfile(tenant=TENANT, name="Retention BV", contact_email=OFFICER),
    )
    # And two photos of a stranger and one broken upload, decided at DEMO_NOW
    s3 = local_stack.client("s3")
    for name, data in (
        ("bystander.png", STRANGER),
        ("kept.png", STRANGER),
        ("broken.jpg", b"\xff\xd8\xff\xe0 not really a jpeg"),
    ):
        s3.put_object(
            Bucket=local_stack.outputs["UploadsBucketName"],
            Key=f"incoming/{TENANT}/{name}",
            Body=data,
        )
    local_stack.drain()
    ids = {r.path: r.asset_id for r in _records()}
    yield {"stack": local_stack, "s3": s3, "ids": ids}
    local_stack.clock.set(DEMO_NOW)


def _records() -> list[Any]:
    page = DynamoAssets().page(
        TENANT,
        status=None,
        reason=None,
        subject_id=None,
        since=None,
        until=None,
        limit=100,
        cursor=None,
    )
    return list(page.items)


def _in_quarantine(world: dict[str, Any], name: str) -> bool:
    found = world["s3"].list_objects_v2(
        Bucket=world["stack"].outputs["QuarantineBucketName"], Prefix=f"{TENANT}/{name}"
    )
    return found.get("KeyCount", 0) > 0


def test_a_strangers_photo_is_deleted_after_90_days_audited_and_in_the_digest(
    world: dict[str, Any],
) -> None:
    stack, ids = world["stack"], world["ids"]
    bystander, kept, broken = ids["bystander.png"], ids["kept.png"], ids["broken.jpg"]
    statuses = {r.path: (r.status, r.reasons) for r in _records()}
    assert statuses["bystander.png"] == (AssetStatus.QUARANTINED, ("unknown_face",))
    assert statuses["broken.jpg"][0] is AssetStatus.REJECTED
    # And a reviewer keeps one of the stranger's photos, with a reason
    reviewer = Principal(TENANT, "key-reviewer", Role.REVIEWER, person="rita")
    review_service().keep(reviewer, kept, "press photo, rights being cleared")
    sent_before = len(stack.sent_emails())

    # When the clock moves 89 days (set() jumps to day 88 without firing; the
    # last day's schedules run): nothing of the stranger is deleted yet
    stack.clock.set(DEMO_NOW + timedelta(days=88))
    stack.tick(DEMO_NOW + timedelta(days=89))
    assert _in_quarantine(world, "bystander.png")
    # When it moves on to 91 days, the daily retention and digest runs firing
    report = stack.tick(DEMO_NOW + timedelta(days=91))
    assert not report.errors
    assert [f.event["kind"] for f in report.firings].count("retention") == 2

    # Then the stranger's photo is gone (object and its kept original), the record a tombstone
    assert not _in_quarantine(world, "bystander.png")
    by_id = {r.asset_id: r for r in _records()}
    assert by_id[bystander].status is AssetStatus.DELETED
    assert by_id[bystander].history[-1]["actor"] == "retention"
    # And the photo a reviewer kept is still held; the rejected upload (30 days) went too
    assert _in_quarantine(world, "kept.png") and by_id[kept].status is AssetStatus.QUARANTINED
    assert by_id[broken].status is AssetStatus.DELETED
    # And the tenant's audit chain verifies and has the deletion, by retention
    verification, events = audit_trail_service().verified_events(TENANT)
    assert verification.first_break is None
    deletions = [e for e in events if e["action"] == "asset.deleted"]
    assert {(e["asset_id"], e["source"], e["reason"]) for e in deletions} == {
        (bystander, "retention", "quarantine"),
        (broken, "retention", "rejected"),
    }
    # And the digest e-mail captured from SES lists it
    digests = [m for m in stack.sent_emails()[sent_before:] if OFFICER in str(m["to"])]
    listing = [m for m in digests if bystander in (m["text"] or "")]
    assert listing, [m["subject"] for m in digests]
    text = listing[-1]["text"]
    assert "Deleted by retention since" in text and "(quarantine)" in text
    assert "Quarantine queue: 1" in text  # the kept one
    # And the conservation law still holds: a deletion is accounted for, not a loss
    report = conservation_service().check(TENANT)
    assert report.holds, report.violations
    assert (report.quarantine, report.deleted) == (1, 2)


def _ses_via_sns(kind: str, address: str, tenant: str, subject_id: str, **detail: Any) -> Any:
    """An SNS delivery of an SES notification, shaped as SES and SNS send them."""
    body = {
        "Bounce": {"bounce": {"bounceType": "Permanent", "bouncedRecipients": []}},
        "Complaint": {"complaint": {"complainedRecipients": []}},
    }[kind]
    section = next(iter(body.values()))
    section.update(detail)
    recipients = "bouncedRecipients" if kind == "Bounce" else "complainedRecipients"
    section[recipients] = [{"emailAddress": address}]
    notification = {
        "notificationType": kind,
        **body,
        "mail": {
            "messageId": "0100-test",
            "destination": [address],
            "tags": {"tenant": [tenant], "subject": [subject_id]},
        },
    }
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "Sns": {"Type": "Notification", "Message": json.dumps(notification)},
            }
        ]
    }


def test_ses_bounces_and_complaints_are_recorded_on_the_subject(world: dict[str, Any]) -> None:
    registry = registry_service()
    bounced = registry.create_subject(
        TENANT, "Bounced", email="gone@retention.example.org"
    ).subject_id
    full = registry.create_subject(
        TENANT, "Full Mailbox", email="full@retention.example.org"
    ).subject_id
    invoke = world["stack"].runtime.invoke
    # When SES reports a transient bounce: nothing changes
    transient = _ses_via_sns("Bounce", "full@retention.example.org", TENANT, full)
    transient["Records"][0]["Sns"]["Message"] = transient["Records"][0]["Sns"]["Message"].replace(
        "Permanent", "Transient"
    )
    assert invoke("RemindersFunction", transient) == {"unreachable": 0}
    assert not registry.subject(TENANT, full).email_unreachable
    # When SES reports a permanent bounce for the person's own address (message tags name them)
    event = _ses_via_sns("Bounce", "Gone@retention.example.org", TENANT, bounced)
    assert invoke("RemindersFunction", event) == {"unreachable": 1}
    # Then it is recorded on the subject, and audited
    assert registry.subject(TENANT, bounced).email_unreachable
    _, events = audit_trail_service().verified_events(TENANT)
    assert any(
        e["action"] == "subject.email_unreachable" and e["subject_id"] == bounced for e in events
    )
    # And a complaint does the same
    event = _ses_via_sns("Complaint", "full@retention.example.org", TENANT, full)
    assert invoke("RemindersFunction", event) == {"unreachable": 1}
    assert registry.subject(TENANT, full).email_unreachable
