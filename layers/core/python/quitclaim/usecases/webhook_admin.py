"""Webhook configuration: a tenant's sources and endpoints, their secrets, the delivery lists.

The officer registers inbound sources (a marketing tool that sends consent
events, with a mapping or a shipped preset) and outbound endpoints (a DAM or
CRM that hears our decisions), rotates their secrets with an overlap, and
handles what the other webhook services left behind: a parked inbound
delivery retried or dismissed, a dead outbound one replayed.
"""

from __future__ import annotations

import json
import secrets as random_ids
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from importlib import resources
from typing import Any

from quitclaim.domain.dialects import Dialect, dialect_of, new_url_token
from quitclaim.domain.errors import Conflict, DependencyFailed, NotFound, ValidationFailed
from quitclaim.domain.ports import (
    Clock,
    WebhookRepository,
    WebhookSecrets,
    WebhookSender,
    WorkQueue,
)
from quitclaim.domain.webhooks import (
    ENDPOINTS,
    EVENT_TYPES,
    NAME,
    SOURCES,
    ConsentMapping,
    InboundDelivery,
    InboundStatus,
    IssuedSecret,
    OutboundDelivery,
    OutboundStatus,
    SecretSet,
    WebhookEndpoint,
    WebhookSource,
    new_secret,
)
from quitclaim.observability import audit

MAX_OVERLAP = timedelta(days=7)


def presets() -> dict[str, dict[str, Any]]:
    """The mappings shipped for common tools (``quitclaim/webhook_mappings/*.json``)."""
    folder = resources.files("quitclaim") / "webhook_mappings"
    found: dict[str, dict[str, Any]] = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".json"):
            found[entry.name.removesuffix(".json")] = json.loads(entry.read_text("utf-8"))
    return found


