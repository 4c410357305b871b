"""``quitclaim api ...`` against the HTTP server, as the README walkthrough uses it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.main import main
from tests.conftest import FACES
from tests.integration.api.conftest import Buckets, HttpApi, photo

pytestmark = pytest.mark.integration

TENANT = "api-cli"


class Cli:
    def __init__(self, base_url: str) -> None:
        self.runner = CliRunner()
        self.env = {"QUITCLAIM_URL": base_url, "QUITCLAIM_KEY": ""}

    def __call__(self, *args: str, key: str | None = None, ok: bool = True) -> Result:
        env = {**self.env, "QUITCLAIM_KEY": key or self.env["QUITCLAIM_KEY"]}
        result = self.runner.invoke(main, ["api", *args], env=env, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    def json(self, *args: str, key: str | None = None) -> Any:
        # stdout only: log lines go to stderr so --json output stays parseable
        return json.loads(self(*args, "--json", key=key).stdout)


@pytest.fixture(scope="module")
def cli(http_api: HttpApi) -> Cli:
    return Cli(http_api.base_url)


@pytest.fixture(scope="module")
def admin_key(cli: Cli) -> str:
    # When the operator creates the tenant
    result = cli(
        "tenants", "create", TENANT, "--name", "Api Cli", "--contact-email", "dpo@cli.example"
    )
    # Then the first admin key is printed once, ready to export
    match = re.search(r"^export QUITCLAIM_KEY=(\S+)$", result.stdout, re.MULTILINE)
    assert match, result.stdout
    cli.env["QUITCLAIM_KEY"] = match.group(1)
    return match.group(1)


def test_walkthrough(cli: Cli, admin_key: str, local_stack: Any, tmp_path: Path) -> None:
    # Given a person registered and enrolled from the command line
    subject = cli.json("subjects", "create", "--name", "Cli Person", "--ref", "crm-9")
    sid = subject["subject_id"]
    portrait = str(FACES / "enroll" / "obama" / "obama-portrait.jpg")
    enrolled = cli("subjects", "enrol", sid, portrait, "--biometric-consent")
    assert re.search(r"^templates\s+1$", enrolled.stdout, re.MULTILINE), enrolled.stdout
    listed = cli("subjects", "list").stdout
    assert listed.splitlines()[0].split()[:2] == ["SUBJECT_ID", "DISPLAY_NAME"]
    assert sid in listed and "Cli Person" in listed

    # And a consent with its signed form
    form = tmp_path / "quitclaim.pdf"
    form.write_bytes(b"%PDF-1.7 signed")
    consent = cli.json(
        "consents",
        "grant",
        sid,
        "--purpose",
        "web",
        "--valid-from",
        "2026-01-01",
        "--expires-at",
        "2027-12-31",
        "--signer",
        "Cli Person",
        "--document",
        str(form),
    )
    cid = consent["consent_id"]
    assert consent["evidence"]["document_type"] == "application/pdf"
    table = cli("consents", "list", sid).stdout
    assert re.search(rf"^{cid}\s+valid\s+web\s", table, re.MULTILINE), table

    # When an upload of them arrives, it is approved
    buckets = Buckets(local_stack, TENANT)
    buckets.upload("cli/office.jpg", photo("uploads", "obama-office.jpg"))
    approved = cli.json("assets", "list", "--status", "approved")["items"]
    assert [a["path"] for a in approved] == ["cli/office.jpg"]
    asset_id = approved[0]["asset_id"]

    # When the consent is revoked from the command line
    revoked = cli("consents", "revoke", sid, cid).stdout
    assert re.search(r"^status\s+revoked$", revoked, re.MULTILINE), revoked
    local_stack.drain()
    # Then the review queue (the default listing) shows it, with the reason
    queue = cli("assets", "list").stdout
    assert re.search(rf"^{asset_id}\s+quarantined\s+consent_revoked\s", queue, re.MULTILINE)
    assert buckets.places("cli/office.jpg") == ["quarantine"]
    detail = cli("assets", "get", asset_id).stdout
    assert "faces:" in detail and sid in detail

    # And renewing a withdrawn consent fails with the API's error, exit code 1
    refused = cli("consents", "renew", sid, cid, "--expires-at", "2030-01-01", ok=False)
    assert refused.exit_code == 1 and "HTTP 409 revoked" in refused.stderr

    # And a single reviewer's release is only a request
    reviewer = cli.json("assets", "release", asset_id, "-j", "has a release", key=admin_key)
    assert reviewer["review"]["pending_release"] and reviewer["status"] == "quarantined"
    kept = cli("assets", "keep", asset_id, "-j", "no, keep it").stdout
    assert "quarantined" in kept


def test_policy_get(cli: Cli, admin_key: str) -> None:
    output = cli("policy", "get").stdout
    assert re.search(r"^match_threshold\s+0\.5$", output, re.MULTILINE), output
    assert cli.json("policy", "get")["tenant"] == TENANT


def test_errors_are_readable(cli: Cli, admin_key: str) -> None:
    missing = cli("subjects", "get", "sub_nobody", ok=False)
    assert missing.exit_code == 1 and "HTTP 404 not_found" in missing.stderr
    invalid = cli("subjects", "create", "--name", "X", "--born", "someday", ok=False)
    assert "(field: date_of_birth)" in invalid.stderr
    wrong_key = cli("subjects", "list", key="qc_wrong", ok=False)
    assert "HTTP 401 unauthorized" in wrong_key.stderr


def test_without_url_or_key_is_a_usage_error() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["api", "subjects", "list"], env={"QUITCLAIM_URL": ""})
    assert result.exit_code == 2 and "QUITCLAIM_URL" in result.stderr


def test_webhook_commands(cli: Cli, admin_key: str, local_stack: Any, tmp_path: Path) -> None:
    # Given a source registered from a mapping file, and an endpoint
    mapping = {
        "event": {"value": "withdrawn"},
        "subject": {"email": "data.email"},
        "when": [{"path": "type", "equals": "unsubscribe"}],
    }
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(mapping), encoding="utf-8")
    added = cli("webhooks", "add-source", "mailer", "--mapping", str(path))
    assert f"POST /webhooks/{TENANT}/mailer" in added.stdout
    assert re.search(r"^secret whsec_\S+", added.stdout, re.MULTILINE), added.stdout
    endpoint = cli.json(
        "webhooks", "add-endpoint", "http://127.0.0.1:9/dam", "--event", "asset.approved"
    )
    assert endpoint["endpoint"]["event_types"] == ["asset.approved"]
    # Then they are listed, without their secrets
    sources = cli("webhooks", "sources")
    assert "mailer" in sources.stdout and "whsec_" not in sources.stdout
    endpoints = cli("webhooks", "endpoints")
    assert endpoint["endpoint"]["endpoint_id"] in endpoints.stdout
    # And a rotation prints the new secret and the end of the old one's overlap
    rotated = cli("webhooks", "rotate", "source", "mailer", "--overlap-hours", "2")
    assert "old one valid until 2026-11-26T14:00:00Z" in rotated.stdout
    # And the delivery lists answer (nothing dead yet)
    assert cli.json("webhooks", "deliveries", "--status", "dead")["items"] == []
    assert cli.json("webhooks", "inbound", "mailer")["items"] == []
    # And a bad request names the field
    refused = cli("webhooks", "add-source", "bad name", "--preset", "generic-form", ok=False)
    assert refused.exit_code != 0 and "field: name" in refused.output
