"""``AssetRepository`` on the assets and appearances tables (decisions, metering, reach)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import PutError, TransactWriteError
from pynamodb.expressions.condition import Condition

from quitclaim.adapters.dynamo.plumbing import (
    MAX_TRANSACTION_ITEMS,
    conditional_failed,
    decode_cursor,
    dependency,
    encode_cursor,
    tenant_key,
    transaction,
    transaction_refused,
)
from quitclaim.adapters.dynamo.tables import AppearanceModel, AssetModel, AssetsByStatus
from quitclaim.adapters.dynamo.usage_meter import usage_update
from quitclaim.domain.errors import Conflict, QuotaExceeded
from quitclaim.domain.models import AssetStatus
from quitclaim.domain.records import AssetRecord, FaceRecord
from quitclaim.domain.registry import Page
from quitclaim.domain.usage import UsageIncrement


def _record_from(item: AssetModel) -> AssetRecord:
    return AssetRecord(
        tenant=item.tenant,
        asset_id=item.asset_id,
        source_bucket=item.source_bucket,
        source_key=item.source_key,
        source_version=item.source_version,
        path=item.path,
        purpose=item.purpose,
        status=AssetStatus(item.status),
        reasons=tuple(str(r) for r in item.reasons or ()),
        dest_bucket=item.dest_bucket,
        dest_key=item.dest_key,
        decided_at=item.decided_at,
        faces=tuple(FaceRecord(**face) for face in (item.faces or [])),
        versions=dict(item.versions or {}),
        policy=dict(item.policy or {}),
        timings_ms=dict(item.timings_ms or {}),
        placed_at=item.placed_at,
        version=int(item.version or 1),
        review=dict(item.review or {}),
        history=tuple(item.history or ()),
        size=None if item.size is None else int(item.size),
        published_sha256=item.published_sha256,
        clearance=dict(item.clearance or {}),
    )


def _asset_attributes(record: AssetRecord) -> dict[str, Any]:
    return {
        "tenant": record.tenant,
        "asset_id": record.asset_id,
        "source_bucket": record.source_bucket,
        "source_key": record.source_key,
        "source_version": record.source_version,
        "path": record.path,
        "purpose": record.purpose,
        "status": record.status.value,
        "status_at": f"{record.status.value}#{record.decided_at.isoformat()}",
        "subject_ids": set(record.subject_ids) or None,
        "reasons": list(record.reasons),
        "dest_bucket": record.dest_bucket,
        "dest_key": record.dest_key,
        "decided_at": record.decided_at,
        "placed_at": record.placed_at,
        "faces": [face.as_dict() for face in record.faces],
        "versions": record.versions,
        "policy": record.policy,
        "timings_ms": record.timings_ms,
        "version": record.version,
        "review": record.review,
        "history": list(record.history),
        "size": record.size,
        "published_sha256": record.published_sha256,
        "clearance": record.clearance,
    }


def _appearance(record: AssetRecord, subject_id: str) -> AppearanceModel:
    """The row a withdrawal of ``subject_id`` finds this asset by."""
    return AppearanceModel(
        tenant_key(record.tenant, subject_id),
        record.asset_id,
        tenant=record.tenant,
        subject_id=subject_id,
        asset_id=record.asset_id,
        status=record.status.value,
        decided_at=record.decided_at,
    )


class DynamoAssets:
    """AssetRepository on the assets and appearances tables."""

    def get(self, tenant: str, asset_id: str) -> AssetRecord | None:
        with dependency("asset read"):
            try:
                item = AssetModel.get(tenant_key(tenant, asset_id), consistent_read=True)
            except AssetModel.DoesNotExist:
                return None
        return _record_from(item)

    def get_many(self, tenant: str, asset_ids: Sequence[str]) -> dict[str, AssetRecord]:
        """BatchGetItem, consistent, 100 keys a request (PynamoDB retries unprocessed keys)."""
        keys = [tenant_key(tenant, a) for a in dict.fromkeys(asset_ids)]
        with dependency("asset batch read"):
            records = [
                _record_from(item) for item in AssetModel.batch_get(keys, consistent_read=True)
            ]
        return {r.asset_id: r for r in records if r.tenant == tenant}

    def create(self, record: AssetRecord, usage: UsageIncrement | None = None) -> bool:
        """The first write of a decision (conditional: a redelivery finds it).

        With ``usage``: exactly-once metering. The conditional put of the record
        and the ADD on the month's counters are one TransactWriteItems, so they
        happen together or not at all: a retry or a redelivered S3 event whose
        put is refused (the record exists) adds nothing, and a crash after the
        commit leaves both written. The counters cannot drift from the records.

        The record's appearance rows (one per subject in it) go into the same
        transaction: a decision never exists without the rows a withdrawal
        finds it by (see ``_reach``).
        """
        item = AssetModel(tenant_key(record.tenant, record.asset_id), **_asset_attributes(record))
        condition = AssetModel.pk.does_not_exist()
        rows = self._reach(record, record.subject_ids, usage)
        if usage is None and not rows:
            with dependency("asset write"):
                try:
                    item.save(condition=condition)
                except PutError as exc:
                    if conditional_failed(exc):
                        return False
                    raise
            return True
        return self._transact(item, condition, usage, rows, on_refused=lambda: False)

    def replace(
        self,
        record: AssetRecord,
        expected_version: int,
        usage: UsageIncrement | None = None,
        appearances: Sequence[str] = (),
    ) -> None:
        """Write a new state of the asset if it is still at ``expected_version``.

        With ``usage`` (a held upload decided at last): metered in the same
        transaction as the first decision, as ``create`` does. ``appearances``:
        the subjects whose appearance rows are written in the same transaction
        (every subject of a decision that publishes, see ``Placement``).
        """
        item = AssetModel(tenant_key(record.tenant, record.asset_id), **_asset_attributes(record))
        condition = AssetModel.version == expected_version
        rows = self._reach(record, appearances, usage)
        if usage is None and not rows:
            with dependency("asset write"):
                try:
                    item.save(condition=condition)
                except PutError as exc:
                    if conditional_failed(exc):
                        raise Conflict("the asset changed meanwhile; read it again") from exc
                    raise
            return

        def changed() -> bool:
            raise Conflict("the asset changed meanwhile; read it again")

        self._transact(item, condition, usage, rows, on_refused=changed)

    @staticmethod
    def _reach(
        record: AssetRecord, subject_ids: Sequence[str], usage: UsageIncrement | None
    ) -> list[AppearanceModel]:
        """The appearance rows to write in the decision's own transaction.

        One transaction holds ``MAX_TRANSACTION_ITEMS``: the record, the
        counters, the rows. A photo with more people than that has its rows
        written *first*, in transactions of their own (idempotent puts), and
        none goes with the decision: the decision, and so any placement that
        follows it, exists only once every row does. A crash in between leaves
        rows without a decision (a withdrawal that finds one re-decides
        nothing), never a decision without rows.
        """
        rows = [_appearance(record, sid) for sid in sorted(set(subject_ids))]
        room = MAX_TRANSACTION_ITEMS - 1 - (usage is not None)
        if len(rows) <= room:
            return rows
        with dependency("appearances write"):
            for start in range(0, len(rows), MAX_TRANSACTION_ITEMS):
                with transaction() as tx:
                    for row in rows[start : start + MAX_TRANSACTION_ITEMS]:
                        tx.save(row)
        return []

    @staticmethod
    def _transact(
        item: AssetModel,
        condition: Condition,
        usage: UsageIncrement | None,
        rows: Sequence[AppearanceModel],
        on_refused: Any,
    ) -> bool:
        """The record (index 0), the counters (1, if any) and the rows: all or nothing."""
        with dependency("asset write"):
            try:
                with transaction() as tx:
                    tx.save(item, condition=condition)
                    if usage is not None:
                        counters, actions, quota = usage_update(usage)
                        tx.update(counters, actions=actions, condition=quota)
                    for row in rows:
                        tx.save(row)
            except TransactWriteError as exc:
                if transaction_refused(exc, 0):
                    return bool(on_refused())
                if usage is not None and transaction_refused(exc, 1):
                    raise QuotaExceeded("the monthly image quota is used up") from None
                raise
        return True

    def held(self, tenant: str, limit: int) -> list[AssetRecord]:
        """The tenant's held uploads, oldest first (one range of the status index)."""
        with dependency("assets query"):
            return [
                _record_from(item)
                for item in AssetModel.by_status.query(
                    tenant,
                    AssetsByStatus.status_at.startswith(f"{AssetStatus.HELD.value}#"),
                    limit=limit,
                )
            ]

    def every(self, tenant: str) -> Iterator[AssetRecord]:
        """Every asset record of the tenant, any status (the status index, page by page)."""
        with dependency("assets query"):
            for item in AssetModel.by_status.query(tenant):
                yield _record_from(item)

    def mark_placed(self, tenant: str, asset_id: str, at: datetime) -> None:
        item = AssetModel(tenant_key(tenant, asset_id))
        with dependency("asset update"):
            item.update(actions=[AssetModel.placed_at.set(at)], condition=AssetModel.pk.exists())

    def page(
        self,
        tenant: str,
        *,
        status: str | None,
        reason: str | None,
        subject_id: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        cursor: str | None,
    ) -> Page:
        """The tenant's assets by status and decision time (one GSI query)."""
        range_condition: Condition | None = None
        if status is not None:
            low = f"{status}#{since.isoformat() if since else ''}"
            high = f"{status}#{until.isoformat() if until else '~'}"
            range_condition = AssetsByStatus.status_at.between(low, high)
        filters: Condition | None = None
        if reason is not None:
            filters = AssetModel.reasons.contains(reason)
        if subject_id is not None:
            by_subject: Condition = AssetModel.subject_ids.contains(subject_id)
            filters = by_subject if filters is None else filters & by_subject
        if status is None and (since or until):
            in_window: Condition = AssetModel.decided_at.between(
                since or datetime(1970, 1, 1, tzinfo=UTC), until or datetime(9999, 1, 1, tzinfo=UTC)
            )
            filters = in_window if filters is None else filters & in_window
        with dependency("assets query"):
            results = AssetModel.by_status.query(
                tenant,
                range_condition,
                filter_condition=filters,
                limit=limit,
                last_evaluated_key=decode_cursor(cursor, tenant),
            )
            items = tuple(_record_from(item) for item in results)
            return Page(items, encode_cursor(results.last_evaluated_key))

    def decided_since(
        self, tenant: str, since: datetime, limit: int
    ) -> tuple[list[AssetRecord], bool]:
        """Assets decided at or after ``since``, any status: one range query per status."""
        records: list[AssetRecord] = []
        with dependency("assets query"):
            for status in AssetStatus:
                condition = AssetsByStatus.status_at.between(
                    f"{status.value}#{since.isoformat()}", f"{status.value}#~"
                )
                for item in AssetModel.by_status.query(tenant, condition):
                    if len(records) == limit:
                        return records, False
                    records.append(_record_from(item))
        return records, True

    def add_appearances(self, record: AssetRecord) -> None:
        """Put the record's appearance rows (idempotent); the decision writes carry them too."""
        with dependency("appearances write"), AppearanceModel.batch_write() as batch:
            for subject_id in record.subject_ids:
                batch.save(_appearance(record, subject_id))

    def remove_appearance(self, tenant: str, subject_id: str, asset_id: str) -> None:
        with dependency("appearance delete"):
            AppearanceModel(tenant_key(tenant, subject_id), asset_id).delete()

    def appearances(self, tenant: str, subject_id: str) -> list[str]:
        """Ids of the assets a subject appears in (drives re-decisions)."""
        with dependency("appearances query"):
            return [
                item.asset_id
                for item in AppearanceModel.query(
                    tenant_key(tenant, subject_id), consistent_read=True
                )
            ]
