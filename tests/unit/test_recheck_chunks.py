"""Re-deciding in chunks (issue 27): fewer reads, the same decisions, the same races lost safely."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from quitclaim.domain.errors import Conflict
from quitclaim.domain.models import AssetStatus, Consent
from quitclaim.usecases.asset_decisions import Placement
from quitclaim.usecases.recheck import Recheck
from tests.unit.fakes import FixedClock, fake_image
from tests.unit.test_scan_asset import LIB, NOW, QUA, World


@dataclass
class Outbox:
    batches: list[int] = field(default_factory=list)
    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def publish(self, event_type: str, tenant: str, data: Any) -> None:
        self.publish_many([(event_type, tenant, data)])

    def publish_many(self, events: list[tuple[str, str, dict[str, Any]]]) -> None:
        self.batches.append(len(events))
        self.events.extend(events)


def _world(photos: int) -> tuple[World, list[str]]:
    """Given ``photos`` approved images of sub_ok."""
    world = World()
    ids = []
    for n in range(photos):
        result = world.scan(world.upload(f"acme/p{n}.jpg", fake_image((0, 120 + n))))
        assert result.status is AssetStatus.APPROVED
        ids.append(result.asset_id)
    return world, ids


def _recheck(world: World, chunk: int, outbox: Outbox) -> Recheck:
    placement = Placement(store=world.store, assets=world.assets, clock=FixedClock(NOW))
    return Recheck(
        assets=world.assets,
        consents=world.consents,
        placement=placement,
        clock=FixedClock(NOW),
        library_bucket=LIB,
        quarantine_bucket=QUA,
        events=outbox,
        chunk=chunk,
    )


def test_a_withdrawal_reads_consents_once_a_chunk_and_reaches_every_asset() -> None:
    world, ids = _world(5)
    reads: list[list[str]] = []
    query = world.consents.for_subjects

    def counted(tenant: str, subject_ids: Any) -> Any:
        reads.append(list(subject_ids))
        return query(tenant, subject_ids)

    world.consents.for_subjects = counted  # type: ignore[method-assign]
    outbox = Outbox()
    # When the consent is withdrawn and the person's images re-decided two at a time
    world.consents.revoke(world.consents.items[0], NOW - timedelta(seconds=1), source="t")
    changes = _recheck(world, 2, outbox).recheck_subject("acme", "sub_ok", actor="test")
    # Then every image left the library
    assert sorted(c.asset_id for c in changes) == sorted(ids)
    for asset_id in ids:
        record = world.assets.get("acme", asset_id)
        assert record is not None and record.status is AssetStatus.QUARANTINED
        assert world.store.head(LIB, record.dest_key) is None
    # And the consents were read once per chunk (3), not once per image (5)
    assert reads == [["sub_ok"]] * 3
    # And each chunk's withdrawals went to the outbox together
    assert outbox.batches == [2, 2, 1]
    assert [t for t, _, _ in outbox.events] == ["asset.withdrawn"] * 5


def test_a_write_that_loses_a_race_decides_again_on_fresh_consents() -> None:
    world, ids = _world(3)
    outbox = Outbox()
    world.consents.revoke(world.consents.items[0], NOW - timedelta(seconds=1), source="t")
    racing = ids[1]
    replace_record = world.assets.replace

    def raced(record: Any, expected_version: int, **kwargs: Any) -> None:
        stored = world.assets.get("acme", record.asset_id)
        if record.asset_id == racing and stored is not None and stored.version == expected_version:
            # Between the chunk's reads and this write, the person signs again
            # and that grant's own recheck writes the asset first.
            world.consents.items.append(
                Consent(
                    "acme",
                    "sub_ok",
                    "con_2",
                    frozenset({"web"}),
                    NOW - timedelta(seconds=1),
                    NOW + timedelta(days=30),
                )
            )
            world.assets.records[("acme", racing)] = replace(stored, version=stored.version + 1)
            raise Conflict("changed")
        replace_record(record, expected_version, **kwargs)

    world.assets.replace = raced  # type: ignore[method-assign]
    # When the withdrawal's chunk (read before the grant) re-decides all three
    changes = _recheck(world, 3, outbox).recheck_subject("acme", "sub_ok", actor="test")
    # Then the raced image was decided again on the consents read after it: it stays
    record = world.assets.get("acme", racing)
    assert record is not None and record.status is AssetStatus.APPROVED
    assert world.store.head(LIB, record.dest_key) is not None
    # And the images written before the grant were withdrawn (the grant's own
    # recheck, not run here, is what brings them back)
    assert racing not in {c.asset_id for c in changes}
    assert {c.asset_id for c in changes} == {ids[0], ids[2]}
