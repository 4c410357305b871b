"""The audit hash chain: sealing, verifying, appending (in memory, network off)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quitclaim import observability
from quitclaim.domain.audit_chain import (
    GENESIS,
    ChainHead,
    canonical,
    digest,
    record_key,
    seal,
    verify,
)
from quitclaim.domain.errors import DependencyFailed
from quitclaim.observability import audit, audit_block, audited
from quitclaim.usecases.audit_trail import AuditTrail
from tests.conftest import REPO_ROOT
from tests.unit.fakes import FakeAuditChain, FixedClock

TENANT = "acme"

events_st = st.lists(
    st.fixed_dictionaries(
        {
            "action": st.sampled_from(["asset.decided", "consent.granted", "subject.deleted"]),
            "tenant": st.just(TENANT),
            "asset_id": st.text("abcdef0123456789", min_size=1, max_size=8),
            "faces": st.integers(0, 5),
        }
    ),
    min_size=1,
    max_size=3,
)
chains = st.lists(events_st, min_size=2, max_size=6)


def trail(store: FakeAuditChain | None = None) -> AuditTrail:
    return AuditTrail(store=store or FakeAuditChain(), clock=FixedClock(), sleep=lambda _: None)


def build(blocks: Sequence[Sequence[Mapping[str, Any]]]) -> FakeAuditChain:
    store = FakeAuditChain()
    t = trail(store)
    for i, events in enumerate(blocks):
        t.append(TENANT, f"sqs/msg-{i}", events)
    return store


def objects(store: FakeAuditChain) -> list[tuple[str, bytes]]:
    return sorted(store.records(TENANT))


def check(objs: list[tuple[str, bytes]], store: FakeAuditChain) -> Any:
    return verify(TENANT, objs, store.head(TENANT))


# ---------------------------------------------------------------- the rules


@settings(max_examples=20, deadline=None)
@given(chains)
def test_an_untouched_chain_verifies_and_counts_everything(blocks: list[Any]) -> None:
    # Given a chain appended block by block
    store = build(blocks)
    # When it is verified
    result = check(objects(store), store)
    # Then it is intact and every record and event was checked
    assert result.intact, result.first_break
    assert (result.records, result.events) == (len(blocks), sum(len(b) for b in blocks))


def test_a_record_is_hashed_over_its_canonical_json_without_the_hash() -> None:
    record = seal(TENANT, 1, GENESIS, "sqs/m1", "2026-11-26T12:00:00+00:00", [{"a": "é"}])
    body = canonical(record)
    assert (
        body
        == json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    without = {k: v for k, v in record.items() if k != "hash"}
    assert record["hash"] == hashlib.sha256(canonical(without)).hexdigest() == digest(record)


@settings(max_examples=20, deadline=None)
@given(chains, st.data())
def test_any_changed_byte_breaks_the_chain_at_that_record(blocks: list[Any], data: Any) -> None:
    # Given a chain, and one byte of one record changed
    store = build(blocks)
    objs = objects(store)
    i = data.draw(st.integers(0, len(objs) - 1))
    key, body = objs[i]
    pos = data.draw(st.integers(0, len(body) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != body[pos]))
    objs[i] = (key, body[:pos] + bytes([new]) + body[pos + 1 :])
    # Then verification stops at exactly that record
    result = check(objs, store)
    assert result.first_break is not None
    assert (result.first_break.seq, result.first_break.key) == (i + 1, key)
    assert result.first_break.problem in {"hash_mismatch", "unreadable", "seq_mismatch"}


@settings(max_examples=20, deadline=None)
@given(chains, st.data())
def test_a_changed_event_is_a_hash_mismatch(blocks: list[Any], data: Any) -> None:
    store = build(blocks)
    objs = objects(store)
    i = data.draw(st.integers(0, len(objs) - 1))
    record = json.loads(objs[i][1])
    record["events"][0]["action"] = "nothing.happened"
    objs[i] = (objs[i][0], canonical(record))
    result = check(objs, store)
    assert result.first_break is not None
    assert (result.first_break.seq, result.first_break.problem) == (i + 1, "hash_mismatch")


@settings(max_examples=20, deadline=None)
@given(chains, st.data())
def test_a_resealed_change_breaks_the_next_link(blocks: list[Any], data: Any) -> None:
    # Given a record changed and its own hash recomputed by the forger
    store = build(blocks)
    objs = objects(store)
    i = data.draw(st.integers(0, len(objs) - 1))
    record = json.loads(objs[i][1])
    record["events"] = []
    record["hash"] = digest(record)
    objs[i] = (objs[i][0], canonical(record))
    result = check(objs, store)
    assert result.first_break is not None
    # Then the next record's prev (or, for the newest, the head) gives it away
    if i + 1 < len(objs):
        assert (result.first_break.seq, result.first_break.problem) == (i + 2, "prev_mismatch")
    else:
        assert (result.first_break.seq, result.first_break.problem) == (i + 1, "head_mismatch")


@settings(max_examples=20, deadline=None)
@given(chains, st.data())
def test_deleted_records_are_missing_at_the_first_one(blocks: list[Any], data: Any) -> None:
    # Given a run of records deleted anywhere (the middle, or the newest ones)
    store = build(blocks)
    objs = objects(store)
    i = data.draw(st.integers(0, len(objs) - 1))
    j = data.draw(st.integers(i + 1, len(objs)))
    cut = objs[:i] + objs[j:]
    result = check(cut, store)
    assert result.first_break is not None
    assert result.first_break.problem == "missing"
    assert (result.first_break.seq, result.first_break.key) == (i + 1, record_key(TENANT, i + 1))


@settings(max_examples=20, deadline=None)
@given(chains, st.data())
def test_swapped_records_are_a_seq_mismatch_at_the_first(blocks: list[Any], data: Any) -> None:
    store = build(blocks)
    objs = objects(store)
    i = data.draw(st.integers(0, len(objs) - 2))
    j = data.draw(st.integers(i + 1, len(objs) - 1))
    (ki, bi), (kj, bj) = objs[i], objs[j]
    objs[i], objs[j] = (ki, bj), (kj, bi)
    result = check(objs, store)
    assert result.first_break is not None
    assert (result.first_break.seq, result.first_break.problem) == (i + 1, "seq_mismatch")


@settings(max_examples=20, deadline=None)
@given(chains, st.data())
def test_an_inserted_record_is_caught(blocks: list[Any], data: Any) -> None:
    # Given a well-formed record forged in at position i (later ones renumbered by key)
    store = build(blocks)
    objs = objects(store)
    i = data.draw(st.integers(0, len(objs)))
    prev = json.loads(objs[i - 1][1])["hash"] if i else GENESIS
    forged = canonical(seal(TENANT, i + 1, prev, "forged", "2026-01-01T00:00:00+00:00", []))
    shifted = [(record_key(TENANT, n + 2), body) for n, (_, body) in enumerate(objs[i:], start=i)]
    tampered = [*objs[:i], (record_key(TENANT, i + 1), forged), *shifted]
    result = check(tampered, store)
    assert result.first_break is not None
    if i < len(objs):
        # Then the record it displaced no longer sits at its own seq
        assert (result.first_break.seq, result.first_break.problem) == (i + 2, "seq_mismatch")
    else:
        # Or, appended at the end, it runs ahead of the head
        assert (result.first_break.seq, result.first_break.problem) == (i + 1, "beyond_head")


def test_a_key_of_another_chain_is_reported() -> None:
    store = build([[{"action": "a", "tenant": TENANT}]])
    objs = [*objects(store), ("audit/other/000000000002.json", b"{}")]
    result = check(objs, store)
    assert result.first_break is not None and result.first_break.problem == "unexpected_key"


# ---------------------------------------------------------------- appending


def test_a_retried_block_is_appended_once() -> None:
    store = FakeAuditChain()
    t = trail(store)
    assert t.append(TENANT, "sqs/m1", [{"action": "a", "tenant": TENANT}]) == 1
    # When the same work item is retried
    assert t.append(TENANT, "sqs/m1", [{"action": "a", "tenant": TENANT}]) == 0
    # Then there is still one record
    assert t.verify(TENANT).records == 1


def test_a_put_lost_after_the_head_moved_is_rolled_forward_without_a_gap() -> None:
    # Given the record put fails after the head advanced (S3 down for a moment)
    store = FakeAuditChain(fail_puts=1)
    t = trail(store)
    with pytest.raises(DependencyFailed):
        t.append(TENANT, "sqs/m1", [{"action": "a", "tenant": TENANT}])
    head = store.head(TENANT)
    assert head is not None and head.pending is not None
    # Then the record is not in the bucket, but sealed in the head: verify checks it there
    assert store.records(TENANT) == []
    assert t.verify(TENANT).records == 1
    # When the work item is retried (same block id)
    assert t.append(TENANT, "sqs/m1", [{"action": "a", "tenant": TENANT}]) == 0
    # Then the pending record was written, once, and the chain holds
    result = t.verify(TENANT)
    assert result.intact and result.records == 1 and len(store.records(TENANT)) == 1
    assert store.head(TENANT) == ChainHead(1, head.hash, None)


def test_the_next_appender_finishes_a_pending_record() -> None:
    store = FakeAuditChain(fail_puts=1)
    t = trail(store)
    with pytest.raises(DependencyFailed):
        t.append(TENANT, "sqs/m1", [{"action": "a", "tenant": TENANT}])
    assert t.append(TENANT, "sqs/m2", [{"action": "b", "tenant": TENANT}]) == 2
    result = t.verify(TENANT)
    assert result.intact and (result.records, result.events) == (2, 2)


def test_concurrent_appenders_leave_no_gap_and_no_fork() -> None:
    # Given eight threads appending ten blocks each to one tenant's chain
    store = FakeAuditChain()
    t = trail(store)

    def work(n: int) -> None:
        for i in range(10):
            t.append(TENANT, f"sqs/{n}-{i}", [{"action": "a", "tenant": TENANT, "n": n}])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    # Then the chain is one unbroken line holding every block exactly once
    result = t.verify(TENANT)
    assert result.intact and result.events == 80
    # (an appender that lost a race may have moved to a lane: anchors are no blocks of work)
    records = [json.loads(body) for _, body in store.records(TENANT)]
    blocks = [r["block"] for r in records if "anchor" not in r]
    assert sorted(blocks) == sorted(f"sqs/{n}-{i}" for n in range(8) for i in range(10))


def test_two_containers_taking_turns_keep_one_chain_and_read_the_head_only_when_stale() -> None:
    # Given two containers (each with its own memory of the head) on one chain
    store = FakeAuditChain()
    reads: list[str] = []
    original = store.head

    def counted(tenant: str, lane: int = 0) -> ChainHead | None:
        reads.append(tenant)
        return original(tenant, lane)

    store.head = counted  # type: ignore[method-assign]
    a, b = trail(store), trail(store)
    # When they append in turns, and then one twice in a row
    for n, container in enumerate([a, b, a, b, b]):
        container.append(TENANT, f"sqs/m{n}", [{"action": "a", "tenant": TENANT}])
    # Then the chain is one line, and the head was read only by a container
    # that had not written it last (the 1st, 2nd, 3rd and 4th appends: not the 5th)
    result = a.verify(TENANT)
    assert result.intact and result.records == 5
    assert len(reads) == 4  # (verify reads every lane's head with one query)


def test_a_block_of_several_tenants_goes_to_each_chain() -> None:
    store = FakeAuditChain()
    t = trail(store)
    seqs = t.record_block(
        "invoke/r1",
        [
            {"action": "a", "tenant": "t1"},
            {"action": "b", "tenant": "t2"},
            {"action": "c", "tenant": "t1"},
        ],
    )
    assert seqs == {"t1": 1, "t2": 1}
    assert [e["action"] for e in t.events("t1")] == ["a", "c"]
    assert [e["action"] for e in t.events("t2")] == ["b"]


def test_a_block_too_large_for_one_record_is_split_into_linked_parts() -> None:
    # Given a sweep that audited many events for one tenant
    store = FakeAuditChain()
    t = AuditTrail(store, FixedClock(), sleep=lambda _: None, max_record_bytes=400)
    events = [
        {"action": "consent.expired", "tenant": TENANT, "consent_id": f"c{i}"} for i in range(20)
    ]
    # When the block is recorded
    t.record_block("invoke/r1", events)
    # Then several records hold all of it, in order, each under the size, and they verify
    bodies = [json.loads(b) for _, b in sorted(store.records(TENANT))]
    assert len(bodies) > 1 and all(len(canonical(b["events"])) <= 400 for b in bodies)
    assert [b["block"] for b in bodies[:2]] == ["invoke/r1", "invoke/r1#1"]
    assert [e["consent_id"] for e in t.events(TENANT)] == [f"c{i}" for i in range(20)]
    assert t.verify(TENANT).intact
    # And a retry of the whole work item appends nothing
    t.record_block("invoke/r1", events)
    assert len(store.records(TENANT)) == len(bodies)


# ---------------------------------------------------------------- audit blocks


@pytest.fixture
def sink() -> Any:
    got: list[tuple[str, list[Mapping[str, Any]]]] = []
    previous = observability._sink
    observability.set_audit_sink(lambda block, events: got.append((block, list(events))))
    yield got
    observability.set_audit_sink(previous)


def test_a_handler_invocations_events_are_flushed_as_one_block(sink: Any) -> None:
    @dataclass
    class Message:
        message_id: str

    @audited("sqs")
    def handle(record: Message) -> str:
        audit("subject.created", tenant=TENANT, subject_id="s1", source="registry")
        audit("subject.enrolled", tenant=TENANT, subject_id="s1", source="registry")
        return "ok"

    assert handle(Message("m1")) == "ok"
    assert [(b, [e["action"] for e in evs]) for b, evs in sink] == [
        ("sqs/m1", ["subject.created", "subject.enrolled"])
    ]


def test_a_failed_chain_append_fails_the_work_item() -> None:
    previous = observability._sink

    def down(block: str, events: Any) -> None:
        raise DependencyFailed("audit head advance failed: ProvisionedThroughputExceeded")

    observability.set_audit_sink(down)
    try:
        with pytest.raises(DependencyFailed), audit_block("sqs/m1"):
            audit("subject.created", tenant=TENANT, subject_id="s1", source="registry")
    finally:
        observability.set_audit_sink(previous)


def test_failed_work_chains_what_it_did_under_its_own_block(sink: Any) -> None:
    with pytest.raises(RuntimeError, match="later step"), audit_block("sqs/m1"):
        audit("asset.decided", tenant=TENANT, asset_id="a1")
        raise RuntimeError("a later step failed")
    assert [b for b, _ in sink] == ["sqs/m1~failed"]


def test_events_outside_a_block_are_logged_only_and_need_a_tenant(sink: Any) -> None:
    audit("subject.created", tenant=TENANT, subject_id="s1", source="registry")
    assert sink == []
    with pytest.raises(ValueError, match="tenant"):
        audit("subject.created", subject_id="s1")


def test_no_sink_refuses_to_report_success() -> None:
    previous = observability._sink
    observability.set_audit_sink(None)
    try:
        with pytest.raises(RuntimeError, match="no audit sink"), audit_block("sqs/m1"):
            audit("asset.decided", tenant=TENANT, asset_id="a1")
    finally:
        observability.set_audit_sink(previous)


def _load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"fn_{path.parent.name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "path",
    sorted(p for p in (REPO_ROOT / "functions").glob("*/app.py") if p.parent.name != "api"),
    ids=lambda p: p.parent.name,
)
def test_every_handler_and_record_handler_runs_in_an_audit_block(path: Path) -> None:
    # Given a function module: its handler and each record handler it hands
    # to the batch processor
    module = _load(path)
    text = path.read_text(encoding="utf-8")
    handlers = ["handler"] + [
        name
        for name in (
            "record_handler",
            "purge_record",
            "apply_record",
            "deliver_record",
            "run_record",  # functions/audits (accuracy audit jobs)
        )
        if f"record_handler={name}" in text
    ]
    # Then each one is audited (its events reach the chain before it reports success)
    for name in handlers:
        assert getattr(inspect_unwrap_to_audited(getattr(module, name)), "__audited__", False), name


def inspect_unwrap_to_audited(fn: Any) -> Any:
    """Powertools decorators wrap ours; follow ``__wrapped__`` to the audited layer."""
    while fn is not None and not getattr(fn, "__audited__", False):
        fn = getattr(fn, "__wrapped__", None)
    return fn


def test_every_api_request_runs_in_an_audit_block() -> None:
    from quitclaim.api import routing

    source = Path(routing.__file__).read_text(encoding="utf-8")
    handler = source[source.index("def _handler") : source.index("def _call")]
    # The block opens before any view runs, and the reply is built after it closed
    assert handler.index("with audit_block(") < handler.index("view(")
    assert handler.index("with audit_block(") < handler.index("_json_response(reply")


# ---------------------------------------------------------------- written once


@settings(max_examples=20, deadline=None)
@given(chains, st.data())
def test_a_resealed_second_version_with_a_moved_head_is_overwritten(
    blocks: list[Any], data: Any
) -> None:
    # Given a chain, and from record i on every record re-sealed by a forger
    # (new events, re-linked) and stored as a new version, the head moved too
    store = build(blocks)
    objs: list[tuple[str, bytes | None]] = list(objects(store))
    i = data.draw(st.integers(0, len(objs) - 1))
    prev = json.loads(objs[i - 1][1] or b"")["hash"] if i else GENESIS
    for key, body in list(objs[i:]):
        record = json.loads(body or b"")
        record["events"], record["prev"] = [], prev
        record["hash"] = prev = digest(record)
        objs.append((key, canonical(record)))
    head = store.head(TENANT)
    assert head is not None
    forged_head = ChainHead(head.seq, prev)
    # Then the newest versions alone would pass; with every version it is overwritten
    newest = dict(objs)
    assert verify(TENANT, list(newest.items()), forged_head).intact
    result = verify(TENANT, objs, forged_head)
    assert result.first_break is not None
    assert (result.first_break.seq, result.first_break.problem) == (i + 1, "overwritten")


def test_a_record_with_a_delete_marker_is_deleted() -> None:
    store = build([[{"action": "a", "tenant": TENANT}]] * 3)
    objs: list[tuple[str, bytes | None]] = [*objects(store), (record_key(TENANT, 2), None)]
    result = verify(TENANT, objs, store.head(TENANT))
    assert result.first_break is not None
    assert (result.first_break.seq, result.first_break.problem) == (2, "deleted")
