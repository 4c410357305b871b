"""Composition root: builds adapters and use-cases once per container."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from quitclaim import observability
from quitclaim.adapters.admission import DynamoAdmissionCounter, SqsBulkLane
from quitclaim.adapters.audit_chain import DynamoS3AuditChain
from quitclaim.adapters.aws import aws_client
from quitclaim.adapters.dynamo import (
    DynamoApiKeys,
    DynamoAssets,
    DynamoConsents,
    DynamoRequests,
    DynamoSubjects,
    DynamoTenants,
    DynamoUsage,
    bind_models,
)
from quitclaim.adapters.events import SqsEventPublisher, SqsWorkQueue
from quitclaim.adapters.form_store import DynamoFormStore
from quitclaim.adapters.idempotency import PowertoolsOnce
from quitclaim.adapters.mail import SesMailer, secret_bytes
from quitclaim.adapters.person_requests import DynamoPersonRequests, S3ExportLinks
from quitclaim.adapters.person_requests import bind as bind_person_requests
from quitclaim.adapters.queues import SqsQueueDepths
from quitclaim.adapters.read_ahead import ReadAheadS3
from quitclaim.adapters.s3_store import S3ObjectStore
from quitclaim.adapters.schedules import SchedulerExpirySchedules, SchedulerRetrySchedules
from quitclaim.adapters.tenant_stores import (
    CachedGalleries,
    DynamoTenantItems,
    S3PrefixStore,
    SsmTenantPath,
    TenantSchedules,
)
from quitclaim.adapters.usage_plans import ApiGatewayUsagePlanKeys
from quitclaim.adapters.webhook_http import StandardWebhooksSignature, UrllibSender
from quitclaim.adapters.webhook_secrets import SsmWebhookSecrets
from quitclaim.adapters.webhook_store import DynamoWebhooks
from quitclaim.config import Settings, get_settings
from quitclaim.domain.ports import Clock, SystemClock, TenantDataStore
from quitclaim.faces.gallery import GalleryCache
from quitclaim.faces.ports import FaceEngine
from quitclaim.usecases.admission import Admission
from quitclaim.usecases.audit_trail import AuditTrail
from quitclaim.usecases.compliance_registry import Registry
from quitclaim.usecases.conservation import ConservationCheck
from quitclaim.usecases.dashboard import Dashboard, ImageLimits
from quitclaim.usecases.digest import Digest
from quitclaim.usecases.expiry import Expiry
from quitclaim.usecases.forms import Forms
from quitclaim.usecases.keys import ApiKeys
from quitclaim.usecases.limits import PublicLimits, RateLimits
from quitclaim.usecases.link_pages import LinkPages
from quitclaim.usecases.mail_feedback import MailFeedback
from quitclaim.usecases.notices import ConsentMail
from quitclaim.usecases.offboarding import Offboarding
from quitclaim.usecases.person_requests import PersonRequests
from quitclaim.usecases.placement import Placement
from quitclaim.usecases.processing import Deployment, RecordsOfProcessing
from quitclaim.usecases.recheck import Recheck
from quitclaim.usecases.reminders import LinkSigner, Reminders
from quitclaim.usecases.retention import Retention
from quitclaim.usecases.review import Review
from quitclaim.usecases.rights import SubjectRights
from quitclaim.usecases.scan_asset import ScanAsset
from quitclaim.usecases.usage import Usage
from quitclaim.usecases.webhooks import ApplyInbound, WebhookAdmin, WebhookDispatcher, WebhookInbox

if TYPE_CHECKING:
    from quitclaim.domain.registry import Principal
    from quitclaim.usecases.accuracy_audit import AccuracyAudit
    from quitclaim.usecases.accuracy_jobs import AccuracyJobs
    from quitclaim.usecases.accuracy_stamp import AccuracyStamps
    from quitclaim.usecases.asset_listing import AssetListing
    from quitclaim.usecases.audit_read import AuditReader
    from quitclaim.usecases.authorizer import KeyAuthorizer
    from quitclaim.usecases.backlog import BacklogScan, BacklogSource
    from quitclaim.usecases.billing import Billing
    from quitclaim.usecases.consent_admin import ConsentAdmin
    from quitclaim.usecases.consent_import import ConsentImport
    from quitclaim.usecases.monthly_bill import MonthlyBill
    from quitclaim.usecases.onboarding import Onboarding
    from quitclaim.usecases.plans import PlanChanges
    from quitclaim.usecases.redaction import Redaction
    from quitclaim.usecases.request_gate import RequestGate
    from quitclaim.usecases.subject_admin import SubjectAdmin
    from quitclaim.usecases.tenant_admin import TenantAdmin

_clock: Clock = SystemClock()


def set_clock(clock: Clock) -> None:
    """Replace the clock (the local stack's controllable time)."""
    global _clock
    _clock = clock
    reset_container(keep_settings=True)


def current_clock() -> Clock:
    return _clock


@lru_cache(maxsize=1)
def galleries() -> GalleryCache:
    """The container's gallery cache, shared by every use-case that matches faces."""
    return GalleryCache()


@lru_cache(maxsize=1)
def face_engine() -> FaceEngine:
    """The container's engine: models load on first use, once."""
    from quitclaim.faces.yunet_engine import YuNetFaceEngine

    s = get_settings()
    # YuNet finds 40 px faces on a 12 MP photo at a fraction of HOG's cost, so
    # no relative floor: every face of min_face_px is promised at any size.
    return YuNetFaceEngine(
        max_bytes=s.max_upload_bytes,
        max_pixels=s.max_pixels,
        max_frames=s.max_frames,
        detect_max_pixels=s.detect_max_pixels,
        detect_budget_pixels=s.detect_budget_pixels,
        min_face_px=s.default_min_face_px,
    )


def _events(settings: Settings) -> SqsEventPublisher | None:
    if not settings.events_queue_url:
        return None  # a stack without the outbox (unit contexts)
    return SqsEventPublisher(aws_client("sqs", settings), settings.events_queue_url, _clock)


def _bound(settings: Settings) -> Settings:
    bind_models(settings)
    return settings


@lru_cache(maxsize=1)
def scan_asset_service() -> ScanAsset:
    settings = _bound(get_settings())
    return ScanAsset(
        settings=settings,
        engine_factory=face_engine,
        store=S3ObjectStore(aws_client("s3", settings)),
        tenants=DynamoTenants(),
        subjects=DynamoSubjects(),
        consents=DynamoConsents(),
        assets=DynamoAssets(),
        clock=_clock,
        galleries=galleries(),
        events=_events(settings),
        redaction=redaction_service(),
        usage=DynamoUsage(),
    )


@lru_cache(maxsize=1)
def usage_service() -> Usage:
    """Usage export, API-call metering, and releases of uploads held over quota."""
    settings = _bound(get_settings())
    return Usage(
        meter=DynamoUsage(),
        assets=DynamoAssets(),
        clock=_clock,
        ingest=_queue(settings, settings.ingest_queue_url),
    )


@lru_cache(maxsize=1)
def billing_service() -> Billing:
    """Hourly Marketplace metering, the usage.hourly event, reconciliation (docs/billing.md)."""
    from quitclaim.adapters.billing_store import AwsMarketplace, DynamoLedgers, StoredRecount
    from quitclaim.usecases.billing import Billing

    settings = _bound(get_settings())
    code = settings.marketplace_product_code
    return Billing(
        ledgers=DynamoLedgers(aws_client("dynamodb", settings), settings.tenants_table),
        meter=DynamoUsage(),
        clock=_clock,
        marketplace=AwsMarketplace(aws_client("meteringmarketplace", settings), code)
        if code
        else None,
        events=_events(settings),
        recount=StoredRecount(),
    )


@lru_cache(maxsize=1)
def admission_service() -> Admission | None:
    """Ingest's lane choice; None where the stack has no bulk lane (all on the main lane)."""
    settings = get_settings()
    if not (settings.admission_table and settings.bulk_queue_url):
        return None
    return Admission(
        counter=DynamoAdmissionCounter(aws_client("dynamodb", settings), settings.admission_table),
        bulk=SqsBulkLane(aws_client("sqs", settings), settings.bulk_queue_url),
        clock=_clock,
        share=settings.admission_share,
        window_s=settings.admission_window_s,
        incoming_prefix=settings.incoming_prefix,
    )


@lru_cache(maxsize=1)
def redaction_service() -> Redaction:
    """Redacted variants of held images (the API, and ingest when a tenant opts in).

    Imported here, not at the top: it needs Pillow, which only the functions
    with the face layer (ingest, API) have.
    """
    from functools import partial

    from quitclaim.faces.imaging import decode_image
    from quitclaim.usecases.redaction import Redaction

    settings = _bound(get_settings())
    return Redaction(
        engine_factory=face_engine,
        # Full resolution, one frame: the boxes are in full-image pixels.
        decode=partial(
            decode_image,
            max_bytes=settings.max_upload_bytes,
            max_pixels=settings.max_pixels,
            max_frames=1,
        ),
        store=S3ObjectStore(aws_client("s3", settings)),
        tenants=DynamoTenants(),
        subjects=DynamoSubjects(),
        consents=DynamoConsents(),
        assets=DynamoAssets(),
        placement=_placement(),
        recheck=_recheck(),
        clock=_clock,
        library_bucket=settings.library_bucket,
        galleries=galleries(),
        events=_events(settings),
    )


@lru_cache(maxsize=1)
def _recheck() -> Recheck:
    settings = _bound(get_settings())
    assets = DynamoAssets()
    return Recheck(
        assets=assets,
        consents=DynamoConsents(),
        placement=_placement(),
        clock=_clock,
        library_bucket=settings.library_bucket,
        quarantine_bucket=settings.quarantine_bucket,
        events=_events(settings),
    )


@lru_cache(maxsize=1)
def _placement() -> Placement:
    settings = _bound(get_settings())
    return Placement(
        store=S3ObjectStore(aws_client("s3", settings)),
        assets=DynamoAssets(),
        clock=_clock,
        originals=(settings.quarantine_bucket, settings.originals_prefix),
    )


@lru_cache(maxsize=1)
def registry_service() -> Registry:
    """Tenant-level registry (operators, the demo, webhooks)."""
    settings = _bound(get_settings())
    store = S3ObjectStore(aws_client("s3", settings))
    return Registry(
        tenants=DynamoTenants(),
        subjects=DynamoSubjects(),
        consents=DynamoConsents(),
        clock=_clock,
        engine_factory=face_engine,
        recheck=_recheck(),
        documents=store,
        documents_bucket=settings.documents_bucket,
        max_document_bytes=settings.max_document_bytes,
        schedules=_schedules(settings),
        events=_events(settings),
        assets=DynamoAssets(),
        document_versions=store,
        library_bucket=settings.library_bucket,
        notices=consent_mail(),
    )


@lru_cache(maxsize=1)
def consent_mail() -> ConsentMail | None:
    """The person's confirmation and receipt e-mails (None: no mail configured)."""
    settings = get_settings()
    if not settings.link_secret_arn or not settings.mail_from:
        return None
    return ConsentMail(
        subjects=DynamoSubjects(),
        tenants=DynamoTenants(),
        mailer=SesMailer(
            aws_client("ses", settings),
            sender=settings.mail_from,
            configuration_set=settings.mail_configuration_set,
        ),
        signer=LinkSigner(_link_key),
        clock=_clock,
        base_url=settings.public_base_url,
        contact=_tenant_contact,
    )


def _tenant_contact(tenant: str) -> str | None:
    profile = DynamoTenants().profile(tenant)
    return (profile.contact_email or None) if profile is not None else None


@lru_cache(maxsize=1)
def link_pages_service() -> LinkPages:
    """What the pages of an e-mailed link show (the public API routes)."""
    settings = _bound(get_settings())
    return LinkPages(
        reminders=reminders_service(),
        signer=LinkSigner(_link_key),
        consents=DynamoConsents(),
        subjects=DynamoSubjects(),
        clock=_clock,
        contact=_tenant_contact,
        renewal_days=settings.renewal_days,
    )


@lru_cache(maxsize=1)
def person_requests_service() -> PersonRequests:
    """Access and erasure requests a person makes on a page (the public API routes)."""
    settings = _bound(get_settings())
    bind_person_requests(settings)
    registry = registry_service()
    return PersonRequests(
        store=DynamoPersonRequests(),
        tenants=DynamoTenants(),
        find_subjects=lambda tenant, email: registry.find_subjects(tenant, email=email),
        export=lambda tenant, sid: rights_service().export(tenant, sid, actor="person-request"),
        links=S3ExportLinks(aws_client("s3", settings), bucket=settings.documents_bucket),
        mailer=SesMailer(
            aws_client("ses", settings),
            sender=settings.mail_from,
            configuration_set=settings.mail_configuration_set,
        ),
        signer=LinkSigner(_link_key),
        clock=_clock,
        base_url=settings.public_base_url,
        contact=_tenant_contact,
    )


@lru_cache(maxsize=1)
def rights_service() -> SubjectRights:
    """Access exports, selfie searches and erasures (the API)."""
    _bound(get_settings())
    return SubjectRights(
        registry=registry_service(),
        assets=DynamoAssets(),
        tenants=DynamoTenants(),
        requests=DynamoRequests(),
        engine_factory=face_engine,
        clock=_clock,
        galleries=galleries(),
    )


@lru_cache(maxsize=1)
def processing_records_service() -> RecordsOfProcessing:
    settings = _bound(get_settings())
    return RecordsOfProcessing(
        tenants=DynamoTenants(),
        assets=DynamoAssets(),
        requests=DynamoRequests(),
        engine_versions=lambda: face_engine().versions,
        deployment=Deployment(
            region=settings.region,
            log_retention_days=settings.log_retention_days,
            audit_retention_days=settings.audit_retention_days,
            link_ttl_days=settings.link_ttl_days,
            reminder_days=settings.reminder_days,
            webhook_dedupe_days=settings.webhook_dedupe_days,
            webhook_retry_window_hours=settings.webhook_retry_window_hours,
        ),
        clock=_clock,
        webhooks=DynamoWebhooks(),
        profiles=DynamoTenants(),
        subjects=DynamoSubjects(),
        accuracy=accuracy_evidence,
    )


def _schedules(settings: Settings) -> SchedulerExpirySchedules | None:
    if not settings.expiry_target_arn:
        return None  # not deployed with an expiry function (unit contexts)
    return SchedulerExpirySchedules(
        aws_client("scheduler", settings),
        group=settings.schedule_group,
        target_arn=settings.expiry_target_arn,
        role_arn=settings.scheduler_role_arn,
    )


def recheck_service() -> Recheck:
    """Re-decisions for the consents stream."""
    return _recheck()


@lru_cache(maxsize=1)
def expiry_service() -> Expiry:
    settings = _bound(get_settings())
    return Expiry(
        consents=DynamoConsents(),
        tenants=DynamoTenants(),
        assets=DynamoAssets(),
        recheck=_recheck(),
        clock=_clock,
        lookback_days=settings.sweep_lookback_days,
        events=_events(settings),
    )


@lru_cache(maxsize=1)
def _link_key() -> bytes:
    settings = get_settings()
    return secret_bytes(aws_client("secretsmanager", settings), settings.link_secret_arn)


@lru_cache(maxsize=1)
def reminders_service() -> Reminders:
    settings = _bound(get_settings())
    return Reminders(
        consents=DynamoConsents(),
        subjects=DynamoSubjects(),
        tenants=DynamoTenants(),
        registry=registry_service(),
        mailer=SesMailer(
            aws_client("ses", settings),
            sender=settings.mail_from,
            configuration_set=settings.mail_configuration_set,
        ),
        signer=LinkSigner(_link_key),
        clock=_clock,
        base_url=settings.public_base_url,
        offsets=settings.reminder_days,
        renewal_days=settings.renewal_days,
        link_ttl_days=settings.link_ttl_days,
        events=_events(settings),
        age_of_consent=lambda tenant: DynamoFormStore().settings(tenant).age_of_consent,
        also_daily=lambda: forms_service().ask_majority(),
    )


@lru_cache(maxsize=1)
def forms_service() -> Forms:
    """The hosted quitclaim form (public pages and the officer's links)."""
    settings = _bound(get_settings())
    return Forms(
        registry=registry_service(),
        store=DynamoFormStore(),
        signer=LinkSigner(_link_key),
        mailer=SesMailer(
            aws_client("ses", settings),
            sender=settings.mail_from,
            configuration_set=settings.mail_configuration_set,
        ),
        clock=_clock,
        base_url=settings.public_base_url,
        hash_key=_link_key,
    )


@lru_cache(maxsize=1)
def retention_service() -> Retention:
    """Retention rules of every tenant (the daily schedule; docs/retention.md)."""
    _bound(get_settings())
    from quitclaim.adapters.tenant_directory import DynamoTenantDirectory

    return Retention(
        tenants=DynamoTenants(),
        directory=DynamoTenantDirectory(),
        assets=DynamoAssets(),
        placement=_placement(),
        clock=_clock,
    )


@lru_cache(maxsize=1)
def digest_service() -> Digest:
    """The officer's digest e-mails (the daily schedule; docs/retention.md)."""
    settings = _bound(get_settings())
    from quitclaim.adapters.tenant_directory import DynamoTenantDirectory

    queues = {
        "ingest": settings.ingest_dlq_url,
        "bulk": settings.bulk_dlq_url,
        "recheck": settings.recheck_dlq_url,
        "purge": settings.purge_dlq_url,
        "async": settings.async_dlq_url,
        "inbound": settings.inbound_dlq_url,
        "events": settings.events_dlq_url,
    }
    return Digest(
        directory=DynamoTenantDirectory(),
        assets=DynamoAssets(),
        subjects=DynamoSubjects(),
        expiries=DynamoConsents(),
        mailer=SesMailer(
            aws_client("ses", settings),
            sender=settings.mail_from,
            configuration_set=settings.mail_configuration_set,
        ),
        clock=_clock,
        queues=SqsQueueDepths(aws_client("sqs", settings), queues)
        if any(queues.values())
        else None,
        base_url=settings.public_base_url,
        requests=person_requests_service(),
        keys=DynamoApiKeys(),
        accuracy=_accuracy_stamps(settings).evidence,
    )


def _accuracy_stamps(settings: Settings) -> AccuracyStamps:
    """The last accuracy audit's stamp (no face layer needed: the digest's function)."""
    from quitclaim.usecases.accuracy_stamp import AccuracyStamps

    store = S3ObjectStore(aws_client("s3", settings))
    return AccuracyStamps(store, settings.documents_bucket, DynamoTenants())


@lru_cache(maxsize=1)
def mail_feedback_service() -> MailFeedback:
    """SES bounces and complaints, recorded on subjects (docs/retention.md)."""
    _bound(get_settings())
    registry = registry_service()
    return MailFeedback(subjects=registry.subjects, update=registry.update_subject)


def _user_tokens(settings: Settings) -> Callable[[str], Principal] | None:
    """The sign-in token verifier of the stack's user pool (None: keys only)."""
    if not (settings.user_pool_id and settings.user_pool_client_id):
        return None
    from quitclaim.adapters.user_tokens import UserTokens, issuer_of, jwks_url_of

    issuer = issuer_of(settings.region, settings.user_pool_id)
    return UserTokens(
        issuer=issuer,
        client_id=settings.user_pool_client_id,
        # Locally the emulator serves the pool's keys; in AWS the issuer does.
        jwks_url=jwks_url_of(issuer, settings.endpoint_url),
    ).principal


@lru_cache(maxsize=1)
def offboarding_service() -> Offboarding:
    """The operator's tenant deletion: every store a tenant's data lives in."""
    settings = _bound(get_settings())
    s3 = aws_client("s3", settings)
    ddb = aws_client("dynamodb", settings)

    def table(
        name: str,
        field: str,
        hash_key: str,
        range_key: str | None = None,
        also: tuple[str, ...] = (),
    ) -> Any:
        return DynamoTenantItems(
            ddb,
            getattr(settings, field),
            name,
            hash_key=hash_key,
            range_key=range_key,
            also=also,
        )

    stores: list[TenantDataStore] = [
        # First what points at data (schedules fire on it, secrets sign for it).
        TenantSchedules(
            aws_client("scheduler", settings),
            (settings.schedule_group, settings.webhook_schedule_group),
        ),
        SsmTenantPath(aws_client("ssm", settings), settings.webhook_secrets_prefix),
        S3PrefixStore(s3, settings.uploads_bucket, settings.incoming_prefix, "s3:uploads"),
        S3PrefixStore(s3, settings.library_bucket, "", "s3:library"),
        S3PrefixStore(s3, settings.quarantine_bucket, "", "s3:quarantine"),
        S3PrefixStore(s3, settings.quarantine_bucket, settings.rejected_prefix, "s3:rejected"),
        S3PrefixStore(s3, settings.quarantine_bucket, settings.originals_prefix, "s3:originals"),
        S3PrefixStore(s3, settings.documents_bucket, "", "s3:documents"),
        table("ddb:subjects", "subjects_table", "tenant", "subject_id"),
        table("ddb:consents", "consents_table", "pk", "sk"),
        table("ddb:assets", "assets_table", "pk"),
        table("ddb:appearances", "appearances_table", "pk", "sk"),
        table("ddb:webhooks", "webhooks_table", "tenant", "sk"),
        # A person's own requests live under ``{tenant}#person`` (docs/person-pages.md).
        table("ddb:requests", "requests_table", "tenant", "sk", also=("#person",)),
        table("ddb:api-keys", "api_keys_table", "tenant", "key_hash"),
        # The tenant's API Gateway key (AWS only: docs/access.md).
        *[k for k in [usage_plan_keys()] if k is not None],
        CachedGalleries(galleries),
        # Last: while the record exists, a cut-off purge can be rerun as such.
        # Form versions and settings live under ``{tenant}#form…`` (docs/consent-form.md).
        table("ddb:tenants", "tenants_table", "tenant", also=("#form",)),
    ]
    return Offboarding(tenants=DynamoTenants(), keys=DynamoApiKeys(), stores=stores, clock=_clock)


def _dashboard(settings: Settings, assets: DynamoAssets) -> Dashboard:
    queues = {
        "ingest": settings.ingest_dlq_url,
        "bulk": settings.bulk_dlq_url,
        "recheck": settings.recheck_dlq_url,
        "purge": settings.purge_dlq_url,
        "async": settings.async_dlq_url,
        "inbound": settings.inbound_dlq_url,
        "events": settings.events_dlq_url,
    }
    return Dashboard(
        registry=registry_service(),
        assets=assets,
        activity=assets,
        expiries=DynamoConsents(),
        store=S3ObjectStore(aws_client("s3", settings)),
        clock=_clock,
        limits=ImageLimits(settings.max_upload_bytes, settings.max_pixels, settings.max_frames),
        queues=SqsQueueDepths(aws_client("sqs", settings), queues)
        if any(queues.values())
        else None,
        webhooks=DynamoWebhooks(),
        accuracy=accuracy_evidence,
    )


# ---------------------------------------------------------------- webhooks


def _queue(settings: Settings, url: str) -> SqsWorkQueue | None:
    return SqsWorkQueue(aws_client("sqs", settings), url) if url else None


@lru_cache(maxsize=1)
def _webhook_secrets() -> SsmWebhookSecrets:
    settings = get_settings()
    return SsmWebhookSecrets(
        aws_client("ssm", settings),
        settings.webhook_secrets_prefix,
        settings.webhook_secrets_key_id,
    )


def _sender(settings: Settings) -> UrllibSender:
    return UrllibSender(
        timeout_s=settings.webhook_timeout_s,
        allow_private=settings.webhook_allow_private_targets,
    )


@lru_cache(maxsize=1)
def webhook_admin() -> WebhookAdmin:
    settings = _bound(get_settings())
    return WebhookAdmin(
        store=DynamoWebhooks(),
        secrets=_webhook_secrets(),
        sender=_sender(settings),
        clock=_clock,
        replays=_queue(settings, settings.events_queue_url),
        inbound_queue=_queue(settings, settings.inbound_queue_url),
        max_endpoints=settings.max_webhook_endpoints,
    )


@lru_cache(maxsize=1)
def webhook_inbox() -> WebhookInbox:
    settings = _bound(get_settings())
    queue = _queue(settings, settings.inbound_queue_url)
    return WebhookInbox(
        store=DynamoWebhooks(),
        secrets=_webhook_secrets(),
        signature=StandardWebhooksSignature(),
        guard=PowertoolsOnce(
            settings.idempotency_table,
            aws_client("dynamodb", settings),
            expires_after_s=settings.webhook_dedupe_days * 86400,
        ),
        queue=queue if queue is not None else _NoQueue(),
        clock=_clock,
        wall_clock=SystemClock(),
        public_base_url=settings.public_base_url,
    )


class _NoQueue:
    """A stack without the inbound queue refuses deliveries (fail closed, 503)."""

    def send(self, item: object) -> None:
        from quitclaim.domain.errors import DependencyFailed

        raise DependencyFailed("the inbound webhook queue is not configured")


@lru_cache(maxsize=1)
def apply_inbound_service() -> ApplyInbound:
    _bound(get_settings())
    return ApplyInbound(store=DynamoWebhooks(), registry=registry_service(), clock=_clock)


@lru_cache(maxsize=1)
def webhook_dispatcher() -> WebhookDispatcher:
    settings = _bound(get_settings())
    return WebhookDispatcher(
        store=DynamoWebhooks(),
        secrets=_webhook_secrets(),
        signature=StandardWebhooksSignature(),
        sender=_sender(settings),
        schedules=SchedulerRetrySchedules(
            aws_client("scheduler", settings),
            group=settings.webhook_schedule_group,
            target_arn=settings.webhook_target_arn,
            role_arn=settings.scheduler_role_arn,
        ),
        clock=_clock,
        wall_clock=SystemClock(),
        retry_window=timedelta(hours=settings.webhook_retry_window_hours),
        parallelism=settings.webhook_parallelism,
    )


@lru_cache(maxsize=1)
def conservation_service() -> ConservationCheck:
    """The conservation checker (an operator's and the tests' tool, not a function's)."""
    settings = _bound(get_settings())
    return ConservationCheck(
        assets=DynamoAssets(),
        consents=DynamoConsents(),
        store=S3ObjectStore(aws_client("s3", settings)),
        clock=_clock,
        uploads_bucket=settings.uploads_bucket,
        library_bucket=settings.library_bucket,
        quarantine_bucket=settings.quarantine_bucket,
        incoming_prefix=settings.incoming_prefix,
        rejected_prefix=settings.rejected_prefix,
        originals_prefix=settings.originals_prefix,
        audit=audit_trail_service(),
    )


@lru_cache(maxsize=1)
def audit_trail_service() -> AuditTrail:
    """The tenants' audit hash chains (appended by every function, verified by the CLI)."""
    settings = get_settings()
    chain = DynamoS3AuditChain(
        dynamodb=aws_client("dynamodb", settings),
        # Verifying reads every record: ahead, in parallel (adapters/read_ahead.py).
        s3=ReadAheadS3(aws_client("s3", settings)),
        table=settings.audit_heads_table,
        bucket=settings.audit_bucket,
        clock=_clock,
    )
    return AuditTrail(store=chain, clock=_clock)


def audit_reader_service() -> AuditReader:
    """The audit trail as the API reads it (bounded in time); built per call."""
    from quitclaim.usecases.audit_read import AuditReader

    return AuditReader(audit_trail_service())


def _chain_block(block_id: str, events: Sequence[Mapping[str, Any]]) -> None:
    # Looked up per block: the local stack swaps the container's cache.
    audit_trail_service().record_block(block_id, events)


# Every handler invocation's audit block goes to the tenants' chains.
observability.set_audit_sink(_chain_block)


def reset_container(*, keep_settings: bool = False) -> None:
    """Forget everything built from settings (a new 'container' locally)."""
    from quitclaim.config import reset_settings

    if not keep_settings:
        reset_settings()
    for cached in (
        scan_asset_service,
        admission_service,
        registry_service,
        *_REGISTRY_CACHED,
        redaction_service,
        rights_service,
        processing_records_service,
        galleries,
        expiry_service,
        reminders_service,
        _recheck,
        _placement,
        _link_key,
        _webhook_secrets,
        webhook_admin,
        webhook_inbox,
        apply_inbound_service,
        webhook_dispatcher,
        conservation_service,
        usage_service,
        billing_service,
        audit_trail_service,
        offboarding_service,
        consent_mail,
        link_pages_service,
        person_requests_service,
        forms_service,
        retention_service,
        digest_service,
        mail_feedback_service,
        public_limits,
    ):
        cached.cache_clear()


def consent_import_service() -> ConsentImport:
    """Import of existing consents from a spreadsheet (CLI and API); built per call."""
    from quitclaim.adapters.import_files import S3ImportStaging
    from quitclaim.usecases.consent_import import ConsentImport

    settings = _bound(get_settings())
    staging = S3ImportStaging(aws_client("s3", settings), settings.documents_bucket)
    return ConsentImport(registry_service(), _clock, staging)


def backlog_service() -> BacklogScan:
    """Scanning an existing library through the bulk lane (CLI, bench); built per call."""
    from quitclaim.adapters.backlog import S3BacklogStore
    from quitclaim.usecases.backlog import BacklogScan

    settings = _bound(get_settings())
    store = S3BacklogStore(
        aws_client("s3", settings), settings.uploads_bucket, settings.incoming_prefix
    )
    return BacklogScan(store=store, assets=DynamoAssets(), tenants=DynamoTenants(), clock=_clock)


def backlog_source(source: str) -> BacklogSource:
    """``s3://bucket/prefix`` or a local folder."""
    from pathlib import Path

    from quitclaim.adapters.backlog import FolderSource, S3Source

    if source.startswith("s3://"):
        return S3Source.from_url(aws_client("s3", _bound(get_settings())), source)
    return FolderSource(Path(source))


def accuracy_audit_service() -> AccuracyAudit:
    """The accuracy and bias audit (CLI, API job); reports kept in the documents bucket."""
    from quitclaim.usecases.accuracy_audit import AccuracyAudit

    settings = _bound(get_settings())
    return AccuracyAudit(
        tenants=DynamoTenants(),
        engine_factory=face_engine,
        clock=_clock,
        store=S3ObjectStore(aws_client("s3", settings)),
        bucket=settings.documents_bucket,
    )


def accuracy_jobs_service() -> AccuracyJobs:
    """Accuracy audits as API jobs (upload URLs, queue, worker, status)."""
    from quitclaim.adapters.audit_staging import S3UploadUrls
    from quitclaim.usecases.accuracy_jobs import AccuracyJobs

    settings = _bound(get_settings())
    s3 = aws_client("s3", settings)
    return AccuracyJobs(
        store=S3ObjectStore(s3),
        bucket=settings.documents_bucket,
        clock=_clock,
        audit=accuracy_audit_service,
        urls=S3UploadUrls(s3, settings.documents_bucket),
        queue=_queue(settings, settings.audits_queue_url),
        versions=S3ObjectStore(s3),
    )


def accuracy_evidence(tenant: str) -> dict[str, Any] | None:
    """The last accuracy audit's summary, marked stale against today's engine and policy."""
    from quitclaim.usecases.accuracy_audit import summary

    return summary(accuracy_audit_service().latest(tenant))


# ---------------------------------------------------------------- API Gateway (docs/access.md)


def usage_plan_keys() -> ApiGatewayUsagePlanKeys | None:
    """The tenants' usage-plan keys, where the stack has usage plans (not locally)."""
    settings = _bound(get_settings())
    plans = dict(
        pair.strip().split("=", 1) for pair in settings.usage_plan_ids.split(",") if "=" in pair
    )
    if not plans:
        return None
    return ApiGatewayUsagePlanKeys(
        aws_client("apigateway", settings), namespace=settings.usage_key_namespace, plans=plans
    )


def plan_service() -> PlanChanges:
    """The operator's plan change: stored plan and usage-plan key."""
    from quitclaim.usecases.plans import PlanChanges

    return PlanChanges(DynamoTenants(), usage_plan_keys())


@lru_cache(maxsize=1)
def authorizer_service() -> KeyAuthorizer:
    """The API's Lambda authorizer (functions/authorizer)."""
    settings = _bound(get_settings())
    from quitclaim.usecases.authorizer import KeyAuthorizer

    return KeyAuthorizer(
        ApiKeys(DynamoApiKeys()).resolve,
        namespace=settings.usage_key_namespace,
        resolve_token=_user_tokens(settings),
    )


@lru_cache(maxsize=1)
def public_limits() -> PublicLimits:
    """The public pages' bound (a person's request, the hosted form), per container."""
    return PublicLimits()


# ---- registry
# The officer's use-cases the API's views call (each view takes the one it needs).
# The four aggregates are one Registry on one set of stores: each accessor
# hands it out as the narrow use-case.


def tenant_admin_service() -> TenantAdmin:
    """Tenants and their policy (four eyes on loosening changes)."""
    return registry_service()


def subject_admin_service() -> SubjectAdmin:
    """Subjects: record, enrolment, retention."""
    return registry_service()


def consent_admin_service() -> ConsentAdmin:
    """A subject's consents and their evidence."""
    return registry_service()


@lru_cache(maxsize=1)
def api_keys_service() -> ApiKeys:
    """API keys: issue, resolve, list, revoke, rotate."""
    _bound(get_settings())
    return ApiKeys(DynamoApiKeys())


@lru_cache(maxsize=1)
def onboarding_service() -> Onboarding:
    """The operator's onboarding of a tenant (profile, usage plan, first admin key)."""
    from quitclaim.usecases.onboarding import Onboarding

    settings = _bound(get_settings())
    return Onboarding(
        tenants=registry_service(),
        keys=api_keys_service(),
        deployment_region=settings.region,
        usage_plans=usage_plan_keys(),
    )


@lru_cache(maxsize=1)
def request_gate() -> RequestGate:
    """Who calls, within the plan's rate, metered: before every authenticated view."""
    from quitclaim.usecases.request_gate import RequestGate

    settings = _bound(get_settings())
    return RequestGate(
        keys=api_keys_service(),
        user_tokens=_user_tokens(settings),
        limits=RateLimits(DynamoTenants().plan_of),
        usage=usage_service(),
    )


@lru_cache(maxsize=1)
def review_service() -> Review:
    """The review queue's actions (release, keep, reassign, delete)."""
    settings = _bound(get_settings())
    return Review(
        assets=DynamoAssets(),
        subjects=DynamoSubjects(),
        placement=_placement(),
        recheck=_recheck(),
        clock=_clock,
        library_bucket=settings.library_bucket,
        events=_events(settings),
    )


@lru_cache(maxsize=1)
def asset_listing_service() -> AssetListing:
    """The tenant's asset records, filtered and paged."""
    from quitclaim.usecases.asset_listing import AssetListing

    _bound(get_settings())
    return AssetListing(DynamoAssets())


@lru_cache(maxsize=1)
def dashboard_service() -> Dashboard:
    """The review dashboard's read models (overview, people, thumbnails)."""
    settings = _bound(get_settings())
    return _dashboard(settings, DynamoAssets())


@lru_cache(maxsize=1)
def monthly_bill_service() -> MonthlyBill:
    """A tenant's usage in a month with its bill."""
    from quitclaim.usecases.monthly_bill import MonthlyBill

    _bound(get_settings())
    return MonthlyBill(usage_service(), DynamoTenants())


_REGISTRY_CACHED = (
    api_keys_service,
    onboarding_service,
    request_gate,
    review_service,
    asset_listing_service,
    dashboard_service,
    monthly_bill_service,
)
