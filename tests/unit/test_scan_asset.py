"""scan_asset with in-memory ports: placement, duplicates, failing closed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from quitclaim.config import Settings
from quitclaim.domain.errors import DependencyFailed
from quitclaim.domain.models import AssetStatus, Consent, ScanMode, TenantPolicy
from quitclaim.faces import published
from quitclaim.faces.gallery import GalleryCache, encoding_to_bytes
from quitclaim.usecases.asset_decisions import Placement
from quitclaim.usecases.recheck import Recheck
from quitclaim.usecases.scan_asset import ScanAsset
from quitclaim.usecases.uploads import ScanRequest, split_upload_key
from tests.unit.fakes import (
    FakeAssets,
    FakeConsents,
    FakeEngine,
    FakeStore,
    FakeSubjects,
    FakeTenants,
    FixedClock,
    fake_image,
    template_for,
)

UP, LIB, QUA = "uploads", "library", "quarantine"
NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


class World:
    """Given: one tenant 'acme' with two enrolled people (0: consented, 1: not)."""

    def __init__(self, *, usage: Any = None, clock: Any = None) -> None:
        self.settings = Settings(
            uploads_bucket=UP, library_bucket=LIB, quarantine_bucket=QUA, region="eu-central-1"
        )
        self.store = FakeStore()
        self.tenants = FakeTenants({"acme": TenantPolicy("acme")}, {"acme": 1})
        self.subjects = FakeSubjects()
        for index, sid in enumerate(("sub_ok", "sub_no")):
            self.subjects.create("acme", sid, f"Person {index}", None)
            self.subjects.add_template("acme", sid, encoding_to_bytes(template_for(index)))
        self.consents = FakeConsents(
            [
                Consent(
                    "acme",
                    "sub_ok",
                    "con_1",
                    frozenset({"web"}),
                    NOW - timedelta(days=1),
                    NOW + timedelta(days=30),
                ),
            ]
        )
        self.assets = FakeAssets()
        self.scan = ScanAsset(
            settings=self.settings,
            engine_factory=FakeEngine,
            store=self.store,
            tenants=self.tenants,
            subjects=self.subjects,
            consents=self.consents,
            assets=self.assets,
            clock=clock or FixedClock(NOW),
            galleries=GalleryCache(),
            published_forms=published,
            usage=usage,
        )

    def upload(self, path: str, data: bytes, **meta: str) -> ScanRequest:
        key = f"incoming/{path}"
        self.store.objects[(UP, key)] = (data, dict(meta))
        return ScanRequest(UP, key, "v1", "etag")

    def where(self, key: str) -> list[str]:
        return sorted(f"{b}/{k}" for (b, k) in self.store.objects if k.endswith(key))


@pytest.fixture
def world() -> World:
    return World()


def test_consented_face_goes_to_the_library(world: World) -> None:
    # Given an upload showing only the consented person
    req = world.upload("acme/a.jpg", fake_image((0, 120)))
    # When scanned
    result = world.scan(req)
    # Then it is approved, in the library only, with a record and an appearance
    assert result.status is AssetStatus.APPROVED
    assert world.where("a.jpg") == ["library/acme/a.jpg"]
    record = world.assets.get("acme", result.asset_id)
    assert record is not None and record.placed_at is not None
    assert record.faces[0].subject_id == "sub_ok" and record.faces[0].consent_id == "con_1"
    assert ("acme", "sub_ok", result.asset_id) in world.assets.rows


def test_unconsented_and_unknown_faces_are_quarantined(world: World) -> None:
    req = world.upload("acme/b.jpg", fake_image((0, 120), (1, 120), (None, 120)))
    result = world.scan(req)
    assert result.status is AssetStatus.QUARANTINED
    assert result.reasons == ("no_consent", "unknown_face")
    assert world.where("b.jpg") == ["quarantine/acme/b.jpg"]


def test_small_faces_do_not_block(world: World) -> None:
    req = world.upload("acme/c.jpg", fake_image((0, 120), (None, 12)))
    assert world.scan(req).status is AssetStatus.APPROVED


def test_bad_input_is_rejected_with_its_bytes_kept(world: World) -> None:
    # Given a text file named .jpg
    req = world.upload("acme/notes.jpg", b"hello, I am text")
    # When scanned / Then it is rejected with a reason, bytes unchanged
    result = world.scan(req)
    assert result.status is AssetStatus.REJECTED and result.reasons == ("unsupported_format",)
    assert world.store.objects[(QUA, "rejected/acme/notes.jpg")][0] == b"hello, I am text"
    assert world.where("notes.jpg") == ["quarantine/rejected/acme/notes.jpg"]


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("nobody/x.jpg", "unknown_tenant"),
        ("x.jpg", "no_tenant_in_key"),
        ("Bad_Tenant/x.jpg", "no_tenant_in_key"),
    ],
)
def test_unattributable_uploads_are_rejected_not_lost(world: World, path: str, reason: str) -> None:
    result = world.scan(world.upload(path, fake_image((0, 120))))
    assert result.status is AssetStatus.REJECTED and result.reasons == (reason,)
    assert len(world.where("x.jpg")) == 1 and world.where("x.jpg")[0].startswith("quarantine/")


def test_unknown_purpose_is_rejected(world: World) -> None:
    result = world.scan(world.upload("acme/p.jpg", fake_image((0, 120)), purpose="billboard"))
    assert result.reasons == ("unknown_purpose",)


def test_purpose_from_metadata_is_used(world: World) -> None:
    # Given a consent for web only and an upload meant for print
    result = world.scan(world.upload("acme/p.jpg", fake_image((0, 120)), purpose="print"))
    # Then the web consent does not cover it
    assert result.reasons == ("out_of_scope",)


def test_same_event_twice_gives_one_record_in_one_place(world: World) -> None:
    req = world.upload("acme/d.jpg", fake_image((0, 120)))
    first = world.scan(req)
    second = world.scan(req)
    assert second.duplicate and second.asset_id == first.asset_id
    assert len(world.assets.records) == 1
    assert world.where("d.jpg") == ["library/acme/d.jpg"]


def test_consent_store_failure_fails_closed(world: World) -> None:
    # Given the consent table throttling
    world.consents.fail = True
    req = world.upload("acme/e.jpg", fake_image((0, 120)))
    # When scanned / Then the error propagates (the message will be retried)
    with pytest.raises(DependencyFailed):
        world.scan(req)
    # and nothing is published or recorded; the upload stays where it was
    assert world.where("e.jpg") == ["uploads/incoming/acme/e.jpg"]
    assert world.assets.records == {}
    # When the table recovers and the message is retried / Then it completes
    world.consents.fail = False
    assert world.scan(req).status is AssetStatus.APPROVED
    assert world.where("e.jpg") == ["library/acme/e.jpg"]


def test_crash_after_record_before_copy_is_completed_by_redelivery(world: World) -> None:
    # Given S3 failing the placement right after the decision was recorded
    # (a scanned image's published form is written, an upload's own bytes copied)
    world.store.fail_on = {"copy", "write"}
    req = world.upload("acme/f.jpg", fake_image((1, 120)))
    with pytest.raises(DependencyFailed):
        world.scan(req)
    assert world.where("f.jpg") == ["uploads/incoming/acme/f.jpg"]
    # When redelivered after S3 recovers / Then the recorded decision is completed
    world.store.fail_on = set()
    result = world.scan(req)
    assert result.duplicate and result.status is AssetStatus.QUARANTINED
    assert world.where("f.jpg") == ["quarantine/acme/f.jpg"]


def test_crash_after_copy_before_delete_leaves_one_place_after_retry(world: World) -> None:
    world.store.fail_on = {"delete"}
    req = world.upload("acme/g.jpg", fake_image((0, 120)))
    with pytest.raises(DependencyFailed):
        world.scan(req)
    world.store.fail_on = set()
    world.scan(req)
    assert world.where("g.jpg") == ["library/acme/g.jpg"]


def test_a_decision_is_stored_with_its_appearance_rows_or_not_at_all(world: World) -> None:
    # Given the decision's write failing (with it, its rows: one transaction, issue 19 I1)
    req = world.upload("acme/r.jpg", fake_image((0, 120)))

    def failing(*_: Any, **__: Any) -> bool:
        raise DependencyFailed("DynamoDB asset write failed: ThrottlingException")

    world.assets.create = failing  # type: ignore[method-assign]
    with pytest.raises(DependencyFailed):
        world.scan(req)
    assert world.assets.records == {} and world.assets.rows == set()
    # When redelivered / Then it is decided again, published with its row
    del world.assets.create
    result = world.scan(req)
    assert not result.duplicate and world.where("r.jpg") == ["library/acme/r.jpg"]
    assert world.assets.rows == {("acme", "sub_ok", result.asset_id)}


def test_a_redelivered_decision_without_its_rows_gets_them_before_placement(
    world: World,
) -> None:
    # Given a decision recorded, not placed, its appearance row lost (written by code
    # from before issue 19, which wrote the rows apart)
    world.store.fail_on = {"copy"}
    req = world.upload("acme/s.jpg", fake_image((0, 120)))
    with pytest.raises(DependencyFailed):
        world.scan(req)
    world.assets.rows.clear()
    world.store.fail_on = set()

    placed_with: list[set[tuple[str, str, str]]] = []
    copy = world.store.copy

    def copying(*args: Any, **kwargs: Any) -> Any:
        placed_with.append(set(world.assets.rows))
        return copy(*args, **kwargs)

    world.store.copy = copying  # type: ignore[method-assign]
    # When the message is redelivered
    result = world.scan(req)
    # Then the row was written before the bytes reached the library
    assert result.duplicate and world.where("s.jpg") == ["library/acme/s.jpg"]
    assert placed_with == [{("acme", "sub_ok", result.asset_id)}]


def test_gallery_is_reloaded_only_when_its_version_changes(world: World) -> None:
    calls = []
    original = world.subjects.templates

    def counting(tenant: str):  # type: ignore[no-untyped-def]
        calls.append(tenant)
        return original(tenant)

    world.subjects.templates = counting  # type: ignore[method-assign]
    world.scan(world.upload("acme/h1.jpg", fake_image((0, 120))))
    world.scan(world.upload("acme/h2.jpg", fake_image((0, 120))))
    assert calls == ["acme"]
    world.tenants.bump_gallery_version("acme")
    world.scan(world.upload("acme/h3.jpg", fake_image((0, 120))))
    assert calls == ["acme", "acme"]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("incoming/acme/a/b.jpg", ("acme", "a/b.jpg")),
        ("incoming/acme/", None),
        ("incoming/acme", None),
        ("other/acme/x.jpg", None),
        ("incoming/_x/y.jpg", None),
    ],
)
def test_split_upload_key(key: str, expected: tuple[str, str] | None) -> None:
    assert split_upload_key(key, "incoming/") == expected


class RevokingConsents(FakeConsents):
    """Withdraws sub_ok's consent right after the scan has read it."""

    def __init__(self, base: FakeConsents, after_reads: int = 1) -> None:
        super().__init__(list(base.items))
        self.reads = 0
        self.after_reads = after_reads

    def for_subjects(self, tenant: str, subject_ids: Sequence[str]) -> dict[str, list[Consent]]:
        found = super().for_subjects(tenant, subject_ids)
        self.reads += 1
        if self.reads == self.after_reads:
            self.revoke(self.items[0], NOW - timedelta(seconds=1), source="race")
        return found


