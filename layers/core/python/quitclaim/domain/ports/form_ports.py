"""Hosted quitclaim forms: the write-once versions, settings, the coming-of-age calendar."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    # Signatures only: importing the ports package should not load the forms domain.
    from quitclaim.domain.forms import FormSettings, FormVersion, MajorityDue


class FormStore(Protocol):
    """Form versions (write-once), settings, and the coming-of-age calendar."""

    def settings(self, tenant: str) -> FormSettings: ...

    def set_age_of_consent(self, tenant: str, age: int) -> FormSettings: ...

    def add_version(self, form: FormVersion) -> None:
        """Write a new version; ``Conflict`` (code ``version_exists``) if it exists."""
        ...

    def version(self, tenant: str, version: str) -> FormVersion | None: ...

    def add_majority(self, due: MajorityDue) -> None: ...

    def majority_on(self, day: str) -> list[MajorityDue]:
        """Entries of ``day`` (every tenant) not yet asked."""
        ...

    def claim_majority(self, due: MajorityDue) -> bool:
        """Mark ``due`` asked; False when another run has it."""
        ...

    def release_majority(self, due: MajorityDue) -> None:
        """Undo a claim whose e-mail could not be sent."""
        ...
