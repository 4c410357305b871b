"""Parsing and row rules of a consents import (domain/consent_import.py): pure."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quitclaim.domain.consent_import import (
    COLUMNS,
    ImportFileInvalid,
    ImportRow,
    check_row,
    consent_key,
    document_type,
    parse_csv,
)
from tests.conftest import REPO_ROOT

TEMPLATE = REPO_ROOT / "docs" / "templates" / "consents-import.csv"
TODAY = date(2026, 11, 26)
ALLOWED = frozenset({"web", "social", "print", "internal"})

# Names a Dutch spreadsheet holds: accents Windows-1252 can write, quotes, the delimiters.
names = (
    st.text(alphabet=st.sampled_from(list("abcdeéëïöüçñ ABZ'-,;\"ĳ")), min_size=1, max_size=30)
    .map(str.strip)
    .filter(lambda n: n and n.encode("cp1252", errors="ignore").decode("cp1252") == n)
)
days = st.dates(min_value=date(1930, 1, 1), max_value=date(2026, 1, 1))


def row_cells(ref: str, name: str, born: date, start: date) -> dict[str, str]:
    return {
        "person_ref": ref,
        "name": name,
        "email": "",
        "date_of_birth": born.strftime("%d-%m-%Y"),
        "guardian_name": "G. Uardian",
        "guardian_email": "",
        "guardian_relation": "",
        "purposes": "web|social",
        "valid_from": start.isoformat(),
        "valid_until": "",
        "document": f"{ref}.pdf",
        "form_version": "paper",
        "biometric_consent": "ja",
    }


def written(rows: list[dict[str, str]], delimiter: str, encoding: str) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, delimiter=delimiter)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().replace("\n", "\r\n").encode(encoding)


@given(
    people=st.lists(st.tuples(names, days, days), min_size=1, max_size=8),
    delimiter=st.sampled_from([",", ";"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]),
)
def test_any_spreadsheet_dialect_reads_back_the_same_rows(
    people: list[tuple[str, date, date]], delimiter: str, encoding: str
) -> None:
    # Given rows written with either delimiter, in UTF-8 (with or without BOM) or Windows-1252
    rows = [row_cells(f"P{i}", n, b, s) for i, (n, b, s) in enumerate(people)]
    # When the file is parsed
    parsed = parse_csv(written(rows, delimiter, encoding))
    # Then every row comes back with its name, date of birth and delimiter intact
    assert parsed.delimiter == delimiter
    got = [line.row for line in parsed.lines]
    assert all(r is not None for r in got)
    assert [(r.name, r.date_of_birth) for r in got if r] == [(n, b) for n, b, _ in people]
    assert all(r.biometric_consent and r.purposes == {"web", "social"} for r in got if r)


@given(bad=st.text(min_size=1, max_size=12).filter(lambda t: not any(c.isdigit() for c in t)))
def test_a_bad_date_refuses_the_row_naming_its_column(bad: str) -> None:
    # Given a row whose valid_from is not a date
    cells = row_cells("P1", "Anna", date(1990, 1, 1), date(2025, 1, 1))
    cells["valid_from"] = bad.replace("\n", " ").replace("\r", " ")
    if not cells["valid_from"].strip():
        return
    # When it is parsed
    line = parse_csv(written([cells], ",", "utf-8")).lines[0]
    # Then it is refused as a bad date in valid_from
    assert line.row is None
    assert ("bad_date", "valid_from") in {(r.code, r.column) for r in line.refusals}


@given(first=days, second=days)
def test_the_consent_key_is_deterministic_and_tells_windows_apart(
    first: date, second: date
) -> None:
    # Given the same person's row with two validity starts
    def row(start: date) -> ImportRow | None:
        parsed = parse_csv(written([row_cells("P1", "A", date(1980, 1, 1), start)], ",", "utf-8"))
        return parsed.lines[0].row

    a, b = row(first), row(second)
    assert a is not None and b is not None
    # Then the key is the same for the same row, and differs when the window does
    assert consent_key("t", a) == consent_key("t", row(first))
    assert (consent_key("t", a) == consent_key("t", b)) == (first == second)
    assert consent_key("t", a) != consent_key("u", a)


def test_a_minor_without_guardian_an_unknown_purpose_and_a_missing_document_are_refused() -> None:
    # Given a 10-year-old without a guardian, for an unknown purpose, without the document
    cells = row_cells("K1", "Kid", date(2015, 5, 5), date(2025, 1, 1))
    cells.update(guardian_name="", purposes="web|billboard")
    row = parse_csv(written([cells], ";", "cp1252")).lines[0].row
    assert row is not None
    # When the registry rules are checked
    refusals = check_row(row, allowed_purposes=ALLOWED, today=TODAY, document_found=False)
    # Then each problem is named with its column
    assert {(r.code, r.column) for r in refusals} == {
        ("unknown_purpose", "purposes"),
        ("minor_without_guardian", "guardian_name"),
        ("missing_document", "document"),
    }


def test_an_adult_with_a_document_passes_and_signs_herself() -> None:
    cells = row_cells("A1", "Anna", date(1980, 5, 5), date(2025, 1, 1))
    row = parse_csv(written([cells], ",", "utf-8")).lines[0].row
    assert row is not None
    assert check_row(row, allowed_purposes=ALLOWED, today=TODAY, document_found=True) == ()
    assert row.signer == "Anna" and not row.is_minor
    assert row.valid_from == datetime(2025, 1, 1, tzinfo=UTC)


def test_a_document_must_be_what_its_name_says() -> None:
    assert document_type("a.pdf", b"%PDF-1.4 ...", 100) == "application/pdf"
    refused = document_type("a.pdf", b"\xff\xd8\xff", 100)
    assert not isinstance(refused, str) and refused.code == "bad_document"
    assert not isinstance(document_type("a.docx", b"PK", 100), str)


def test_a_header_without_required_columns_is_refused_naming_one() -> None:
    with pytest.raises(ImportFileInvalid) as caught:
        parse_csv(b"name;email\nAnna;a@b.nl\n")
    assert caught.value.column == "person_ref"


def test_the_shipped_template_parses_without_refusals() -> None:
    parsed = parse_csv(TEMPLATE.read_bytes())
    assert [line.refusals for line in parsed.lines] == [(), ()]
    assert [line.row.is_minor for line in parsed.lines if line.row] == [False, True]
