"""The review queue: release and reassign (two people), keep, delete.

Every action needs a justification and lands in the asset's history and the
audit trail. Releasing publishes an image despite the gate, so no single
person can do it: one reviewer asks, a *different person* confirms
(domain/four_eyes.py; one person's many keys count once). A reassignment
whose re-decision would publish (or keep published) the image is asked for
and confirmed the same way; one that holds it applies at once.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from quitclaim.domain.clearance import channel_summary
from quitclaim.domain.errors import Conflict, NotFound, ValidationFailed
from quitclaim.domain.four_eyes import confirm, person_of, requested_by
from quitclaim.domain.models import AssetStatus
from quitclaim.domain.ports import AssetRepository, Clock, EventPublisher, SubjectRepository
from quitclaim.domain.records import AssetRecord
from quitclaim.domain.registry import Principal
from quitclaim.observability import audit
from quitclaim.usecases.asset_decisions import Placement, Redecider, history_entry, justified

# Requests waiting for a second person; keeping an asset in quarantine drops them.
PENDING = ("pending_release", "pending_reassign", "pending_redaction")


class Review:
    def __init__(
        self,
        *,
        assets: AssetRepository,
        subjects: SubjectRepository,
        placement: Placement,
        recheck: Redecider,
        clock: Clock,
        library_bucket: str,
        events: EventPublisher | None = None,
    ) -> None:
        self._events = events
        self._assets = assets
        self._subjects = subjects
        self._placement = placement
        self._recheck = recheck
        self._clock = clock
        self._library = library_bucket

    def asset(self, tenant: str, asset_id: str) -> AssetRecord:
        record = self._assets.get(tenant, asset_id)
        if record is None:
            raise NotFound(f"asset {asset_id} not found")
        return record

    def release(self, who: Principal, asset_id: str, justification: str) -> AssetRecord:
        """Ask for release, or confirm another reviewer's request and publish."""
        why = justified(justification)
        record = self.asset(who.tenant, asset_id)
        if record.status is not AssetStatus.QUARANTINED:
            raise Conflict(f"only quarantined assets can be released (this one is {record.status})")
        now = self._clock.now()
        pending = record.review.get("pending_release")
        if pending is None:
            return self._ask_release(who, record, why, now)
        people = confirm(pending, who, "release")
        published = self._released(who, record, pending, people, why, now)
        self._placement.transition(record, published)
        self._audit(who, asset_id, "asset.released", published, pending["by"], people)
        if self._events is not None:
            self._events.publish(
                "asset.released",
                who.tenant,
                {
                    "asset_id": asset_id,
                    "path": record.path,
                    "waived": sorted(set(record.reasons)),
                    **channel_summary(published.clearance),
                },
            )
        return published

    def _ask_release(
        self, who: Principal, record: AssetRecord, why: str, now: datetime
    ) -> AssetRecord:
        """The first reviewer's call: a request kept until a second person confirms."""
        review = {
            **record.review,
            "pending_release": requested_by(who, now.isoformat(), justification=why),
        }
        after = replace(
            record,
            review=review,
            history=(
                *record.history,
                history_entry(now, "release_requested", who.key_id, record, justification=why),
            ),
        )
        self._placement.transition(record, after)
        self._audit(who, record.asset_id, "asset.release_requested", record)
        return after

    def _released(
        self,
        who: Principal,
        record: AssetRecord,
        pending: dict[str, Any],
        people: list[str],
        why: str,
        now: datetime,
    ) -> AssetRecord:
        """The record as two reviewers release it (not persisted)."""
        waived = sorted(set(record.reasons))
        review = {k: v for k, v in record.review.items() if k != "pending_release"}
        review["released"] = {
            "by": [pending["by"], who.key_id],
            "people": people,
            "at": now.isoformat(),
            "waived": waived,
        }
        published = replace(
            record,
            status=AssetStatus.APPROVED,
            reasons=(),
            dest_bucket=self._library,
            review=review,
            decided_at=now,
        )
        if record.clearance:
            # Per channel too: the reasons two reviewers waived no longer hold a
            # channel back (docs/channels.md); the copy's tags say so.
            redone = self._recheck.decided(replace(record, review=review))
            published = replace(published, clearance=redone.clearance)
        return replace(
            published,
            history=(
                *record.history,
                history_entry(
                    now,
                    "released",
                    who.key_id,
                    published,
                    justification=why,
                    requested_by=pending["by"],
                    people=people,
                ),
            ),
        )

    def keep(self, who: Principal, asset_id: str, justification: str) -> AssetRecord:
        why = justified(justification)
        record = self.asset(who.tenant, asset_id)
        if record.status is not AssetStatus.QUARANTINED:
            raise Conflict("only quarantined assets can be kept in quarantine")
        now = self._clock.now()
        review = {k: v for k, v in record.review.items() if k not in PENDING}
        review["kept"] = {"by": who.key_id, "at": now.isoformat()}
        after = replace(
            record,
            review=review,
            history=(
                *record.history,
                history_entry(now, "kept", who.key_id, record, justification=why),
            ),
        )
        self._placement.transition(record, after)
        self._audit(who, asset_id, "asset.kept", after)
        return after

    def reassign(
        self,
        who: Principal,
        asset_id: str,
        face_index: int,
        subject_id: str | None,
        justification: str,
    ) -> AssetRecord:
        """A face is someone else (or an unknown person): fix it and decide again.

        When the new decision would have the image in the library, this is a
        request (kept as ``review.pending_reassign``, the record otherwise
        unchanged) until a second, different person asks for the same
        reassignment. The original match is recorded, and the person the face
        was attributed to keeps their appearance row (their rights requests
        still find the image).
        """
        why = justified(justification)
        record = self.asset(who.tenant, asset_id)
        changed, original = self._reassigned(who, record, face_index, subject_id)
        after = self._recheck.decided(changed, action="reassigned", actor=who.key_id)
        details: dict[str, Any] = {}
        if after.status is AssetStatus.APPROVED:
            pending = record.review.get("pending_reassign")
            proposal = {"face_index": face_index, "subject_id": subject_id}
            if pending is None or {k: pending.get(k) for k in proposal} != proposal:
                return self._ask_reassign(who, record, proposal, original, why)
            people = confirm(pending, who, "reassignment")
            details = {"requested_by": pending["by"], "people": people}
        after = replace(
            after,
            history=(
                *after.history[:-1],
                {
                    **after.history[-1],
                    "justification": why,
                    "face_index": face_index,
                    "original": original,
                    **details,
                },
            ),
        )
        # The new person's appearance rows are written with the decision (Placement).
        self._placement.transition(record, after)
        self._audit(
            who,
            asset_id,
            "asset.reassigned",
            after,
            details.get("requested_by"),
            details.get("people"),
        )
        return after

    def _reassigned(
        self, who: Principal, record: AssetRecord, face_index: int, subject_id: str | None
    ) -> tuple[AssetRecord, dict[str, Any]]:
        """The record with the face given to ``subject_id``, and the face's original match."""
        if record.status not in (AssetStatus.QUARANTINED, AssetStatus.APPROVED):
            raise Conflict(f"a {record.status} asset cannot be re-decided")
        if not 0 <= face_index < len(record.faces):
            raise ValidationFailed(
                f"face_index must be between 0 and {len(record.faces) - 1}", field="face_index"
            )
        if subject_id is not None and not self._subjects.exists(who.tenant, subject_id):
            raise NotFound(f"subject {subject_id} not found")
        old = record.faces[face_index]
        original = {
            "subject_id": old.subject_id,
            "distance": old.distance,
            "consent_id": old.consent_id,
            "verdict": old.verdict,
            "reason": old.reason,
        }
        faces = list(record.faces)
        faces[face_index] = replace(old, subject_id=subject_id, distance=None, identifiable=True)
        review = {k: v for k, v in record.review.items() if k != "pending_reassign"}
        return replace(record, faces=tuple(faces), review=review), original

    def _ask_reassign(
        self,
        who: Principal,
        record: AssetRecord,
        proposal: dict[str, Any],
        original: dict[str, Any],
        why: str,
    ) -> AssetRecord:
        """Keep a reassignment that would publish as a request for a second person."""
        now = self._clock.now()
        pending = requested_by(
            who, now.isoformat(), justification=why, original=original, **proposal
        )
        after = replace(
            record,
            review={**record.review, "pending_reassign": pending},
            history=(
                *record.history,
                history_entry(
                    now, "reassign_requested", who.key_id, record, justification=why, **proposal
                ),
            ),
        )
        self._placement.transition(record, after)
        self._audit(who, record.asset_id, "asset.reassign_requested", after)
        return after

    def delete(self, who: Principal, asset_id: str, justification: str) -> AssetRecord:
        """Remove the image for good; the record stays as a tombstone with the reason."""
        why = justified(justification)
        record = self.asset(who.tenant, asset_id)
        if record.status is AssetStatus.DELETED:
            return record
        if record.status is AssetStatus.HELD:
            # Not scanned yet: its bytes are still the upload, which only ingest moves.
            raise Conflict("a held upload is decided when the quota allows", code="held")
        now = self._clock.now()
        after = replace(
            record,
            status=AssetStatus.DELETED,
            reasons=(),
            dest_bucket="",
            dest_key="",
            decided_at=now,
        )
        after = replace(
            after,
            history=(
                *record.history,
                history_entry(now, "deleted", who.key_id, after, justification=why),
            ),
        )
        self._placement.transition(record, after)
        for sid in record.subject_ids:
            self._assets.remove_appearance(who.tenant, sid, asset_id)
        self._audit(who, asset_id, "asset.deleted", after)
        return after

    @staticmethod
    def _audit(
        who: Principal,
        asset_id: str,
        action: str,
        record: AssetRecord,
        requested: str | None = None,
        people: list[str] | None = None,
    ) -> None:
        """One audit event; a four-eyes action names the key that asked and both people."""
        four_eyes = {"requested_by": requested} if requested else {}
        audit(
            action,
            tenant=who.tenant,
            asset_id=asset_id,
            status=record.status.value,
            reasons=list(record.reasons),
            source=who.key_id,
            people=people or [person_of(who)],
            **four_eyes,
        )
