"""The registry: tenants, subjects, enrolment and consents, per tenant.

Every consent change re-decides the subject's assets (``Recheck``) before it
returns, so a withdrawal has taken the images out of the library by the time
the caller hears "done".
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from quitclaim.domain.backlog import BACKLOG_CONCURRENCY_MAX
from quitclaim.domain.errors import (
    Conflict,
    DependencyFailed,
    EnrolmentRejected,
    NotFound,
    ValidationFailed,
)
from quitclaim.domain.four_eyes import (
    PolicyUpdate,
    confirm,
    loosened,
    person_of,
    policy_target,
    requested_by,
)
from quitclaim.domain.models import AssetStatus, Consent, ScanMode, TenantPolicy, is_tenant_id
from quitclaim.domain.ports import (
    AssetRepository,
    Clock,
    ConsentNotifier,
    ConsentRepository,
    EventPublisher,
    ExpirySchedules,
    FaceEngine,
    ObjectStore,
    ObjectVersion,
    ObjectVersions,
    SubjectRepository,
    TenantRepository,
)
from quitclaim.domain.records import AssetRecord
from quitclaim.domain.registry import (
    ConsentEvent,
    ConsentView,
    Evidence,
    Guardian,
    Principal,
    Subject,
)
from quitclaim.domain.retention import RETENTION_FIELDS, retention_changes
from quitclaim.domain.rights import (
    ErasedItem,
    ErasureReport,
    ErasureVerification,
    check,
    verification,
)
from quitclaim.domain.tenancy import TenantProfile
from quitclaim.faces.gallery import encoding_to_bytes
from quitclaim.faces.quality import MIN_SHARPNESS, sharpness
from quitclaim.observability import audit, count, logger
from quitclaim.usecases.asset_decisions import META_ASSET_ID
from quitclaim.usecases.recheck import Recheck

# Below this a reference template is too unreliable to trust for matching.
MIN_ENROL_FACE_PX = 80
# GDPR Art. 8 default: below 16 a parent or guardian must consent.
AGE_OF_CONSENT = 16
PURPOSE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
DOCUMENT_TYPES = {
    "application/pdf": b"%PDF-",
    "image/jpeg": b"\xff\xd8\xff",
    "image/png": b"\x89PNG\r\n\x1a\n",
    # A form tool's response as received (Typeform): the submission is the evidence.
    "application/json": b"{",
}


def new_id(prefix: str) -> str:
    """A random, pseudonymous id (never derived from a name)."""
    return f"{prefix}_{secrets.token_hex(8)}"


def consent_status(consent: Consent, now: datetime) -> str:
    """valid | expired | revoked | not_yet_valid, regardless of purpose."""
    if consent.revoked_at is not None and consent.revoked_at <= now:
        return "revoked"
    if now < consent.valid_from:
        return "not_yet_valid"
    if consent.expires_at is not None and now >= consent.expires_at:
        return "expired"
    return "valid"


@dataclass
class Registry:
    """Tenants, subjects and consents: the compliance officer's ledger."""

    tenants: TenantRepository
    subjects: SubjectRepository
    consents: ConsentRepository
    clock: Clock
    engine_factory: Callable[[], FaceEngine]
    recheck: Recheck | None = None
    documents: ObjectStore | None = None
    documents_bucket: str = ""
    max_document_bytes: int = 10 * 1024 * 1024
    schedules: ExpirySchedules | None = None
    events: EventPublisher | None = None
    # Erasure: the assets naming a person, every version of their documents,
    # and the library (verified empty of them).
    assets: AssetRepository | None = None
    document_versions: ObjectVersions | None = None
    library_bucket: str = ""
    # The person's own e-mails: a confirmation per grant, a receipt per change.
    notices: ConsentNotifier | None = None

    # -- tenants ------------------------------------------------------------
    def create_tenant(
        self, policy: TenantPolicy, profile: TenantProfile | None = None
    ) -> TenantPolicy:
        """Register a tenant with its policy (ids: lowercase letters, digits, dashes)."""
        if not is_tenant_id(policy.tenant):
            raise ValidationFailed(
                "tenant id must be 1-63 lowercase letters, digits or dashes", field="tenant"
            )
        if profile is None:
            self.tenants.save_tenant(policy)
        else:
            self.tenants.save_tenant(policy, profile)
        audit(
            "tenant.created",
            tenant=policy.tenant,
            source="registry",
            plan=profile.plan if profile else None,
            region=profile.region if profile else None,
        )
        return policy

    def policy(self, tenant: str) -> TenantPolicy:
        found = self.tenants.policy(tenant)
        if found is None:
            raise NotFound(f"tenant {tenant!r} not found")
        return found

    def update_policy(
        self, tenant: str, changes: Mapping[str, Any], *, who: Principal
    ) -> PolicyUpdate:
        """Validate and store policy changes; they apply to new uploads only.

        Four eyes (domain/four_eyes.py): a change that loosens the gate is kept
        as a request; it applies when a second, different person sends a
        change giving the same policy. Any other change applies at once.
        """
        current = self.policy(tenant)
        updated = replace(current, **_policy_changes(current, changes))
        loosens = loosened(current, updated)
        if loosens:
            return self._two_person_change(tenant, current, updated, dict(changes), loosens, who)
        self.tenants.update_policy(updated)
        audit(
            "policy.updated",
            tenant=tenant,
            policy=sorted(changes),
            source=who.key_id,
            people=[person_of(who)],
        )
        return PolicyUpdate(updated)

    def adopt_accuracy_advice(
        self, tenant: str, advice: Mapping[str, Any], *, who: Principal
    ) -> PolicyUpdate:
        """Adopt an accuracy audit's threshold advice: always two people, audited.

        Unlike ``update_policy`` a tightening waits for a second person too: the
        advice rests on the organisation's own labelled photos, so a second
        administrator confirms it (docs/accuracy-audit.md). The first call keeps
        the request; a second, different person's call with the same advice applies it.
        """
        if advice.get("status") != "ok" or not isinstance(advice.get("policy_change"), Mapping):
            raise ValidationFailed("the audit gave no threshold advice to adopt", field="advice")
        changes = {
            k: advice["policy_change"][k]
            for k in ("match_threshold", "match_margin")
            if k in advice["policy_change"]
        }
        current = self.policy(tenant)
        updated = replace(current, **_policy_changes(current, changes))
        loosens = loosened(current, updated) or ["accuracy_advice"]
        return self._two_person_change(
            tenant, current, updated, changes, loosens, who, reason="accuracy_advice"
        )

    def _two_person_change(
        self,
        tenant: str,
        current: TenantPolicy,
        updated: TenantPolicy,
        changes: dict[str, Any],
        loosens: list[str],
        who: Principal,
        **why: str,
    ) -> PolicyUpdate:
        """Keep the change as a request, or apply it when a second person asks the same."""
        target = policy_target(updated)
        pending = self.tenants.pending_policy(tenant)
        if pending is None or pending.get("target") != target:
            request = requested_by(
                who,
                self.clock.now().isoformat(),
                changes=changes,
                loosens=loosens,
                target=target,
            )
            self.tenants.set_pending_policy(tenant, request)
            audit(
                "policy.change_requested",
                tenant=tenant,
                policy=sorted(changes),
                source=who.key_id,
                people=[person_of(who)],
                **why,
            )
            return PolicyUpdate(current, _shown(request))
        people = confirm(pending, who, "policy change")
        self.tenants.update_policy(updated)
        self.tenants.set_pending_policy(tenant, None)
        audit(
            "policy.updated",
            tenant=tenant,
            policy=sorted(changes),
            source=who.key_id,
            requested_by=pending["by"],
            people=people,
            **why,
        )
        return PolicyUpdate(updated)

    def pending_policy(self, tenant: str) -> dict[str, Any] | None:
        """The loosening policy change waiting for a second administrator, if any."""
        self.policy(tenant)
        pending = self.tenants.pending_policy(tenant)
        return _shown(pending) if pending else None

    # -- subjects -----------------------------------------------------------
    def create_subject(
        self,
        tenant: str,
        display_name: str,
        *,
        external_ref: str | None = None,
        email: str | None = None,
        date_of_birth: date | None = None,
        guardian: Guardian | None = None,
    ) -> Subject:
        self.policy(tenant)
        subject = _checked_subject(
            Subject(
                tenant,
                new_id("sub"),
                display_name,
                external_ref=external_ref,
                email=email,
                date_of_birth=date_of_birth,
                guardian=guardian,
            ),
            self.clock.now().date(),
        )
        self.subjects.save(subject, new=True)
        audit("subject.created", tenant=tenant, subject_id=subject.subject_id, source="registry")
        return self.subject(tenant, subject.subject_id)

    def find_subjects(
        self, tenant: str, *, external_ref: str | None = None, email: str | None = None
    ) -> list[str]:
        """Subject ids with this external reference, else this e-mail (may be several)."""
        if not external_ref and not email:
            return []
        return self.subjects.find(tenant, external_ref=external_ref, email=email)

    def subject(self, tenant: str, subject_id: str) -> Subject:
        found = self.subjects.get(tenant, subject_id)
        if found is None:
            raise NotFound(f"subject {subject_id} not found")
        return found

    def update_subject(self, tenant: str, subject_id: str, changes: Mapping[str, Any]) -> Subject:
        allowed = {
            "display_name",
            "external_ref",
            "email",
            "date_of_birth",
            "guardian",
            "email_unreachable",
        }
        unknown = set(changes) - allowed
        if unknown:
            raise ValidationFailed(f"cannot change {sorted(unknown)}", field=sorted(unknown)[0])
        current = self.subject(tenant, subject_id)
        changes = dict(changes)
        if changes.get("email", current.email) != current.email:
            changes.setdefault("email_unreachable", False)  # a new address: reachable again
        updated = _checked_subject(replace(current, **changes), self.clock.now().date())
        self.subjects.save(updated, new=False)
        audit("subject.updated", tenant=tenant, subject_id=subject_id, source="registry")
        return self.subject(tenant, subject_id)

    def delete_subject(self, tenant: str, subject_id: str, *, actor: str) -> ErasureReport:
        """Erase the person (GDPR Art. 17) and prove it with a completeness report.

        1. every live consent is withdrawn (recorded) and its expiry schedule cancelled;
        2. the subject record goes (contact details, guardian, templates) and the
           gallery version is bumped, so no warm function matches them again;
        3. every asset naming them is decided again with their face unknown
           (``Recheck.forget_subject``): each one leaves the library;
        4. every version of their signed documents is deleted;
        5. their consents become tombstones (ids, purposes, dates, outcome, hash);
        6. every store is read again (``verify_erasure``).

        A run that stopped half-way is completed by calling again; with
        nothing of the person left but tombstones, the answer is ``NotFound``.
        """
        subject = self.subjects.get(tenant, subject_id)
        leftovers = self.consents.leftovers(tenant, subject_id)
        documents = self._document_versions(tenant, subject_id)
        appearances = self.assets.appearances(tenant, subject_id) if self.assets else []
        if subject is None and not documents and not appearances and not any(leftovers.values()):
            raise NotFound(f"subject {subject_id} not found")
        now = self.clock.now()
        deleted: list[ErasedItem] = []
        details = self.consents.details(tenant, subject_id)
        for consent, _, _ in details:
            if consent.revoked_at is None:
                self._change(consent, replace(consent, revoked_at=now), "revoked", "erasure", actor)
            self._unschedule(consent)
        if details:
            deleted.append(
                ErasedItem(
                    "expiry schedules",
                    "cancelled",
                    "one-time schedules of their consents",
                    len(details),
                    tuple(c.consent_id for c, _, _ in details),
                )
            )
        if subject is not None:
            self.subjects.delete(tenant, subject_id)
            deleted += [
                ErasedItem(
                    "subjects table",
                    "deleted",
                    "the person's record: name, reference, e-mail, date of birth, guardian",
                    1,
                ),
                ErasedItem("subjects table", "deleted", "face templates", subject.templates),
            ]
        version = self.tenants.bump_gallery_version(tenant)
        deleted.append(
            ErasedItem("gallery", "rebuilt", f"gallery version {version}, without them", 1)
        )
        asset_ids = sorted(set(appearances) | set(self.assets_naming(tenant, subject_id)))
        changes = (
            self.recheck.forget_subject(tenant, subject_id, asset_ids, actor=actor)
            if self.recheck is not None
            else []
        )
        withdrawn = tuple(c.asset_id for c in changes if c.before is AssetStatus.APPROVED)
        deleted += [
            ErasedItem(
                "assets table",
                "re-decided",
                "their faces un-attributed (unknown) and each asset decided again",
                len(asset_ids),
                tuple(asset_ids),
            ),
            ErasedItem(
                "appearances table", "deleted", "rows linking them to images", len(appearances)
            ),
            ErasedItem(
                "library bucket",
                "withdrawn",
                "published images they were in",
                len(withdrawn),
                withdrawn,
            ),
        ]
        for found in documents:
            self._documents().delete(self.documents_bucket, found.key, found.version_id)
        deleted.append(
            ErasedItem(
                "documents bucket",
                "deleted",
                "signed consent documents, every version and delete marker",
                len(documents),
                tuple(f"{v.key}?versionId={v.version_id}" for v in documents),
            )
        )
        for consent, _, _ in details:
            self.consents.tombstone(consent, now, actor=actor)
        deleted.append(
            ErasedItem(
                "consents table",
                "reduced to tombstones",
                "removed: signer, form version, document keys and types, history details",
                len(details),
                tuple(c.consent_id for c, _, _ in details),
            )
        )
        audit("subject.deleted", tenant=tenant, subject_id=subject_id, source=actor)
        if self.events is not None:
            self.events.publish("subject.erased", tenant, {"subject_id": subject_id})
        held = len(asset_ids)
        kept = (
            ErasedItem(
                "consents table",
                "kept",
                "tombstones as proof of consent (Art. 7(1), 17(3)(e)): ids, purposes, dates, "
                "outcome, the document's SHA-256",
                len(details),
                tuple(c.consent_id for c, _, _ in details),
            ),
            ErasedItem(
                "quarantine bucket",
                "kept",
                "the images they were in, held with their face unattributed; delete them "
                "through the review queue if the request covers the photos themselves",
                held,
                tuple(asset_ids),
            ),
            ErasedItem(
                "backups and logs",
                "kept",
                "point-in-time recovery of the tables holds earlier states for 35 days "
                "(after a restore, erase again: this erasure is logged); audit events and "
                "webhook delivery records hold the pseudonymous id only",
                0,
            ),
        )
        return ErasureReport(
            tenant=tenant,
            subject_id=subject_id,
            request_id=new_id("req"),
            erased_at=now,
            actor=actor,
            deleted=tuple(deleted),
            kept=kept,
            verification=self.verify_erasure(tenant, subject_id, asset_ids),
        )

    def verify_erasure(
        self, tenant: str, subject_id: str, asset_ids: Iterable[str] = ()
    ) -> ErasureVerification:
        """Read every store again: nothing of the person may remain but tombstones.

        ``asset_ids``: the assets the erasure re-decided (from its report), checked
        to be out of the library.
        """
        leftovers = self.consents.leftovers(tenant, subject_id)
        templates = sum(1 for sid, _ in self.subjects.templates(tenant) if sid == subject_id)
        appearances = self.assets.appearances(tenant, subject_id) if self.assets else []
        published = self._published(tenant, asset_ids)
        checks = [
            check(
                "subjects table",
                int(self.subjects.get(tenant, subject_id) is not None),
                "subject record",
            ),
            check("gallery", templates, "face templates"),
            check(
                "consents table",
                sum(1 for held in leftovers.values() if held),
                "consents still holding evidence",
            ),
            check(
                "documents bucket",
                len(self._document_versions(tenant, subject_id)),
                "document versions",
            ),
            check("appearances table", len(appearances), "appearance rows"),
            check(
                "assets table",
                len(self.assets_naming(tenant, subject_id)),
                "decision records naming them",
            ),
            check("library bucket", len(published), "published images they were in"),
        ]
        return verification(subject_id, self.clock.now(), checks)

    def _documents(self) -> ObjectStore:
        if self.documents is None:
            raise DependencyFailed("documents are not configured")
        return self.documents

    def _document_versions(self, tenant: str, subject_id: str) -> list[ObjectVersion]:
        if self.document_versions is None:
            return []
        return self.document_versions.versions(self.documents_bucket, f"{tenant}/{subject_id}/")

    def assets_naming(self, tenant: str, subject_id: str) -> list[str]:
        """Ids of the assets whose decision record attributes a face to the person.

        One query of the tenant's assets index, filtered (also finds a record
        whose appearance row is missing, e.g. after a TTL purge).
        """
        if self.assets is None:
            return []
        return [r.asset_id for r in every_asset(self.assets, tenant, subject_id=subject_id)]

    def _published(self, tenant: str, asset_ids: Iterable[str]) -> list[str]:
        """Of these assets, those approved or whose bytes sit in the library."""
        if self.assets is None:
            return []
        found: list[str] = []
        for asset_id in sorted(set(asset_ids)):
            record = self.assets.get(tenant, asset_id)
            if record is None:
                continue
            placed = (
                self.documents.head(self.library_bucket, record.dest_key)
                if self.documents is not None and self.library_bucket and record.dest_key
                else None
            )
            if record.status is AssetStatus.APPROVED or (
                placed is not None and placed.metadata.get(META_ASSET_ID) == asset_id
            ):
                found.append(asset_id)
        return found

    def retain_subject_until(self, tenant: str, subject_id: str, at: datetime) -> None:
        """Keep the person's record (and templates) only until ``at``.

        DynamoDB TTL deletes it afterwards; the TTL stream purges the gallery
        and appearance rows (``Expiry.purge_subject``).
        """
        self.subject(tenant, subject_id)
        self.subjects.retain_until(tenant, subject_id, at)
        audit("subject.retention_set", tenant=tenant, subject_id=subject_id, source="registry")

    def enrol_subject(
        self,
        tenant: str,
        display_name: str,
        photos: Iterable[bytes],
        *,
        external_ref: str | None = None,
        subject_id: str | None = None,
        biometric_consent: bool,
        consent_source: str = "registry",
    ) -> str:
        """Enrol a person from reference photos with exactly one face each.

        Templates are computed only here, for a person who gave explicit
        consent to matching (``biometric_consent``, recorded on the subject
        with when and through what; refused without it), and stored; nothing
        is stored when any photo is refused.
        """
        if biometric_consent is not True:
            raise ValidationFailed(
                "enrolment needs the person's explicit consent to biometric matching "
                "(GDPR Art. 9(2)(a)): send biometric_consent: true",
                field="biometric_consent",
            )
        self.policy(tenant)
        templates = self._templates(photos)
        if subject_id is None:
            subject_id = self.create_subject(
                tenant, display_name, external_ref=external_ref
            ).subject_id
        subject = self.subject(tenant, subject_id)
        if (
            subject.biometric_consent_at is None
            or subject.biometric_consent_source != consent_source
        ):
            self.subjects.save(
                replace(
                    subject,
                    biometric_consent_at=self.clock.now(),
                    biometric_consent_source=consent_source,
                ),
                new=False,
            )
        for template in templates:
            self.subjects.add_template(tenant, subject_id, template)
        self.tenants.bump_gallery_version(tenant)
        audit("subject.enrolled", tenant=tenant, subject_id=subject_id, source="registry")
        return subject_id

    def check_reference_photos(self, photos: Iterable[bytes]) -> int:
        """The enrolment quality gates alone (nothing stored): how many templates would be."""
        return len(self._templates(photos))

    def _templates(self, photos: Iterable[bytes]) -> list[bytes]:
        engine = self.engine_factory()
        templates: list[bytes] = []
        for index, photo in enumerate(photos):
            image = engine.decode(photo)
            faces = engine.analyze(image)
            if len(faces) != 1:
                raise EnrolmentRejected(
                    f"reference photo {index + 1} must show exactly one face; found {len(faces)}",
                    field=f"photos[{index}]",
                    code="face_count",
                )
            face = faces[0]
            if min(face.box.width, face.box.height) < MIN_ENROL_FACE_PX:
                raise EnrolmentRejected(
                    f"reference photo {index + 1}: face is {face.box.width}px wide; "
                    f"at least {MIN_ENROL_FACE_PX}px needed",
                    field=f"photos[{index}]",
                    code="face_too_small",
                )
            frame = image.frames[face.frame]
            # Boxes are in full-image pixels; a reduced-scale decode is smaller.
            box = face.box if image.scale == 1 else face.box.scaled(1 / image.scale)
            if sharpness(frame, box) < MIN_SHARPNESS:
                raise EnrolmentRejected(
                    f"reference photo {index + 1}: the face is too blurred to enrol",
                    field=f"photos[{index}]",
                    code="face_blurred",
                )
            templates.append(encoding_to_bytes(face.encoding))
        if not templates:
            raise ValidationFailed("at least one reference photo is required", field="photos")
        return templates

    # -- consents -----------------------------------------------------------
    def grant_consent(
        self,
        tenant: str,
        subject_id: str,
        purposes: Iterable[str],
        valid_from: datetime,
        expires_at: datetime | None,
        *,
        source: str = "registry",
        signer: str | None = None,
        form_version: str = "unspecified",
        document: bytes | None = None,
        document_type: str | None = None,
        document_url: str | None = None,
        consent_id: str | None = None,
        actor: str = "system",
        notify: bool = True,
        age_of_consent: int = AGE_OF_CONSENT,
        biometric_consent: bool | None = None,
    ) -> Consent:
        """Record a signed quitclaim for the given purposes and window.

        ``notify``: e-mail the person a confirmation with a standing withdrawal
        link (a bulk import passes False unless it asks for the mails).

        ``consent_id``: a caller that may repeat the same grant (a webhook
        redelivered) passes a stable id; the repeat then raises ``Conflict``
        (code ``exists``) instead of recording a second consent.
        """
        policy = self.policy(tenant)
        wanted = frozenset(p.strip().lower() for p in purposes if p.strip())
        if not wanted:
            raise ValidationFailed("at least one purpose is required", field="purposes")
        unknown = wanted - policy.purposes
        if unknown:
            raise ValidationFailed(
                f"unknown purposes {sorted(unknown)}; this tenant allows {sorted(policy.purposes)}",
                field="purposes",
            )
        _check_window(valid_from, expires_at)
        subject = self.subject(tenant, subject_id)
        signer = (signer or subject.display_name).strip()
        age = subject.age_on(valid_from.date())
        if age is not None and age < age_of_consent:
            guardian = subject.guardian
            if guardian is None or guardian.name.strip().casefold() != signer.casefold():
                raise ValidationFailed(
                    f"the subject is under {age_of_consent}: the guardian on record must sign",
                    field="signer",
                )
        consent = Consent(
            tenant=tenant,
            subject_id=subject_id,
            consent_id=consent_id or new_id("con"),
            purposes=wanted,
            valid_from=valid_from,
            expires_at=expires_at,
        )
        evidence = Evidence(
            signer=signer,
            form_version=form_version,
            source=source,
            document_url=document_url,
            biometric_consent=biometric_consent,
        )
        if document is not None:
            evidence = self._store_document(consent, document, document_type, evidence)
        self.consents.save(consent, source=source, evidence=evidence, actor=actor)
        self._schedule(consent)
        audit(
            "consent.granted",
            tenant=tenant,
            subject_id=subject_id,
            consent_id=consent.consent_id,
            source=source,
        )
        self._recheck(tenant, subject_id, actor)
        if notify and self.notices is not None:
            self.notices.granted(consent)
        return consent

    def renew_consent(
        self,
        tenant: str,
        subject_id: str,
        consent_id: str,
        expires_at: datetime | None,
        *,
        valid_from: datetime | None = None,
        source: str = "registry",
        actor: str = "system",
        expected_version: int | None = None,
    ) -> Consent:
        """A new validity window for the same consent; withdrawn ones need a new grant.

        ``expected_version``: renew only that version of the consent (a
        renewal link works once); another is a ``Conflict``, and so is a
        concurrent change (the write is conditional on the version read).
        """
        consent = self._consent(tenant, subject_id, consent_id)
        if expected_version is not None and consent.version != expected_version:
            raise Conflict("the consent changed meanwhile; read it again")
        if consent.revoked_at is not None:
            raise Conflict("a withdrawn consent cannot be renewed; grant a new one", code="revoked")
        start = valid_from or consent.valid_from
        _check_window(start, expires_at)
        renewed = replace(consent, valid_from=start, expires_at=expires_at)
        result = self._change(consent, renewed, "renewed", source, actor)
        self._schedule(result)
        self._recheck(tenant, subject_id, actor)
        if self.notices is not None:
            self.notices.changed(result, "renewed")
        return result

    def revoke_consent(
        self,
        tenant: str,
        subject_id: str,
        consent_id: str,
        *,
        source: str = "registry",
        actor: str = "system",
    ) -> Consent:
        """Withdraw a consent now; the record of the withdrawal is kept."""
        consent = self._consent(tenant, subject_id, consent_id)
        if consent.revoked_at is not None:
            return consent
        revoked = self._change(
            consent, replace(consent, revoked_at=self.clock.now()), "revoked", source, actor
        )
        self._unschedule(revoked)
        self._recheck(tenant, subject_id, actor)
        if self.notices is not None:
            self.notices.changed(revoked, "revoked")
        return revoked

    def consent_views(self, tenant: str, subject_id: str) -> list[ConsentView]:
        self.subject(tenant, subject_id)
        now = self.clock.now()
        return [
            _view(c, e, h, now)
            for c, e, h in sorted(
                self.consents.details(tenant, subject_id), key=lambda d: d[0].valid_from
            )
        ]

    def consent_view(self, tenant: str, subject_id: str, consent_id: str) -> ConsentView:
        found = self.consents.get_details(tenant, subject_id, consent_id)
        if found is None:
            raise NotFound(f"consent {consent_id} not found")
        return _view(*found, self.clock.now())

    def consent_document(self, tenant: str, subject_id: str, consent_id: str) -> tuple[bytes, str]:
        view = self.consent_view(tenant, subject_id, consent_id)
        evidence = view.evidence
        if evidence is None or not evidence.document_key or self.documents is None:
            raise NotFound("this consent has no document")
        data = self.documents.read(self.documents_bucket, evidence.document_key)
        return data, evidence.document_type or "application/octet-stream"

    # -- internals ------------------------------------------------------------
    def _consent(self, tenant: str, subject_id: str, consent_id: str) -> Consent:
        consent = self.consents.get(tenant, subject_id, consent_id)
        if consent is None:
            raise NotFound(f"consent {consent_id} not found")
        return consent

    def _change(
        self, before: Consent, after: Consent, event: str, source: str, actor: str
    ) -> Consent:
        detail: dict[str, Any] = {}
        if event == "renewed":
            detail = {
                "valid_from": after.valid_from.isoformat(),
                "expires_at": after.expires_at.isoformat() if after.expires_at else None,
            }
        changed = self.consents.change(
            before, after, ConsentEvent(self.clock.now(), event, source, actor, detail)
        )
        audit(
            f"consent.{event}",
            tenant=before.tenant,
            subject_id=before.subject_id,
            consent_id=before.consent_id,
            source=source,
        )
        return changed

    def _schedule(self, consent: Consent) -> None:
        # A failed schedule is not fatal: the hourly sweep expires it anyway.
        if self.schedules is None:
            return
        try:
            self.schedules.schedule(consent)
        except DependencyFailed:
            logger.error("expiry schedule not created", consent_id=consent.consent_id)
            count("ExpiryScheduleFailed")

    def _unschedule(self, consent: Consent) -> None:
        if self.schedules is None:
            return
        try:
            self.schedules.cancel(consent)
        except DependencyFailed:
            # A leftover schedule fires, finds the consent withdrawn, does nothing.
            logger.warning("expiry schedule not removed", consent_id=consent.consent_id)
            count("ExpiryScheduleCancelFailed")

    def _recheck(self, tenant: str, subject_id: str, actor: str) -> None:
        if self.recheck is not None:
            self.recheck.recheck_subject(tenant, subject_id, actor=actor)

    def _store_document(
        self, consent: Consent, data: bytes, document_type: str | None, evidence: Evidence
    ) -> Evidence:
        if self.documents is None:
            raise ValidationFailed("documents are not configured", field="document")
        kind = (document_type or "").lower()
        magic = DOCUMENT_TYPES.get(kind)
        if magic is None:
            raise ValidationFailed(
                f"document_type must be one of {sorted(DOCUMENT_TYPES)}", field="document_type"
            )
        if not data or len(data) > self.max_document_bytes:
            raise ValidationFailed(
                f"document must be 1 byte to {self.max_document_bytes} bytes", field="document"
            )
        if not data.startswith(magic):
            raise ValidationFailed(f"document is not a {kind} file", field="document")
        digest = hashlib.sha256(data).hexdigest()
        key = f"{consent.tenant}/{consent.subject_id}/{consent.consent_id}/{digest}"
        self.documents.write(
            self.documents_bucket, key, data, {"sha256": digest}, content_type=kind
        )
        return replace(evidence, document_key=key, document_sha256=digest, document_type=kind)


