"""PynamoDB models and the repositories that implement the domain ports.

Every hash key starts with the tenant, so a query cannot cross tenants and an
IAM ``dynamodb:LeadingKeys`` condition can pin a caller to its own tenant.
Table names come from settings; ``bind_models`` sets them once per container.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
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
from pynamodb.exceptions import PutError, PynamoDBException, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from quitclaim.config import Settings
from quitclaim.domain.backlog import DEFAULT_BACKLOG_CONCURRENCY
from quitclaim.domain.errors import (
    Conflict,
    DependencyFailed,
    NotFound,
    QuotaExceeded,
    Unauthorized,
    ValidationFailed,
)
from quitclaim.domain.models import AssetStatus, Consent, ScanMode, TenantPolicy
from quitclaim.domain.records import AssetRecord, FaceRecord
from quitclaim.domain.registry import (
    ApiKeyInfo,
    ConsentEvent,
    Evidence,
    Guardian,
    Page,
    Role,
    Subject,
)
from quitclaim.domain.rights import CONSENT_EVIDENCE, DataRequest, RequestKind
from quitclaim.domain.tenancy import (
    DEFAULT_PLAN,
    PLANS,
    TenantDeleting,
    TenantProfile,
    TenantState,
)
from quitclaim.domain.usage import COUNTED_UNITS, IMAGES_SCANNED, UsageIncrement

SEP = "#"


def tenant_key(tenant: str, *parts: str) -> str:
    """A partition key that starts with the tenant: ``tenant#part#...``."""
    return SEP.join((tenant, *parts))


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


def usage_key(tenant: str, month: str) -> str:
    return tenant_key(tenant, "usage", month)


def usage_update(usage: UsageIncrement) -> tuple[UsageModel, list[Any], Condition | None]:
    """The ADD on the month's counters item, and the quota condition if any.

    The condition ``images_scanned < limit`` is what makes the quota exact under
    concurrency: two ingests that both saw room cannot both take the last image.
    """
    actions: list[Any] = [
        UsageModel.owner.set(usage.tenant),
        UsageModel.month.set(usage.month),
        *(getattr(UsageModel, unit).add(n) for unit, n in usage.units.items() if n),
    ]
    condition: Condition | None = None
    limit = usage.images_limit
    if limit is not None and usage.units.get(IMAGES_SCANNED):
        # A missing counter compares false: with a limit of 0 nothing passes.
        below: Condition = UsageModel.images_scanned < limit
        condition = (UsageModel.images_scanned.does_not_exist() | below) if limit > 0 else below
    return UsageModel(usage_key(usage.tenant, usage.month)), actions, condition


def _refused(exc: TransactWriteError, index: int) -> bool:
    reasons = exc.cancellation_reasons if exc.cause_response_code else []
    reason = reasons[index] if index < len(reasons) else None
    return reason is not None and reason.code == "ConditionalCheckFailed"


def _transaction() -> TransactWrite:
    return TransactWrite(connection=AssetModel._get_connection().connection)


# DynamoDB's limit on the items of one TransactWriteItems.
MAX_TRANSACTION_ITEMS = 100


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


@contextmanager
def _dependency(what: str) -> Iterator[None]:
    try:
        yield
    except PynamoDBException as exc:
        raise DependencyFailed(f"DynamoDB {what} failed: {_cause(exc)}") from exc


def _cause(exc: PynamoDBException) -> str:
    return str(getattr(exc, "cause_response_code", None) or type(exc).__name__)


def _conditional_failed(exc: PynamoDBException) -> bool:
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


def encode_cursor(last_key: Mapping[str, Any] | None) -> str | None:
    """An opaque page cursor (the last evaluated key, base64 JSON)."""
    if not last_key:
        return None
    return base64.urlsafe_b64encode(json.dumps(last_key, sort_keys=True).encode()).decode()


def decode_cursor(cursor: str | None, tenant: str) -> dict[str, Any] | None:
    """Parse a cursor; one that points outside the tenant is refused."""
    if not cursor:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError):
        raise ValidationFailed("cursor is not valid", field="cursor") from None
    if not isinstance(value, dict):
        raise ValidationFailed("cursor is not valid", field="cursor")
    attrs = {k: v.get("S") for k, v in value.items() if isinstance(v, dict)}
    # A cursor from another tenant's listing must not even reach DynamoDB.
    if attrs.get("tenant") != tenant and not str(attrs.get("pk") or "").startswith(f"{tenant}#"):
        raise ValidationFailed("cursor is not valid", field="cursor")
    return value


def _policy_from(item: TenantModel) -> TenantPolicy:
    modes = dict(item.scan_modes or {}) or {"*": ScanMode.RECOGNIZE.value}
    return TenantPolicy(
        tenant=item.tenant,
        match_threshold=float(item.match_threshold),
        match_margin=float(item.match_margin),
        min_face_px=int(item.min_face_px),
        default_purpose=item.default_purpose,
        purposes=frozenset(item.purposes or ()),
        scan_modes=tuple(sorted((k, ScanMode(v)) for k, v in modes.items())),
        unknown_face_policy=item.unknown_face_policy or "quarantine",
        language=item.language or "en",
        auto_redact=bool(item.auto_redact),
        publishing_purposes=frozenset(item.publishing_purposes or ()),
        backlog_concurrency=int(item.backlog_concurrency or DEFAULT_BACKLOG_CONCURRENCY),
        quarantine_retention_days=_int_or(item.quarantine_retention_days, 90),
        rejected_retention_days=_int_or(item.rejected_retention_days, 30),
        digest=item.digest or "weekly",
    )


