"""In-memory fakes of the ports, for unit tests (no network, no models)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from quitclaim.domain.audit_chain import ChainHead, chain_prefix, record_key
from quitclaim.domain.errors import DependencyFailed, RejectedInput
from quitclaim.domain.models import Box, Consent, TenantPolicy
from quitclaim.domain.ports import DecodedImage, FaceObservation, ObjectInfo
from quitclaim.domain.records import AssetRecord
from quitclaim.domain.usage import UsageIncrement


def template_for(index: int) -> np.ndarray:
    """A distinct, well-separated fake template per person."""
    vec = np.zeros(128, dtype=np.float32)
    vec[index] = 1.0
    return vec


def fake_image(*faces: tuple[int | None, int]) -> bytes:
    """Bytes the fake engine understands: (person index or None, face size)."""
    return b"FAKE" + json.dumps([list(f) for f in faces]).encode()


class FakeEngine:
    """Decodes ``fake_image`` bytes; anything else is corrupt."""

    versions = {"engine": "fake/1"}

    def decode(self, data: bytes) -> DecodedImage:
        if not data:
            raise RejectedInput("empty", code="empty_file")
        if not data.startswith(b"FAKE"):
            raise RejectedInput("not an image", code="unsupported_format")
        pixels = np.zeros((4, 4, 3), dtype=np.uint8)
        return DecodedImage((pixels,), "FAKE", 4, 4, meta={"spec": data[4:].decode()})

    def analyze(self, image: DecodedImage) -> list[FaceObservation]:
        out = []
        for i, (person, size) in enumerate(json.loads(image.meta["spec"])):
            enc = template_for(person) if person is not None else template_for(100 + i) * -1
            out.append(FaceObservation(Box(i * 500, 0, i * 500 + size, size), enc))
        return out


@dataclass
class FakeStore:
    objects: dict[tuple[str, str], tuple[bytes, dict[str, str]]] = field(default_factory=dict)
    fail_on: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)
    object_tags: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def _check(self, op: str) -> None:
        self.calls.append(op)
        if op in self.fail_on:
            raise DependencyFailed(f"injected {op} failure")

    def head(self, bucket: str, key: str, version_id: str | None = None) -> ObjectInfo | None:
        self._check("head")
        if (bucket, key) not in self.objects:
            return None
        data, meta = self.objects[(bucket, key)]
        return ObjectInfo(bucket, key, len(data), "etag", version_id, "image/jpeg", dict(meta))

    def read(self, bucket: str, key: str, version_id: str | None = None) -> bytes:
        self._check("read")
        return self.objects[(bucket, key)][0]

    def copy(
        self,
        source: ObjectInfo,
        dest_bucket: str,
        dest_key: str,
        extra_metadata: Mapping[str, str],
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self._check("copy")
        data, meta = self.objects[(source.bucket, source.key)]
        self.objects[(dest_bucket, dest_key)] = (data, {**meta, **extra_metadata})
        copied = self.object_tags.get((source.bucket, source.key), {})
        self.object_tags[(dest_bucket, dest_key)] = dict(copied if tags is None else tags)

    def delete(self, bucket: str, key: str, version_id: str | None = None) -> None:
        self._check("delete")
        self.objects.pop((bucket, key), None)
        self.object_tags.pop((bucket, key), None)

    def write(
        self,
        bucket: str,
        key: str,
        data: bytes,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self._check("write")
        self.objects[(bucket, key)] = (data, dict(metadata or {}))
        self.object_tags[(bucket, key)] = dict(tags or {})

    def put_tags(self, bucket: str, key: str, tags: Mapping[str, str]) -> None:
        self._check("put_tags")
        if (bucket, key) not in self.objects:
            raise DependencyFailed("no such object to tag")
        self.object_tags[(bucket, key)] = dict(tags)

    def tags(self, bucket: str, key: str) -> dict[str, str]:
        self._check("tags")
        return dict(self.object_tags.get((bucket, key), {}))


@dataclass
class FakeTenants:
    policies: dict[str, TenantPolicy] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)

    def policy(self, tenant: str) -> TenantPolicy | None:
        return self.policies.get(tenant)

    def gallery_version(self, tenant: str) -> int:
        return self.versions.get(tenant, 0)

    def policy_and_gallery(self, tenant: str) -> tuple[TenantPolicy, int] | None:
        policy = self.policies.get(tenant)
        return None if policy is None else (policy, self.gallery_version(tenant))

    def save_tenant(self, policy: TenantPolicy, profile: object = None) -> None:
        self.policies[policy.tenant] = policy

    def bump_gallery_version(self, tenant: str) -> int:
        self.versions[tenant] = self.versions.get(tenant, 0) + 1
        return self.versions[tenant]


@dataclass
class FakeSubjects:
    items: dict[tuple[str, str], list[bytes]] = field(default_factory=dict)
    names: dict[tuple[str, str], str] = field(default_factory=dict)

    def templates(self, tenant: str) -> Iterable[tuple[str, bytes]]:
        for (t, sid), blobs in self.items.items():
            if t == tenant:
                for blob in blobs:
                    yield sid, blob

    def create(
        self, tenant: str, subject_id: str, display_name: str, external_ref: str | None
    ) -> None:
        self.items[(tenant, subject_id)] = []
        self.names[(tenant, subject_id)] = display_name

    def add_template(self, tenant: str, subject_id: str, template: bytes) -> None:
        self.items[(tenant, subject_id)].append(template)

    def exists(self, tenant: str, subject_id: str) -> bool:
        return (tenant, subject_id) in self.items

    def display_names(self, tenant: str) -> dict[str, str]:
        return {sid: n for (t, sid), n in self.names.items() if t == tenant}


@dataclass
class FakeConsents:
    items: list[Consent] = field(default_factory=list)
    fail: bool = False

    def for_subjects(self, tenant: str, subject_ids: Sequence[str]) -> dict[str, list[Consent]]:
        if self.fail:
            raise DependencyFailed("DynamoDB consents query failed: ProvisionedThroughputExceeded")
        return {
            s: [c for c in self.items if c.tenant == tenant and c.subject_id == s]
            for s in subject_ids
        }

    def save(self, consent: Consent, *, source: str) -> None:
        self.items.append(consent)

    def get(self, tenant: str, subject_id: str, consent_id: str) -> Consent | None:
        return next(
            (
                c
                for c in self.items
                if (c.tenant, c.subject_id, c.consent_id) == (tenant, subject_id, consent_id)
            ),
            None,
        )

    def revoke(self, consent: Consent, at: datetime, *, source: str) -> Consent:
        revoked = replace(consent, revoked_at=at, version=consent.version + 1)
        self.items = [revoked if c is consent else c for c in self.items]
        return revoked


@dataclass
class FakeAssets:
    records: dict[tuple[str, str], AssetRecord] = field(default_factory=dict)
    rows: set[tuple[str, str, str]] = field(default_factory=set)  # appearances

    def get(self, tenant: str, asset_id: str) -> AssetRecord | None:
        return self.records.get((tenant, asset_id))

    def get_many(self, tenant: str, asset_ids: Sequence[str]) -> dict[str, AssetRecord]:
        return {a: r for a in asset_ids if (r := self.records.get((tenant, a))) is not None}

    # Where metered writes add their usage (as the DynamoDB transaction does).
    meter: FakeUsage | None = None

    def create(self, record: AssetRecord, usage: UsageIncrement | None = None) -> bool:
        key = (record.tenant, record.asset_id)
        if key in self.records:
            return False
        self._meter(usage)
        self.records[key] = record
        self._put_rows(record, record.subject_ids)  # in the same transaction, as on DynamoDB
        return True

    def replace(
        self,
        record: AssetRecord,
        expected_version: int,
        usage: UsageIncrement | None = None,
        appearances: Sequence[str] = (),
    ) -> None:
        key = (record.tenant, record.asset_id)
        if self.records[key].version != expected_version:
            from quitclaim.domain.errors import Conflict

            raise Conflict("changed")
        self._meter(usage)
        self.records[key] = record
        self._put_rows(record, appearances)

    def _put_rows(self, record: AssetRecord, subject_ids: Sequence[str]) -> None:
        for sid in subject_ids:
            self.rows.add((record.tenant, sid, record.asset_id))

    def _meter(self, usage: UsageIncrement | None) -> None:
        if usage is None:
            return
        if self.meter is None:
            raise AssertionError("a metered write without a meter")
        self.meter.apply(usage)

    def held(self, tenant: str, limit: int) -> list[AssetRecord]:
        found = [
            r for (t, _), r in self.records.items() if t == tenant and r.status.value == "held"
        ]
        return sorted(found, key=lambda r: r.decided_at)[:limit]

    def appearances(self, tenant: str, subject_id: str) -> list[str]:
        return [a for t, s, a in sorted(self.rows) if (t, s) == (tenant, subject_id)]

    def remove_appearance(self, tenant: str, subject_id: str, asset_id: str) -> None:
        self.rows.discard((tenant, subject_id, asset_id))

    def mark_placed(self, tenant: str, asset_id: str, at: datetime) -> None:
        self.records[(tenant, asset_id)] = replace(self.records[(tenant, asset_id)], placed_at=at)

    def add_appearances(self, record: AssetRecord) -> None:
        for sid in record.subject_ids:
            self.rows.add((record.tenant, sid, record.asset_id))


@dataclass
class FakeUsage:
    """UsageMeter in memory; ``apply`` is the transaction's counter half."""

    counts: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    limits: dict[str, int] = field(default_factory=dict)

    def apply(self, usage: UsageIncrement) -> None:
        from quitclaim.domain.errors import QuotaExceeded
        from quitclaim.domain.usage import IMAGES_SCANNED

        current = self.counts.setdefault((usage.tenant, usage.month), {})
        if (
            usage.images_limit is not None
            and usage.units.get(IMAGES_SCANNED)
            and current.get(IMAGES_SCANNED, 0) >= usage.images_limit
        ):
            raise QuotaExceeded("over quota")
        for unit, n in usage.units.items():
            current[unit] = current.get(unit, 0) + n

    def add(self, tenant: str, month: str, units: Mapping[str, int]) -> None:
        self.apply(UsageIncrement(tenant, month, units))

    def counters(self, tenant: str, month: str) -> dict[str, int]:
        from quitclaim.domain.usage import COUNTED_UNITS

        got = self.counts.get((tenant, month), {})
        return {unit: got.get(unit, 0) for unit in COUNTED_UNITS}

    def images_per_month(self, tenant: str) -> int | None:
        return self.limits.get(tenant)

    def set_images_per_month(self, tenant: str, limit: int | None) -> None:
        if limit is None:
            self.limits.pop(tenant, None)
        else:
            self.limits[tenant] = limit

    def tenants_with_quota(self) -> list[str]:
        return sorted(self.limits)


