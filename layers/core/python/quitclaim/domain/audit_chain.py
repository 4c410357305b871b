"""The audit chain's rules: how a record is sealed, and how a chain is verified.

Each tenant has one chain. Record ``n`` (from 1) holds the audit events of one
block (one work item: an SQS message, a stream record, an invocation, an API
request) and carries ``seq``, ``prev`` (the ``hash`` of record ``n - 1``, or
64 zeros for the first) and its own ``hash``: SHA-256 over the canonical JSON
of the record without ``hash`` (keys sorted, no spaces, UTF-8). Changing any
byte of a record breaks its hash; deleting, inserting or reordering records
breaks the seq / key / prev links that follow; deleting the newest records is
caught against the chain head (kept outside the bucket). Records are written
once (create-only puts): a key with more than one stored version was
overwritten, one with a delete marker was deleted, and either is reported,
however well the new versions were re-sealed.

Lanes (format 2). One head serialises a tenant: under a backlog every
appender of the tenant contends for it. An appender that loses a race for a
head it has just read moves to one of ``LANES`` further chains of the same
tenant (lane ``k``: ``audit/<tenant>/s<kkk>/<seq>.json``, its own head), each
built by the same rules; lane 0 is the original chain, whose records keep
format 1. A lane's first record and every ``ANCHOR_EVERY``-th are
**anchored** in lane 0 (a record whose ``anchor`` names the lane, seq and
hash): cutting a lane's tail below its newest anchor, or rewriting an
anchored record, is caught from lane 0 even without the lanes' heads.

Pure: no I/O. ``quitclaim audit verify`` feeds it the bucket's objects.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
FORMAT = 1
# Records of a lane > 0, and anchors: they carry fields format 1 does not know.
LANE_FORMAT = 2
# Lanes besides lane 0: enough that a thousand uploads a second of one tenant
# keep each head mostly idle (docs/audit-capacity.md). At most 999 (the key).
LANES = 256
# Anchors are appends to lane 0: rare enough that they never crowd it.
ANCHOR_EVERY = 256
_SEQ_DIGITS = 12
_KEY = re.compile(r"^audit/(?P<tenant>[^/]+)/(?:s(?P<lane>\d{3})/)?(?P<seq>\d{12})\.json$")


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The newest record of a tenant's chain, as the serialising store knows it.

    ``pending`` is that record's body while it is not yet known to be in the
    bucket (the appender that advanced the head died before its put).
    """

    seq: int
    hash: str
    pending: bytes | None = None


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first broken link: where, and what is wrong there."""

    seq: int
    key: str
    problem: str  # hash_mismatch | missing | seq_mismatch | prev_mismatch | unreadable | ...
    detail: str


@dataclass(frozen=True, slots=True)
class Verification:
    tenant: str
    records: int
    events: int
    first_break: ChainBreak | None

    @property
    def intact(self) -> bool:
        return self.first_break is None

    def as_dict(self) -> dict[str, Any]:
        b = self.first_break
        return {
            "tenant": self.tenant,
            "intact": self.intact,
            "records": self.records,
            "events": self.events,
            "first_break": None
            if b is None
            else {"seq": b.seq, "key": b.key, "problem": b.problem, "detail": b.detail},
        }


def canonical(value: Any) -> bytes:
    """The one byte encoding that is hashed (and stored)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def digest(record: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the record's canonical JSON without its ``hash`` field."""
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


def record_key(tenant: str, seq: int, lane: int = 0) -> str:
    """``audit/<tenant>/[s<lane, 3 digits>/]<seq, 12 digits>.json``: key order is lane order."""
    where = f"s{lane:03d}/" if lane else ""
    return f"audit/{tenant}/{where}{seq:0{_SEQ_DIGITS}d}.json"


def anchored(lane: int, seq: int) -> bool:
    """Whether record ``seq`` of ``lane`` is anchored in lane 0 (its first, then every Nth)."""
    return lane > 0 and (seq == 1 or seq % ANCHOR_EVERY == 0)


def chain_prefix(tenant: str) -> str:
    return f"audit/{tenant}/"


def seal(
    tenant: str,
    seq: int,
    prev: str,
    block: str,
    at: str,
    events: Sequence[Mapping[str, Any]],
    lane: int = 0,
    anchor: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Record ``seq`` of ``tenant``'s lane ``lane``, hashed over everything else it holds.

    ``anchor`` (lane 0 only): ``{"lane", "seq", "hash"}`` of a lane's record.
    """
    record: dict[str, Any] = {
        "v": FORMAT,
        "tenant": tenant,
        "seq": seq,
        "prev": prev,
        "block": block,
        "at": at,
        "events": [dict(e) for e in events],
    }
    if lane:
        record["v"], record["lane"] = LANE_FORMAT, lane
    if anchor is not None:
        record["v"], record["anchor"] = LANE_FORMAT, dict(anchor)
    record["hash"] = digest(record)
    return record


def stored_versions(
    objects: Iterable[tuple[str, bytes | None]],
) -> dict[str, list[bytes | None]]:
    """Each key's stored versions, oldest first (None: a delete marker)."""
    found: dict[str, list[bytes | None]] = {}
    for key, body in objects:
        found.setdefault(key, []).append(body)
    return found


def first_versions(objects: Iterable[tuple[str, bytes | None]]) -> list[tuple[str, bytes]]:
    """``(key, body)`` of each record as first written, in key order."""
    found = []
    for key, history in sorted(stored_versions(objects).items()):
        bodies = [v for v in history if v is not None]
        if bodies:
            found.append((key, bodies[0]))
    return found


@dataclass(slots=True)
class _Walked:
    """What an intact lane holds: counts, its newest hash, and what anchoring needs."""

    records: int = 0
    events: int = 0
    last: str = GENESIS
    anchored: dict[int, str] | None = None  # seq -> hash, of the records anchored in lane 0
    anchors: list[tuple[int, Mapping[str, Any]]] | None = None  # lane 0: (seq, anchor)


def _lanes_of(
    tenant: str, listed: Sequence[tuple[str, list[bytes | None]]]
) -> dict[int, list[tuple[str, list[bytes | None]]]] | ChainBreak:
    lanes: dict[int, list[tuple[str, list[bytes | None]]]] = {}
    for key, history in listed:
        match = _KEY.fullmatch(key)
        if match is None or match["tenant"] != tenant:
            return ChainBreak(1, key, "unexpected_key", "not a record key of this chain")
        lanes.setdefault(int(match["lane"] or 0), []).append((key, history))
    return lanes


def _walk(
    tenant: str,
    lane: int,
    listed: list[tuple[str, list[bytes | None]]],
    head: ChainHead | None,
    wanted: frozenset[int] = frozenset(),
) -> _Walked | ChainBreak:
    """One lane in key order: the first broken link, or what it holds.

    ``wanted``: the seqs whose hashes lane 0's anchors name (kept for the check).
    """
    walked = _Walked(anchored={}, anchors=[])
    expected, prev = 1, GENESIS
    if head is not None and head.pending is not None and head.seq == len(listed) + 1:
        # The newest record is sealed in the head but its put has not landed
        # yet (in flight, or its appender died): the next append writes it.
        # It is hashed and linked like the others, so it is checked the same.
        listed = [*listed, (record_key(tenant, head.seq, lane), [head.pending])]
    for key, history in listed:
        record = _stored_record(tenant, lane, key, history, expected)
        if isinstance(record, ChainBreak):
            return record
        broken = _link_break(tenant, lane, key, record, expected, prev)
        if broken is not None:
            return broken
        prev = str(record["hash"])
        if expected in wanted:
            walked.anchored[expected] = prev  # type: ignore[index]
        anchor = record.get("anchor")
        if lane == 0 and anchor is not None:
            if not isinstance(anchor, dict):
                return ChainBreak(expected, key, "unreadable", "an anchor that is no object")
            walked.anchors.append((expected, anchor))  # type: ignore[union-attr]
        walked.records += 1
        walked.events += len(record.get("events") or [])
        expected += 1
    walked.last = prev
    broken = _head_break(tenant, lane, head, expected, prev)
    return walked if broken is None else broken


def _stored_record(
    tenant: str, lane: int, key: str, history: list[bytes | None], expected: int
) -> dict[str, Any] | ChainBreak:
    """The record at the next seq, written once and readable; or what the store did to it."""
    match = _KEY.fullmatch(key)
    assert match is not None  # _lanes_of sorted out every other key
    at_key = int(match["seq"])
    if at_key != expected:
        detail = f"record {expected} is missing (next present is {at_key})"
        return ChainBreak(expected, record_key(tenant, expected, lane), "missing", detail)
    written = [v for v in history if v is not None]
    if len(written) > 1:
        detail = f"{len(written)} versions stored: a record is written once"
        return ChainBreak(at_key, key, "overwritten", detail)
    if len(written) < len(history):
        return ChainBreak(at_key, key, "deleted", "the record has a delete marker")
    try:
        record = json.loads(written[0])
        if not isinstance(record, dict):
            raise ValueError("not an object")
    except ValueError:
        return ChainBreak(at_key, key, "unreadable", "not a JSON object")
    return record


def _link_break(
    tenant: str, lane: int, key: str, record: Mapping[str, Any], seq: int, prev: str
) -> ChainBreak | None:
    """A readable record in the wrong place, with a wrong hash, or not linked to the one before."""
    if record.get("seq") != seq or record.get("tenant") != tenant or record.get("lane", 0) != lane:
        where = f"seq {record.get('seq')!r} of {record.get('tenant')!r}"
        if record.get("lane", 0) != lane:
            where += f", lane {record.get('lane')!r}"
        return ChainBreak(seq, key, "seq_mismatch", f"holds {where}: moved or reordered")
    if record.get("hash") != digest(record):
        return ChainBreak(seq, key, "hash_mismatch", "content does not match its hash")
    if record.get("prev") != prev:
        return ChainBreak(seq, key, "prev_mismatch", "prev is not the hash of the record before")
    return None


def _head_break(
    tenant: str, lane: int, head: ChainHead | None, expected: int, prev: str
) -> ChainBreak | None:
    """The lane's end against its head: records cut off, added beyond it, or another newest."""
    if head is None:
        return None
    if head.seq >= expected:
        detail = f"the chain head is at {head.seq}; records from {expected} are missing"
        return ChainBreak(expected, record_key(tenant, expected, lane), "missing", detail)
    if head.seq < expected - 1:
        # The head advances before the put, so the bucket never runs ahead.
        key = record_key(tenant, head.seq + 1, lane)
        return ChainBreak(head.seq + 1, key, "beyond_head", f"the chain head is at {head.seq}")
    if head.seq > 0 and head.hash != prev:
        key = record_key(tenant, head.seq, lane)
        return ChainBreak(head.seq, key, "head_mismatch", "the newest record is not the head's")
    return None


def verify(
    tenant: str,
    objects: Iterable[tuple[str, bytes | None]],
    head: ChainHead | None = None,
    lanes: Mapping[int, ChainHead] | None = None,
) -> Verification:
    """Walk every lane in key order, then lane 0's anchors; report the first broken link.

    ``objects`` are ``(key, body)`` under the tenant's prefix: every stored
    version of each key, oldest first, a delete marker as ``(key, None)``
    (a store without versions gives one per key). ``head`` (lane 0's) and
    ``lanes`` (the other lanes' heads; None: not known), when known, reveal
    records cut off the end or added after it (a lane with records and no
    head included); lane 0's anchors reveal a lane cut below its newest
    anchor even without them.
    """
    grouped = _lanes_of(tenant, sorted(stored_versions(objects).items()))
    if isinstance(grouped, ChainBreak):
        return Verification(tenant, 0, 0, grouped)
    heads: dict[int, ChainHead | None] = {0: head, **(lanes or {})}
    if lanes is not None:
        # The lanes' heads are known: a lane without one was never appended
        # to (a forged lane, however well chained): all of it is beyond its head.
        heads.update({k: ChainHead(0, GENESIS) for k in grouped if k and k not in lanes})
    records = events = 0
    walked: dict[int, _Walked] = {}
    wanted: dict[int, set[int]] = {}
    # Lane 0 first: its anchors say which records of the other lanes to remember.
    for lane in sorted({0, *grouped, *(k for k, h in heads.items() if h is not None)}):
        seqs = frozenset(wanted.get(lane, ()))
        result = _walk(tenant, lane, grouped.get(lane, []), heads.get(lane), seqs)
        if isinstance(result, ChainBreak):
            return Verification(tenant, records, events, result)
        walked[lane] = result
        records, events = records + result.records, events + result.events
        for _, anchor in result.anchors or []:
            if isinstance(anchor.get("lane"), int) and isinstance(anchor.get("seq"), int):
                wanted.setdefault(anchor["lane"], set()).add(anchor["seq"])
    for at, anchor in walked[0].anchors or []:
        named, seq = anchor.get("lane"), anchor.get("seq")
        if not isinstance(named, int) or not isinstance(seq, int) or named < 1 or seq < 1:
            key = record_key(tenant, at)
            return Verification(
                tenant, records, events, ChainBreak(at, key, "unreadable", "a malformed anchor")
            )
        have = walked.get(named, _Walked()).records
        key = record_key(tenant, seq, named)
        if have < seq:
            detail = f"anchored by record {at} of lane 0; lane {named} ends at {have} (cut off)"
            return Verification(tenant, records, events, ChainBreak(seq, key, "missing", detail))
        if (walked[named].anchored or {}).get(seq) != anchor.get("hash"):
            detail = f"not the record anchored by record {at} of lane 0"
            return Verification(
                tenant, records, events, ChainBreak(seq, key, "anchor_mismatch", detail)
            )
    return Verification(tenant, records, events, None)


def chain_records(
    tenant: str,
    objects: Iterable[tuple[str, bytes | None]],
    head: ChainHead | None = None,
    lanes: Mapping[int, ChainHead] | None = None,
) -> list[dict[str, Any]]:
    """Every record (first versions, pending ones too), unverified, in one order.

    Each lane in its own order; lanes merged by ``at`` (appends of one tenant
    on different lanes have no other order between them).
    """
    heads = {0: head, **(lanes or {})}
    by_lane: dict[int, list[dict[str, Any]]] = {}
    for key, body in first_versions(objects):
        match = _KEY.fullmatch(key)
        if match is None or match["tenant"] != tenant:
            continue
        by_lane.setdefault(int(match["lane"] or 0), []).append(json.loads(body))
    for lane, lane_head in heads.items():
        found = by_lane.setdefault(lane, [])
        pending = lane_head.pending if lane_head is not None else None
        if lane_head is not None and pending is not None and lane_head.seq == len(found) + 1:
            found.append(json.loads(pending))  # sealed in the head, its put not landed yet
    merged = heapq.merge(*(by_lane[k] for k in sorted(by_lane)), key=lambda r: str(r.get("at")))
    return list(merged)