def every_asset(
    assets: AssetRepository, tenant: str, *, subject_id: str | None = None
) -> Iterator[AssetRecord]:
    """Every asset record of the tenant (naming ``subject_id``, if given), page by page."""
    cursor: str | None = None
    while True:
        page = assets.page(
            tenant,
            status=None,
            reason=None,
            subject_id=subject_id,
            since=None,
            until=None,
            limit=200,
            cursor=cursor,
        )
        yield from page.items
        cursor = page.next_cursor
        if cursor is None:
            return


def _view(
    consent: Consent,
    evidence: Evidence | None,
    history: tuple[ConsentEvent, ...],
    now: datetime,
) -> ConsentView:
    return ConsentView(
        tenant=consent.tenant,
        subject_id=consent.subject_id,
        consent_id=consent.consent_id,
        purposes=tuple(sorted(consent.purposes)),
        valid_from=consent.valid_from,
        expires_at=consent.expires_at,
        revoked_at=consent.revoked_at,
        status=consent_status(consent, now),
        version=consent.version,
        evidence=evidence,
        history=history,
    )


def _check_window(valid_from: datetime, expires_at: datetime | None) -> None:
    if valid_from.tzinfo is None:
        raise ValidationFailed("valid_from must carry a time zone", field="valid_from")
    if expires_at is not None and expires_at.tzinfo is None:
        raise ValidationFailed("expires_at must carry a time zone", field="expires_at")
    if expires_at is not None and expires_at <= valid_from:
        raise ValidationFailed("expires_at must be after valid_from", field="expires_at")


