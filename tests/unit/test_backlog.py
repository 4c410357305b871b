"""Backlog scans with in-memory ports: the bulk-lane rule, checkpoint, exactly-once resume."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from quitclaim.domain.backlog import Checkpoint, Progress, backlog_name, cost_usd, upload_path
from quitclaim.domain.models import AssetStatus, TenantPolicy
from quitclaim.domain.records import AssetRecord
from quitclaim.domain.registry import Page
from quitclaim.usecases.admit_uploads import Arrival
from quitclaim.usecases.backlog import BacklogScan
from tests.unit.fakes import FakeTenants, FixedClock
from tests.unit.test_admission import FakeBulkLane, FakeCounter, admission, s3_event

TENANT = "acme"


def test_backlog_uploads_take_the_bulk_lane_without_using_the_share() -> None:
    # Given a batch of a backlog's uploads and one ordinary upload, well within the share
    counter, bulk = FakeCounter(), FakeBulkLane()
    arrivals = [
        Arrival(f"b{i}", s3_event(f"incoming/{TENANT}/backlog/archive/{i}.jpg")) for i in range(3)
    ]
    arrivals.append(Arrival("dam", s3_event(f"incoming/{TENANT}/web/photo.jpg")))
    # When admission routes it
    routing = admission(counter, bulk, share=100).route(arrivals)
    # Then the backlog's go to the bulk lane, the DAM's is scanned now, and only it is counted
    assert routing.forwarded == ("b0", "b1", "b2")
    assert routing.scan == ("dam",)
    assert sum(counter.counts.values()) == 1


@dataclass
class Uploads:
    """The uploads bucket: waiting objects and the checkpoint."""

    uploads_bucket: str = "uploads"
    waiting_paths: dict[str, str] = field(default_factory=dict)  # path -> version
    saved: dict[tuple[str, str], Checkpoint] = field(default_factory=dict)
    puts: list[str] = field(default_factory=list)

    def incoming_key(self, tenant: str, path: str) -> str:
        return f"incoming/{tenant}/{path}"

    def put(self, tenant: str, path: str, data: bytes) -> str:
        self.puts.append(path)
        version = f"v{len(self.puts)}"
        self.waiting_paths[path] = version
        return version

    def waiting(self, tenant: str, prefix: str) -> list[str]:
        return [p for p in self.waiting_paths if p.startswith(prefix)]

    def load(self, tenant: str, name: str) -> Checkpoint | None:
        return self.saved.get((tenant, name))

    def save(self, checkpoint: Checkpoint) -> None:
        self.saved[(checkpoint.tenant, checkpoint.name)] = checkpoint


@dataclass
class Assets:
    records: dict[str, AssetRecord] = field(default_factory=dict)

    def get(self, tenant: str, asset_id: str) -> AssetRecord | None:
        return self.records.get(asset_id)

    def page(self, tenant: str, **_: Any) -> Page:
        return Page(tuple(self.records.values()))


@dataclass
class Source:
    keys: list[str]

    def describe(self) -> str:
        return "folder:/library"

    def keys_after(self, after: str) -> Iterator[str]:
        return (k for k in sorted(self.keys) if k > after)

    def read(self, key: str) -> bytes:
        return key.encode()


def decide_all(uploads: Uploads, assets: Assets) -> None:
    """Ingest: every waiting upload gets its decision (one record) and leaves incoming/."""
    from quitclaim.domain.records import asset_id_for

    for path, version in list(uploads.waiting_paths.items()):
        key = uploads.incoming_key(TENANT, path)
        asset_id = asset_id_for(TENANT, uploads.uploads_bucket, key, version)
        status = AssetStatus.REJECTED if path.endswith("bad.jpg") else AssetStatus.APPROVED
        assets.records[asset_id] = AssetRecord(
            tenant=TENANT,
            asset_id=asset_id,
            source_bucket="uploads",
            source_key=key,
            source_version=version,
            path=path,
            purpose="web",
            status=status,
            reasons=("corrupt_image",) if status is AssetStatus.REJECTED else (),
            dest_bucket="q",
            dest_key=path,
            decided_at=datetime(2026, 11, 26, tzinfo=UTC),
            timings_ms={"decode": 100.0, "detect": 200.0},
        )
        del uploads.waiting_paths[path]


@settings(max_examples=25, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=30),
    stop_after=st.integers(min_value=0, max_value=30),
    concurrency=st.integers(min_value=1, max_value=8),
)
def test_a_stopped_and_resumed_scan_feeds_every_image_exactly_once(
    count: int, stop_after: int, concurrency: int
) -> None:
    # Given a library of images (and one non-image), a tenant's backlog concurrency
    keys = [f"{i:03d}-{'bad' if i % 7 == 3 else 'ok'}.jpg" for i in range(count)] + ["notes.txt"]
    uploads, assets = Uploads(), Assets()
    tenants = FakeTenants()
    tenants.save_tenant(TenantPolicy(tenant=TENANT, backlog_concurrency=concurrency))
    scan = BacklogScan(store=uploads, assets=assets, tenants=tenants, clock=FixedClock())
    most_in_flight = 0

    def wait() -> None:
        nonlocal most_in_flight
        most_in_flight = max(most_in_flight, len(uploads.waiting_paths))
        decide_all(uploads, assets)

    fed: list[int] = []
    # When it is stopped after ``stop_after`` images, then run again
    first = scan.run(
        TENANT,
        "archive",
        Source(keys),
        stop=lambda: bool(fed) and fed[-1] >= stop_after,
        wait=wait,
        progress=lambda p: fed.append(p.fed),
        progress_every_s=0,
    )
    second = scan.run(TENANT, "archive", Source(keys), wait=wait)
    # Then every image was uploaded exactly once, in order, never more in flight than allowed
    assert uploads.puts == [upload_path("archive", k) for k in sorted(keys) if k.endswith(".jpg")]
    assert most_in_flight <= concurrency
    assert first.fed == min(count, max(stop_after, 1)) or first.state == "complete"
    # And the report accounts for each image once, rejections with their reasons
    assert second.state == "complete" and second.fed == count and second.skipped == 1
    assert second.unaccounted == [] and second.decided_twice == []
    assert sum(second.decisions.values()) == count
    assert all(e["status"] == "rejected" and e["reasons"] for e in second.exceptions)
    assert len(second.exceptions) == sum(1 for k in keys if k.endswith("bad.jpg"))


def test_a_backlog_name_refuses_another_source() -> None:
    from quitclaim.domain.errors import Conflict

    uploads, tenants = Uploads(), FakeTenants()
    tenants.save_tenant(TenantPolicy(tenant=TENANT))
    uploads.save(Checkpoint(TENANT, "archive", "s3://elsewhere/", state="stopped"))
    scan = BacklogScan(store=uploads, assets=Assets(), tenants=tenants, clock=FixedClock())
    try:
        scan.run(TENANT, "archive", Source(["a.jpg"]))
    except Conflict as exc:
        assert exc.code == "backlog_source"
    else:
        raise AssertionError("a second source under the same name was accepted")
    assert uploads.puts == []


@given(
    decided=st.integers(min_value=0, max_value=10_000),
    total=st.integers(min_value=1, max_value=10_000),
    elapsed=st.floats(min_value=0.1, max_value=1e5),
)
def test_the_progress_line_names_count_rate_eta_and_cost(
    decided: int, total: int, elapsed: float
) -> None:
    line = Progress(decided, decided, total, elapsed, cost_usd(decided, decided * 1.5)).line()
    assert line.startswith(f"{decided}/{total} decided")
    assert "images/s" in line and "ETA" in line and "cost so far $" in line


def test_cost_grows_with_images_and_scan_time_and_names_are_slugs() -> None:
    assert cost_usd(0, 0.0) == 0.0
    assert cost_usd(1000, 2000.0) > cost_usd(1000, 1000.0) > cost_usd(500, 1000.0)
    assert backlog_name("s3://bucket/Photos 2019/") == "photos-2019"
    assert Checkpoint.from_dict(Checkpoint(TENANT, "a", "s", "k", 3).as_dict()).fed == 3
