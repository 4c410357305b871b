"""Requests people make on a page: the requests, their export links, the open ones."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    # Signatures only: importing the ports package should not load the requests domain.
    from quitclaim.domain.person_requests import PersonRequest


@dataclass(frozen=True, slots=True)
class OpenRequest:
    request_id: str
    kind: str
    deadline: datetime


class OpenRequests(Protocol):
    def open_requests(self, tenant: str) -> list[OpenRequest]:
        """Data-subject requests not answered yet, with their deadlines."""
        ...


class PersonRequestStore(Protocol):
    def create(self, request: PersonRequest) -> None:
        """Store a new request (never replaces one)."""
        ...

    def get(self, tenant: str, request_id: str) -> PersonRequest | None: ...

    def mark_verified(self, request: PersonRequest) -> bool:
        """Write the verified request if it is still unverified; False if it was not."""
        ...

    def update(self, request: PersonRequest) -> None: ...

    def verified(self, tenant: str) -> list[PersonRequest]: ...

    def add_reminder(self, day: str, tenant: str, request_id: str, days_before: int) -> None: ...

    def reminders_on(self, day: str) -> list[tuple[str, str, int]]:
        """(tenant, request_id, days_before) of the day's reminders not sent yet."""
        ...

    def claim_reminder(self, day: str, tenant: str, request_id: str, days_before: int) -> bool:
        """Mark one reminder sent; False when a concurrent run has it."""
        ...

    def release_reminder(
        self, day: str, tenant: str, request_id: str, days_before: int
    ) -> None: ...

    def delete(self, tenant: str, request_id: str) -> None:
        """Remove the request (and the address it holds)."""
        ...

    def add_sweep(self, day: str, tenant: str, request_id: str, what: str) -> None:
        """Due on ``day``: ``unverified`` (delete if still so) or ``export`` (delete ZIPs)."""
        ...

    def sweeps_on(self, day: str) -> list[tuple[str, str, str]]:
        """(tenant, request_id, what) due on the day and not done yet."""
        ...

    def drop_sweep(self, day: str, tenant: str, request_id: str, what: str) -> None: ...


class ExportLinks(Protocol):
    def publish(self, tenant: str, request_id: str, filename: str, data: bytes) -> str:
        """Store the ZIP privately and return a link to it that expires."""
        ...

    def remove(self, tenant: str, request_id: str) -> int:
        """Delete the request's ZIPs; how many there were."""
        ...