def _int_or(value: Any, default: int) -> int:
    return default if value is None else int(value)


class DynamoTenants:
    """TenantRepository on the tenants table."""

    def _item(self, tenant: str) -> TenantModel | None:
        with _dependency("tenant read"):
            try:
                return TenantModel.get(tenant, consistent_read=True)
            except TenantModel.DoesNotExist:
                return None

    def policy(self, tenant: str) -> TenantPolicy | None:
        item = self._item(tenant)
        return None if item is None else _policy_from(item)

    def policy_and_gallery(self, tenant: str) -> tuple[TenantPolicy, int] | None:
        """Policy and gallery version; ``TenantDeleting`` once offboarding started."""
        item = self._item(tenant)
        if item is None:
            return None
        if item.state == TenantState.DELETING:
            # Nothing new is decided for a tenant on its way out (fail closed).
            raise TenantDeleting(f"tenant {tenant!r} is being deleted")
        return _policy_from(item), int(item.gallery_version or 0)

    def profile(self, tenant: str) -> TenantProfile | None:
        item = self._item(tenant)
        if item is None:
            return None
        return TenantProfile(
            tenant=item.tenant,
            name=item.name or "",
            region=item.region or "",
            plan=item.plan or DEFAULT_PLAN,
            contact_email=item.contact_email or "",
            state=TenantState(item.state or TenantState.ACTIVE),
            purge_after=item.purge_after,
        )

    def plan_of(self, tenant: str) -> str | None:
        with _dependency("tenant read"):
            try:
                item = TenantModel.get(tenant, attributes_to_get=["tenant", "plan"])
            except TenantModel.DoesNotExist:
                return None
        return item.plan  # None: created before plans (no profile)

    def mark_deleting(self, tenant: str, purge_after: datetime) -> None:
        """State ``deleting`` with its purge date (``NotFound`` for an unknown tenant)."""
        with _dependency("tenant update"):
            try:
                TenantModel(tenant).update(
                    actions=[
                        TenantModel.state.set(TenantState.DELETING.value),
                        TenantModel.purge_after.set(purge_after),
                        TenantModel.updated_at.set(datetime.now(UTC)),
                    ],
                    condition=TenantModel.tenant.exists(),
                )
            except UpdateError as exc:
                if _conditional_failed(exc):
                    raise NotFound(f"tenant {tenant!r} not found") from exc
                raise

    def set_plan(self, tenant: str, plan: str) -> None:
        """Move the tenant to ``plan`` (``NotFound`` for an unknown tenant)."""
        with _dependency("tenant update"):
            try:
                TenantModel(tenant).update(
                    actions=[
                        TenantModel.plan.set(plan),
                        TenantModel.updated_at.set(datetime.now(UTC)),
                    ],
                    condition=TenantModel.tenant.exists(),
                )
            except UpdateError as exc:
                if _conditional_failed(exc):
                    raise NotFound(f"tenant {tenant!r} not found") from exc
                raise

    def gallery_version(self, tenant: str) -> int:
        with _dependency("tenant read"):
            try:
                return int(TenantModel.get(tenant, consistent_read=True).gallery_version or 0)
            except TenantModel.DoesNotExist:
                return 0

    def save_tenant(self, policy: TenantPolicy, profile: TenantProfile | None = None) -> None:
        now = datetime.now(UTC)
        extra: dict[str, Any] = {}
        if profile is not None:
            extra = {
                "name": profile.name or None,
                "region": profile.region or None,
                "plan": profile.plan,
                "contact_email": profile.contact_email or None,
                "state": profile.state.value,
            }
        with _dependency("tenant write"):
            try:
                TenantModel(
                    policy.tenant,
                    gallery_version=0,
                    created_at=now,
                    updated_at=now,
                    **_policy_attributes(policy),
                    **extra,
                ).save(condition=TenantModel.tenant.does_not_exist())
            except PutError as exc:
                if _conditional_failed(exc):
                    raise Conflict(f"tenant {policy.tenant!r} already exists") from exc
                raise

    def update_policy(self, policy: TenantPolicy) -> None:
        item = TenantModel(policy.tenant)
        attrs = _policy_attributes(policy)
        with _dependency("tenant update"):
            item.update(
                actions=[
                    *(
                        getattr(TenantModel, name).set(value)
                        if value is not None
                        else getattr(TenantModel, name).remove()
                        for name, value in attrs.items()
                    ),
                    TenantModel.updated_at.set(datetime.now(UTC)),
                ],
                condition=TenantModel.tenant.exists(),
            )

    def pending_policy(self, tenant: str) -> dict[str, Any] | None:
        item = self._item(tenant)
        pending = item.pending_policy if item is not None else None
        return dict(pending) if pending else None

    def set_pending_policy(self, tenant: str, pending: dict[str, Any] | None) -> None:
        item = TenantModel(tenant)
        action = (
            TenantModel.pending_policy.set(pending)
            if pending is not None
            else TenantModel.pending_policy.remove()
        )
        with _dependency("tenant update"):
            item.update(actions=[action], condition=TenantModel.tenant.exists())

    def bump_gallery_version(self, tenant: str) -> int:
        item = TenantModel(tenant)
        with _dependency("gallery version update"):
            try:
                item.update(
                    actions=[TenantModel.gallery_version.add(1)],
                    condition=TenantModel.tenant.exists(),
                )
            except UpdateError as exc:
                if _conditional_failed(exc):
                    raise NotFound(f"tenant {tenant!r} does not exist") from exc
                raise
        return int(item.gallery_version)


