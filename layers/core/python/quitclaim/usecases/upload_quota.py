"""The tenant's monthly image quota at ingest: checked before a scan, metered with the decision.

An upload over the quota is recorded as held, its bytes left where they are,
until the quota allows (the same S3 event again). The counters grow in the
same transaction as a decision's first write, so only the writer whose
decision lands counts it, exactly once.
"""

from __future__ import annotations

from dataclasses import replace

from quitclaim.domain.errors import Conflict
from quitclaim.domain.models import AssetStatus
from quitclaim.domain.ports import AssetRepository, Clock, ObjectInfo, UsageMeter
from quitclaim.domain.records import AssetRecord
from quitclaim.domain.usage import (
    QUOTA_EXCEEDED,
    UsageIncrement,
    billable,
    month_of,
    remaining,
    scan_units,
)
from quitclaim.observability import audit, count
from quitclaim.usecases.place_upload import PlaceUpload
from quitclaim.usecases.uploads import ScanRequest, ScanResult, unscanned_record


class UploadQuota:
    """Built per call from the scan's collaborators (``usage`` None: no quota)."""

    def __init__(
        self,
        *,
        usage: UsageMeter | None,
        assets: AssetRepository,
        clock: Clock,
        placing: PlaceUpload,
    ) -> None:
        self._usage = usage
        self._assets = assets
        self._clock = clock
        self._placing = placing

    def limit(self, tenant: str) -> int | None:
        return self._usage.images_per_month(tenant) if self._usage is not None else None

    def left(self, tenant: str, limit: int) -> int:
        assert self._usage is not None
        left = remaining(limit, self._usage.counters(tenant, month_of(self._clock.now())))
        return 0 if left is None else left

    def write_decision(
        self, record: AssetRecord, held: AssetRecord | None, limit: int | None
    ) -> AssetRecord | None:
        """The first write of the decision, metered in the same transaction.

        A new upload: a conditional put (None: a concurrent delivery won). A
        held one decided at last: a replace conditional on the held version
        (None: a concurrent release won). Either way only the writer whose
        decision lands adds to the counters, exactly once.
        """
        usage = None
        if self._usage is not None and billable(record):
            usage = UsageIncrement(
                record.tenant, month_of(record.decided_at), scan_units(record), limit
            )
        if held is None:
            return record if self._assets.create(record, usage) else None
        decided = replace(
            record, version=held.version + 1, history=(*held.history, *record.history)
        )
        try:
            self._assets.replace(decided, held.version, usage, appearances=decided.subject_ids)
        except Conflict:
            return None
        return decided

    def hold(
        self,
        request: ScanRequest,
        info: ObjectInfo,
        tenant: str,
        path: str,
        asset_id: str,
        existing: AssetRecord | None,
    ) -> ScanResult:
        """Over quota: record the upload as held and leave its bytes where they are.

        Kept in place (not moved to a held prefix): the key and version stay the
        ones the S3 event named, so the asset id stays the same and a release is
        just the same event again; nothing is copied, nothing can be lost between
        two places, and nothing of it is published.
        """
        if existing is None:
            record = unscanned_record(
                request,
                tenant,
                path,
                asset_id,
                self._clock.now(),
                status=AssetStatus.HELD,
                reason=QUOTA_EXCEEDED,
                dest=(request.bucket, request.key),
            )
            record = replace(record, size=info.size)
            if not self._assets.create(record):
                winner = self._assets.get(tenant, asset_id)
                if winner is not None and winner.status is not AssetStatus.HELD:
                    return self._placing.complete(winner, request, duplicate=True)
            else:
                audit("asset.held", tenant=tenant, asset_id=asset_id, reasons=[QUOTA_EXCEEDED])
                count("AssetsHeld")
        return ScanResult(
            asset_id,
            AssetStatus.HELD,
            (QUOTA_EXCEEDED,),
            duplicate=existing is not None,
            dest_bucket=request.bucket,
            dest_key=request.key,
        )
