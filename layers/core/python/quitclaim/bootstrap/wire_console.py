"""The principal-scoped console of the API and the HTTP CLI, with its dashboard."""

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
from quitclaim.bootstrap.wire_access import (
    sign_in_tokens,
    usage_plan_keys,
)
from quitclaim.bootstrap.wire_accuracy import (
    accuracy_evidence,
)
from quitclaim.bootstrap.wire_common import (
    bound_settings,
    dead_letter_queues,
    event_publisher,
    face_engine,
    thumbnails,
)
from quitclaim.bootstrap.wire_decisions import (
    placement_service,
    recheck_service,
    redaction_service,
)
from quitclaim.bootstrap.wire_metering import usage_service
from quitclaim.bootstrap.wire_people import (
    registry_service,
    rights_service,
)
from quitclaim.bootstrap.wire_webhooks import (
    webhook_admin,
    webhook_inbox,
)
from quitclaim.config import Settings, get_settings
from quitclaim.usecases.console import Console
from quitclaim.usecases.dashboard import Dashboard, ImageLimits
from quitclaim.usecases.keys import ApiKeys
from quitclaim.usecases.limits import RateLimits
from quitclaim.usecases.processing import Deployment, RecordsOfProcessing
from quitclaim.usecases.review import Review

if TYPE_CHECKING:
    pass


@lru_cache(maxsize=1)
def console_service() -> Console:
    """The principal-scoped facade the API and the HTTP CLI use."""
    settings = bound_settings(get_settings())
    assets = DynamoAssets()
    return Console(
        registry=registry_service(),
        review=Review(
            assets=assets,
            subjects=DynamoSubjects(),
            placement=placement_service(),
            recheck=recheck_service(),
            clock=current_clock(),
            library_bucket=settings.library_bucket,
            events=event_publisher(settings),
        ),
        keys=ApiKeys(DynamoApiKeys()),
        assets=assets,
        webhooks=webhook_admin(),
        inbox=webhook_inbox(),
        dashboard=_dashboard(settings, assets),
        rights=rights_service(),
        redaction=redaction_service(),
        processing=processing_records_service(),
        usage=usage_service(),
        limits=RateLimits(DynamoTenants().plan_of),
        deployment_region=settings.region,
        usage_plans=usage_plan_keys(),
        user_tokens=sign_in_tokens(settings),
    )


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
