"""Data-subject rights: access (Art. 15), "where do I appear?", erasure (Art. 17).

Each request is logged in the tenant's requests log (ids and counts) and
audited. The selfie search computes the photo's template in memory, compares
it with the enrolled templates and drops it: nothing of the photo is written
anywhere, only the fact of the search and how many images it found.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import io
import json
import mimetypes
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from enum import Enum
from typing import Any

from quitclaim.domain.errors import EnrolmentRejected, NotFound
from quitclaim.domain.models import TenantPolicy
from quitclaim.domain.ports import (
    AssetRepository,
    Clock,
    FaceEngine,
    Galleries,
    GalleryMatch,
    RequestLog,
    TenantRepository,
)
from quitclaim.domain.records import AssetRecord
from quitclaim.domain.registry import ConsentView, Subject
from quitclaim.domain.rights import (
    AccessExport,
    Appearance,
    DataRequest,
    ErasureReport,
    ErasureStatus,
    RequestKind,
    SelfieSearch,
    faces_of_subject,
)
from quitclaim.observability import audit, count
from quitclaim.usecases.compliance_registry import Registry
from quitclaim.usecases.ledger import new_id

EXPORT_FORMAT = "quitclaim-access-export/1"
NOT_EXPORTED = {
    "face_templates": (
        "Biometric templates computed from the reference photos are held for matching "
        "(their number is given) but not exported: they are numbers only software can read."
    ),
    "thumbnails": (
        "Image thumbnails are not included: the images may show other people. Each image "
        "is listed with its location, and the faces of this person with their boxes."
    ),
    "other_people": "Other people's faces in the same images are counted, never identified.",
}


class SubjectRights:
    def __init__(
        self,
        *,
        registry: Registry,
        assets: AssetRepository,
        tenants: TenantRepository,
        requests: RequestLog,
        engine_factory: Callable[[], FaceEngine],
        clock: Clock,
        galleries: Galleries,
    ) -> None:
        self._registry = registry
        self._assets = assets
        self._tenants = tenants
        self._requests = requests
        self._engine_factory = engine_factory
        self._clock = clock
        self._galleries = galleries

    # ------------------------------------------------------------------ access

    def export(self, tenant: str, subject_id: str, *, actor: str) -> AccessExport:
        """Everything held about the person, as one ZIP (GDPR Art. 15)."""
        subject = self._registry.subject(tenant, subject_id)
        consents = self._registry.consent_views(tenant, subject_id)
        now = self._clock.now()
        request_id = new_id("req")
        files: dict[str, bytes] = {}
        consent_entries = [self._consent_entry(tenant, c, files) for c in consents]
        records = self._records(tenant, subject_id)
        past = self._requests.for_subject(tenant, subject_id)
        manifest: dict[str, Any] = {
            "format": EXPORT_FORMAT,
            "legal_basis": "GDPR Art. 15 (right of access)",
            "generated_at": now,
            "tenant": tenant,
            "request_id": request_id,
            "subject": _subject_entry(subject),
            "consents": consent_entries,
            "appearances": [_asset_entry(r, subject_id) for r in records],
            "requests": [{"request_id": r.request_id, "kind": r.kind, "at": r.at} for r in past],
            "not_exported": NOT_EXPORTED,
        }
        counts = {
            "consents": len(consent_entries),
            "documents": len(files),
            "appearances": len(records),
            "decisions": sum(len(r.history) for r in records),
        }
        manifest["counts"] = counts
        data = _zip(manifest, files, now)
        digest = hashlib.sha256(data).hexdigest()
        self._requests.record(
            DataRequest(
                tenant,
                request_id,
                RequestKind.ACCESS,
                now,
                actor,
                subject_id,
                {**counts, "sha256": digest},
            )
        )
        audit(
            "rights.access",
            tenant=tenant,
            subject_id=subject_id,
            request_id=request_id,
            results=counts["appearances"],
            source=actor,
        )
        count("AccessExports")
        return AccessExport(
            request_id,
            subject_id,
            f"quitclaim-{tenant}-{subject_id}-{now:%Y%m%d}.zip",
            data,
            digest,
            counts,
        )

    def _consent_entry(
        self, tenant: str, consent: ConsentView, files: dict[str, bytes]
    ) -> dict[str, Any]:
        entry = _plain(consent)
        entry.pop("tenant", None)
        evidence = consent.evidence
        if evidence is not None and evidence.document_key:
            data, content_type = self._registry.consent_document(
                tenant, consent.subject_id, consent.consent_id
            )
            name = f"documents/{consent.consent_id}{_extension(content_type)}"
            files[name] = data
            digest = hashlib.sha256(data).hexdigest()
            entry["evidence"]["document_file"] = name
            entry["evidence"]["document_sha256_verified"] = digest == evidence.document_sha256
            entry["evidence"].pop("document_key", None)
        return entry

    def _records(self, tenant: str, subject_id: str) -> list[AssetRecord]:
        ids = set(self._assets.appearances(tenant, subject_id))
        ids |= set(self._registry.assets_naming(tenant, subject_id))
        found = (self._assets.get(tenant, asset_id) for asset_id in sorted(ids))
        return sorted((r for r in found if r is not None), key=lambda r: r.decided_at)

    # ------------------------------------------------------------------ search

    def search(self, tenant: str, photo: bytes, *, actor: str) -> SelfieSearch:
        """Where does the person in ``photo`` appear? Nothing of the photo is kept.

        The photo must show exactly one face (of at least the tenant's
        ``min_face_px``); its template is compared with the enrolled ones in
        memory and then dropped. Only the count of results is logged.
        """
        found = self._tenants.policy_and_gallery(tenant)
        if found is None:
            raise NotFound(f"tenant {tenant!r} not found")
        policy, version = found
        hit = self._match_one_face(tenant, policy, version, photo)  # the template is gone now
        appearances: tuple[Appearance, ...] = ()
        if hit.subject_id is not None:
            appearances = tuple(
                _appearance(r, hit.subject_id) for r in self._records(tenant, hit.subject_id)
            )
        now = self._clock.now()
        request_id = new_id("req")
        self._requests.record(
            DataRequest(
                tenant,
                request_id,
                RequestKind.SEARCH,
                now,
                actor,
                hit.subject_id,
                {
                    "faces_in_photo": 1,
                    "matched": hit.subject_id is not None,
                    "appearances": len(appearances),
                },
            )
        )
        audit(
            "rights.search",
            tenant=tenant,
            subject_id=hit.subject_id,
            request_id=request_id,
            results=len(appearances),
            source=actor,
        )
        count("SelfieSearches")
        return SelfieSearch(
            request_id,
            1,
            hit.subject_id,
            None if hit.subject_id is None or hit.distance is None else round(hit.distance, 4),
            appearances,
        )

    def _match_one_face(
        self, tenant: str, policy: TenantPolicy, version: int, photo: bytes
    ) -> GalleryMatch:
        """The enrolled person nearest the photo's one face (large enough), if near enough."""
        engine = self._engine_factory()
        faces = engine.analyze(engine.decode(photo))
        if len(faces) != 1:
            raise EnrolmentRejected(
                f"the photo must show exactly one face; found {len(faces)}",
                field="photo",
                code="face_count",
            )
        box = faces[0].box
        if min(box.width, box.height) < policy.min_face_px:
            raise EnrolmentRejected(
                f"the face is {box.width}px wide; at least {policy.min_face_px}px needed",
                field="photo",
                code="face_too_small",
            )
        gallery = self._galleries.load(
            tenant, version, lambda: self._registry.subjects.templates(tenant)
        )
        return gallery.match(
            faces[0].encoding, threshold=policy.match_threshold, margin=policy.match_margin
        )[0]

    # ------------------------------------------------------------------ erasure

    def erase(self, tenant: str, subject_id: str, *, actor: str) -> ErasureReport:
        """Erase the person (``Registry.delete_subject``) and log the report."""
        report = self._registry.delete_subject(tenant, subject_id, actor=actor)
        self._requests.record(
            DataRequest(
                tenant,
                report.request_id,
                RequestKind.ERASURE,
                report.erased_at,
                actor,
                subject_id,
                _plain(report),
            )
        )
        audit(
            "rights.erasure",
            tenant=tenant,
            subject_id=subject_id,
            request_id=report.request_id,
            status="verified" if report.verification.ok else "incomplete",
            source=actor,
        )
        count("Erasures")
        return report

    def erasure(self, tenant: str, subject_id: str) -> ErasureStatus:
        """The last erasure of the person as logged, with every store verified again now."""
        done = [r for r in self._requests.for_subject(tenant, subject_id) if r.kind == "erasure"]
        if not done:
            raise NotFound(f"no erasure of {subject_id} is recorded")
        last = done[-1]
        assets: list[str] = next(
            (
                list(item.get("ids", []))
                for item in last.detail.get("deleted", [])
                if item.get("store") == "assets table"
            ),
            [],
        )
        return ErasureStatus(
            subject_id,
            last.request_id,
            last.at,
            last.actor,
            {k: v for k, v in last.detail.items() if k != "verification"},
            self._registry.verify_erasure(tenant, subject_id, assets),
        )


