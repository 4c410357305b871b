"""The review queue: release (two reviewers), keep, reassign, delete.

Every action needs a justification and lands in the asset's history and the
audit trail. Releasing publishes an image despite the gate, so no single
person can do it: one reviewer asks, a *different* reviewer confirms.
"""

from __future__ import annotations

from dataclasses import replace

from quitclaim.domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from quitclaim.domain.models import AssetStatus
from quitclaim.domain.ports import AssetRepository, Clock, EventPublisher, SubjectRepository
from quitclaim.domain.records import AssetRecord
from quitclaim.domain.registry import Principal
from quitclaim.observability import audit
from quitclaim.usecases.placement import Placement, history_entry
from quitclaim.usecases.recheck import Recheck

MIN_JUSTIFICATION = 3


def _justified(text: str) -> str:
    text = (text or "").strip()
    if len(text) < MIN_JUSTIFICATION:
        raise ValidationFailed("a justification is required", field="justification")
    return text


class Review:
    def __init__(
        self,
        *,
        assets: AssetRepository,
        subjects: SubjectRepository,
        placement: Placement,
        recheck: Recheck,
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
        why = _justified(justification)
        record = self.asset(who.tenant, asset_id)
        if record.status is not AssetStatus.QUARANTINED:
            raise Conflict(f"only quarantined assets can be released (this one is {record.status})")
        now = self._clock.now()
        pending = record.review.get("pending_release")
        if pending is None:
            review = {
                **record.review,
                "pending_release": {"by": who.key_id, "at": now.isoformat(), "justification": why},
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
            self._audit(who, asset_id, "asset.release_requested", record)
            return after
        if pending["by"] == who.key_id:
            raise Forbidden("a second reviewer must confirm this release", code="same_reviewer")
        waived = sorted(set(record.reasons))
        review = {k: v for k, v in record.review.items() if k != "pending_release"}
        review["released"] = {
            "by": [pending["by"], who.key_id],
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
        published = replace(
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
                ),
            ),
        )
        self._placement.transition(record, published)
        self._audit(who, asset_id, "asset.released", published)
        if self._events is not None:
            self._events.publish(
                "asset.released",
                who.tenant,
                {"asset_id": asset_id, "path": record.path, "waived": waived},
            )
        return published

    def keep(self, who: Principal, asset_id: str, justification: str) -> AssetRecord:
        why = _justified(justification)
        record = self.asset(who.tenant, asset_id)
        if record.status is not AssetStatus.QUARANTINED:
            raise Conflict("only quarantined assets can be kept in quarantine")
        now = self._clock.now()
        review = {k: v for k, v in record.review.items() if k != "pending_release"}
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
        """A face is someone else (or an unknown person): fix it and decide again."""
        why = _justified(justification)
        record = self.asset(who.tenant, asset_id)
        if record.status not in (AssetStatus.QUARANTINED, AssetStatus.APPROVED):
            raise Conflict(f"a {record.status} asset cannot be re-decided")
        if not 0 <= face_index < len(record.faces):
            raise ValidationFailed(
                f"face_index must be between 0 and {len(record.faces) - 1}", field="face_index"
            )
        if subject_id is not None and not self._subjects.exists(who.tenant, subject_id):
            raise NotFound(f"subject {subject_id} not found")
        old = record.faces[face_index]
        faces = list(record.faces)
        faces[face_index] = replace(old, subject_id=subject_id, distance=None, identifiable=True)
        changed = replace(record, faces=tuple(faces))
        after = self._recheck.decided(changed, action="reassigned", actor=who.key_id)
        after = replace(
            after,
            history=(
                *after.history[:-1],
                {**after.history[-1], "justification": why, "face_index": face_index},
            ),
        )
        # The new person's appearance rows are written with the decision (Placement).
        self._placement.transition(record, after)
        if old.subject_id and old.subject_id not in after.subject_ids:
            self._assets.remove_appearance(who.tenant, old.subject_id, asset_id)
        self._audit(who, asset_id, "asset.reassigned", after)
        return after

    def delete(self, who: Principal, asset_id: str, justification: str) -> AssetRecord:
        """Remove the image for good; the record stays as a tombstone with the reason."""
        why = _justified(justification)
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
    def _audit(who: Principal, asset_id: str, action: str, record: AssetRecord) -> None:
        audit(
            action,
            tenant=who.tenant,
            asset_id=asset_id,
            status=record.status.value,
            reasons=list(record.reasons),
            source=who.key_id,
        )