def _policy_attributes(policy: TenantPolicy) -> dict[str, Any]:
    return {
        "match_threshold": policy.match_threshold,
        "match_margin": policy.match_margin,
        "min_face_px": policy.min_face_px,
        "default_purpose": policy.default_purpose,
        "purposes": set(policy.purposes),
        "scan_modes": {k: v.value for k, v in policy.scan_modes},
        "unknown_face_policy": policy.unknown_face_policy,
        "language": policy.language,
        "auto_redact": policy.auto_redact,
        "publishing_purposes": set(policy.publishing_purposes) or None,
        "backlog_concurrency": policy.backlog_concurrency,
        "quarantine_retention_days": policy.quarantine_retention_days,
        "rejected_retention_days": policy.rejected_retention_days,
        "digest": policy.digest,
    }


class DynamoApiKeys:
    """API keys by (tenant, hash of secret)."""

    def put(
        self,
        tenant: str,
        key_hash: str,
        key_id: str,
        role: Role,
        label: str,
        person: str = "",
        expires_at: datetime | None = None,
    ) -> None:
        with _dependency("api key write"):
            ApiKeyModel(
                tenant,
                key_hash,
                key_id=key_id,
                role=role.value,
                label=label,
                person=person or None,
                created_at=datetime.now(UTC),
                expires_at=expires_at,
            ).save(condition=ApiKeyModel.key_hash.does_not_exist())

    def find(self, tenant: str, key_hash: str) -> tuple[str, Role, str, str] | None:
        """(key_id, role, label, person) of a live key, or None."""
        with _dependency("api key read"):
            try:
                item = ApiKeyModel.get(tenant, key_hash, consistent_read=True)
            except ApiKeyModel.DoesNotExist:
                return None
        if item.revoked_at is not None:
            if item.revoked_reason == TenantDeleting.code:
                # The caller holds a real key: telling them why is no leak.
                raise Unauthorized(
                    "this tenant is being deleted; its API keys were revoked",
                    code=TenantDeleting.code,
                )
            return None
        return item.key_id, Role(item.role), item.label, item.person or ""

    def info(self, tenant: str, key_hash: str) -> ApiKeyInfo | None:
        """The key with this hash, live or not (``Unauthorized`` for a deleting tenant)."""
        with _dependency("api key read"):
            try:
                item = ApiKeyModel.get(tenant, key_hash, consistent_read=True)
            except ApiKeyModel.DoesNotExist:
                return None
        if item.revoked_at is not None and item.revoked_reason == TenantDeleting.code:
            raise Unauthorized(
                "this tenant is being deleted; its API keys were revoked",
                code=TenantDeleting.code,
            )
        return _key_info(item)

    def keys(self, tenant: str) -> list[ApiKeyInfo]:
        """Every key of ``tenant`` (a tenant has tens of keys: one partition query)."""
        with _dependency("api key query"):
            items = list(ApiKeyModel.query(tenant, consistent_read=True))
        return sorted((_key_info(i) for i in items), key=lambda k: (k.created_at, k.key_id))

    def revoke(self, tenant: str, key_id: str, *, reason: str) -> ApiKeyInfo | None:
        """Revoke one key by its id now (idempotent: a revoked key keeps its first time)."""
        with _dependency("api key revoke"):
            for item in ApiKeyModel.query(tenant, consistent_read=True):
                if item.key_id != key_id:
                    continue
                if item.revoked_at is None:
                    item.update(
                        actions=[
                            ApiKeyModel.revoked_at.set(datetime.now(UTC)),
                            ApiKeyModel.revoked_reason.set(reason),
                        ]
                    )
                return _key_info(item)
        return None

    def revoke_all(self, tenant: str, *, reason: str) -> int:
        """Revoke every live key of ``tenant`` now; the number revoked."""
        now = datetime.now(UTC)
        revoked = 0
        with _dependency("api key revoke"):
            for item in ApiKeyModel.query(tenant, consistent_read=True):
                if item.revoked_at is not None:
                    continue
                item.update(
                    actions=[
                        ApiKeyModel.revoked_at.set(now),
                        ApiKeyModel.revoked_reason.set(reason),
                    ]
                )
                revoked += 1
        return revoked


def _key_info(item: ApiKeyModel) -> ApiKeyInfo:
    return ApiKeyInfo(
        tenant=item.tenant,
        key_id=item.key_id,
        role=Role(item.role),
        label=item.label or "",
        person=item.person or "",
        created_at=item.created_at,
        expires_at=item.expires_at,
        revoked_at=item.revoked_at,
    )


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
        with _dependency("subjects query"):
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
        with _dependency("subject write"):
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
                if _conditional_failed(exc):
                    raise NotFound(f"subject {subject.subject_id} not found") from exc
                raise

    def get(self, tenant: str, subject_id: str) -> Subject | None:
        with _dependency("subject read"):
            try:
                item = SubjectModel.get(tenant, subject_id, consistent_read=True)
            except SubjectModel.DoesNotExist:
                return None
        return _subject_from(item)

    def page(self, tenant: str, limit: int, cursor: str | None) -> Page:
        with _dependency("subjects query"):
            results = SubjectModel.query(
                tenant, limit=limit, last_evaluated_key=decode_cursor(cursor, tenant)
            )
            items = tuple(_subject_from(item) for item in results)
            return Page(items, encode_cursor(results.last_evaluated_key))

    def delete(self, tenant: str, subject_id: str) -> None:
        with _dependency("subject delete"):
            SubjectModel(tenant, subject_id).delete()

    def retain_until(self, tenant: str, subject_id: str, at: datetime) -> None:
        """Let DynamoDB TTL remove the record (templates included) after ``at``."""
        item = SubjectModel(tenant, subject_id)
        with _dependency("subject retention"):
            try:
                item.update(
                    actions=[SubjectModel.ttl.set(at)], condition=SubjectModel.subject_id.exists()
                )
            except UpdateError as exc:
                if _conditional_failed(exc):
                    raise NotFound(f"subject {subject_id} not found") from exc
                raise

    def add_template(self, tenant: str, subject_id: str, template: bytes) -> None:
        item = SubjectModel(tenant, subject_id)
        with _dependency("subject update"):
            try:
                item.update(
                    actions=[
                        SubjectModel.templates.add({template}),
                        SubjectModel.enrolled_at.set(datetime.now(UTC)),
                    ],
                    condition=SubjectModel.subject_id.exists(),
                )
            except UpdateError as exc:
                if _conditional_failed(exc):
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
        with _dependency("subjects index query"):
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
        with _dependency("subjects query"):
            return {
                item.subject_id: item.display_name or ""
                for item in SubjectModel.query(
                    tenant, attributes_to_get=["subject_id", "display_name"]
                )
            }

    def external_refs(self, tenant: str) -> dict[str, str]:
        with _dependency("subjects query"):
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


