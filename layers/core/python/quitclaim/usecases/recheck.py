"""recheck_subject: re-decide every asset a subject appears in, after a consent change.

Uses the appearances index (never a scan of all assets) and the faces the
asset record already holds (no re-scan, no biometrics needed).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from quitclaim.domain.errors import Conflict
from quitclaim.domain.ports import AssetRepository, Clock, ConsentRepository, EventPublisher
from quitclaim.domain.records import AssetRecord
from quitclaim.domain.rights import SUBJECT_ERASED
from quitclaim.observability import count
from quitclaim.usecases.asset_decisions import (
    REDECIDABLE,
    Change,
    Event,
    Placement,
    Redecider,
    history_entry,
)

# Review state that vouches for the faces as they were: void once one changes.
_WAIVERS = ("released", "pending_release", "pending_reassign")
# Assets re-decided per round of reads: one BatchGetItem holds 100 keys.
CHUNK = 100
# Assets of a chunk re-decided at once: each move waits on S3 and DynamoDB
# (five requests in a row). Eight keep the requests of one chunk flowing while
# staying inside botocore's pool of ten connections per client (PynamoDB's too).
WORKERS = 8


def _unnamed(history: tuple[dict[str, Any], ...], subject_id: str) -> tuple[dict[str, Any], ...]:
    """The history without the erased person's id (reassignments record it)."""

    def scrub(entry: dict[str, Any]) -> dict[str, Any]:
        out = dict(entry)
        if out.get("subject_id") == subject_id:
            out["subject_id"] = None
        original = out.get("original")
        if isinstance(original, dict) and original.get("subject_id") == subject_id:
            out["original"] = {**original, "subject_id": None, "consent_id": None}
        return out

    return tuple(scrub(h) for h in history)


