"""PynamoDB models and the repositories that implement the domain ports.

Every hash key starts with the tenant, so a query cannot cross tenants and an
IAM ``dynamodb:LeadingKeys`` condition can pin a caller to its own tenant.
Table names come from settings; ``bind_models`` sets them once per container.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from pynamodb.attributes import (
    BinarySetAttribute,
    JSONAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.exceptions import PutError, PynamoDBException, UpdateError
from pynamodb.models import Model

from quitclaim.config import Settings
from quitclaim.domain.errors import DependencyFailed, NotFound
from quitclaim.domain.models import AssetStatus, Consent, TenantPolicy
from quitclaim.domain.records import AssetRecord, FaceRecord

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
    gallery_version = NumberAttribute(default=0)


class SubjectModel(_Base):
    class Meta(_Base.Meta):
        abstract = False

    tenant = UnicodeAttribute(hash_key=True)
    subject_id = UnicodeAttribute(range_key=True)
    display_name = UnicodeAttribute(null=True)
    external_ref = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute(null=True)
    # Biometric templates (float32 x 128) of people who consented to matching
    # only. The table is KMS-encrypted at rest; the API never returns them.
    templates = BinarySetAttribute(null=True, legacy_encoding=False)
    enrolled_at = UTCDateTimeAttribute(null=True)


class HistoryEvent(MapAttribute[str, Any]):
    at = UTCDateTimeAttribute()
    event = UnicodeAttribute()
    source = UnicodeAttribute()


class ConsentModel(_Base):
    class Meta(_Base.Meta):
        abstract = False

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
    ttl = TTLAttribute(null=True)


class AssetModel(_Base):
    class Meta(_Base.Meta):
        abstract = False

    pk = UnicodeAttribute(hash_key=True)  # tenant#asset_id
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


_TABLES: dict[type[Model], str] = {
    TenantModel: "tenants_table",
    SubjectModel: "subjects_table",
    ConsentModel: "consents_table",
    AssetModel: "assets_table",
    AppearanceModel: "appearances_table",
}


def bind_models(settings: Settings) -> None:
    """Point every model at this container's tables and endpoint."""
    for model, field in _TABLES.items():
        meta: Any = model.Meta
        meta.table_name = getattr(settings, field)
        meta.region = settings.region
        meta.host = settings.endpoint_url
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


class DynamoTenants:
    """TenantRepository on the tenants table."""

    def policy(self, tenant: str) -> TenantPolicy | None:
        with _dependency("tenant read"):
            try:
                item = TenantModel.get(tenant, consistent_read=True)
            except TenantModel.DoesNotExist:
                return None
        return TenantPolicy(
            tenant=item.tenant,
            match_threshold=float(item.match_threshold),
            match_margin=float(item.match_margin),
            min_face_px=int(item.min_face_px),
            default_purpose=item.default_purpose,
            purposes=frozenset(item.purposes or ()),
        )

    def gallery_version(self, tenant: str) -> int:
        with _dependency("tenant read"):
            try:
                return int(TenantModel.get(tenant, consistent_read=True).gallery_version or 0)
            except TenantModel.DoesNotExist:
                return 0

    def save_tenant(self, policy: TenantPolicy) -> None:
        with _dependency("tenant write"):
            TenantModel(
                policy.tenant,
                match_threshold=policy.match_threshold,
                match_margin=policy.match_margin,
                min_face_px=policy.min_face_px,
                default_purpose=policy.default_purpose,
                purposes=set(policy.purposes),
                gallery_version=0,
            ).save(condition=TenantModel.tenant.does_not_exist())

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


class DynamoSubjects:
    """SubjectRepository on the subjects table."""

    def templates(self, tenant: str) -> Iterable[tuple[str, bytes]]:
        with _dependency("subjects query"):
            items = list(SubjectModel.query(tenant, consistent_read=True))
        for item in items:
            for template in item.templates or ():
                yield item.subject_id, bytes(template)

    def create(
        self, tenant: str, subject_id: str, display_name: str, external_ref: str | None
    ) -> None:
        with _dependency("subject write"):
            SubjectModel(
                tenant,
                subject_id,
                display_name=display_name,
                external_ref=external_ref,
                created_at=datetime.now(UTC),
            ).save(condition=SubjectModel.subject_id.does_not_exist())

    def add_template(self, tenant: str, subject_id: str, template: bytes) -> None:
        item = SubjectModel(tenant, subject_id)
        with _dependency("subject update"):
            item.update(
                actions=[
                    SubjectModel.templates.add({template}),
                    SubjectModel.enrolled_at.set(datetime.now(UTC)),
                ],
                condition=SubjectModel.subject_id.exists(),
            )

    def display_names(self, tenant: str) -> dict[str, str]:
        with _dependency("subjects query"):
            return {
                item.subject_id: item.display_name or ""
                for item in SubjectModel.query(
                    tenant,
                    attributes_to_get=["subject_id", "display_name"],
                )
            }

    def exists(self, tenant: str, subject_id: str) -> bool:
        with _dependency("subject read"):
            try:
                SubjectModel.get(tenant, subject_id, consistent_read=True)
            except SubjectModel.DoesNotExist:
                return False
        return True


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