def _consent_from(item: ConsentModel) -> Consent:
    return Consent(
        tenant=item.tenant,
        subject_id=item.subject_id,
        consent_id=item.consent_id,
        purposes=frozenset(item.purposes or ()),
        valid_from=item.valid_from,
        expires_at=item.expires_at,
        revoked_at=item.revoked_at,
        version=int(item.version),
    )


def _history_from(item: ConsentModel) -> tuple[ConsentEvent, ...]:
    return tuple(
        ConsentEvent(
            at=event.at,
            event=event.event,
            source=event.source,
            actor=event.actor or "system",
            detail=dict(event.detail or {}),
        )
        for event in item.history or ()
    )


def _evidence_from(item: ConsentModel) -> Evidence | None:
    if not item.signer:
        return None
    return Evidence(
        signer=item.signer,
        form_version=item.form_version or "",
        source=item.source or "",
        document_key=item.document_key,
        document_sha256=item.document_sha256,
        document_type=item.document_type,
        document_url=item.document_url,
        biometric_consent=item.biometric_consent,
    )


def _event(e: ConsentEvent) -> HistoryEvent:
    return HistoryEvent(at=e.at, event=e.event, source=e.source, actor=e.actor, detail=e.detail)


class DynamoConsents:
    """ConsentRepository on the consents table (history is append-only)."""

    def for_subjects(self, tenant: str, subject_ids: Sequence[str]) -> dict[str, list[Consent]]:
        return {
            sid: [c for c, _, _ in self.details(tenant, sid)] for sid in sorted(set(subject_ids))
        }

    def details(
        self, tenant: str, subject_id: str
    ) -> list[tuple[Consent, Evidence | None, tuple[ConsentEvent, ...]]]:
        """Every consent of a subject with its evidence and history."""
        with _dependency("consents query"):
            return [
                (_consent_from(item), _evidence_from(item), _history_from(item))
                for item in ConsentModel.query(
                    tenant_key(tenant, subject_id),
                    ConsentModel.sk.startswith("consent#"),
                    consistent_read=True,
                )
            ]

    def get(self, tenant: str, subject_id: str, consent_id: str) -> Consent | None:
        found = self.get_details(tenant, subject_id, consent_id)
        return found[0] if found else None

    def get_details(
        self, tenant: str, subject_id: str, consent_id: str
    ) -> tuple[Consent, Evidence | None, tuple[ConsentEvent, ...]] | None:
        with _dependency("consent read"):
            try:
                item = ConsentModel.get(
                    tenant_key(tenant, subject_id), f"consent#{consent_id}", consistent_read=True
                )
            except ConsentModel.DoesNotExist:
                return None
        return _consent_from(item), _evidence_from(item), _history_from(item)

    def save(
        self,
        consent: Consent,
        *,
        source: str,
        evidence: Evidence | None = None,
        actor: str = "system",
    ) -> None:
        item = ConsentModel(
            tenant_key(consent.tenant, consent.subject_id),
            f"consent#{consent.consent_id}",
            tenant=consent.tenant,
            subject_id=consent.subject_id,
            consent_id=consent.consent_id,
            purposes=set(consent.purposes),
            valid_from=consent.valid_from,
            expires_at=consent.expires_at,
            revoked_at=consent.revoked_at,
            status="granted",
            version=consent.version,
            history=[_event(ConsentEvent(datetime.now(UTC), "granted", source, actor))],
            source=source,
            signer=evidence.signer if evidence else None,
            form_version=evidence.form_version if evidence else None,
            document_key=evidence.document_key if evidence else None,
            document_sha256=evidence.document_sha256 if evidence else None,
            document_type=evidence.document_type if evidence else None,
            document_url=evidence.document_url if evidence else None,
            biometric_consent=evidence.biometric_consent if evidence else None,
            expiry_day=_day(consent.expires_at),
        )
        with _dependency("consent write"):
            try:
                item.save(condition=ConsentModel.pk.does_not_exist())
            except PutError as exc:
                if _conditional_failed(exc):
                    raise Conflict(f"consent {consent.consent_id} exists", code="exists") from None
                raise

    def change(self, before: Consent, after: Consent, event: ConsentEvent) -> Consent:
        """Apply a renewal or withdrawal if nobody changed the consent meanwhile.

        The version check means a withdrawal never silently overwrites a
        concurrent renewal (or the reverse): the loser gets ``Conflict``.
        """
        item = ConsentModel(
            tenant_key(before.tenant, before.subject_id), f"consent#{before.consent_id}"
        )
        actions: list[Any] = [
            ConsentModel.valid_from.set(after.valid_from),
            ConsentModel.status.set(event.event),
            ConsentModel.version.set(before.version + 1),
            ConsentModel.history.set(ConsentModel.history.append([_event(event)])),
        ]
        if after.expires_at != before.expires_at:
            # A new window earns new reminders.
            actions.append(ConsentModel.reminders_sent.remove())
        for attr, value in (
            (ConsentModel.expires_at, after.expires_at),
            (ConsentModel.revoked_at, after.revoked_at),
        ):
            actions.append(attr.set(value) if value is not None else attr.remove())
        day = _day(after.expires_at)
        actions.append(
            ConsentModel.expiry_day.set(day) if day else ConsentModel.expiry_day.remove()
        )
        with _dependency("consent update"):
            try:
                item.update(actions=actions, condition=ConsentModel.version == before.version)
            except UpdateError as exc:
                if _conditional_failed(exc):
                    raise Conflict("the consent changed meanwhile; read it again") from exc
                raise
        return _consent_from(item)

    def expiring_on(
        self, day: str, *, until: datetime | None = None
    ) -> list[tuple[Consent, str, frozenset[str]]]:
        """Consents expiring on a UTC day (up to ``until``): (consent, status, reminders sent).

        Reads one partition of the expiry index, across tenants: the sweep and
        the reminders are operator jobs, and each result carries its tenant.
        """
        condition = ConsentsByExpiryDay.expires_at <= until if until is not None else None
        with _dependency("expiry index query"):
            return [
                (
                    _consent_from(item),
                    item.status or "granted",
                    frozenset(item.reminders_sent or ()),
                )
                for item in ConsentModel.by_expiry_day.query(day, condition)
            ]

    def expiring_between(self, tenant: str, start: datetime, end: datetime) -> list[Consent]:
        """The tenant's consents with ``start <= expires_at < end`` (one index query)."""
        condition = ConsentsByTenantExpiry.expires_at.between(start, end)
        with _dependency("tenant expiry index query"):
            found = [
                _consent_from(item)
                for item in ConsentModel.by_tenant_expiry.query(tenant, condition)
            ]
        return [c for c in found if c.expires_at is not None and c.expires_at < end]

    def mark_expired(self, consent: Consent, at: datetime) -> bool:
        """Record the expiry once; False when already expired, revoked or changed.

        The version is left as it is: the expiry only notes what the dates
        already say, it changes nothing a renewal or withdrawal read. Had it
        moved the version, a renewal that read the consent just before the
        exact-time schedule fired would lose its conditional write (Conflict)
        and the person's renewal would be refused while the images stayed
        held (tests/integration/test_races_on_stack.py, renewal vs expiry).
        The renewal still wins over a concurrent expiry the other way round:
        this write is conditional on the version the expiry read.
        """
        item = ConsentModel(
            tenant_key(consent.tenant, consent.subject_id), f"consent#{consent.consent_id}"
        )
        event = HistoryEvent(at=at, event="expired", source="expiry", actor="system", detail={})
        with _dependency("consent expiry"):
            try:
                item.update(
                    actions=[
                        ConsentModel.status.set("expired"),
                        ConsentModel.history.set(ConsentModel.history.append([event])),
                    ],
                    condition=(ConsentModel.version == consent.version)
                    & ConsentModel.revoked_at.does_not_exist()
                    & (ConsentModel.status != "expired"),
                )
            except UpdateError as exc:
                if _conditional_failed(exc):
                    return False
                raise
        return True

    def claim_reminder(self, consent: Consent, offsets: Sequence[str]) -> bool:
        """Mark reminders as sent, once: False when another run claimed them first."""
        item = ConsentModel(
            tenant_key(consent.tenant, consent.subject_id), f"consent#{consent.consent_id}"
        )
        condition: Condition = ConsentModel.pk.exists()
        for offset in offsets:
            condition &= ~ConsentModel.reminders_sent.contains(offset)
        with _dependency("reminder claim"):
            try:
                item.update(
                    actions=[ConsentModel.reminders_sent.add(set(offsets))], condition=condition
                )
            except UpdateError as exc:
                if _conditional_failed(exc):
                    return False
                raise
        return True

    def release_reminder(self, consent: Consent, offsets: Sequence[str]) -> None:
        """Undo a claim whose e-mail could not be sent, so the next run retries."""
        item = ConsentModel(
            tenant_key(consent.tenant, consent.subject_id), f"consent#{consent.consent_id}"
        )
        with _dependency("reminder release"):
            item.update(actions=[ConsentModel.reminders_sent.delete(set(offsets))])

    def revoke(self, consent: Consent, at: datetime, *, source: str) -> Consent:
        from dataclasses import replace

        return self.change(
            consent,
            replace(consent, revoked_at=at),
            ConsentEvent(at, "revoked", source, "system"),
        )

    def tombstone(self, consent: Consent, at: datetime, *, actor: str) -> None:
        """Keep ids, purposes, dates, outcome and the document hash; drop the evidence.

        The history keeps its events (when, what, which source and key) without
        their details, and ends with ``erased``.
        """
        key = (tenant_key(consent.tenant, consent.subject_id), f"consent#{consent.consent_id}")
        with _dependency("consent read"):
            try:
                item = ConsentModel.get(*key, consistent_read=True)
            except ConsentModel.DoesNotExist:
                return
        history = [
            HistoryEvent(at=e.at, event=e.event, source=e.source, actor=e.actor, detail={})
            for e in item.history or ()
        ]
        history.append(
            HistoryEvent(at=at, event="erased", source="erasure", actor=actor, detail={})
        )
        actions: list[Any] = [
            ConsentModel.status.set("erased"),
            ConsentModel.version.set(int(item.version) + 1),
            ConsentModel.history.set(history),
            ConsentModel.expiry_day.remove(),
            *(getattr(ConsentModel, name).remove() for name in CONSENT_EVIDENCE),
        ]
        with _dependency("consent tombstone"):
            try:
                ConsentModel(*key).update(
                    actions=actions, condition=ConsentModel.version == item.version
                )
            except UpdateError as exc:
                if _conditional_failed(exc):
                    raise Conflict("the consent changed meanwhile; erase again") from exc
                raise

    def leftovers(self, tenant: str, subject_id: str) -> dict[str, list[str]]:
        """Per consent, the evidence attributes still held (a tombstone holds none)."""
        found: dict[str, list[str]] = {}
        with _dependency("consents query"):
            items = list(
                ConsentModel.query(
                    tenant_key(tenant, subject_id),
                    ConsentModel.sk.startswith("consent#"),
                    consistent_read=True,
                )
            )
        for item in items:
            held = [name for name in CONSENT_EVIDENCE if getattr(item, name)]
            if any(e.detail for e in item.history or ()):
                held.append("history_detail")
            if item.status != "erased":
                held.append("status")
            found[item.consent_id] = held
        return found


