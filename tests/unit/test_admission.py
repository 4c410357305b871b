"""Admission with in-memory ports: the lane rule, routing, no loss, no double decision."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quitclaim.config import Settings
from quitclaim.domain.errors import DependencyFailed
from quitclaim.domain.models import TenantPolicy
from quitclaim.domain.ports import Arrival, Lane
from quitclaim.domain.records import AssetRecord
from quitclaim.domain.usage import UsageIncrement
from quitclaim.edges.s3_events import uploads_from_message
from quitclaim.faces import published
from quitclaim.faces.gallery import GalleryCache
from quitclaim.usecases.admit_uploads import (
    Admission,
    main_lane_slots,
    tenant_of,
)
from quitclaim.usecases.scan_asset import ScanAsset
from quitclaim.usecases.uploads import ScanRequest
from tests.unit.fakes import (
    FakeAssets,
    FakeConsents,
    FakeEngine,
    FakeStore,
    FakeSubjects,
    FakeTenants,
    FixedClock,
    fake_image,
)

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
UP = "uploads"


def s3_event(key: str, bucket: str = "uploads") -> str:
    """An S3 notification body as SQS delivers it (one ObjectCreated record)."""
    record = {
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "eTag": f"etag-{key}"}},
    }
    return json.dumps({"Records": [record]})


def upload(tenant: str, n: int, lane: Lane = Lane.MAIN) -> Arrival:
    return Arrival(f"{tenant}-{n}", s3_event(f"incoming/{tenant}/{n}.jpg"), lane)


@dataclass
class FakeCounter:
    counts: dict[tuple[str, int], int] = field(default_factory=dict)
    expiries: dict[tuple[str, int], int] = field(default_factory=dict)
    failing: bool = False

    def add(self, tenant: str, window: int, amount: int, expires_at: int) -> int:
        if self.failing:
            raise DependencyFailed("counter down")
        key = (tenant, window)
        self.counts[key] = self.counts.get(key, 0) + amount
        self.expiries[key] = expires_at
        return self.counts[key]


@dataclass
class FakeBulkLane:
    sent: list[Arrival] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    def forward(self, messages: Sequence[Arrival]) -> set[str]:
        failed = {m.message_id for m in messages if m.message_id in self.refuse}
        self.sent.extend(m for m in messages if m.message_id not in failed)
        return failed


def admission(
    counter: FakeCounter, bulk: FakeBulkLane, share: int = 3, clock: FixedClock | None = None
) -> Admission:
    return Admission(
        counter=counter, bulk=bulk, clock=clock or FixedClock(NOW), share=share, window_s=60
    )


# ---------------------------------------------------------------- the rule


@given(
    before=st.integers(min_value=0, max_value=500),
    arrivals=st.integers(min_value=0, max_value=50),
    share=st.integers(min_value=1, max_value=300),
)
def test_exactly_the_arrivals_within_the_share_take_the_main_lane(
    before: int, arrivals: int, share: int
) -> None:
    lanes = main_lane_slots(before, arrivals, share)
    assert len(lanes) == arrivals
    assert lanes.count(Lane.MAIN) == max(0, min(arrivals, share - before))
    # Main first, then bulk: arrival order decides, never a later one before an earlier one
    assert lanes == sorted(lanes, key=lambda lane: lane is Lane.BULK)


def test_the_tenant_of_a_message_is_its_uploads_one_tenant_or_none() -> None:
    assert tenant_of(s3_event("incoming/acme/a.jpg"), "incoming/") == "acme"
    assert tenant_of(s3_event("elsewhere/a.jpg"), "incoming/") is None
    assert tenant_of("not json", "incoming/") is None
    assert tenant_of(json.dumps({"Event": "s3:TestEvent"}), "incoming/") is None
    two = json.loads(s3_event("incoming/acme/a.jpg"))
    two["Records"] += json.loads(s3_event("incoming/other/b.jpg"))["Records"]
    assert tenant_of(json.dumps(two), "incoming/") is None


# ---------------------------------------------------------------- routing


def test_a_tenant_beyond_its_share_goes_to_the_bulk_lane_and_others_stay_on_main() -> None:
    # Given a share of 3 per window and a batch of 5 from A and 2 from B
    counter, bulk = FakeCounter(), FakeBulkLane()
    batch = [upload("a", i) for i in range(5)] + [upload("b", i) for i in range(2)]
    # When the batch is routed
    routing = admission(counter, bulk).route(batch)
    # Then A's first 3 and both of B's are scanned now, A's last 2 forwarded unchanged
    assert routing.scan == ("a-0", "a-1", "a-2", "b-0", "b-1")
    assert routing.forwarded == ("a-3", "a-4")
    assert routing.failed == ()
    assert [m.body for m in bulk.sent] == [batch[3].body, batch[4].body]
    # And each tenant was counted once for the batch, in the current window, TTL'd after it
    window = int(NOW.timestamp()) // 60
    assert counter.counts == {("a", window): 5, ("b", window): 2}
    assert counter.expiries[("a", window)] == (window + 2) * 60


def test_the_share_is_per_window_a_new_window_starts_at_zero() -> None:
    counter, bulk, clock = FakeCounter(), FakeBulkLane(), FixedClock(NOW)
    lanes = admission(counter, bulk, share=2, clock=clock)
    assert lanes.route([upload("a", i) for i in range(3)]).forwarded == ("a-2",)
    clock.at = NOW + timedelta(minutes=1)
    assert lanes.route([upload("a", i) for i in range(3, 6)]).scan == ("a-3", "a-4")


def test_messages_already_on_the_bulk_lane_are_scanned_never_routed_again() -> None:
    counter, bulk = FakeCounter(), FakeBulkLane()
    routing = admission(counter, bulk, share=1).route([upload("a", i, Lane.BULK) for i in range(4)])
    assert routing.scan == ("a-0", "a-1", "a-2", "a-3")
    assert bulk.sent == [] and counter.counts == {}


def test_a_failed_forward_is_reported_so_the_message_comes_back() -> None:
    counter, bulk = FakeCounter(), FakeBulkLane(refuse={"a-2"})
    routing = admission(counter, bulk, share=1).route([upload("a", i) for i in range(3)])
    assert (routing.scan, routing.forwarded, routing.failed) == (("a-0",), ("a-1",), ("a-2",))


def test_without_the_counter_everything_is_scanned_on_the_main_lane() -> None:
    counter, bulk = FakeCounter(failing=True), FakeBulkLane()
    routing = admission(counter, bulk, share=1).route([upload("a", i) for i in range(3)])
    assert routing.scan == ("a-0", "a-1", "a-2")
    assert bulk.sent == []


def test_unattributable_and_malformed_messages_stay_on_the_main_lane() -> None:
    counter, bulk = FakeCounter(), FakeBulkLane()
    odd = [Arrival("x", "garbage"), Arrival("y", s3_event("elsewhere/a.jpg"))]
    routing = admission(counter, bulk, share=1).route(odd)
    assert routing.scan == ("x", "y") and counter.counts == {}


@pytest.mark.parametrize(("share", "window_s"), [(0, 60), (1, 0)])
def test_share_and_window_must_be_positive(share: int, window_s: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        Admission(
            counter=FakeCounter(),
            bulk=FakeBulkLane(),
            clock=FixedClock(NOW),
            share=share,
            window_s=window_s,
        )


# ---------------------------------------------------------------- the property


@dataclass
class Message:
    id: str
    body: str
    lane: Lane


@dataclass
class CountingAssets(FakeAssets):
    """The fake repository, counting the decisions it accepted (successful creates)."""

    decisions: dict[str, int] = field(default_factory=dict)

    def create(self, record: AssetRecord, usage: UsageIncrement | None = None) -> bool:
        created = super().create(record, usage)
        if created:
            self.decisions[record.source_key] = self.decisions.get(record.source_key, 0) + 1
        return created


class Ingest:
    """Both lanes at least once, an ingest invocation settled as Lambda settles it."""

    def __init__(self, tenants: list[str], share: int) -> None:
        self.store = FakeStore()
        self.assets = CountingAssets()
        policies = {t: TenantPolicy(t) for t in tenants}
        self.scan = ScanAsset(
            settings=Settings(
                uploads_bucket=UP, library_bucket="library", quarantine_bucket="quarantine"
            ),
            engine_factory=FakeEngine,
            store=self.store,
            tenants=FakeTenants(policies, dict.fromkeys(tenants, 1)),
            subjects=FakeSubjects(),
            consents=FakeConsents([]),
            assets=self.assets,
            clock=FixedClock(NOW),
            galleries=GalleryCache(),
            published_forms=published,
        )
        self.bulk = FakeBulkLane()
        self.lanes = admission(FakeCounter(), self.bulk, share=share)
        self.main: list[Message] = []
        self.bulk_queue: list[Message] = []

    def put(self, tenant: str, n: int) -> None:
        key = f"incoming/{tenant}/{n}.jpg"
        self.store.objects[(UP, key)] = (fake_image(), {})
        self.main.append(Message(f"m{n}", s3_event(key, UP), Lane.MAIN))

    def invoke(self, *, bulk_lane: bool, size: int, crash: bool, refuse: bool) -> None:
        queue = self.bulk_queue if bulk_lane else self.main
        batch = queue[:size]
        del queue[:size]
        self.bulk.refuse = {m.id for m in batch} if refuse else set()
        routing = self.lanes.route([Arrival(m.id, m.body, m.lane) for m in batch])
        for sent in self.bulk.sent:  # what SendMessageBatch put on the bulk queue
            self.bulk_queue.append(Message(f"b-{sent.message_id}", sent.body, Lane.BULK))
        self.bulk.sent.clear()
        returned = [m for m in batch if m.id in routing.failed]
        for message in batch:
            if message.id in routing.scan:
                for ref in uploads_from_message(message.body):
                    self.scan(ScanRequest(ref.bucket, ref.key, ref.version_id, ref.etag))
        # A crash before the response returns the whole batch, forwarded ones included.
        queue.extend(batch if crash else returned)


@settings(max_examples=40, deadline=None)
@given(
    uploads=st.lists(st.sampled_from(["a", "a", "a", "b", "c"]), min_size=1, max_size=30),
    share=st.integers(min_value=1, max_value=6),
    moves=st.lists(
        st.tuples(st.booleans(), st.integers(1, 5), st.booleans(), st.booleans()),
        max_size=120,
    ),
)
def test_whatever_the_interleaving_every_upload_is_decided_exactly_once(
    uploads: list[str], share: int, moves: list[tuple[bool, int, bool, bool]]
) -> None:
    # Given uploads of three tenants on the main queue, in any mix
    ingest = Ingest(["a", "b", "c"], share)
    for n, tenant in enumerate(uploads):
        ingest.put(tenant, n)
    # When the lanes are invoked in any order, crashing after forwards, failing sends
    for bulk_lane, size, crash, refuse in moves:
        ingest.invoke(bulk_lane=bulk_lane, size=size, crash=crash, refuse=refuse)
    # And then both lanes run without faults until both queues are empty
    while ingest.main or ingest.bulk_queue:
        for bulk_lane in (False, True):
            ingest.invoke(bulk_lane=bulk_lane, size=5, crash=False, refuse=False)
    # Then every upload has exactly one decision: none lost, none decided twice
    keys = {f"incoming/{t}/{n}.jpg" for n, t in enumerate(uploads)}
    assert ingest.assets.decisions == dict.fromkeys(keys, 1)
    # And nothing is left in the uploads bucket: each one was placed
    assert [k for (b, k) in ingest.store.objects if b == UP] == []
