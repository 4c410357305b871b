"""The officer's use-cases the API's views call, each view the one it needs, with the dashboard."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from quitclaim.adapters.aws import aws_client
from quitclaim.adapters.dynamo import (
    DynamoApiKeys,
    DynamoAssets,
    DynamoConsents,
    DynamoRequests,
    DynamoSubjects,
    DynamoTenants,
)
from quitclaim.adapters.dynamo.webhook_store import DynamoWebhooks
from quitclaim.adapters.queues import SqsQueueDepths
from quitclaim.adapters.s3_store import S3ObjectStore
from quitclaim.bootstrap import current_clock
from quitclaim.bootstrap.wire_access import sign_in_tokens, usage_plan_keys
from quitclaim.bootstrap.wire_accuracy import accuracy_evidence
from quitclaim.bootstrap.wire_common import (
    bound_settings,
    dead_letter_queues,
    event_publisher,
    face_engine,
    thumbnails,
)
from quitclaim.bootstrap.wire_decisions import placement_service, recheck_service
from quitclaim.bootstrap.wire_metering import usage_service
from quitclaim.bootstrap.wire_people import registry_service
from quitclaim.config import Settings, get_settings
from quitclaim.usecases.dashboard import Dashboard, ImageLimits
from quitclaim.usecases.keys import ApiKeys
from quitclaim.usecases.limits import RateLimits
from quitclaim.usecases.processing import Deployment, RecordsOfProcessing
from quitclaim.usecases.review import Review

if TYPE_CHECKING:
    from quitclaim.usecases.asset_listing import AssetListing
    from quitclaim.usecases.consent_admin import ConsentAdmin
    from quitclaim.usecases.monthly_bill import MonthlyBill
    from quitclaim.usecases.onboarding import Onboarding
    from quitclaim.usecases.request_gate import RequestGate
    from quitclaim.usecases.subject_admin import SubjectAdmin
    from quitclaim.usecases.tenant_admin import TenantAdmin


# The four aggregates are one Registry on one set of stores: each accessor
# hands it out as the narrow use-case a view needs.
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
    bound_settings(get_settings())
    return ApiKeys(DynamoApiKeys())


@lru_cache(maxsize=1)
def onboarding_service() -> Onboarding:
    """The operator's onboarding of a tenant (profile, usage plan, first admin key)."""
    from quitclaim.usecases.onboarding import Onboarding

    settings = bound_settings(get_settings())
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

    settings = bound_settings(get_settings())
    return RequestGate(
        keys=api_keys_service(),
        user_tokens=sign_in_tokens(settings),
        limits=RateLimits(DynamoTenants().plan_of),
        usage=usage_service(),
    )


@lru_cache(maxsize=1)
def review_service() -> Review:
    """The review queue's actions (release, keep, reassign, delete)."""
    settings = bound_settings(get_settings())
    return Review(
        assets=DynamoAssets(),
        subjects=DynamoSubjects(),
        placement=placement_service(),
        recheck=recheck_service(),
        clock=current_clock(),
        library_bucket=settings.library_bucket,
        events=event_publisher(settings),
    )


@lru_cache(maxsize=1)
def asset_listing_service() -> AssetListing:
    """The tenant's asset records, filtered and paged."""
    from quitclaim.usecases.asset_listing import AssetListing

    bound_settings(get_settings())
    return AssetListing(DynamoAssets())


@lru_cache(maxsize=1)
def dashboard_service() -> Dashboard:
    """The review dashboard's read models (overview, people, thumbnails)."""
    settings = bound_settings(get_settings())
    return _dashboard(settings, DynamoAssets())


@lru_cache(maxsize=1)
def monthly_bill_service() -> MonthlyBill:
    """A tenant's usage in a month with its bill."""
    from quitclaim.usecases.monthly_bill import MonthlyBill

    bound_settings(get_settings())
    return MonthlyBill(usage_service(), DynamoTenants())


@lru_cache(maxsize=1)
def processing_records_service() -> RecordsOfProcessing:
    settings = bound_settings(get_settings())
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
        clock=current_clock(),
        webhooks=DynamoWebhooks(),
        profiles=DynamoTenants(),
        subjects=DynamoSubjects(),
        accuracy=accuracy_evidence,
    )


def _dashboard(settings: Settings, assets: DynamoAssets) -> Dashboard:
    queues = dead_letter_queues(settings)
    return Dashboard(
        registry=registry_service(),
        assets=assets,
        activity=assets,
        expiries=DynamoConsents(),
        store=S3ObjectStore(aws_client("s3", settings)),
        clock=current_clock(),
        limits=ImageLimits(settings.max_upload_bytes, settings.max_pixels, settings.max_frames),
        thumbnails=thumbnails(),
        queues=SqsQueueDepths(aws_client("sqs", settings), queues)
        if any(queues.values())
        else None,
        webhooks=DynamoWebhooks(),
        accuracy=accuracy_evidence,
    )
