"""Ports the use-cases depend on and adapters implement, grouped by aggregate.

Pure typing and the value objects that cross a port: no boto3, no pynamodb.
Every port lives here (tests/unit/test_architecture.py checks it); import
them from this package: ``from quitclaim.domain.ports import AssetRepository``.
The face engine port is loaded on first use (it needs numpy, which a function
that never sees an image should not pay for at cold start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quitclaim.domain.ports.accuracy_ports import (
    PhotoSource,
    UploadUrls,
)
from quitclaim.domain.ports.admission_ports import (
    LANE_ATTRIBUTE,
    AdmissionCounter,
    Arrival,
    BulkLane,
    Lane,
)
from quitclaim.domain.ports.asset_ports import (
    AssetActivity,
    AssetRepository,
    Assets,
    AutoRedaction,
    HeldAssets,
)
from quitclaim.domain.ports.audit_ports import (
    AuditChainStore,
    AuditCheckpoints,
    AuditEvents,
)
from quitclaim.domain.ports.backlog_ports import (
    BacklogSource,
    BacklogStore,
)
from quitclaim.domain.ports.billing_ports import (
    Account,
    Ledgers,
    Marketplace,
    MeterAnswer,
    MeteringThrottled,
    MeterRequest,
    Publisher,
    Recount,
)
from quitclaim.domain.ports.form_ports import (
    FormStore,
)
from quitclaim.domain.ports.mail_ports import (
    ConsentNotifier,
    Email,
    Mailer,
)
from quitclaim.domain.ports.person_request_ports import (
    ExportLinks,
    OpenRequest,
    OpenRequests,
    PersonRequestStore,
)
from quitclaim.domain.ports.runtime_ports import (
    Clock,
    EventPublisher,
    OnceGuard,
    QueueDepths,
    SystemClock,
    WorkQueue,
)
from quitclaim.domain.ports.storage_ports import (
    ListableObjectStore,
    ObjectInfo,
    ObjectKeys,
    ObjectStore,
    ObjectVersion,
    ObjectVersions,
)
from quitclaim.domain.ports.subject_ports import (
    ConsentExpiries,
    ConsentRepository,
    ExpirySchedules,
    ImportFiles,
    ImportStaging,
    RequestLog,
    SubjectRepository,
)
from quitclaim.domain.ports.tenant_ports import (
    ApiKeyRepository,
    KeyListing,
    KeyRevocation,
    PlanStore,
    TenantDataStore,
    TenantDirectory,
    TenantProfiles,
    TenantRepository,
)
from quitclaim.domain.ports.usage_ports import (
    UsageMeter,
    UsagePlanKeys,
)
from quitclaim.domain.ports.webhook_ports import (
    RetrySchedules,
    WebhookRepository,
    WebhookSecrets,
    WebhookSender,
    WebhookSignature,
)

if TYPE_CHECKING:
    from quitclaim.domain.ports.face_ports import (
        DecodedImage,
        Encoding,
        FaceEngine,
        FaceGallery,
        FaceObservation,
        FaceSharpness,
        Galleries,
        GalleryBuilder,
        GalleryMatch,
        GalleryVersion,
        PixelRedaction,
        Pixels,
        PublishedForms,
        Thumbnail,
        Thumbnails,
    )

_FACE_PORTS = frozenset(
    {
        "DecodedImage",
        "Encoding",
        "FaceEngine",
        "FaceGallery",
        "FaceObservation",
        "FaceSharpness",
        "Galleries",
        "GalleryBuilder",
        "GalleryMatch",
        "GalleryVersion",
        "PixelRedaction",
        "Pixels",
        "PublishedForms",
        "Thumbnail",
        "Thumbnails",
    }
)


def __getattr__(name: str) -> Any:
    """The face engine port's names, imported on first use (PEP 562)."""
    if name in _FACE_PORTS:
        from quitclaim.domain.ports import face_ports

        return getattr(face_ports, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LANE_ATTRIBUTE",
    "Account",
    "AdmissionCounter",
    "ApiKeyRepository",
    "Arrival",
    "AssetActivity",
    "AssetRepository",
    "Assets",
    "AuditChainStore",
    "AuditCheckpoints",
    "AuditEvents",
    "AutoRedaction",
    "BacklogSource",
    "BacklogStore",
    "BulkLane",
    "Clock",
    "ConsentExpiries",
    "ConsentNotifier",
    "ConsentRepository",
    "DecodedImage",
    "Email",
    "Encoding",
    "EventPublisher",
    "ExpirySchedules",
    "ExportLinks",
    "FaceEngine",
    "FaceGallery",
    "FaceObservation",
    "FaceSharpness",
    "FormStore",
    "Galleries",
    "GalleryBuilder",
    "GalleryMatch",
    "GalleryVersion",
    "HeldAssets",
    "ImportFiles",
    "ImportStaging",
    "KeyListing",
    "KeyRevocation",
    "Lane",
    "Ledgers",
    "ListableObjectStore",
    "Mailer",
    "Marketplace",
    "MeterAnswer",
    "MeterRequest",
    "MeteringThrottled",
    "ObjectInfo",
    "ObjectKeys",
    "ObjectStore",
    "ObjectVersion",
    "ObjectVersions",
    "OnceGuard",
    "OpenRequest",
    "OpenRequests",
    "PersonRequestStore",
    "PhotoSource",
    "PixelRedaction",
    "Pixels",
    "PlanStore",
    "PublishedForms",
    "Publisher",
    "QueueDepths",
    "Recount",
    "RequestLog",
    "RetrySchedules",
    "SubjectRepository",
    "SystemClock",
    "TenantDataStore",
    "TenantDirectory",
    "TenantProfiles",
    "TenantRepository",
    "Thumbnail",
    "Thumbnails",
    "UploadUrls",
    "UsageMeter",
    "UsagePlanKeys",
    "WebhookRepository",
    "WebhookSecrets",
    "WebhookSender",
    "WebhookSignature",
    "WorkQueue",
]