def test_a_withdrawal_during_the_scan_keeps_the_image_out(world: World) -> None:
    # Given a withdrawal that lands after the scan read the (valid) consent,
    # before any appearance row exists (so no recheck can find this asset)
    world.scan._consents = RevokingConsents(world.consents)
    req = world.upload("acme/race.jpg", fake_image((0, 120)))
    # When the scan completes
    result = world.scan(req)
    # Then it is quarantined for the withdrawal, never in the library
    assert result.status is AssetStatus.QUARANTINED
    assert result.reasons == ("consent_revoked",)
    assert world.where("race.jpg") == ["quarantine/acme/race.jpg"]
    record = world.assets.get("acme", result.asset_id)
    assert record is not None and [h["action"] for h in record.history] == [
        "decided",
        "redecided",
    ]


def test_a_redecision_between_record_and_copy_is_followed(world: World) -> None:
    # Given a recheck that quarantines the asset just before ingest copies it
    # (it found no bytes to move: they were still in the upload area)
    req = world.upload("acme/late.jpg", fake_image((0, 120)))
    original_copy = world.store.copy

    def copy_after_redecision(source, dest_bucket, dest_key, extra):  # type: ignore[no-untyped-def]
        for key, rec in list(world.assets.records.items()):
            if rec.status is AssetStatus.APPROVED and rec.placed_at is None:
                world.assets.records[key] = replace(
                    rec,
                    status=AssetStatus.QUARANTINED,
                    reasons=("consent_revoked",),
                    dest_bucket=QUA,
                    version=rec.version + 1,
                )
        world.store.copy = original_copy  # type: ignore[method-assign]
        original_copy(source, dest_bucket, dest_key, extra)

    world.store.copy = copy_after_redecision  # type: ignore[method-assign]
    # When ingest completes / Then the bytes follow the newer decision
    result = world.scan(req)
    assert result.status is AssetStatus.QUARANTINED
    assert world.where("late.jpg") == ["quarantine/acme/late.jpg"]


