"""Subjects and their consents: the registry, consent expiry and imports, the request log."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Protocol

from quitclaim.domain.models import Consent
from quitclaim.domain.registry import ConsentEvent, Evidence, Page, Subject
from quitclaim.domain.rights import DataRequest, RequestKind


class SubjectRepository(Protocol):
    def templates(self, tenant: str) -> Iterable[tuple[str, bytes]]:
        """Every enrolled template of the tenant as (subject_id, encoding bytes)."""
        ...

    def create(
        self, tenant: str, subject_id: str, display_name: str, external_ref: str | None
    ) -> None: ...

    def add_template(self, tenant: str, subject_id: str, template: bytes) -> None: ...

    def exists(self, tenant: str, subject_id: str) -> bool: ...

    def find(self, tenant: str, *, external_ref: str | None, email: str | None) -> list[str]:
        """Subject ids by external reference first, else by e-mail (case-insensitive)."""
        ...

    def display_names(self, tenant: str) -> dict[str, str]:
        """subject_id → display name (for people-facing views, never for logs)."""
        ...

    def get(self, tenant: str, subject_id: str) -> Subject | None: ...

    def save(self, subject: Subject, *, new: bool) -> None: ...

    def page(self, tenant: str, limit: int, cursor: str | None) -> Page: ...

    def delete(self, tenant: str, subject_id: str) -> None: ...

    def retain_until(self, tenant: str, subject_id: str, at: datetime) -> None:
        """Set the record's end of retention (DynamoDB TTL)."""
        ...


class ConsentRepository(Protocol):
    def for_subjects(self, tenant: str, subject_ids: Sequence[str]) -> dict[str, list[Consent]]:
        """Current consents of each subject, read strongly consistent."""
        ...

    def save(
        self,
        consent: Consent,
        *,
        source: str,
        evidence: Evidence | None = None,
        actor: str = "system",
    ) -> None: ...

    def get(self, tenant: str, subject_id: str, consent_id: str) -> Consent | None: ...

    def get_details(
        self, tenant: str, subject_id: str, consent_id: str
    ) -> tuple[Consent, Evidence | None, tuple[ConsentEvent, ...]] | None: ...

    def details(
        self, tenant: str, subject_id: str
    ) -> list[tuple[Consent, Evidence | None, tuple[ConsentEvent, ...]]]: ...

    def change(self, before: Consent, after: Consent, event: ConsentEvent) -> Consent:
        """Apply a renewal or withdrawal if still at ``before.version`` (else Conflict)."""
        ...

    def revoke(self, consent: Consent, at: datetime, *, source: str) -> Consent: ...

    def expiring_on(
        self, day: str, *, until: datetime | None = None
    ) -> list[tuple[Consent, str, frozenset[str]]]:
        """(consent, status, reminders sent) expiring on a UTC day, up to ``until``."""
        ...

    def mark_expired(self, consent: Consent, at: datetime) -> bool:
        """Record the expiry once (False: already expired, revoked or changed)."""
        ...

    def claim_reminder(self, consent: Consent, offsets: Sequence[str]) -> bool:
        """Claim reminders before sending, once (False: already claimed)."""
        ...

    def release_reminder(self, consent: Consent, offsets: Sequence[str]) -> None: ...

    def tombstone(self, consent: Consent, at: datetime, *, actor: str) -> None:
        """Reduce the consent to ids, purposes, dates and outcome (erasure)."""
        ...

    def leftovers(self, tenant: str, subject_id: str) -> dict[str, list[str]]:
        """consent_id -> evidence attributes still held (empty lists: tombstones only)."""
        ...


class ConsentExpiries(Protocol):
    def expiring_between(self, tenant: str, start: datetime, end: datetime) -> list[Consent]:
        """The tenant's consents with ``start <= expires_at < end`` (revoked ones included)."""
        ...


class ExpirySchedules(Protocol):
    """One-time schedules that fire at a consent's ``expires_at``."""

    def schedule(self, consent: Consent) -> None:
        """Create or replace the consent's schedule (no-op without an expiry)."""
        ...

    def cancel(self, consent: Consent) -> None:
        """Remove it (gone already is fine)."""
        ...


class RequestLog(Protocol):
    """Data-subject requests of a tenant (ids and counts only)."""

    def record(self, request: DataRequest) -> None: ...

    def between(
        self, tenant: str, kind: RequestKind | None, since: datetime | None, until: datetime | None
    ) -> list[DataRequest]: ...

    def for_subject(self, tenant: str, subject_id: str) -> list[DataRequest]: ...


class ImportFiles(Protocol):
    """Where the signed documents and reference photos of an import are read from."""

    def document(self, name: str) -> bytes | None:
        """The named document's bytes; None when there is no such file."""
        ...

    def photos(self, person_ref: str) -> list[bytes]:
        """The person's reference photos (their folder); empty when none."""
        ...


class ImportStaging(Protocol):
    """Where an API import's files are uploaded first (presigned URLs), then read from."""

    def upload_url(self, tenant: str, import_id: str, kind: str, name: str) -> str: ...

    def files(self, tenant: str, import_id: str) -> ImportFiles: ...
