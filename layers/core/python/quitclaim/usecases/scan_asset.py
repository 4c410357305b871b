"""scan_asset: one uploaded object version → one recorded decision, in one place.

Order matters for the principles:
1. the decision record is written (conditionally: a redelivery finds it), in
   one transaction with its appearance rows (so a withdrawal can reach it),
2. then the bytes are placed in the library / quarantine / rejected (the
   published form, without embedded previews; the original kept apart),
3. then the upload is deleted.
A crash between any two steps leaves the image out of the library or in the
place its recorded decision names; a redelivery completes the same steps.

What is scanned and placed is the upload's published form
(faces/published.py: the picture byte for byte, an allowlist of metadata, no
embedded preview), its SHA-256 recorded in the decision; the upload's own
bytes are kept privately under ``originals/`` in the quarantine bucket
(docs/every-pixel.md). A rejected upload is not scanned: its own bytes go to
``rejected/`` as before.

Its parts: ``uploads`` (the request, the key rules), ``place_upload`` (steps
2 and 3), ``upload_quota`` (the monthly quota, held uploads); the decision
machinery it shares with redaction, review and recheck is ``asset_decisions``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from quitclaim.config import Settings
from quitclaim.domain.clearance import channel_summary, decide_channels, publishing_purposes
from quitclaim.domain.errors import Conflict, QuitclaimError, QuotaExceeded, RejectedInput
from quitclaim.domain.models import AssetStatus, Decision, FaceMatch, ScanMode, TenantPolicy
from quitclaim.domain.ports import (
    AssetRepository,
    AutoRedaction,
    Clock,
    ConsentRepository,
    EventPublisher,
    FaceEngine,
    FaceGallery,
    FaceObservation,
    Galleries,
    ObjectInfo,
    ObjectStore,
    PublishedForms,
    SubjectRepository,
    TenantRepository,
    UsageMeter,
)
from quitclaim.domain.records import AssetRecord, asset_id_for
from quitclaim.domain.rights import redactable
from quitclaim.domain.tenancy import TenantDeleting
from quitclaim.observability import audit, count, logger, timing
from quitclaim.usecases.asset_decisions import (
    face_records,
    history_entry,
    reach,
    redecided_clearance,
    sha256_hex,
    unknown_face_reason,
)
from quitclaim.usecases.place_upload import PlaceUpload
from quitclaim.usecases.upload_quota import UploadQuota
from quitclaim.usecases.uploads import (
    MAX_KEY_BYTES,
    UNATTRIBUTED,
    UNSAFE_KEYS,
    ScanRequest,
    ScanResult,
    safe_path,
    split_upload_key,
    unscanned_record,
)


class _Refused(Exception):
    """An upload rejected before or while scanning (``code``: the reason recorded)."""

    def __init__(self, code: str, purpose: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.purpose = purpose


@dataclass
class _Timer:
    marks: dict[str, float] = field(default_factory=dict)

    def measure(self, name: str, started: float) -> None:
        self.marks[name] = round((time.perf_counter() - started) * 1000, 2)


class ScanAsset:
    """The ingest use-case. Dependencies are ports, injected once per container."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine_factory: Callable[[], FaceEngine],
        store: ObjectStore,
        tenants: TenantRepository,
        subjects: SubjectRepository,
        consents: ConsentRepository,
        assets: AssetRepository,
        clock: Clock,
        galleries: Galleries,
        published_forms: PublishedForms,
        events: EventPublisher | None = None,
        redaction: AutoRedaction | None = None,
        usage: UsageMeter | None = None,
    ) -> None:
        self._usage = usage
        self._events = events
        self._redaction = redaction
        self._settings = settings
        self._engine_factory = engine_factory
        self._engine: FaceEngine | None = None
        self._store = store
        self._tenants = tenants
        self._subjects = subjects
        self._consents = consents
        self._assets = assets
        self._clock = clock
        self._galleries = galleries
        self._published_forms = published_forms

    @property
    def engine(self) -> FaceEngine:
        # Lazy so a container that only sees test events never loads models.
        if self._engine is None:
            self._engine = self._engine_factory()
        return self._engine

    def __call__(self, request: ScanRequest) -> ScanResult:
        s = self._settings
        parts = split_upload_key(request.key, s.incoming_prefix)
        tenant, path = parts if parts else (UNATTRIBUTED, request.key)
        asset_id = asset_id_for(tenant, request.bucket, request.key, request.version)

        existing = self._assets.get(tenant, asset_id)
        if existing is not None and existing.status is not AssetStatus.HELD:
            return self._redelivered(existing, request)

        info = self._store.head(request.bucket, request.key, request.version_id)
        if info is None:
            # Already moved by an earlier delivery that lost its record? Impossible:
            # the record is written first. So the uploader deleted it; nothing to do.
            logger.warning("upload vanished before scan", asset_id=asset_id, tenant=tenant)
            count("UploadVanished")
            return ScanResult(asset_id, None, duplicate=True)

        # The quota is checked before any byte is read: a held upload costs no scan.
        limit = self._quota.limit(tenant) if parts is not None else None
        if limit is not None and self._quota.left(tenant, limit) == 0:
            return self._quota.hold(request, info, tenant, path, asset_id, existing)

        try:
            record, published = self._decide(
                request, info, tenant, path, asset_id, parts is not None
            )
        except TenantDeleting:
            # Offboarding: the upload stays where the tenant put it, unscanned,
            # until the purge erases it (nothing is decided for a leaving tenant).
            logger.info("upload kept unscanned: tenant deleting", asset_id=asset_id, tenant=tenant)
            count("UploadsKeptForOffboarding")
            return ScanResult(asset_id, None, reasons=(TenantDeleting.code,))
        # Storage is billed for the bytes placed: the published form, or a rejected upload.
        record = replace(record, size=info.size if published is None else len(published))
        try:
            written = self._quota.write_decision(record, existing, limit)
        except QuotaExceeded:
            # Another ingest took the last image between our check and our write.
            return self._quota.hold(request, info, tenant, path, asset_id, existing)
        if written is None:
            # A concurrent delivery recorded first: its decision stands.
            winner = self._assets.get(tenant, asset_id)
            if winner is None:  # pragma: no cover - the create said it exists
                raise RuntimeError("asset record vanished during a race")
            return self._placing.complete(winner, request, duplicate=True)
        return self._place_decided(written, request, published)

    def _redelivered(self, existing: AssetRecord, request: ScanRequest) -> ScanResult:
        """An upload decided before (a redelivery): finish what that delivery began."""
        if existing.placed_at is None:
            # An earlier delivery recorded the decision and died before placing
            # it; its audit block may have died with it (a lost process keeps
            # nothing). Audit again: the chain may hold the decision twice,
            # never not at all.
            _audit_decided(existing)
            if existing.subject_ids:
                # Decisions carry their rows (I1); one from before that, whose
                # rows were lost, gets them before it is placed (idempotent).
                self._assets.add_appearances(existing)
        done = self._placing.complete(existing, request, duplicate=True)
        self._auto_redact(existing, done)
        return done

    def _place_decided(
        self, record: AssetRecord, request: ScanRequest, published: bytes | None
    ) -> ScanResult:
        """A decision just recorded: confirm its consents, audit, place, announce."""
        if record.subject_ids:
            # The appearance rows were written with the decision.
            record = self._confirm_consents(record)
        # Audited as soon as the decision is durable, before the bytes move: a
        # delivery that dies while placing is retried through the duplicate
        # path below, which would otherwise never audit the decision.
        _audit_decided(record)
        result = self._placing.complete(record, request, duplicate=False, published=published)
        if self._events is not None:
            self._events.publish(
                f"asset.{result.status.value if result.status else record.status.value}",
                record.tenant,
                {
                    "asset_id": record.asset_id,
                    "path": record.path,
                    "reasons": list(result.reasons),
                    "location": f"s3://{result.dest_bucket}/{result.dest_key}",
                    **channel_summary(result.clearance),
                },
            )
        count(f"Assets{record.status.value.capitalize()}")
        count("FacesProcessed", len(record.faces))
        for name, ms in record.timings_ms.items():
            timing(f"Stage_{name}", ms)
        self._auto_redact(record, result)
        return result

    @property
    def _quota(self) -> UploadQuota:
        # Built per call from the collaborators as they are now.
        return UploadQuota(
            usage=self._usage, assets=self._assets, clock=self._clock, placing=self._placing
        )

    def _auto_redact(self, record: AssetRecord, result: ScanResult) -> None:
        """Tenant policy ``auto_redact``: publish a redacted variant of a held image.

        Only when the faces without consent are the only blockers. The original
        stays held whatever happens here: a failure is logged and counted, and a
        reviewer can still redact it (``POST /assets/{id}/redact``).
        """
        if (
            self._redaction is None
            or not record.policy.get("auto_redact")
            or result.status is not AssetStatus.QUARANTINED
            or not redactable(replace(record, reasons=result.reasons))
            or "redacted" in record.review
        ):
            return
        try:
            self._redaction.redact(
                record.tenant,
                record.asset_id,
                actor="ingest",
                justification="tenant policy: redact instead of holding (auto_redact)",
            )
        except QuitclaimError as exc:
            logger.warning("auto-redaction not published", asset_id=record.asset_id, code=exc.code)
            count("AutoRedactionSkipped")

    # -- decision ---------------------------------------------------------

    def _decide(
        self,
        request: ScanRequest,
        info: ObjectInfo,
        tenant: str,
        path: str,
        asset_id: str,
        attributable: bool,
    ) -> tuple[AssetRecord, bytes | None]:
        """The decision, and the published form that was scanned (None when rejected)."""
        now = self._clock.now()
        timer = _Timer()
        started = time.perf_counter()
        try:
            policy, gallery_version, purpose = self._screen(info, tenant, path, attributable)
            published, mode, observations = self._scan(request, info, policy, path, purpose, timer)
        except _Refused as refused:
            record = self._rejected(request, tenant, path, asset_id, now, refused)
            return replace(record, timings_ms=timer.marks), None

        t = time.perf_counter()
        matches = self._match(tenant, gallery_version, policy, mode, observations)
        timer.measure("match", t)

        t = time.perf_counter()
        subject_ids = sorted({m.subject_id for m in matches if m.subject_id})
        consents = self._consents.for_subjects(tenant, subject_ids) if subject_ids else {}
        timer.measure("consents", t)

        # Decision time is read after the consents: a consent that expired
        # while we were encoding is judged expired.
        unknown = unknown_face_reason(policy, mode)
        # Every purpose the tenant uses is decided (clearance per channel); the
        # image is published when cleared for each publishing purpose.
        publishing = publishing_purposes(policy.publishing_purposes & policy.purposes, purpose)
        clearance = decide_channels(
            matches, consents, policy.purposes, publishing, self._clock.now(), unknown
        )
        decision = clearance.gate
        timer.measure("total", started)
        record = self._record(
            request, tenant, path, asset_id, purpose, policy, decision, observations, now, timer
        )
        decided = replace(
            record,
            clearance=clearance.as_record(),
            policy={
                **record.policy,
                "scan_mode": mode.value,
                **({"auto_redact": True} if policy.auto_redact else {}),
            },
            history=(history_entry(now, "decided", "ingest", record),),
            published_sha256=sha256_hex(published),
        )
        return decided, published

    def _screen(
        self, info: ObjectInfo, tenant: str, path: str, attributable: bool
    ) -> tuple[TenantPolicy, int, str]:
        """The tenant's policy, gallery version and the upload's purpose, before any byte is read.

        Raises ``_Refused`` for an upload rejected on its key, tenant, purpose or size.
        """
        if not attributable:
            raise _Refused("no_tenant_in_key")
        if not safe_path(path):
            raise _Refused("unsafe_key")
        found = self._tenants.policy_and_gallery(tenant)
        if found is None:
            raise _Refused("unknown_tenant")
        policy, gallery_version = found
        purpose = (info.metadata.get("purpose") or policy.default_purpose).strip().lower()
        if purpose not in policy.purposes:
            raise _Refused("unknown_purpose", purpose)
        if info.size > self._settings.max_upload_bytes:
            raise _Refused("too_large", purpose)
        return policy, gallery_version, purpose

    def _scan(
        self,
        request: ScanRequest,
        info: ObjectInfo,
        policy: TenantPolicy,
        path: str,
        purpose: str,
        timer: _Timer,
    ) -> tuple[bytes, ScanMode, list[FaceObservation]]:
        """Read, take the published form, decode and find the faces (as the path's mode says).

        Raises ``_Refused`` for bytes the gate rejects (format, size, detection budget).
        """
        s = self._settings
        t = time.perf_counter()
        data = self._store.read(request.bucket, request.key, info.version_id)
        timer.measure("read", t)
        try:
            t = time.perf_counter()
            # What is scanned is what will be published, byte for byte: the
            # picture without its thumbnails and previews (faces/published.py).
            published = self._published_forms.published_form(
                data, max_pixels=s.max_pixels, max_frames=s.max_frames
            )
            image = self.engine.decode(published)
            timer.measure("decode", t)
        except RejectedInput as exc:
            raise _Refused(exc.code, purpose) from None
        del data

        mode = policy.scan_mode_for(path)
        observations: list[FaceObservation] = []
        if mode is not ScanMode.OFF:
            t = time.perf_counter()
            try:
                observations = self.engine.analyze(image)
            except RejectedInput as exc:  # e.g. detection_budget_exceeded (docs/budgets.md)
                raise _Refused(exc.code, purpose) from None
            timer.measure("detect_encode", t)
        return published, mode, observations

    def _rejected(
        self,
        request: ScanRequest,
        tenant: str,
        path: str,
        asset_id: str,
        now: datetime,
        refused: _Refused,
    ) -> AssetRecord:
        """The record of a rejected upload: its own bytes go to ``rejected/``, unscanned."""
        s = self._settings
        dest_key = f"{s.rejected_prefix}{tenant}/{path}"
        if not safe_path(path) or len(dest_key.encode()) > MAX_KEY_BYTES:
            # The original key stays on record (source_key, path); the
            # bytes go to a name that cannot leave the tenant's prefix.
            dest_key = f"{s.rejected_prefix}{tenant}/{UNSAFE_KEYS}/{asset_id}"
        return unscanned_record(
            request,
            tenant,
            path,
            asset_id,
            now,
            status=AssetStatus.REJECTED,
            reason=refused.code,
            dest=(s.quarantine_bucket, dest_key),
            purpose=refused.purpose,
        )

    def _confirm_consents(self, record: AssetRecord) -> AssetRecord:
        """Re-read the consents *after* the appearance rows exist, and re-decide.

        Why: a withdrawal that lands while this scan is in flight re-decides
        only the assets it finds through the appearances index. Either that
        recheck runs after our appearance rows were written (and sees this
        asset), or our re-read here runs after the withdrawal was written (and
        sees it). Both stores read strongly consistent, so one of the two
        always catches it; the image cannot be published on a stale consent.
        A withdrawal after this re-read finds the appearance rows and moves
        the image itself; if our copy lands after its move, ``_follow_redecision``
        takes it out again. Each pause point is reproduced on the stack by
        tests/integration/test_races_on_stack.py (withdrawal during a scan).
        """
        consents = self._consents.for_subjects(record.tenant, list(record.subject_ids))
        now = self._clock.now()
        clearance = redecided_clearance(record, consents, now)
        decision = clearance.gate
        reasons = tuple(r.value for r in decision.reasons)
        if (decision.status, reasons, clearance.as_record()) == (
            record.status,
            record.reasons,
            record.clearance,
        ):
            return record
        s = self._settings
        approved = decision.approved
        changed = replace(
            record,
            status=decision.status,
            reasons=reasons,
            clearance=clearance.as_record(),
            dest_bucket=s.library_bucket if approved else s.quarantine_bucket,
            version=record.version + 1,
        )
        changed = replace(
            changed, history=(*record.history, history_entry(now, "redecided", "ingest", changed))
        )
        try:
            self._assets.replace(changed, record.version, appearances=reach(record, changed))
        except Conflict:
            latest = self._assets.get(record.tenant, record.asset_id)
            return latest if latest is not None else record
        count("ConsentChangedDuringScan")
        return changed

    def _match(
        self,
        tenant: str,
        gallery_version: int,
        policy: TenantPolicy,
        mode: ScanMode,
        observations: list[FaceObservation],
    ) -> list[FaceMatch]:
        """Each face matched against the tenant's gallery, when the path's mode recognises."""
        if mode is not ScanMode.RECOGNIZE:
            # Detect-only: no template is compared, so no biometric matching at all.
            return [
                FaceMatch(o.box, None, None, self._identifiable(o, policy)) for o in observations
            ]
        identifiable = [self._identifiable(o, policy) for o in observations]
        judged = [ok and o.matchable for o, ok in zip(observations, identifiable, strict=True)]
        probes = [o.encoding for o, ok in zip(observations, judged, strict=True) if ok]
        found = iter(
            self._gallery(tenant, gallery_version).match(
                probes,
                threshold=policy.match_threshold,
                margin=policy.match_margin,
            )
        )
        faces: list[FaceMatch] = []
        for obs, ok in zip(observations, identifiable, strict=True):
            if not ok:
                faces.append(FaceMatch(obs.box, None, None, identifiable=False))
                continue
            if not obs.matchable:
                faces.append(FaceMatch(obs.box, None, None, matchable=False))
                continue
            hit = next(found)
            faces.append(FaceMatch(obs.box, hit.subject_id, hit.distance))
        return faces

    @staticmethod
    def _identifiable(observation: FaceObservation, policy: TenantPolicy) -> bool:
        return min(observation.box.width, observation.box.height) >= policy.min_face_px

    def _gallery(self, tenant: str, version: int) -> FaceGallery:
        return self._galleries.load(tenant, version, lambda: self._subjects.templates(tenant))

    def _record(
        self,
        request: ScanRequest,
        tenant: str,
        path: str,
        asset_id: str,
        purpose: str,
        policy: TenantPolicy,
        decision: Decision,
        observations: list[FaceObservation],
        now: datetime,
        timer: _Timer,
    ) -> AssetRecord:
        s = self._settings
        faces = face_records(decision, observations)
        approved = decision.approved
        return AssetRecord(
            tenant=tenant,
            asset_id=asset_id,
            source_bucket=request.bucket,
            source_key=request.key,
            source_version=request.version,
            path=path,
            purpose=purpose,
            status=decision.status,
            reasons=tuple(r.value for r in decision.reasons),
            dest_bucket=s.library_bucket if approved else s.quarantine_bucket,
            dest_key=f"{tenant}/{path}",
            decided_at=now,
            faces=faces,
            versions=dict(self.engine.versions),
            policy={
                "match_threshold": policy.match_threshold,
                "match_margin": policy.match_margin,
                "min_face_px": policy.min_face_px,
            },
            timings_ms=timer.marks,
        )

    @property
    def _placing(self) -> PlaceUpload:
        # Built per call from the collaborators as they are now.
        return PlaceUpload(
            settings=self._settings,
            store=self._store,
            assets=self._assets,
            clock=self._clock,
            published_forms=self._published_forms,
        )


def _audit_decided(record: AssetRecord) -> None:
    audit(
        "asset.decided",
        tenant=record.tenant,
        asset_id=record.asset_id,
        status=record.status.value,
        reasons=list(record.reasons),
        purpose=record.purpose,
        clearance=record.clearance,
        faces=[face.as_dict() for face in record.faces],
        versions=record.versions,
        policy=record.policy,
        timings_ms=record.timings_ms,
        dest_bucket=record.dest_bucket,
    )
