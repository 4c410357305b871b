"""The decision machinery every use-case that decides an asset shares.

Scanning an upload, redacting, reviewing and re-checking all decide assets;
they depend on this module and never on each other. Here:

- the decision history line (``history_entry``) and the faces as recorded
  (``face_records``), the reviewer's justification (``justified``);
- the gate decided again from the recorded faces (``redecided_clearance``),
  no re-scan and no biometrics needed;
- ``Placement``: moving an asset's bytes to where its decision says, in the
  safe order;
- ``Redecider``: one asset decided again with the consents valid now, its
  record and bytes moved, audited and announced (retried on a lost race).

Placement's order. Publishing (into the library): the approving record is
written first, then the bytes move, so nothing is ever in the library
without a decision saying so. Withdrawing (out of the library): the bytes
move first, then the record, so a crash in between leaves the image out of
the library (the safe side); the next re-decision finds the bytes already
moved and only writes the record.

Reachable (I1): a decision that publishes is written in one transaction with
the appearance rows of every subject in it, so whatever reaches the library
can be found by a withdrawal or an expiry (``reach``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from quitclaim.domain.clearance import Clearance, channel_summary, clearance_tags, decide_channels
from quitclaim.domain.errors import Conflict, ValidationFailed
from quitclaim.domain.models import (
    AssetStatus,
    Box,
    Consent,
    Decision,
    FaceMatch,
    Reason,
    ScanMode,
    TenantPolicy,
)
from quitclaim.domain.ports import (
    AssetRepository,
    Clock,
    ConsentRepository,
    EventPublisher,
    ObjectStore,
)
from quitclaim.domain.records import AssetRecord, FaceRecord
from quitclaim.observability import audit, count, logger

if TYPE_CHECKING:
    # A type only: the engine's port, which would load numpy at run time.
    from quitclaim.domain.ports import FaceObservation

META_ASSET_ID = "quitclaim-asset-id"
META_STATUS = "quitclaim-status"
# Statuses whose bytes sit in the library or quarantine, tagged with their clearance.
_PLACED = frozenset({AssetStatus.APPROVED, AssetStatus.QUARANTINED})
# Statuses a consent change can move between; rejected and deleted stay put.
REDECIDABLE = frozenset({AssetStatus.APPROVED, AssetStatus.QUARANTINED})
MIN_JUSTIFICATION = 3
# An event for the outbox: (type, tenant, payload).
Event = tuple[str, str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Change:
    asset_id: str
    before: AssetStatus
    after: AssetStatus
    reasons: tuple[str, ...]


def justified(text: str) -> str:
    """The reviewer's reason for an action, required (``ValidationFailed`` otherwise)."""
    text = (text or "").strip()
    if len(text) < MIN_JUSTIFICATION:
        raise ValidationFailed("a justification is required", field="justification")
    return text


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


def face_records(
    decision: Decision, observations: Sequence[FaceObservation]
) -> tuple[FaceRecord, ...]:
    """The decided faces as recorded: boxes, frames, ids, distances; no encodings."""
    return tuple(
        FaceRecord(
            box=fd.face.box.as_list(),
            frame=obs.frame,
            identifiable=fd.face.identifiable,
            subject_id=fd.face.subject_id,
            distance=None if fd.face.distance is None else round(fd.face.distance, 4),
            consent_id=fd.consent_id,
            verdict=fd.verdict.value if fd.verdict else None,
            reason=fd.reason.value if fd.reason else None,
        )
        for fd, obs in zip(decision.faces, observations, strict=True)
    )


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


def waived_reasons(record: AssetRecord) -> frozenset[Reason]:
    """Reasons two reviewers released this asset despite (see Review.release)."""
    released = record.review.get("released") or {}
    return frozenset(Reason(r) for r in released.get("waived", ()))


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


class Redecider:
    """Decides one asset again with the consents valid now, and applies the outcome.

    Shared by every use-case that re-decides: a consent change (``Recheck``),
    a reviewer's release or reassignment, a freshly published redaction.
    """

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
    ) -> None:
        self._events = events
        self._library = library_bucket
        self._quarantine = quarantine_bucket
        self._assets = assets
        self._consents = consents
        self._placement = placement
        self._clock = clock

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
            if record is None or record.status not in REDECIDABLE:
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
