"""Wiring the demo to a running local stack (shared by ``make demo`` and tests)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.demo import (
    DEMO_TENANT,
    DemoKeys,
    collect_report,
    enrol_people,
    format_table,
    issue_demo_keys,
    upload_all,
    write_html,
    write_json,
)
from devstack.stack import LocalStack
from quitclaim.adapters.dynamo import DynamoAssets, DynamoSubjects
from quitclaim.bootstrap import registry_service, reset_container


def demo_on_stack(
    stack: LocalStack,
    faces: Path,
    echo: Callable[[str], Any] = print,
    *,
    tenant: str = DEMO_TENANT,
) -> dict[str, Any]:
    """Enrol, grant, upload every fixture, drain the queues, read the outcome."""
    registry = registry_service()
    people = enrol_people(registry, faces, tenant)
    echo(f"enrolled {len(people)} people with their consents")
    bucket = stack.outputs["UploadsBucketName"]
    s3 = stack.client("s3")
    files = sorted(p for p in (faces / "uploads").iterdir() if p.is_file())
    uploads = upload_all(s3, bucket, files, tenant)
    echo(f"uploaded {len(uploads)} images; processing…")
    stack.drain()
    return collect_report(
        uploads,
        uploads_bucket=bucket,
        s3=s3,
        assets=DynamoAssets(),
        subjects=DynamoSubjects(),
        tenant=tenant,
    )


@dataclass(frozen=True)
class DemoData:
    report: dict[str, Any]
    keys: DemoKeys


def load_demo(
    stack: LocalStack,
    faces: Path,
    echo: Callable[[str], Any] = print,
    *,
    tenant: str = DEMO_TENANT,
) -> DemoData:
    """The demo's people, consents and images on a running stack, plus keys to sign in.

    What ``quitclaim local up --demo`` loads, and the dashboard's browser tests too.
    The process must already point at the stack (``serve_api`` or ``use_client_env``).
    """
    report = demo_on_stack(stack, faces, echo, tenant=tenant)
    return DemoData(report, issue_demo_keys(tenant))


def run_demo(
    template: Path, faces: Path, out: Path, echo: Callable[[str], Any] = print
) -> dict[str, Any]:
    """Start a fresh local stack, run the demo, write both reports."""
    out.mkdir(parents=True, exist_ok=True)
    with LocalStack(template_path=template) as stack, stack.use_client_env():
        # Everything below talks to the emulator only, never to a real account.
        reset_container()
        echo(f"local stack up at {stack.endpoint_url}")
        report = demo_on_stack(stack, faces, echo)
    reset_container()
    echo("")
    echo(format_table(report))
    write_json(report, out / "demo-report.json")
    write_html(report, faces, out / "demo-report.html")
    return report