# ---------------------------------------------------------------------- shaping


def _plain(value: Any) -> Any:
    """Dataclasses, datetimes, enums, tuples and sets as JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(_plain(v) for v in value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _subject_entry(subject: Subject) -> dict[str, Any]:
    entry: dict[str, Any] = _plain(subject)
    entry.pop("tenant", None)
    entry["templates_enrolled"] = entry.pop("templates")
    return entry


def _location(record: AssetRecord) -> str | None:
    return f"s3://{record.dest_bucket}/{record.dest_key}" if record.dest_bucket else None


def _appearance(record: AssetRecord, subject_id: str) -> Appearance:
    return Appearance(
        asset_id=record.asset_id,
        path=record.path,
        status=record.status.value,
        reasons=record.reasons,
        location=_location(record),
        decided_at=record.decided_at,
        faces=tuple(faces_of_subject(record, subject_id)),
    )


def _asset_entry(record: AssetRecord, subject_id: str) -> dict[str, Any]:
    entry: dict[str, Any] = _plain(_appearance(record, subject_id))
    entry["purpose"] = record.purpose
    entry["other_faces"] = sum(1 for f in record.faces if f.subject_id != subject_id)
    entry["decisions"] = [dict(h) for h in record.history]
    return entry


def _extension(content_type: str) -> str:
    return {"application/pdf": ".pdf", "image/jpeg": ".jpg", "image/png": ".png"}.get(
        content_type, mimetypes.guess_extension(content_type) or ".bin"
    )


def _zip(manifest: Mapping[str, Any], files: Mapping[str, bytes], at: datetime) -> bytes:
    stamp = (at.year, at.month, at.day, at.hour, at.minute, at.second)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        entries = {
            "manifest.json": json.dumps(_plain(manifest), indent=2, ensure_ascii=False).encode(),
            "summary.html": summary_html(_plain(manifest)).encode(),
            **files,
        }
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name, stamp), data, zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


# ---------------------------------------------------------------------- summary


def _e(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "&ndash;"
    if isinstance(value, list | tuple):
        return html.escape(", ".join(str(v) for v in value))
    return html.escape(str(value))


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    if not rows:
        return "<p>None.</p>"
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(row.get(key))}</td>" for key, _ in columns) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fields(entry: Mapping[str, Any], names: Iterable[tuple[str, str]]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(title)}</th><td>{_e(entry.get(key))}</td></tr>"
        for key, title in names
    )
    return f"<table>{rows}</table>"


# What each table of the summary page shows: (manifest key, column heading).
_SUBJECT_FIELDS = (
    ("subject_id", "Id"),
    ("display_name", "Name"),
    ("external_ref", "Reference"),
    ("email", "E-mail"),
    ("date_of_birth", "Date of birth"),
    ("guardian", "Guardian"),
    ("templates_enrolled", "Face templates held (not exported)"),
    ("created_at", "Registered"),
    ("updated_at", "Last changed"),
)
_CONSENT_FIELDS = (
    ("purposes", "Purposes"),
    ("valid_from", "Valid from"),
    ("expires_at", "Expires"),
    ("revoked_at", "Withdrawn"),
    ("evidence_signer", "Signed by"),
    ("evidence_form_version", "Form version"),
    ("evidence_source", "Received through"),
    ("evidence_document_file", "Signed document (in this ZIP)"),
    ("evidence_document_sha256", "Document SHA-256"),
    ("evidence_document_sha256_verified", "Document matches its hash"),
)
_CONSENT_HISTORY = (("at", "When"), ("event", "What"), ("source", "Through"), ("actor", "By"))
_IMAGES = (
    ("asset_id", "Image id"),
    ("path", "Name"),
    ("status", "Status"),
    ("reasons", "Held because"),
    ("location", "Stored at"),
    ("other_faces", "Other faces"),
)
_IMAGE_FACES = (
    ("face_index", "Face"),
    ("box", "Box (left, top, right, bottom)"),
    ("verdict", "Consent"),
    ("reason", "Reason"),
)
_IMAGE_DECISIONS = (
    ("at", "When"),
    ("action", "What"),
    ("actor", "By"),
    ("status", "Status"),
    ("reasons", "Reasons"),
    ("justification", "Justification"),
)
_REQUESTS = (("request_id", "Request"), ("kind", "Kind"), ("at", "When"))


def summary_html(manifest: Mapping[str, Any]) -> str:
    """The export as a page a person can read (every value escaped)."""
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>What we hold about you</title><style>",
        "body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}",
        "table{border-collapse:collapse;margin:.5rem 0 1.5rem}",
        "td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}",
        "</style></head><body>",
        "<h1>What we hold about you</h1>",
        f"<p>Export {_e(manifest['request_id'])} of {_e(manifest['generated_at'])} "
        f"({_e(manifest['legal_basis'])}), from {_e(manifest['tenant'])}.</p>",
        "<h2>Your record</h2>",
        _fields(manifest["subject"], _SUBJECT_FIELDS),
        "<h2>Your consents</h2>",
        *_consents_html(manifest["consents"]),
        "<h2>Images you appear in</h2>",
        _table(manifest["appearances"], _IMAGES),
        *_decisions_html(manifest["appearances"]),
        "<h2>Your earlier requests</h2>",
        _table(manifest["requests"], _REQUESTS),
        "<h2>Not in this export</h2><ul>",
        *(f"<li>{_e(text)}</li>" for text in manifest["not_exported"].values()),
        "</ul></body></html>",
    ]
    return "\n".join(parts)


def _consents_html(consents: Iterable[Mapping[str, Any]]) -> list[str]:
    """Each consent: its window and evidence, then its history."""
    parts: list[str] = []
    for consent in consents:
        evidence = consent.get("evidence") or {}
        parts += [
            f"<h3>{_e(consent['consent_id'])}: {_e(consent['status'])}</h3>",
            _fields(
                {**consent, **{f"evidence_{k}": v for k, v in evidence.items()}}, _CONSENT_FIELDS
            ),
            _table(consent.get("history") or [], _CONSENT_HISTORY),
        ]
    return parts


def _decisions_html(appearances: Iterable[Mapping[str, Any]]) -> list[str]:
    """Each image the person appears in: its faces, then the decisions taken on it."""
    parts: list[str] = []
    for asset in appearances:
        parts += [
            f"<h3>Decisions on {_e(asset['path'])}</h3>",
            _table([{**f, "box": f.get("box")} for f in asset.get("faces", [])], _IMAGE_FACES),
            _table(asset.get("decisions") or [], _IMAGE_DECISIONS),
        ]
    return parts
