"""Retention rules, the digest's e-mail, and what unknown_face_policy decides (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from quitclaim.domain.errors import ValidationFailed
from quitclaim.domain.models import AssetStatus, Reason, ScanMode, TenantPolicy
from quitclaim.domain.ports import OpenRequest
from quitclaim.domain.records import AssetRecord
from quitclaim.domain.retention import digest_due, due_for_deletion, retention_changes
from quitclaim.usecases.asset_decisions import unknown_face_reason
from quitclaim.usecases.digest import DigestReport, render

NOW = datetime(2027, 3, 1, 3, tzinfo=UTC)  # a Monday
POLICY = TenantPolicy(tenant="acme")


def record(
    status: AssetStatus, reasons: tuple[str, ...], age_days: float, **kw: Any
) -> AssetRecord:
    return AssetRecord(
        tenant="acme",
        asset_id="a1",
        source_bucket="up",
        source_key="incoming/acme/x.jpg",
        source_version="v1",
        path="x.jpg",
        purpose="web",
        status=status,
        reasons=reasons,
        dest_bucket="q",
        dest_key="acme/x.jpg",
        decided_at=NOW - timedelta(days=age_days),
        **kw,
    )


Q = AssetStatus.QUARANTINED


@pytest.mark.parametrize(
    ("asset", "expected"),
    [
        (record(Q, ("unknown_face",), 91), "quarantine"),
        (record(Q, ("unknown_face",), 89), None),  # not yet
        # held for a reason that may clear (a consent to renew): never by time alone
        (record(Q, ("consent_expired", "unknown_face"), 400), None),
        (record(Q, ("review_required",), 400), None),
        # a reviewer kept it with a reason, or a four-eyes request waits on it
        (record(Q, ("unknown_face",), 400, review={"kept": {"by": "k"}}), None),
        (record(Q, ("unknown_face",), 400, review={"pending_release": {"by": "k"}}), None),
        (record(AssetStatus.REJECTED, ("undecodable",), 31), "rejected"),
        (record(AssetStatus.REJECTED, ("undecodable",), 29), None),
        (record(AssetStatus.APPROVED, (), 4000), None),
        (record(AssetStatus.HELD, (), 4000), None),
    ],
)
def test_what_retention_deletes(asset: AssetRecord, expected: str | None) -> None:
    assert due_for_deletion(asset, POLICY, NOW) == expected


def test_zero_days_switches_a_rule_off() -> None:
    off = replace(POLICY, quarantine_retention_days=0, rejected_retention_days=0)
    assert due_for_deletion(record(Q, ("unknown_face",), 4000), off, NOW) is None
    assert due_for_deletion(record(AssetStatus.REJECTED, (), 4000), off, NOW) is None


def test_retention_settings_are_validated_naming_the_field() -> None:
    assert retention_changes({"quarantine_retention_days": 30, "digest": "daily"}) == {
        "quarantine_retention_days": 30,
        "digest": "daily",
    }
    for bad in (
        {"quarantine_retention_days": -1},
        {"rejected_retention_days": 99999},
        {"rejected_retention_days": True},
        {"digest": "hourly"},
    ):
        with pytest.raises(ValidationFailed) as caught:
            retention_changes(bad)
        assert caught.value.field == next(iter(bad))


def test_the_digest_cadence() -> None:
    monday, tuesday = NOW, NOW + timedelta(days=1)
    assert digest_due(POLICY, monday) and not digest_due(POLICY, tuesday)  # weekly default
    assert digest_due(replace(POLICY, digest="daily"), tuesday)
    assert not digest_due(replace(POLICY, digest="off"), monday)


def test_unknown_face_policy_decides_the_reason_of_an_unknown_face() -> None:
    assert unknown_face_reason(POLICY, ScanMode.RECOGNIZE) is Reason.UNKNOWN_FACE
    review = replace(POLICY, unknown_face_policy="review")
    assert unknown_face_reason(review, ScanMode.RECOGNIZE) is Reason.REVIEW_REQUIRED
    assert unknown_face_reason(POLICY, ScanMode.DETECT_ONLY) is Reason.REVIEW_REQUIRED


def test_the_digest_email_lists_each_section_with_ids_and_dates_only() -> None:
    report = DigestReport(
        tenant="acme",
        at=NOW,
        since=NOW - timedelta(days=7),
        expiring=(("s1", "c1", NOW + timedelta(days=3)),),
        unreachable=(("s1", "bounced"),),
        quarantine_size=4,
        quarantine_oldest=("a9", NOW - timedelta(days=20)),
        dead_letters={"ingest": 2, "bulk": 0, "async": None},
        open_requests=(OpenRequest("r1", "erasure", NOW + timedelta(days=10)),),
        deleted=(("a1", "quarantine", NOW - timedelta(days=1)),),
    )
    email = render(report, "officer@example.org", "https://qc.example.org")
    assert email.to == "officer@example.org"
    for line in (
        "Consents expiring in the next 30 days: 1",
        "subject s1, consent c1, expires 2027-03-04",
        "subject s1: address bounced",
        "Quarantine queue: 4",
        "oldest: asset a9, held since 2027-02-09",
        "Dead letters: 2",
        "ingest: 2",
        "async: unknown",
        "erasure r1, answer by 2027-03-11",
        "Deleted by retention since 2027-02-22: 1",
        "asset a1 (quarantine), deleted 2027-02-28",
        "https://qc.example.org/dashboard",
    ):
        assert line in email.text
    assert "bulk: 0" not in email.text
    assert "<li>asset a1 (quarantine), deleted 2027-02-28</li>" in email.html