class Recheck(Redecider):
    """A subject's assets decided again (a consent change), or without them (erasure)."""

    def __init__(
        self,
        *,
        assets: AssetRepository,
        consents: ConsentRepository,
        placement: Placement,
        clock: Clock,
        library_bucket: str,
        quarantine_bucket: str,
        events: EventPublisher | None = None,
        chunk: int = CHUNK,
        workers: int = WORKERS,
    ) -> None:
        """``chunk``: assets per round of batched reads; 1 re-reads per asset (the old path).

        ``workers``: assets of a chunk re-decided at once (1: one after another).
        """
        super().__init__(
            assets=assets,
            consents=consents,
            placement=placement,
            clock=clock,
            library_bucket=library_bucket,
            quarantine_bucket=quarantine_bucket,
            events=events,
        )
        self.chunk = chunk
        self.workers = workers

    def recheck_subject(self, tenant: str, subject_id: str, *, actor: str) -> list[Change]:
        """Re-decide each asset of the subject; move those whose outcome changed."""
        changes: list[Change] = []
        asset_ids = self._assets.appearances(tenant, subject_id)
        if self.chunk <= 1:
            # The path before issue 27: every asset reads its record and consents.
            for asset_id in asset_ids:
                change = self.redecide(tenant, asset_id, actor=actor, cause=subject_id)
                if change is not None:
                    changes.append(change)
        else:
            for start in range(0, len(asset_ids), self.chunk):
                chunk = asset_ids[start : start + self.chunk]
                changes.extend(self._redecide_chunk(tenant, chunk, actor=actor, cause=subject_id))
        count("AssetsRechecked", len(changes))
        return changes

    def _redecide_chunk(
        self, tenant: str, asset_ids: Sequence[str], *, actor: str, cause: str
    ) -> list[Change]:
        """Re-decide many assets from one batched read of their records, then of the consents.

        The order is the point: each decision uses consents read *after* its
        record, as ``redecide`` does one asset at a time, and writes only if
        the record is still the version read. A consent change racing the
        chunk is then either in the consents read, or its own re-decision
        reads the asset after that change and meets our conditional write
        (whichever writes second re-reads and decides again). Events go to
        the outbox ten to a request once the chunk is done (also when it
        fails halfway: the changes made are announced).
        """
        records = self._assets.get_many(tenant, asset_ids)
        subjects = sorted(
            {s for r in records.values() if r.status in REDECIDABLE for s in r.subject_ids}
        )
        consents = self._consents.for_subjects(tenant, subjects) if subjects else {}
        outbox: list[Event] = []

        def one(asset_id: str) -> Change | None:
            read = (records.get(asset_id), consents)
            return self.redecide(
                tenant, asset_id, actor=actor, cause=cause, read=read, outbox=outbox
            )

        try:
            if self.workers <= 1 or len(asset_ids) < 2:
                results = [one(asset_id) for asset_id in asset_ids]
            else:
                # Each asset is its own unit, as it would be in concurrent
                # Lambdas (the races they run are the ones tests/integration
                # proves). Each task runs in a copy of this context, so its
                # audit events join this work item's block.
                with ThreadPoolExecutor(self.workers, thread_name_prefix="recheck") as pool:
                    futures = [
                        pool.submit(contextvars.copy_context().run, one, asset_id)
                        for asset_id in asset_ids
                    ]
                results = [future.result() for future in futures]
        finally:
            self._publish(outbox)
        return [change for change in results if change is not None]

    def forget_subject(
        self, tenant: str, subject_id: str, asset_ids: Iterable[str], *, actor: str
    ) -> list[Change]:
        """Erasure: in each asset the person's faces become unknown, then it is decided again.

        Their faces keep box and frame, lose subject, distance and consent; a
        release waiver two reviewers gave is dropped (it was given for the
        faces as they were), so every image they were in leaves the library.
        Their appearance rows go. Assets that cannot change place (rejected,
        deleted) only lose the attribution.
        """
        changes: list[Change] = []
        for asset_id in sorted(set(asset_ids)):
            change = self._forget_in(tenant, subject_id, asset_id, actor=actor)
            if change is not None:
                changes.append(change)
            self._assets.remove_appearance(tenant, subject_id, asset_id)
        count("AssetsRedecidedForErasure", len(changes))
        return changes

    def _forget_in(
        self, tenant: str, subject_id: str, asset_id: str, *, actor: str
    ) -> Change | None:
        for _ in range(5):
            record = self._assets.get(tenant, asset_id)
            if record is None:
                return None
            if subject_id not in record.subject_ids:
                if self._forget_mentions(record, subject_id):
                    return None
                continue
            indices = [i for i, f in enumerate(record.faces) if f.subject_id == subject_id]
            faces = tuple(
                replace(
                    f, subject_id=None, distance=None, consent_id=None, verdict=None, reason=None
                )
                if i in indices
                else f
                for i, f in enumerate(record.faces)
            )
            review = {k: v for k, v in record.review.items() if k not in _WAIVERS}
            history = _unnamed(record.history, subject_id)
            unattributed = replace(record, faces=faces, review=review, history=history)
            if record.status in REDECIDABLE:
                after = self.decided(unattributed, action=SUBJECT_ERASED, actor=actor)
            else:
                now = self._clock.now()
                after = replace(
                    unattributed,
                    history=(
                        *record.history,
                        history_entry(now, SUBJECT_ERASED, actor, unattributed),
                    ),
                )
            after = replace(
                after, history=(*after.history[:-1], {**after.history[-1], "faces": indices})
            )
            try:
                self._placement.transition(record, after)
            except Conflict:
                continue
            return self._announce(record, after, actor=actor, cause=subject_id)
        raise Conflict(f"asset {asset_id} kept changing; erasure must be run again")

    def _forget_mentions(self, record: AssetRecord, subject_id: str) -> bool:
        """A face reassigned away from the person still names them as its original match.

        False when the record changed meanwhile (read it again and retry).
        """
        history = _unnamed(record.history, subject_id)
        pending = record.review.get("pending_reassign") or {}
        if history == record.history and subject_id not in (
            pending.get("subject_id"),
            (pending.get("original") or {}).get("subject_id"),
        ):
            return True
        review = {k: v for k, v in record.review.items() if k != "pending_reassign"}
        try:
            self._placement.transition(record, replace(record, history=history, review=review))
        except Conflict:
            return False
        return True