def _day(at: datetime | None) -> str | None:
    return at.astimezone(UTC).date().isoformat() if at else None


def _record_from(item: AssetModel) -> AssetRecord:
    return AssetRecord(
        tenant=item.tenant,
        asset_id=item.asset_id,
        source_bucket=item.source_bucket,
        source_key=item.source_key,
        source_version=item.source_version,
        path=item.path,
        purpose=item.purpose,
        status=AssetStatus(item.status),
        reasons=tuple(str(r) for r in item.reasons or ()),
        dest_bucket=item.dest_bucket,
        dest_key=item.dest_key,
        decided_at=item.decided_at,
        faces=tuple(FaceRecord(**face) for face in (item.faces or [])),
        versions=dict(item.versions or {}),
        policy=dict(item.policy or {}),
        timings_ms=dict(item.timings_ms or {}),
        placed_at=item.placed_at,
        version=int(item.version or 1),
        review=dict(item.review or {}),
        history=tuple(item.history or ()),
        size=None if item.size is None else int(item.size),
        published_sha256=item.published_sha256,
        clearance=dict(item.clearance or {}),
    )


def _asset_attributes(record: AssetRecord) -> dict[str, Any]:
    return {
        "tenant": record.tenant,
        "asset_id": record.asset_id,
        "source_bucket": record.source_bucket,
        "source_key": record.source_key,
        "source_version": record.source_version,
        "path": record.path,
        "purpose": record.purpose,
        "status": record.status.value,
        "status_at": f"{record.status.value}#{record.decided_at.isoformat()}",
        "subject_ids": set(record.subject_ids) or None,
        "reasons": list(record.reasons),
        "dest_bucket": record.dest_bucket,
        "dest_key": record.dest_key,
        "decided_at": record.decided_at,
        "placed_at": record.placed_at,
        "faces": [face.as_dict() for face in record.faces],
        "versions": record.versions,
        "policy": record.policy,
        "timings_ms": record.timings_ms,
        "version": record.version,
        "review": record.review,
        "history": list(record.history),
        "size": record.size,
        "published_sha256": record.published_sha256,
        "clearance": record.clearance,
    }


