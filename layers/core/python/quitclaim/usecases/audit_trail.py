"""Append audit blocks to tenants' hash chains, and verify a chain.

The mechanism (one tenant, many concurrent Lambdas):

1. Read the head (``seq``, ``hash``, and ``pending``: the newest record's body
   while it is not known to be in the bucket), unless this container wrote
   it last (a stale guess only loses the race in step 3).
2. Roll forward: a pending record is put (same bytes, idempotent) and marked
   written. An appender that died between advancing the head and its put
   thereby never leaves a gap: the next appender (or its own retry) finishes it.
3. Seal record ``seq + 1`` over the head's hash and advance the head with one
   conditional write that also claims the block id (``store.advance``). Losing
   the race re-reads the head and tries again; a claimed block id means a
   retry of work already in the chain: nothing is appended twice.
4. Put the record and mark it written. A failure anywhere raises: the work
   item fails and is retried (fail closed); its block id is deterministic
   (the message / event / request id), so the retry finds its block claimed.

Lanes: one head serialises a tenant. An appender that loses the race for a
head it has just read (not a stale guess: contention) moves, for this
tenant and this container, to a random lane of ``lanes`` further chains, and
on the next lost race to another. A lane's first record and every
``ANCHOR_EVERY``-th are anchored in lane 0 (best effort: the lane's head is
the other witness of its length). ``lanes = 0`` is the single-head design.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from quitclaim.domain.audit_chain import (
    GENESIS,
    LANES,
    ChainHead,
    Verification,
    anchored,
    canonical,
    chain_records,
    seal,
    verify,
)
from quitclaim.domain.audit_checkpoint import (
    Version,
    checkpoint_data,
    checkpoint_digest,
    checkpoint_event,
    checkpoint_name,
    checkpoint_versions,
    vouches,
)
from quitclaim.domain.errors import DependencyFailed
from quitclaim.domain.ports import AuditChainStore, AuditCheckpoints, Clock
from quitclaim.observability import count


@dataclass
class AuditTrail:
    store: AuditChainStore
    clock: Clock
    attempts: int = 50
    max_record_bytes: int = 200_000
    # Backoff between lost races (seconds, jittered): tests pass a no-op.
    sleep: Callable[[float], None] = field(default=time.sleep)
    # Lanes besides lane 0 that contended appenders spread over (0: one head).
    lanes: int = LANES
    anchor_attempts: int = 3
    # Where checkpoints of a verified chain go (None: every check reads every record).
    checkpoints: AuditCheckpoints | None = None
    # A check that read at least this many records leaves a checkpoint.
    checkpoint_after: int = 1000
    _last_heads: dict[tuple[str, int], ChainHead] = field(default_factory=dict, repr=False)
    _lane: dict[str, int] = field(default_factory=dict, repr=False)

    def record_block(self, block: str, events: Sequence[Mapping[str, Any]]) -> dict[str, int]:
        """Append one work item's events, one record per tenant; ``{tenant: last seq}``.

        A block too large for one record (the head holds the newest record, and
        a DynamoDB item is at most 400 KB) is split into parts ``<block>#<n>``.
        """
        by_tenant: dict[str, list[Mapping[str, Any]]] = {}
        for event in events:
            by_tenant.setdefault(str(event["tenant"]), []).append(event)
        appended: dict[str, int] = {}
        for tenant, evs in by_tenant.items():
            for n, part in enumerate(_parts(evs, self.max_record_bytes)):
                appended[tenant] = self.append(tenant, f"{block}#{n}" if n else block, part)
        return appended

    def append(self, tenant: str, block: str, events: Sequence[Mapping[str, Any]]) -> int:
        """Append ``events`` as block ``block``; its seq in its lane (0: appended before)."""
        lane = self._lane.get(tenant, 0)
        seq, lane, digest = self._append(tenant, block, events, lane, None)
        if seq and anchored(lane, seq):
            self._anchor(tenant, lane, seq, digest)
        return seq

    def _append(
        self,
        tenant: str,
        block: str,
        events: Sequence[Mapping[str, Any]],
        lane: int,
        anchor: Mapping[str, Any] | None,
        attempts: int | None = None,
    ) -> tuple[int, int, str]:
        at = self.clock.now().isoformat()
        # The head this container left last time saves a read; if another
        # appender moved it since, the advance loses and the head is read.
        head = self._last_heads.pop((tenant, lane), None)
        for attempt in range(attempts or self.attempts):
            fresh = head is None
            if head is None:
                head = self.store.head(tenant, lane)
            if head is not None and head.pending is not None:
                self.store.put_record(tenant, head.seq, head.pending, lane)
                self.store.mark_written(tenant, head.seq, lane)
            seq = (head.seq if head else 0) + 1
            prev = head.hash if head else GENESIS
            record = seal(tenant, seq, prev, block, at, events, lane, anchor)
            body = canonical(record)
            outcome = self.store.advance(tenant, head, record, body)
            if outcome == "duplicate":
                return 0, lane, ""
            if outcome == "advanced":
                self.store.put_record(tenant, seq, body, lane)
                self.store.mark_written(tenant, seq, lane)
                self._last_heads[(tenant, lane)] = ChainHead(seq, str(record["hash"]))
                return seq, lane, str(record["hash"])
            head = None
            if fresh and self.lanes and anchor is None:
                # Lost to another appender on a head read just now: contention.
                # Another lane is (most likely) free: no backoff needed.
                lane = random.randint(1, self.lanes)
                self._lane[tenant] = lane
                head = self._last_heads.pop((tenant, lane), None)
                count("AuditLaneSwitched")
                continue
            self.sleep(random.uniform(0, 0.01 * min(attempt + 1, 10)))
        raise DependencyFailed(f"audit chain of {tenant} stayed contended")

    def _anchor(self, tenant: str, lane: int, seq: int, digest: str) -> None:
        """Seal lane ``lane``'s record ``seq`` into lane 0 (best effort)."""
        anchor = {"lane": lane, "seq": seq, "hash": digest}
        try:
            # A lane's first anchor is tried once: lanes open in bursts (a crowd
            # leaving lane 0 at once), and the lane's next anchor covers it.
            tries = 1 if seq == 1 else self.anchor_attempts
            self._append(tenant, f"anchor/s{lane:03d}/{seq}", [], 0, anchor, tries)
        except DependencyFailed:
            # The work item's own record is in its lane: failing it would only
            # retry into "duplicate". The lane's head still witnesses its length,
            # and the lane's next anchor covers this one (anchors are cumulative):
            # a few tries, so that anchors never queue up on lane 0.
            count("AuditAnchorSkipped")

    def _heads(self, tenant: str) -> tuple[ChainHead | None, dict[int, ChainHead]]:
        heads = dict(self.store.heads(tenant))
        return heads.pop(0, None), heads

    def verify(self, tenant: str) -> Verification:
        """Recompute the tenant's chain from every stored version (listing, then heads)."""
        objects = list(self.store.records(tenant))
        head, lanes = self._heads(tenant)
        return verify(tenant, objects, head, lanes)

    def events(self, tenant: str, since: datetime | None = None) -> list[dict[str, Any]]:
        """Every event of the chain in chain order, each with its record's seq and time.

        Unverified (``verify`` first); ``since`` keeps records appended at or after it.
        """
        objects = list(self.store.records(tenant))
        head, lanes = self._heads(tenant)
        return _events(tenant, objects, head, lanes, since)

    def verified_events(self, tenant: str) -> tuple[Verification, list[dict[str, Any]]]:
        """``verify`` and ``events`` from one read of the chain (it may hold millions).

        With ``checkpoints``: what the newest checkpoint the chain vouches for
        holds is not read again (``domain/audit_checkpoint.py``), and a check
        that read at least ``checkpoint_after`` records leaves a new one.
        """
        if self.checkpoints is None:
            objects = list(self.store.records(tenant))
            head, lanes = self._heads(tenant)
            return verify(tenant, objects, head, lanes), _events(tenant, objects, head, lanes, None)
        store = self.checkpoints
        data = store.latest_checkpoint(tenant)
        listed = list(store.versions(tenant))
        head, lanes = self._heads(tenant)
        known = checkpoint_versions(tenant, data) if data is not None else {}
        bodies, read = _bodies(store, listed, known, checkpoint_digest(data) if data else "")
        objects = _objects(listed, bodies)
        verification = verify(tenant, objects, head, lanes)
        if bodies and read < len(bodies) and not verification.intact:
            # Report the break a full read finds (the checkpoint may hide where it is).
            bodies, read = _bodies(store, listed, {}, "")
            objects = _objects(listed, bodies)
            verification = verify(tenant, objects, head, lanes)
        if verification.intact and read >= self.checkpoint_after:
            kept = [((k, v, e), bodies[(k, v, e)]) for k, v, e in listed if e is not None]
            self._checkpoint(tenant, store, kept)
        return verification, _events(tenant, objects, head, lanes, None)

    def _checkpoint(
        self, tenant: str, store: AuditCheckpoints, versions: list[tuple[Version, bytes]]
    ) -> None:
        """Store what this check verified, then vouch for it in the chain (in that order).

        Best effort: the verdict is already known; a checkpoint not written (or
        not vouched for) only means the next check reads more.
        """
        data = checkpoint_data(tenant, versions)
        digest = checkpoint_digest(data)
        try:
            store.put_checkpoint(checkpoint_name(tenant, len(versions), digest), data)
            event = checkpoint_event(tenant, digest, len(versions))
            self.append(tenant, f"checkpoint/{digest}", [event])
        except DependencyFailed:
            count("AuditCheckpointSkipped")
            return
        count("AuditCheckpointWritten")


