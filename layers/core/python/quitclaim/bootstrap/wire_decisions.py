"""Deciding assets: ingest's scan, admission, re-decisions, redaction, expiry, retention."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from quitclaim.adapters.aws import aws_client
from quitclaim.adapters.dynamo import (
    DynamoAssets,
    DynamoConsents,
    DynamoSubjects,
    DynamoTenants,
    DynamoUsage,
)
from quitclaim.adapters.dynamo_sqs_admission import DynamoAdmissionCounter, SqsBulkLane
from quitclaim.adapters.s3_store import S3ObjectStore
from quitclaim.bootstrap import current_clock
from quitclaim.bootstrap.wire_common import (
    bound_settings,
    event_publisher,
    face_engine,
    galleries,
    pixel_redaction,
    published_forms,
)
from quitclaim.config import get_settings
from quitclaim.usecases.admit_uploads import Admission
from quitclaim.usecases.asset_decisions import Placement
from quitclaim.usecases.expiry import Expiry
from quitclaim.usecases.recheck import Recheck
from quitclaim.usecases.retention_sweep import Retention
from quitclaim.usecases.scan_asset import ScanAsset

if TYPE_CHECKING:
    from quitclaim.usecases.redact_asset import Redaction


@lru_cache(maxsize=1)
def placement_service() -> Placement:
    settings = bound_settings(get_settings())
    return Placement(
        store=S3ObjectStore(aws_client("s3", settings)),
        assets=DynamoAssets(),
        clock=current_clock(),
        originals=(settings.quarantine_bucket, settings.originals_prefix),
    )


@lru_cache(maxsize=1)
def recheck_service() -> Recheck:
    """Re-decisions (the consents stream, and every use-case that changes a decision)."""
    settings = bound_settings(get_settings())
    assets = DynamoAssets()
    return Recheck(
        assets=assets,
        consents=DynamoConsents(),
        placement=placement_service(),
        clock=current_clock(),
        library_bucket=settings.library_bucket,
        quarantine_bucket=settings.quarantine_bucket,
        events=event_publisher(settings),
    )


@lru_cache(maxsize=1)
def redaction_service() -> Redaction:
    """Redacted variants of held images (the API, and ingest when a tenant opts in).

    Imported here, not at the top: it needs Pillow, which only the functions
    with the face layer (ingest, API) have.
    """
    from functools import partial

    from quitclaim.faces.imaging import decode_image
    from quitclaim.usecases.redact_asset import Redaction

    settings = bound_settings(get_settings())
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
        placement=placement_service(),
        recheck=recheck_service(),
        clock=current_clock(),
        library_bucket=settings.library_bucket,
        galleries=galleries(),
        pixels=pixel_redaction(),
        events=event_publisher(settings),
    )


@lru_cache(maxsize=1)
def scan_asset_service() -> ScanAsset:
    settings = bound_settings(get_settings())
    return ScanAsset(
        settings=settings,
        engine_factory=face_engine,
        store=S3ObjectStore(aws_client("s3", settings)),
        tenants=DynamoTenants(),
        subjects=DynamoSubjects(),
        consents=DynamoConsents(),
        assets=DynamoAssets(),
        clock=current_clock(),
        galleries=galleries(),
        published_forms=published_forms(),
        events=event_publisher(settings),
        redaction=redaction_service(),
        usage=DynamoUsage(),
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
        clock=current_clock(),
        share=settings.admission_share,
        window_s=settings.admission_window_s,
        incoming_prefix=settings.incoming_prefix,
    )


@lru_cache(maxsize=1)
def expiry_service() -> Expiry:
    settings = bound_settings(get_settings())
    return Expiry(
        consents=DynamoConsents(),
        tenants=DynamoTenants(),
        assets=DynamoAssets(),
        recheck=recheck_service(),
        clock=current_clock(),
        lookback_days=settings.sweep_lookback_days,
        events=event_publisher(settings),
    )


@lru_cache(maxsize=1)
def retention_service() -> Retention:
    """Retention rules of every tenant (the daily schedule; docs/retention.md)."""
    bound_settings(get_settings())
    from quitclaim.adapters.dynamo.tenant_directory import DynamoTenantDirectory

    return Retention(
        tenants=DynamoTenants(),
        directory=DynamoTenantDirectory(),
        assets=DynamoAssets(),
        placement=placement_service(),
        clock=current_clock(),
    )
