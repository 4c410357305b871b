"""Import existing consents (a spreadsheet of signed quitclaims) into the registry.

A dry run reports per row what would be created or why it is refused; a real
run applies the rows that pass and is idempotent: each row's consent id is
derived from the row (``domain.consent_import.consent_key``), so a second run
finds the consents it made and creates nothing. Documents are stored and
hashed by ``Registry.grant_consent`` exactly as an uploaded one is; reference
photos go through the enrolment quality gates, only for rows that record
consent to biometric matching (GDPR Art. 9(2)(a)).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from quitclaim.domain.consent_import import (
    ImportFileInvalid,
    ImportRow,
    ParsedFile,
    Refusal,
    check_row,
    consent_key,
    document_type,
    parse_csv,
    same_consent,
)
from quitclaim.domain.errors import (
    Conflict,
    EnrolmentRejected,
    NotFound,
    ValidationFailed,
)
from quitclaim.domain.ports import Clock, ImportFiles, ImportStaging
from quitclaim.domain.registry import Guardian
from quitclaim.observability import audit, count
from quitclaim.usecases.compliance_registry import Registry
from quitclaim.usecases.ledger import new_id

SOURCE = "import"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\- ]{0,127}$")


# An API request must end well within API Gateway's 29 s; larger files: the CLI.
MAX_API_ROWS = 200
MAX_API_FILES = 1000
_IMPORT_ID = re.compile(r"^imp_[0-9a-f]{16}$")


class NoFiles:
    """An import without documents or photos."""

    def document(self, name: str) -> bytes | None:
        return None

    def photos(self, person_ref: str) -> list[bytes]:
        return []


@dataclass
class RowReport:
    """What happened (or would happen) to one line of the file."""

    line: int
    person_ref: str
    # would_create | created | exists | refused
    action: str
    subject: str = ""  # a subject id, or "new"
    consent_id: str = ""
    document: str = ""
    document_sha256: str = ""
    # would_enrol N | enrolled N | already_enrolled | refused: ... | ignored: ... | none
    photos: str = "none"
    refusals: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ImportReport:
    tenant: str
    dry_run: bool
    delimiter: str
    encoding: str
    rows: list[RowReport]

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(r.action for r in self.rows))

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "dry_run": self.dry_run,
            "delimiter": self.delimiter,
            "encoding": self.encoding,
            "counts": self.counts,
            "rows": [asdict(r) for r in self.rows],
        }

    def as_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, ensure_ascii=False)

    def as_csv(self) -> str:
        """One line per row: what a spreadsheet user reads back."""
        out = io.StringIO()
        writer = csv.writer(out)
        head = ("line", "person_ref", "action", "subject", "consent_id", "document")
        writer.writerow((*head, "document_sha256", "photos", "reasons"))
        for r in self.rows:
            reasons = "; ".join(f"{x['code']} ({x['column']}): {x['message']}" for x in r.refusals)
            writer.writerow(
                [
                    *(r.line, r.person_ref, r.action, r.subject, r.consent_id, r.document),
                    *(r.document_sha256, r.photos, reasons),
                ]
            )
        return out.getvalue()


@dataclass
class _Plan:
    row: ImportRow
    report: RowReport
    subject_id: str | None  # None: to be created
    document: bytes | None
    document_kind: str | None


class ConsentImport:
    """Plan (dry run) and apply a consents spreadsheet for one tenant."""

    def __init__(
        self, registry: Registry, clock: Clock, staging: ImportStaging | None = None
    ) -> None:
        self._registry = registry
        self._clock = clock
        self._staging = staging

    # -- through the API: files uploaded first, then the CSV -------------------
    def upload_urls(
        self, tenant: str, documents: Sequence[str], photos: Mapping[str, Sequence[str]]
    ) -> dict[str, Any]:
        """A new import id and a presigned PUT URL per document and reference photo."""
        staging = self._staged()
        self._registry.policy(tenant)
        if len(documents) + sum(len(v) for v in photos.values()) > MAX_API_FILES:
            raise ValidationFailed(f"at most {MAX_API_FILES} files per import", field="documents")
        for name in [*documents, *photos, *(n for v in photos.values() for n in v)]:
            if not _SAFE_NAME.fullmatch(name):
                raise ValidationFailed(
                    f"{name!r}: a file name is letters, digits, dots, dashes, underscores",
                    field="documents",
                )
        import_id = new_id("imp")
        return {
            "import_id": import_id,
            "expires_in_s": 900,
            "documents": {
                n: staging.upload_url(tenant, import_id, "documents", n) for n in documents
            },
            "photos": {
                ref: {
                    n: staging.upload_url(tenant, import_id, "photos", f"{ref}/{n}") for n in names
                }
                for ref, names in photos.items()
            },
        }

    def run_staged(
        self, tenant: str, data: bytes, import_id: str | None, *, dry_run: bool, actor: str
    ) -> ImportReport:
        """``run`` with the files uploaded under ``import_id`` (none: no files)."""
        files: ImportFiles = NoFiles()
        if import_id is not None:
            if not _IMPORT_ID.fullmatch(import_id):
                raise ValidationFailed("import_id is not one this API gave", field="import_id")
            files = self._staged().files(tenant, import_id)
        rows = data.count(b"\n")
        if rows > MAX_API_ROWS + 1:
            raise ValidationFailed(
                f"at most {MAX_API_ROWS} rows per request; split the file or use the CLI",
                field="csv",
            )
        return self.run(tenant, data, files, dry_run=dry_run, actor=actor)

    def _staged(self) -> ImportStaging:
        if self._staging is None:
            raise ValidationFailed("file uploads are not configured", field="import_id")
        return self._staging

    def run(
        self,
        tenant: str,
        data: bytes,
        files: ImportFiles | None = None,
        *,
        dry_run: bool,
        actor: str = SOURCE,
        notify: bool = False,
    ) -> ImportReport:
        """Every row's outcome; a real run applies the rows that pass every check.

        ``notify``: e-mail each imported person a confirmation with a withdrawal
        link (off by default: a cabinet of old paper consents should not mail
        everyone at once unless the organisation asks for it).
        """
        files = files or NoFiles()
        policy = self._registry.policy(tenant)
        try:
            parsed = parse_csv(data)
        except ImportFileInvalid as exc:
            raise ValidationFailed(str(exc), field=exc.column or "file") from None
        plans = self._plan(tenant, parsed, files, policy.purposes)
        if not dry_run:
            created_subjects: dict[str, str] = {}
            for plan in plans:
                if plan.report.action == "would_create":
                    self._apply(tenant, plan, files, created_subjects, actor, notify)
        report = ImportReport(
            tenant, dry_run, parsed.delimiter, parsed.encoding, [p.report for p in plans]
        )
        for line in parsed.lines:
            if line.row is None:
                report.rows.append(
                    RowReport(
                        line.line, line.person_ref, "refused", refusals=_refusals(line.refusals)
                    )
                )
        report.rows.sort(key=lambda r: r.line)
        if not dry_run:
            audit("consents.imported", tenant=tenant, source=SOURCE, results=report.counts)
            count("ConsentsImported", report.counts.get("created", 0))
        return report

    # -- planning (what the dry run shows, and the real run applies) ------------
    def _plan(
        self, tenant: str, parsed: ParsedFile, files: ImportFiles, allowed: frozenset[str]
    ) -> list[_Plan]:
        today = self._clock.now().date()
        max_bytes = self._registry.max_document_bytes
        seen: dict[str, int] = {}  # consent key -> first line
        known: dict[str, str | None] = {}  # person_ref -> subject id (None: to be created)
        plans: list[_Plan] = []
        for line in parsed.lines:
            row = line.row
            if row is None:
                continue
            report = RowReport(
                row.line, row.person_ref, "would_create", document=row.document or ""
            )
            data = files.document(row.document) if row.document else None
            refusals = list(
                check_row(
                    row, allowed_purposes=allowed, today=today, document_found=data is not None
                )
            )
            kind: str | None = None
            if data is not None and row.document:
                typed = document_type(row.document, data, max_bytes)
                if isinstance(typed, Refusal):
                    refusals.append(typed)
                else:
                    kind = typed
                    report.document_sha256 = _sha256(data)
            key = consent_key(tenant, row)
            report.consent_id = key
            if key in seen:
                refusals.append(Refusal("duplicate", None, f"the same consent as line {seen[key]}"))
            seen.setdefault(key, row.line)
            subject_id = self._subject_of(tenant, row, known, refusals)
            report.subject = subject_id or "new"
            if subject_id is not None and not refusals:
                self._against_registry(tenant, subject_id, row, key, report, refusals)
            if refusals:
                report.action = "refused"
                report.refusals = _refusals(refusals)
            elif report.action == "would_create":
                report.photos = self._photo_plan(row, files)
            plans.append(_Plan(row, report, subject_id, data, kind))
        return plans

    def _subject_of(
        self,
        tenant: str,
        row: ImportRow,
        known: dict[str, str | None],
        refusals: list[Refusal],
    ) -> str | None:
        ref = row.person_ref
        if ref not in known:
            found = self._registry.find_subjects(tenant, external_ref=ref)
            if len(found) > 1:
                refusals.append(
                    Refusal(
                        "ambiguous_person",
                        "person_ref",
                        f"person_ref: {len(found)} people have this reference",
                    )
                )
                return None
            known[ref] = found[0] if found else None
        return known[ref]

    def _against_registry(
        self,
        tenant: str,
        subject_id: str,
        row: ImportRow,
        key: str,
        report: RowReport,
        refusals: list[Refusal],
    ) -> None:
        """Already imported (exists), or a duplicate of a consent recorded otherwise."""
        try:
            views = self._registry.consent_views(tenant, subject_id)
        except NotFound:
            return
        for view in views:
            if view.consent_id == key:
                report.action = "exists"
                if view.evidence is not None and view.evidence.document_sha256:
                    report.document_sha256 = view.evidence.document_sha256
                return
        for view in views:
            if view.revoked_at is None and same_consent(
                row, frozenset(view.purposes), view.valid_from, view.expires_at
            ):
                refusals.append(
                    Refusal(
                        "duplicate",
                        None,
                        f"the person already has this consent ({view.consent_id})",
                    )
                )
                return

    def _photo_plan(self, row: ImportRow, files: ImportFiles) -> str:
        photos = files.photos(row.person_ref)
        if not photos:
            return "none"
        if not row.biometric_consent:
            return "ignored: no consent to biometric matching"
        try:
            templates = self._registry.check_reference_photos(photos)
        except EnrolmentRejected as exc:
            return f"refused: {exc.code}: {exc.message}"
        return f"would_enrol {templates}"

    # -- applying ------------------------------------------------------------
    def _apply(
        self,
        tenant: str,
        plan: _Plan,
        files: ImportFiles,
        created: dict[str, str],
        actor: str,
        notify: bool = False,
    ) -> None:
        row, report = plan.row, plan.report
        try:
            subject_id = plan.subject_id or created.get(row.person_ref)
            if subject_id is None:
                subject_id = self._registry.create_subject(
                    tenant,
                    row.name,
                    external_ref=row.person_ref,
                    email=row.email,
                    date_of_birth=row.date_of_birth,
                    guardian=(
                        Guardian(row.guardian_name, row.guardian_email, row.guardian_relation)
                        if row.guardian_name
                        else None
                    ),
                ).subject_id
                created[row.person_ref] = subject_id
            report.subject = subject_id
            self._registry.grant_consent(
                tenant,
                subject_id,
                row.purposes,
                row.valid_from,
                row.valid_until,
                source=SOURCE,
                signer=row.signer,
                form_version=row.form_version,
                document=plan.document,
                document_type=plan.document_kind,
                consent_id=report.consent_id,
                actor=actor,
                notify=notify,
            )
            report.action = "created"
        except Conflict as exc:
            if exc.code != "exists":
                raise
            report.action = "exists"
        except ValidationFailed as exc:
            report.action = "refused"
            report.refusals = _refusals([Refusal(exc.code, exc.field, exc.message)])
            return
        if report.photos.startswith("would_enrol") and report.subject:
            report.photos = self._enrol(tenant, report.subject, row, files)

    def _enrol(self, tenant: str, subject_id: str, row: ImportRow, files: ImportFiles) -> str:
        if self._registry.subject(tenant, subject_id).templates > 0:
            return "already_enrolled"
        photos = files.photos(row.person_ref)
        try:
            self._registry.enrol_subject(
                tenant,
                row.name,
                photos,
                subject_id=subject_id,
                biometric_consent=row.biometric_consent,
            )
        except EnrolmentRejected as exc:
            return f"refused: {exc.code}: {exc.message}"
        return f"enrolled {len(photos)}"


def _refusals(refusals: Sequence[Refusal]) -> list[dict[str, Any]]:
    return [{"code": r.code, "column": r.column, "message": r.message} for r in refusals]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