def _appearance(record: AssetRecord, subject_id: str) -> AppearanceModel:
    """The row a withdrawal of ``subject_id`` finds this asset by."""
    return AppearanceModel(
        tenant_key(record.tenant, subject_id),
        record.asset_id,
        tenant=record.tenant,
        subject_id=subject_id,
        asset_id=record.asset_id,
        status=record.status.value,
        decided_at=record.decided_at,
    )


class DynamoAssets:
    """AssetRepository on the assets and appearances tables."""

    def get(self, tenant: str, asset_id: str) -> AssetRecord | None:
        with _dependency("asset read"):
            try:
                item = AssetModel.get(tenant_key(tenant, asset_id), consistent_read=True)
            except AssetModel.DoesNotExist:
                return None
        return _record_from(item)

    def get_many(self, tenant: str, asset_ids: Sequence[str]) -> dict[str, AssetRecord]:
        """BatchGetItem, consistent, 100 keys a request (PynamoDB retries unprocessed keys)."""
        keys = [tenant_key(tenant, a) for a in dict.fromkeys(asset_ids)]
        with _dependency("asset batch read"):
            records = [
                _record_from(item) for item in AssetModel.batch_get(keys, consistent_read=True)
            ]
        return {r.asset_id: r for r in records if r.tenant == tenant}

    def create(self, record: AssetRecord, usage: UsageIncrement | None = None) -> bool:
        """The first write of a decision (conditional: a redelivery finds it).

        With ``usage``: exactly-once metering. The conditional put of the record
        and the ADD on the month's counters are one TransactWriteItems, so they
        happen together or not at all: a retry or a redelivered S3 event whose
        put is refused (the record exists) adds nothing, and a crash after the
        commit leaves both written. The counters cannot drift from the records.

        The record's appearance rows (one per subject in it) go into the same
        transaction: a decision never exists without the rows a withdrawal
        finds it by (see ``_reach``).
        """
        item = AssetModel(tenant_key(record.tenant, record.asset_id), **_asset_attributes(record))
        condition = AssetModel.pk.does_not_exist()
        rows = self._reach(record, record.subject_ids, usage)
        if usage is None and not rows:
            with _dependency("asset write"):
                try:
                    item.save(condition=condition)
                except PutError as exc:
                    if _conditional_failed(exc):
                        return False
                    raise
            return True
        return self._transact(item, condition, usage, rows, on_refused=lambda: False)

    def replace(
        self,
        record: AssetRecord,
        expected_version: int,
        usage: UsageIncrement | None = None,
        appearances: Sequence[str] = (),
    ) -> None:
        """Write a new state of the asset if it is still at ``expected_version``.

        With ``usage`` (a held upload decided at last): metered in the same
        transaction as the first decision, as ``create`` does. ``appearances``:
        the subjects whose appearance rows are written in the same transaction
        (every subject of a decision that publishes, see ``Placement``).
        """
        item = AssetModel(tenant_key(record.tenant, record.asset_id), **_asset_attributes(record))
        condition = AssetModel.version == expected_version
        rows = self._reach(record, appearances, usage)
        if usage is None and not rows:
            with _dependency("asset write"):
                try:
                    item.save(condition=condition)
                except PutError as exc:
                    if _conditional_failed(exc):
                        raise Conflict("the asset changed meanwhile; read it again") from exc
                    raise
            return

        def changed() -> bool:
            raise Conflict("the asset changed meanwhile; read it again")

        self._transact(item, condition, usage, rows, on_refused=changed)

    @staticmethod
    def _reach(
        record: AssetRecord, subject_ids: Sequence[str], usage: UsageIncrement | None
    ) -> list[AppearanceModel]:
        """The appearance rows to write in the decision's own transaction.

        One transaction holds ``MAX_TRANSACTION_ITEMS``: the record, the
        counters, the rows. A photo with more people than that has its rows
        written *first*, in transactions of their own (idempotent puts), and
        none goes with the decision: the decision, and so any placement that
        follows it, exists only once every row does. A crash in between leaves
        rows without a decision (a withdrawal that finds one re-decides
        nothing), never a decision without rows.
        """
        rows = [_appearance(record, sid) for sid in sorted(set(subject_ids))]
        room = MAX_TRANSACTION_ITEMS - 1 - (usage is not None)
        if len(rows) <= room:
            return rows
        with _dependency("appearances write"):
            for start in range(0, len(rows), MAX_TRANSACTION_ITEMS):
                with _transaction() as tx:
                    for row in rows[start : start + MAX_TRANSACTION_ITEMS]:
                        tx.save(row)
        return []

    @staticmethod
    def _transact(
        item: AssetModel,
        condition: Condition,
        usage: UsageIncrement | None,
        rows: Sequence[AppearanceModel],
        on_refused: Any,
    ) -> bool:
        """The record (index 0), the counters (1, if any) and the rows: all or nothing."""
        with _dependency("asset write"):
            try:
                with _transaction() as tx:
                    tx.save(item, condition=condition)
                    if usage is not None:
                        counters, actions, quota = usage_update(usage)
                        tx.update(counters, actions=actions, condition=quota)
                    for row in rows:
                        tx.save(row)
            except TransactWriteError as exc:
                if _refused(exc, 0):
                    return bool(on_refused())
                if usage is not None and _refused(exc, 1):
                    raise QuotaExceeded("the monthly image quota is used up") from None
                raise
        return True

    def held(self, tenant: str, limit: int) -> list[AssetRecord]:
        """The tenant's held uploads, oldest first (one range of the status index)."""
        with _dependency("assets query"):
            return [
                _record_from(item)
                for item in AssetModel.by_status.query(
                    tenant,
                    AssetsByStatus.status_at.startswith(f"{AssetStatus.HELD.value}#"),
                    limit=limit,
                )
            ]

    def mark_placed(self, tenant: str, asset_id: str, at: datetime) -> None:
        item = AssetModel(tenant_key(tenant, asset_id))
        with _dependency("asset update"):
            item.update(actions=[AssetModel.placed_at.set(at)], condition=AssetModel.pk.exists())

    def page(
        self,
        tenant: str,
        *,
        status: str | None,
        reason: str | None,
        subject_id: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        cursor: str | None,
    ) -> Page:
        """The tenant's assets by status and decision time (one GSI query)."""
        range_condition: Condition | None = None
        if status is not None:
            low = f"{status}#{since.isoformat() if since else ''}"
            high = f"{status}#{until.isoformat() if until else '~'}"
            range_condition = AssetsByStatus.status_at.between(low, high)
        filters: Condition | None = None
        if reason is not None:
            filters = AssetModel.reasons.contains(reason)
        if subject_id is not None:
            by_subject: Condition = AssetModel.subject_ids.contains(subject_id)
            filters = by_subject if filters is None else filters & by_subject
        if status is None and (since or until):
            in_window: Condition = AssetModel.decided_at.between(
                since or datetime(1970, 1, 1, tzinfo=UTC), until or datetime(9999, 1, 1, tzinfo=UTC)
            )
            filters = in_window if filters is None else filters & in_window
        with _dependency("assets query"):
            results = AssetModel.by_status.query(
                tenant,
                range_condition,
                filter_condition=filters,
                limit=limit,
                last_evaluated_key=decode_cursor(cursor, tenant),
            )
            items = tuple(_record_from(item) for item in results)
            return Page(items, encode_cursor(results.last_evaluated_key))

    def decided_since(
        self, tenant: str, since: datetime, limit: int
    ) -> tuple[list[AssetRecord], bool]:
        """Assets decided at or after ``since``, any status: one range query per status."""
        records: list[AssetRecord] = []
        with _dependency("assets query"):
            for status in AssetStatus:
                condition = AssetsByStatus.status_at.between(
                    f"{status.value}#{since.isoformat()}", f"{status.value}#~"
                )
                for item in AssetModel.by_status.query(tenant, condition):
                    if len(records) == limit:
                        return records, False
                    records.append(_record_from(item))
        return records, True

    def add_appearances(self, record: AssetRecord) -> None:
        """Put the record's appearance rows (idempotent); the decision writes carry them too."""
        with _dependency("appearances write"), AppearanceModel.batch_write() as batch:
            for subject_id in record.subject_ids:
                batch.save(_appearance(record, subject_id))

    def remove_appearance(self, tenant: str, subject_id: str, asset_id: str) -> None:
        with _dependency("appearance delete"):
            AppearanceModel(tenant_key(tenant, subject_id), asset_id).delete()

    def appearances(self, tenant: str, subject_id: str) -> list[str]:
        """Ids of the assets a subject appears in (drives re-decisions)."""
        with _dependency("appearances query"):
            return [
                item.asset_id
                for item in AppearanceModel.query(
                    tenant_key(tenant, subject_id), consistent_read=True
                )
            ]


