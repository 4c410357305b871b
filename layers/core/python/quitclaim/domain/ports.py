"""Ports the use-cases depend on; adapters implement them.

Pure typing: no boto3, no pynamodb here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from quitclaim.domain.audit_chain import ChainHead
from quitclaim.domain.models import Consent, TenantPolicy
from quitclaim.domain.records import AssetRecord
from quitclaim.domain.registry import ApiKeyInfo, ConsentEvent, Evidence, Page, Role, Subject
from quitclaim.domain.rights import DataRequest, RequestKind
from quitclaim.domain.tenancy import TenantProfile
from quitclaim.domain.usage import UsageIncrement
from quitclaim.domain.webhooks import (
    InboundDelivery,
    InboundStatus,
    OutboundDelivery,
    SecretSet,
    WebhookEndpoint,
    WebhookSource,
)


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int
    etag: str
    version_id: str | None = None
    content_type: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


class ObjectStore(Protocol):
    def head(self, bucket: str, key: str, version_id: str | None = None) -> ObjectInfo | None:
        """The object's metadata, or None when it does not exist."""
        ...

    def read(self, bucket: str, key: str, version_id: str | None = None) -> bytes: ...

    def copy(
        self,
        source: ObjectInfo,
        dest_bucket: str,
        dest_key: str,
        extra_metadata: Mapping[str, str],
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Copy bytes unchanged; merge ``extra_metadata`` into the object's metadata.

        ``tags``: the copy's object tags (replacing the source's), when given.
        """
        ...

    def delete(self, bucket: str, key: str, version_id: str | None = None) -> None: ...

    def write(
        self,
        bucket: str,
        key: str,
        data: bytes,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None: ...

    def put_tags(self, bucket: str, key: str, tags: Mapping[str, str]) -> None:
        """Replace the object tags of the current version (clearance per channel)."""
        ...

    def tags(self, bucket: str, key: str) -> dict[str, str]:
        """The object tags of the current version ({} when it has none)."""
        ...


@dataclass(frozen=True, slots=True)
class ObjectVersion:
    """One stored version of an object (or a delete marker) in a versioned bucket."""

    key: str
    version_id: str
    delete_marker: bool = False


class ObjectVersions(Protocol):
    """Every version under a prefix: what erasure removes and verification re-reads."""

    def versions(self, bucket: str, prefix: str) -> list[ObjectVersion]: ...


class TenantRepository(Protocol):
    def policy(self, tenant: str) -> TenantPolicy | None:
        """The tenant's policy, or None when the tenant does not exist."""
        ...

    def gallery_version(self, tenant: str) -> int: ...

    def policy_and_gallery(self, tenant: str) -> tuple[TenantPolicy, int] | None:
        """Policy and gallery version in one read (the per-image hot path)."""
        ...

    def save_tenant(self, policy: TenantPolicy, profile: TenantProfile | None = None) -> None: ...

    def bump_gallery_version(self, tenant: str) -> int: ...

    def update_policy(self, policy: TenantPolicy) -> None: ...

    def pending_policy(self, tenant: str) -> dict[str, Any] | None:
        """The policy change waiting for a second administrator, if any."""
        ...

    def set_pending_policy(self, tenant: str, pending: dict[str, Any] | None) -> None:
        """Keep (or, with None, drop) the pending policy change."""
        ...


class TenantProfiles(Protocol):
    """The operator's view of tenants (onboarding and offboarding)."""

    def profile(self, tenant: str) -> TenantProfile | None: ...

    def mark_deleting(self, tenant: str, purge_after: datetime) -> None: ...


class KeyRevocation(Protocol):
    def revoke_all(self, tenant: str, *, reason: str) -> int:
        """Revoke every live key of the tenant; how many were live."""
        ...


class TenantDataStore(Protocol):
    """One place a tenant's data lives (a bucket prefix, a table, a schedule group).

    ``count`` re-lists the store (never a cached number): offboarding trusts
    it to prove that nothing of the tenant remains.
    """

    name: str

    def count(self, tenant: str) -> int: ...

    def purge(self, tenant: str) -> int:
        """Delete everything of ``tenant`` here; how many items were deleted."""
        ...


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


class AssetRepository(Protocol):
    def get(self, tenant: str, asset_id: str) -> AssetRecord | None: ...

    def get_many(self, tenant: str, asset_ids: Sequence[str]) -> dict[str, AssetRecord]:
        """Strongly consistent reads of many records (absent ones left out)."""
        ...

    def create(self, record: AssetRecord, usage: UsageIncrement | None = None) -> bool:
        """Write a new decision; False when one with this id already exists.

        ``usage`` is added in the same transaction (``QuotaExceeded`` when its
        limit refuses it: then nothing is written). So are the record's
        appearance rows (I1: no decision without the rows a withdrawal finds
        it by; rows too many for one transaction are written before it).
        """
        ...

    def replace(
        self,
        record: AssetRecord,
        expected_version: int,
        usage: UsageIncrement | None = None,
        appearances: Sequence[str] = (),
    ) -> None:
        """Write a new state if the stored one is still ``expected_version`` (else Conflict).

        The appearance rows of ``appearances`` (subject ids) are written with
        it, as ``create`` writes them.
        """
        ...

    def mark_placed(self, tenant: str, asset_id: str, at: datetime) -> None: ...

    def add_appearances(self, record: AssetRecord) -> None: ...

    def remove_appearance(self, tenant: str, subject_id: str, asset_id: str) -> None: ...

    def appearances(self, tenant: str, subject_id: str) -> list[str]:
        """Ids of the assets the subject appears in."""
        ...

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
    ) -> Page: ...


