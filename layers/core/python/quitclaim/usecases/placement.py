"""Moving an asset's bytes to where its decision says, in the safe order.

Publishing (into the library): the approving record is written first, then the
bytes move, so nothing is ever in the library without a decision saying so.
Withdrawing (out of the library): the bytes move first, then the record, so a
crash in between leaves the image out of the library (the safe side); the next
re-decision finds the bytes already moved and only writes the record.

Reachable (I1): a decision that publishes is written in one transaction with
the appearance rows of every subject in it, so whatever reaches the library
can be found by a withdrawal or an expiry (``reach``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from quitclaim.domain.clearance import clearance_tags
from quitclaim.domain.models import AssetStatus
from quitclaim.domain.ports import AssetRepository, Clock, ObjectStore
from quitclaim.domain.records import AssetRecord
from quitclaim.observability import count, logger

META_ASSET_ID = "quitclaim-asset-id"
META_STATUS = "quitclaim-status"
# Statuses whose bytes sit in the library or quarantine, tagged with their clearance.
_PLACED = frozenset({AssetStatus.APPROVED, AssetStatus.QUARANTINED})


def history_entry(
    at: datetime, action: str, actor: str, record: AssetRecord, **extra: Any
) -> dict[str, Any]:
    """One append-only line of an asset's decision history (ids only, no names)."""
    return {
        "at": at.isoformat(),
        "action": action,
        "actor": actor,
        "status": record.status.value,
        "reasons": list(record.reasons),
        **extra,
    }


def reach(before: AssetRecord, after: AssetRecord) -> tuple[str, ...]:
    """The subjects whose appearance rows go into the transaction that writes ``after``.

    Every subject of a decision that publishes (so nothing in the library is
    out of a withdrawal's reach, whatever an earlier write lost), and every
    subject of one that names a person it did not name before (a reassigned
    face: the new person's grant or withdrawal must find it too).
    """
    if after.status is AssetStatus.APPROVED or set(after.subject_ids) - set(before.subject_ids):
        return after.subject_ids
    return ()


class Placement:
    """Applies a new asset state: record and bytes, never out of step unsafely."""

    def __init__(
        self,
        *,
        store: ObjectStore,
        assets: AssetRepository,
        clock: Clock,
        originals: tuple[str, str] | None = None,
    ) -> None:
        """``originals``: (bucket, prefix) where scanned uploads' own bytes are kept."""
        self._store = store
        self._assets = assets
        self._clock = clock
        self._originals = originals

    def transition(self, before: AssetRecord, after: AssetRecord) -> AssetRecord:
        """Persist ``after`` (conditional on ``before.version``) and move the bytes."""
        after = replace(after, version=before.version + 1)
        rows = reach(before, after)
        same_place = (before.dest_bucket, before.dest_key) == (after.dest_bucket, after.dest_key)
        if same_place:
            if after.clearance != before.clearance and after.status in _PLACED:
                # Tags first: a crash before the record leaves the copy saying
                # what the next re-decision will record (a withdrawn channel
                # reads "held" as early as possible); a lost race re-tags.
                self._tag(after)
            self._assets.replace(after, before.version, appearances=rows)
        elif after.status is AssetStatus.APPROVED:
            self._assets.replace(after, before.version, appearances=rows)
            self._move(before, after)
        elif after.status is AssetStatus.DELETED:
            self._assets.replace(after, before.version)
            self._remove(before)
        else:
            self._move(before, after)
            self._assets.replace(after, before.version, appearances=rows)
            # Why look again: an ingest may have copied the bytes into the old
            # place after our move and before our record; it re-reads the
            # record after copying, we re-read the place after recording, so
            # one of us always sees the other (both stores are consistent).
            self._move(before, after, quiet=True)
        return after

    def settle(self, record: AssetRecord, elsewhere: str) -> None:
        """Finish a move an earlier run died in, as the record (just re-decided) says.

        Why: a move into the library writes the record, copies, then deletes
        the old copy. A function that dies between the last two leaves the
        image in both places, and its retry re-decides, finds nothing to
        change and would never finish the move (tests/integration/
        test_faults_on_stack.py, publish crash). Only this asset's own copy
        goes, and only when the place the record names holds it. One that
        died right after the record finds only the copy in ``elsewhere``:
        it is moved where the record says (the decision was just confirmed).
        """
        here = self._store.head(record.dest_bucket, record.dest_key)
        if here is None or here.metadata.get(META_ASSET_ID) != record.asset_id:
            if record.status in (AssetStatus.APPROVED, AssetStatus.QUARANTINED):
                self._move(replace(record, dest_bucket=elsewhere), record, quiet=True)
            return
        stale = self._store.head(elsewhere, record.dest_key)
        if stale is not None and stale.metadata.get(META_ASSET_ID) == record.asset_id:
            self._store.delete(elsewhere, record.dest_key, stale.version_id)
            logger.warning("stale copy of an asset removed", asset_id=record.asset_id)
            count("StaleCopyRemoved")

    def _tag(self, record: AssetRecord) -> None:
        """Write the record's clearance as the placed copy's tags (when the copy is its own)."""
        here = self._store.head(record.dest_bucket, record.dest_key)
        if here is not None and here.metadata.get(META_ASSET_ID) == record.asset_id:
            self._store.put_tags(
                record.dest_bucket,
                record.dest_key,
                clearance_tags(record.asset_id, record.clearance),
            )

    def _move(self, before: AssetRecord, after: AssetRecord, *, quiet: bool = False) -> None:
        source = self._store.head(before.dest_bucket, before.dest_key)
        if source is not None and source.metadata.get(META_ASSET_ID) == before.asset_id:
            self._store.copy(
                source,
                after.dest_bucket,
                after.dest_key,
                {META_ASSET_ID: after.asset_id, META_STATUS: after.status.value},
                clearance_tags(after.asset_id, after.clearance),
            )
            # Delete the exact version: a library version must not linger.
            self._store.delete(before.dest_bucket, before.dest_key, source.version_id)
            return
        if quiet:
            return
        placed = self._store.head(after.dest_bucket, after.dest_key)
        if placed is None or placed.metadata.get(META_ASSET_ID) != after.asset_id:
            logger.error("asset bytes not found where recorded", asset_id=after.asset_id)
            count("PlacementSourceMissing")

    def _remove(self, before: AssetRecord) -> None:
        source = self._store.head(before.dest_bucket, before.dest_key)
        if source is not None and source.metadata.get(META_ASSET_ID) == before.asset_id:
            self._store.delete(before.dest_bucket, before.dest_key, source.version_id)
        if self._originals is not None and before.published_sha256 is not None:
            # The upload's own bytes, kept privately beside the published form, go too.
            bucket, prefix = self._originals
            key = f"{prefix}{before.tenant}/{before.asset_id}"
            original = self._store.head(bucket, key)
            if original is not None and original.metadata.get(META_ASSET_ID) == before.asset_id:
                self._store.delete(bucket, key, original.version_id)
