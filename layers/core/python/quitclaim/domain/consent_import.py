"""Importing existing consents from a spreadsheet: parsing and row rules (pure).

A Dutch spreadsheet saves CSV with ``;`` and Windows-1252; others with ``,``
and UTF-8, with or without a byte-order mark. ``parse_csv`` accepts all of
them and turns each line into an ``ImportRow`` or the reasons it is refused,
naming the column. What needs the registry (is the purpose allowed, is this
a duplicate, is the document there) is decided by ``check_row`` with the
facts passed in, so every rule is a pure function (usecases/import_consents.py
gathers the facts).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

# The template's columns, in order (docs/templates/consents-import.csv).
COLUMNS = (
    "person_ref",
    "name",
    "email",
    "date_of_birth",
    "guardian_name",
    "guardian_email",
    "guardian_relation",
    "purposes",
    "valid_from",
    "valid_until",
    "document",
    "form_version",
    "biometric_consent",
)
REQUIRED = ("person_ref", "name", "purposes", "valid_from")
# GDPR Art. 8 default, as the registry applies it to a grant.
AGE_OF_CONSENT = 16
MAX_ROWS = 50_000
DOCUMENT_TYPES = {
    ".pdf": ("application/pdf", b"%PDF-"),
    ".jpg": ("image/jpeg", b"\xff\xd8\xff"),
    ".jpeg": ("image/jpeg", b"\xff\xd8\xff"),
    ".png": ("image/png", b"\x89PNG\r\n\x1a\n"),
}
YES = frozenset({"yes", "y", "ja", "j", "true", "1", "x"})
NO = frozenset({"no", "n", "nee", "false", "0", ""})
_PURPOSE_SPLIT = re.compile(r"[|,;/\s]+")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_BOM = b"\xef\xbb\xbf"


class ImportFileInvalid(ValueError):
    """The file as a whole cannot be read (encoding, header); ``column`` when one is to blame."""

    def __init__(self, message: str, column: str | None = None) -> None:
        super().__init__(message)
        self.column = column


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a row is not imported: a stable code, the column to blame, a message."""

    code: str
    column: str | None
    message: str


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One consent as the spreadsheet states it (values checked, not yet against the registry)."""

    line: int
    person_ref: str
    name: str
    email: str | None
    date_of_birth: date | None
    guardian_name: str | None
    guardian_email: str | None
    guardian_relation: str | None
    purposes: frozenset[str]
    valid_from: datetime
    valid_until: datetime | None
    document: str | None
    form_version: str
    biometric_consent: bool

    def age_on(self, day: date) -> int | None:
        if self.date_of_birth is None:
            return None
        born = self.date_of_birth
        return day.year - born.year - ((day.month, day.day) < (born.month, born.day))

    @property
    def is_minor(self) -> bool:
        age = self.age_on(self.valid_from.date())
        return age is not None and age < AGE_OF_CONSENT

    @property
    def signer(self) -> str:
        """Who signed: the guardian for a minor, else the person."""
        return self.guardian_name if self.is_minor and self.guardian_name else self.name


@dataclass(frozen=True, slots=True)
class ParsedLine:
    """A data line of the file: its row, or why it could not be read."""

    line: int
    person_ref: str
    row: ImportRow | None
    refusals: tuple[Refusal, ...] = ()


@dataclass(frozen=True, slots=True)
class ParsedFile:
    delimiter: str
    encoding: str
    lines: tuple[ParsedLine, ...] = field(default_factory=tuple)


def decode(data: bytes) -> tuple[str, str]:
    """The text and the encoding it was read as: UTF-8 (with or without BOM), else Windows-1252."""
    if data.startswith(_BOM):
        try:
            return data[len(_BOM) :].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise ImportFileInvalid(f"the file starts as UTF-8 but is not: {exc.reason}") from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "windows-1252"
    except UnicodeDecodeError:
        raise ImportFileInvalid("the file is neither UTF-8 nor Windows-1252 text") from None


def delimiter_of(text: str) -> str:
    """``;`` or ``,``: whichever splits the header line into more known columns."""
    header = text.split("\n", 1)[0]
    best, best_known = ",", -1
    for candidate in (",", ";"):
        cells = next(csv.reader([header], delimiter=candidate), [])
        known = sum(1 for c in cells if column_name(c) in COLUMNS)
        if known > best_known:
            best, best_known = candidate, known
    return best


def column_name(header: str) -> str:
    """A header cell as a column name: case, spaces and dashes do not matter."""
    return re.sub(r"[\s\-]+", "_", header.strip().lower())


def parse_date(value: str, column: str) -> date:
    """``YYYY-MM-DD`` or the Dutch ``DD-MM-YYYY``; else an error naming the column."""
    text = value.strip()
    for pattern in ("%Y-%m-%d", "%d-%m-%Y", "%d/%m/%Y", "%d.%m.%Y"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text).date()
    except ValueError:
        raise ValueError(f"{column}: {value!r} is not a date (YYYY-MM-DD or DD-MM-YYYY)") from None


def parse_moment(value: str, column: str) -> datetime:
    """A date (midnight UTC) or an ISO 8601 date-time (UTC when no zone)."""
    text = value.strip()
    if "T" in text:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{column}: {value!r} is not a date or ISO 8601 date-time") from None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    day = parse_date(text, column)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def parse_yes_no(value: str) -> bool | None:
    """Yes/no in English or Dutch; None when it is neither."""
    text = value.strip().lower()
    if text in YES:
        return True
    if text in NO:
        return False
    return None


def parse_purposes(value: str) -> frozenset[str]:
    return frozenset(p.lower() for p in _PURPOSE_SPLIT.split(value.strip()) if p)


def parse_csv(data: bytes) -> ParsedFile:
    """Every data line of the file, parsed; raises ``ImportFileInvalid`` for the file as a whole."""
    text, encoding = decode(data)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise ImportFileInvalid("the file is empty")
    delimiter = delimiter_of(text)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [column_name(c) for c in next(reader)]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ImportFileInvalid(
            f"the header lacks the column(s) {missing}; see the template", column=missing[0]
        )
    unknown = [c for c in header if c and c not in COLUMNS]
    if unknown:
        raise ImportFileInvalid(f"unknown column(s) {unknown}", column=unknown[0])
    lines: list[ParsedLine] = []
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(lines) >= MAX_ROWS:
            raise ImportFileInvalid(f"more than {MAX_ROWS} rows; split the file")
        values = {
            name: (cells[i].strip() if i < len(cells) else "") for i, name in enumerate(header)
        }
        lines.append(parse_line(line, values))
    return ParsedFile(delimiter=delimiter, encoding=encoding, lines=tuple(lines))


def parse_line(line: int, values: dict[str, str]) -> ParsedLine:
    """One data line (column name to cell text) as a row, or its refusals."""
    refusals = _contact_refusals(values)
    born, valid_from, valid_until = _dates(values, refusals)
    biometric = parse_yes_no(values.get("biometric_consent", ""))
    if biometric is None:
        refusals.append(
            Refusal(
                "bad_value", "biometric_consent", "biometric_consent must be yes or no (ja/nee)"
            )
        )
    purposes = parse_purposes(values.get("purposes", ""))
    person_ref = values.get("person_ref", "")
    if refusals or valid_from is None:
        return ParsedLine(line, person_ref, None, tuple(refusals))
    row = ImportRow(
        line=line,
        person_ref=person_ref,
        name=values["name"],
        email=values.get("email") or None,
        date_of_birth=born,
        guardian_name=values.get("guardian_name") or None,
        guardian_email=values.get("guardian_email") or None,
        guardian_relation=values.get("guardian_relation") or None,
        purposes=purposes,
        valid_from=valid_from,
        valid_until=valid_until,
        document=values.get("document") or None,
        form_version=values.get("form_version") or "imported",
        biometric_consent=bool(biometric),
    )
    return ParsedLine(line, person_ref, row)


def _contact_refusals(values: Mapping[str, str]) -> list[Refusal]:
    """Required cells left empty, and e-mail addresses that are none."""
    refusals = [
        Refusal("missing_value", column, f"{column} is empty")
        for column in REQUIRED
        if not values.get(column)
    ]
    email = values.get("email") or None
    if email is not None and not _EMAIL.fullmatch(email):
        refusals.append(Refusal("bad_email", "email", f"email: {email!r} is not an e-mail address"))
    guardian_email = values.get("guardian_email") or None
    if guardian_email is not None and not _EMAIL.fullmatch(guardian_email):
        refusals.append(
            Refusal("bad_email", "guardian_email", "guardian_email is not an e-mail address")
        )
    return refusals


def _dates(
    values: Mapping[str, str], refusals: list[Refusal]
) -> tuple[date | None, datetime | None, datetime | None]:
    """Date of birth and the consent's window; an unreadable one is refused by its column."""

    def moment(column: str) -> datetime | None:
        raw = values.get(column) or ""
        if not raw:
            return None
        try:
            return parse_moment(raw, column)
        except ValueError as exc:
            refusals.append(Refusal("bad_date", column, str(exc)))
            return None

    born: date | None = None
    if values.get("date_of_birth"):
        try:
            born = parse_date(values["date_of_birth"], "date_of_birth")
        except ValueError as exc:
            refusals.append(Refusal("bad_date", "date_of_birth", str(exc)))
    valid_from = moment("valid_from")
    valid_until = moment("valid_until")
    if valid_from and valid_until and valid_until <= valid_from:
        refusals.append(
            Refusal("bad_window", "valid_until", "valid_until must be after valid_from")
        )
    return born, valid_from, valid_until


