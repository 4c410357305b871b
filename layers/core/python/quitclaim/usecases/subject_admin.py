"""Subjects: their record, enrolment from reference photos, and retention."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from quitclaim.domain.errors import (
    EnrolmentRejected,
    ValidationFailed,
)
from quitclaim.domain.registry import (
    Page,
    Subject,
)
from quitclaim.faces.gallery import encoding_to_bytes
from quitclaim.faces.quality import MIN_SHARPNESS, sharpness
from quitclaim.observability import audit
from quitclaim.usecases.admin_requests import NewSubject
from quitclaim.usecases.ledger import MIN_ENROL_FACE_PX, Ledger, new_id, page_limit


@dataclass
class SubjectAdmin(Ledger):
    """The people a tenant knows: record, reference templates, retention."""

    def create(self, tenant: str, request: NewSubject) -> Subject:
        """Add a person to the register (no templates yet: ``enrol`` adds them)."""
        self.policy(tenant)
        subject = _checked_subject(
            Subject(
                tenant,
                new_id("sub"),
                request.display_name,
                external_ref=request.external_ref,
                email=request.email,
                date_of_birth=request.date_of_birth,
                guardian=request.guardian,
            ),
            self.clock.now().date(),
        )
        self.subjects.save(subject, new=True)
        audit("subject.created", tenant=tenant, subject_id=subject.subject_id, source="registry")
        return self.subject(tenant, subject.subject_id)

    def create_subject(self, tenant: str, display_name: str, **details: Any) -> Subject:
        """``create`` for callers holding the fields (``NewSubject``'s keyword names)."""
        return self.create(tenant, NewSubject(display_name, **details))

    def page(self, tenant: str, limit: int, cursor: str | None) -> Page:
        """One page of the tenant's subjects (``limit`` 1 to ``MAX_PAGE``)."""
        return self.subjects.page(tenant, page_limit(limit), cursor)

    def find_subjects(
        self, tenant: str, *, external_ref: str | None = None, email: str | None = None
    ) -> list[str]:
        """Subject ids with this external reference, else this e-mail (may be several)."""
        if not external_ref and not email:
            return []
        return self.subjects.find(tenant, external_ref=external_ref, email=email)

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

    def retain_subject_until(self, tenant: str, subject_id: str, at: datetime) -> None:
        """Keep the person's record (and templates) only until ``at``.

        DynamoDB TTL deletes it afterwards; the TTL stream purges the gallery
        and appearance rows (``Expiry.purge_subject``).
        """
        self.subject(tenant, subject_id)
        self.subjects.retain_until(tenant, subject_id, at)
        audit("subject.retention_set", tenant=tenant, subject_id=subject_id, source="registry")

    def enrol(
        self,
        tenant: str,
        subject_id: str,
        photos: Iterable[bytes],
        *,
        biometric_consent: bool,
        source: str = "api",
    ) -> Subject:
        """Add reference photos to a known subject; the subject as it now stands."""
        subject = self.subject(tenant, subject_id)
        self.enrol_subject(
            tenant,
            subject.display_name,
            photos,
            subject_id=subject_id,
            biometric_consent=biometric_consent,
            consent_source=source,
        )
        return self.subject(tenant, subject_id)

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
