"""Importing a spreadsheet of existing consents on the local stack (issue #23, item 1).

Through the CLI (``quitclaim import consents``) against the session's stack:
a dry run reports every row, a real run creates what it said, a second run
creates nothing, and the access export of an imported person lists the
imported document with its hash.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import main
from quitclaim.bootstrap import registry_service, rights_service
from quitclaim.domain.consent_import import COLUMNS
from quitclaim.domain.models import TenantPolicy
from tests.conftest import DEMO_NOW, FACES

pytestmark = pytest.mark.integration
TENANT = "it-import"
# Test-harness knob: the acceptance's 200 consents by default.
ROWS = int(os.environ.get("QC_IMPORT_ROWS", "200"))
PORTRAIT = FACES / "enroll" / "obama" / "obama-portrait.jpg"


def pdf(n: int) -> bytes:
    return b"%PDF-1.4\n% signed quitclaim " + str(n).encode() + b"\n%%EOF\n"


def cells(n: int, **changes: str) -> dict[str, str]:
    minor = n % 10 == 0
    row = {
        "person_ref": f"EMP-{n:04d}",
        "name": f"Zoë Person {n}",
        "email": f"p{n}@example.org",
        "date_of_birth": "14-03-2015" if minor else "1980-01-31",
        "guardian_name": f"Guardian {n}" if minor else "",
        "guardian_email": "",
        "guardian_relation": "mother" if minor else "",
        "purposes": "web|print",
        "valid_from": "01-01-2025",
        "valid_until": "2028-12-31",
        "document": f"EMP-{n:04d}.pdf",
        "form_version": "paper-2019",
        "biometric_consent": "ja" if n < 2 else "nee",
    }
    row.update(changes)
    return row


@pytest.fixture(scope="module")
def folder(local_stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A spreadsheet as a Dutch office saves it (``;``, Windows-1252), documents, photos."""
    registry = registry_service()
    registry.create_tenant(TenantPolicy(tenant=TENANT))
    # An existing person whose consent was recorded before the import (by hand).
    dup = registry.create_subject(TENANT, "Dup Person", external_ref="DUP-1")
    registry.grant_consent(
        TENANT,
        dup.subject_id,
        ["web"],
        datetime.fromisoformat("2025-01-01T00:00:00+00:00"),
        None,
        source="api",
    )
    root = tmp_path_factory.mktemp("import")
    docs = root / "documents"
    docs.mkdir()
    rows = [cells(n) for n in range(ROWS)]
    for n in range(ROWS):
        (docs / f"EMP-{n:04d}.pdf").write_bytes(pdf(n))
    (docs / "DUP-1.pdf").write_bytes(pdf(-1))
    rows += [
        cells(9001, purposes="web|billboard", document="EMP-0000.pdf"),
        cells(9002, date_of_birth="2016-05-05", guardian_name="", document="EMP-0001.pdf"),
        cells(9003, document="nowhere.pdf"),
        cells(9004, valid_until="31-02-2028", document="EMP-0002.pdf"),
        cells(
            9005,
            person_ref="DUP-1",
            name="Dup Person",
            document="DUP-1.pdf",
            purposes="web",
            valid_until="",
        ),
    ]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, delimiter=";")
    writer.writeheader()
    writer.writerows(rows)
    (root / "consents.csv").write_bytes(out.getvalue().encode("cp1252"))
    photos = root / "photos"
    for ref in ("EMP-0000", "EMP-0002"):  # 0000 consented to matching, 0002 did not
        (photos / ref).mkdir(parents=True)
        shutil.copy(PORTRAIT, photos / ref / "portrait.jpg")
    return root


def run_import(root: Path, *extra: str) -> dict[str, Any]:
    report = root / "report.json"
    args = ["import", "consents", str(root / "consents.csv"), "--tenant", TENANT]
    args += ["--documents", str(root / "documents"), "--photos", str(root / "photos")]
    result = CliRunner().invoke(main, [*args, "--report", str(report), *extra])
    assert result.exit_code == 0, result.output
    loaded: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
    return loaded


