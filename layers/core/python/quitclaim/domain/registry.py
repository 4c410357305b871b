"""Registry values the API and CLI show: subjects, consents with evidence, keys.

Pure data. The API serialises these; it never sees templates (biometrics
are not part of any value here).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any


class Role(enum.StrEnum):
    ADMIN = "admin"  # everything of the tenant
    REVIEWER = "reviewer"  # review queue and read access
    DPO = "dpo"  # data protection officer: reads everything, exports, changes nothing
    AUDITOR = "auditor"  # the audit trail and records of processing only


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: resolved from an API key or a sign-in token, never from the body."""

    tenant: str
    key_id: str
    role: Role
    label: str = ""
    # Who holds the key (four eyes count people, not keys); a key issued
    # without one is its own person: resolving it gives its key id here.
    person: str = ""
    # A signed-in person (a user-pool token): SHA-256 of their e-mail for the
    # audit trail ("" for API keys); ``person`` is then the user's sub.
    email_hash: str = ""


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new API key. ``secret`` is shown once and stored only as a hash."""

    tenant: str
    key_id: str
    role: Role
    label: str
    secret: str
    person: str = ""
    expires_at: datetime | None = None  # None: a key from before keys expired


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """A key as listings show it: never its secret nor its hash."""

    tenant: str
    key_id: str
    role: Role
    label: str
    person: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    status: str = ""  # active | revoked | expired, as of the listing (``key_status``)


def key_status(key: ApiKeyInfo, now: datetime) -> str:
    """``active``, ``revoked`` or ``expired`` at ``now``."""
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


@dataclass(frozen=True, slots=True)
class Guardian:
    name: str
    email: str | None = None
    relation: str | None = None


@dataclass(frozen=True, slots=True)
class Subject:
    tenant: str
    subject_id: str
    display_name: str
    external_ref: str | None = None
    email: str | None = None
    date_of_birth: date | None = None
    guardian: Guardian | None = None
    templates: int = 0  # how many enrolled, never the templates themselves
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # The address bounces for good (a newsletter tool said so): no mail is sent to it.
    email_unreachable: bool = False
    # Explicit consent to biometric matching (Art. 9(2)(a)), recorded at enrolment:
    # when, and through what (api, dashboard, cli, import, demo). None: never recorded.
    biometric_consent_at: datetime | None = None
    biometric_consent_source: str | None = None

    def age_on(self, day: date) -> int | None:
        """Age in whole years on ``day`` (None when no date of birth)."""
        if self.date_of_birth is None:
            return None
        born = self.date_of_birth
        return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


@dataclass(frozen=True, slots=True)
class Evidence:
    """Proof of the signed quitclaim: the document and who signed it."""

    signer: str
    form_version: str
    source: str
    document_key: str | None = None
    document_sha256: str | None = None
    document_type: str | None = None
    document_url: str | None = None  # where the sending tool keeps the signed form
    # The separate, explicit consent to face matching (GDPR Art. 9(2)(a)) given
    # with this consent (the hosted form asks it); None: not asked.
    biometric_consent: bool | None = None


@dataclass(frozen=True, slots=True)
class ConsentEvent:
    """One append-only history entry: who did what, when, through which source."""

    at: datetime
    event: str  # granted | renewed | revoked | expired
    source: str
    actor: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConsentView:
    """A consent as the registry shows it (status computed at read time)."""

    tenant: str
    subject_id: str
    consent_id: str
    purposes: tuple[str, ...]
    valid_from: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    status: str  # valid | expired | revoked | not_yet_valid
    version: int
    evidence: Evidence | None
    history: tuple[ConsentEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing; pass ``next_cursor`` back for the next one."""

    items: tuple[Any, ...]
    next_cursor: str | None = None
