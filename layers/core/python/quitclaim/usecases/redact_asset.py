"""Redaction: a held image published as a variant with the unconsented faces pixelated.

The original stays in quarantine, untouched. The variant
(``<tenant>/<path stem>.redacted.png`` in the library) is a new asset with
its own decision record, made the way the gate makes every decision: the
variant is scanned again and matched against the gallery, and it is
published only when every face the engine can still identify there has a
valid, in-scope consent. A face found inside a redacted region must match
nobody, neither an enrolled person nor the face that was there before
(compared in memory, never stored): otherwise the redaction is too weak and
nothing is published. Its appearance rows make a later withdrawal pull the
variant too, like any other asset.

Four eyes (domain/four_eyes.py): a person asks (``request``; kept as the
original's ``review.pending_redaction``) and a second, different person
confirms; only then is the variant made. ``redact`` itself is one step: the
ingest decision's own path (policy ``auto_redact``, which two administrators
must have switched on) and the confirmation's.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from quitclaim.domain.clearance import Clearance, clearance_tags, decide_channels
from quitclaim.domain.errors import Conflict, NotFound, RejectedInput
from quitclaim.domain.four_eyes import confirm, requested_by
from quitclaim.domain.models import AssetStatus, Box, Decision, FaceMatch, TenantPolicy
from quitclaim.domain.ports import (
    AssetRepository,
    Clock,
    ConsentRepository,
    DecodedImage,
    EventPublisher,
    FaceEngine,
    FaceObservation,
    Galleries,
    ObjectStore,
    SubjectRepository,
    TenantRepository,
)
from quitclaim.domain.records import AssetRecord, asset_id_for
from quitclaim.domain.registry import Principal
from quitclaim.domain.rights import REDACTED, redactable
from quitclaim.observability import audit, count
from quitclaim.usecases.asset_decisions import (
    META_ASSET_ID,
    META_STATUS,
    Placement,
    Redecider,
    face_records,
    history_entry,
    justified,
    sha256_hex,
)

if TYPE_CHECKING:
    from quitclaim.domain.ports import PixelRedaction

META_REDACTED_FROM = "quitclaim-redacted-from"
SUFFIX = ".redacted.png"


def variant_key(record: AssetRecord) -> str:
    """``<tenant>/<path without extension>.redacted.png``."""
    stem, _ = posixpath.splitext(record.path)
    return f"{record.tenant}/{stem}{SUFFIX}"


def _centre_in(box: Box, region: Box) -> bool:
    x = (box.left + box.right) / 2
    y = (box.top + box.bottom) / 2
    return region.left <= x < region.right and region.top <= y < region.bottom


class Redaction:
    def __init__(
        self,
        *,
        engine_factory: Callable[[], FaceEngine],
        decode: Callable[[bytes], DecodedImage],
        store: ObjectStore,
        tenants: TenantRepository,
        subjects: SubjectRepository,
        consents: ConsentRepository,
        assets: AssetRepository,
        placement: Placement,
        recheck: Redecider,
        clock: Clock,
        library_bucket: str,
        galleries: Galleries,
        pixels: PixelRedaction,
        events: EventPublisher | None = None,
    ) -> None:
        self._engine_factory = engine_factory
        self._decode = decode
        self._store = store
        self._tenants = tenants
        self._subjects = subjects
        self._consents = consents
        self._assets = assets
        self._placement = placement
        self._recheck = recheck
        self._clock = clock
        self._library = library_bucket
        self._galleries = galleries
        self._pixels = pixels
        self._events = events

    def request(self, who: Principal, asset_id: str, justification: str) -> AssetRecord:
        """Ask for a redacted variant, or confirm another person's request and publish it.

        The first person's call answers the held original, with
        ``review.pending_redaction``; a second, different person's call answers
        the published variant (``redact``). The requester again: ``Forbidden``
        (``same_reviewer``).
        """
        why = justified(justification)
        original = self._redactable(who.tenant, asset_id)
        pending = original.review.get("pending_redaction")
        if pending is None:
            now = self._clock.now()
            after = replace(
                original,
                review={
                    **original.review,
                    "pending_redaction": requested_by(who, now.isoformat(), justification=why),
                },
                history=(
                    *original.history,
                    history_entry(
                        now, "redaction_requested", who.key_id, original, justification=why
                    ),
                ),
            )
            self._placement.transition(original, after)
            audit(
                "asset.redaction_requested",
                tenant=who.tenant,
                asset_id=asset_id,
                status=original.status.value,
                source=who.key_id,
                people=[str(after.review["pending_redaction"]["person"])],
            )
            return after
        people = confirm(pending, who, "redaction")
        return self.redact(
            who.tenant,
            asset_id,
            actor=who.key_id,
            justification=why,
            confirmed={"requested_by": pending["by"], "people": people},
        )

    def _redactable(self, tenant: str, asset_id: str) -> AssetRecord:
        original = self._assets.get(tenant, asset_id)
        if original is None:
            raise NotFound(f"asset {asset_id} not found")
        if original.status is not AssetStatus.QUARANTINED:
            raise Conflict(
                f"only quarantined assets can be redacted (this one is {original.status})",
                code="not_quarantined",
            )
        if not redactable(original):
            raise Conflict(
                f"held for {list(original.reasons)}: only faces without consent can be redacted",
                code="not_redactable",
            )
        if "redacted" in original.review:
            raise Conflict("this asset has a redacted variant already", code="redacted")
        return original

    def redact(
        self,
        tenant: str,
        asset_id: str,
        *,
        actor: str,
        justification: str,
        confirmed: dict[str, Any] | None = None,
    ) -> AssetRecord:
        """Publish the held asset's redacted variant; answers the variant's record.

        One step: only for the ingest decision and a confirmed ``request``
        (``confirmed``: the requesting key and both people, recorded).
        ``Conflict`` codes: ``not_quarantined``, ``not_redactable`` (held for
        something a redaction cannot fix), ``redacted`` (done before),
        ``key_taken``, ``redaction_too_weak``, ``not_publishable``.
        """
        why = justified(justification)
        original = self._redactable(tenant, asset_id)
        key = variant_key(original)
        variant_id = asset_id_for(tenant, self._library, key, original.asset_id)
        data = self._held_bytes(original, key, variant_id)

        faces = [i for i, f in enumerate(original.faces) if f.verdict != "valid"]
        boxes = [Box(*original.faces[i].box) for i in faces]
        image = self._decode(data)
        # An image with transparency is one frame seen three ways (imaging._views).
        if image.meta.get("frames", str(len(image.frames))) != "1":
            raise RejectedInput("only still images can be redacted", code="too_many_frames")
        redacted = self._pixels.redact(image.frames[0], boxes)
        png = self._pixels.to_png(redacted)
        regions = [self._pixels.padded(b, image.width, image.height) for b in boxes]
        variant = self._decided(
            original, data, png, regions, key, variant_id, actor, why, confirmed or {}
        )
        del data, image, redacted

        self._publish_variant(variant, png, actor=actor, source_asset_id=asset_id)
        self._note_on_original(original, variant, actor, why, faces)
        return self._announce(variant, actor=actor, source_asset_id=asset_id, confirmed=confirmed)

    def _held_bytes(self, original: AssetRecord, key: str, variant_id: str) -> bytes:
        """The held image's bytes, once sure the variant can be stored at ``key``."""
        tenant, asset_id = original.tenant, original.asset_id
        if self._assets.get(tenant, variant_id) is not None:
            raise Conflict("this asset has a redacted variant already", code="redacted")
        taken = self._store.head(self._library, key)
        if taken is not None and taken.metadata.get(META_ASSET_ID) != variant_id:
            raise Conflict(f"another object is stored at {key}", code="key_taken")
        source = self._store.head(original.dest_bucket, original.dest_key)
        if source is None or source.metadata.get(META_ASSET_ID) != asset_id:
            raise Conflict("the held image is not where its record says", code="not_placed")
        return self._store.read(source.bucket, source.key, source.version_id)

    def _publish_variant(
        self, variant: AssetRecord, png: bytes, *, actor: str, source_asset_id: str
    ) -> None:
        """Record the variant's decision, place its bytes, and decide it again at once."""
        tenant, variant_id = variant.tenant, variant.asset_id
        # The variant's appearance rows are written with its decision (I1).
        if not self._assets.create(variant):
            raise Conflict("this asset has a redacted variant already", code="redacted")
        self._store.write(
            self._library,
            variant.dest_key,
            png,
            {
                META_ASSET_ID: variant_id,
                META_STATUS: variant.status.value,
                META_REDACTED_FROM: source_asset_id,
            },
            content_type="image/png",
            tags=clearance_tags(variant_id, variant.clearance),
        )
        self._assets.mark_placed(tenant, variant_id, self._clock.now())
        # A consent withdrawn while we scanned: the re-decision pulls it right back.
        self._recheck.redecide(tenant, variant_id, actor=actor, cause=source_asset_id)

    def _announce(
        self,
        variant: AssetRecord,
        *,
        actor: str,
        source_asset_id: str,
        confirmed: dict[str, Any] | None,
    ) -> AssetRecord:
        """Audit the redaction and tell the tenant's systems; answers the variant as it is now."""
        tenant, variant_id = variant.tenant, variant.asset_id
        audit(
            "asset.redacted",
            tenant=tenant,
            asset_id=variant_id,
            status=variant.status.value,
            faces=[f.as_dict() for f in variant.faces],
            versions=variant.versions,
            source=actor,
            source_asset_id=source_asset_id,
            **(confirmed or {}),
        )
        count("AssetsRedacted")
        latest = self._assets.get(tenant, variant_id) or variant
        if self._events is not None and latest.status is AssetStatus.APPROVED:
            self._events.publish(
                "asset.approved",
                tenant,
                {
                    "asset_id": variant_id,
                    "path": variant.path,
                    "reasons": [],
                    "location": f"s3://{self._library}/{variant.dest_key}",
                    "redacted_from": source_asset_id,
                },
            )
        return latest

    # ------------------------------------------------------------------ internals

    @property
    def _engine(self) -> FaceEngine:
        return self._engine_factory()

    def _decided(
        self,
        original: AssetRecord,
        data: bytes,
        png: bytes,
        regions: Sequence[Box],
        key: str,
        variant_id: str,
        actor: str,
        why: str,
        confirmed: dict[str, Any],
    ) -> AssetRecord:
        """Scan the variant as the gate would; refuse unless it is publishable."""
        tenant = original.tenant
        found = self._tenants.policy_and_gallery(tenant)
        if found is None:
            raise NotFound(f"tenant {tenant!r} not found")
        policy, version = found
        engine = self._engine
        observations, matches = self._variant_faces(
            engine, tenant, policy, version, (data, png), regions
        )
        subject_ids = sorted({m.subject_id for m in matches if m.subject_id})
        consents = self._consents.for_subjects(tenant, subject_ids) if subject_ids else {}
        now = self._clock.now()
        # Decided for the channels the original was decided for (docs/channels.md):
        # published only when cleared for each of its publishing purposes.
        recorded = original.clearance
        clearance = decide_channels(
            matches,
            consents,
            tuple(recorded.get("channels") or ()) or (original.purpose,),
            tuple(recorded.get("publishing") or ()) or (original.purpose,),
            now,
        )
        decision = clearance.gate
        if not decision.approved:
            raise Conflict(
                f"the redacted variant would still be held for "
                f"{[r.value for r in decision.reasons]}; nothing was published",
                code="not_publishable",
            )
        return _variant_record(
            original,
            variant_id=variant_id,
            key=key,
            library=self._library,
            decided=(decision, clearance, now),
            observations=observations,
            engine_versions=engine.versions,
            policy=policy,
            png=png,
            by=(actor, why, confirmed),
            pixels=self._pixels,
        )

    def _variant_faces(
        self,
        engine: FaceEngine,
        tenant: str,
        policy: TenantPolicy,
        version: int,
        images: tuple[bytes, bytes],
        regions: Sequence[Box],
    ) -> tuple[list[FaceObservation], list[FaceMatch]]:
        """The variant's faces, matched; refused where a redacted face is still known.

        ``images``: the held original and the variant. A face inside a redacted
        region must match nobody, neither an enrolled person nor the face that
        was there before (compared in memory only).
        """
        data, png = images
        before = [
            o.encoding
            for o in engine.analyze(engine.decode(data))
            if any(_centre_in(o.box, r) for r in regions)
        ]
        observations = engine.analyze(engine.decode(png))
        gallery = self._galleries.load(tenant, version, lambda: self._subjects.templates(tenant))
        hits = gallery.match(
            [o.encoding for o in observations],
            threshold=policy.match_threshold,
            margin=policy.match_margin,
        )
        matches: list[FaceMatch] = []
        for obs, hit in zip(observations, hits, strict=True):
            if any(_centre_in(obs.box, r) for r in regions):
                if hit.subject_id is not None or self._pixels.near(
                    obs.encoding, before, policy.match_threshold
                ):
                    count("RedactionTooWeak")
                    raise Conflict(
                        "the engine still recognises a redacted face; nothing was published",
                        code="redaction_too_weak",
                    )
                matches.append(FaceMatch(obs.box, None, None, identifiable=False))
                continue
            identifiable = min(obs.box.width, obs.box.height) >= policy.min_face_px
            matches.append(
                FaceMatch(obs.box, hit.subject_id, hit.distance, identifiable)
                if identifiable
                else FaceMatch(obs.box, None, None, identifiable=False)
            )
        return observations, matches

    def _note_on_original(
        self,
        original: AssetRecord,
        variant: AssetRecord,
        actor: str,
        why: str,
        faces: list[int],
    ) -> None:
        """The held original names its variant (review state and history)."""
        for _ in range(3):
            record = self._assets.get(original.tenant, original.asset_id)
            if record is None:
                return
            now = self._clock.now()
            note = {"asset_id": variant.asset_id, "key": variant.dest_key, "by": actor}
            review = {k: v for k, v in record.review.items() if k != "pending_redaction"}
            after = replace(
                record,
                review={**review, "redacted": note},
                history=(
                    *record.history,
                    history_entry(
                        now,
                        REDACTED,
                        actor,
                        record,
                        justification=why,
                        variant_asset_id=variant.asset_id,
                        faces=faces,
                    ),
                ),
            )
            try:
                self._placement.transition(record, after)
                return
            except Conflict:
                continue