def test_a_spreadsheet_of_consents_imports_dry_then_for_real_then_creates_nothing(
    folder: Path, local_stack: Any
) -> None:
    # Given a spreadsheet of ROWS good consents and five bad rows
    # When it is imported as a dry run
    dry = run_import(folder, "--dry-run")

    # Then every line has a report row, the good ones "would_create", each refusal named
    assert dry["delimiter"] == ";" and dry["encoding"] == "windows-1252"
    assert dry["counts"] == {"would_create": ROWS, "refused": 5}
    refused = {r["person_ref"]: r["refusals"] for r in dry["rows"] if r["action"] == "refused"}
    assert [(x["code"], x["column"]) for x in refused["EMP-9001"]] == [
        ("unknown_purpose", "purposes")
    ]
    assert [x["code"] for x in refused["EMP-9002"]] == ["minor_without_guardian"]
    assert [x["code"] for x in refused["EMP-9003"]] == ["missing_document"]
    assert [(x["code"], x["column"]) for x in refused["EMP-9004"]] == [("bad_date", "valid_until")]
    assert [x["code"] for x in refused["DUP-1"]] == ["duplicate"]
    photos = {r["person_ref"]: r["photos"] for r in dry["rows"]}
    assert photos["EMP-0000"] == "would_enrol 1"
    assert photos["EMP-0002"].startswith("ignored")
    # And nothing was created
    assert registry_service().find_subjects(TENANT, external_ref="EMP-0003") == []

    # When it is imported for real
    real = run_import(folder)
    # Then it created exactly what the dry run said, and enrolled only the consenting person
    assert real["counts"] == {"created": ROWS, "refused": 5}
    # And an import mails nobody unless it asks to (--send-confirmations)
    assert not [
        m
        for m in local_stack.sent_emails()
        if "@example.org" in str(m["to"])
        and any(f"p{n}@example.org" in str(m["to"]) for n in (0, 7, 42))
    ]
    assert [r["consent_id"] for r in real["rows"]] == [r["consent_id"] for r in dry["rows"]]
    by_ref = {r["person_ref"]: r for r in real["rows"]}
    assert by_ref["EMP-0000"]["photos"] == "enrolled 1"
    registry = registry_service()
    assert registry.subject(TENANT, by_ref["EMP-0000"]["subject"]).templates == 1
    assert registry.subject(TENANT, by_ref["EMP-0002"]["subject"]).templates == 0
    minor = registry.consent_view(
        TENANT, by_ref["EMP-0010"]["subject"], by_ref["EMP-0010"]["consent_id"]
    )
    assert minor.evidence is not None and minor.evidence.signer == "Guardian 10"

    # When it is imported a second time
    again = run_import(folder)
    # Then nothing new is created: every good row already exists, with the same ids
    assert again["counts"] == {"exists": ROWS, "refused": 5}
    assert {r["subject"] for r in again["rows"] if r["action"] == "exists"} == {
        r["subject"] for r in real["rows"] if r["action"] == "created"
    }
    assert len(registry.consent_views(TENANT, by_ref["EMP-0005"]["subject"])) == 1

    # And the access export of an imported person lists the imported document with its hash
    row = by_ref["EMP-0007"]
    export = rights_service().export(TENANT, row["subject"], actor="test")
    with zipfile.ZipFile(io.BytesIO(export.data)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        [consent] = manifest["consents"]
        evidence = consent["evidence"]
        assert evidence["document_sha256"] == hashlib.sha256(pdf(7)).hexdigest()
        assert evidence["document_sha256_verified"] is True
        assert archive.read(evidence["document_file"]) == pdf(7)
        assert evidence["source"] == "import"
    assert row["document_sha256"] == evidence["document_sha256"]
    assert DEMO_NOW  # the session stack's clock: consents dated 2025 are valid now
