"""Checkpoints of a verified audit chain: fewer reads, the same verdicts (in memory)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from quitclaim.domain.audit_chain import canonical, digest, record_key
from quitclaim.domain.audit_checkpoint import (
    checkpoint_data,
    checkpoint_digest,
    checkpoint_name,
    checkpoint_prefix,
    checkpoint_versions,
)
from quitclaim.domain.errors import DependencyFailed
from quitclaim.usecases.audit_trail import AuditTrail
from tests.unit.fakes import FakeAuditChain, FixedClock

TENANT = "acme"


@dataclass
class VersionedChain(FakeAuditChain):
    """The chain's bucket with versions (id, ETag) and reads counted, as S3 keeps them."""

    stored: dict[str, list[tuple[str, str, bytes | None]]] = field(default_factory=dict)
    saved: dict[str, bytes] = field(default_factory=dict)
    reads: int = 0
    _next: int = 0

    def store(self, key: str, body: bytes | None) -> None:
        self._next += 1
        etag = "" if body is None else f"etag-{digest({'b': body.decode()})[:12]}"
        self.stored.setdefault(key, []).append((f"v{self._next}", etag, body))

    def put_record(self, tenant: str, seq: int, body: bytes, lane: int = 0) -> None:
        key = record_key(tenant, seq, lane)
        if key not in self.stored:
            self.store(key, body)

    def records(self, tenant: str) -> list[tuple[str, bytes | None]]:
        return [(k, b) for k in sorted(self.stored) for _, _, b in self.stored[k]]

    def versions(self, tenant: str) -> list[tuple[str, str, str | None]]:
        return [
            (k, v, None if b is None else e)
            for k in sorted(self.stored)
            for v, e, b in self.stored[k]
        ]

    def read_version(self, key: str, version_id: str) -> bytes:
        self.reads += 1
        [body] = [b for v, _, b in self.stored[key] if v == version_id]
        assert body is not None
        return body

    def latest_checkpoint(self, tenant: str) -> bytes | None:
        names = [k for k in self.saved if k.startswith(checkpoint_prefix(tenant))]
        return self.saved[max(names)] if names else None

    def put_checkpoint(self, key: str, data: bytes) -> None:
        self.saved.setdefault(key, data)


def trail(store: VersionedChain, *, checkpoints: bool = True, after: int = 5) -> AuditTrail:
    return AuditTrail(
        store=store,
        clock=FixedClock(),
        sleep=lambda _: None,
        lanes=0,
        checkpoints=store if checkpoints else None,
        checkpoint_after=after,
    )


def chain(records: int) -> VersionedChain:
    store = VersionedChain()
    appender = trail(store)
    for i in range(records):
        event = {"action": "asset.decided", "tenant": TENANT, "asset_id": f"a{i}"}
        appender.append(TENANT, f"sqs/{i}", [event])
    return store


def checkpointed(records: int = 12, later: int = 3) -> VersionedChain:
    """A chain checked once (leaving a checkpoint), then appended to."""
    store = chain(records)
    trail(store).verified_events(TENANT)
    assert store.saved, "the first check left no checkpoint"
    appender = trail(store)
    for i in range(later):
        event = {"action": "api.request", "tenant": TENANT, "request_id": f"r{i}"}
        appender.append(TENANT, f"api/{i}", [event])
    return store


def test_a_check_after_a_checkpoint_reads_only_the_newer_records() -> None:
    # Given 12 records checked once (a checkpoint, vouched for by record 13), then 3 more
    store = checkpointed(12, 3)
    store.reads = 0
    # When the chain is checked again
    verification, events = trail(store, after=100).verified_events(TENANT)
    # Then only the 4 records after the checkpoint were read, and the verdict and
    # events are the ones a full read gives
    assert store.reads == 4
    full, full_events = trail(store, checkpoints=False).verified_events(TENANT)
    assert verification == full and verification.intact
    assert events == full_events and len(events) == 16


def test_a_checkpoint_holds_every_version_it_verified() -> None:
    store = checkpointed(6, 0)
    [data] = store.saved.values()
    held = checkpoint_versions(TENANT, data)
    assert sorted(k for k, _, _ in held) == sorted(store.stored)[:6]
    assert checkpoint_versions("other-tenant", data) == {}


