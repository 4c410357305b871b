"""Scanning an existing library on the local stack (issue #23, item 2).

A folder of photos (the load test's fast mix: small faces, tiny face-free
images, a few broken files) is scanned through the bulk lane with progress,
stopped at about half, and resumed from its checkpoint: every photo ends
with exactly one decision and the conservation checker holds.

``make test`` scans 60 photos (the suite's CPU budget); the acceptance's 500
run in ``make soak`` with ``QC_BACKLOG_PHOTOS=500``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from quitclaim.adapters.s3_backlog import FolderSource
from quitclaim.bootstrap import backlog_service, conservation_service, registry_service
from quitclaim.domain.backlog import Progress
from quitclaim.domain.models import TenantPolicy
from tests.load import plan

pytestmark = pytest.mark.e2e
# Test-harness knob, not application configuration.
PHOTOS = int(os.environ.get("QC_BACKLOG_PHOTOS", "60"))
TENANT = "e2e-backlog"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An organisation's existing library: PHOTOS images and a stray text file."""
    root = tmp_path_factory.mktemp("library")
    for upload in plan(PHOTOS, seed=23):
        path = root / upload.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(upload.data)
    (root / "README.txt").write_text("not an image")
    return root


def test_a_backlog_scan_stops_at_half_resumes_and_accounts_for_every_photo(
    local_stack: Any, library: Path
) -> None:
    registry_service().create_tenant(TenantPolicy(tenant=TENANT, backlog_concurrency=10))
    runtime = local_stack.runtime
    bulk_name = local_stack.outputs["BulkQueueUrl"].rsplit("/", 1)[1]
    bulk_arn = next(m.queue_arn for m in runtime.mappings if m.queue_url.endswith(bulk_name))
    on_bulk: list[int] = []

    def observe(function: str, event: dict[str, Any]) -> None:
        if function == "IngestFunction" and event["Records"][0]["eventSourceARN"] == bulk_arn:
            on_bulk.append(len(event["Records"]))

    seen: list[Progress] = []
    runtime.observers.append(observe)
    try:
        # Given a folder of photos, scanned with progress until about half are fed
        scan = backlog_service()
        first = scan.run(
            TENANT,
            "archive",
            FolderSource(library),
            stop=lambda: bool(seen) and seen[-1].fed >= PHOTOS // 2,
            wait=runtime.poll_once,
            progress=seen.append,
            progress_every_s=0,
        )
        # Then it stopped there, with its checkpoint, and nothing past it was fed
        assert first.state == "stopped"
        assert first.fed == PHOTOS // 2
        assert "images/s" in seen[-1].line() and "ETA" in seen[-1].line()
        assert "cost so far $" in seen[-1].line()
        fed_at_stop = first.fed

        # When the same scan runs again
        resumed = backlog_service().run(
            TENANT,
            "archive",
            FolderSource(library),
            wait=runtime.poll_once,
            progress=seen.append,
            progress_every_s=0,
        )
    finally:
        runtime.observers.remove(observe)

    # Then it resumed after the last photo fed and finished the rest
    assert resumed.state == "complete"
    assert resumed.fed == PHOTOS and resumed.listed_images == PHOTOS
    assert resumed.skipped == 1  # README.txt
    assert seen[-1].decided == PHOTOS and seen[-1].cost_usd > 0
    assert min(p.fed for p in seen if p.fed > fed_at_stop) == fed_at_stop + 1
    # And every photo has exactly one decision, none unaccounted
    assert resumed.unaccounted == [] and resumed.decided_twice == []
    assert resumed.waiting == 0
    assert sum(resumed.decisions.values()) == PHOTOS
    # And every photo was scanned on the bulk lane
    assert sum(on_bulk) >= PHOTOS
    # And the exception report names each quarantined or rejected photo with its reasons
    exceptions = {e["path"]: e for e in resumed.exceptions}
    assert len(exceptions) == PHOTOS - resumed.decisions.get("approved", 0)
    assert all(e["reasons"] for e in exceptions.values())
    broken = [u.path for u in plan(PHOTOS, seed=23) if u.kind == "bad"]
    assert all(exceptions[p]["status"] == "rejected" for p in broken)
    # And the conservation law holds for the tenant
    report = conservation_service().check(TENANT)
    assert report.holds, report.violations
    assert report.decisions == PHOTOS


def test_the_cli_feeds_a_folder_then_reports_when_run_again(
    local_stack: Any, tmp_path: Path
) -> None:
    import json

    from click.testing import CliRunner

    from cli.main import main

    # Given a small folder and a tenant
    registry_service().create_tenant(TenantPolicy(tenant="e2e-backlog-cli"))
    for upload in plan(4, seed=7):
        (tmp_path / "lib" / upload.path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "lib" / upload.path).write_bytes(upload.data)
    args = ["backlog", "scan", str(tmp_path / "lib"), "--tenant", "e2e-backlog-cli"]
    report = tmp_path / "report.json"
    # When the CLI feeds it without waiting, the stack drains, and the CLI runs again
    fed = CliRunner().invoke(main, [*args, "--no-wait", "--report", str(report)])
    assert fed.exit_code == 0, fed.output
    assert "lib: fed; 4/4 fed" in fed.output
    local_stack.runtime.drain()
    done = CliRunner().invoke(main, [*args, "--report", str(report)])
    # Then the second run feeds nothing more and reports every image decided once
    assert done.exit_code == 0, done.output
    written = json.loads(report.read_text())
    assert written["state"] == "complete" and written["fed"] == 4
    assert sum(written["decisions"].values()) == 4 and written["unaccounted"] == []
    assert "lib: complete" in done.output
