"""Request bodies and query strings of the HTTP API (pydantic, validated at the edge).

Every model forbids unknown fields, so a typo is a 400 naming the field
instead of a silently ignored value. Datetimes accept ISO 8601 date-times
or plain dates; a value without an offset is taken as UTC and every value
is converted to UTC. The response shapes (for the OpenAPI document) are
the domain dataclasses themselves, see ``quitclaim.api.openapi``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from quitclaim.api.field_types import (
    Base64Bytes,
    Email,
    Justification,
    ShortText,
    Text,
    Unsent,
    UtcDateTime,
    decode_base64,
)
from quitclaim.domain.backlog import BACKLOG_CONCURRENCY_MAX
from quitclaim.domain.models import ScanMode
from quitclaim.domain.registry import Guardian, Role
from quitclaim.usecases.admin_requests import AssetFilter, ConsentGrant, ConsentRenewal, NewSubject

# Ids are opaque and short; anything else cannot name a record (see ``is_id``).
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
MAX_PHOTOS = 10

PHOTO_TYPES = ("image/jpeg", "image/png")
# Files of the dashboard under /ui/ (a fixed set; see quitclaim.api.static).
UI_FILE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}\.(?:css|js|svg)$")


def is_id(value: str) -> bool:
    """Whether ``value`` can be a subject, consent or asset id at all."""
    return bool(ID_PATTERN.fullmatch(value))


def _omit_null_defaults(schema: dict[str, Any]) -> None:
    # "Not sent" fields default to None but do not accept null: say nothing of a default.
    for prop in schema.get("properties", {}).values():
        if prop.get("default", 0) is None and "anyOf" not in prop:
            del prop["default"]


class Body(BaseModel):
    """Base of every request body: strict about unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_omit_null_defaults)


class Query(BaseModel):
    """Base of every query string model (values arrive as strings)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ------------------------------------------------------------------ keys, policy


class CreateKey(Body):
    role: Role
    label: Text
    person: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
        Field(
            description=(
                "Who holds the key (a name or staff handle). Four-eyes actions need two "
                "different people: one person's keys count once."
            )
        ),
    ]
    valid_days: int | None = Field(
        default=None,
        ge=1,
        le=730,
        description="Days until the key expires (default 365, at most 730).",
    )


class RotateKey(Body):
    """A new secret for the key's name, role and person; the old key is revoked."""

    valid_days: int | None = Field(
        default=None,
        ge=1,
        le=730,
        description="Days until the new key expires (default 365, at most 730).",
    )


class PolicyChanges(Body):
    """Only the fields sent change (``null`` is refused); they apply to new uploads only."""

    match_threshold: Unsent[float] = Field(default=None, gt=0, le=0.6)
    match_margin: Unsent[float] = Field(default=None, ge=0, le=0.5)
    min_face_px: Unsent[int] = Field(default=None, ge=1, le=10_000)
    default_purpose: Unsent[ShortText] = None
    purposes: Unsent[list[ShortText]] = Field(default=None, min_length=1, max_length=50)
    scan_modes: Unsent[dict[ShortText, ScanMode]] = Field(
        default=None,
        description='Collection (first folder of the upload path) -> mode; "*" for the rest.',
    )
    unknown_face_policy: Unsent[Literal["quarantine", "review"]] = None
    language: Unsent[Literal["en", "nl"]] = Field(default=None, description="Reminder e-mails.")
    auto_redact: Unsent[bool] = Field(
        default=None,
        description=(
            "Publish a variant with the faces that lack consent pixelated, instead of only "
            "holding the image, when those faces are its only blockers (default false)."
        ),
    )

    publishing_purposes: Unsent[list[ShortText]] = Field(
        default=None,
        max_length=50,
        description=(
            "The purposes an image must be cleared for to be published (library); each one "
            "of purposes. Empty (the default): the upload's own purpose. Every purpose is "
            "still decided and tagged per channel (docs/channels.md)."
        ),
    )

    backlog_concurrency: Unsent[int] = Field(
        default=None,
        ge=1,
        le=BACKLOG_CONCURRENCY_MAX,
        description="Images of a backlog scan in flight at once (default 4; docs/import.md).",
    )
    quarantine_retention_days: Unsent[int] = Field(
        default=None,
        ge=0,
        le=3650,
        description=(
            "Days a quarantined image whose only blocker is unknown faces is kept before "
            "retention deletes it (default 90; 0: until a reviewer acts). docs/retention.md"
        ),
    )
    rejected_retention_days: Unsent[int] = Field(
        default=None, ge=0, le=3650, description="Days a rejected upload is kept (default 30)."
    )
    digest: Unsent[Literal["daily", "weekly", "off"]] = Field(
        default=None, description="The officer's digest e-mail (default weekly)."
    )

    def changes(self) -> dict[str, Any]:
        """The fields the client sent, as plain JSON values."""
        return self.model_dump(exclude_unset=True, mode="json")


