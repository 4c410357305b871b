"""The conservation law: after the queues drain, every upload is in exactly one place.

For one tenant, ``ConservationCheck.check`` proves (or lists what breaks):

- ``unprocessed``: nothing is left under the uploads' ``incoming/<tenant>/``
  but the uploads held over the monthly quota (a ``held`` record names each);
- ``held``: each held upload is still where it was put (it is accounted for
  there until a release decides it);
- ``misplaced``: each decision's object is where its status says (library,
  quarantine, ``rejected/``; nowhere when deleted), and nowhere else;
- ``orphan``: no object in the library, quarantine, ``rejected/`` or
  ``originals/`` without the decision that put it there;
- ``original``: each scanned upload (a decision with a published SHA-256)
  keeps its own bytes at ``originals/<tenant>/<asset_id>`` in the quarantine
  bucket until it is deleted, and not after. An original is not a place: the
  upload's place is where its published form is (library or quarantine), so
  it still ends in exactly one place; ``originals`` counts them apart;
- ``published_bytes_differ``: every object in the library hashes to the
  SHA-256 its decision recorded for the bytes it scanned and published
  (docs/every-pixel.md); a replaced object, or one whose decision recorded
  none, is reported;
- ``tags_disagree``: every image in the library carries its decision's
  clearance per channel as object tags (one per channel, the earliest
  consent expiry, the asset id: domain/clearance.py), the tags a DAM reads;
  a decision from before clearance per channel is not checked;
- ``unconsented``: every image in the library was approved with a valid consent
  for each identifiable face (or released by two reviewers) and those consents
  still hold now (the expiry and withdrawal paths pull the rest);
- ``appearances_missing``: every image in the library has an appearance row
  for each subject its record names, the only way a withdrawal or an expiry
  finds it (I1, issue 19: otherwise it would stay published for ever);
- ``no_history``: no decision lacks its recorded history (the audit record);
- ``deleted``: a deleted asset (a reviewer's delete, or retention's: docs/retention.md)
  is an accounted-for end, not a loss: it is nowhere (``misplaced`` checks that),
  its original is gone (``original``), and (with the audit trail) a deletion by
  retention has its ``asset.deleted`` event in the chain; ``deleted`` counts them;
- ``unaudited`` / ``audit_chain`` (when the checker is given the audit trail):
  every decision's audit event is in the tenant's hash chain, and the chain
  verifies (usecases/audit_trail.py).

When one path was uploaded more than once, the latest decision is the one
whose object must exist; earlier ones are superseded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from quitclaim.domain.clearance import clearance_tags
from quitclaim.domain.consent import best_consent, consent_verdict
from quitclaim.domain.models import AssetStatus, Consent, ConsentVerdict
from quitclaim.domain.ports import (
    AssetRepository,
    AuditEvents,
    Clock,
    ConsentRepository,
    ListableObjectStore,
)
from quitclaim.domain.records import AssetRecord
from quitclaim.domain.retention import RETENTION_ACTOR

# The events that record a decision: a scan's, and a redacted variant's.
DECISION_ACTIONS = frozenset({"asset.decided", "asset.redacted"})
HOLD_ACTION = "asset.held"
DELETE_ACTION = "asset.deleted"


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str
    detail: str
    asset_id: str | None = None
    location: str | None = None


@dataclass(frozen=True, slots=True)
class ConservationReport:
    tenant: str
    checked_at: datetime
    decisions: int
    library: int
    quarantine: int
    rejected: int
    violations: tuple[Violation, ...] = field(default_factory=tuple)
    held: int = 0
    originals: int = 0
    deleted: int = 0

    @property
    def holds(self) -> bool:
        return not self.violations


@dataclass
class ConservationCheck:
    assets: AssetRepository
    consents: ConsentRepository
    store: ListableObjectStore
    clock: Clock
    uploads_bucket: str
    library_bucket: str
    quarantine_bucket: str
    incoming_prefix: str = "incoming/"
    rejected_prefix: str = "rejected/"
    originals_prefix: str = "originals/"
    audit: AuditEvents | None = None
    # Library objects read (bytes and tags) this many at a time: each read
    # waits on the store, not the CPU. 1: one after another.
    reads: int = 8

    def check(self, tenant: str) -> ConservationReport:
        now = self.clock.now()
        records = list(self._records(tenant))
        latest = _latest_per_path(records)
        held = {r.source_key: r for r in latest if r.status is AssetStatus.HELD}
        found = self._uploads(tenant, held)
        placed = {
            "library": set(self.store.keys(self.library_bucket, f"{tenant}/")),
            "quarantine": set(self.store.keys(self.quarantine_bucket, f"{tenant}/")),
            "rejected": set(
                self.store.keys(self.quarantine_bucket, f"{self.rejected_prefix}{tenant}/")
            ),
        }
        found.extend(self._placement(records, latest, placed))
        found.extend(self._reachable(tenant, records, placed["library"]))
        originals = set(
            self.store.keys(self.quarantine_bucket, f"{self.originals_prefix}{tenant}/")
        )
        found.extend(self._originals(records, originals))
        published = [
            r
            for r in latest
            if r.status is AssetStatus.APPROVED and r.dest_key in placed["library"]
        ]
        for read in self._each(published, lambda r: self._published_bytes(r) + self._tagged(r)):
            found.extend(read)
        found.extend(self._decisions(records, now))
        if self.audit is not None:
            found.extend(self._audited(tenant, records))
        return ConservationReport(
            tenant=tenant,
            checked_at=now,
            decisions=len(records),
            library=len(placed["library"]),
            quarantine=len(placed["quarantine"]),
            rejected=len(placed["rejected"]),
            violations=tuple(found),
            held=len(held),
            originals=len(originals),
            deleted=sum(1 for r in records if r.status is AssetStatus.DELETED),
        )

    def _uploads(self, tenant: str, held: dict[str, AssetRecord]) -> list[Violation]:
        """Every waiting upload is held by a decision, and every held one still waits."""
        found: list[Violation] = []
        waiting = set(self.store.keys(self.uploads_bucket, f"{self.incoming_prefix}{tenant}/"))
        for key in sorted(waiting - held.keys()):
            found.append(Violation("unprocessed", "an upload was never decided", location=key))
        for key, record in sorted(held.items()):
            if key not in waiting:
                found.append(_at(record, "held", "a held upload is gone from the uploads", key))
        return found

    def _placement(
        self, records: list[AssetRecord], latest: list[AssetRecord], placed: dict[str, set[str]]
    ) -> list[Violation]:
        """Each decision's object is where it says and nowhere else; no object lacks one."""
        found: list[Violation] = []
        expected: dict[str, set[str]] = {name: set() for name in placed}
        for record in latest:
            where = _place(record, self.rejected_prefix)
            if where is not None:
                expected[where].add(record.dest_key)
        for record in latest:
            where = _place(record, self.rejected_prefix)
            for name, keys in placed.items():
                key = record.dest_key if name == where else _key_in(name, record, self)
                present = key in keys
                if name == where and not present:
                    found.append(_at(record, "misplaced", f"missing from the {name}", key))
                elif name != where and present and key not in expected[name]:
                    found.append(_at(record, "misplaced", f"also in the {name}", key))
        for name, keys in placed.items():
            claimed = {r.dest_key for r in records if _place(r, self.rejected_prefix) == name}
            for key in sorted(keys - claimed):
                found.append(Violation("orphan", f"in the {name} without a decision", None, key))
        return found

    def _decisions(self, records: list[AssetRecord], now: datetime) -> list[Violation]:
        """Every decision has its history, and every approval a consent that covered it."""
        found: list[Violation] = []
        consents: dict[str, list[Consent]] = {}
        for record in records:
            if not record.history:
                found.append(_at(record, "no_history", "decision without history", None))
            if record.status is AssetStatus.APPROVED:
                found.extend(self._consented(record, now, consents))
        return found

    def _each(
        self, items: list[AssetRecord], read: Callable[[AssetRecord], list[Violation]]
    ) -> list[list[Violation]]:
        """``read`` of each item, in order; ``reads`` at a time."""
        if self.reads <= 1 or len(items) < 2:
            return [read(item) for item in items]
        with ThreadPoolExecutor(self.reads, thread_name_prefix="conservation") as pool:
            return list(pool.map(read, items))

    def _originals(self, records: list[AssetRecord], kept: set[str]) -> list[Violation]:
        found = []
        known = set()
        for record in records:
            if record.published_sha256 is None or record.source_bucket != self.uploads_bucket:
                # Rejected, held, decided before originals were kept, or a
                # redacted variant (its original is the held asset it came from).
                continue
            key = f"{self.originals_prefix}{record.tenant}/{record.asset_id}"
            known.add(key)
            if record.status is AssetStatus.DELETED:
                if key in kept:
                    found.append(_at(record, "original", "deleted, its original still kept", key))
            elif key not in kept:
                found.append(_at(record, "original", "its original is missing", key))
        for key in sorted(kept - known):
            found.append(Violation("orphan", "in originals/ without a decision", None, key))
        return found

    def _published_bytes(self, record: AssetRecord) -> list[Violation]:
        """The library object's bytes against the SHA-256 its decision recorded."""
        if record.published_sha256 is None:
            detail = "no SHA-256 of the published bytes is recorded"
            return [_at(record, "published_bytes_differ", detail, record.dest_key)]
        data = self.store.read(self.library_bucket, record.dest_key)
        if hashlib.sha256(data).hexdigest() == record.published_sha256:
            return []
        detail = "the library object is not the bytes that were scanned"
        return [_at(record, "published_bytes_differ", detail, record.dest_key)]

    def _tagged(self, record: AssetRecord) -> list[Violation]:
        """The library object's tags against the clearance its decision recorded."""
        if not record.clearance:
            return []
        want = clearance_tags(record.asset_id, record.clearance)
        have = self.store.tags(self.library_bucket, record.dest_key)
        if have == want:
            return []
        wrong = sorted(k for k in want.keys() | have.keys() if want.get(k) != have.get(k))
        detail = f"object tags disagree with the decision: {', '.join(wrong)}"
        return [_at(record, "tags_disagree", detail, record.dest_key)]

    def _audited(self, tenant: str, records: list[AssetRecord]) -> list[Violation]:
        assert self.audit is not None
        verification, events = self.audit.verified_events(tenant)
        if (b := verification.first_break) is not None:
            # A broken chain proves nothing about what it holds: report only the break.
            detail = f"{b.problem} at seq {b.seq}: {b.detail}"
            return [Violation("audit_chain", detail, None, b.key)]
        decided = {str(e.get("asset_id")) for e in events if e.get("action") in DECISION_ACTIONS}
        # A held upload (over quota) is not decided yet: its hold is what is audited.
        held = {str(e.get("asset_id")) for e in events if e.get("action") == HOLD_ACTION}
        deleted = {str(e.get("asset_id")) for e in events if e.get("action") == DELETE_ACTION}
        found = [
            _at(record, "unaudited", "decision without its event in the audit chain")
            for record in records
            if record.asset_id not in (held if record.status is AssetStatus.HELD else decided)
        ]
        # Retention deletes unattended: its deletions must be in the chain. (A
        # reviewer's delete is audited by the API request's block like any action.)
        found.extend(
            _at(record, "deleted", "deletion by retention without its event in the audit chain")
            for record in records
            if record.status is AssetStatus.DELETED
            and record.history
            and record.history[-1].get("actor") == RETENTION_ACTOR
            and record.asset_id not in deleted
        )
        return found

    def _reachable(
        self, tenant: str, records: list[AssetRecord], library: set[str]
    ) -> list[Violation]:
        """Library objects a withdrawal of one of their subjects would not find."""
        rows: dict[str, set[str]] = {}
        found = []
        for record in records:
            if _place(record, self.rejected_prefix) != "library" or record.dest_key not in library:
                continue
            for sid in record.subject_ids:
                if sid not in rows:
                    rows[sid] = set(self.assets.appearances(tenant, sid))
                if record.asset_id not in rows[sid]:
                    detail = f"no appearance row for subject {sid}: a withdrawal cannot reach it"
                    found.append(_at(record, "appearances_missing", detail, record.dest_key))
        return found

    def _consented(
        self, record: AssetRecord, now: datetime, known: dict[str, list[Consent]]
    ) -> list[Violation]:
        """``known``: each subject's consents, read once per check (many images, few people)."""
        if "released" in record.review:
            return []  # published past the gate by two reviewers, recorded with its waivers
        found = []
        missing = sorted(set(record.subject_ids) - known.keys())
        if missing:
            known.update(self.consents.for_subjects(record.tenant, missing))
        held = {sid: known.get(sid, []) for sid in sorted(set(record.subject_ids))}
        by_id = {c.consent_id: c for cs in held.values() for c in cs}
        # The purposes it was published for: the tenant's publishing purposes
        # when recorded (the faces name the consents of the first), else its own.
        gate = tuple(record.clearance.get("publishing") or ()) or (record.purpose,)
        for index, face in enumerate(record.faces):
            if not face.identifiable:
                continue
            if face.verdict != ConsentVerdict.VALID.value or face.consent_id is None:
                found.append(_at(record, "unconsented", f"face {index} approved without a consent"))
                continue
            consent = by_id.get(face.consent_id)
            if consent is None:
                found.append(_at(record, "unconsented", f"face {index}: its consent is gone"))
            elif consent_verdict(consent, gate[0], now) is not ConsentVerdict.VALID:
                found.append(_at(record, "unconsented", f"face {index}: consent no longer valid"))
            for purpose in gate[1:]:
                _, verdict = best_consent(held.get(face.subject_id or "", ()), purpose, now)
                if verdict is not ConsentVerdict.VALID:
                    detail = f"face {index}: no valid consent for {purpose}"
                    found.append(_at(record, "unconsented", detail))
        return found

    def _records(self, tenant: str) -> Iterable[AssetRecord]:
        cursor: str | None = None
        while True:
            page = self.assets.page(
                tenant,
                status=None,
                reason=None,
                subject_id=None,
                since=None,
                until=None,
                limit=100,
                cursor=cursor,
            )
            yield from page.items
            cursor = page.next_cursor
            if not cursor:
                return


def _place(record: AssetRecord, rejected_prefix: str) -> str | None:
    if record.status is AssetStatus.APPROVED:
        return "library"
    if record.status is AssetStatus.QUARANTINED:
        return "quarantine"
    if record.status is AssetStatus.REJECTED:
        return "rejected" if record.dest_key.startswith(rejected_prefix) else "quarantine"
    return None  # deleted or erased by request: nowhere; held: still an upload


def _key_in(place: str, record: AssetRecord, check: ConservationCheck) -> str:
    """Where the record's image would sit in another place."""
    if place == "rejected":
        return f"{check.rejected_prefix}{record.tenant}/{record.path}"
    return f"{record.tenant}/{record.path}"


def _latest_per_path(records: list[AssetRecord]) -> list[AssetRecord]:
    latest: dict[str, AssetRecord] = {}
    for record in sorted(records, key=lambda r: r.decided_at):
        latest[record.path] = record
    return list(latest.values())


def _at(record: AssetRecord, rule: str, detail: str, location: str | None = None) -> Violation:
    return Violation(rule, detail, record.asset_id, location)
