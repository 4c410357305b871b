"""Metering and the monthly image quota, with in-memory ports (no network)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quitclaim.domain.errors import ValidationFailed
from quitclaim.domain.models import AssetStatus
from quitclaim.domain.records import AssetRecord
from quitclaim.domain.usage import (
    BYTES_PER_GB,
    FACES_PROCESSED,
    IMAGES_SCANNED,
    MATCHES_MADE,
    QUOTA_EXCEEDED,
    STORAGE_LIBRARY,
    STORAGE_QUARANTINE,
    UNITS,
    UsageReport,
    month_bounds,
    parse_month,
    storage_gb_months,
    usage_csv,
)
from quitclaim.usecases.uploads import ScanRequest
from quitclaim.usecases.usage_metering import Usage
from tests.unit.fakes import FakeUsage, fake_image
from tests.unit.test_scan_asset import NOW, UP, World


@dataclass
class FakeQueue:
    sent: list[Mapping[str, Any]] = field(default_factory=list)

    def send(self, item: Mapping[str, Any]) -> None:
        self.sent.append(item)


class MeteredWorld(World):
    """Given: the scan world of test_scan_asset, metered, with a movable clock."""

    def __init__(self) -> None:
        usage, clock = FakeUsage(), _Clock(NOW)
        super().__init__(usage=usage, clock=clock)
        self.usage, self.clock = usage, clock
        self.assets.meter = usage
        self.queue = FakeQueue()
        self.service = Usage(self.usage, self.assets, self.clock, self.queue)  # type: ignore[arg-type]

    def counters(self, month: str = "2026-11") -> dict[str, int]:
        return self.usage.counters("acme", month)

    def deliver_released(self) -> None:
        """The ingest queue's released messages, delivered to ingest."""
        while self.queue.sent:
            body = self.queue.sent.pop(0)
            obj = body["Records"][0]["s3"]["object"]  # type: ignore[index]
            bucket = body["Records"][0]["s3"]["bucket"]["name"]  # type: ignore[index]
            self.scan(ScanRequest(bucket, obj["key"], obj["versionId"], ""))


@dataclass
class _Clock:
    at: datetime

    def now(self) -> datetime:
        return self.at


@pytest.fixture
def world() -> MeteredWorld:
    return MeteredWorld()


def test_a_decision_counts_its_image_faces_and_matches_once(world: MeteredWorld) -> None:
    # Given an upload with the consented person, the unconsented one and a stranger
    req = world.upload("acme/b.jpg", fake_image((0, 120), (1, 120), (None, 120)))
    # When the same S3 event is delivered three times
    for _ in range(3):
        world.scan(req)
    # Then one image, three faces and two matches are counted
    got = world.counters()
    assert (got[IMAGES_SCANNED], got[FACES_PROCESSED], got[MATCHES_MADE]) == (1, 3, 2)


@settings(max_examples=25, deadline=None)
@given(
    uploads=st.lists(st.lists(st.sampled_from([0, 1, None]), max_size=3), min_size=1, max_size=6),
    deliveries=st.lists(st.integers(min_value=0, max_value=5), max_size=12),
)
def test_counters_equal_what_the_records_say_whatever_the_redeliveries(
    uploads: list[list[int | None]], deliveries: list[int]
) -> None:
    # Given some uploads, each delivered once, then any redeliveries in any order
    world = MeteredWorld()
    requests = [
        world.upload(f"acme/{n}.jpg", fake_image(*((p, 120) for p in people)))
        for n, people in enumerate(uploads)
    ]
    for req in requests:
        world.scan(req)
    for index in deliveries:
        world.scan(requests[index % len(requests)])
    # Then the counters are exactly what the records hold
    records = list(world.assets.records.values())
    got = world.counters()
    assert got[IMAGES_SCANNED] == len(records)
    assert got[FACES_PROCESSED] == sum(len(r.faces) for r in records)
    assert got[MATCHES_MADE] == sum(1 for r in records for f in r.faces if f.subject_id)