# ------------------------------------------------------------------ subjects


class GuardianIn(Body):
    name: Text
    email: Email | None = None
    relation: ShortText | None = None


class _SubjectDetails(Body):
    display_name: Unsent[Text] = None
    external_ref: Text | None = None
    email: Email | None = None
    date_of_birth: date | None = None
    guardian: GuardianIn | None = None

    def guardian_value(self) -> Guardian | None:
        g = self.guardian
        return None if g is None else Guardian(name=g.name, email=g.email, relation=g.relation)

    @field_validator("date_of_birth")
    @classmethod
    def _born_in_the_past(cls, value: date | None) -> date | None:
        if value is not None and (value > datetime.now(UTC).date() or value.year < 1900):
            raise ValueError("must be a past date after 1900")
        return value


class CreateSubject(_SubjectDetails):
    display_name: Text  # required here

    def request(self) -> NewSubject:
        return NewSubject(
            self.display_name,
            external_ref=self.external_ref,
            email=self.email,
            date_of_birth=self.date_of_birth,
            guardian=self.guardian_value(),
        )


class UpdateSubject(_SubjectDetails):
    """Fields sent replace the stored ones; ``null`` clears an optional one (not the name)."""

    def changes(self) -> dict[str, Any]:
        """The fields sent, as domain values (a guardian as ``Guardian``)."""
        sent = {name: getattr(self, name) for name in self.model_fields_set}
        if sent.get("guardian") is not None:
            sent["guardian"] = self.guardian_value()
        return sent


class EnrolPhotos(Body):
    photos: list[Base64Bytes] = Field(min_length=1, max_length=MAX_PHOTOS)
    biometric_consent: bool = Field(
        default=False,
        description=(
            "The person gave explicit consent to biometric matching (GDPR Art. 9(2)(a)); "
            "required: without it enrolment is refused (400, field biometric_consent). "
            "Recorded on the subject with when and through what."
        ),
    )

    def decoded(self) -> list[bytes]:
        return [decode_base64(item) for item in self.photos]


# ------------------------------------------------------------------ consents


