"""checkov on the translated template (SAM's Policies hide wildcard IAM from a raw scan).

Runs offline: no platform key, no mapping download, no upload. checkov lives
in its own venv (``make test`` installs it: it pins an older boto3). Every
suppression is in the resource's Metadata with its reason (test_template
checks that each has one); the API stage's are in
``infra.api_template.GENERATED_SCAN_SUPPRESSIONS``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from infra.api_template import with_generated_suppressions
from tests.conftest import REPO_ROOT
from tests.unit.infra import templates

CHECKOV = Path(os.environ.get("QC_CHECKOV", REPO_ROOT / ".venv" / "checkov" / "bin" / "checkov"))


def run_checkov(template: dict, tmp_path: Path) -> dict:
    if not CHECKOV.exists():
        pytest.fail(
            f"checkov not found at {CHECKOV}: run `make test` (it installs it) or set QC_CHECKOV"
        )
    path = tmp_path / "template.json"
    path.write_text(json.dumps(template), encoding="utf-8")
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_"))},
        "BC_SKIP_MAPPING": "TRUE",  # no download of the guideline mapping
        "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
        "LOG_LEVEL": "WARNING",
    }
    result = subprocess.run(
        [
            str(CHECKOV),
            "--file",
            str(path),
            "--framework",
            "cloudformation",
            "--output",
            "json",
            "--skip-download",
            "--skip-results-upload",
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        check=False,
    )
    assert result.stdout.strip(), result.stderr[-3000:]
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


def test_checkov_finds_nothing_unexplained_in_the_deployable_template(tmp_path: Path) -> None:
    # Given the template CloudFormation would receive (SAM translated, API included)
    translated = with_generated_suppressions(templates.translated("merged"))
    # When checkov scans it
    report = run_checkov(translated, tmp_path)
    results = report["results"]
    # Then every finding is fixed or suppressed in place with its reason
    failed = [
        f"{f['check_id']} {f['resource']}: {f['check_name']}" for f in results["failed_checks"]
    ]
    assert failed == []
    assert report["summary"]["passed"] > 100  # it really scanned the resources
    for skipped in results["skipped_checks"]:
        reason = (skipped.get("check_result") or {}).get("suppress_comment") or ""
        assert len(reason) > 30, (skipped["check_id"], skipped["resource"])
