"""POST /imports/consents through the HTTP API: files by presigned upload, then the CSV."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest

from tests.integration.api.conftest import Api, Tenant, make_tenant

pytestmark = pytest.mark.integration

CSV = (
    "person_ref;name;date_of_birth;guardian_name;purposes;valid_from;valid_until;document;"
    "biometric_consent\n"
    "API-1;Eva Smit;1990-02-02;;web;01-01-2025;;API-1.pdf;nee\n"
    "API-2;Kees Smit;2016-02-02;;web;01-01-2025;;API-2.pdf;nee\n"
    "API-3;Joop Smit;1970-02-02;;web;01-01-2025;;API-3.pdf;nee\n"
)


@pytest.fixture(scope="module")
def tenant(local_stack: Any) -> Tenant:
    return make_tenant("api-imports")


def put(url: str, data: bytes) -> int:
    # (urllib's default form content type would have the emulator parse the body away)
    headers = {"Content-Type": "application/octet-stream"}
    request = urllib.request.Request(url, data=data, headers=headers, method="PUT")
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


def test_an_import_uploads_its_documents_then_reports_dry_then_imports_once(
    http_api: Api, tenant: Tenant
) -> None:
    # Given presigned uploads for two of the three documents the CSV names
    reply = http_api.call(
        "POST",
        "/imports/consents/uploads",
        key=tenant.admin,
        json_body={"documents": ["API-1.pdf", "API-2.pdf"]},
    )
    assert reply.status == 200, reply.body
    uploads = reply.json
    for name, url in uploads["documents"].items():
        assert put(url, b"%PDF-1.4 " + name.encode()) == 200
    body = {"csv": CSV, "import_id": uploads["import_id"]}

    # When the CSV is sent as a dry run
    dry = http_api.call("POST", "/imports/consents", key=tenant.admin, json_body=body)
    # Then each row is reported: one would be created, the minor and the missing document refused
    assert dry.status == 200, dry.body
    actions = {r["person_ref"]: r["action"] for r in dry.json["rows"]}
    assert actions == {"API-1": "would_create", "API-2": "refused", "API-3": "refused"}
    codes = {r["person_ref"]: [x["code"] for x in r["refusals"]] for r in dry.json["rows"]}
    assert codes["API-2"] == ["minor_without_guardian"]
    assert codes["API-3"] == ["missing_document"]

    # When it is sent for real, twice
    real = http_api.call(
        "POST", "/imports/consents", key=tenant.admin, json_body={**body, "dry_run": False}
    )
    again = http_api.call(
        "POST", "/imports/consents", key=tenant.admin, json_body={**body, "dry_run": False}
    )
    # Then the first creates the one consent, with its document hashed, and the second nothing
    assert real.json["counts"] == {"created": 1, "refused": 2}
    assert again.json["counts"] == {"exists": 1, "refused": 2}
    created = next(r for r in real.json["rows"] if r["action"] == "created")
    consents = http_api.call("GET", f"/subjects/{created['subject']}/consents", key=tenant.admin)
    [consent] = consents.json["items"]
    assert consent["evidence"]["document_sha256"] == created["document_sha256"]


def test_an_import_is_for_admins_and_names_the_bad_field(http_api: Api, tenant: Tenant) -> None:
    forbidden = http_api.call(
        "POST", "/imports/consents", key=tenant.reviewer, json_body={"csv": CSV}
    )
    assert forbidden.status == 403
    bad = http_api.call(
        "POST",
        "/imports/consents",
        key=tenant.admin,
        json_body={"csv": "name;email\nA;a@b.nl\n"},
    )
    assert bad.status == 400 or bad.status == 422, bad.body
    assert bad.json["field"] == "person_ref"


def test_the_backlog_concurrency_is_a_tenant_setting(http_api: Api, tenant: Tenant) -> None:
    # Given the tenant's default policy
    assert http_api.call("GET", "/policy", key=tenant.admin).json["backlog_concurrency"] == 4
    # When an admin sets the backlog concurrency, and then an impossible one
    changed = http_api.call(
        "PATCH", "/policy", key=tenant.admin, json_body={"backlog_concurrency": 8}
    )
    refused = http_api.call(
        "PATCH", "/policy", key=tenant.admin, json_body={"backlog_concurrency": 0}
    )
    # Then the first is kept and the second refused, naming the field
    assert changed.status == 200, changed.body
    assert http_api.call("GET", "/policy", key=tenant.admin).json["backlog_concurrency"] == 8
    assert refused.status in (400, 422) and refused.json["field"] == "backlog_concurrency"


def test_the_api_cli_uploads_the_named_documents_and_imports(
    http_api: Any, tenant: Tenant, tmp_path: Any
) -> None:
    from click.testing import CliRunner

    from cli.main import main

    # Given a CSV (Windows-1252, ;) naming one document found in the folder
    csv_file = tmp_path / "c.csv"
    csv_file.write_bytes(
        (
            "person_ref;name;purposes;valid_from;document\n"
            "CLI-1;Zoë Smit;web;01-01-2025;CLI-1.pdf\n"
        ).encode("cp1252")
    )
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "CLI-1.pdf").write_bytes(b"%PDF-1.4 cli")
    args = ["api", "--base-url", http_api.base_url, "--key", tenant.admin, "import", "consents"]
    args += [str(csv_file), "--documents", str(tmp_path / "docs")]
    # When it is imported through the API from the command line, dry and then for real
    dry = CliRunner().invoke(main, [*args, "--dry-run"])
    real = CliRunner().invoke(main, args)
    # Then the dry run would create it and the real run created it
    assert dry.exit_code == 0, dry.output
    assert report(dry.output)["counts"] == {"would_create": 1}
    assert real.exit_code == 0, real.output
    assert report(real.output)["counts"] == {"created": 1}


def report(output: str) -> Any:
    """The report the command printed (log lines on stderr are mixed into the output)."""
    import json

    start = output.index('{\n  "tenant"')
    return json.JSONDecoder().raw_decode(output[start:])[0]