class GrantConsent(Body):
    purposes: list[ShortText] = Field(min_length=1, max_length=20)
    valid_from: UtcDateTime
    expires_at: UtcDateTime | None = None
    signer: Text
    form_version: ShortText
    document_base64: Base64Bytes | None = None
    document_type: Literal["application/pdf", "image/jpeg", "image/png"] | None = None

    @field_validator("expires_at")
    @classmethod
    def _after_start(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("valid_from")
        if value is not None and start is not None and value <= start:
            raise ValueError("must be after valid_from")
        return value

    @field_validator("document_type")
    @classmethod
    def _type_with_document(cls, value: str | None, info: ValidationInfo) -> str | None:
        has_document = info.data.get("document_base64") is not None
        if has_document and value is None:
            raise ValueError("is required with document_base64")
        if value is not None and not has_document and "document_base64" in info.data:
            raise ValueError("is only allowed with document_base64")
        return value

    def request(self) -> ConsentGrant:
        """The grant as the use-case takes it (the document decoded)."""
        document = None if self.document_base64 is None else decode_base64(self.document_base64)
        return ConsentGrant(
            purposes=tuple(self.purposes),
            valid_from=self.valid_from,
            expires_at=self.expires_at,
            signer=self.signer,
            form_version=self.form_version,
            document=document,
            document_type=self.document_type,
        )


class RenewConsent(Body):
    valid_from: UtcDateTime | None = Field(default=None, description="Default: unchanged.")
    expires_at: UtcDateTime | None = Field(description="New end of validity; null: open-ended.")

    @field_validator("expires_at")
    @classmethod
    def _after_start(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("valid_from")
        if value is not None and start is not None and value <= start:
            raise ValueError("must be after valid_from")
        return value

    def request(self) -> ConsentRenewal:
        return ConsentRenewal(expires_at=self.expires_at, valid_from=self.valid_from)


class RevokeConsent(Body):
    """No fields: revocation is effective immediately."""


# ------------------------------------------------------------------ assets


class ReviewAction(Body):
    justification: Justification


class Reassign(Body):
    face_index: int = Field(ge=0, le=10_000)
    subject_id: str | None = Field(description="The face's person, or null: nobody enrolled.")
    justification: Justification

    @field_validator("subject_id")
    @classmethod
    def _id_shape(cls, value: str | None) -> str | None:
        if value is not None and not is_id(value):
            raise ValueError("is not a subject id")
        return value


# ------------------------------------------------------------------ data-subject rights


class ImportUploadsBody(Body):
    """The files an import will name: one presigned PUT URL each comes back."""

    documents: list[Annotated[str, StringConstraints(min_length=1, max_length=128)]] = Field(
        default_factory=list,
        max_length=1000,
        description="File names, as the CSV's document column names them.",
    )
    photos: dict[ShortText, list[Annotated[str, StringConstraints(max_length=128)]]] = Field(
        default_factory=dict,
        description="Person reference -> reference photo file names (biometric consent only).",
    )


class ImportConsentsBody(Body):
    """A consents CSV (the template's columns; `,` or `;`), as text."""

    csv: Annotated[str, StringConstraints(min_length=1, max_length=2_000_000)]
    dry_run: bool = Field(default=True, description="Report only; change nothing (default).")
    import_id: str | None = Field(
        default=None, description="From POST /imports/consents/uploads, when files were uploaded."
    )


class SelfieSearchBody(Body):
    """A photo of the person asking (one face). Processed in memory, never stored."""

    photo_base64: Base64Bytes

    def decoded(self) -> bytes:
        return decode_base64(self.photo_base64)


# ------------------------------------------------------------------ query strings


class PageQuery(Query):
    limit: int = Field(default=50, ge=1, le=100)
    cursor: str | None = Field(default=None, min_length=1, max_length=2048)


def _until_not_before_since(value: datetime | None, info: ValidationInfo) -> datetime | None:
    """A time window's end is not before its start (``since`` is validated first)."""
    start = info.data.get("since")
    if value is not None and start is not None and value < start:
        raise ValueError("must not be before since")
    return value


class AssetQuery(PageQuery):
    status: Literal["quarantined", "approved", "rejected", "deleted", "held", "all"] = "quarantined"
    reason: ShortText | None = None
    subject: str | None = Field(default=None, pattern=ID_PATTERN.pattern)
    since: UtcDateTime | None = None
    until: UtcDateTime | None = None

    _after_since = field_validator("until")(_until_not_before_since)

    def filter(self) -> AssetFilter:
        """The listing's filter ("all": any status)."""
        return AssetFilter(
            status=None if self.status == "all" else self.status,
            reason=self.reason,
            subject_id=self.subject,
            since=self.since,
            until=self.until,
            limit=self.limit,
            cursor=self.cursor,
        )


class EnrolQuery(Query):
    biometric_consent: bool = Field(
        default=False,
        description="For a raw photo body: the person's explicit consent to matching (required).",
    )


class OverviewQuery(Query):
    months: int = Field(default=12, ge=1, le=24, description="Calendar months, this one included.")


class UsageQuery(Query):
    month: str | None = Field(
        default=None,
        pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
        description="UTC month, YYYY-MM (default: the current one).",
    )


# ------------------------------------------------------------------ e-mailed links


class LinkQuery(Query):
    """The signed token of a renewal or withdrawal link."""

    token: str = Field(min_length=16, max_length=2048)


# ------------------------------------------------------------------ webhooks

WebhookName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]


class CreateWebhookSource(Body):
    """An inbound source: a shipped ``preset`` or your own ``mapping`` (exactly one)."""

    name: WebhookName
    dialect: Literal["standard", "hubspot", "mailchimp", "typeform"] = "standard"
    preset: ShortText | None = None
    mapping: dict[str, Any] | None = None
    default_validity_days: int = Field(default=365, ge=1, le=3650)
    secret: str | None = Field(
        default=None,
        min_length=8,
        max_length=512,
        description="HubSpot's client secret or Typeform's secret (stored, never shown).",
    )


class RotateSecret(Body):
    overlap_hours: float = Field(
        default=24, ge=0, le=168, description="How long the old secret stays valid."
    )


class CreateWebhookEndpoint(Body):
    url: str = Field(min_length=8, max_length=2048)
    event_types: list[ShortText] = Field(default_factory=list, max_length=20)
    description: str = Field(default="", max_length=200)


class WebhookQuery(Query):
    token: str | None = Field(
        default=None, max_length=256, description="Mailchimp sources: the URL token."
    )


class InboundQuery(Query):
    status: Literal["queued", "applied", "ignored", "parked", "dismissed"] | None = None


class DeliveryQuery(Query):
    status: Literal["pending", "retrying", "delivered", "dead"] | None = None
    endpoint_id: str | None = Field(default=None, pattern=ID_PATTERN.pattern)


# ------------------------------------------------------------------ the hosted quitclaim form


class FormTextBody(Body):
    """One language of a form version."""

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    body: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20000)]