def _objects(
    listed: Sequence[tuple[str, str, str | None]], bodies: Mapping[Version, bytes]
) -> list[tuple[str, bytes | None]]:
    """``(key, body)`` per listed version, as ``store.records`` gives them (marker: None)."""
    return [(k, None if e is None else bodies[(k, v, e)]) for k, v, e in listed]


def _bodies(
    store: AuditCheckpoints,
    listed: Sequence[tuple[str, str, str | None]],
    known: Mapping[Version, bytes],
    digest: str,
) -> tuple[dict[Version, bytes], int]:
    """Each listed version's body, and how many were read from the store.

    A body comes from ``known`` (a checkpoint) only if a record read from the
    store in this pass vouches for the checkpoint's ``digest``; otherwise
    every version is read.
    """
    bodies: dict[Version, bytes] = {}
    read = 0
    vouched = False
    for key, version_id, etag in listed:
        if etag is None:
            continue  # a delete marker: no body
        version = (key, version_id, etag)
        if version in known:
            continue
        bodies[version] = store.read_version(key, version_id)
        read += 1
        vouched = vouched or (bool(digest) and vouches(bodies[version], digest))
    for key, version_id, etag in listed:
        version = (key, version_id, etag or "")
        if etag is None or version in bodies:
            continue
        if vouched:
            bodies[version] = known[version]
        else:
            bodies[version] = store.read_version(key, version_id)
            read += 1
    return bodies, read


def _events(
    tenant: str,
    objects: Sequence[tuple[str, bytes | None]],
    head: ChainHead | None,
    lanes: Mapping[int, ChainHead],
    since: datetime | None,
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    # Each record as first written (``verify`` reports any later version).
    for record in chain_records(tenant, objects, head, lanes):
        if since is not None and datetime.fromisoformat(record["at"]) < since:
            continue
        where = {"lane": record["lane"]} if record.get("lane") else {}
        for event in record.get("events") or []:
            found.append({"seq": record["seq"], **where, "at": record["at"], **event})
    return found


def _parts(events: Sequence[Mapping[str, Any]], limit: int) -> list[Sequence[Mapping[str, Any]]]:
    parts: list[Sequence[Mapping[str, Any]]] = []
    current: list[Mapping[str, Any]] = []
    size = 0
    for event in events:
        length = len(canonical(event)) + 1
        if current and size + length > limit:
            parts.append(current)
            current, size = [], 0
        current.append(event)
        size += length
    parts.append(current)
    return parts
