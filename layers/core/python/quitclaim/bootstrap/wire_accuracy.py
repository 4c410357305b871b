"""The accuracy and bias audit: the CLI's, the API's jobs and the audits function."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quitclaim.adapters.aws import aws_client
from quitclaim.adapters.dynamo import (
    DynamoTenants,
)
from quitclaim.adapters.s3_store import S3ObjectStore
from quitclaim.bootstrap import current_clock
from quitclaim.bootstrap.wire_common import (
    bound_settings,
    face_engine,
    face_sharpness,
    work_queue,
)
from quitclaim.config import get_settings

if TYPE_CHECKING:
    from quitclaim.usecases.accuracy_audit import AccuracyAudit
    from quitclaim.usecases.accuracy_jobs import AccuracyJobs


def accuracy_audit_service() -> AccuracyAudit:
    """The accuracy and bias audit (CLI, API job); reports kept in the documents bucket."""
    from quitclaim.usecases.accuracy_audit import AccuracyAudit

    settings = bound_settings(get_settings())
    return AccuracyAudit(
        tenants=DynamoTenants(),
        engine_factory=face_engine,
        clock=current_clock(),
        quality=face_sharpness(),
        store=S3ObjectStore(aws_client("s3", settings)),
        bucket=settings.documents_bucket,
    )


def accuracy_jobs_service() -> AccuracyJobs:
    """Accuracy audits as API jobs (upload URLs, queue, worker, status)."""
    from quitclaim.adapters.audit_staging import S3UploadUrls
    from quitclaim.usecases.accuracy_jobs import AccuracyJobs

    settings = bound_settings(get_settings())
    s3 = aws_client("s3", settings)
    return AccuracyJobs(
        store=S3ObjectStore(s3),
        bucket=settings.documents_bucket,
        clock=current_clock(),
        audit=accuracy_audit_service,
        urls=S3UploadUrls(s3, settings.documents_bucket),
        queue=work_queue(settings, settings.audits_queue_url),
        versions=S3ObjectStore(s3),
    )


def accuracy_evidence(tenant: str) -> dict[str, Any] | None:
    """The last accuracy audit's summary, marked stale against today's engine and policy."""
    from quitclaim.usecases.accuracy_audit import summary

    return summary(accuracy_audit_service().latest(tenant))