class UsageMeter(Protocol):
    """Per-tenant, per-UTC-month counters and the monthly image quota."""

    def add(self, tenant: str, month: str, units: Mapping[str, int]) -> None:
        """Add to the month's counters (one atomic ADD)."""
        ...

    def counters(self, tenant: str, month: str) -> dict[str, int]:
        """The month's counters (missing units: 0)."""
        ...

    def images_per_month(self, tenant: str) -> int | None:
        """The tenant's monthly image quota; None (absent): unlimited."""
        ...

    def set_images_per_month(self, tenant: str, limit: int | None) -> None:
        """Change the quota (a plan change); None removes it."""
        ...

    def tenants_with_quota(self) -> list[str]:
        """Every tenant that has a quota (the only ones that can hold uploads)."""
        ...


class HeldAssets(Protocol):
    def held(self, tenant: str, limit: int) -> list[AssetRecord]:
        """The tenant's held uploads, oldest first (at most ``limit``)."""
        ...


class AssetActivity(Protocol):
    """Recent decisions of a tenant, for the overview (read-only)."""

    def decided_since(
        self, tenant: str, since: datetime, limit: int
    ) -> tuple[list[AssetRecord], bool]:
        """Assets whose latest decision is at or after ``since`` (every status).

        At most ``limit`` records; the flag says whether that was all of them.
        """
        ...


class ConsentExpiries(Protocol):
    def expiring_between(self, tenant: str, start: datetime, end: datetime) -> list[Consent]:
        """The tenant's consents with ``start <= expires_at < end`` (revoked ones included)."""
        ...


class QueueDepths(Protocol):
    def depths(self) -> dict[str, int | None]:
        """Messages waiting per dead-letter queue (None: could not be read)."""
        ...


class ApiKeyRepository(Protocol):
    def put(
        self,
        tenant: str,
        key_hash: str,
        key_id: str,
        role: Role,
        label: str,
        person: str = "",
        expires_at: datetime | None = None,
    ) -> None: ...

    def find(self, tenant: str, key_hash: str) -> tuple[str, Role, str, str] | None:
        """(key_id, role, label, person) of a live key with this hash, or None.

        ``person`` is "" for a key issued without one.
        """
        ...

    def info(self, tenant: str, key_hash: str) -> ApiKeyInfo | None:
        """The key with this hash, live or not (``Unauthorized`` for a deleting tenant)."""
        ...

    def keys(self, tenant: str) -> list[ApiKeyInfo]:
        """Every key of ``tenant``, revoked and expired ones included."""
        ...

    def revoke(self, tenant: str, key_id: str, *, reason: str) -> ApiKeyInfo | None:
        """Revoke the key now (idempotent); None when ``tenant`` has no such key."""
        ...


class ExpirySchedules(Protocol):
    """One-time schedules that fire at a consent's ``expires_at``."""

    def schedule(self, consent: Consent) -> None:
        """Create or replace the consent's schedule (no-op without an expiry)."""
        ...

    def cancel(self, consent: Consent) -> None:
        """Remove it (gone already is fine)."""
        ...


@dataclass(frozen=True, slots=True)
class Email:
    to: str
    subject: str
    text: str
    html: str
    # Ids only (SES message tags): a bounce or complaint names them back
    # (usecases/mail_feedback.py), so it can be recorded on the subject.
    tags: Mapping[str, str] = field(default_factory=dict)


class Mailer(Protocol):
    def send(self, email: Email) -> None:
        """Send one e-mail; ``DependencyFailed`` when the provider refuses."""
        ...


class ConsentNotifier(Protocol):
    """Tells the person about their own consent (a confirmation, a receipt).

    Never raises for a failed send: the consent change it reports stands.
    """

    def granted(self, consent: Consent) -> bool: ...

    def changed(self, consent: Consent, event: str) -> bool: ...


class EventPublisher(Protocol):
    """The outbox: events for the tenant's webhooks (ids only, never names)."""

    def publish(self, event_type: str, tenant: str, data: Mapping[str, Any]) -> None: ...


class WorkQueue(Protocol):
    """Durable work items (ids only) for a worker function."""

    def send(self, item: Mapping[str, Any]) -> None:
        """Enqueue or raise ``DependencyFailed``."""
        ...


