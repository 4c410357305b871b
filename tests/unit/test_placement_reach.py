"""Placement writes a publishing decision with its appearance rows (issue 19, I1)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from quitclaim.domain.models import AssetStatus
from quitclaim.domain.records import AssetRecord, FaceRecord
from quitclaim.usecases.asset_decisions import META_ASSET_ID, Placement, reach
from tests.unit.fakes import FakeAssets, FakeStore, FixedClock

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def _face(subject_id: str | None) -> FaceRecord:
    return FaceRecord([0, 0, 10, 10], 0, True, subject_id, None, None, None, None)


def _record(status: AssetStatus, *subjects: str | None) -> AssetRecord:
    return AssetRecord(
        tenant="acme",
        asset_id="ast_1",
        source_bucket="uploads",
        source_key="incoming/acme/a.jpg",
        source_version="v1",
        path="a.jpg",
        purpose="web",
        status=status,
        reasons=() if status is AssetStatus.APPROVED else ("unknown_face",),
        dest_bucket="library" if status is AssetStatus.APPROVED else "quarantine",
        dest_key="acme/a.jpg",
        decided_at=NOW,
        faces=tuple(_face(s) for s in subjects),
    )


def test_which_rows_go_with_which_decision() -> None:
    held = _record(AssetStatus.QUARANTINED, "sub_a", None)
    # A decision that publishes carries every subject's row
    assert reach(held, _record(AssetStatus.APPROVED, "sub_a", None)) == ("sub_a",)
    # One that names a person it did not name before carries them all (a reassigned face)
    assert reach(held, _record(AssetStatus.QUARANTINED, "sub_a", "sub_b")) == ("sub_a", "sub_b")
    # One that withdraws, keeps or deletes carries none (the rows are there already)
    published = _record(AssetStatus.APPROVED, "sub_a")
    assert reach(published, _record(AssetStatus.QUARANTINED, "sub_a")) == ()
    assert reach(held, replace(held, review={"kept": {}})) == ()
    assert reach(held, replace(held, status=AssetStatus.DELETED, dest_bucket="")) == ()


def test_a_release_is_written_with_its_rows_before_the_bytes_move() -> None:
    # Given a held image of sub_a whose appearance row was lost
    store, assets = FakeStore(), FakeAssets()
    held = _record(AssetStatus.QUARANTINED, "sub_a")
    assets.records[("acme", "ast_1")] = held
    store.objects[("quarantine", "acme/a.jpg")] = (b"img", {META_ASSET_ID: "ast_1"})
    seen: list[set[tuple[str, str, str]]] = []
    copy = store.copy

    def copying(*args: object, **kwargs: object) -> None:
        seen.append(set(assets.rows))
        copy(*args, **kwargs)  # type: ignore[arg-type]

    store.copy = copying  # type: ignore[method-assign]
    # When it is published
    Placement(store=store, assets=assets, clock=FixedClock(NOW)).transition(
        held, _record(AssetStatus.APPROVED, "sub_a")
    )
    # Then its row existed when the copy into the library was made
    assert seen == [{("acme", "sub_a", "ast_1")}]
    assert ("library", "acme/a.jpg") in store.objects


def test_settle_finishes_a_publication_that_died_after_its_record() -> None:
    # Given a record approved (and re-confirmed) whose bytes are still in quarantine
    store, assets = FakeStore(), FakeAssets()
    record = _record(AssetStatus.APPROVED, "sub_a")
    store.objects[("quarantine", "acme/a.jpg")] = (b"img", {META_ASSET_ID: "ast_1"})
    # When settled / Then the bytes are where the record says, once
    Placement(store=store, assets=assets, clock=FixedClock(NOW)).settle(record, "quarantine")
    assert sorted(store.objects) == [("library", "acme/a.jpg")]
