"""Backlog scans: the library an import reads, and where its images and checkpoint go."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from quitclaim.domain.backlog import Checkpoint


class BacklogSource(Protocol):
    def describe(self) -> str: ...

    def keys_after(self, after: str) -> Iterator[str]:
        """Every key after ``after`` (empty: from the start), in one fixed order."""
        ...

    def read(self, key: str) -> bytes: ...


class BacklogStore(Protocol):
    uploads_bucket: str

    def incoming_key(self, tenant: str, path: str) -> str: ...

    def put(self, tenant: str, path: str, data: bytes) -> str:
        """Upload; the object's version (what its asset id is derived from)."""
        ...

    def waiting(self, tenant: str, prefix: str) -> list[str]:
        """Upload paths under ``prefix`` still in ``incoming/`` (not yet decided)."""
        ...

    def load(self, tenant: str, name: str) -> Checkpoint | None: ...

    def save(self, checkpoint: Checkpoint) -> None: ...
