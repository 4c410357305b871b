"""Admission: the per-tenant arrival counter and the bulk lane ingest forwards to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

# The message attribute that names the lane a message was forwarded to.
LANE_ATTRIBUTE = "lane"


class Lane(StrEnum):
    MAIN = "main"
    BULK = "bulk"


@dataclass(frozen=True, slots=True)
class Arrival:
    """One SQS message as ingest received it."""

    message_id: str
    body: str
    lane: Lane = Lane.MAIN


class AdmissionCounter(Protocol):
    def add(self, tenant: str, window: int, amount: int, expires_at: int) -> int:
        """Atomically add ``amount`` to the tenant's count in ``window``; the new total.

        Raises ``DependencyFailed`` when the count cannot be read or written.
        """
        ...


class BulkLane(Protocol):
    def forward(self, messages: Sequence[Arrival]) -> set[str]:
        """Send each message body to the bulk lane; the ids that were NOT sent."""
        ...