Purpose = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]


class PublishForm(Body):
    """A new form version (never changed once published; publish another)."""

    version: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]
    texts: dict[Literal["nl", "en"], FormTextBody] = Field(min_length=1)
    purposes: list[Purpose] = Field(min_length=1, max_length=20)
    period_days: int | None = Field(default=365, ge=1, le=3650)


class FormSettingsChange(Body):
    age_of_consent: int = Field(ge=13, le=16, description="GDPR Art. 8: 13 to 16")


class CreateFormLink(Body):
    """A personal link (``subject_id``, e-mailed) or an event link (``event``, a QR code)."""

    subject_id: Unsent[Annotated[str, StringConstraints(pattern=ID_PATTERN.pattern)]] = None
    event: Unsent[Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,47}$")]] = None
    days: int = Field(default=7, ge=1, le=90, description="event links: how long they work")
    send: bool = Field(default=True, description="personal links: e-mail the link")


class FormQuery(Query):
    """A form link's token, and the language to show (else the tenant's)."""

    token: str = Field(min_length=16, max_length=2048)
    lang: Literal["nl", "en"] | None = None


# ------------------------------------------------------------------ retention


class SubjectRetention(Body):
    """A person's end of retention (docs/retention.md)."""

    until: UtcDateTime = Field(
        description=(
            "When the person's record and templates are deleted (DynamoDB TTL; the TTL "
            "stream then purges the gallery and appearance rows). In the past or now: "
            "deleted within DynamoDB TTL's lag."
        )
    )


# ------------------------------------------------------------------ the audit trail


class AuditEventQuery(PageQuery):
    """A page of the tenant's audit events (docs/audit.md)."""

    since: UtcDateTime | None = Field(default=None, description="Records appended at or after.")
    until: UtcDateTime | None = Field(default=None, description="Records appended before.")
    action: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9_.]{0,63}$",
        description="Only events of this kind, e.g. `subject.created`.",
    )

    _after_since = field_validator("until")(_until_not_before_since)


# ------------------------------------------------------------------ accuracy audits


class AccuracyUploadsBody(Body):
    """The photos an accuracy audit's labels CSV names: one presigned PUT URL each."""

    photos: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = Field(
        min_length=1,
        max_length=2000,
        description="Photo names exactly as the labels CSV's `photo` column writes them.",
    )


class AccuracyJobBody(Body):
    """Start a prepared accuracy audit job whose labels and photos are uploaded."""

    job_id: Annotated[str, StringConstraints(pattern=r"^acc_[0-9a-f]{16}$")]
    target_fmr: float = Field(default=0.0001, gt=0, lt=1, description="FMR target (1 in N)")
    per_person: bool = Field(default=False, description="per-person detail (the officer asks)")


class AccuracyAdviceBody(Body):
    """Adopt the threshold advice of an audit: a job's, or the latest stored report's."""

    job_id: Unsent[Annotated[str, StringConstraints(pattern=r"^acc_[0-9a-f]{16}$")]] = None
