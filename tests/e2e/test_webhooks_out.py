"""Outbound webhooks on the local stack: real receivers on loopback, retries over time.

Events come from real work (an upload decided by the ingest function), go
through the outbox queue to the deployed webhooks-out function, and reach a
small HTTP receiver. Retries are one-time schedules; ``stack.tick`` fires
them in order as the clock moves, and the clock is put back afterwards.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from quitclaim.bootstrap import api_keys_service, onboarding_service, webhook_admin
from tests.conftest import DEMO_NOW, FACES

pytestmark = pytest.mark.e2e


@dataclass
class Receiver:
    """A receiver that fails its first ``failures`` requests with a 503."""

    failures: int = 0
    requests: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self, port: int = 0) -> str:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = 503 if len(owner.requests) < owner.failures else 204
                owner.requests.append(
                    ({k.lower(): v for k, v in self.headers.items()}, body, status)
                )
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    @property
    def accepted(self) -> list[tuple[dict[str, str], bytes, int]]:
        return [r for r in self.requests if r[2] < 300]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def tenant(local_stack: Any, request: pytest.FixtureRequest) -> Iterator[tuple[str, Any]]:
    name = "out-" + request.node.name.removeprefix("test_").replace("_", "-")[:40]
    issued = onboarding_service().create_tenant(name)
    yield name, api_keys_service().resolve(issued.secret)
    local_stack.clock.set(DEMO_NOW)


def quarantine_one(stack: Any, tenant: str, name: str) -> None:
    """An upload with a face nobody consented to: decided ``quarantined``."""
    stack.client("s3").put_object(
        Bucket=stack.outputs["UploadsBucketName"],
        Key=f"incoming/{tenant}/{name}",
        Body=(FACES / "uploads" / "obama-office.jpg").read_bytes(),
        Metadata={"purpose": "web"},
    )
    stack.drain()


def test_a_flaky_receiver_gets_each_event_once_signed_and_verifiable(
    local_stack: Any, tenant: tuple[str, Any]
) -> None:
    tenant_id, admin = tenant
    receiver = Receiver(failures=3)
    url = receiver.start()
    try:
        # Given an endpoint for quarantine events whose first three answers are 503
        _, issued = webhook_admin().register_endpoint(
            admin.tenant, url, ["asset.quarantined"], "DAM"
        )
        secret = issued.secret
        # When an upload is quarantined
        quarantine_one(local_stack, tenant_id, "held.jpg")
        assert len(receiver.requests) == 1  # the first attempt, at once
        # And time passes (the retries are scheduled with backoff)
        local_stack.tick(DEMO_NOW + timedelta(minutes=30))
        # Then the receiver saw four attempts of one message and accepted one
        assert [r[2] for r in receiver.requests] == [503, 503, 503, 204]
        ids = {r[0]["webhook-id"] for r in receiver.requests}
        assert len(ids) == 1
        # And every attempt verifies with the receiver-side library
        for headers, body, _ in receiver.requests:
            event = Webhook(secret).verify(body, headers)
            assert event["type"] == "asset.quarantined" and event["tenant"] == tenant_id
        # And the payload carries ids, never names or image bytes
        data = json.loads(receiver.accepted[0][1])["data"]
        assert set(data) == {
            "asset_id",
            "path",
            "reasons",
            "location",
            # clearance per channel: purposes, codes, a date (docs/channels.md)
            "channels",
            "publishing_purposes",
            "cleared_until",
        }
        assert data["channels"]["web"] == {"status": "held", "reasons": ["unknown_face"]}
        assert "Barack" not in receiver.accepted[0][1].decode()
        # And the delivery is recorded as delivered after 4 attempts, with backoff
        [delivery] = webhook_admin().outbound_deliveries(admin.tenant, None, None)
        assert delivery.status.value == "delivered" and delivery.attempts == 4
        assert delivery.delivered_at is not None and delivery.first_attempt_at is not None
        assert delivery.delivered_at - delivery.first_attempt_at >= timedelta(seconds=30 + 60)
        # And more time changes nothing: no duplicate delivery
        local_stack.tick(DEMO_NOW + timedelta(hours=30))
        assert len(receiver.accepted) == 1
    finally:
        receiver.stop()


def test_a_receiver_down_past_the_window_leaves_a_dead_letter_that_replays(
    local_stack: Any, tenant: tuple[str, Any]
) -> None:
    tenant_id, admin = tenant
    port = free_port()
    # Given an endpoint nobody listens on
    _, issued = webhook_admin().register_endpoint(
        admin.tenant, f"http://127.0.0.1:{port}/hooks", ["asset.quarantined"], "down"
    )
    secret = issued.secret
    quarantine_one(local_stack, tenant_id, "held.jpg")
    # When it stays down for more than the 24-hour retry window
    local_stack.tick(DEMO_NOW + timedelta(hours=23))
    [retrying] = webhook_admin().outbound_deliveries(admin.tenant, None, None)
    assert retrying.status.value == "retrying" and retrying.last_error == "refused"
    local_stack.tick(DEMO_NOW + timedelta(hours=40))
    # Then the event is in the dead-letter list, after retries spanning at least 24 hours
    [dead] = webhook_admin().outbound_deliveries(admin.tenant, "dead", None)
    assert dead.attempts > 5
    assert dead.last_attempt_at is not None and dead.first_attempt_at is not None
    assert dead.last_attempt_at - dead.first_attempt_at >= timedelta(hours=24)
    # When the receiver is back and the officer replays it
    receiver = Receiver()
    receiver.start(port)
    try:
        replayed = webhook_admin().replay(admin.tenant, dead.delivery_id)
        assert replayed.status.value == "pending" and replayed.replays == 1
        local_stack.drain()
        # Then it is delivered once, with the same webhook-id, verifiable
        assert len(receiver.accepted) == 1
        headers, body, _ = receiver.accepted[0]
        assert headers["webhook-id"] == dead.delivery_id
        assert Webhook(secret).verify(body, headers)["type"] == "asset.quarantined"
        [done] = webhook_admin().outbound_deliveries(admin.tenant, None, None)
        assert done.status.value == "delivered"
        assert webhook_admin().outbound_deliveries(admin.tenant, "dead", None) == []
    finally:
        receiver.stop()


def test_a_rotated_endpoint_secret_signs_with_both_during_the_overlap(
    local_stack: Any, tenant: tuple[str, Any]
) -> None:
    tenant_id, admin = tenant
    receiver = Receiver()
    url = receiver.start()
    try:
        endpoint, issued = webhook_admin().register_endpoint(admin.tenant, url, [], "all events")
        old = issued.secret
        new = (
            webhook_admin()
            .rotate_endpoint_secret(admin.tenant, endpoint.endpoint_id, timedelta(hours=24))
            .secret
        )
        quarantine_one(local_stack, tenant_id, "held.jpg")
        headers, body, _ = receiver.accepted[0]
        # Both the old and the new secret verify one of the two signatures
        assert len(headers["webhook-signature"].split(" ")) == 2
        for secret in (old, new):
            assert Webhook(secret).verify(body, headers)["tenant"] == tenant_id
    finally:
        receiver.stop()