def _checked_subject(subject: Subject, today: date) -> Subject:
    name = (subject.display_name or "").strip()
    if not name or len(name) > 200:
        raise ValidationFailed("display_name must be 1-200 characters", field="display_name")
    if subject.email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", subject.email):
        raise ValidationFailed("email is not a valid address", field="email")
    if subject.date_of_birth is not None and subject.date_of_birth > today:
        raise ValidationFailed("date_of_birth is in the future", field="date_of_birth")
    if subject.guardian is not None and not subject.guardian.name.strip():
        raise ValidationFailed("guardian.name must not be empty", field="guardian.name")
    return replace(subject, display_name=name)


def _shown(pending: Mapping[str, Any]) -> dict[str, Any]:
    """A pending policy change as clients see it (the target stays inside)."""
    return {k: v for k, v in pending.items() if k != "target"}


def _policy_changes(current: TenantPolicy, changes: Mapping[str, Any]) -> dict[str, Any]:
    allowed = {
        "match_threshold",
        "match_margin",
        "min_face_px",
        "default_purpose",
        "purposes",
        "scan_modes",
        "unknown_face_policy",
        "language",
        "auto_redact",
        "publishing_purposes",
        "backlog_concurrency",
        *RETENTION_FIELDS,
    }
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationFailed(f"unknown policy fields {sorted(unknown)}", field=sorted(unknown)[0])
    out: dict[str, Any] = {}
    if "match_threshold" in changes:
        value = float(changes["match_threshold"])
        if not 0.2 <= value <= 0.6:
            raise ValidationFailed("match_threshold must be in [0.2, 0.6]", field="match_threshold")
        out["match_threshold"] = value
    if "match_margin" in changes:
        value = float(changes["match_margin"])
        if not 0.0 <= value <= 0.3:
            raise ValidationFailed("match_margin must be in [0, 0.3]", field="match_margin")
        out["match_margin"] = value
    if "min_face_px" in changes:
        px = int(changes["min_face_px"])
        if not 20 <= px <= 400:
            raise ValidationFailed("min_face_px must be in [20, 400]", field="min_face_px")
        out["min_face_px"] = px
    purposes = current.purposes
    if "purposes" in changes:
        purposes = frozenset(str(p).strip().lower() for p in changes["purposes"])
        if not purposes or not all(PURPOSE.fullmatch(p) for p in purposes):
            raise ValidationFailed(
                "purposes must be 1+ short lowercase names (a-z, 0-9, -)", field="purposes"
            )
        out["purposes"] = purposes
    default = str(changes.get("default_purpose", current.default_purpose)).strip().lower()
    if default not in purposes:
        raise ValidationFailed("default_purpose must be one of purposes", field="default_purpose")
    out["default_purpose"] = default
    if "scan_modes" in changes:
        modes = dict(changes["scan_modes"])
        valid = {m.value for m in ScanMode}
        for collection, mode in modes.items():
            if mode not in valid:
                raise ValidationFailed(
                    f"scan mode for {collection!r} must be one of {sorted(valid)}",
                    field="scan_modes",
                )
        modes.setdefault("*", ScanMode.RECOGNIZE.value)
        out["scan_modes"] = tuple(sorted((k, ScanMode(v)) for k, v in modes.items()))
    if "unknown_face_policy" in changes:
        policy = str(changes["unknown_face_policy"])
        if policy not in ("quarantine", "review"):
            raise ValidationFailed(
                "unknown_face_policy must be quarantine or review", field="unknown_face_policy"
            )
        out["unknown_face_policy"] = policy
    if "language" in changes:
        language = str(changes["language"])
        if language not in ("en", "nl"):
            raise ValidationFailed("language must be en or nl", field="language")
        out["language"] = language
    if "auto_redact" in changes:
        if not isinstance(changes["auto_redact"], bool):
            raise ValidationFailed("auto_redact must be true or false", field="auto_redact")
        out["auto_redact"] = changes["auto_redact"]
    publishing = current.publishing_purposes
    if "publishing_purposes" in changes:
        publishing = frozenset(str(p).strip().lower() for p in changes["publishing_purposes"])
        out["publishing_purposes"] = publishing
    if not publishing <= purposes:
        raise ValidationFailed(
            "publishing_purposes must be among purposes", field="publishing_purposes"
        )
    if "backlog_concurrency" in changes:
        value = changes["backlog_concurrency"]
        if type(value) is not int or not 1 <= value <= BACKLOG_CONCURRENCY_MAX:
            raise ValidationFailed(
                f"backlog_concurrency must be 1-{BACKLOG_CONCURRENCY_MAX}",
                field="backlog_concurrency",
            )
        out["backlog_concurrency"] = value
    out.update(retention_changes(changes))
    return out