@dataclass
class FixedClock:
    at: datetime = datetime(2026, 11, 26, 12, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at


@dataclass
class FakeAuditChain:
    """The AuditChainStore port in memory: one lock plays DynamoDB's conditional write.

    ``fail_puts`` makes the next N record puts fail (after the head advanced),
    as an S3 outage between the two steps would. ``heads`` holds lane 0's
    head per tenant, ``lane_heads`` the other lanes' per (tenant, lane).
    """

    heads_: dict[str, ChainHead] = field(default_factory=dict)
    lane_heads: dict[tuple[str, int], ChainHead] = field(default_factory=dict)
    blocks: set[tuple[str, str]] = field(default_factory=set)
    objects: dict[str, bytes] = field(default_factory=dict)
    fail_puts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _get(self, tenant: str, lane: int) -> ChainHead | None:
        return self.lane_heads.get((tenant, lane)) if lane else self.heads_.get(tenant)

    def _set(self, tenant: str, lane: int, head: ChainHead) -> None:
        if lane:
            self.lane_heads[(tenant, lane)] = head
        else:
            self.heads_[tenant] = head

    def head(self, tenant: str, lane: int = 0) -> ChainHead | None:
        with self.lock:
            return self._get(tenant, lane)

    def heads(self, tenant: str) -> dict[int, ChainHead]:
        with self.lock:
            found = {k: h for (t, k), h in self.lane_heads.items() if t == tenant}
            if tenant in self.heads_:
                found[0] = self.heads_[tenant]
            return found

    def advance(
        self, tenant: str, expected: ChainHead | None, record: Mapping[str, Any], body: bytes
    ) -> str:
        lane = int(record.get("lane", 0))
        with self.lock:
            if (tenant, record["block"]) in self.blocks:
                return "duplicate"
            current = self._get(tenant, lane)
            now = (current.seq, current.hash) if current else None
            if now != ((expected.seq, expected.hash) if expected else None):
                return "race"
            self._set(tenant, lane, ChainHead(record["seq"], record["hash"], body))
            self.blocks.add((tenant, record["block"]))
            return "advanced"

    def put_record(self, tenant: str, seq: int, body: bytes, lane: int = 0) -> None:
        with self.lock:
            if self.fail_puts:
                self.fail_puts -= 1
                raise DependencyFailed("audit record put failed: SlowDown")
            self.objects.setdefault(record_key(tenant, seq, lane), body)

    def mark_written(self, tenant: str, seq: int, lane: int = 0) -> None:
        with self.lock:
            head = self._get(tenant, lane)
            if head is not None and head.seq == seq:
                self._set(tenant, lane, replace(head, pending=None))

    def records(self, tenant: str) -> list[tuple[str, bytes]]:
        with self.lock:
            prefix = chain_prefix(tenant)
            return [(k, v) for k, v in self.objects.items() if k.startswith(prefix)]
