"""Placing a decided upload: its bytes where the record says, its original kept, the upload gone.

The decision is recorded before this runs (``scan_asset``), so a crash
anywhere here leaves the image out of the library or where its decision
says; a redelivery runs the same steps again. A re-decision that lands while
the bytes move (a consent withdrawn during the scan) is read back after the
copy and followed (``follow_redecision``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from quitclaim.config import Settings
from quitclaim.domain.clearance import clearance_tags
from quitclaim.domain.models import AssetStatus
from quitclaim.domain.ports import AssetRepository, Clock, ObjectInfo, ObjectStore
from quitclaim.domain.records import AssetRecord
from quitclaim.observability import count, logger
from quitclaim.usecases.asset_decisions import META_ASSET_ID, META_STATUS, sha256_hex
from quitclaim.usecases.uploads import (
    ScanRequest,
    ScanResult,
    as_placed,
    original_key,
    served_type,
)

if TYPE_CHECKING:
    from quitclaim.domain.ports import PublishedForms


class PlaceUpload:
    """Moves one decided upload's bytes; built per call from the scan's collaborators."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: ObjectStore,
        assets: AssetRepository,
        clock: Clock,
        published_forms: PublishedForms,
    ) -> None:
        self._settings = settings
        self._published_forms = published_forms
        self._store = store
        self._assets = assets
        self._clock = clock

    def complete(
        self,
        record: AssetRecord,
        request: ScanRequest,
        *,
        duplicate: bool,
        published: bytes | None = None,
    ) -> ScanResult:
        """Put the bytes where the record says, keep the original, then remove the upload.

        ``published``: the scanned published form, when this delivery has it in
        memory; a redelivery rebuilds it from the upload and checks it against
        the recorded SHA-256 before placing it.
        """
        result = ScanResult(
            record.asset_id,
            record.status,
            record.reasons,
            duplicate=duplicate,
            dest_bucket=record.dest_bucket,
            dest_key=record.dest_key,
            clearance=record.clearance,
        )
        if record.placed_at is not None or record.status is AssetStatus.HELD:
            return result
        source = self._store.head(request.bucket, request.key, request.version_id)
        if source is not None:
            self._place(record, source, published)
            self._store.delete(request.bucket, request.key, source.version_id)
            record = self.follow_redecision(record)
            result = as_placed(result, record)
        else:
            record, result = self._resume(record, result)
        self._assets.mark_placed(record.tenant, record.asset_id, self._clock.now())
        return result

    def _place(self, record: AssetRecord, source: ObjectInfo, published: bytes | None) -> None:
        """Copy the upload (its published form) where the record says, and keep its original."""
        placed = self._store.head(record.dest_bucket, record.dest_key)
        if placed is None or placed.metadata.get(META_ASSET_ID) != record.asset_id:
            if record.published_sha256 is None:
                # Rejected (or decided before published forms): the upload as it is.
                self._store.copy(
                    replace(source, content_type=served_type(source.content_type)),
                    record.dest_bucket,
                    record.dest_key,
                    {META_ASSET_ID: record.asset_id, META_STATUS: record.status.value},
                )
            else:
                self.place_published(record, source, published)
        if record.published_sha256 is not None:
            # The upload's own bytes, for the record: private, never published.
            self._store.copy(
                source,
                self._settings.quarantine_bucket,
                original_key(self._settings, record.tenant, record.asset_id),
                {META_ASSET_ID: record.asset_id},
            )

    def _resume(self, record: AssetRecord, result: ScanResult) -> tuple[AssetRecord, ScanResult]:
        """The upload is gone already: finish what an earlier delivery left undone."""
        if record.status in (AssetStatus.APPROVED, AssetStatus.QUARANTINED):
            # An earlier delivery copied and deleted the upload, then died
            # before following a re-decision made meanwhile: its copy may
            # sit in the other place (a withdrawn image in the library).
            # Finish that move now (tests/integration/test_races_on_stack.py).
            s = self._settings
            other = (
                s.quarantine_bucket if record.dest_bucket == s.library_bucket else s.library_bucket
            )
            record = self.follow_redecision(replace(record, dest_bucket=other))
            result = as_placed(result, record)
        if self._store.head(record.dest_bucket, record.dest_key) is None:
            # Someone removed the upload after we recorded it; say so loudly.
            logger.error("upload gone before placement", asset_id=record.asset_id)
            count("PlacementSourceMissing")
        return record, result

    def place_published(
        self, record: AssetRecord, source: ObjectInfo, published: bytes | None
    ) -> None:
        """Write the scanned published form where the record says (library or quarantine)."""
        if published is None:
            data = self._store.read(source.bucket, source.key, source.version_id)
            s = self._settings
            published = self._published_forms.published_form(
                data, max_pixels=s.max_pixels, max_frames=s.max_frames
            )
        if sha256_hex(published) != record.published_sha256:
            # The same upload gave other bytes than those scanned (a changed
            # published_form between two deliveries): place nothing unscanned.
            count("PublishedFormChanged")
            raise RuntimeError("the published form differs from the one scanned")
        self._store.write(
            record.dest_bucket,
            record.dest_key,
            published,
            {META_ASSET_ID: record.asset_id, META_STATUS: record.status.value},
            # A re-encoded HEIF/AVIF/TIFF is served as what it now is (docs/formats.md).
            content_type=self._published_forms.reencoded_type(published, source.content_type)
            or served_type(source.content_type),
            tags=clearance_tags(record.asset_id, record.clearance),
        )

    def follow_redecision(self, placed: AssetRecord) -> AssetRecord:
        """After copying, re-read the record: a re-decision may have moved it meanwhile.

        A recheck that ran before our copy found no bytes to move; it still
        wrote its decision, which we read here and honour.
        """
        latest = self._assets.get(placed.tenant, placed.asset_id)
        if latest is None or (latest.dest_bucket, latest.dest_key) == (
            placed.dest_bucket,
            placed.dest_key,
        ):
            return placed
        here = self._store.head(placed.dest_bucket, placed.dest_key)
        if here is not None and here.metadata.get(META_ASSET_ID) == placed.asset_id:
            if latest.dest_bucket:
                self._store.copy(
                    here,
                    latest.dest_bucket,
                    latest.dest_key,
                    {META_ASSET_ID: latest.asset_id, META_STATUS: latest.status.value},
                    clearance_tags(latest.asset_id, latest.clearance),
                )
            self._store.delete(placed.dest_bucket, placed.dest_key, here.version_id)
        return latest
