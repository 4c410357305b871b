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

Pure: no I/O. ``quitclaim audit verify`` feeds it the bucket's objects.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
FORMAT = 1
_SEQ_DIGITS = 12
_KEY = re.compile(r"^audit/(?P<tenant>[^/]+)/(?P<seq>\d{12})\.json$")


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


def record_key(tenant: str, seq: int) -> str:
    """``audit/<tenant>/<seq, 12 digits>.json``: lexical order is chain order."""
    return f"audit/{tenant}/{seq:0{_SEQ_DIGITS}d}.json"


def chain_prefix(tenant: str) -> str:
    return f"audit/{tenant}/"


def seal(
    tenant: str,
    seq: int,
    prev: str,
    block: str,
    at: str,
    events: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """Record ``seq`` of ``tenant``'s chain, hashed over everything else it holds."""
    record: dict[str, Any] = {
        "v": FORMAT,
        "tenant": tenant,
        "seq": seq,
        "prev": prev,
        "block": block,
        "at": at,
        "events": [dict(e) for e in events],
    }
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


def verify(
    tenant: str, objects: Iterable[tuple[str, bytes | None]], head: ChainHead | None = None
) -> Verification:
    """Walk the chain in key order and report the first broken link (if any).

    ``objects`` are ``(key, body)`` under the tenant's prefix: every stored
    version of each key, oldest first, a delete marker as ``(key, None)``
    (a store without versions gives one per key). ``head`` (when known)
    reveals records cut off the end.
    """
    expected, prev, records, events = 1, GENESIS, 0, 0
    listed = sorted(stored_versions(objects).items())
    if head is not None and head.pending is not None and head.seq == len(listed) + 1:
        # The newest record is sealed in the head but its put has not landed
        # yet (in flight, or its appender died): the next append writes it.
        # It is hashed and linked like the others, so it is checked the same.
        listed.append((record_key(tenant, head.seq), [head.pending]))

    def broken(seq: int, key: str, problem: str, detail: str) -> Verification:
        return Verification(tenant, records, events, ChainBreak(seq, key, problem, detail))

    for key, history in listed:
        match = _KEY.fullmatch(key)
        if match is None or match["tenant"] != tenant:
            return broken(expected, key, "unexpected_key", "not a record key of this chain")
        at_key = int(match["seq"])
        if at_key != expected:
            return broken(
                expected,
                record_key(tenant, expected),
                "missing",
                f"record {expected} is missing (next present is {at_key})",
            )
        written = [v for v in history if v is not None]
        if len(written) > 1:
            detail = f"{len(written)} versions stored: a record is written once"
            return broken(at_key, key, "overwritten", detail)
        if len(written) < len(history):
            return broken(at_key, key, "deleted", "the record has a delete marker")
        body = written[0]
        try:
            record = json.loads(body)
            if not isinstance(record, dict):
                raise ValueError("not an object")
        except ValueError:
            return broken(at_key, key, "unreadable", "not a JSON object")
        if record.get("seq") != at_key or record.get("tenant") != tenant:
            return broken(
                at_key,
                key,
                "seq_mismatch",
                f"holds seq {record.get('seq')!r} of {record.get('tenant')!r}: moved or reordered",
            )
        if record.get("hash") != digest(record):
            return broken(at_key, key, "hash_mismatch", "content does not match its hash")
        if record.get("prev") != prev:
            return broken(at_key, key, "prev_mismatch", "prev is not the hash of the record before")
        prev = str(record["hash"])
        records += 1
        events += len(record.get("events") or [])
        expected += 1
    if head is not None:
        if head.seq >= expected:
            return broken(
                expected,
                record_key(tenant, expected),
                "missing",
                f"the chain head is at {head.seq}; records from {expected} are missing",
            )
        if head.seq < expected - 1:
            # The head advances before the put, so the bucket never runs ahead.
            key = record_key(tenant, head.seq + 1)
            return broken(head.seq + 1, key, "beyond_head", f"the chain head is at {head.seq}")
        if head.seq > 0 and head.hash != prev:
            key = record_key(tenant, head.seq)
            return broken(head.seq, key, "head_mismatch", "the newest record is not the head's")
    return Verification(tenant, records, events, None)