def _overwrite(store: VersionedChain, seq: int) -> None:
    record = json.loads(store.stored[record_key(TENANT, seq)][0][2] or b"")
    record["events"] = []
    record["hash"] = digest(record)
    store.store(record_key(TENANT, seq), canonical(record))


def _replace_in_place(store: VersionedChain, seq: int) -> None:
    """A version deleted for good and the key written again (new version id)."""
    key = record_key(TENANT, seq)
    record = json.loads(store.stored[key][0][2] or b"")
    record["events"] = [{"action": "forged", "tenant": TENANT}]
    record["hash"] = digest(record)
    del store.stored[key]
    store.store(key, canonical(record))


def _swap(store: VersionedChain, seq: int) -> None:
    a, b = record_key(TENANT, seq), record_key(TENANT, seq + 1)
    first, second = store.stored[a][0][2], store.stored[b][0][2]
    del store.stored[a], store.stored[b]
    store.store(a, second)
    store.store(b, first)


def _insert(store: VersionedChain, seq: int) -> None:
    last = json.loads(store.stored[max(store.stored)][-1][2] or b"")
    extra = dict(last, seq=last["seq"] + 1, prev=last["hash"], events=[])
    extra["hash"] = digest(extra)
    store.store(record_key(TENANT, last["seq"] + 1), canonical(extra))


TAMPERS: dict[str, Callable[[VersionedChain, int], None]] = {
    "overwritten": _overwrite,
    "deleted": lambda s, seq: s.store(record_key(TENANT, seq), None),
    "missing": lambda s, seq: s.stored.pop(record_key(TENANT, seq)) and None,
    "replaced": _replace_in_place,
    "reordered": _swap,
    "inserted": _insert,
    # the newest records cut off, into the checkpointed ones
    "truncated": lambda s, seq: [s.stored.pop(k) for k in sorted(s.stored)[seq:]] and None,
}


@pytest.mark.parametrize("kind", sorted(TAMPERS))
def test_a_tamper_under_a_checkpoint_is_found_as_a_full_read_finds_it(kind: str) -> None:
    # Given a checkpointed chain
    store = checkpointed(12, 3)
    # When a record the checkpoint covers is tampered with
    TAMPERS[kind](store, 5)
    # Then the check with checkpoints reports the break a full read reports
    found, _ = trail(store).verified_events(TENANT)
    full, _ = trail(store, checkpoints=False).verified_events(TENANT)
    assert found.first_break is not None
    assert found == full


def test_a_forged_checkpoint_is_not_trusted() -> None:
    # Given a checkpointed chain whose record 5 is replaced in place (new version id)
    store = checkpointed(12, 3)
    _replace_in_place(store, 5)
    # And a newer checkpoint that maps the new version to the original body
    [data] = store.saved.values()
    held = checkpoint_versions(TENANT, data)
    original = next(b for (k, _, _), b in held.items() if k == record_key(TENANT, 5))
    forged = {
        (k, v, e): b
        for k, versions in store.stored.items()
        for v, e, b in versions
        if b is not None
    }
    forged[next(k for k in forged if k[0] == record_key(TENANT, 5))] = original
    data = checkpoint_data(TENANT, sorted(forged.items()))
    store.put_checkpoint(checkpoint_name(TENANT, 99, checkpoint_digest(data)), data)
    store.reads = 0
    # When the chain is checked
    found, _ = trail(store, after=1000).verified_events(TENANT)
    # Then no record vouches for the forged checkpoint: everything is read, the tamper found
    assert store.reads == sum(len(v) for v in store.stored.values())
    full, _ = trail(store, checkpoints=False).verified_events(TENANT)
    assert found.first_break is not None and found == full


def test_a_short_check_leaves_no_checkpoint() -> None:
    store = chain(3)
    verification, _ = trail(store, after=5).verified_events(TENANT)
    assert verification.intact and not store.saved


def test_a_checkpoint_that_cannot_be_written_leaves_the_verdict_as_it_is() -> None:
    # Given a store that refuses checkpoints
    store = chain(8)

    def refuse(key: str, data: bytes) -> None:
        raise DependencyFailed("audit checkpoint put failed: AccessDenied")

    store.put_checkpoint = refuse  # type: ignore[method-assign]
    # When the chain is checked, Then the verdict is given, and nothing is vouched for
    verification, events = trail(store).verified_events(TENANT)
    assert verification.intact and len(events) == 8
    assert len(store.stored) == 8  # no record appended to vouch for it
