"""Assets and their decisions: the records, held uploads, recent activity."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from quitclaim.domain.records import AssetRecord
from quitclaim.domain.registry import Page
from quitclaim.domain.usage import UsageIncrement


class AssetRepository(Protocol):
    def get(self, tenant: str, asset_id: str) -> AssetRecord | None: ...

    def get_many(self, tenant: str, asset_ids: Sequence[str]) -> dict[str, AssetRecord]:
        """Strongly consistent reads of many records (absent ones left out)."""
        ...

    def create(self, record: AssetRecord, usage: UsageIncrement | None = None) -> bool:
        """Write a new decision; False when one with this id already exists.

        ``usage`` is added in the same transaction (``QuotaExceeded`` when its
        limit refuses it: then nothing is written). So are the record's
        appearance rows (I1: no decision without the rows a withdrawal finds
        it by; rows too many for one transaction are written before it).
        """
        ...

    def replace(
        self,
        record: AssetRecord,
        expected_version: int,
        usage: UsageIncrement | None = None,
        appearances: Sequence[str] = (),
    ) -> None:
        """Write a new state if the stored one is still ``expected_version`` (else Conflict).

        The appearance rows of ``appearances`` (subject ids) are written with
        it, as ``create`` writes them.
        """
        ...

    def mark_placed(self, tenant: str, asset_id: str, at: datetime) -> None: ...

    def add_appearances(self, record: AssetRecord) -> None: ...

    def remove_appearance(self, tenant: str, subject_id: str, asset_id: str) -> None: ...

    def appearances(self, tenant: str, subject_id: str) -> list[str]:
        """Ids of the assets the subject appears in."""
        ...

    def page(
        self,
        tenant: str,
        *,
        status: str | None,
        reason: str | None,
        subject_id: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        cursor: str | None,
    ) -> Page: ...


class HeldAssets(Protocol):
    def held(self, tenant: str, limit: int) -> list[AssetRecord]:
        """The tenant's held uploads, oldest first (at most ``limit``)."""
        ...


class Assets(AssetRepository, HeldAssets, Protocol):
    """What the usage service reads: records, and the held ones by status."""


class AssetActivity(Protocol):
    """Recent decisions of a tenant, for the overview (read-only)."""

    def decided_since(
        self, tenant: str, since: datetime, limit: int
    ) -> tuple[list[AssetRecord], bool]:
        """Assets whose latest decision is at or after ``since`` (every status).

        At most ``limit`` records; the flag says whether that was all of them.
        """
        ...


class AutoRedaction(Protocol):
    """What the scan needs of redaction (``redact_asset.Redaction``): one step, by policy."""

    def redact(
        self, tenant: str, asset_id: str, *, actor: str, justification: str
    ) -> AssetRecord: ...
