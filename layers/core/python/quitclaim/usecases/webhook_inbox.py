"""Webhooks in: ``POST /webhooks/{tenant}/{source}`` from a marketing tool.

Verify the signature with the source's secrets (Standard Webhooks, or the
tool's own dialect), accept each webhook-id once (``OnceGuard``), store the
delivery and enqueue it, answer 202. Anything that needs a person (unknown
subject, a field that does not fit) is parked, never dropped; the worker
(``usecases/webhook_apply.py``) applies what was queued.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from quitclaim.domain.dialects import (
    BodyUnreadable,
    Dialect,
    SignatureRejected,
    Unit,
    dialect_of,
    unpack,
    verify_hubspot,
    verify_token,
    verify_typeform,
)
from quitclaim.domain.errors import ValidationFailed
from quitclaim.domain.models import is_tenant_id
from quitclaim.domain.ports import (
    Clock,
    OnceGuard,
    WebhookRepository,
    WebhookSecrets,
    WebhookSignature,
    WorkQueue,
)
from quitclaim.domain.webhooks import (
    NAME,
    SOURCES,
    ConsentMapping,
    InboundDelivery,
    InboundStatus,
    PayloadUnmappable,
    SecretSet,
    WebhookSource,
)
from quitclaim.observability import count

MAX_BODY_BYTES = 256 * 1024


class BodyTooLarge(ValidationFailed):
    code = "too_large"
    http_status = 413


class BodyNotJson(ValidationFailed):
    code = "invalid_json"


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
        if found is not None and dialect_of(found) is not Dialect.STANDARD:
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
        if source is None or dialect_of(source) is not Dialect.MAILCHIMP:
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
            units = unpack(dialect_of(source), body)
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
        tenant, name, kind = source.tenant, source.name, dialect_of(source)
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


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return str(value).strip()
    return ""