def _request_sk(kind: str, at: datetime, request_id: str = "") -> str:
    return f"{kind}#{at.astimezone(UTC).isoformat()}#{request_id}"


def _request_from(item: RequestModel) -> DataRequest:
    return DataRequest(
        tenant=item.tenant,
        request_id=item.request_id,
        kind=RequestKind(item.kind),
        at=item.at,
        actor=item.actor,
        subject_id=item.subject_id,
        detail=dict(item.detail or {}),
    )


class DynamoRequests:
    """RequestLog on the requests table (one partition per tenant)."""

    def record(self, request: DataRequest) -> None:
        item = RequestModel(
            request.tenant,
            _request_sk(request.kind.value, request.at, request.request_id),
            request_id=request.request_id,
            kind=request.kind.value,
            at=request.at,
            actor=request.actor,
            subject_id=request.subject_id,
            detail=request.detail,
        )
        with _dependency("request log write"):
            item.save(condition=RequestModel.sk.does_not_exist())

    def between(
        self,
        tenant: str,
        kind: RequestKind | None,
        since: datetime | None,
        until: datetime | None,
    ) -> list[DataRequest]:
        """The tenant's requests (of one kind) between two moments, oldest first."""
        condition: Condition | None = None
        if kind is not None:
            low = _request_sk(kind.value, since) if since else f"{kind.value}#"
            high = _request_sk(kind.value, until) if until else f"{kind.value}#~"
            condition = RequestModel.sk.between(low, high)
        with _dependency("request log query"):
            found = [_request_from(i) for i in RequestModel.query(tenant, condition)]
        return sorted(
            (
                r
                for r in found
                if (since is None or r.at >= since) and (until is None or r.at <= until)
            ),
            key=lambda r: r.at,
        )

    def for_subject(self, tenant: str, subject_id: str) -> list[DataRequest]:
        with _dependency("request log query"):
            found = [
                _request_from(i)
                for i in RequestModel.query(
                    tenant, filter_condition=RequestModel.subject_id == subject_id
                )
            ]
        return sorted(found, key=lambda r: r.at)


