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
"""

from __future__ import annotations

import hashlib
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import numpy as np

from quitclaim.config import Settings
from quitclaim.domain.clearance import (
    channel_summary,
    clearance_tags,
    decide_channels,
    publishing_purposes,
)
from quitclaim.domain.errors import Conflict, QuitclaimError, QuotaExceeded, RejectedInput
from quitclaim.domain.models import (
    AssetStatus,
    Decision,
    FaceMatch,
    ScanMode,
    TenantPolicy,
    is_tenant_id,
)
from quitclaim.domain.ports import (
    AssetRepository,
    Clock,
    ConsentRepository,
    EventPublisher,
    FaceEngine,
    FaceObservation,
    ObjectInfo,
    ObjectStore,
    SubjectRepository,
    TenantRepository,
    UsageMeter,
)
from quitclaim.domain.records import AssetRecord, FaceRecord, asset_id_for
from quitclaim.domain.rights import redactable
from quitclaim.domain.tenancy import TenantDeleting
from quitclaim.domain.usage import (
    QUOTA_EXCEEDED,
    UsageIncrement,
    billable,
    month_of,
    remaining,
    scan_units,
)
from quitclaim.faces.gallery import Gallery, GalleryCache
from quitclaim.faces.published import published_form, reencoded_type
from quitclaim.observability import audit, count, logger, timing
from quitclaim.usecases.placement import META_ASSET_ID, META_STATUS, history_entry, reach
from quitclaim.usecases.recheck import redecided_clearance, unknown_face_reason

if TYPE_CHECKING:
    from quitclaim.usecases.redaction import Redaction

UNATTRIBUTED = "_unattributed"
# Where a rejected upload goes when its own path cannot be used as a key (see
# ``safe_path``): ``rejected/{tenant}/_unsafe-keys/{asset_id}``. Paths that
# start with this segment are themselves refused, so no upload can land on
# (and overwrite) one of these.
UNSAFE_KEYS = "_unsafe-keys"
# S3's limit on a key's UTF-8 length.
MAX_KEY_BYTES = 1024
_DOT_SEGMENTS = frozenset({"", ".", ".."})
# The uploader's Content-Type is kept only when it names one of the image
# types we decode. Anything else (text/html, image/svg+xml, ...) would let a
# polyglot (a JPEG with a page appended) be served as a page from the
# library's origin; it is stored as opaque bytes instead.
_SERVABLE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_OPAQUE_TYPE = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class ScanRequest:
    """One object version named by an S3 event (key already URL-decoded)."""

    bucket: str
    key: str
    version_id: str | None
    etag: str

    @property
    def version(self) -> str:
        return self.version_id or self.etag


@dataclass(frozen=True, slots=True)
class ScanResult:
    asset_id: str
    status: AssetStatus | None
    reasons: tuple[str, ...] = ()
    duplicate: bool = False
    dest_bucket: str | None = None
    dest_key: str | None = None
    # The record's clearance per channel (domain/clearance.py), as placed.
    clearance: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Timer:
    marks: dict[str, float] = field(default_factory=dict)

    def measure(self, name: str, started: float) -> None:
        self.marks[name] = round((time.perf_counter() - started) * 1000, 2)


def split_upload_key(key: str, prefix: str) -> tuple[str, str] | None:
    """``incoming/{tenant}/{path}`` → (tenant, path); None when not attributable."""
    if not key.startswith(prefix):
        return None
    tenant, _, path = key[len(prefix) :].partition("/")
    if not is_tenant_id(tenant) or not path:
        return None
    return tenant, path


def safe_path(path: str) -> bool:
    """Whether ``path`` can name an object below a tenant's prefix as it stands.

    S3 keys are flat strings, but whatever later reads the library as paths
    (a browser or CDN resolving ``..``, a sync to disk, a tool that
    percent-decodes first, a Windows client splitting on ``\\``) must not be
    led out of the tenant's prefix or onto another object. So dot segments,
    empty segments (``//``, a trailing ``/``), control characters and
    backslashes are refused, in the key as written, percent-decoded and
    NFKC-folded (full-width dots become dots).
    """
    if path.split("/", 1)[0] == UNSAFE_KEYS:
        return False
    for form in {path, unquote(path)}:
        for variant in {form, unicodedata.normalize("NFKC", form)}:
            if any(ord(ch) < 0x20 or ord(ch) == 0x7F or ch == "\\" for ch in variant):
                return False
            if any(segment in _DOT_SEGMENTS for segment in variant.split("/")):
                return False
    return True


def served_type(content_type: str | None) -> str:
    """The Content-Type a placed copy carries (see ``_SERVABLE_TYPES``)."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    return base if base in _SERVABLE_TYPES else _OPAQUE_TYPE


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


def original_key(settings: Settings, tenant: str, asset_id: str) -> str:
    """Where a scanned upload's own bytes are kept (quarantine bucket, never read by the DAM)."""
    return f"{settings.originals_prefix}{tenant}/{asset_id}"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def unscanned_record(
    request: ScanRequest,
    tenant: str,
    path: str,
    asset_id: str,
    now: datetime,
    *,
    status: AssetStatus,
    reason: str,
    dest: tuple[str, str],
    purpose: str = "",
) -> AssetRecord:
    """The record of an upload decided without a scan: rejected, or held over quota."""
    record = AssetRecord(
        tenant=tenant,
        asset_id=asset_id,
        source_bucket=request.bucket,
        source_key=request.key,
        source_version=request.version,
        path=path,
        purpose=purpose,
        status=status,
        reasons=(reason,),
        dest_bucket=dest[0],
        dest_key=dest[1],
        decided_at=now,
    )
    return replace(record, history=(history_entry(now, status.value, "ingest", record),))


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
        galleries: GalleryCache | None = None,
        events: EventPublisher | None = None,
        redaction: Redaction | None = None,
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
        self._galleries = galleries or GalleryCache()

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
            done = self._complete(existing, request, duplicate=True)
            self._auto_redact(existing, done)
            return done

        info = self._store.head(request.bucket, request.key, request.version_id)
        if info is None:
            # Already moved by an earlier delivery that lost its record? Impossible:
            # the record is written first. So the uploader deleted it; nothing to do.
            logger.warning("upload vanished before scan", asset_id=asset_id, tenant=tenant)
            count("UploadVanished")
            return ScanResult(asset_id, None, duplicate=True)

        # The quota is checked before any byte is read: a held upload costs no scan.
        limit = self._images_limit(tenant) if parts is not None else None
        if limit is not None and self._quota_left(tenant, limit) == 0:
            return self._hold(request, info, tenant, path, asset_id, existing)

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
            written = self._write_decision(record, existing, limit)
        except QuotaExceeded:
            # Another ingest took the last image between our check and our write.
            return self._hold(request, info, tenant, path, asset_id, existing)
        if written is None:
            # A concurrent delivery recorded first: its decision stands.
            winner = self._assets.get(tenant, asset_id)
            if winner is None:  # pragma: no cover - the create said it exists
                raise RuntimeError("asset record vanished during a race")
            return self._complete(winner, request, duplicate=True)
        record = written
        if record.subject_ids:
            # The appearance rows were written with the decision.
            record = self._confirm_consents(record)
        # Audited as soon as the decision is durable, before the bytes move: a
        # delivery that dies while placing is retried through the duplicate
        # path below, which would otherwise never audit the decision.
        _audit_decided(record)
        result = self._complete(record, request, duplicate=False, published=published)
        if self._events is not None:
            self._events.publish(
                f"asset.{result.status.value if result.status else record.status.value}",
                tenant,
                {
                    "asset_id": asset_id,
                    "path": path,
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

    # -- metering and the monthly quota -------------------------------------

    def _images_limit(self, tenant: str) -> int | None:
        return self._usage.images_per_month(tenant) if self._usage is not None else None

    def _quota_left(self, tenant: str, limit: int) -> int:
        assert self._usage is not None
        left = remaining(limit, self._usage.counters(tenant, month_of(self._clock.now())))
        return 0 if left is None else left

    def _write_decision(
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

    def _hold(
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
                    return self._complete(winner, request, duplicate=True)
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
        s = self._settings
        now = self._clock.now()
        timer = _Timer()
        started = time.perf_counter()

        def rejected(code: str, purpose: str = "") -> AssetRecord:
            dest_key = f"{s.rejected_prefix}{tenant}/{path}"
            if not safe_path(path) or len(dest_key.encode()) > MAX_KEY_BYTES:
                # The original key stays on record (source_key, path); the
                # bytes go to a name that cannot leave the tenant's prefix.
                dest_key = f"{s.rejected_prefix}{tenant}/{UNSAFE_KEYS}/{asset_id}"
            record = unscanned_record(
                request,
                tenant,
                path,
                asset_id,
                now,
                status=AssetStatus.REJECTED,
                reason=code,
                dest=(s.quarantine_bucket, dest_key),
                purpose=purpose,
            )
            return replace(record, timings_ms=timer.marks)

        if not attributable:
            return rejected("no_tenant_in_key"), None
        if not safe_path(path):
            return rejected("unsafe_key"), None
        found = self._tenants.policy_and_gallery(tenant)
        if found is None:
            return rejected("unknown_tenant"), None
        policy, gallery_version = found
        purpose = (info.metadata.get("purpose") or policy.default_purpose).strip().lower()
        if purpose not in policy.purposes:
            return rejected("unknown_purpose", purpose), None
        if info.size > s.max_upload_bytes:
            return rejected("too_large", purpose), None

        t = time.perf_counter()
        data = self._store.read(request.bucket, request.key, info.version_id)
        timer.measure("read", t)
        try:
            t = time.perf_counter()
            # What is scanned is what will be published, byte for byte: the
            # picture without its thumbnails and previews (faces/published.py).
            published = published_form(data, max_pixels=s.max_pixels, max_frames=s.max_frames)
            image = self.engine.decode(published)
            timer.measure("decode", t)
        except RejectedInput as exc:
            return rejected(exc.code, purpose), None
        del data

        mode = policy.scan_mode_for(path)
        observations: list[FaceObservation] = []
        if mode is not ScanMode.OFF:
            t = time.perf_counter()
            try:
                observations = self.engine.analyze(image)
            except RejectedInput as exc:  # e.g. detection_budget_exceeded (docs/budgets.md)
                return rejected(exc.code, purpose), None
            timer.measure("detect_encode", t)

        t = time.perf_counter()
        if mode is ScanMode.RECOGNIZE:
            matches = self._match(tenant, gallery_version, policy, observations)
        else:
            # Detect-only: no template is compared, so no biometric matching at all.
            matches = [
                FaceMatch(o.box, None, None, self._identifiable(o, policy)) for o in observations
            ]
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
        observations: list[FaceObservation],
    ) -> list[FaceMatch]:
        identifiable = [self._identifiable(o, policy) for o in observations]
        judged = [ok and o.matchable for o, ok in zip(observations, identifiable, strict=True)]
        probes = [o.encoding for o, ok in zip(observations, judged, strict=True) if ok]
        found = iter(
            self._gallery(tenant, gallery_version).match(
                np.stack(probes) if probes else np.empty((0, 128), dtype=np.float32),
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

    def _gallery(self, tenant: str, version: int) -> Gallery:
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

    # -- placement --------------------------------------------------------

    def _complete(
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
                    self._place_published(record, source, published)
            if record.published_sha256 is not None:
                # The upload's own bytes, for the record: private, never published.
                self._store.copy(
                    source,
                    self._settings.quarantine_bucket,
                    original_key(self._settings, record.tenant, record.asset_id),
                    {META_ASSET_ID: record.asset_id},
                )
            self._store.delete(request.bucket, request.key, source.version_id)
            record = self._follow_redecision(record)
            result = _as_placed(result, record)
        else:
            if record.status in (AssetStatus.APPROVED, AssetStatus.QUARANTINED):
                # An earlier delivery copied and deleted the upload, then died
                # before following a re-decision made meanwhile: its copy may
                # sit in the other place (a withdrawn image in the library).
                # Finish that move now (tests/integration/test_races_on_stack.py).
                s = self._settings
                other = (
                    s.quarantine_bucket
                    if record.dest_bucket == s.library_bucket
                    else s.library_bucket
                )
                record = self._follow_redecision(replace(record, dest_bucket=other))
                result = _as_placed(result, record)
            if self._store.head(record.dest_bucket, record.dest_key) is None:
                # Someone removed the upload after we recorded it; say so loudly.
                logger.error("upload gone before placement", asset_id=record.asset_id)
                count("PlacementSourceMissing")
        self._assets.mark_placed(record.tenant, record.asset_id, self._clock.now())
        return result

    def _place_published(
        self, record: AssetRecord, source: ObjectInfo, published: bytes | None
    ) -> None:
        """Write the scanned published form where the record says (library or quarantine)."""
        if published is None:
            data = self._store.read(source.bucket, source.key, source.version_id)
            s = self._settings
            published = published_form(data, max_pixels=s.max_pixels, max_frames=s.max_frames)
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
            content_type=reencoded_type(published, source.content_type)
            or served_type(source.content_type),
            tags=clearance_tags(record.asset_id, record.clearance),
        )

    def _follow_redecision(self, placed: AssetRecord) -> AssetRecord:
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


def _as_placed(result: ScanResult, record: AssetRecord) -> ScanResult:
    """The result as the record (perhaps re-decided meanwhile) places the image."""
    return replace(
        result,
        status=record.status,
        reasons=record.reasons,
        dest_bucket=record.dest_bucket,
        dest_key=record.dest_key,
        clearance=record.clearance,
    )
