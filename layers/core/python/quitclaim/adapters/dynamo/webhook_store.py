"""Webhook sources, endpoints and deliveries on the webhooks table (PynamoDB)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pynamodb.exceptions import PutError, UpdateError
from pynamodb.transactions import TransactWrite

from quitclaim.adapters.dynamo.plumbing import conditional_failed, dependency
from quitclaim.adapters.dynamo.tables import WebhookModel
from quitclaim.adapters.dynamo.usage_meter import usage_update
from quitclaim.domain.errors import Conflict
from quitclaim.domain.usage import UsageIncrement
from quitclaim.domain.webhooks import (
    InboundDelivery,
    InboundStatus,
    OutboundDelivery,
    OutboundStatus,
    WebhookEndpoint,
    WebhookSource,
)

# How long delivery records stay listable (the dead-letter list included).
DELIVERY_RETENTION = timedelta(days=35)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class DynamoWebhooks:
    """The ``WebhookRepository`` port: one partition per tenant."""

    # ------------------------------------------------------------ sources
    def put_source(self, source: WebhookSource, *, new: bool) -> None:
        item = WebhookModel(
            source.tenant,
            f"source#{source.name}",
            kind="source",
            created_at=source.created_at or datetime.now(UTC),
            data={
                "mapping": dict(source.mapping),
                "default_validity_days": source.default_validity_days,
                "rotated_at": _iso(source.rotated_at),
                "dialect": source.dialect,
            },
        )
        if not new:
            with dependency("webhook source write"):
                item.save()
        elif not _create(item):
            raise Conflict(f"source {source.name} exists", code="exists")

    def source(self, tenant: str, name: str) -> WebhookSource | None:
        item = self._get(tenant, f"source#{name}")
        return _source_from(item) if item else None

    def sources(self, tenant: str) -> list[WebhookSource]:
        return [_source_from(i) for i in self._query(tenant, "source#")]

    def delete_source(self, tenant: str, name: str) -> None:
        with dependency("webhook source delete"):
            WebhookModel(tenant, f"source#{name}").delete()

    # ------------------------------------------------------------ endpoints
    def put_endpoint(self, endpoint: WebhookEndpoint, *, new: bool) -> None:
        item = WebhookModel(
            endpoint.tenant,
            f"endpoint#{endpoint.endpoint_id}",
            kind="endpoint",
            created_at=endpoint.created_at or datetime.now(UTC),
            data={
                "url": endpoint.url,
                "event_types": list(endpoint.event_types),
                "description": endpoint.description,
                "rotated_at": _iso(endpoint.rotated_at),
            },
        )
        with dependency("webhook endpoint write"):
            item.save(condition=WebhookModel.sk.does_not_exist() if new else None)

    def endpoint(self, tenant: str, endpoint_id: str) -> WebhookEndpoint | None:
        item = self._get(tenant, f"endpoint#{endpoint_id}")
        return _endpoint_from(item) if item else None

    def endpoints(self, tenant: str) -> list[WebhookEndpoint]:
        return [_endpoint_from(i) for i in self._query(tenant, "endpoint#")]

    def delete_endpoint(self, tenant: str, endpoint_id: str) -> None:
        with dependency("webhook endpoint delete"):
            WebhookModel(tenant, f"endpoint#{endpoint_id}").delete()

    # ------------------------------------------------------------ inbound
    def create_inbound(self, delivery: InboundDelivery, payload: str | None) -> bool:
        """Record a verified delivery once; False when this webhook-id is known."""
        item = WebhookModel(
            delivery.tenant,
            _in_key(delivery.source, delivery.delivery_id),
            kind="in",
            status=delivery.status.value,
            created_at=delivery.received_at,
            payload=payload,
            data=_inbound_data(delivery),
            ttl=delivery.received_at + DELIVERY_RETENTION,
        )
        return _create(item)

    def inbound(
        self, tenant: str, source: str, delivery_id: str
    ) -> tuple[InboundDelivery, str | None] | None:
        item = self._get(tenant, _in_key(source, delivery_id))
        return (_inbound_from(item), item.payload) if item else None

    def finish_inbound(
        self, delivery: InboundDelivery, *, expected: InboundStatus, keep_payload: bool
    ) -> None:
        """Store the outcome if the delivery is still ``expected`` (else ``Conflict``)."""
        item = WebhookModel(delivery.tenant, _in_key(delivery.source, delivery.delivery_id))
        actions: list[Any] = [
            WebhookModel.status.set(delivery.status.value),
            WebhookModel.data.set(_inbound_data(delivery)),
        ]
        if not keep_payload:
            actions.append(WebhookModel.payload.remove())  # contact data: not kept once applied
        with dependency("webhook delivery update"):
            try:
                item.update(actions=actions, condition=WebhookModel.status == expected.value)
            except UpdateError as exc:
                if conditional_failed(exc):
                    raise Conflict("the delivery changed meanwhile", code="changed") from None
                raise

    def inbound_deliveries(
        self, tenant: str, source: str | None, status: str | None
    ) -> list[InboundDelivery]:
        prefix = f"in#{source}#" if source else "in#"
        found = [_inbound_from(i) for i in self._query(tenant, prefix)]
        return [d for d in found if status is None or d.status.value == status]

    # ------------------------------------------------------------ outbound
    def create_outbound(self, delivery: OutboundDelivery, payload: str) -> bool:
        item = WebhookModel(
            delivery.tenant,
            f"out#{delivery.delivery_id}",
            kind="out",
            status=delivery.status.value,
            attempts=0,
            created_at=delivery.created_at,
            payload=payload,
            data=_outbound_data(delivery),
            ttl=delivery.created_at + DELIVERY_RETENTION,
        )
        return _create(item)

    def outbound(self, tenant: str, delivery_id: str) -> tuple[OutboundDelivery, str] | None:
        item = self._get(tenant, f"out#{delivery_id}")
        return (_outbound_from(item), item.payload or "{}") if item else None

    def claim_attempt(self, delivery: OutboundDelivery, at: datetime) -> OutboundDelivery | None:
        """Take the next attempt if nobody else did; None: someone else has it."""
        claimed = replace(
            delivery,
            attempts=delivery.attempts + 1,
            first_attempt_at=delivery.first_attempt_at or at,
            last_attempt_at=at,
        )
        item = WebhookModel(delivery.tenant, f"out#{delivery.delivery_id}")
        with dependency("webhook delivery update"):
            try:
                item.update(
                    actions=[
                        WebhookModel.attempts.set(claimed.attempts),
                        WebhookModel.data.set(_outbound_data(claimed)),
                    ],
                    condition=(WebhookModel.attempts == delivery.attempts)
                    & (WebhookModel.status == delivery.status.value),
                )
            except UpdateError as exc:
                if conditional_failed(exc):
                    return None
                raise
        return claimed

    def record_outbound(
        self, delivery: OutboundDelivery, usage: UsageIncrement | None = None
    ) -> None:
        """Store an attempt's outcome (the claim made this writer the only one).

        ``usage`` (the transition to delivered) is added in the same transaction
        as the conditional update: an attempt whose outcome is refused (another
        writer holds a later attempt) counts nothing.
        """
        item = WebhookModel(delivery.tenant, f"out#{delivery.delivery_id}")
        actions: list[Any] = [
            WebhookModel.status.set(delivery.status.value),
            WebhookModel.data.set(_outbound_data(delivery)),
        ]
        condition = WebhookModel.attempts == delivery.attempts
        with dependency("webhook delivery update"):
            if usage is None:
                item.update(actions=actions, condition=condition)
                return
            counters, adds, _ = usage_update(usage)
            with TransactWrite(connection=WebhookModel._get_connection().connection) as tx:
                tx.update(item, actions=actions, condition=condition)
                tx.update(counters, actions=adds)

    def reset_outbound(self, delivery: OutboundDelivery) -> OutboundDelivery:
        """Start a fresh attempt sequence (a replay) if the delivery is still as read."""
        fresh = replace(
            delivery,
            status=OutboundStatus.PENDING,
            attempts=0,
            first_attempt_at=None,
            next_attempt_at=None,
            replays=delivery.replays + 1,
        )
        item = WebhookModel(delivery.tenant, f"out#{delivery.delivery_id}")
        with dependency("webhook delivery update"):
            try:
                item.update(
                    actions=[
                        WebhookModel.status.set(fresh.status.value),
                        WebhookModel.attempts.set(0),
                        WebhookModel.data.set(_outbound_data(fresh)),
                    ],
                    condition=(WebhookModel.attempts == delivery.attempts)
                    & (WebhookModel.status == delivery.status.value),
                )
            except UpdateError as exc:
                if conditional_failed(exc):
                    raise Conflict("the delivery changed meanwhile", code="changed") from None
                raise
        return fresh

    def outbound_deliveries(
        self, tenant: str, status: str | None, endpoint_id: str | None
    ) -> list[OutboundDelivery]:
        found = [_outbound_from(i) for i in self._query(tenant, "out#")]
        return [
            d
            for d in found
            if (status is None or d.status.value == status)
            and (endpoint_id is None or d.endpoint_id == endpoint_id)
        ]

    # ------------------------------------------------------------ internals
    def _get(self, tenant: str, sk: str) -> WebhookModel | None:
        with dependency("webhooks read"):
            try:
                return WebhookModel.get(tenant, sk, consistent_read=True)
            except WebhookModel.DoesNotExist:
                return None

    def _query(self, tenant: str, prefix: str) -> list[WebhookModel]:
        with dependency("webhooks query"):
            return list(
                WebhookModel.query(tenant, WebhookModel.sk.startswith(prefix), consistent_read=True)
            )


def _create(item: WebhookModel) -> bool:
    """Write a new item; False when one with its key exists."""
    with dependency("webhooks write"):
        try:
            item.save(condition=WebhookModel.sk.does_not_exist())
        except PutError as exc:
            if conditional_failed(exc):
                return False
            raise
    return True


def _in_key(source: str, delivery_id: str) -> str:
    return f"in#{source}#{delivery_id}"


def _source_from(item: WebhookModel) -> WebhookSource:
    data: Mapping[str, Any] = item.data or {}
    return WebhookSource(
        tenant=item.tenant,
        name=item.sk.removeprefix("source#"),
        mapping=data.get("mapping") or {},
        default_validity_days=int(data.get("default_validity_days") or 365),
        created_at=item.created_at,
        rotated_at=_dt(data.get("rotated_at")),
        dialect=str(data.get("dialect") or "standard"),
    )


def _endpoint_from(item: WebhookModel) -> WebhookEndpoint:
    data: Mapping[str, Any] = item.data or {}
    return WebhookEndpoint(
        tenant=item.tenant,
        endpoint_id=item.sk.removeprefix("endpoint#"),
        url=str(data.get("url") or ""),
        event_types=tuple(data.get("event_types") or ()),
        description=str(data.get("description") or ""),
        created_at=item.created_at,
        rotated_at=_dt(data.get("rotated_at")),
    )


def _inbound_data(d: InboundDelivery) -> dict[str, Any]:
    return {
        "reason": d.reason,
        "field": d.field,
        "detail": d.detail,
        "subject_id": d.subject_id,
        "consent_ids": list(d.consent_ids),
        "applied_at": _iso(d.applied_at),
        "action": d.action,
    }


def _inbound_from(item: WebhookModel) -> InboundDelivery:
    data: Mapping[str, Any] = item.data or {}
    _, source, delivery_id = item.sk.split("#", 2)
    return InboundDelivery(
        tenant=item.tenant,
        source=source,
        delivery_id=delivery_id,
        status=InboundStatus(item.status),
        received_at=item.created_at,
        reason=data.get("reason"),
        field=data.get("field"),
        detail=data.get("detail"),
        subject_id=data.get("subject_id"),
        consent_ids=tuple(data.get("consent_ids") or ()),
        applied_at=_dt(data.get("applied_at")),
        action=data.get("action"),
    )


def _outbound_data(d: OutboundDelivery) -> dict[str, Any]:
    return {
        "endpoint_id": d.endpoint_id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "first_attempt_at": _iso(d.first_attempt_at),
        "last_attempt_at": _iso(d.last_attempt_at),
        "next_attempt_at": _iso(d.next_attempt_at),
        "last_status": d.last_status,
        "last_error": d.last_error,
        "delivered_at": _iso(d.delivered_at),
        "replays": d.replays,
    }


def _outbound_from(item: WebhookModel) -> OutboundDelivery:
    data: Mapping[str, Any] = item.data or {}
    return OutboundDelivery(
        tenant=item.tenant,
        delivery_id=item.sk.removeprefix("out#"),
        endpoint_id=str(data.get("endpoint_id") or ""),
        event_id=str(data.get("event_id") or ""),
        event_type=str(data.get("event_type") or ""),
        status=OutboundStatus(item.status),
        created_at=item.created_at,
        attempts=int(item.attempts or 0),
        first_attempt_at=_dt(data.get("first_attempt_at")),
        last_attempt_at=_dt(data.get("last_attempt_at")),
        next_attempt_at=_dt(data.get("next_attempt_at")),
        last_status=data.get("last_status"),
        last_error=data.get("last_error"),
        delivered_at=_dt(data.get("delivered_at")),
        replays=int(data.get("replays") or 0),
    )
