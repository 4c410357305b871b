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


class AuditCheckpoints(Protocol):
    """The chain's stored versions by name, and checkpoints of a verified chain.

    (``domain/audit_checkpoint.py``: a check reads from the store only what a
    checkpoint the chain vouches for does not hold.)
    """

    def versions(self, tenant: str) -> Iterable[tuple[str, str, str | None]]:
        """``(key, version id, ETag)`` of every stored version, as ``records`` orders them.

        A delete marker has ETag None.
        """
        ...

    def read_version(self, key: str, version_id: str) -> bytes: ...

    def latest_checkpoint(self, tenant: str) -> bytes | None: ...

    def put_checkpoint(self, key: str, data: bytes) -> None:
        """Create the checkpoint ``key``, never replace it."""
        ...


class AuditEvents(Protocol):
    """The tenants' audit chains, verified and read back (``AuditTrail``)."""

    def verified_events(self, tenant: str) -> tuple[Verification, list[dict[str, Any]]]: ...