@dataclass
class WebhookAdmin:
    """A tenant's sources and endpoints, their secrets, and the delivery lists."""

    store: WebhookRepository
    secrets: WebhookSecrets
    sender: WebhookSender
    clock: Clock
    replays: WorkQueue | None = None
    inbound_queue: WorkQueue | None = None
    # Outbound endpoints a tenant may register (a budget: each is tried per event).
    max_endpoints: int = 10

    def register_source(
        self,
        tenant: str,
        name: str,
        *,
        mapping: Mapping[str, Any] | None = None,
        preset: str | None = None,
        default_validity_days: int = 365,
        dialect: str = "standard",
        secret: str | None = None,
    ) -> tuple[WebhookSource, IssuedSecret | None]:
        """A new inbound source with its signing secret or URL token (shown once).

        Where the tool owns the secret (HubSpot's client secret, Typeform's
        secret) it is given here, stored the same way, and never shown again:
        the answer then holds no secret.
        """
        if not NAME.fullmatch(name):
            raise ValidationFailed("name: 1-32 lowercase letters, digits or dashes", field="name")
        try:
            kind = Dialect(dialect)
        except ValueError:
            dialects = [d.value for d in Dialect]
            raise ValidationFailed(f"dialect must be one of {dialects}", field="dialect") from None
        if kind.tool_owns_secret and not (secret and 8 <= len(secret) <= 512):
            raise ValidationFailed(f"a {kind} source needs the tool's secret", field="secret")
        if not kind.tool_owns_secret and secret is not None:
            raise ValidationFailed(f"a {kind} source is given its secret", field="secret")
        if (mapping is None) == (preset is None):
            raise ValidationFailed("give exactly one of mapping or preset", field="mapping")
        if preset is not None:
            known = presets()
            if preset not in known:
                raise ValidationFailed(f"preset must be one of {sorted(known)}", field="preset")
            mapping = known[preset]
        assert mapping is not None
        ConsentMapping.parse(mapping)  # refuse a broken mapping now, not at the first delivery
        if not 1 <= default_validity_days <= 3650:
            raise ValidationFailed(
                "default_validity_days must be 1-3650", field="default_validity_days"
            )
        source = WebhookSource(
            tenant,
            name,
            dict(mapping),
            default_validity_days,
            created_at=self.clock.now(),
            dialect=kind.value,
        )
        self.store.put_source(source, new=True)
        issued = secret if secret is not None else _new_secret(kind)
        self.secrets.put(tenant, SOURCES, name, SecretSet(issued))
        audit("webhook.source_created", tenant=tenant, source=name)
        return source, None if kind.tool_owns_secret else IssuedSecret(issued)

    def sources(self, tenant: str) -> list[WebhookSource]:
        return self.store.sources(tenant)

    def source(self, tenant: str, name: str) -> WebhookSource:
        found = self.store.source(tenant, name)
        if found is None:
            raise NotFound(f"source {name} not found")
        return found

    def delete_source(self, tenant: str, name: str) -> None:
        self.source(tenant, name)
        self.store.delete_source(tenant, name)
        self.secrets.delete(tenant, SOURCES, name)
        audit("webhook.source_deleted", tenant=tenant, source=name)

    def rotate_source_secret(self, tenant: str, name: str, overlap: timedelta) -> IssuedSecret:
        """A new secret; the old one keeps verifying for ``overlap``."""
        source = self.source(tenant, name)
        kind = dialect_of(source)
        if kind.tool_owns_secret:
            raise Conflict(
                f"the {kind} secret is the tool's: register the source again with the new one",
                code="tool_owned_secret",
            )
        issued = self._rotate(tenant, SOURCES, name, overlap, _new_secret(kind))
        self.store.put_source(replace(source, rotated_at=self.clock.now()), new=False)
        audit("webhook.source_rotated", tenant=tenant, source=name)
        return issued

    def register_endpoint(
        self, tenant: str, url: str, event_types: list[str], description: str = ""
    ) -> tuple[WebhookEndpoint, IssuedSecret]:
        self.sender.check_url(url)
        unknown = sorted(set(event_types) - set(EVENT_TYPES))
        if unknown:
            raise ValidationFailed(
                f"unknown event types {unknown}; known: {list(EVENT_TYPES)}", field="event_types"
            )
        if len(self.store.endpoints(tenant)) >= self.max_endpoints:
            raise ValidationFailed(
                f"a tenant may register at most {self.max_endpoints} endpoints; "
                "delete one before adding another",
                field="url",
                code="too_many_endpoints",
            )
        endpoint = WebhookEndpoint(
            tenant,
            f"ep_{random_ids.token_hex(8)}",
            url,
            tuple(sorted(set(event_types))),
            description[:200],
            created_at=self.clock.now(),
        )
        secret = new_secret()
        self.secrets.put(tenant, ENDPOINTS, endpoint.endpoint_id, SecretSet(secret))
        self.store.put_endpoint(endpoint, new=True)
        audit("webhook.endpoint_created", tenant=tenant, endpoint_id=endpoint.endpoint_id)
        return endpoint, IssuedSecret(secret)

    def endpoints(self, tenant: str) -> list[WebhookEndpoint]:
        return self.store.endpoints(tenant)

    def endpoint(self, tenant: str, endpoint_id: str) -> WebhookEndpoint:
        found = self.store.endpoint(tenant, endpoint_id)
        if found is None:
            raise NotFound(f"endpoint {endpoint_id} not found")
        return found

    def delete_endpoint(self, tenant: str, endpoint_id: str) -> None:
        self.endpoint(tenant, endpoint_id)
        self.store.delete_endpoint(tenant, endpoint_id)
        self.secrets.delete(tenant, ENDPOINTS, endpoint_id)
        audit("webhook.endpoint_deleted", tenant=tenant, endpoint_id=endpoint_id)

    def rotate_endpoint_secret(
        self, tenant: str, endpoint_id: str, overlap: timedelta
    ) -> IssuedSecret:
        """A new secret; both sign every delivery during ``overlap``."""
        endpoint = self.endpoint(tenant, endpoint_id)
        issued = self._rotate(tenant, ENDPOINTS, endpoint_id, overlap)
        self.store.put_endpoint(replace(endpoint, rotated_at=self.clock.now()), new=False)
        audit("webhook.endpoint_rotated", tenant=tenant, endpoint_id=endpoint_id)
        return issued

    def inbound_deliveries(
        self, tenant: str, source: str | None, status: str | None
    ) -> list[InboundDelivery]:
        if status is not None and status not in {s.value for s in InboundStatus}:
            raise ValidationFailed(
                f"status must be one of {[s.value for s in InboundStatus]}", field="status"
            )
        found = self.store.inbound_deliveries(tenant, source, status)
        return sorted(found, key=lambda d: d.received_at, reverse=True)

    def outbound_deliveries(
        self, tenant: str, status: str | None, endpoint_id: str | None
    ) -> list[OutboundDelivery]:
        if status is not None and status not in {s.value for s in OutboundStatus}:
            raise ValidationFailed(
                f"status must be one of {[s.value for s in OutboundStatus]}", field="status"
            )
        found = self.store.outbound_deliveries(tenant, status, endpoint_id)
        return sorted(found, key=lambda d: d.created_at, reverse=True)

    def replay(self, tenant: str, delivery_id: str) -> OutboundDelivery:
        """Send a dead (or delivered) event again, same webhook-id, fresh retry window."""
        found = self.store.outbound(tenant, delivery_id)
        if found is None:
            raise NotFound(f"delivery {delivery_id} not found")
        delivery = found[0]
        if delivery.status not in (OutboundStatus.DEAD, OutboundStatus.DELIVERED):
            raise Conflict("the delivery is still being retried", code="in_flight")
        if self.replays is None:
            raise DependencyFailed("the events queue is not configured")
        fresh = self.store.reset_outbound(delivery)
        self.replays.send({"kind": "replay", "tenant": tenant, "delivery_id": delivery_id})
        audit("webhook.replayed", tenant=tenant, delivery_id=delivery_id)
        return fresh

    def retry_inbound(self, tenant: str, source: str, delivery_id: str) -> InboundDelivery:
        """Apply a parked delivery again (after creating the person, fixing the mapping).

        A delivery still ``queued`` can be pushed again too: one whose enqueue
        failed and whose sender never retried. The worker applies a delivery
        once, whatever number of messages name it.
        """
        delivery = self._delivery(tenant, source, delivery_id, InboundStatus.QUEUED)
        if self.inbound_queue is None:
            raise DependencyFailed("the inbound queue is not configured")
        queued = replace(
            delivery, status=InboundStatus.QUEUED, reason=None, field=None, detail=None
        )
        if delivery.status is InboundStatus.PARKED:
            self.store.finish_inbound(queued, expected=InboundStatus.PARKED, keep_payload=True)
        self.inbound_queue.send({"tenant": tenant, "source": source, "delivery_id": delivery_id})
        audit("webhook.inbound_retried", tenant=tenant, source=source)
        return queued

    def dismiss_inbound(self, tenant: str, source: str, delivery_id: str) -> InboundDelivery:
        """Close a parked delivery without applying it (its payload is deleted)."""
        delivery = self._delivery(tenant, source, delivery_id)
        dismissed = replace(delivery, status=InboundStatus.DISMISSED)
        self.store.finish_inbound(dismissed, expected=InboundStatus.PARKED, keep_payload=False)
        audit("webhook.inbound_dismissed", tenant=tenant, source=source)
        return dismissed

    def _delivery(
        self, tenant: str, source: str, delivery_id: str, *also: InboundStatus
    ) -> InboundDelivery:
        found = self.store.inbound(tenant, source, delivery_id)
        if found is None:
            raise NotFound(f"delivery {delivery_id} not found")
        if found[0].status not in (InboundStatus.PARKED, *also):
            allowed = " or ".join(s.value for s in (InboundStatus.PARKED, *also))
            raise Conflict(f"only a {allowed} delivery can be handled so", code="not_parked")
        return found[0]

    def _rotate(
        self, tenant: str, kind: str, name: str, overlap: timedelta, secret: str | None = None
    ) -> IssuedSecret:
        if not timedelta(0) <= overlap <= MAX_OVERLAP:
            raise ValidationFailed("overlap_hours must be 0-168", field="overlap_hours")
        current = self.secrets.get(tenant, kind, name, fresh=True)
        if current is None:
            raise NotFound(f"{name} has no secret")
        until = self.clock.now() + overlap
        secret = secret or new_secret()
        self.secrets.put(tenant, kind, name, SecretSet(secret, current.current, until))
        return IssuedSecret(secret, until)


def _new_secret(kind: Dialect) -> str:
    return new_url_token() if kind.uses_url_token else new_secret()