def _variant_record(
    original: AssetRecord,
    *,
    variant_id: str,
    key: str,
    library: str,
    decided: tuple[Decision, Clearance, datetime],
    observations: Sequence[FaceObservation],
    engine_versions: dict[str, str],
    policy: TenantPolicy,
    png: bytes,
    by: tuple[str, str, dict[str, Any]],
    pixels: PixelRedaction,
) -> AssetRecord:
    """The variant's decision record (``by``: the actor, their justification, who confirmed)."""
    decision, clearance, now = decided
    actor, why, confirmed = by
    tenant = original.tenant
    recorded = original.clearance
    record = AssetRecord(
        tenant=tenant,
        asset_id=variant_id,
        source_bucket=original.dest_bucket,
        source_key=original.dest_key,
        source_version=original.source_version,
        path=key.removeprefix(f"{tenant}/"),
        purpose=original.purpose,
        status=decision.status,
        reasons=(),
        dest_bucket=library,
        dest_key=key,
        decided_at=now,
        faces=face_records(decision, observations),
        versions={**engine_versions, "redaction": pixels.METHOD},
        policy=_redaction_policy(policy, pixels),
        review={"redacted_from": {"asset_id": original.asset_id, "by": actor, **confirmed}},
        # The PNG scanned is the one published: its hash, for the checker.
        published_sha256=sha256_hex(png),
        # An original from before clearance per channel gives its variant none.
        clearance=clearance.as_record() if recorded else {},
    )
    return replace(
        record,
        history=(
            history_entry(
                now,
                REDACTED,
                actor,
                record,
                justification=why,
                source_asset_id=original.asset_id,
                **confirmed,
            ),
        ),
    )


def _redaction_policy(policy: TenantPolicy, pixels: PixelRedaction) -> dict[str, Any]:
    """The thresholds the variant was decided with, and how it was redacted."""
    return {
        "match_threshold": policy.match_threshold,
        "match_margin": policy.match_margin,
        "min_face_px": policy.min_face_px,
        "redaction_pad": pixels.PAD,
        "redaction_blocks": pixels.MOSAIC_BLOCKS,
    }