class DynamoConsents:
    """ConsentRepository on the consents table (history is append-only)."""

    def for_subjects(self, tenant: str, subject_ids: Sequence[str]) -> dict[str, list[Consent]]:
        found: dict[str, list[Consent]] = {}
        with _dependency("consents query"):
            for subject_id in sorted(set(subject_ids)):
                found[subject_id] = [
                    _consent_from(item)
                    for item in ConsentModel.query(
                        tenant_key(tenant, subject_id),
                        ConsentModel.sk.startswith("consent#"),
                        consistent_read=True,
                    )
                ]
        return found

    def get(self, tenant: str, subject_id: str, consent_id: str) -> Consent | None:
        with _dependency("consent read"):
            try:
                item = ConsentModel.get(
                    tenant_key(tenant, subject_id), f"consent#{consent_id}", consistent_read=True
                )
            except ConsentModel.DoesNotExist:
                return None
        return _consent_from(item)

    def save(self, consent: Consent, *, source: str) -> None:
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
            history=[HistoryEvent(at=consent.valid_from, event="granted", source=source)],
        )
        with _dependency("consent write"):
            item.save(condition=ConsentModel.pk.does_not_exist())

    def revoke(self, consent: Consent, at: datetime, *, source: str) -> Consent:
        item = ConsentModel(
            tenant_key(consent.tenant, consent.subject_id), f"consent#{consent.consent_id}"
        )
        with _dependency("consent revoke"):
            try:
                # Version check: a revocation never silently overwrites a
                # concurrent renewal; the caller re-reads and retries.
                item.update(
                    actions=[
                        ConsentModel.revoked_at.set(at),
                        ConsentModel.status.set("revoked"),
                        ConsentModel.version.add(1),
                        ConsentModel.history.set(
                            ConsentModel.history.append(
                                [HistoryEvent(at=at, event="revoked", source=source)]
                            )
                        ),
                    ],
                    condition=ConsentModel.version == consent.version,
                )
            except UpdateError as exc:
                if _conditional_failed(exc):
                    raise NotFound("consent changed or does not exist") from exc
                raise
        return _consent_from(item)


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

    def create(self, record: AssetRecord) -> bool:
        item = AssetModel(
            tenant_key(record.tenant, record.asset_id),
            tenant=record.tenant,
            asset_id=record.asset_id,
            source_bucket=record.source_bucket,
            source_key=record.source_key,
            source_version=record.source_version,
            path=record.path,
            purpose=record.purpose,
            status=record.status.value,
            reasons=list(record.reasons),
            dest_bucket=record.dest_bucket,
            dest_key=record.dest_key,
            decided_at=record.decided_at,
            faces=[face.as_dict() for face in record.faces],
            versions=record.versions,
            policy=record.policy,
            timings_ms=record.timings_ms,
        )
        with _dependency("asset write"):
            try:
                item.save(condition=AssetModel.pk.does_not_exist())
            except PutError as exc:
                if _conditional_failed(exc):
                    return False
                raise
        return True

    def mark_placed(self, tenant: str, asset_id: str, at: datetime) -> None:
        item = AssetModel(tenant_key(tenant, asset_id))
        with _dependency("asset update"):
            item.update(actions=[AssetModel.placed_at.set(at)], condition=AssetModel.pk.exists())

    def add_appearances(self, record: AssetRecord) -> None:
        with _dependency("appearances write"), AppearanceModel.batch_write() as batch:
            for subject_id in record.subject_ids:
                batch.save(
                    AppearanceModel(
                        tenant_key(record.tenant, subject_id),
                        record.asset_id,
                        tenant=record.tenant,
                        subject_id=subject_id,
                        asset_id=record.asset_id,
                        status=record.status.value,
                        decided_at=record.decided_at,
                    )
                )