def test_detect_only_sends_every_identifiable_face_to_review(world: World) -> None:
    # Given a tenant that detects faces but never matches them in "events/"
    world.tenants.policies["acme"] = TenantPolicy(
        "acme", scan_modes=(("*", ScanMode.RECOGNIZE), ("events", ScanMode.DETECT_ONLY))
    )
    # When a photo of the consented person lands in events/ and elsewhere
    held = world.scan(world.upload("acme/events/a.jpg", fake_image((0, 120), (None, 10))))
    passed = world.scan(world.upload("acme/other/a.jpg", fake_image((0, 120))))
    # Then in events/ no match is attempted and a person must look
    assert held.reasons == ("review_required",)
    record = world.assets.get("acme", held.asset_id)
    assert record is not None and all(f.subject_id is None for f in record.faces)
    assert record.policy["scan_mode"] == "detect-only"
    assert passed.status is AssetStatus.APPROVED


def test_scan_mode_off_skips_faces_but_still_validates_input(world: World) -> None:
    world.tenants.policies["acme"] = TenantPolicy(
        "acme", scan_modes=(("*", ScanMode.RECOGNIZE), ("products", ScanMode.OFF))
    )
    approved = world.scan(world.upload("acme/products/p.jpg", fake_image((None, 120))))
    assert approved.status is AssetStatus.APPROVED
    record = world.assets.get("acme", approved.asset_id)
    assert record is not None and record.faces == ()
    # A broken file is still rejected, with its bytes kept
    broken = world.scan(world.upload("acme/products/q.jpg", b"not an image"))
    assert broken.status is AssetStatus.REJECTED


