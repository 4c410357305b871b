"""Webhooks: consent events in from marketing tools, our decisions out to DAMs and CRMs.

Inbound (``WebhookInbox.receive`` in the API, ``ApplyInbound.apply`` in a
worker): verify the Standard Webhooks signature with the source's secrets,
accept each webhook-id once (``OnceGuard``), store the delivery and enqueue
it, answer 202; the worker maps the payload to a consent event, finds the
person and applies it through the registry (which re-decides their images).
Anything that needs a person (unknown subject, a field that does not fit)
is parked, never dropped.

Outbound (``WebhookDispatcher``): each event from the outbox becomes one
delivery per subscribed endpoint, signed the same way, retried with
exponential backoff and jitter for at least ``retry_window``, then left in
the dead-letter list for a replay. A batch of outbox messages is delivered
side by side within a time budget (``handle_batch``): an endpoint that never
answers costs its own delivery a retry, never the batch (docs/budgets.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import secrets as random_ids
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from quitclaim.domain.dialects import (
    BodyUnreadable,
    Dialect,
    Unit,
    new_url_token,
    reread,
    unpack,
    verify_hubspot,
    verify_token,
    verify_typeform,
)
from quitclaim.domain.errors import (
    Conflict,
    DependencyFailed,
    NotFound,
    QuitclaimError,
    Unauthorized,
    ValidationFailed,
)
from quitclaim.domain.models import is_tenant_id
from quitclaim.domain.ports import (
    Clock,
    OnceGuard,
    RetrySchedules,
    WebhookRepository,
    WebhookSecrets,
    WebhookSender,
    WebhookSignature,
    WorkQueue,
)
from quitclaim.domain.usage import WEBHOOK_DELIVERIES, UsageIncrement, month_of
from quitclaim.domain.webhooks import (
    EVENT_TYPES,
    NAME,
    ConsentAction,
    ConsentMapping,
    InboundDelivery,
    InboundEvent,
    InboundStatus,
    IssuedSecret,
    OutboundDelivery,
    OutboundStatus,
    PayloadUnmappable,
    SecretSet,
    WebhookEndpoint,
    WebhookSource,
    new_secret,
    next_attempt_at,
)
from quitclaim.observability import audit, count, logger
from quitclaim.usecases.compliance_registry import Registry

SOURCES = "sources"
ENDPOINTS = "endpoints"
MAX_BODY_BYTES = 256 * 1024
MAX_OVERLAP = timedelta(days=7)
# Schedules fire to the second (AWS: within a minute); a try this close to due is due.
EARLY_SLACK = timedelta(seconds=60)


class SignatureRejected(Unauthorized):
    """Missing headers, a wrong or stale signature, or an unknown source: all look alike."""

    code = "invalid_signature"


class BodyTooLarge(ValidationFailed):
    code = "too_large"
    http_status = 413


class BodyNotJson(ValidationFailed):
    code = "invalid_json"


def presets() -> dict[str, dict[str, Any]]:
    """The mappings shipped for common tools (``quitclaim/webhook_mappings/*.json``)."""
    folder = resources.files("quitclaim") / "webhook_mappings"
    found: dict[str, dict[str, Any]] = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".json"):
            found[entry.name.removesuffix(".json")] = json.loads(entry.read_text("utf-8"))
    return found


# ---------------------------------------------------------------- configuration


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
        kind = _dialect_of(source)
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


# ---------------------------------------------------------------- inbound


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the sending tool hears back."""

    status: str  # accepted | duplicate | ignored
    delivery_id: str
    # Every delivery of the request (a HubSpot batch has many), in order.
    deliveries: tuple[str, ...] = ()


@dataclass
class WebhookInbox:
    """``POST /webhooks/{tenant}/{source}``: verify, accept once, store, enqueue."""

    store: WebhookRepository
    secrets: WebhookSecrets
    signature: WebhookSignature
    guard: OnceGuard
    queue: WorkQueue
    clock: Clock
    # Transport time: HubSpot's request timestamps are checked against it.
    wall_clock: Clock | None = None
    # The API's public URL: HubSpot signs the URI it called, not the one the Lambda sees.
    public_base_url: str = ""

    def receive(
        self,
        tenant: str,
        name: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        method: str = "POST",
        query: Mapping[str, str] | None = None,
    ) -> Receipt:
        if not is_tenant_id(tenant) or not NAME.fullmatch(name):
            raise SignatureRejected("unknown source or invalid signature")
        if len(body) > MAX_BODY_BYTES:
            raise BodyTooLarge(f"body is over {MAX_BODY_BYTES} bytes", field="body")
        found = self.store.source(tenant, name)
        if found is not None and _dialect_of(found) is not Dialect.STANDARD:
            return self._receive_dialect(found, method, headers, body, dict(query or {}))
        self._verify(tenant, name, headers, body)
        delivery_id = _header(headers, "webhook-id")
        source = self.store.source(tenant, name)
        if source is None:  # deleted after its secret was read: same answer as unknown
            raise SignatureRejected("unknown source or invalid signature")
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            raise BodyNotJson("body is not valid JSON", field="body") from None
        digest = hashlib.sha256(body).hexdigest()

        def accept() -> dict[str, Any]:
            return self._accept(source, delivery_id, payload, body)

        result, replayed = self.guard.once(
            {"tenant": tenant, "source": name, "webhook_id": delivery_id}, digest, accept
        )
        if result.get("status") == InboundStatus.PARKED.value:
            # Verified but unmappable: parked for review (not lost) and the tool is told why.
            raise PayloadUnmappable(str(result.get("detail")), field=str(result.get("field")))
        count("WebhookDuplicates" if replayed else "WebhooksAccepted")
        return Receipt("duplicate" if replayed else str(result["status"]), delivery_id)

    def handshake(self, tenant: str, name: str, query: Mapping[str, str]) -> None:
        """Mailchimp's GET before it saves a webhook URL: 200 for a known source and token."""
        source = (
            self.store.source(tenant, name)
            if is_tenant_id(tenant) and NAME.fullmatch(name)
            else None
        )
        if source is None or _dialect_of(source) is not Dialect.MAILCHIMP:
            raise SignatureRejected("unknown source or invalid signature")
        self._verify_dialect(source, "GET", {}, b"", query)

    def _receive_dialect(
        self,
        source: WebhookSource,
        method: str,
        headers: Mapping[str, str],
        body: bytes,
        query: Mapping[str, str],
    ) -> Receipt:
        """A tool's own format: verify its way, then each event once by the tool's id."""
        self._verify_dialect(source, method, headers, body, query)
        try:
            units = unpack(_dialect_of(source), body)
        except BodyUnreadable as exc:
            raise (
                BodyNotJson(exc.message, field=exc.field) if exc.code == "invalid_json" else exc
            ) from None
        statuses: list[str] = []
        for unit in units:

            def accept(unit: Unit = unit) -> dict[str, Any]:
                return self._accept(source, unit.delivery_id, unit.payload, unit.stored.encode())

            result, replayed = self.guard.once(
                {"tenant": source.tenant, "source": source.name, "webhook_id": unit.delivery_id},
                unit.digest,
                accept,
            )
            # Parked is stored for review: the tool did its part (no 422 that it would retry).
            statuses.append("duplicate" if replayed else str(result["status"]))
            count("WebhookDuplicates" if replayed else "WebhooksAccepted")
        if all(s == "duplicate" for s in statuses):
            status = "duplicate"
        elif all(s == "ignored" for s in statuses):
            status = "ignored"
        else:
            status = "accepted"
        ids = tuple(u.delivery_id for u in units)
        return Receipt(status, ids[0], ids)

    def _verify_dialect(
        self,
        source: WebhookSource,
        method: str,
        headers: Mapping[str, str],
        body: bytes,
        query: Mapping[str, str],
    ) -> None:
        tenant, name, kind = source.tenant, source.name, _dialect_of(source)
        now = self.clock.now()
        wall = (self.wall_clock or self.clock).now()
        uri = f"{self.public_base_url.rstrip('/')}/webhooks/{tenant}/{name}"
        if query:
            uri += "?" + urlencode(query)

        def verified(found: SecretSet | None) -> bool:
            if found is None:
                return False
            keys = found.valid(now)
            if kind is Dialect.HUBSPOT:
                return verify_hubspot(keys, method, uri, headers, body, wall)
            if kind is Dialect.TYPEFORM:
                return verify_typeform(keys, headers, body)
            return verify_token(keys, query.get("token"))

        found = self.secrets.get(tenant, SOURCES, name)
        if verified(found):
            return
        fresh = self.secrets.get(tenant, SOURCES, name, fresh=True)
        if fresh != found and verified(fresh):
            return
        count("WebhookSignatureRejected")
        raise SignatureRejected("unknown source or invalid signature")

    def _verify(self, tenant: str, name: str, headers: Mapping[str, str], body: bytes) -> None:
        if not all(
            _header(headers, h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature")
        ):
            raise SignatureRejected(
                "webhook-id, webhook-timestamp and webhook-signature are required"
            )
        if len(_header(headers, "webhook-id")) > 128:
            raise SignatureRejected("webhook-id is too long")
        # The spec's timestamp is integer seconds. The library reads it as a float
        # and signs its integer part, so "1795717830.5" would verify as
        # "1795717830": refuse any other spelling of the signed value.
        if not _header(headers, "webhook-timestamp").isascii() or not (
            _header(headers, "webhook-timestamp").isdigit()
        ):
            raise SignatureRejected("webhook-timestamp must be integer seconds")
        now = self.clock.now()
        found = self.secrets.get(tenant, SOURCES, name)
        if found is not None and self.signature.verify(found.valid(now), headers, body):
            return
        # A rotation in another container: read once more before refusing.
        fresh = self.secrets.get(tenant, SOURCES, name, fresh=True)
        if (
            fresh is not None
            and fresh != found
            and self.signature.verify(fresh.valid(now), headers, body)
        ):
            return
        count("WebhookSignatureRejected")
        raise SignatureRejected("unknown source or invalid signature")

    def _accept(
        self, source: WebhookSource, delivery_id: str, payload: Any, body: bytes
    ) -> dict[str, Any]:
        now = self.clock.now()
        base = InboundDelivery(
            source.tenant, source.name, delivery_id, InboundStatus.QUEUED, received_at=now
        )
        try:
            event = ConsentMapping.parse(source.mapping).apply(payload)
        except PayloadUnmappable as exc:
            parked = replace(
                base,
                status=InboundStatus.PARKED,
                reason=exc.code,
                field=exc.field,
                detail=exc.message,
            )
            self.store.create_inbound(parked, body.decode("utf-8"))
            count("WebhooksParked")
            return {"status": "parked", "field": exc.field, "detail": exc.message}
        if event is None:
            self.store.create_inbound(replace(base, status=InboundStatus.IGNORED), None)
            return {"status": "ignored"}
        self.store.create_inbound(replace(base, action=event.action.value), body.decode("utf-8"))
        # Only after this the tool hears 2xx: the delivery is stored and queued.
        self.queue.send(
            {"tenant": source.tenant, "source": source.name, "delivery_id": delivery_id}
        )
        return {"status": "accepted"}


def _dialect_of(source: WebhookSource) -> Dialect:
    try:
        return Dialect(source.dialect)
    except ValueError:  # a record from a newer release: refuse rather than guess
        raise SignatureRejected("unknown source or invalid signature") from None


def _new_secret(kind: Dialect) -> str:
    return new_url_token() if kind.uses_url_token else new_secret()


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return str(value).strip()
    return ""


@dataclass
class ApplyInbound:
    """The worker: one queued delivery → a consent granted, renewed or withdrawn."""

    store: WebhookRepository
    registry: Registry
    clock: Clock

    def apply(self, tenant: str, source_name: str, delivery_id: str) -> InboundDelivery:
        found = self.store.inbound(tenant, source_name, delivery_id)
        if found is None:
            raise NotFound(f"delivery {delivery_id} not found")
        delivery, body = found
        if delivery.status is not InboundStatus.QUEUED:
            return delivery  # applied, parked or dismissed already: a redelivery changes nothing
        source = self.store.source(tenant, source_name)
        try:
            if source is None:
                raise _Park("source_removed", "source", "the source was deleted")
            payload = (
                json.loads(body or "null")
                if _dialect_of(source) is Dialect.STANDARD
                else reread(_dialect_of(source), body or "null")
            )
            event = ConsentMapping.parse(source.mapping).apply(payload)
            if event is None:
                outcome = replace(delivery, status=InboundStatus.IGNORED)
            else:
                outcome = self._apply(source, delivery, event, body)
        except _Park as park:
            outcome = replace(
                delivery,
                status=InboundStatus.PARKED,
                reason=park.code,
                field=park.field,
                detail=park.message,
            )
        except ValidationFailed as exc:  # the mapping, or the registry's rules (purpose, guardian)
            outcome = replace(
                delivery,
                status=InboundStatus.PARKED,
                reason=exc.code,
                field=exc.field,
                detail=exc.message,
            )
        parked = outcome.status is InboundStatus.PARKED
        with contextlib.suppress(Conflict):  # another worker finished it first
            self.store.finish_inbound(outcome, expected=InboundStatus.QUEUED, keep_payload=parked)
        count("WebhooksParked" if parked else "WebhooksApplied")
        audit(
            "webhook.inbound_" + outcome.status.value,
            tenant=tenant,
            source=source_name,
            reason=outcome.reason,
            subject_id=outcome.subject_id,
        )
        return outcome

    def _apply(
        self,
        source: WebhookSource,
        delivery: InboundDelivery,
        event: InboundEvent,
        body: str | None = None,
    ) -> InboundDelivery:
        tenant = source.tenant
        matches = self.registry.find_subjects(
            tenant, external_ref=event.external_ref, email=event.email
        )
        if not matches:
            raise _Park("unknown_subject", "subject", "no person with this reference or e-mail")
        if len(matches) > 1:
            raise _Park("ambiguous_subject", "subject", f"{len(matches)} people match")
        subject_id = matches[0]
        origin = f"webhook:{source.name}"
        now = self.clock.now()
        changed: list[str] = []
        if event.action is ConsentAction.EMAIL_CHANGED:
            if event.new_email is None:
                raise _Park("payload_unmappable", "new_email", "the new e-mail address is missing")
            self.registry.update_subject(tenant, subject_id, {"email": event.new_email})
        elif event.action is ConsentAction.UNREACHABLE:
            self.registry.update_subject(tenant, subject_id, {"email_unreachable": True})
        elif event.action is ConsentAction.GRANTED:
            start = event.valid_from or now
            until = event.valid_until or start + timedelta(days=source.default_validity_days)
            # Stable per delivery: a redelivered grant hits ``exists``, never a second consent.
            consent_id = (
                "con_"
                + hashlib.sha256(
                    f"{tenant}#{source.name}#{delivery.delivery_id}".encode()
                ).hexdigest()[:16]
            )
            try:
                self.registry.grant_consent(
                    tenant,
                    subject_id,
                    event.purposes or (self.registry.policy(tenant).default_purpose,),
                    start,
                    until,
                    source=origin,
                    signer=event.signer,
                    form_version=source.name,
                    document_url=event.evidence_url,
                    # A Typeform response is itself the evidence: stored and hashed.
                    document=(
                        body.encode("utf-8")
                        if body and _dialect_of(source) is Dialect.TYPEFORM
                        else None
                    ),
                    document_type=(
                        "application/json" if _dialect_of(source) is Dialect.TYPEFORM else None
                    ),
                    consent_id=consent_id,
                    actor=origin,
                )
            except Conflict as exc:
                if exc.code != "exists":
                    raise
            changed.append(consent_id)
        else:
            wanted = set(event.purposes)
            for view in self.registry.consent_views(tenant, subject_id):
                if view.revoked_at is not None or (wanted and not wanted & set(view.purposes)):
                    continue
                if event.action is ConsentAction.WITHDRAWN:
                    self.registry.revoke_consent(
                        tenant, subject_id, view.consent_id, source=origin, actor=origin
                    )
                else:
                    start = event.valid_from or now
                    until = event.valid_until or start + timedelta(
                        days=source.default_validity_days
                    )
                    self.registry.renew_consent(
                        tenant,
                        subject_id,
                        view.consent_id,
                        until,
                        valid_from=min(view.valid_from, start),
                        source=origin,
                        actor=origin,
                    )
                changed.append(view.consent_id)
            if event.action is ConsentAction.RENEWED and not changed:
                raise _Park("nothing_to_renew", "subject", "the person has no consent to renew")
        return replace(
            delivery,
            status=InboundStatus.APPLIED,
            subject_id=subject_id,
            consent_ids=tuple(changed),
            applied_at=now,
        )


class _Park(QuitclaimError):
    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(message, code=code)
        self.field = field


# ---------------------------------------------------------------- outbound


@dataclass
class WebhookDispatcher:
    """Deliver outbox events to the tenant's endpoints; retry; dead-letter; replay."""

    store: WebhookRepository
    secrets: WebhookSecrets
    signature: WebhookSignature
    sender: WebhookSender
    schedules: RetrySchedules
    clock: Clock  # business time: retry times (the local stack's ticks move it)
    wall_clock: Clock  # transport time: signature timestamps the receiver checks
    retry_window: timedelta = timedelta(hours=24)
    jitter: Callable[[], float] = field(default=random.random)
    # POSTs of one batch in flight at once (``handle_batch``).
    parallelism: int = 16

    def handle(self, message: Mapping[str, Any]) -> list[OutboundDelivery]:
        """One outbox message: an event to fan out, or a replay of one delivery."""
        return [self._complete(step) for step in self._steps(message)]

    def handle_batch(
        self, messages: Sequence[Mapping[str, Any]], budget_s: float
    ) -> list[Exception | None]:
        """A batch of outbox messages, their POSTs side by side within ``budget_s``.

        Store work (rows, claims, outcomes) runs here in order; only the POSTs
        run in parallel, at most ``parallelism`` at once, taken round-robin
        across tenants, each with the time left of the budget as its timeout.
        A POST not started within the budget fails as ``batch_budget``: like
        any failed attempt it is retried on schedule. Returns, per message,
        None or the error that should return it to its queue (a store
        failure); a receiver's failure never fails its message.
        """
        deadline = time.monotonic() + budget_s
        errors: list[Exception | None] = [None] * len(messages)
        sends: list[tuple[int, _Send]] = []
        for index, message in enumerate(messages):
            try:
                for step in self._steps(message):
                    if isinstance(step, _Send):
                        sends.append((index, step))
            except Exception as exc:  # this message alone returns to the queue
                errors[index] = exc
        sends = _round_robin(sends)
        verdicts = self._post_all([send for _, send in sends], deadline)
        for (index, send), (status, error) in zip(sends, verdicts, strict=True):
            try:
                self._finish(send, status, error)
            except Exception as exc:  # the claimed attempt is redone on redelivery
                errors[index] = errors[index] or exc
        return errors

    def fan_out(self, event: Mapping[str, Any]) -> list[OutboundDelivery]:
        return [self._complete(step) for step in self._event_steps(event)]

    def _steps(self, message: Mapping[str, Any]) -> Iterator[OutboundDelivery | _Send]:
        if message.get("kind") == "replay":
            yield self._prepare_stored(str(message["tenant"]), str(message["delivery_id"]))
        else:
            yield from self._event_steps(message)

    def _event_steps(self, event: Mapping[str, Any]) -> Iterator[OutboundDelivery | _Send]:
        tenant = str(event["tenant"])
        event_type = str(event["type"])
        event_id = str(event["id"])
        body = _event_body(event)
        for endpoint in self.store.endpoints(tenant):
            if not endpoint.wants(event_type):
                continue
            delivery_id = (
                "msg_"
                + hashlib.sha256(f"{event_id}#{endpoint.endpoint_id}".encode()).hexdigest()[:26]
            )
            delivery = OutboundDelivery(
                tenant,
                delivery_id,
                endpoint.endpoint_id,
                event_id,
                event_type,
                OutboundStatus.PENDING,
                created_at=self.clock.now(),
            )
            if self.store.create_outbound(delivery, body):
                yield self._prepare(delivery, body, endpoint)
            else:  # a redelivered event: the row exists, go by its current state
                yield self._prepare_stored(tenant, delivery_id)

    def attempt(self, tenant: str, delivery_id: str) -> OutboundDelivery:
        """Try one delivery now if it is due; schedule the next try or give up."""
        return self._complete(self._prepare_stored(tenant, delivery_id))

    def _prepare_stored(self, tenant: str, delivery_id: str) -> OutboundDelivery | _Send:
        found = self.store.outbound(tenant, delivery_id)
        if found is None:
            raise NotFound(f"delivery {delivery_id} not found")
        delivery, body = found
        return self._prepare(delivery, body, None)

    def _complete(self, step: OutboundDelivery | _Send) -> OutboundDelivery:
        """A prepared step sent now (no batch: the sender's own timeout)."""
        if not isinstance(step, _Send):
            return step
        status, error = self.sender.post(step.url, step.headers, step.body.encode("utf-8"))
        return self._finish(step, status, error)

    def _post_all(
        self, sends: Sequence[_Send], deadline: float
    ) -> list[tuple[int | None, str | None]]:
        def post(send: _Send) -> tuple[int | None, str | None]:
            left = deadline - time.monotonic()
            if left <= 0:
                return None, "batch_budget"
            return self.sender.post(
                send.url, send.headers, send.body.encode("utf-8"), timeout_s=left
            )

        if not sends:
            return []
        with ThreadPoolExecutor(max_workers=min(self.parallelism, len(sends))) as pool:
            return list(pool.map(post, sends))

    def _prepare(
        self, delivery: OutboundDelivery, body: str, endpoint: WebhookEndpoint | None
    ) -> OutboundDelivery | _Send:
        """Claim the attempt and sign it; the delivery itself when there is nothing to send."""
        tenant, delivery_id = delivery.tenant, delivery.delivery_id
        now = self.clock.now()
        if delivery.status not in (OutboundStatus.PENDING, OutboundStatus.RETRYING):
            return delivery
        if delivery.next_attempt_at is not None and delivery.next_attempt_at - now > EARLY_SLACK:
            # Early (a redelivered message): make sure the due try is scheduled.
            self.schedules.retry_at(
                tenant, delivery_id, delivery.attempts + 1, delivery.next_attempt_at
            )
            return delivery
        claimed = self.store.claim_attempt(delivery, now)
        if claimed is None:
            return delivery  # another invocation took this attempt
        endpoint = endpoint or self.store.endpoint(tenant, delivery.endpoint_id)
        secrets = self.secrets.get(tenant, ENDPOINTS, delivery.endpoint_id)
        if endpoint is None or secrets is None:
            dead = replace(claimed, status=OutboundStatus.DEAD, last_error="endpoint_removed")
            self.store.record_outbound(dead)
            return dead
        headers = self.signature.headers(
            secrets.valid(now), delivery_id, self.wall_clock.now(), body
        )
        return _Send(claimed, endpoint.url, headers, body, now)

    def _finish(self, send: _Send, status: int | None, error: str | None) -> OutboundDelivery:
        """Record a sent attempt's outcome; schedule the next try or give up."""
        claimed, now = send.claimed, send.at
        tenant, delivery_id = claimed.tenant, claimed.delivery_id
        if error is None:
            done = replace(
                claimed,
                status=OutboundStatus.DELIVERED,
                last_status=status,
                last_error=None,
                next_attempt_at=None,
                delivered_at=now,
            )
            # Billed once per delivery: the first time it reaches the receiver.
            # A replay of a delivered one keeps delivered_at and is not billed again;
            # a usage event is the bill itself, not billed (it would bill itself hourly).
            usage = (
                UsageIncrement(tenant, month_of(now), {WEBHOOK_DELIVERIES: 1})
                if claimed.delivered_at is None and not claimed.event_type.startswith("usage.")
                else None
            )
            self.store.record_outbound(done, usage)
            count("WebhooksDelivered")
            return done
        assert claimed.first_attempt_at is not None
        retry = next_attempt_at(
            claimed.first_attempt_at, now, claimed.attempts, self.retry_window, self.jitter()
        )
        outcome = replace(
            claimed,
            status=OutboundStatus.RETRYING if retry else OutboundStatus.DEAD,
            last_status=status,
            last_error=error,
            next_attempt_at=retry,
        )
        self.store.record_outbound(outcome)
        logger.info(
            "webhook attempt failed",
            tenant=tenant,
            delivery_id=delivery_id,
            attempts=claimed.attempts,
            error=error,
            dead=retry is None,
        )
        if retry is None:
            count("WebhookDeadLetters")
        else:
            count("WebhookRetries")
            self.schedules.retry_at(tenant, delivery_id, claimed.attempts + 1, retry)
        return outcome


@dataclass(frozen=True, slots=True)
class _Send:
    """A claimed, signed attempt waiting for its POST."""

    claimed: OutboundDelivery
    url: str
    headers: dict[str, str]
    body: str
    at: datetime  # business time of the claim: the outcome's time too


def _round_robin(sends: list[tuple[int, _Send]]) -> list[tuple[int, _Send]]:
    """Interleave tenants: one tenant's many endpoints never take every worker first."""
    queues: dict[str, list[tuple[int, _Send]]] = {}
    for item in sends:
        queues.setdefault(item[1].claimed.tenant, []).append(item)
    ordered: list[tuple[int, _Send]] = []
    depth = 0
    while len(ordered) < len(sends):
        ordered.extend(q[depth] for q in queues.values() if depth < len(q))
        depth += 1
    return ordered


def _event_body(event: Mapping[str, Any]) -> str:
    """What the receiver gets: ids and times only (the outbox never holds names)."""
    body = {
        "id": event["id"],
        "type": event["type"],
        "tenant": event["tenant"],
        "occurred_at": event.get("occurred_at"),
        "data": event.get("data") or {},
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True)
