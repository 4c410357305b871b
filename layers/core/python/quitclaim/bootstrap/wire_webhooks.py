"""Webhooks: the console's admin, the inbox, the inbound worker, the outbound dispatcher."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

from quitclaim.adapters.aws import aws_client
from quitclaim.adapters.dynamo.webhook_store import DynamoWebhooks
from quitclaim.adapters.idempotency import PowertoolsOnce
from quitclaim.adapters.schedules import SchedulerRetrySchedules
from quitclaim.adapters.webhook_http import StandardWebhooksSignature, UrllibSender
from quitclaim.adapters.webhook_secrets import SsmWebhookSecrets
from quitclaim.bootstrap import current_clock
from quitclaim.bootstrap.wire_common import (
    bound_settings,
    work_queue,
)
from quitclaim.bootstrap.wire_people import (
    registry_service,
)
from quitclaim.config import Settings, get_settings
from quitclaim.domain.ports import SystemClock
from quitclaim.usecases.webhook_admin import WebhookAdmin
from quitclaim.usecases.webhook_apply import ApplyInbound
from quitclaim.usecases.webhook_dispatch import WebhookDispatcher
from quitclaim.usecases.webhook_inbox import WebhookInbox

if TYPE_CHECKING:
    pass


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
    settings = bound_settings(get_settings())
    return WebhookAdmin(
        store=DynamoWebhooks(),
        secrets=_webhook_secrets(),
        sender=_sender(settings),
        clock=current_clock(),
        replays=work_queue(settings, settings.events_queue_url),
        inbound_queue=work_queue(settings, settings.inbound_queue_url),
        max_endpoints=settings.max_webhook_endpoints,
    )


@lru_cache(maxsize=1)
def webhook_inbox() -> WebhookInbox:
    settings = bound_settings(get_settings())
    queue = work_queue(settings, settings.inbound_queue_url)
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
        clock=current_clock(),
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
    bound_settings(get_settings())
    return ApplyInbound(store=DynamoWebhooks(), registry=registry_service(), clock=current_clock())


@lru_cache(maxsize=1)
def webhook_dispatcher() -> WebhookDispatcher:
    settings = bound_settings(get_settings())
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
        clock=current_clock(),
        wall_clock=SystemClock(),
        retry_window=timedelta(hours=settings.webhook_retry_window_hours),
        parallelism=settings.webhook_parallelism,
    )
