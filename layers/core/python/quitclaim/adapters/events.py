"""The outbound-event outbox on SQS (the webhook deliverer consumes it)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from quitclaim.domain.errors import DependencyFailed
from quitclaim.observability import count, logger


class SqsEventPublisher:
    """Durably enqueue each event; delivery, signing and retries happen downstream.

    A failed enqueue never undoes the state change it announces (that change is
    already recorded and safe); it is logged and counted for the alarm.
    """

    def __init__(self, client: Any, queue_url: str, clock: Any) -> None:
        self._sqs = client
        self._queue = queue_url
        self._clock = clock

    def publish(self, event_type: str, tenant: str, data: Mapping[str, Any]) -> None:
        try:
            self._send(f"evt_{uuid.uuid4().hex}", event_type, tenant, data)
        except ClientError as exc:
            logger.error(
                "outbound event not enqueued",
                event_type=event_type,
                code=exc.response.get("Error", {}).get("Code"),
            )
            count("OutboundEventFailed")
            return
        count("OutboundEvents")

    def publish_many(self, events: Sequence[tuple[str, str, Mapping[str, Any]]]) -> None:
        """``publish`` for each, ten to a SendMessageBatch request (the SQS limit)."""
        for start in range(0, len(events), 10):
            chunk = events[start : start + 10]
            entries = [
                {"Id": str(i), **self._message(f"evt_{uuid.uuid4().hex}", *event)}
                for i, event in enumerate(chunk)
            ]
            try:
                resp = self._sqs.send_message_batch(QueueUrl=self._queue, Entries=entries)
            except ClientError as exc:
                failed = [(event[0], exc.response.get("Error", {}).get("Code")) for event in chunk]
            else:
                failed = [(chunk[int(f["Id"])][0], f.get("Code")) for f in resp.get("Failed", [])]
            for event_type, code in failed:
                logger.error("outbound event not enqueued", event_type=event_type, code=code)
                count("OutboundEventFailed")
            if len(chunk) > len(failed):
                count("OutboundEvents", len(chunk) - len(failed))

    def publish_once(
        self, event_id: str, event_type: str, tenant: str, data: Mapping[str, Any]
    ) -> None:
        """An event with the caller's id, or ``DependencyFailed``.

        The id makes a re-publish after a crash the same event: the deliverer
        derives each delivery's id from it and sends each once (usage.hourly).
        """
        try:
            self._send(event_id, event_type, tenant, data)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "unknown")
            raise DependencyFailed(f"outbound event not enqueued: {code}") from exc
        count("OutboundEvents")

    def _send(self, event_id: str, event_type: str, tenant: str, data: Mapping[str, Any]) -> None:
        self._sqs.send_message(
            QueueUrl=self._queue, **self._message(event_id, event_type, tenant, data)
        )

    def _message(
        self, event_id: str, event_type: str, tenant: str, data: Mapping[str, Any]
    ) -> dict[str, Any]:
        event = {
            "id": event_id,
            "type": event_type,
            "tenant": tenant,
            "occurred_at": self._clock.now().astimezone(UTC).isoformat(),
            "published_at": datetime.now(UTC).isoformat(),
            "data": dict(data),
        }
        return {
            "MessageBody": json.dumps(event, separators=(",", ":"), sort_keys=True),
            "MessageAttributes": {
                "type": {"DataType": "String", "StringValue": event_type},
                "tenant": {"DataType": "String", "StringValue": tenant},
            },
        }


class SqsWorkQueue:
    """Small JSON work items (ids only) on an SQS queue: inbound deliveries, replays."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self._sqs = client
        self._queue = queue_url

    def send(self, item: Mapping[str, Any]) -> None:
        """Enqueue durably or raise ``DependencyFailed`` (the caller must not ack)."""
        try:
            self._sqs.send_message(
                QueueUrl=self._queue,
                MessageBody=json.dumps(dict(item), separators=(",", ":"), sort_keys=True),
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "unknown")
            raise DependencyFailed(f"queue send failed: {code}") from exc
