"""Audit chain lanes: contended appenders spread out, and every tampering is still caught.

In memory (the fake store); the same chain on the local stack with twenty
concurrent writers is tests/integration/test_audit_lanes.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from quitclaim.domain import audit_chain
from quitclaim.domain.audit_chain import (
    ChainHead,
    Verification,
    canonical,
    digest,
    record_key,
    seal,
    verify,
)
from quitclaim.usecases.audit_trail import AuditTrail
from tests.unit.fakes import FakeAuditChain, FixedClock

TENANT = "acme"


@dataclass
class CrowdedChain(FakeAuditChain):
    """Lane 0 is always just taken by someone else (while ``crowded``); anchors get through."""

    crowded: bool = False

    def advance(
        self, tenant: str, expected: ChainHead | None, record: Mapping[str, Any], body: bytes
    ) -> str:
        busy = self.crowded and not record.get("lane") and "anchor" not in record
        return "race" if busy else super().advance(tenant, expected, record, body)


def trail(store: FakeAuditChain) -> AuditTrail:
    return AuditTrail(store=store, clock=FixedClock(), sleep=lambda _: None)


def build(containers: int = 3, blocks: int = 5) -> CrowdedChain:
    """Two records in lane 0 (an existing chain), then containers driven off it."""
    store = CrowdedChain()
    first = trail(store)
    for i in range(2):
        first.append(TENANT, f"sqs/old-{i}", [{"action": "a", "tenant": TENANT}])
    store.crowded = True
    for c in range(containers):
        t = trail(store)
        for i in range(blocks):
            t.append(TENANT, f"sqs/{c}-{i}", [{"action": "b", "tenant": TENANT, "c": c}])
    return store


def check(store: FakeAuditChain, objs: list[tuple[str, bytes | None]] | None = None) -> Any:
    heads = store.heads(TENANT)
    head = heads.pop(0, None)
    return verify(TENANT, sorted(store.records(TENANT)) if objs is None else objs, head, heads)


def lane_records(store: FakeAuditChain) -> dict[int, list[tuple[str, bytes]]]:
    found: dict[int, list[tuple[str, bytes]]] = {}
    for key, body in sorted(store.records(TENANT)):
        found.setdefault(json.loads(body).get("lane", 0), []).append((key, body))
    return found


def busiest(store: FakeAuditChain) -> tuple[int, list[tuple[str, bytes]]]:
    lanes = lane_records(store)
    lane = max((k for k in lanes if k), key=lambda k: len(lanes[k]))
    return lane, lanes[lane]


def broken(result: Verification) -> tuple[int, str, str]:
    assert result.first_break is not None, "the tampering went unnoticed"
    b = result.first_break
    return b.seq, b.key, b.problem


# ---------------------------------------------------------------- appending


def test_contended_appenders_move_to_lanes_and_the_chain_verifies() -> None:
    # Given an existing one-lane chain, then three containers that lose lane 0
    store = build()
    # Then they appended on lanes of their own, each anchored in lane 0
    lanes = lane_records(store)
    assert len(lanes) >= 2 and sum(len(v) for k, v in lanes.items() if k) == 15
    anchors = [json.loads(b)["anchor"] for _, b in lanes[0] if "anchor" in json.loads(b)]
    assert {a["lane"] for a in anchors} == {k for k in lanes if k}
    # And the old records keep format 1; lane records and anchors are format 2
    formats = {(k, json.loads(b)["v"]) for k, recs in lanes.items() for _, b in recs}
    assert (0, 1) in formats and all(v == 2 for k, v in formats if k)
    # And the whole verifies, every event once, in lane order
    result = trail(store).verify(TENANT)
    assert result.intact, result.first_break
    assert result.events == 17
    events = trail(store).events(TENANT)
    assert sorted((e.get("lane", 0), e["seq"]) for e in events) == sorted(
        {(e.get("lane", 0), e["seq"]) for e in events}
    )


def test_a_retried_block_is_a_duplicate_on_any_lane() -> None:
    # Given a block appended on a lane
    store = build(containers=1, blocks=1)
    # When its work item is retried by a fresh container (it would start on lane 0)
    store.crowded = False
    assert trail(store).append(TENANT, "sqs/0-0", [{"action": "b", "tenant": TENANT}]) == 0
    # Then nothing was appended twice
    assert trail(store).verify(TENANT).events == 3


def test_without_lanes_the_one_head_design_keeps_retrying_lane_zero() -> None:
    store = CrowdedChain(crowded=True)
    one_head = AuditTrail(store=store, clock=FixedClock(), sleep=lambda _: None, lanes=0)
    with pytest.raises(Exception, match="stayed contended"):
        one_head.append(TENANT, "sqs/x", [{"action": "a", "tenant": TENANT}])
    assert store.records(TENANT) == []


# ---------------------------------------------------------------- tampering in a lane


def test_an_altered_lane_record_is_caught_at_its_key() -> None:
    store = build()
    _lane, recs = busiest(store)
    key, body = recs[1]
    record = json.loads(body)
    record["events"][0]["c"] = 99
    store.objects[key] = canonical(record)
    assert broken(check(store)) == (2, key, "hash_mismatch")


def test_a_resealed_lane_record_breaks_the_next_link_or_the_lane_head() -> None:
    store = build()
    _lane, recs = busiest(store)
    key, body = recs[1]
    record = json.loads(body)
    record["events"] = []
    record["hash"] = digest(record)
    store.objects[key] = canonical(record)
    seq, _, problem = broken(check(store))
    assert (seq, problem) in {(3, "prev_mismatch"), (2, "head_mismatch")}


def test_a_deleted_lane_record_is_missing() -> None:
    store = build()
    lane, recs = busiest(store)
    del store.objects[recs[0][0]]
    assert broken(check(store)) == (1, record_key(TENANT, 1, lane), "missing")


def test_swapped_lane_records_are_reordered() -> None:
    store = build()
    _lane, recs = busiest(store)
    (k1, b1), (k2, b2) = recs[0], recs[1]
    store.objects[k1], store.objects[k2] = b2, b1
    assert broken(check(store)) == (1, k1, "seq_mismatch")


def test_a_record_moved_to_another_lane_is_caught() -> None:
    # Given lane a's record 1 copied in as record 1 of an unused lane
    store = build()
    _lane, recs = busiest(store)
    other = next(k for k in range(1, audit_chain.LANES + 1) if k not in lane_records(store))
    store.objects[record_key(TENANT, 1, other)] = recs[0][1]
    seq, key, problem = broken(check(store))
    assert (seq, key, problem) == (1, record_key(TENANT, 1, other), "seq_mismatch")


def test_a_forged_record_inserted_in_a_lane_is_caught() -> None:
    store = build()
    lane, recs = busiest(store)
    # At the end, linked properly: it runs ahead of the lane's head
    last = json.loads(recs[-1][1])
    n = len(recs) + 1
    forged = seal(TENANT, n, last["hash"], "forged", last["at"], [], lane)
    store.objects[record_key(TENANT, n, lane)] = canonical(forged)
    assert broken(check(store)) == (n, record_key(TENANT, n, lane), "beyond_head")
    # In the middle (the later ones shifted up): the displaced one is out of place
    del store.objects[record_key(TENANT, n, lane)]
    first = json.loads(recs[0][1])
    forged = seal(TENANT, 2, first["hash"], "forged", first["at"], [], lane)
    for _key, body in reversed(recs[1:]):
        seq = json.loads(body)["seq"]
        store.objects[record_key(TENANT, seq + 1, lane)] = body
    store.objects[record_key(TENANT, 2, lane)] = canonical(forged)
    assert broken(check(store)) == (3, record_key(TENANT, 3, lane), "seq_mismatch")


def test_a_lanes_cut_tail_is_caught_by_its_head() -> None:
    store = build()
    lane, recs = busiest(store)
    del store.objects[recs[-1][0]]
    n = len(recs)
    assert broken(check(store)) == (n, record_key(TENANT, n, lane), "missing")


def test_a_lanes_cut_tail_is_caught_by_its_anchor_even_without_the_lane_heads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given lanes anchored every second record, and a forger who also removed
    # the lanes' head items (or a verifier that lost the heads table)
    monkeypatch.setattr(audit_chain, "ANCHOR_EVERY", 2)
    store = build(containers=1, blocks=5)
    lane, recs = busiest(store)
    assert len(recs) == 5
    heads = store.heads(TENANT)
    lane0 = heads.pop(0)
    # When the lane is cut below its newest anchor (record 4)
    cut = [(k, b) for k, b in sorted(store.records(TENANT)) if k not in {recs[3][0], recs[4][0]}]
    # Then lane 0's anchor names what is gone
    seq, key, problem = broken(verify(TENANT, cut, lane0, None))
    assert (seq, key, problem) == (4, record_key(TENANT, 4, lane), "missing")
    # And a whole lane gone, head and all, is caught by its first anchor
    gone = [(k, b) for k, b in sorted(store.records(TENANT)) if k not in dict(recs)]
    assert broken(verify(TENANT, gone, lane0, None))[2] == "missing"
    # But above the newest anchor only the lane head tells (record 5 cut)
    tail = [(k, b) for k, b in sorted(store.records(TENANT)) if k != recs[4][0]]
    assert verify(TENANT, tail, lane0, None).intact
    assert broken(verify(TENANT, tail, lane0, heads))[2] == "missing"


def test_a_lane_rewritten_end_to_end_with_its_head_is_caught_by_the_anchor() -> None:
    # Given a forger who re-seals a whole lane (newest versions only: no
    # Object Lock history to give it away) and moves the lane's head to match
    store = build(containers=1, blocks=3)
    lane, recs = busiest(store)
    prev = audit_chain.GENESIS
    for key, body in recs:
        record = json.loads(body)
        record["events"], record["prev"] = [], prev
        record["hash"] = prev = digest(record)
        store.objects[key] = canonical(record)
    heads = store.heads(TENANT)
    heads[lane] = ChainHead(len(recs), prev)
    lane0 = heads.pop(0)
    result = verify(TENANT, sorted(store.records(TENANT)), lane0, heads)
    assert broken(result) == (1, record_key(TENANT, 1, lane), "anchor_mismatch")


def test_an_anchor_of_lane_zero_cannot_be_dropped_quietly() -> None:
    # Given lane 0 with its anchor records: deleting one is a gap in lane 0
    store = build(containers=1, blocks=2)
    anchor_key = next(k for k, b in lane_records(store)[0] if "anchor" in json.loads(b))
    del store.objects[anchor_key]
    assert broken(check(store))[2] == "missing"


def test_a_forged_lane_without_a_head_is_beyond_its_head() -> None:
    # Given a whole lane forged into the bucket, well chained, but never appended
    store = build(containers=1, blocks=1)
    unused = next(k for k in range(1, audit_chain.LANES + 1) if k not in lane_records(store))
    prev = audit_chain.GENESIS
    for seq in (1, 2):
        record = seal(TENANT, seq, prev, f"forged-{seq}", "2026-01-01T00:00:00+00:00", [], unused)
        prev = record["hash"]
        store.objects[record_key(TENANT, seq, unused)] = canonical(record)
    # Then, the lanes' heads known, the lane has none: all of it is beyond its head
    assert broken(check(store)) == (1, record_key(TENANT, 1, unused), "beyond_head")
