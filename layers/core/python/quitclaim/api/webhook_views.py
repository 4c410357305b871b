"""The API's webhook views: signed deliveries in, and the admin of sources and endpoints.

The router has checked each operation's role before a view runs
(``quitclaim.api.route_access``); the tenant is always the caller's.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from quitclaim import bootstrap
from quitclaim.api.routing import Call, Signed, View


def receive_webhook(signed: Signed, tenant: str, source: str) -> Any:
    receipt = bootstrap.webhook_inbox().receive(
        tenant, source, signed.headers, signed.body, method=signed.method, query=signed.query
    )
    answer: dict[str, Any] = {"status": receipt.status, "delivery_id": receipt.delivery_id}
    if receipt.deliveries:  # a tool's own format: one delivery per event of the request
        answer["deliveries"] = list(receipt.deliveries)
    return answer


def check_webhook(signed: Signed, tenant: str, source: str) -> Any:
    bootstrap.webhook_inbox().handshake(tenant, source, signed.query)
    return {"status": "ready"}


def create_webhook_source(call: Call) -> Any:
    b = call.body
    source, issued = bootstrap.webhook_admin().register_source(
        call.principal.tenant,
        b.name,
        mapping=b.mapping,
        preset=b.preset,
        default_validity_days=b.default_validity_days,
        dialect=b.dialect,
        secret=b.secret,
    )
    path = f"/webhooks/{source.tenant}/{source.name}"
    if issued is not None and source.dialect == "mailchimp":
        path += f"?token={issued.secret}"  # the URL is the secret: shown once
    # No secret where the tool owns it: it was given, and is never shown.
    secret = issued.secret if issued is not None else None
    return {"source": source, "secret": secret, "url_path": path}


def list_webhook_sources(call: Call) -> Any:
    return {"items": bootstrap.webhook_admin().sources(call.principal.tenant)}


def delete_webhook_source(call: Call, source: str) -> None:
    bootstrap.webhook_admin().delete_source(call.principal.tenant, source)


def rotate_webhook_source(call: Call, source: str) -> Any:
    overlap = timedelta(hours=call.body.overlap_hours)
    return bootstrap.webhook_admin().rotate_source_secret(call.principal.tenant, source, overlap)


def list_inbound_deliveries(call: Call, source: str) -> Any:
    admin, tenant = bootstrap.webhook_admin(), call.principal.tenant
    admin.source(tenant, source)  # an unknown source is a 404, not an empty list
    return {"items": admin.inbound_deliveries(tenant, source, call.query.status)}


def retry_inbound_delivery(call: Call, source: str, delivery_id: str) -> Any:
    return bootstrap.webhook_admin().retry_inbound(call.principal.tenant, source, delivery_id)


def dismiss_inbound_delivery(call: Call, source: str, delivery_id: str) -> Any:
    return bootstrap.webhook_admin().dismiss_inbound(call.principal.tenant, source, delivery_id)


def create_webhook_endpoint(call: Call) -> Any:
    b = call.body
    endpoint, secret = bootstrap.webhook_admin().register_endpoint(
        call.principal.tenant, b.url, list(b.event_types), b.description
    )
    return {"endpoint": endpoint, "secret": secret.secret}


def list_webhook_endpoints(call: Call) -> Any:
    return {"items": bootstrap.webhook_admin().endpoints(call.principal.tenant)}


def delete_webhook_endpoint(call: Call, endpoint_id: str) -> None:
    bootstrap.webhook_admin().delete_endpoint(call.principal.tenant, endpoint_id)


def rotate_webhook_endpoint(call: Call, endpoint_id: str) -> Any:
    overlap = timedelta(hours=call.body.overlap_hours)
    return bootstrap.webhook_admin().rotate_endpoint_secret(
        call.principal.tenant, endpoint_id, overlap
    )


def list_webhook_deliveries(call: Call) -> Any:
    q = call.query
    admin = bootstrap.webhook_admin()
    return {"items": admin.outbound_deliveries(call.principal.tenant, q.status, q.endpoint_id)}


def replay_webhook_delivery(call: Call, delivery_id: str) -> Any:
    return bootstrap.webhook_admin().replay(call.principal.tenant, delivery_id)


# The operations these views answer (``Router.bind``).
VIEWS: dict[str, View] = {
    "receiveWebhook": receive_webhook,
    "checkWebhook": check_webhook,
    "createWebhookSource": create_webhook_source,
    "listWebhookSources": list_webhook_sources,
    "deleteWebhookSource": delete_webhook_source,
    "rotateWebhookSource": rotate_webhook_source,
    "listInboundDeliveries": list_inbound_deliveries,
    "retryInboundDelivery": retry_inbound_delivery,
    "dismissInboundDelivery": dismiss_inbound_delivery,
    "createWebhookEndpoint": create_webhook_endpoint,
    "listWebhookEndpoints": list_webhook_endpoints,
    "deleteWebhookEndpoint": delete_webhook_endpoint,
    "rotateWebhookEndpoint": rotate_webhook_endpoint,
    "listWebhookDeliveries": list_webhook_deliveries,
    "replayWebhookDelivery": replay_webhook_delivery,
}
