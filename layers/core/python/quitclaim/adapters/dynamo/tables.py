"""The DynamoDB tables as PynamoDB models, their indexes, and ``bind_models``.

Declarations only: every hash key starts with the tenant, so a query cannot
cross tenants and an IAM ``dynamodb:LeadingKeys`` condition can pin a caller to
its own tenant. Table names come from settings; ``bind_models`` sets them once
per container. The repositories (one module per port) live beside this one.
"""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import (
    BinarySetAttribute,
    BooleanAttribute,
    JSONAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from quitclaim.config import Settings


class _Base(Model):
    class Meta:
        abstract = True
        table_name = "unbound"
        region = "eu-central-1"
        max_retry_attempts = 5


class TenantModel(_Base):
    class Meta(_Base.Meta):
        abstract = False

    tenant = UnicodeAttribute(hash_key=True)
    match_threshold = NumberAttribute()
    match_margin = NumberAttribute()
    min_face_px = NumberAttribute()
    default_purpose = UnicodeAttribute()
    purposes = UnicodeSetAttribute()
    scan_modes = JSONAttribute(default=dict)
    unknown_face_policy = UnicodeAttribute(default="quarantine")
    language = UnicodeAttribute(default="en")
    auto_redact = BooleanAttribute(default=False)
    gallery_version = NumberAttribute(default=0)
    created_at = UTCDateTimeAttribute(null=True)
    updated_at = UTCDateTimeAttribute(null=True)
    # The operator's profile (onboarding); null on tenants created before it.
    name = UnicodeAttribute(null=True)
    region = UnicodeAttribute(null=True)
    plan = UnicodeAttribute(null=True)
    contact_email = UnicodeAttribute(null=True)
    state = UnicodeAttribute(default="active")
    purge_after = UTCDateTimeAttribute(null=True)
    # The plan's monthly image quota; absent: unlimited. Not part of the policy
    # a tenant admin edits: only the operator (plan) sets it.
    images_per_month = NumberAttribute(null=True)
    # A policy change that loosens the gate, waiting for a second administrator
    # (domain/four_eyes.py); absent when none waits.
    pending_policy = JSONAttribute(null=True)
    # Purposes an image must be cleared for to be published; absent: the upload's own.
    publishing_purposes = UnicodeSetAttribute(null=True)
    # Images of a backlog scan in flight at once; absent: the policy's default.
    backlog_concurrency = NumberAttribute(null=True)
    # Retention and the digest (docs/retention.md); absent: the defaults.
    quarantine_retention_days = NumberAttribute(null=True)
    rejected_retention_days = NumberAttribute(null=True)
    digest = UnicodeAttribute(null=True)
    # The tenant's AWS Marketplace customer identifier (docs/billing.md); absent:
    # billed through the usage.hourly event only.
    marketplace_customer_id = UnicodeAttribute(null=True)


class UsageModel(_Base):
    """A tenant's usage counters for one UTC month, in the tenants table.

    Key ``{tenant}#usage#{YYYY-MM}``: a tenant id never holds ``#``, so the
    item cannot be mistaken for a tenant, and it still starts with the tenant.
    """

    class Meta(_Base.Meta):
        abstract = False

    tenant = UnicodeAttribute(hash_key=True)
    owner = UnicodeAttribute(null=True)
    month = UnicodeAttribute(null=True)
    images_scanned = NumberAttribute(null=True)
    faces_processed = NumberAttribute(null=True)
    matches_made = NumberAttribute(null=True)
    api_calls = NumberAttribute(null=True)
    webhook_deliveries = NumberAttribute(null=True)


class ApiKeyModel(_Base):
    """API keys, stored only as a SHA-256 of their secret part.

    The key text is ``qc_{tenant}_{secret}``: the tenant prefix lets the
    authorizer do one GetItem in the tenant's partition, never a scan.
    """

    class Meta(_Base.Meta):
        abstract = False

    tenant = UnicodeAttribute(hash_key=True)
    key_hash = UnicodeAttribute(range_key=True)
    key_id = UnicodeAttribute()
    role = UnicodeAttribute()
    label = UnicodeAttribute(default="")
    # Who holds the key (four eyes count people); absent on keys issued before.
    person = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    # Absent on keys issued before keys expired: those never expire.
    expires_at = UTCDateTimeAttribute(null=True)
    revoked_at = UTCDateTimeAttribute(null=True)
    # Why it was revoked when the caller should be told (e.g. "tenant_deleting").
    revoked_reason = UnicodeAttribute(null=True)


class SubjectsByExternalRef(GlobalSecondaryIndex["SubjectModel"]):
    """``tenant#external_ref`` → subject (sparse): webhooks find the person in one query."""

    class Meta:
        index_name = "by_external_ref"
        projection = KeysOnlyProjection()

    ref_key = UnicodeAttribute(hash_key=True)


class SubjectsByEmail(GlobalSecondaryIndex["SubjectModel"]):
    """``tenant#e-mail`` (case-folded) → subject (sparse)."""

    class Meta:
        index_name = "by_email"
        projection = KeysOnlyProjection()

    email_key = UnicodeAttribute(hash_key=True)


class SubjectModel(_Base):
    class Meta(_Base.Meta):
        abstract = False

    tenant = UnicodeAttribute(hash_key=True)
    subject_id = UnicodeAttribute(range_key=True)
    by_external_ref = SubjectsByExternalRef()
    by_email = SubjectsByEmail()
    # Index keys, kept in step with external_ref and email by DynamoSubjects.save.
    ref_key = UnicodeAttribute(null=True)
    email_key = UnicodeAttribute(null=True)
    display_name = UnicodeAttribute(null=True)
    external_ref = UnicodeAttribute(null=True)
    email = UnicodeAttribute(null=True)
    date_of_birth = UnicodeAttribute(null=True)  # ISO date
    guardian = JSONAttribute(null=True)
    email_unreachable = BooleanAttribute(null=True)
    created_at = UTCDateTimeAttribute(null=True)
    updated_at = UTCDateTimeAttribute(null=True)
    # Biometric templates (float32 x 128) of people who consented to matching
    # only. The table is KMS-encrypted at rest; the API never returns them.
    templates = BinarySetAttribute(null=True, legacy_encoding=False)
    enrolled_at = UTCDateTimeAttribute(null=True)
    # Explicit consent to matching, recorded at enrolment (docs/retention.md).
    biometric_consent_at = UTCDateTimeAttribute(null=True)
    biometric_consent_source = UnicodeAttribute(null=True)
    # End of retention: DynamoDB TTL deletes the record (and its templates);
    # the stream's TTL REMOVE then purges what hangs off it.
    ttl = TTLAttribute(null=True)


class HistoryEvent(MapAttribute[str, Any]):
    at = UTCDateTimeAttribute()
    event = UnicodeAttribute()
    source = UnicodeAttribute()
    actor = UnicodeAttribute(default="system")
    detail = JSONAttribute(default=dict)


class ConsentsByExpiryDay(GlobalSecondaryIndex["ConsentModel"]):
    """Consents by the UTC day they expire: the sweep and reminders read one day."""

    class Meta:
        index_name = "by_expiry_day"
        projection = AllProjection()

    expiry_day = UnicodeAttribute(hash_key=True)
    expires_at = UTCDateTimeAttribute(range_key=True)


class ConsentsByTenantExpiry(GlobalSecondaryIndex["ConsentModel"]):
    """A tenant's consents by expiry (sparse: open-ended ones are not in it).

    The overview's "expiring in the next 30/60/90 days": one query in the
    tenant's partition, never another tenant's items.
    """

    class Meta:
        index_name = "by_tenant_expiry"
        projection = AllProjection()

    tenant = UnicodeAttribute(hash_key=True)
    expires_at = UTCDateTimeAttribute(range_key=True)


class ConsentModel(_Base):
    class Meta(_Base.Meta):
        abstract = False

    by_expiry_day = ConsentsByExpiryDay()
    by_tenant_expiry = ConsentsByTenantExpiry()
    expiry_day = UnicodeAttribute(null=True)
    reminders_sent = UnicodeSetAttribute(null=True)

    pk = UnicodeAttribute(hash_key=True)  # tenant#subject
    sk = UnicodeAttribute(range_key=True)  # consent#id
    tenant = UnicodeAttribute()
    subject_id = UnicodeAttribute()
    consent_id = UnicodeAttribute()
    purposes = UnicodeSetAttribute()
    valid_from = UTCDateTimeAttribute()
    expires_at = UTCDateTimeAttribute(null=True)
    revoked_at = UTCDateTimeAttribute(null=True)
    status = UnicodeAttribute(default="granted")
    version = NumberAttribute(default=1)
    history = ListAttribute(of=HistoryEvent, default=list)
    signer = UnicodeAttribute(null=True)
    form_version = UnicodeAttribute(null=True)
    source = UnicodeAttribute(null=True)
    document_key = UnicodeAttribute(null=True)
    document_sha256 = UnicodeAttribute(null=True)
    document_type = UnicodeAttribute(null=True)
    document_url = UnicodeAttribute(null=True)  # evidence held by the sending tool
    ttl = TTLAttribute(null=True)
    biometric_consent = BooleanAttribute(null=True)  # Art. 9(2)(a), given with the consent


class AssetsByStatus(GlobalSecondaryIndex["AssetModel"]):
    """The review queue: a tenant's assets by status, newest decisions last."""

    class Meta:
        index_name = "by_status"
        projection = AllProjection()

    tenant = UnicodeAttribute(hash_key=True)
    status_at = UnicodeAttribute(range_key=True)  # status#decided_at


class AssetModel(_Base):
    class Meta(_Base.Meta):
        abstract = False

    pk = UnicodeAttribute(hash_key=True)  # tenant#asset_id
    by_status = AssetsByStatus()
    status_at = UnicodeAttribute()
    subject_ids = UnicodeSetAttribute(null=True)
    version = NumberAttribute(default=1)
    review = JSONAttribute(default=dict)
    history = JSONAttribute(default=list)
    tenant = UnicodeAttribute()
    asset_id = UnicodeAttribute()
    source_bucket = UnicodeAttribute()
    source_key = UnicodeAttribute()
    source_version = UnicodeAttribute()
    path = UnicodeAttribute()
    purpose = UnicodeAttribute()
    status = UnicodeAttribute()
    reasons = ListAttribute(of=UnicodeAttribute, default=list)
    dest_bucket = UnicodeAttribute()
    dest_key = UnicodeAttribute()
    decided_at = UTCDateTimeAttribute()
    placed_at = UTCDateTimeAttribute(null=True)
    faces = JSONAttribute(default=list)
    versions = JSONAttribute(default=dict)
    policy = JSONAttribute(default=dict)
    timings_ms = JSONAttribute(default=dict)
    size = NumberAttribute(null=True)
    published_sha256 = UnicodeAttribute(null=True)
    clearance = JSONAttribute(default=dict)


class AppearanceModel(_Base):
    class Meta(_Base.Meta):
        abstract = False

    pk = UnicodeAttribute(hash_key=True)  # tenant#subject
    sk = UnicodeAttribute(range_key=True)  # asset_id
    tenant = UnicodeAttribute()
    subject_id = UnicodeAttribute()
    asset_id = UnicodeAttribute()
    status = UnicodeAttribute()
    decided_at = UTCDateTimeAttribute()


class WebhookModel(_Base):
    """Webhook sources, endpoints and deliveries of a tenant (one partition each).

    ``sk``: ``source#{name}``, ``endpoint#{id}``, ``in#{source}#{webhook-id}``,
    ``out#{delivery id}``. Inbound payloads (which hold contact details) are
    kept only until applied; signing secrets live in SSM, never here.
    """

    class Meta(_Base.Meta):
        abstract = False

    tenant = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    kind = UnicodeAttribute()  # source | endpoint | in | out
    status = UnicodeAttribute(null=True)
    data = JSONAttribute(default=dict)  # the value object's other fields
    payload = UnicodeAttribute(null=True)
    attempts = NumberAttribute(default=0)
    created_at = UTCDateTimeAttribute()
    ttl = TTLAttribute(null=True)


class RequestModel(_Base):
    """Data-subject requests of a tenant: ``sk`` is ``{kind}#{at}#{request_id}``.

    Ids, codes and counts only (an erasure's completeness report included):
    the log outlives the person's data, as the proof that a request was honoured.
    """

    class Meta(_Base.Meta):
        abstract = False

    tenant = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    request_id = UnicodeAttribute()
    kind = UnicodeAttribute()
    at = UTCDateTimeAttribute()
    actor = UnicodeAttribute()
    subject_id = UnicodeAttribute(null=True)
    detail = JSONAttribute(default=dict)


class FormItem(_Base):
    """Form settings, versions and majority items in the tenants table (``form_store``).

    Bound by ``form_store`` to wherever ``TenantModel`` is bound.
    """

    class Meta(_Base.Meta):
        abstract = False

    tenant = UnicodeAttribute(hash_key=True)
    owner = UnicodeAttribute(null=True)
    version = UnicodeAttribute(null=True)
    texts = JSONAttribute(null=True)
    purposes = UnicodeSetAttribute(null=True)
    period_days = NumberAttribute(null=True)
    created_at = UTCDateTimeAttribute(null=True)
    age_of_consent = NumberAttribute(null=True)
    current = UnicodeAttribute(null=True)
    versions = UnicodeSetAttribute(null=True)
    due = UnicodeSetAttribute(null=True)
    asked = UnicodeSetAttribute(null=True)


class PersonRequestModel(Model):
    """A person's own requests in the requests table (``person_request_store``, its ``bind``)."""

    class Meta:
        table_name = "unbound"
        region = "eu-central-1"
        max_retry_attempts = 5

    tenant = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    request_id = UnicodeAttribute(null=True)
    kind = UnicodeAttribute(null=True)
    email = UnicodeAttribute(null=True)
    received_at = UTCDateTimeAttribute(null=True)
    status = UnicodeAttribute(null=True)
    verified_at = UTCDateTimeAttribute(null=True)
    deadline = UTCDateTimeAttribute(null=True)
    subject_ids = ListAttribute(of=UnicodeAttribute, null=True)
    detail = JSONAttribute(null=True)
    sent = BooleanAttribute(null=True)  # reminder items


_TABLES: dict[type[Model], str] = {
    TenantModel: "tenants_table",
    UsageModel: "tenants_table",
    ApiKeyModel: "api_keys_table",
    SubjectModel: "subjects_table",
    ConsentModel: "consents_table",
    AssetModel: "assets_table",
    AppearanceModel: "appearances_table",
    WebhookModel: "webhooks_table",
    RequestModel: "requests_table",
}


def bind_models(settings: Settings) -> None:
    """Point every model at this container's tables and endpoint."""
    for model, field in _TABLES.items():
        meta: Any = model.Meta
        bound = (getattr(settings, field), settings.region, settings.endpoint_url)
        if tuple(getattr(meta, name, None) for name in ("table_name", "region", "host")) == bound:
            # Same table: keep the connection. A new one builds a botocore session
            # that loads the DynamoDB service model from disk (~0.15 s each).
            continue
        meta.table_name, meta.region, meta.host = bound
        model._connection = None  # rebuilt lazily with the new settings
