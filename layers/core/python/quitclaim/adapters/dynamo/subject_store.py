"""``SubjectRepository`` on the subjects table (details, templates, lookup indexes)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from pynamodb.exceptions import UpdateError

from quitclaim.adapters.dynamo.plumbing import (
    conditional_failed,
    decode_cursor,
    dependency,
    encode_cursor,
    tenant_key,
)
from quitclaim.adapters.dynamo.tables import SubjectModel
from quitclaim.domain.errors import NotFound
from quitclaim.domain.registry import Guardian, Page, Subject


def _lookup_key(tenant: str, value: str | None, *, fold: bool = False) -> str | None:
    """``tenant#value`` for a lookup index, None (not indexed) when there is no value."""
    if not value or not value.strip():
        return None
    text = value.strip()
    return tenant_key(tenant, text.casefold() if fold else text)


def _subject_from(item: SubjectModel) -> Subject:
    guardian = item.guardian
    return Subject(
        tenant=item.tenant,
        subject_id=item.subject_id,
        display_name=item.display_name or "",
        external_ref=item.external_ref,
        email=item.email,
        date_of_birth=date.fromisoformat(item.date_of_birth) if item.date_of_birth else None,
        guardian=Guardian(**guardian) if guardian else None,
        templates=len(item.templates or ()),
        created_at=item.created_at,
        updated_at=item.updated_at,
        email_unreachable=bool(item.email_unreachable),
        biometric_consent_at=item.biometric_consent_at,
        biometric_consent_source=item.biometric_consent_source,
    )


class DynamoSubjects:
    """SubjectRepository on the subjects table."""

    def templates(self, tenant: str) -> Iterable[tuple[str, bytes]]:
        with dependency("subjects query"):
            items = list(
                SubjectModel.query(
                    tenant,
                    consistent_read=True,
                    attributes_to_get=["subject_id", "templates"],
                )
            )
        for item in items:
            for template in item.templates or ():
                yield item.subject_id, bytes(template)

    def create(
        self, tenant: str, subject_id: str, display_name: str, external_ref: str | None
    ) -> None:
        self.save(Subject(tenant, subject_id, display_name, external_ref=external_ref), new=True)

    def save(self, subject: Subject, *, new: bool) -> None:
        """Write the person's details (never touches their templates)."""
        now = datetime.now(UTC)
        details: dict[str, Any] = {
            "display_name": subject.display_name,
            "external_ref": subject.external_ref,
            "email": subject.email,
            "date_of_birth": subject.date_of_birth.isoformat() if subject.date_of_birth else None,
            "guardian": (
                {k: v for k, v in vars_of(subject.guardian).items() if v is not None}
                if subject.guardian
                else None
            ),
            "email_unreachable": True if subject.email_unreachable else None,
            "biometric_consent_at": subject.biometric_consent_at,
            "biometric_consent_source": subject.biometric_consent_source,
            "ref_key": _lookup_key(subject.tenant, subject.external_ref),
            "email_key": _lookup_key(subject.tenant, subject.email, fold=True),
            "updated_at": now,
        }
        with dependency("subject write"):
            if new:
                SubjectModel(subject.tenant, subject.subject_id, created_at=now, **details).save(
                    condition=SubjectModel.subject_id.does_not_exist()
                )
                return
            item = SubjectModel(subject.tenant, subject.subject_id)
            try:
                item.update(
                    actions=[
                        getattr(SubjectModel, k).set(v)
                        if v is not None
                        else getattr(SubjectModel, k).remove()
                        for k, v in details.items()
                    ],
                    condition=SubjectModel.subject_id.exists(),
                )
            except UpdateError as exc:
                if conditional_failed(exc):
                    raise NotFound(f"subject {subject.subject_id} not found") from exc
                raise

    def get(self, tenant: str, subject_id: str) -> Subject | None:
        with dependency("subject read"):
            try:
                item = SubjectModel.get(tenant, subject_id, consistent_read=True)
            except SubjectModel.DoesNotExist:
                return None
        return _subject_from(item)

    def page(self, tenant: str, limit: int, cursor: str | None) -> Page:
        with dependency("subjects query"):
            results = SubjectModel.query(
                tenant, limit=limit, last_evaluated_key=decode_cursor(cursor, tenant)
            )
            items = tuple(_subject_from(item) for item in results)
            return Page(items, encode_cursor(results.last_evaluated_key))

    def delete(self, tenant: str, subject_id: str) -> None:
        with dependency("subject delete"):
            SubjectModel(tenant, subject_id).delete()

    def retain_until(self, tenant: str, subject_id: str, at: datetime) -> None:
        """Let DynamoDB TTL remove the record (templates included) after ``at``."""
        item = SubjectModel(tenant, subject_id)
        with dependency("subject retention"):
            try:
                item.update(
                    actions=[SubjectModel.ttl.set(at)], condition=SubjectModel.subject_id.exists()
                )
            except UpdateError as exc:
                if conditional_failed(exc):
                    raise NotFound(f"subject {subject_id} not found") from exc
                raise

    def add_template(self, tenant: str, subject_id: str, template: bytes) -> None:
        item = SubjectModel(tenant, subject_id)
        with dependency("subject update"):
            try:
                item.update(
                    actions=[
                        SubjectModel.templates.add({template}),
                        SubjectModel.enrolled_at.set(datetime.now(UTC)),
                    ],
                    condition=SubjectModel.subject_id.exists(),
                )
            except UpdateError as exc:
                if conditional_failed(exc):
                    raise NotFound(f"subject {subject_id} not found") from exc
                raise

    def exists(self, tenant: str, subject_id: str) -> bool:
        return self.get(tenant, subject_id) is not None

    def find(self, tenant: str, *, external_ref: str | None, email: str | None) -> list[str]:
        """Ids of the tenant's subjects with this external reference, else this e-mail.

        One query of a sparse index each (keys start with the tenant); e-mail
        is compared case-folded. Indexes are eventually consistent: a person
        registered a moment ago may not be found yet (the delivery is parked,
        and a retry finds them).
        """
        with dependency("subjects index query"):
            ref_key = _lookup_key(tenant, external_ref)
            if ref_key:
                found = sorted({i.subject_id for i in SubjectModel.by_external_ref.query(ref_key)})
                if found:
                    return found
            email_key = _lookup_key(tenant, email, fold=True)
            if email_key:
                return sorted({i.subject_id for i in SubjectModel.by_email.query(email_key)})
        return []

    def display_names(self, tenant: str) -> dict[str, str]:
        with dependency("subjects query"):
            return {
                item.subject_id: item.display_name or ""
                for item in SubjectModel.query(
                    tenant, attributes_to_get=["subject_id", "display_name"]
                )
            }

    def external_refs(self, tenant: str) -> dict[str, str]:
        with dependency("subjects query"):
            return {
                item.subject_id: item.external_ref or item.subject_id
                for item in SubjectModel.query(
                    tenant, attributes_to_get=["subject_id", "external_ref"]
                )
            }


def vars_of(value: Any) -> dict[str, Any]:
    """Fields of a slotted dataclass as a dict."""
    from dataclasses import asdict

    return asdict(value)