def test_over_quota_uploads_are_held_where_they_are_then_released_next_month(
    world: MeteredWorld,
) -> None:
    # Given a tenant with images_per_month = 3
    world.usage.set_images_per_month("acme", 3)
    # When it uploads five images
    results = [world.scan(world.upload(f"acme/{n}.jpg", fake_image((0, 120)))) for n in range(5)]
    # Then three are decided and two held, their bytes untouched in the uploads bucket
    assert [r.status for r in results] == [AssetStatus.APPROVED] * 3 + [AssetStatus.HELD] * 2
    for n in (3, 4):
        assert world.where(f"/{n}.jpg") == [f"uploads/incoming/acme/{n}.jpg"]
    held = world.assets.held("acme", 10)
    assert [r.reasons for r in held] == [(QUOTA_EXCEEDED,)] * 2
    assert world.counters()[IMAGES_SCANNED] == 3
    # And a release within the month frees nothing
    assert world.service.release("acme") == 0
    # When the month rolls over and the release job runs
    world.clock.at = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
    assert world.service.release_all() == {"acme": 2}
    world.deliver_released()
    # Then both are decided, counted in December, and nothing is left in the uploads
    assert world.assets.held("acme", 10) == []
    assert world.counters("2026-12")[IMAGES_SCANNED] == 2
    assert world.counters()[IMAGES_SCANNED] == 3
    assert world.where("/3.jpg") == ["library/acme/3.jpg"]
    record = world.assets.get("acme", results[3].asset_id)
    assert record is not None and [h["action"] for h in record.history] == ["held", "decided"]


def test_a_plan_change_releases_up_to_the_new_limit_at_once(world: MeteredWorld) -> None:
    # Given three uploads held by a quota of 1
    world.usage.set_images_per_month("acme", 1)
    for n in range(4):
        world.scan(world.upload(f"acme/{n}.jpg", fake_image((0, 120))))
    assert len(world.assets.held("acme", 10)) == 3
    # When the plan is raised to 3 images a month
    released = world.service.set_images_per_month("acme", 3)
    world.deliver_released()
    # Then two are released and decided, one stays held
    assert released == 2
    assert world.counters()[IMAGES_SCANNED] == 3
    assert len(world.assets.held("acme", 10)) == 1


def test_a_redelivered_event_of_a_held_upload_stays_held_while_over_quota(
    world: MeteredWorld,
) -> None:
    world.usage.set_images_per_month("acme", 0)
    req = world.upload("acme/a.jpg", fake_image((0, 120)))
    first, again = world.scan(req), world.scan(req)
    assert (first.status, again.status) == (AssetStatus.HELD, AssetStatus.HELD)
    assert len(world.assets.records) == 1 and world.counters()[IMAGES_SCANNED] == 0


class _StaleUsage(FakeUsage):
    """Reads that lag the writes: another ingest took the last image meanwhile."""

    def counters(self, tenant: str, month: str) -> dict[str, int]:
        return {**super().counters(tenant, month), IMAGES_SCANNED: 0}


def test_the_last_image_raced_for_is_held_not_overspent() -> None:
    # Given a quota of 1 and a meter whose reads always see room
    world = MeteredWorld()
    stale = _StaleUsage(limits={"acme": 1})
    world.usage = stale
    world.assets.meter = stale
    world.scan._usage = stale
    # When two uploads both pass the check
    a = world.scan(world.upload("acme/a.jpg", fake_image((0, 120))))
    b = world.scan(world.upload("acme/b.jpg", fake_image((0, 120))))
    # Then the transaction's condition holds the second: one image counted
    assert (a.status, b.status) == (AssetStatus.APPROVED, AssetStatus.HELD)
    assert FakeUsage.counters(stale, "acme", "2026-11")[IMAGES_SCANNED] == 1
    assert world.where("/b.jpg") == ["uploads/incoming/acme/b.jpg"]


def test_api_calls_are_counted_per_request_in_the_utc_month(world: MeteredWorld) -> None:
    world.clock.at = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    world.service.count_api_call("acme")
    world.clock.at = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    world.service.count_api_call("acme")
    assert world.counters()["api_calls"] == 1
    assert world.counters("2026-12")["api_calls"] == 1