@dataclass
class Outbox:
    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def publish(self, event_type: str, tenant: str, data: Any) -> None:
        self.events.append((event_type, tenant, dict(data)))


def test_each_decision_and_withdrawal_is_announced(world: World) -> None:
    outbox = Outbox()
    world.scan._events = outbox
    # When an approved image's consent is withdrawn later
    result = world.scan(world.upload("acme/ann.jpg", fake_image((0, 120))))
    placement = Placement(store=world.store, assets=world.assets, clock=FixedClock(NOW))
    recheck = Recheck(
        assets=world.assets,
        consents=world.consents,
        placement=placement,
        clock=FixedClock(NOW),
        library_bucket=LIB,
        quarantine_bucket=QUA,
        events=outbox,
    )
    world.consents.revoke(world.consents.items[0], NOW - timedelta(seconds=1), source="t")
    recheck.recheck_subject("acme", "sub_ok", actor="test")
    # Then both steps went to the outbox, with ids and no names
    assert [(t, tenant) for t, tenant, _ in outbox.events] == [
        ("asset.approved", "acme"),
        ("asset.withdrawn", "acme"),
    ]
    withdrawn = outbox.events[1][2]
    assert {k: withdrawn[k] for k in ("asset_id", "path", "reasons")} == {
        "asset_id": result.asset_id,
        "path": "ann.jpg",
        "reasons": ["consent_revoked"],
    }
    # And each says its clearance per channel (codes only)
    assert withdrawn["channels"]["web"] == {"status": "held", "reasons": ["consent_revoked"]}
    assert outbox.events[0][2]["channels"]["web"] == {"status": "cleared", "reasons": []}
    assert withdrawn["publishing_purposes"] == ["web"]
    assert world.where("ann.jpg") == ["quarantine/acme/ann.jpg"]
    assert "Person 0" not in repr(outbox.events)
