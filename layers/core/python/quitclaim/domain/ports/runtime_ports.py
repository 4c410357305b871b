"""What every function's runtime offers: time, queues, the outbox, once-only work."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class EventPublisher(Protocol):
    """The outbox: events for the tenant's webhooks (ids only, never names)."""

    def publish(self, event_type: str, tenant: str, data: Mapping[str, Any]) -> None: ...


class WorkQueue(Protocol):
    """Durable work items (ids only) for a worker function."""

    def send(self, item: Mapping[str, Any]) -> None:
        """Enqueue or raise ``DependencyFailed``."""
        ...


class QueueDepths(Protocol):
    def depths(self) -> dict[str, int | None]:
        """Messages waiting per dead-letter queue (None: could not be read)."""
        ...


class OnceGuard(Protocol):
    def once(
        self, key: Mapping[str, str], digest: str, action: Callable[[], dict[str, Any]]
    ) -> tuple[dict[str, Any], bool]: ...
