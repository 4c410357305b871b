"""recheck_subject: re-decide every asset a subject appears in, after a consent change.

Uses the appearances index (never a scan of all assets) and the faces the
asset record already holds (no re-scan, no biometrics needed).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from quitclaim.domain.clearance import Clearance, channel_summary, decide_channels
from quitclaim.domain.errors import Conflict
from quitclaim.domain.models import (
    AssetStatus,
    Box,
    Consent,
    FaceMatch,
    Reason,
    ScanMode,
    TenantPolicy,
)
from quitclaim.domain.ports import AssetRepository, Clock, ConsentRepository, EventPublisher
from quitclaim.domain.records import AssetRecord
from quitclaim.domain.rights import SUBJECT_ERASED
from quitclaim.observability import audit, count
from quitclaim.usecases.placement import Placement, history_entry

# Statuses a consent change can move between; rejected and deleted stay put.
_REDECIDABLE = {AssetStatus.APPROVED, AssetStatus.QUARANTINED}
# Review state that vouches for the faces as they were: void once one changes.
_WAIVERS = ("released", "pending_release", "pending_reassign")
# Assets re-decided per round of reads: one BatchGetItem holds 100 keys.
CHUNK = 100
# Assets of a chunk re-decided at once: each move waits on S3 and DynamoDB.
WORKERS = 4
# An event for the outbox: (type, tenant, payload).
Event = tuple[str, str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Change:
    asset_id: str
    before: AssetStatus
    after: AssetStatus
    reasons: tuple[str, ...]


def faces_of(record: AssetRecord) -> list[FaceMatch]:
    return [
        FaceMatch(
            Box(*f.box),
            f.subject_id,
            f.distance,
            identifiable=f.identifiable,
            matchable=f.reason != Reason.FACE_NOT_MATCHABLE,
        )
        for f in record.faces
    ]


def unknown_face_reason(policy: TenantPolicy, mode: ScanMode) -> Reason:
    """What an unknown face blocks as (docs/retention.md, ``unknown_face_policy``).

    ``quarantine`` (the default): ``unknown_face``, a bystander nobody can ask;
    retention deletes an image held only for that after the tenant's days.
    ``review``: ``review_required``, a person must look; retention never
    deletes it by time. Detect-only scans always ask for review.
    """
    if mode is ScanMode.RECOGNIZE and policy.unknown_face_policy == "quarantine":
        return Reason.UNKNOWN_FACE
    return Reason.REVIEW_REQUIRED


def redecided_clearance(
    record: AssetRecord,
    consents_by_subject: Mapping[str, Sequence[Consent]],
    now: datetime,
    waived: frozenset[Reason] = frozenset(),
) -> Clearance:
    """Decide the recorded faces again, for the channels the record was decided for.

    A record from before clearance per channel is decided for its one
    purpose, which is then its one publishing purpose (the same decision as
    ``redecide_recorded``). Unknown faces keep the reason they were decided
    with (``unknown_face_reason``): a re-decision does not turn a face held
    for review into a bystander retention would delete.
    """
    recorded = record.clearance or {}
    purposes = tuple(recorded.get("channels") or ()) or (record.purpose,)
    publishing = tuple(recorded.get("publishing") or ()) or (record.purpose,)
    review = any(
        f.subject_id is None and f.reason == Reason.REVIEW_REQUIRED.value for f in record.faces
    )
    unknown = Reason.REVIEW_REQUIRED if review else Reason.UNKNOWN_FACE
    return decide_channels(
        faces_of(record), consents_by_subject, purposes, publishing, now, unknown, waived
    )


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


def waived_reasons(record: AssetRecord) -> frozenset[Reason]:
    """Reasons two reviewers released this asset despite (see Review.release)."""
    released = record.review.get("released") or {}
    return frozenset(Reason(r) for r in released.get("waived", ()))


class Recheck:
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
        self.chunk = chunk
        self.workers = workers
        self._events = events
        self._library = library_bucket
        self._quarantine = quarantine_bucket
        self._assets = assets
        self._consents = consents
        self._placement = placement
        self._clock = clock

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
            {s for r in records.values() if r.status in _REDECIDABLE for s in r.subject_ids}
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

    def redecide(
        self,
        tenant: str,
        asset_id: str,
        *,
        actor: str,
        cause: str,
        read: tuple[AssetRecord | None, Mapping[str, Sequence[Consent]]] | None = None,
        outbox: list[Event] | None = None,
    ) -> Change | None:
        """Re-decide one asset with the consents valid *now*; retried on a lost race.

        ``read``: the record and consents a batched read already holds (their
        consents read after the record); used for the first attempt only, a
        retry reads both again.
        """
        for _ in range(5):
            consents: Mapping[str, Sequence[Consent]] | None = None
            if read is not None:
                (record, consents), read = read, None
            else:
                record = self._assets.get(tenant, asset_id)
            if record is None or record.status not in _REDECIDABLE:
                return None
            after = self.decided(record, consents=consents)
            if (after.status, after.reasons) == (record.status, record.reasons):
                if record.clearance and after.clearance != record.clearance:
                    # Same place, another clearance (a channel, the expiry): the
                    # record and the copy's tags follow it.
                    try:
                        self._placement.transition(record, after)
                    except Conflict:
                        continue
                    self._announce(record, after, actor=actor, cause=cause, outbox=outbox)
                    return None
                # Nothing to decide; finish a move an earlier run died in.
                other = self._quarantine if record.dest_bucket == self._library else self._library
                self._placement.settle(record, other)
                return None
            try:
                self._placement.transition(record, after)
            except Conflict:
                continue  # someone else changed it; decide again on the new state
            return self._announce(record, after, actor=actor, cause=cause, outbox=outbox)
        raise Conflict(f"asset {asset_id} kept changing; re-decision abandoned for now")

    def _publish(self, outbox: list[Event]) -> None:
        if self._events is None or not outbox:
            return
        many = getattr(self._events, "publish_many", None)
        if many is not None:
            many(outbox)
            return
        for event in outbox:
            self._events.publish(*event)

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
            if record.status in _REDECIDABLE:
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

    def _announce(
        self,
        record: AssetRecord,
        after: AssetRecord,
        *,
        actor: str,
        cause: str,
        outbox: list[Event] | None = None,
    ) -> Change:
        """Audit a re-decision and tell the tenant's systems (ids only)."""
        audit(
            "asset.redecided",
            tenant=record.tenant,
            asset_id=record.asset_id,
            status=after.status.value,
            reasons=list(after.reasons),
            clearance=after.clearance,
            subject_id=cause,
            source=actor,
        )
        payload = {
            "asset_id": record.asset_id,
            "path": record.path,
            "reasons": list(after.reasons),
            **channel_summary(after.clearance),
        }
        event: str | None = None
        if (after.status, after.reasons) != (record.status, record.reasons):
            withdrawn = record.status is AssetStatus.APPROVED
            event = "asset.withdrawn" if withdrawn else f"asset.{after.status.value}"
        elif after.clearance != record.clearance:
            event = "asset.clearance_changed"
        if event is not None and self._events is not None:
            if outbox is not None:
                outbox.append((event, record.tenant, payload))
            else:
                self._events.publish(event, record.tenant, payload)
        return Change(record.asset_id, record.status, after.status, after.reasons)

    def decided(
        self,
        record: AssetRecord,
        *,
        action: str = "redecided",
        actor: str = "system",
        consents: Mapping[str, Sequence[Consent]] | None = None,
    ) -> AssetRecord:
        """The record as the gate would decide it now (not persisted).

        ``consents``: the subjects' consents, read after ``record`` (else read here).
        """
        now = self._clock.now()
        if consents is None:
            consents = self._consents.for_subjects(record.tenant, list(record.subject_ids))
        else:
            consents = {s: consents.get(s, ()) for s in sorted(set(record.subject_ids))}
        clearance = redecided_clearance(record, consents, now, waived_reasons(record))
        decision = clearance.gate
        faces = tuple(
            replace(
                old,
                consent_id=fd.consent_id,
                verdict=fd.verdict.value if fd.verdict else None,
                reason=fd.reason.value if fd.reason else None,
            )
            for old, fd in zip(record.faces, decision.faces, strict=True)
        )
        approved = decision.status is AssetStatus.APPROVED
        after = replace(
            record,
            status=decision.status,
            reasons=tuple(r.value for r in decision.reasons),
            faces=faces,
            dest_bucket=self._library if approved else self._quarantine,
            decided_at=now,
            # A record from before clearance per channel keeps none (nothing to tag).
            clearance=clearance.as_record() if record.clearance else {},
        )
        return replace(after, history=(*record.history, history_entry(now, action, actor, after)))