@pytest.mark.parametrize("bad", ["2026-13", "2026-1", "26-11", "2026-11-01", "", "november"])
def test_a_malformed_month_is_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        parse_month(bad)
    assert err.value.field == "month"


def _record(size: int, steps: list[tuple[datetime, str]]) -> AssetRecord:
    return AssetRecord(
        tenant="acme",
        asset_id="a1",
        source_bucket=UP,
        source_key="incoming/acme/a.jpg",
        source_version="v1",
        path="a.jpg",
        purpose="web",
        status=AssetStatus(steps[-1][1]),
        reasons=(),
        dest_bucket="x",
        dest_key="acme/a.jpg",
        decided_at=steps[0][0],
        history=tuple({"at": at.isoformat(), "status": status} for at, status in steps),
        size=size,
    )


def test_one_gb_in_the_library_for_the_whole_month_is_one_gb_month() -> None:
    start, end = month_bounds("2026-11")
    record = _record(BYTES_PER_GB, [(start - timedelta(days=3), "approved")])
    got = storage_gb_months([record], "2026-11", end + timedelta(days=9))
    assert got[STORAGE_LIBRARY] == pytest.approx(1.0)
    assert got[STORAGE_QUARANTINE] == 0.0


@settings(max_examples=50, deadline=None)
@given(
    moves=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=30 * 24 * 60 - 1),
            st.sampled_from(["approved", "quarantined", "rejected", "deleted"]),
        ),
        min_size=1,
        max_size=8,
    ),
    size=st.integers(min_value=1, max_value=5 * BYTES_PER_GB),
)
def test_moves_between_library_and_quarantine_never_count_twice(
    moves: list[tuple[int, str]], size: int
) -> None:
    # Given an image that moves between places at any minutes of November
    start, end = month_bounds("2026-11")
    steps = sorted((start + timedelta(minutes=m), status) for m, status in moves)
    got = storage_gb_months([_record(size, steps)], "2026-11", end)
    # Then library + quarantine is exactly its size over the time it was in either
    stored = timedelta()
    for (at, status), (until, _) in zip(steps, [*steps[1:], (end, "")], strict=True):
        if status != "deleted":
            stored += until - at
    expected = size * (stored / timedelta(hours=1)) / (BYTES_PER_GB * 720)
    assert got[STORAGE_LIBRARY] + got[STORAGE_QUARANTINE] == pytest.approx(expected)
    assert got[STORAGE_LIBRARY] >= 0 and got[STORAGE_QUARANTINE] >= 0


def test_the_csv_has_one_row_per_unit() -> None:
    report = UsageReport("acme", "2026-11", dict.fromkeys(UNITS, 0) | {IMAGES_SCANNED: 3})
    lines = usage_csv(report).splitlines()
    assert lines[0] == "month,tenant,unit,quantity"
    assert len(lines) == 1 + len(UNITS)
    assert "2026-11,acme,images_scanned,3" in lines


def test_released_messages_name_the_same_upload_version(world: MeteredWorld) -> None:
    world.usage.set_images_per_month("acme", 0)
    world.scan(replace(world.upload("acme/a b.jpg", fake_image()), version_id="v9"))
    world.usage.set_images_per_month("acme", 5)
    world.service.release("acme")
    body = json.loads(json.dumps(world.queue.sent[0]))
    assert body["Records"][0]["s3"]["object"]["key"] == "incoming/acme/a+b.jpg"
    assert body["Records"][0]["s3"]["object"]["versionId"] == "v9"


def test_records_of_processing_count_a_held_upload_in_the_month_it_was_scanned() -> None:
    from quitclaim.domain.rights import monthly_volumes

    # Given an upload held in November and decided in December, and one still held
    nov, dec = datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 1, 1, tzinfo=UTC)
    released = _record(10, [(nov, "held"), (dec, "approved")])
    waiting = replace(_record(10, [(nov, "held")]), asset_id="a2")
    # When the volumes are counted
    volumes = {v["month"]: v for v in monthly_volumes([released, waiting], [])}
    # Then only December shows one scan, approved
    assert list(volumes) == ["2026-12"]
    assert (volumes["2026-12"]["assets_scanned"], volumes["2026-12"]["approved"]) == (1, 1)
