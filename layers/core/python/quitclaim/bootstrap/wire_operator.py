"""The operator's tools: tenant offboarding, conservation checks, backlog scans."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from quitclaim.adapters.aws import aws_client
from quitclaim.adapters.dynamo import (
    DynamoApiKeys,
    DynamoAssets,
    DynamoConsents,
    DynamoTenants,
)
from quitclaim.adapters.s3_store import S3ObjectStore
from quitclaim.adapters.tenant_stores import (
    CachedGalleries,
    DynamoTenantItems,
    S3PrefixStore,
    SsmTenantPath,
    TenantSchedules,
)
from quitclaim.bootstrap import current_clock
from quitclaim.bootstrap.wire_access import (
    usage_plan_keys,
)
from quitclaim.bootstrap.wire_audit import audit_trail_service
from quitclaim.bootstrap.wire_common import (
    bound_settings,
    galleries,
)
from quitclaim.config import get_settings
from quitclaim.domain.ports import TenantDataStore
from quitclaim.usecases.conservation import ConservationCheck
from quitclaim.usecases.offboarding import Offboarding

if TYPE_CHECKING:
    from quitclaim.domain.ports import BacklogSource
    from quitclaim.usecases.backlog_scan import BacklogScan


@lru_cache(maxsize=1)
def offboarding_service() -> Offboarding:
    """The operator's tenant deletion: every store a tenant's data lives in."""
    settings = bound_settings(get_settings())
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
    return Offboarding(
        tenants=DynamoTenants(), keys=DynamoApiKeys(), stores=stores, clock=current_clock()
    )


@lru_cache(maxsize=1)
def conservation_service() -> ConservationCheck:
    """The conservation checker (an operator's and the tests' tool, not a function's)."""
    settings = bound_settings(get_settings())
    return ConservationCheck(
        assets=DynamoAssets(),
        consents=DynamoConsents(),
        store=S3ObjectStore(aws_client("s3", settings)),
        clock=current_clock(),
        uploads_bucket=settings.uploads_bucket,
        library_bucket=settings.library_bucket,
        quarantine_bucket=settings.quarantine_bucket,
        incoming_prefix=settings.incoming_prefix,
        rejected_prefix=settings.rejected_prefix,
        originals_prefix=settings.originals_prefix,
        audit=audit_trail_service(),
    )


def backlog_service() -> BacklogScan:
    """Scanning an existing library through the bulk lane (CLI, bench); built per call."""
    from quitclaim.adapters.s3_backlog import S3BacklogStore
    from quitclaim.usecases.backlog_scan import BacklogScan

    settings = bound_settings(get_settings())
    store = S3BacklogStore(
        aws_client("s3", settings), settings.uploads_bucket, settings.incoming_prefix
    )
    return BacklogScan(
        store=store, assets=DynamoAssets(), tenants=DynamoTenants(), clock=current_clock()
    )


def backlog_source(source: str) -> BacklogSource:
    """``s3://bucket/prefix`` or a local folder."""
    from pathlib import Path

    from quitclaim.adapters.s3_backlog import FolderSource, S3Source

    if source.startswith("s3://"):
        return S3Source.from_url(aws_client("s3", bound_settings(get_settings())), source)
    return FolderSource(Path(source))
