"""Collaborators several areas share: settings binding, the outbox, queues, mail, faces."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from quitclaim.adapters.aws import aws_client
from quitclaim.adapters.dynamo import (
    DynamoTenants,
    bind_models,
)
from quitclaim.adapters.events import SqsEventPublisher, SqsWorkQueue
from quitclaim.adapters.mail import SesMailer, secret_bytes
from quitclaim.adapters.schedules import SchedulerExpirySchedules
from quitclaim.bootstrap import current_clock
from quitclaim.config import Settings, get_settings

if TYPE_CHECKING:
    from quitclaim.domain.ports import (
        FaceEngine,
        FaceSharpness,
        PixelRedaction,
        PublishedForms,
        Thumbnails,
    )
    from quitclaim.faces.gallery import GalleryCache


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


@lru_cache(maxsize=1)
def galleries() -> GalleryCache:
    """The container's gallery cache, shared by every use-case that matches faces."""
    from quitclaim.faces.gallery import GalleryCache  # numpy: only where faces are matched

    return GalleryCache()


# faces/ modules that are their port's adapter (module functions, no state):
# imported where a use-case is wired, so a function that never sees an image
# does not pay for numpy and PIL.
def published_forms() -> PublishedForms:
    from quitclaim.faces import published

    return published


def pixel_redaction() -> PixelRedaction:
    from quitclaim.faces import redaction

    return redaction


def face_sharpness() -> FaceSharpness:
    from quitclaim.faces import quality

    return quality


def thumbnails() -> Thumbnails:
    from quitclaim.faces import thumbnails as rendering

    return rendering


def bound_settings(settings: Settings) -> Settings:
    bind_models(settings)
    return settings


def event_publisher(settings: Settings) -> SqsEventPublisher | None:
    if not settings.events_queue_url:
        return None  # a stack without the outbox (unit contexts)
    return SqsEventPublisher(
        aws_client("sqs", settings), settings.events_queue_url, current_clock()
    )


def work_queue(settings: Settings, url: str) -> SqsWorkQueue | None:
    return SqsWorkQueue(aws_client("sqs", settings), url) if url else None


def expiry_schedules(settings: Settings) -> SchedulerExpirySchedules | None:
    if not settings.expiry_target_arn:
        return None  # not deployed with an expiry function (unit contexts)
    return SchedulerExpirySchedules(
        aws_client("scheduler", settings),
        group=settings.schedule_group,
        target_arn=settings.expiry_target_arn,
        role_arn=settings.scheduler_role_arn,
    )


@lru_cache(maxsize=1)
def link_key() -> bytes:
    settings = get_settings()
    return secret_bytes(aws_client("secretsmanager", settings), settings.link_secret_arn)


def tenant_contact(tenant: str) -> str | None:
    profile = DynamoTenants().profile(tenant)
    return (profile.contact_email or None) if profile is not None else None


def ses_mailer(settings: Settings) -> SesMailer:
    """SES, through the stack's configuration set (bounces and complaints come back)."""
    return SesMailer(
        aws_client("ses", settings),
        sender=settings.mail_from,
        configuration_set=settings.mail_configuration_set,
    )


def dead_letter_queues(settings: Settings) -> dict[str, str]:
    """Each dead-letter queue's URL by the name the dashboard and the digest show."""
    return {
        "ingest": settings.ingest_dlq_url,
        "bulk": settings.bulk_dlq_url,
        "recheck": settings.recheck_dlq_url,
        "purge": settings.purge_dlq_url,
        "async": settings.async_dlq_url,
        "inbound": settings.inbound_dlq_url,
        "events": settings.events_dlq_url,
    }