def document_type(name: str, data: bytes, max_bytes: int) -> str | Refusal:
    """The document's content type from its name, checked against its bytes."""
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    known = DOCUMENT_TYPES.get(suffix)
    if known is None:
        return Refusal(
            "bad_document", "document", f"document: {name!r} is not a PDF, JPEG or PNG file"
        )
    kind, magic = known
    if not data or len(data) > max_bytes:
        return Refusal("bad_document", "document", f"document must be 1 byte to {max_bytes} bytes")
    if not data.startswith(magic):
        return Refusal("bad_document", "document", f"document: {name!r} is not a {kind} file")
    return kind


def check_row(
    row: ImportRow,
    *,
    allowed_purposes: frozenset[str],
    today: date,
    document_found: bool,
) -> tuple[Refusal, ...]:
    """The registry rules a parsed row must meet (facts passed in, nothing looked up)."""
    refusals: list[Refusal] = []
    unknown = sorted(row.purposes - allowed_purposes)
    if unknown:
        refusals.append(
            Refusal(
                "unknown_purpose",
                "purposes",
                f"purposes: unknown {unknown}; this tenant allows {sorted(allowed_purposes)}",
            )
        )
    if row.date_of_birth is not None and row.date_of_birth > today:
        refusals.append(Refusal("bad_date", "date_of_birth", "date_of_birth: in the future"))
    if row.is_minor and not row.guardian_name:
        refusals.append(
            Refusal(
                "minor_without_guardian",
                "guardian_name",
                f"the person was under {AGE_OF_CONSENT} on valid_from: a guardian must sign",
            )
        )
    if not row.document:
        refusals.append(Refusal("missing_document", "document", "document: no file named"))
    elif not document_found:
        refusals.append(
            Refusal("missing_document", "document", f"document: {row.document!r} not found")
        )
    return tuple(refusals)


def consent_key(tenant: str, row: ImportRow) -> str:
    """A deterministic consent id for the row: importing it again finds the same consent.

    Built from what makes it the same consent (tenant, person, purposes,
    window, form), not from spelling that an officer may correct (the name).
    """
    canonical = "\x1f".join(
        (
            tenant,
            row.person_ref.strip().casefold(),
            ",".join(sorted(row.purposes)),
            row.valid_from.isoformat(),
            row.valid_until.isoformat() if row.valid_until else "",
            row.form_version,
        )
    )
    return "con_" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def same_consent(
    row: ImportRow,
    purposes: frozenset[str],
    valid_from: datetime,
    expires_at: datetime | None,
) -> bool:
    """Whether an existing consent states what the row states (a duplicate)."""
    return (
        purposes == row.purposes and valid_from == row.valid_from and expires_at == row.valid_until
    )
