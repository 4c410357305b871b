"""The dashboard's read models: a person's consent summary and the monthly volumes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from quitclaim.domain.models import AssetStatus
from quitclaim.domain.records import AssetRecord, FaceRecord
from quitclaim.domain.registry import ConsentView
from quitclaim.usecases.dashboard import _months_back, consent_summary, month_volumes

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def _consent(status: str, expires: str | None, valid_from: str = "2026-01-01") -> ConsentView:
    return ConsentView(
        tenant="t",
        subject_id="sub_1",
        consent_id=f"con_{status}_{expires}",
        purposes=("web",),
        valid_from=datetime.fromisoformat(valid_from).replace(tzinfo=UTC),
        expires_at=datetime.fromisoformat(expires).replace(tzinfo=UTC) if expires else None,
        revoked_at=None,
        status=status,
        version=1,
        evidence=None,
    )


@pytest.mark.parametrize(
    ("consents", "expected"),
    [
        ([], ("none", None)),
        ([_consent("valid", None)], ("valid", None)),
        ([_consent("valid", "2027-06-30")], ("valid", "2027-06-30")),
        # 29 days left: expiring; a second, longer valid consent outranks it
        ([_consent("valid", "2026-12-25")], ("expiring", "2026-12-25")),
        (
            [_consent("valid", "2026-12-25"), _consent("valid", "2027-03-01")],
            ("valid", "2027-03-01"),
        ),
        ([_consent("expired", "2026-10-01")], ("expired", None)),
        ([_consent("revoked", "2027-10-01")], ("withdrawn", None)),
        # the latest-signed of the consents that are not valid tells the story
        (
            [
                _consent("revoked", "2026-12-01", "2026-01-01"),
                _consent("expired", "2026-11-01", "2025-11-01"),
            ],
            ("withdrawn", None),
        ),
        ([_consent("not_yet_valid", "2028-01-01", "2027-01-01")], ("not_yet_valid", None)),
    ],
)
def test_consent_summary(consents: list[ConsentView], expected: tuple[str, str | None]) -> None:
    status, until = consent_summary(consents, NOW)
    assert (status, until.date().isoformat() if until else None) == expected


def test_months_back_cross_a_new_year() -> None:
    assert _months_back(datetime(2026, 2, 3, tzinfo=UTC), 4) == [
        "2025-11",
        "2025-12",
        "2026-01",
        "2026-02",
    ]


def _record(history: list[dict[str, Any]], faces: int = 1) -> AssetRecord:
    face = FaceRecord([0, 0, 50, 50], 0, True, None, None, None, None, "unknown_face")
    return AssetRecord(
        tenant="t",
        asset_id="a",
        source_bucket="b",
        source_key="k",
        source_version="v",
        path="p.jpg",
        purpose="web",
        status=AssetStatus(history[-1]["status"]),
        reasons=(),
        dest_bucket="q",
        dest_key="t/p.jpg",
        decided_at=NOW,
        faces=(face,) * faces,
        history=tuple(history),
    )


def _entry(at: str, action: str, status: str) -> dict[str, Any]:
    return {"at": at, "action": action, "actor": "x", "status": status, "reasons": []}


def test_month_volumes_count_each_change_of_state_in_its_month() -> None:
    # Given an image scanned in October (quarantined, 3 faces), kept, then released and
    # later deleted in November, and one approved at its scan in November
    held = _record(
        [
            _entry("2026-10-30T23:59:00+00:00", "decided", "quarantined"),
            _entry("2026-10-31T10:00:00+00:00", "kept", "quarantined"),
            _entry("2026-11-02T09:00:00+01:00", "released", "approved"),
            _entry("2026-11-20T09:00:00+00:00", "deleted", "deleted"),
        ],
        faces=3,
    )
    approved = _record([_entry("2026-11-26T12:00:00+00:00", "decided", "approved")])
    rejected = _record([_entry("2026-09-01T00:00:00+00:00", "rejected", "rejected")], faces=0)
    # When they are counted into October and November
    october, november = month_volumes([held, approved, rejected], ["2026-10", "2026-11"])
    # Then the scan counts where it happened, with its faces; being kept changes nothing;
    # each later state counts in its own month; September is outside the window
    assert (october.scanned, october.faces, october.quarantined, october.approved) == (1, 3, 1, 0)
    assert (november.scanned, november.faces, november.approved, november.erased) == (1, 1, 2, 1)
    assert (october.rejected, november.rejected, november.quarantined) == (0, 0, 0)
