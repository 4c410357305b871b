"""Data-subject rights with in-memory ports: erasure's re-decision, volumes, auto-redaction."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from quitclaim.domain.errors import Conflict, ValidationFailed
from quitclaim.domain.models import AssetStatus, Consent, ScanMode, TenantPolicy
from quitclaim.domain.records import AssetRecord, FaceRecord
from quitclaim.domain.rights import (
    DataRequest,
    RequestKind,
    check,
    monthly_volumes,
    redactable,
    verification,
    versions_seen,
)
from quitclaim.usecases.asset_decisions import META_ASSET_ID, Placement
from quitclaim.usecases.recheck import Recheck
from quitclaim.usecases.subject_rights import summary_html
from quitclaim.usecases.tenant_admin import _policy_changes
from tests.unit.fakes import FakeAssets, FakeConsents, FakeStore, FixedClock, fake_image
from tests.unit.test_scan_asset import World

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
LIB, QUA = "library", "quarantine"


def face(subject: str | None, *, consent: str | None = None, box: int = 0) -> FaceRecord:
    return FaceRecord(
        box=[box, 0, box + 100, 100],
        frame=0,
        identifiable=True,
        subject_id=subject,
        distance=0.3 if subject else None,
        consent_id=consent,
        verdict="valid" if consent else None,
        reason=None if consent or subject else "unknown_face",
    )


def record(asset_id: str, status: AssetStatus, *faces: FaceRecord, **extra: Any) -> AssetRecord:
    bucket = {AssetStatus.APPROVED: LIB, AssetStatus.QUARANTINED: QUA}.get(status, "")
    return AssetRecord(
        tenant="acme",
        asset_id=asset_id,
        source_bucket="uploads",
        source_key=f"incoming/acme/{asset_id}.jpg",
        source_version="v1",
        path=f"{asset_id}.jpg",
        purpose="web",
        status=status,
        reasons=(),
        dest_bucket=bucket,
        dest_key=f"acme/{asset_id}.jpg" if bucket else "",
        decided_at=NOW,
        faces=faces,
        **extra,
    )


# ---------------------------------------------------------------------- erasure


@dataclass
class ErasureWorld:
    """Given: obama (sub_o, consented) in two assets, one published past a waiver."""

    store: FakeStore = field(default_factory=FakeStore)
    assets: FakeAssets = field(default_factory=FakeAssets)
    consents: FakeConsents = field(
        default_factory=lambda: FakeConsents(
            [Consent("acme", "sub_o", "con_o", frozenset({"web"}), NOW - timedelta(days=9), None)]
        )
    )

    def __post_init__(self) -> None:
        clock = FixedClock(NOW)
        self.recheck = Recheck(
            assets=self.assets,
            consents=self.consents,
            placement=Placement(store=self.store, assets=self.assets, clock=clock),
            clock=clock,
            library_bucket=LIB,
            quarantine_bucket=QUA,
        )
        released = {
            "released": {"by": ["k1", "k2"], "at": NOW.isoformat(), "waived": ["unknown_face"]}
        }
        for rec in (
            record("alone", AssetStatus.APPROVED, face("sub_o", consent="con_o")),
            record(
                "waived",
                AssetStatus.APPROVED,
                face("sub_o", consent="con_o"),
                face(None, box=200),
                review=released,
            ),
            record("gone", AssetStatus.DELETED, face("sub_o", consent="con_o")),
        ):
            self.assets.records[("acme", rec.asset_id)] = rec
            self.assets.rows.add(("acme", "sub_o", rec.asset_id))
            if rec.dest_bucket:
                self.store.objects[(rec.dest_bucket, rec.dest_key)] = (
                    b"img",
                    {META_ASSET_ID: rec.asset_id},
                )


def test_forgetting_a_person_unattributes_their_faces_and_pulls_every_image() -> None:
    world = ErasureWorld()
    # When obama is forgotten in his assets
    changes = world.recheck.forget_subject(
        "acme", "sub_o", ["alone", "waived", "gone"], actor="key_admin"
    )
    # Then both published images are held for an unknown face, their bytes moved
    for asset_id in ("alone", "waived"):
        after = world.assets.get("acme", asset_id)
        assert after is not None
        assert (after.status, after.reasons) == (AssetStatus.QUARANTINED, ("unknown_face",))
        assert (QUA, f"acme/{asset_id}.jpg") in world.store.objects
        assert (LIB, f"acme/{asset_id}.jpg") not in world.store.objects
        assert after.history[-1]["action"] == "subject_erased"
        assert after.history[-1]["faces"] == [0]
    # And the release waiver (given for the faces as they were) is void
    waived = world.assets.get("acme", "waived")
    assert waived is not None and "released" not in waived.review
    # And no record names him any more: no subject, distance or consent on his face
    for asset_id in ("alone", "waived", "gone"):
        rec = world.assets.get("acme", asset_id)
        assert rec is not None and rec.subject_ids == ()
        assert (rec.faces[0].distance, rec.faces[0].consent_id) == (None, None)
    gone = world.assets.get("acme", "gone")
    assert gone is not None and gone.status is AssetStatus.DELETED
    # And his appearance rows are gone; the report of changes names the withdrawals
    assert world.assets.appearances("acme", "sub_o") == []
    withdrawn = {c.asset_id for c in changes if c.before is AssetStatus.APPROVED}
    assert withdrawn == {"alone", "waived"}


def test_forgetting_twice_changes_nothing_more() -> None:
    world = ErasureWorld()
    world.recheck.forget_subject("acme", "sub_o", ["alone"], actor="k")
    before = world.assets.get("acme", "alone")
    assert world.recheck.forget_subject("acme", "sub_o", ["alone"], actor="k") == []
    assert world.assets.get("acme", "alone") == before


def test_a_verification_fails_when_any_store_still_holds_something() -> None:
    checks = [check("subjects table", 0, "subject record"), check("gallery", 2, "templates")]
    result = verification("sub_o", NOW, checks)
    assert result.ok is False
    assert [(c.store, c.ok, c.detail) for c in result.checks] == [
        ("subjects table", True, "no subject record"),
        ("gallery", False, "2 templates"),
    ]
    assert verification("sub_o", NOW, checks[:1]).ok is True
    # Tombstones may stay: a check can allow some
    assert check("consents table", 1, "tombstones", allowed=1).ok is True


# ---------------------------------------------------------------------- redaction rules


@pytest.mark.parametrize(
    ("reasons", "expected"),
    [
        (("unknown_face",), True),
        (("consent_revoked", "unknown_face"), True),
        (("no_consent", "out_of_scope", "consent_expired", "consent_not_yet_valid"), True),
        (("review_required",), False),  # detect-only: nobody knows who is who
        (("unknown_face", "review_required"), False),
        ((), False),  # nothing to redact
    ],
)
def test_only_faces_without_consent_can_be_redacted(
    reasons: tuple[str, ...], expected: bool
) -> None:
    held = replace(record("x", AssetStatus.QUARANTINED), reasons=reasons)
    assert redactable(held) is expected


@dataclass
class RecordingRedaction:
    """Stands in for the redaction use-case: records what ingest asked for."""

    calls: list[tuple[str, str, str]] = field(default_factory=list)
    fail: bool = False

    def redact(self, tenant: str, asset_id: str, *, actor: str, justification: str) -> Any:
        self.calls.append((tenant, asset_id, actor))
        if self.fail:
            raise Conflict("too weak", code="redaction_too_weak")


def _scanning(policy: TenantPolicy, redaction: RecordingRedaction) -> World:
    world = World()
    world.tenants.policies["acme"] = policy
    world.scan._redaction = redaction  # type: ignore[assignment]
    return world


def test_auto_redact_asks_for_a_variant_of_a_held_image_with_an_unknown_face() -> None:
    redaction = RecordingRedaction()
    world = _scanning(TenantPolicy("acme", auto_redact=True), redaction)
    # When an image with a consented and an unknown face is scanned
    result = world.scan(world.upload("acme/a.jpg", fake_image((0, 120), (None, 120))))
    # Then the original is held, and a redacted variant was asked for by ingest
    assert result.status is AssetStatus.QUARANTINED
    assert redaction.calls == [("acme", result.asset_id, "ingest")]
    held = world.assets.get("acme", result.asset_id)
    assert held is not None and held.policy["auto_redact"] is True
    # And a redelivery of the same upload asks again (the use-case refuses a repeat)
    world.scan(world.upload("acme/a.jpg", fake_image((0, 120), (None, 120))))
    assert len(redaction.calls) == 2


@pytest.mark.parametrize(
    ("policy", "image"),
    [
        (TenantPolicy("acme"), fake_image((None, 120))),  # the policy is off
        (TenantPolicy("acme", auto_redact=True), fake_image((0, 120))),  # approved
        (
            TenantPolicy("acme", auto_redact=True, scan_modes=(("*", ScanMode.DETECT_ONLY),)),
            fake_image((None, 120)),  # review_required: a person must look
        ),
    ],
)
def test_auto_redact_stays_out_otherwise(policy: TenantPolicy, image: bytes) -> None:
    redaction = RecordingRedaction()
    world = _scanning(policy, redaction)
    world.scan(world.upload("acme/b.jpg", image))
    assert redaction.calls == []


def test_a_failed_auto_redaction_leaves_the_original_held() -> None:
    redaction = RecordingRedaction(fail=True)
    world = _scanning(TenantPolicy("acme", auto_redact=True), redaction)
    result = world.scan(world.upload("acme/c.jpg", fake_image((None, 120))))
    assert result.status is AssetStatus.QUARANTINED and len(redaction.calls) == 1
    assert world.where("c.jpg") == ["quarantine/acme/c.jpg"]


def test_auto_redact_is_a_boolean_policy_field() -> None:
    current = TenantPolicy("acme")
    assert _policy_changes(current, {"auto_redact": True})["auto_redact"] is True
    with pytest.raises(ValidationFailed) as refused:
        _policy_changes(current, {"auto_redact": "yes"})
    assert refused.value.field == "auto_redact"


# ---------------------------------------------------------------------- volumes


def _history(*steps: tuple[str, str, str]) -> tuple[dict[str, Any], ...]:
    return tuple({"at": at, "action": action, "status": status} for at, action, status in steps)


def test_monthly_volumes_count_first_decisions_withdrawals_and_requests() -> None:
    published_then_withdrawn = replace(
        record("a", AssetStatus.QUARANTINED, face("sub_o", consent="con_o"), face(None, box=200)),
        history=_history(
            ("2026-10-03T10:00:00+00:00", "decided", "approved"),
            ("2026-11-02T10:00:00+00:00", "redecided", "quarantined"),
        ),
    )
    held_then_released = replace(
        record("b", AssetStatus.APPROVED, face(None)),
        history=_history(
            ("2026-11-01T10:00:00+00:00", "decided", "quarantined"),
            ("2026-11-01T11:00:00+00:00", "release_requested", "quarantined"),
            ("2026-11-01T12:00:00+00:00", "released", "approved"),
        ),
    )
    variant = replace(
        record("c", AssetStatus.APPROVED, face("sub_o", consent="con_o")),
        history=_history(("2026-11-05T10:00:00+00:00", "redacted", "approved")),
    )
    requests = [
        DataRequest("acme", "r1", RequestKind.ACCESS, datetime(2026, 11, 3, tzinfo=UTC), "k"),
        DataRequest("acme", "r2", RequestKind.ERASURE, datetime(2026, 11, 4, tzinfo=UTC), "k"),
        DataRequest("acme", "r3", RequestKind.SEARCH, datetime(2026, 12, 1, tzinfo=UTC), "k"),
    ]
    volumes = {
        m["month"]: m
        for m in monthly_volumes([published_then_withdrawn, held_then_released, variant], requests)
    }
    assert sorted(volumes) == ["2026-10", "2026-11", "2026-12"]
    october, november, december = volumes["2026-10"], volumes["2026-11"], volumes["2026-12"]
    assert (october["assets_scanned"], october["faces"], october["matches"]) == (1, 2, 1)
    assert (october["approved"], october["withdrawn"]) == (1, 0)
    assert (november["assets_scanned"], november["quarantined"]) == (1, 1)
    assert (november["withdrawn"], november["released"], november["redactions"]) == (1, 1, 1)
    assert (november["access_requests"], november["erasures"]) == (1, 1)
    assert december["selfie_searches"] == 1 and december["assets_scanned"] == 0


def test_versions_seen_counts_each_engine_and_threshold_combination() -> None:
    old = replace(
        record("a", AssetStatus.APPROVED),
        versions={"engine": "quitclaim-dlib/1"},
        policy={"match_threshold": 0.5, "min_face_px": 40},
    )
    new = replace(old, asset_id="b", versions={"engine": "quitclaim-dlib/2"})
    seen = versions_seen([old, new, replace(new, asset_id="c"), record("d", AssetStatus.REJECTED)])
    assert seen == [
        {"versions": {"engine": "quitclaim-dlib/1", "match_threshold": "0.5"}, "assets": 1},
        {"versions": {"engine": "quitclaim-dlib/2", "match_threshold": "0.5"}, "assets": 2},
    ]


# ---------------------------------------------------------------------- the summary page


def test_the_summary_escapes_everything_a_person_or_reviewer_wrote() -> None:
    manifest = {
        "request_id": "req_1",
        "generated_at": "2026-11-26T12:00:00+00:00",
        "legal_basis": "GDPR Art. 15",
        "tenant": "acme",
        "subject": {"subject_id": "sub_o", "display_name": "<script>alert(1)</script>"},
        "consents": [
            {
                "consent_id": "con_o",
                "status": "valid",
                "evidence": {"signer": "O'Brien & <b>Sons</b>"},
                "history": [],
            }
        ],
        "appearances": [
            {
                "asset_id": "a",
                "path": "<img src=x>.jpg",
                "faces": [],
                "decisions": [{"action": "kept", "justification": "<i>because</i>"}],
            }
        ],
        "requests": [],
        "not_exported": {"thumbnails": "not included"},
    }
    page = summary_html(manifest)
    for raw in ("<script>", "<b>Sons</b>", "<img src=x>", "<i>because</i>"):
        assert raw not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "O&#x27;Brien &amp; &lt;b&gt;Sons&lt;/b&gt;" in page
    assert "not included" in page