class WebhookRepository(Protocol):
    def put_source(self, source: WebhookSource, *, new: bool) -> None: ...

    def source(self, tenant: str, name: str) -> WebhookSource | None: ...

    def sources(self, tenant: str) -> list[WebhookSource]: ...

    def delete_source(self, tenant: str, name: str) -> None: ...

    def put_endpoint(self, endpoint: WebhookEndpoint, *, new: bool) -> None: ...

    def endpoint(self, tenant: str, endpoint_id: str) -> WebhookEndpoint | None: ...

    def endpoints(self, tenant: str) -> list[WebhookEndpoint]: ...

    def delete_endpoint(self, tenant: str, endpoint_id: str) -> None: ...

    def create_inbound(self, delivery: InboundDelivery, payload: str | None) -> bool: ...

    def inbound(
        self, tenant: str, source: str, delivery_id: str
    ) -> tuple[InboundDelivery, str | None] | None: ...

    def finish_inbound(
        self, delivery: InboundDelivery, *, expected: InboundStatus, keep_payload: bool
    ) -> None: ...

    def inbound_deliveries(
        self, tenant: str, source: str | None, status: str | None
    ) -> list[InboundDelivery]: ...

    def create_outbound(self, delivery: OutboundDelivery, payload: str) -> bool: ...

    def outbound(self, tenant: str, delivery_id: str) -> tuple[OutboundDelivery, str] | None: ...

    def claim_attempt(
        self, delivery: OutboundDelivery, at: datetime
    ) -> OutboundDelivery | None: ...

    def record_outbound(
        self, delivery: OutboundDelivery, usage: UsageIncrement | None = None
    ) -> None:
        """Store an attempt's outcome; ``usage`` is added in the same transaction."""
        ...

    def reset_outbound(self, delivery: OutboundDelivery) -> OutboundDelivery: ...

    def outbound_deliveries(
        self, tenant: str, status: str | None, endpoint_id: str | None
    ) -> list[OutboundDelivery]: ...


class WebhookSecrets(Protocol):
    def get(
        self, tenant: str, kind: str, name: str, *, fresh: bool = False
    ) -> SecretSet | None: ...

    def put(self, tenant: str, kind: str, name: str, value: SecretSet) -> None: ...

    def delete(self, tenant: str, kind: str, name: str) -> None: ...


class WebhookSignature(Protocol):
    def verify(self, secrets: Sequence[str], headers: Mapping[str, str], body: bytes) -> bool: ...

    def headers(
        self, secrets: Sequence[str], message_id: str, at: datetime, body: str
    ) -> dict[str, str]: ...


class WebhookSender(Protocol):
    def check_url(self, url: str) -> None: ...

    def post(
        self,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        timeout_s: float | None = None,
    ) -> tuple[int | None, str | None]:
        """(status, None) or (status or None, error code); ``timeout_s`` may only shorten."""
        ...


class OnceGuard(Protocol):
    def once(
        self, key: Mapping[str, str], digest: str, action: Callable[[], dict[str, Any]]
    ) -> tuple[dict[str, Any], bool]: ...


class RetrySchedules(Protocol):
    def retry_at(self, tenant: str, delivery_id: str, attempt: int, at: datetime) -> None: ...


class RequestLog(Protocol):
    """Data-subject requests of a tenant (ids and counts only)."""

    def record(self, request: DataRequest) -> None: ...

    def between(
        self, tenant: str, kind: RequestKind | None, since: datetime | None, until: datetime | None
    ) -> list[DataRequest]: ...

    def for_subject(self, tenant: str, subject_id: str) -> list[DataRequest]: ...


class AuditChainStore(Protocol):
    """Where tenants' audit chains live: a serialising head and the records.

    ``advance`` is the only step that orders appends: it moves the head from
    ``expected`` (None: no chain yet) to ``record`` atomically, or answers
    ``"race"`` (the head moved) or ``"duplicate"`` (``block`` was appended
    already). Records are written after the head, so a record may be pending.
    """

    def head(self, tenant: str, lane: int = 0) -> ChainHead | None: ...

    def heads(self, tenant: str) -> Mapping[int, ChainHead]:
        """Every lane's head of the tenant (lane 0 included, when it has one)."""
        ...

    def advance(
        self, tenant: str, expected: ChainHead | None, record: Mapping[str, Any], body: bytes
    ) -> str:
        """Move the head of ``record``'s lane (``record["lane"]``, default 0); claim its block."""
        ...

    def put_record(self, tenant: str, seq: int, body: bytes, lane: int = 0) -> None:
        """Create record ``seq`` of ``lane``, never replace it: an existing one is left as it is."""
        ...

    def mark_written(self, tenant: str, seq: int, lane: int = 0) -> None: ...

    def records(self, tenant: str) -> Iterable[tuple[str, bytes | None]]:
        """``(key, body)`` of every stored version of every record, any key order.

        A key's versions come oldest first; a delete marker is ``(key, None)``.
        Records are written once, so more than one entry for a key is tampering.
        """
        ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class UsagePlanKeys(Protocol):
    """Each tenant's API Gateway key on its plan's usage plan (docs/access.md)."""

    def attach(self, tenant: str, plan: str) -> None:
        """Create the tenant's key if needed and leave it on ``plan``'s usage plan only."""
        ...
