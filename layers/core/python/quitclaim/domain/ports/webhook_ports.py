"""Webhooks: sources, endpoints and deliveries, their secrets, signatures and sends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from quitclaim.domain.usage import UsageIncrement
from quitclaim.domain.webhooks import (
    InboundDelivery,
    InboundStatus,
    OutboundDelivery,
    SecretSet,
    WebhookEndpoint,
    WebhookSource,
)


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


class RetrySchedules(Protocol):
    def retry_at(self, tenant: str, delivery_id: str, attempt: int, at: datetime) -> None: ...
