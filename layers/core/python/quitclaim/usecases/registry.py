"""Minimal registry use-cases: tenants, enrolment, consent grant and revoke."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from quitclaim.domain.errors import EnrolmentRejected, NotFound, ValidationFailed
from quitclaim.domain.models import Consent, TenantPolicy, is_tenant_id
from quitclaim.domain.ports import (
    Clock,
    ConsentRepository,
    SubjectRepository,
    TenantRepository,
)
from quitclaim.faces.gallery import encoding_to_bytes
from quitclaim.faces.ports import FaceEngine
from quitclaim.observability import audit

# Below this a reference template is too unreliable to trust for matching.
MIN_ENROL_FACE_PX = 80


def new_id(prefix: str) -> str:
    """A random, pseudonymous id (never derived from a name)."""
    return f"{prefix}_{secrets.token_hex(8)}"


@dataclass
class Registry:
    """Tenants, subjects and consents: the compliance officer's ledger."""

    tenants: TenantRepository
    subjects: SubjectRepository
    consents: ConsentRepository
    clock: Clock
    engine_factory: Callable[[], FaceEngine]

    def create_tenant(self, policy: TenantPolicy) -> TenantPolicy:
        """Register a tenant with its policy (ids: lowercase letters, digits, dashes)."""
        if not is_tenant_id(policy.tenant):
            raise ValidationFailed(
                "tenant id must be 1-63 lowercase letters, digits or dashes", field="tenant"
            )
        self.tenants.save_tenant(policy)
        return policy

    def enrol_subject(
        self,
        tenant: str,
        display_name: str,
        photos: Iterable[bytes],
        *,
        external_ref: str | None = None,
        subject_id: str | None = None,
    ) -> str:
        """Enrol a person from reference photos with exactly one face each.

        Templates are computed only here, for a person who consented to
        matching, and stored; nothing is stored when any photo is refused.
        """
        self._require_tenant(tenant)
        if not display_name.strip():
            raise ValidationFailed("display_name must not be empty", field="display_name")
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
            templates.append(encoding_to_bytes(face.encoding))
        if not templates:
            raise ValidationFailed("at least one reference photo is required", field="photos")
        new = subject_id is None
        sid = subject_id or new_id("sub")
        if new:
            self.subjects.create(tenant, sid, display_name.strip(), external_ref)
        elif not self.subjects.exists(tenant, sid):
            raise NotFound(f"subject {sid} not found")
        for template in templates:
            self.subjects.add_template(tenant, sid, template)
        self.tenants.bump_gallery_version(tenant)
        audit("subject.enrolled", tenant=tenant, subject_id=sid, source="registry")
        return sid

    def grant_consent(
        self,
        tenant: str,
        subject_id: str,
        purposes: Iterable[str],
        valid_from: datetime,
        expires_at: datetime | None,
        *,
        source: str = "registry",
    ) -> Consent:
        """Record a signed quitclaim for the given purposes and window."""
        policy = self._require_tenant(tenant)
        wanted = frozenset(p.strip().lower() for p in purposes if p.strip())
        if not wanted:
            raise ValidationFailed("at least one purpose is required", field="purposes")
        unknown = wanted - policy.purposes
        if unknown:
            raise ValidationFailed(
                f"unknown purposes {sorted(unknown)}; this tenant allows {sorted(policy.purposes)}",
                field="purposes",
            )
        if valid_from.tzinfo is None or (expires_at is not None and expires_at.tzinfo is None):
            raise ValidationFailed("dates must carry a time zone", field="valid_from")
        if expires_at is not None and expires_at <= valid_from:
            raise ValidationFailed("expires_at must be after valid_from", field="expires_at")
        if not self.subjects.exists(tenant, subject_id):
            raise NotFound(f"subject {subject_id} not found")
        consent = Consent(
            tenant=tenant,
            subject_id=subject_id,
            consent_id=new_id("con"),
            purposes=wanted,
            valid_from=valid_from,
            expires_at=expires_at,
        )
        self.consents.save(consent, source=source)
        audit(
            "consent.granted",
            tenant=tenant,
            subject_id=subject_id,
            consent_id=consent.consent_id,
            source=source,
        )
        return consent

    def revoke_consent(
        self, tenant: str, subject_id: str, consent_id: str, *, source: str = "registry"
    ) -> Consent:
        """Withdraw a consent now; the record of the withdrawal is kept."""
        consent = self.consents.get(tenant, subject_id, consent_id)
        if consent is None:
            raise NotFound(f"consent {consent_id} not found")
        if consent.revoked_at is not None:
            return consent
        revoked = self.consents.revoke(consent, self.clock.now(), source=source)
        audit(
            "consent.revoked",
            tenant=tenant,
            subject_id=subject_id,
            consent_id=consent_id,
            source=source,
        )
        return revoked

    def _require_tenant(self, tenant: str) -> TenantPolicy:
        policy = self.tenants.policy(tenant)
        if policy is None:
            raise NotFound(f"tenant {tenant!r} not found")
        return policy
