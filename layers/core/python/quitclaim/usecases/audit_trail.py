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
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from quitclaim.domain.audit_chain import (
    GENESIS,
    ChainHead,
    Verification,
    canonical,
    chain_prefix,
    first_versions,
    seal,
    verify,
)
from quitclaim.domain.errors import DependencyFailed
from quitclaim.domain.ports import AuditChainStore, Clock


@dataclass
class AuditTrail:
    store: AuditChainStore
    clock: Clock
    attempts: int = 50
    max_record_bytes: int = 200_000
    # Backoff between lost races (seconds, jittered): tests pass a no-op.
    sleep: Callable[[float], None] = field(default=time.sleep)
    _last_heads: dict[str, ChainHead] = field(default_factory=dict, repr=False)

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
        """Append ``events`` as block ``block``; the record's seq (0: appended before)."""
        at = self.clock.now().isoformat()
        # The head this container left last time saves a read; if another
        # appender moved it since, the advance loses and the head is read.
        head = self._last_heads.pop(tenant, None)
        for attempt in range(self.attempts):
            if head is None:
                head = self.store.head(tenant)
            if head is not None and head.pending is not None:
                self.store.put_record(tenant, head.seq, head.pending)
                self.store.mark_written(tenant, head.seq)
            seq = (head.seq if head else 0) + 1
            record = seal(tenant, seq, head.hash if head else GENESIS, block, at, events)
            body = canonical(record)
            outcome = self.store.advance(tenant, head, record, body)
            if outcome == "duplicate":
                return 0
            if outcome == "advanced":
                self.store.put_record(tenant, seq, body)
                self.store.mark_written(tenant, seq)
                self._last_heads[tenant] = ChainHead(seq, str(record["hash"]))
                return seq
            head = None
            self.sleep(random.uniform(0, 0.01 * min(attempt + 1, 10)))
        raise DependencyFailed(f"audit chain of {tenant} stayed contended")

    def verify(self, tenant: str) -> Verification:
        """Recompute the tenant's chain from every stored version (listing first, then the head)."""
        objects = list(self.store.records(tenant))
        return verify(tenant, objects, self.store.head(tenant))

    def events(self, tenant: str, since: datetime | None = None) -> list[dict[str, Any]]:
        """Every event of the chain in chain order, each with its record's seq and time.

        Unverified (``verify`` first); ``since`` keeps records appended at or after it.
        """
        objects = list(self.store.records(tenant))
        return _events(tenant, objects, self.store.head(tenant), since)

    def verified_events(self, tenant: str) -> tuple[Verification, list[dict[str, Any]]]:
        """``verify`` and ``events`` from one read of the chain (it may hold millions)."""
        objects = list(self.store.records(tenant))
        head = self.store.head(tenant)
        return verify(tenant, objects, head), _events(tenant, objects, head, None)


def _events(
    tenant: str,
    objects: Sequence[tuple[str, bytes | None]],
    head: ChainHead | None,
    since: datetime | None,
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    # Each record as first written (``verify`` reports any later version).
    records = first_versions(objects)
    bodies = [b for k, b in records if k.startswith(chain_prefix(tenant))]
    if head is not None and head.pending is not None and head.seq == len(bodies) + 1:
        bodies.append(head.pending)  # sealed in the head, its put not landed yet
    for body in bodies:
        record = json.loads(body)
        if since is not None and datetime.fromisoformat(record["at"]) < since:
            continue
        for event in record.get("events") or []:
            found.append({"seq": record["seq"], "at": record["at"], **event})
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
