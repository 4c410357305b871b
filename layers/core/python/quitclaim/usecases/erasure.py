"""Erasure (GDPR Art. 17): withdraw, delete, re-decide, tombstone, verify."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from quitclaim.domain.errors import DependencyFailed, NotFound
from quitclaim.domain.models import AssetStatus, Consent
from quitclaim.domain.ports import ObjectStore, ObjectVersion
from quitclaim.domain.rights import (
    ErasedItem,
    ErasureReport,
    ErasureVerification,
    check,
    verification,
)
from quitclaim.observability import audit
from quitclaim.usecases.asset_decisions import META_ASSET_ID
from quitclaim.usecases.consent_admin import ConsentAdmin
from quitclaim.usecases.ledger import every_asset, new_id


@dataclass
class Erasure(ConsentAdmin):
    """Erase a person and prove it (it withdraws their consents as ``ConsentAdmin`` does)."""

    def delete_subject(self, tenant: str, subject_id: str, *, actor: str) -> ErasureReport:
        """Erase the person (GDPR Art. 17) and prove it with a completeness report.

        1. every live consent is withdrawn (recorded) and its expiry schedule cancelled;
        2. the subject record goes (contact details, guardian, templates) and the
           gallery version is bumped, so no warm function matches them again;
        3. every asset naming them is decided again with their face unknown
           (``Recheck.forget_subject``): each one leaves the library;
        4. every version of their signed documents is deleted;
        5. their consents become tombstones (ids, purposes, dates, outcome, hash);
        6. every store is read again (``verify_erasure``).

        A run that stopped half-way is completed by calling again; with
        nothing of the person left but tombstones, the answer is ``NotFound``.
        """
        subject = self.subjects.get(tenant, subject_id)
        leftovers = self.consents.leftovers(tenant, subject_id)
        documents = self._document_versions(tenant, subject_id)
        appearances = self.assets.appearances(tenant, subject_id) if self.assets else []
        if subject is None and not documents and not appearances and not any(leftovers.values()):
            raise NotFound(f"subject {subject_id} not found")
        now = self.clock.now()
        consents = [c for c, _, _ in self.consents.details(tenant, subject_id)]
        deleted = self._withdraw(consents, now, actor)
        if subject is not None:
            self.subjects.delete(tenant, subject_id)
            deleted += _record_items(subject.templates)
        version = self.tenants.bump_gallery_version(tenant)
        deleted.append(
            ErasedItem("gallery", "rebuilt", f"gallery version {version}, without them", 1)
        )
        asset_ids = sorted(set(appearances) | set(self.assets_naming(tenant, subject_id)))
        deleted += self._redecide(tenant, subject_id, asset_ids, len(appearances), actor)
        deleted.append(self._delete_documents(documents))
        for consent in consents:
            self.consents.tombstone(consent, now, actor=actor)
        deleted.append(_consent_item("reduced to tombstones", _TOMBSTONED, consents))
        audit("subject.deleted", tenant=tenant, subject_id=subject_id, source=actor)
        if self.events is not None:
            self.events.publish("subject.erased", tenant, {"subject_id": subject_id})
        return ErasureReport(
            tenant=tenant,
            subject_id=subject_id,
            request_id=new_id("req"),
            erased_at=now,
            actor=actor,
            deleted=tuple(deleted),
            kept=_kept(consents, asset_ids),
            verification=self.verify_erasure(tenant, subject_id, asset_ids),
        )

    def _withdraw(self, consents: list[Consent], now: datetime, actor: str) -> list[ErasedItem]:
        """Step 1: every live consent withdrawn (recorded), every expiry schedule cancelled."""
        for consent in consents:
            if consent.revoked_at is None:
                self._change(consent, replace(consent, revoked_at=now), "revoked", "erasure", actor)
            self._unschedule(consent)
        if not consents:
            return []
        return [
            ErasedItem(
                "expiry schedules",
                "cancelled",
                "one-time schedules of their consents",
                len(consents),
                tuple(c.consent_id for c in consents),
            )
        ]

    def _redecide(
        self, tenant: str, subject_id: str, asset_ids: list[str], appearances: int, actor: str
    ) -> list[ErasedItem]:
        """Step 3: each asset naming them decided again with their face unknown."""
        changes = (
            self.recheck.forget_subject(tenant, subject_id, asset_ids, actor=actor)
            if self.recheck is not None
            else []
        )
        withdrawn = tuple(c.asset_id for c in changes if c.before is AssetStatus.APPROVED)
        return [
            ErasedItem(
                "assets table",
                "re-decided",
                "their faces un-attributed (unknown) and each asset decided again",
                len(asset_ids),
                tuple(asset_ids),
            ),
            ErasedItem("appearances table", "deleted", "rows linking them to images", appearances),
            ErasedItem(
                "library bucket",
                "withdrawn",
                "published images they were in",
                len(withdrawn),
                withdrawn,
            ),
        ]

    def _delete_documents(self, documents: list[ObjectVersion]) -> ErasedItem:
        """Step 4: every version of their signed documents."""
        for found in documents:
            self._documents().delete(self.documents_bucket, found.key, found.version_id)
        return ErasedItem(
            "documents bucket",
            "deleted",
            "signed consent documents, every version and delete marker",
            len(documents),
            tuple(f"{v.key}?versionId={v.version_id}" for v in documents),
        )

    def verify_erasure(
        self, tenant: str, subject_id: str, asset_ids: Iterable[str] = ()
    ) -> ErasureVerification:
        """Read every store again: nothing of the person may remain but tombstones.

        ``asset_ids``: the assets the erasure re-decided (from its report), checked
        to be out of the library.
        """
        leftovers = self.consents.leftovers(tenant, subject_id)
        templates = sum(1 for sid, _ in self.subjects.templates(tenant) if sid == subject_id)
        appearances = self.assets.appearances(tenant, subject_id) if self.assets else []
        published = self._published(tenant, asset_ids)
        checks = [
            check(
                "subjects table",
                int(self.subjects.get(tenant, subject_id) is not None),
                "subject record",
            ),
            check("gallery", templates, "face templates"),
            check(
                "consents table",
                sum(1 for held in leftovers.values() if held),
                "consents still holding evidence",
            ),
            check(
                "documents bucket",
                len(self._document_versions(tenant, subject_id)),
                "document versions",
            ),
            check("appearances table", len(appearances), "appearance rows"),
            check(
                "assets table",
                len(self.assets_naming(tenant, subject_id)),
                "decision records naming them",
            ),
            check("library bucket", len(published), "published images they were in"),
        ]
        return verification(subject_id, self.clock.now(), checks)

    def _documents(self) -> ObjectStore:
        if self.documents is None:
            raise DependencyFailed("documents are not configured")
        return self.documents

    def _document_versions(self, tenant: str, subject_id: str) -> list[ObjectVersion]:
        if self.document_versions is None:
            return []
        return self.document_versions.versions(self.documents_bucket, f"{tenant}/{subject_id}/")

    def assets_naming(self, tenant: str, subject_id: str) -> list[str]:
        """Ids of the assets whose decision record attributes a face to the person.

        One query of the tenant's assets index, filtered (also finds a record
        whose appearance row is missing, e.g. after a TTL purge).
        """
        if self.assets is None:
            return []
        return [r.asset_id for r in every_asset(self.assets, tenant, subject_id=subject_id)]

    def _published(self, tenant: str, asset_ids: Iterable[str]) -> list[str]:
        """Of these assets, those approved or whose bytes sit in the library."""
        if self.assets is None:
            return []
        found: list[str] = []
        for asset_id in sorted(set(asset_ids)):
            record = self.assets.get(tenant, asset_id)
            if record is None:
                continue
            placed = (
                self.documents.head(self.library_bucket, record.dest_key)
                if self.documents is not None and self.library_bucket and record.dest_key
                else None
            )
            if record.status is AssetStatus.APPROVED or (
                placed is not None and placed.metadata.get(META_ASSET_ID) == asset_id
            ):
                found.append(asset_id)
        return found


_TOMBSTONED = "removed: signer, form version, document keys and types, history details"


def _record_items(templates: int) -> list[ErasedItem]:
    return [
        ErasedItem(
            "subjects table",
            "deleted",
            "the person's record: name, reference, e-mail, date of birth, guardian",
            1,
        ),
        ErasedItem("subjects table", "deleted", "face templates", templates),
    ]


def _consent_item(outcome: str, what: str, consents: list[Consent]) -> ErasedItem:
    return ErasedItem(
        "consents table", outcome, what, len(consents), tuple(c.consent_id for c in consents)
    )


def _kept(consents: list[Consent], asset_ids: list[str]) -> tuple[ErasedItem, ...]:
    """What the erasure keeps, and why (the report says so to the person)."""
    return (
        _consent_item(
            "kept",
            "tombstones as proof of consent (Art. 7(1), 17(3)(e)): ids, purposes, dates, "
            "outcome, the document's SHA-256",
            consents,
        ),
        ErasedItem(
            "quarantine bucket",
            "kept",
            "the images they were in, held with their face unattributed; delete them "
            "through the review queue if the request covers the photos themselves",
            len(asset_ids),
            tuple(asset_ids),
        ),
        ErasedItem(
            "backups and logs",
            "kept",
            "point-in-time recovery of the tables holds earlier states for 35 days "
            "(after a restore, erase again: this erasure is logged); audit events and "
            "webhook delivery records hold the pseudonymous id only",
            0,
        ),
    )
