"""The ledger's shared state and reads: its stores, and a tenant's policy or subject.

``TenantAdmin``, ``SubjectAdmin``, ``ConsentAdmin`` and ``Erasure`` each run one
aggregate of the registry on these stores; ``Registry`` (usecases/compliance_registry.py)
is all four together, for the collaborators that need several.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from quitclaim.domain.errors import NotFound, ValidationFailed
from quitclaim.domain.models import Consent, TenantPolicy
from quitclaim.domain.ports import (
    AssetRepository,
    Clock,
    ConsentNotifier,
    ConsentRepository,
    EventPublisher,
    ExpirySchedules,
    FaceEngine,
    ObjectStore,
    ObjectVersions,
    SubjectRepository,
    TenantRepository,
)
from quitclaim.domain.records import AssetRecord
from quitclaim.domain.registry import Subject
from quitclaim.usecases.recheck import Recheck

# Below this a reference template is too unreliable to trust for matching.
MIN_ENROL_FACE_PX = 80
# GDPR Art. 8 default: below 16 a parent or guardian must consent.
AGE_OF_CONSENT = 16
# The most items one page of a listing holds.
MAX_PAGE = 200
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
class Ledger:
    """The stores every part of the registry reads (built once in bootstrap)."""

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

    def policy(self, tenant: str) -> TenantPolicy:
        found = self.tenants.policy(tenant)
        if found is None:
            raise NotFound(f"tenant {tenant!r} not found")
        return found

    def subject(self, tenant: str, subject_id: str) -> Subject:
        found = self.subjects.get(tenant, subject_id)
        if found is None:
            raise NotFound(f"subject {subject_id} not found")
        return found


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


def page_limit(limit: int) -> int:
    """``limit`` checked to be 1 to ``MAX_PAGE`` (``ValidationFailed`` on ``limit``)."""
    if not 1 <= int(limit) <= MAX_PAGE:
        raise ValidationFailed(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    return int(limit)