class DynamoUsage:
    """UsageMeter on the tenants table: ``{tenant}#usage#{YYYY-MM}`` items and the quota."""

    def add(self, tenant: str, month: str, units: Mapping[str, int]) -> None:
        counters, actions, _ = usage_update(UsageIncrement(tenant, month, units))
        with _dependency("usage update"):
            counters.update(actions=actions)

    def counters(self, tenant: str, month: str) -> dict[str, int]:
        with _dependency("usage read"):
            try:
                item = UsageModel.get(usage_key(tenant, month), consistent_read=True)
            except UsageModel.DoesNotExist:
                return dict.fromkeys(COUNTED_UNITS, 0)
        return {unit: int(getattr(item, unit) or 0) for unit in COUNTED_UNITS}

    def images_per_month(self, tenant: str) -> int | None:
        """The operator's override if set, else the plan's (the catalogue), else unlimited.

        A tenant created before plans has none (unlimited, as its API rate); a
        plan name no longer in the catalogue gets the default plan's, never unlimited.
        """
        with _dependency("tenant read"):
            try:
                item = TenantModel.get(tenant, consistent_read=True)
            except TenantModel.DoesNotExist:
                return None
        if item.images_per_month is not None:
            return int(item.images_per_month)
        if not item.plan:
            return None
        return (PLANS.get(item.plan) or PLANS[DEFAULT_PLAN]).images_per_month

    def set_images_per_month(self, tenant: str, limit: int | None) -> None:
        action = (
            TenantModel.images_per_month.remove()
            if limit is None
            else TenantModel.images_per_month.set(limit)
        )
        with _dependency("tenant update"):
            try:
                TenantModel(tenant).update(
                    actions=[action, TenantModel.updated_at.set(datetime.now(UTC))],
                    condition=TenantModel.tenant.exists(),
                )
            except UpdateError as exc:
                if _conditional_failed(exc):
                    raise NotFound(f"tenant {tenant!r} does not exist") from exc
                raise

    def tenants_with_quota(self) -> list[str]:
        """A scan, filtered: the tenants table holds one item per tenant and month."""
        with _dependency("tenants scan"):
            return sorted(
                item.tenant
                for item in TenantModel.scan(
                    filter_condition=TenantModel.images_per_month.exists()
                    | TenantModel.plan.exists()
                )
            )
