"""The requests an officer's operations take, one dataclass each.

The API's schema layer builds them once from a validated body
(``quitclaim.api.schemas``); the use-case takes them whole, so a field is
written out once here instead of at every layer in between.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from quitclaim.domain.registry import Guardian


@dataclass(frozen=True)
class NewSubject:
    """A person to add to the tenant's register (``SubjectAdmin.create``)."""

    display_name: str
    external_ref: str | None = None
    email: str | None = None
    date_of_birth: date | None = None
    guardian: Guardian | None = None


@dataclass(frozen=True)
class ConsentGrant:
    """A signed quitclaim: purposes, window, signer and evidence (``ConsentAdmin.grant``)."""

    purposes: Sequence[str]
    valid_from: datetime
    expires_at: datetime | None
    signer: str | None = None
    form_version: str = "unspecified"
    document: bytes | None = None
    document_type: str | None = None
    document_url: str | None = None
    biometric_consent: bool | None = None


@dataclass(frozen=True)
class ConsentRenewal:
    """A new validity window for a consent (``ConsentAdmin.renew``)."""

    expires_at: datetime | None
    valid_from: datetime | None = None


@dataclass(frozen=True)
class AssetFilter:
    """Which of the tenant's asset records to list (``AssetListing.page``); None: any."""

    status: str | None = "quarantined"
    reason: str | None = None
    subject_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50
    cursor: str | None = None
