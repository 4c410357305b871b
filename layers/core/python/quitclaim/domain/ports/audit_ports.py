"""The audit chains: the serialising head and the records."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from quitclaim.domain.audit_chain import ChainHead, Verification


class AuditChainStore(Protocol):
    """Where tenants' audit chains live: a serialising head and the records.

    ``advance`` is the only step that orders appends: it moves the head from
    ``expected`` (None: no chain yet) to ``record`` atomically, or answers
    ``"race"`` (the head moved) or ``"duplicate"`` (``block`` was appended
    already). Records are written after the head, so a record may be pending.
    """

    def head(self, tenant: str, lane: int = 0) -> ChainHead | None: ...

    def heads(self, tenant: str) -> Mapping[int, ChainHead]:
        """Every lane's head of the tenant (lane 0 included, when it has one)."""
        ...

    def advance(
        self, tenant: str, expected: ChainHead | None, record: Mapping[str, Any], body: bytes
    ) -> str:
        """Move the head of ``record``'s lane (``record["lane"]``, default 0); claim its block."""
        ...

    def put_record(self, tenant: str, seq: int, body: bytes, lane: int = 0) -> None:
        """Create record ``seq`` of ``lane``, never replace it: an existing one is left as it is."""
        ...

    def mark_written(self, tenant: str, seq: int, lane: int = 0) -> None: ...

    def records(self, tenant: str) -> Iterable[tuple[str, bytes | None]]:
        """``(key, body)`` of every stored version of every record, any key order.

        A key's versions come oldest first; a delete marker is ``(key, None)``.
        Records are written once, so more than one entry for a key is tampering.
        """
        ...


class AuditEvents(Protocol):
    """The tenants' audit chains, verified and read back (``AuditTrail``)."""

    def verified_events(self, tenant: str) -> tuple[Verification, list[dict[str, Any]]]: ...
