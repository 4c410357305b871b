"""Usage and plans: monthly counters, the image quota, API Gateway usage plans."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class UsageMeter(Protocol):
    """Per-tenant, per-UTC-month counters and the monthly image quota."""

    def add(self, tenant: str, month: str, units: Mapping[str, int]) -> None:
        """Add to the month's counters (one atomic ADD)."""
        ...

    def counters(self, tenant: str, month: str) -> dict[str, int]:
        """The month's counters (missing units: 0)."""
        ...

    def images_per_month(self, tenant: str) -> int | None:
        """The tenant's monthly image quota; None (absent): unlimited."""
        ...

    def set_images_per_month(self, tenant: str, limit: int | None) -> None:
        """Change the quota (a plan change); None removes it."""
        ...

    def tenants_with_quota(self) -> list[str]:
        """Every tenant that has a quota (the only ones that can hold uploads)."""
        ...


class UsagePlanKeys(Protocol):
    """Each tenant's API Gateway key on its plan's usage plan (docs/access.md)."""

    def attach(self, tenant: str, plan: str) -> None:
        """Create the tenant's key if needed and leave it on ``plan``'s usage plan only."""
        ...
