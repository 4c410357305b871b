"""The ``quitclaim`` command line: the demo, the local stack, minimal registry.

Registry commands talk to whatever the environment points at: AWS in an
operator's shell, or a ``quitclaim local up`` stack (export what it prints).
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from cli.api_cli import api as api_commands
from cli.audit_api_cli import audits as api_audits
from cli.bulk_cli import backlog_group, import_group
from cli.keys_cli import keys as keys_commands
from cli.keys_cli import tenants_plan
from cli.operator import run_operator as _run
from cli.requests_cli import requests as requests_commands
from cli.tenants_cli import tenants as api_tenants
from cli.tenants_cli import tenants_create as api_tenants_create
from cli.tenants_cli import tenants_delete as api_tenants_delete
from cli.webhooks_cli import webhooks as api_webhooks
from devstack.control import tick_command

if TYPE_CHECKING:
    from quitclaim.usecases.compliance_registry import Registry

T = TypeVar("T")

from infra.template_source import default_template_path  # noqa: E402

TEMPLATE = default_template_path()
REPO_ROOT = TEMPLATE.parents[1]


def _date(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@click.group()
def main() -> None:
    """Quitclaim: a consent gate for faces in digital asset repositories."""
    from quitclaim.observability import log_to_stderr

    log_to_stderr()


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("."), show_default=True)
@click.option("--faces", type=click.Path(path_type=Path), default=None, help="fixtures/faces dir")
@click.option("--verbose", is_flag=True, help="show emulator warnings and function logs")
def demo(out: Path, faces: Path | None, verbose: bool) -> None:
    """Run the demo on the embedded local stack and write demo-report.{json,html}."""
    from devstack.demo import fixtures_dir
    from devstack.quiet import LOG_FILE, terminal_and_log
    from devstack.scenario import run_demo

    faces = faces or fixtures_dir(REPO_ROOT)
    started = time.perf_counter()
    with terminal_and_log(LOG_FILE, verbose=verbose) as echo:
        report = run_demo(TEMPLATE, faces, out, echo=echo)
    html_report = (out / "demo-report.html").resolve()
    click.echo(
        f"\nwrote {out / 'demo-report.json'} and {out / 'demo-report.html'} "
        f"in {time.perf_counter() - started:.1f}s"
    )
    click.echo(f"open the report:     {html_report.as_uri()}")
    click.echo("open the dashboard:  .venv/bin/quitclaim local up --demo")
    if not verbose:
        click.echo(f"emulator and function logs: {LOG_FILE} (--verbose shows them here)")
    if report["unaccounted"]:
        click.echo(f"UNACCOUNTED uploads: {report['unaccounted']}", err=True)
        sys.exit(1)


@main.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--gallery",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="folder of name/photo folders to match against",
)
@click.option("--json", "as_json", is_flag=True, help="one JSON object on stdout")
def scan(image: Path, gallery: Path | None, as_json: bool) -> None:
    """The ingest engine on one file: faces (top, right, bottom, left), best matches."""
    from quitclaim.bootstrap import face_engine
    from quitclaim.domain.errors import RejectedInput
    from quitclaim.faces.gallery import Gallery
    from quitclaim.usecases.scan_file import gallery_from_folders, scan_file

    engine = face_engine()
    built = (
        gallery_from_folders(engine, gallery, build=Gallery.build) if gallery is not None else None
    )
    try:
        result = scan_file(engine, image.read_bytes(), gallery=built.gallery if built else None)
    except RejectedInput as exc:
        payload = {"image": str(image), "rejected": exc.code, "reason": exc.message}
        click.echo(json.dumps(payload) if as_json else f"rejected ({exc.code}): {exc.message}")
        sys.exit(2)
    result = {"image": str(image), **result}
    if built is not None:
        result["gallery"] = {
            "people": built.people,
            "templates": len(built.gallery),
            "skipped": list(built.skipped),
        }
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{image}: {result['format']} {result['width']}x{result['height']}")
    for face in result["faces"]:
        b = face["box"]
        where = f"top={b['top']} right={b['right']} bottom={b['bottom']} left={b['left']}"
        match = ""
        if "match" in face:
            match = f"  match={face['match'] or '-'} distance={face['distance']}"
        click.echo(f"  frame {face['frame']}: {where}{match}")


@main.group()
def local() -> None:
    """The embedded local stack."""


local.add_command(tick_command)  # `quitclaim local tick`: devstack.control


@local.command("up")
@click.option("--port", type=int, default=0, help="emulator port (0: a free one)")
@click.option("--api-port", type=int, default=0, help="HTTP API port (0: a free one)")
@click.option(
    "--demo",
    "with_demo",
    is_flag=True,
    help="load the demo (people, consents, photos) and print keys to sign in with",
)
@click.option("--faces", type=click.Path(path_type=Path), default=None, help="fixtures/faces dir")
@click.option("--verbose", is_flag=True, help="show emulator warnings and function logs")
@click.option(
    "--env-file",
    type=click.Path(path_type=Path),
    default=Path(".quitclaim-local") / "env.sh",
    show_default=True,
    help="where the `export` lines for the CLI and the AWS CLI are written",
)
def local_up(
    port: int, api_port: int, with_demo: bool, faces: Path | None, verbose: bool, env_file: Path
) -> None:
    """Start the local stack and the HTTP API; process events until interrupted."""
    from devstack.api_server import serve_api
    from devstack.quiet import LOG_FILE, terminal_and_log
    from devstack.stack import LocalStack

    with (
        terminal_and_log(LOG_FILE, verbose=verbose) as echo,
        LocalStack(template_path=TEMPLATE, port=port) as stack,
        serve_api(stack, port=api_port) as api_url,
    ):
        keys: list[tuple[str, str]] = []
        if with_demo:
            from devstack.demo import fixtures_dir
            from devstack.scenario import load_demo

            echo("loading the demo (5 people, 13 photos)…")
            with stack.lock:  # the API serves meanwhile: one environment at a time
                data = load_demo(stack, faces or fixtures_dir(REPO_ROOT), echo=lambda _: None)
            keys = [("admin", data.keys.admin.secret)]
            keys += [(f"reviewer {n}", r.secret) for n, r in enumerate(data.keys.reviewers, 1)]
        env = {**stack.client_env(), "QUITCLAIM_URL": api_url}
        env_file.parent.mkdir(parents=True, exist_ok=True)
        env_file.write_text("".join(f"export {k}={v}\n" for k, v in sorted(env.items())))
        for line in _up_summary(api_url, stack.endpoint_url, keys, env_file, verbose):
            echo(line)
        try:
            while True:
                # API requests and polls both switch the environment: one at a time.
                with stack.lock:
                    worked = stack.runtime.poll_once()
                if not worked:
                    time.sleep(0.5)
        except KeyboardInterrupt:
            echo("stopping")


@local.command("user")
@click.option("--tenant", required=True, help="the account's tenant (custom:tenant)")
@click.option("--email", required=True, help="the sign-in name")
@click.option(
    "--group",
    type=click.Choice(["admin", "reviewer", "dpo", "auditor"]),
    default="reviewer",
    show_default=True,
    help="the role",
)
@click.option("--password", default=None, help="default: a random one, printed once")
def local_user(tenant: str, email: str, group: str, password: str | None) -> None:
    """Create an account in the stack's user pool (source the env file of `local up`)."""
    import secrets

    from devstack.signin import create_user
    from quitclaim.adapters.aws import aws_client
    from quitclaim.config import get_settings

    settings = get_settings()
    if not settings.user_pool_id:
        raise click.UsageError("no user pool: source the env file `quitclaim local up` wrote")
    password = password or f"Qc-{secrets.token_urlsafe(12)}9"
    sub = create_user(
        aws_client("cognito-idp", settings),
        settings.user_pool_id,
        email=email,
        tenant=tenant,
        group=group,
        password=password,
    )
    click.echo(f"{email} ({group} of {tenant}, sub {sub}); password: {password}")


def _up_summary(
    api_url: str, endpoint: str, keys: list[tuple[str, str]], env_file: Path, verbose: bool
) -> list[str]:
    """The few lines `quitclaim local up` shows a person."""
    from devstack.demo import DEMO_TENANT
    from devstack.quiet import LOG_FILE

    lines = [
        "Quitclaim is running on the local stack.",
        f"  dashboard:   {api_url}/",
        f"  HTTP API:    {api_url}  (OpenAPI: {api_url}/openapi.json)",
        f"  local AWS:   {endpoint}",
    ]
    if keys:
        lines.append(f"  sign in to the dashboard (tenant {DEMO_TENANT!r}) with a key:")
        lines += [f"    {role + ':':12} {secret}" for role, secret in keys]
    lines += [
        f"  CLI and AWS CLI: source {env_file}",
        "    then e.g. `aws s3 ls` or `.venv/bin/quitclaim check --tenant demo`",
        "  move time:   .venv/bin/quitclaim local tick --to 2027-07-01T00:00:00Z",
        "  accounts:    .venv/bin/quitclaim local user --tenant demo --email you@example.org"
        " (then 'Sign in with your account')",
    ]
    if not verbose:
        lines.append(f"  logs:        {LOG_FILE} (--verbose shows them here)")
    lines.append("  stop:        Ctrl-C")
    return lines


def _registry() -> Registry:
    from quitclaim.bootstrap import registry_service

    return registry_service()


@main.group()
def tenants() -> None:
    """Operator: onboard and offboard tenants (direct to the tables and buckets)."""


# The operator's onboarding and offboarding: the same commands as `quitclaim api tenants`.
tenants.add_command(api_tenants_create)
tenants.add_command(api_tenants_delete)
tenants.add_command(tenants_plan)  # `quitclaim tenants plan TENANT PLAN`: cli.keys_cli


@main.command("check")
@click.option("--tenant", required=True)
def check(tenant: str) -> None:
    """Prove the conservation law for a tenant: every upload in exactly one place.

    Exits 1 and lists the violations when it does not hold (run it after the
    queues drain). Talks to the tables and buckets the environment points at.
    """
    from quitclaim.api.serialize import to_json
    from quitclaim.bootstrap import conservation_service

    report = _run(lambda: conservation_service().check(tenant))
    click.echo(json.dumps({**to_json(report), "holds": report.holds}, indent=2))
    if not report.holds:
        raise SystemExit(1)


@main.group("usage", invoke_without_command=True)
@click.option("--tenant", default=None, help="required without a subcommand")
@click.option("--month", default=None, help="UTC month YYYY-MM (default: this one)")
@click.option("--csv", "as_csv", is_flag=True, help="month,tenant,unit,quantity rows")
@click.pass_context
def usage(ctx: click.Context, tenant: str | None, month: str | None, as_csv: bool) -> None:
    """Operator: a tenant's billable usage in one UTC month (JSON, or CSV).

    Subcommands (docs/billing.md): reconcile, billing, customer.
    """
    if ctx.invoked_subcommand is not None:
        return
    if tenant is None:
        raise click.UsageError("give --tenant (or a subcommand)")
    from quitclaim.api.serialize import to_json
    from quitclaim.bootstrap import usage_service
    from quitclaim.domain.usage import usage_csv

    report = _run(lambda: usage_service().report(tenant, month))
    click.echo(usage_csv(report) if as_csv else json.dumps(to_json(report), indent=2), nl=False)
    if not as_csv:
        click.echo("")


@main.command("quota")
@click.option("--tenant", required=True)
@click.option("--images-per-month", type=click.IntRange(min=0), default=None)
@click.option("--unlimited", is_flag=True, help="remove the quota")
def quota(tenant: str, images_per_month: int | None, unlimited: bool) -> None:
    """Operator: set a tenant's monthly image quota (a plan change); releases held uploads."""
    from quitclaim.bootstrap import usage_service

    if unlimited == (images_per_month is not None):
        raise click.UsageError("give either --images-per-month N or --unlimited")
    released = _run(lambda: usage_service().set_images_per_month(tenant, images_per_month))
    click.echo(
        json.dumps({"tenant": tenant, "images_per_month": images_per_month, "released": released})
    )


@main.group()
def audit() -> None:
    """The tenants' tamper-evident audit trail (hash chains in the audit bucket)."""


@audit.command("verify")
@click.option("--tenant", required=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON object on stdout")
def audit_verify(tenant: str, as_json: bool) -> None:
    """Recompute the tenant's chain from the bucket; exit 1 at the first broken link.

    Checks every record's hash, seq, key and link to the one before, and the
    chain's end against its head. Talks to what the environment points at.
    """
    from quitclaim.bootstrap import audit_trail_service

    result = _run(lambda: audit_trail_service().verify(tenant))
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        click.echo(f"{tenant}: {result.records} records, {result.events} events verified")
        b = result.first_break
        if b is not None:
            click.echo(f"BROKEN at seq {b.seq} ({b.key}): {b.problem}: {b.detail}")
        else:
            click.echo("intact")
    if not result.intact:
        raise SystemExit(1)


@audit.command("show")
@click.option("--tenant", required=True)
@click.option("--since", default=None, help="ISO date or time (UTC when no zone)")
def audit_show(tenant: str, since: str | None) -> None:
    """Print the chain's events, one JSON line each (run ``verify`` to trust them)."""
    from quitclaim.bootstrap import audit_trail_service

    for event in _run(lambda: audit_trail_service().events(tenant, _date(since))):
        click.echo(json.dumps(event, sort_keys=True))


@audit.command("accuracy")
@click.option("--tenant", required=True)
@click.option(
    "--labels",
    "labels_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV: photo, person, box, pose, group:<name>=<value>...",
)
@click.option(
    "--photos", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option("--target-fmr", type=float, default=1e-4, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("."), show_default=True)
@click.option("--per-person", is_flag=True, help="name people in the report (the officer asks)")
@click.option("--no-store", is_flag=True, help="do not keep it as the DPIA's accuracy evidence")
def audit_accuracy(
    tenant: str,
    labels_path: Path,
    photos: Path,
    target_fmr: float,
    out: Path,
    per_person: bool,
    no_store: bool,
) -> None:
    """Accuracy and bias audit on labelled photos with the deployed engine (docs/accuracy-audit.md).

    Writes accuracy-audit.json and accuracy-audit.html to --out, keeps the
    report as the tenant's accuracy evidence, prints a summary.
    """
    from quitclaim.bootstrap import accuracy_audit_service
    from quitclaim.domain.accuracy_report import render_html
    from quitclaim.usecases.accuracy_audit import DirectoryPhotos, summary

    service = accuracy_audit_service()
    labels = labels_path.read_text(encoding="utf-8")
    report = _run(
        lambda: service.run(
            tenant, labels, DirectoryPhotos(photos), target_fmr=target_fmr, per_person=per_person
        )
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "accuracy-audit.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    (out / "accuracy-audit.html").write_text(render_html(report), encoding="utf-8")
    if not no_store:
        _run(lambda: service.store(report))
    click.echo(json.dumps({**(summary(report) or {}), "advice": report["advice"]}, indent=2))


@audit.command("adopt-advice")
@click.option("--tenant", required=True)
@click.option(
    "--key",
    envvar="QUITCLAIM_KEY",
    required=True,
    help="your admin API key: it names the person (two different people must adopt)",
)
@click.option("--job", "job_id", default=None, help="an API job's advice (default: the latest)")
def audit_adopt_advice(tenant: str, key: str, job_id: str | None) -> None:
    """Adopt the accuracy audit's threshold advice: one audited, two-person policy change.

    The first administrator's call keeps it pending; a second, different
    administrator's call with the same advice applies it (docs/accuracy-audit.md).
    """
    from quitclaim.bootstrap import accuracy_jobs_service, api_keys_service, tenant_admin_service

    principal = _run(lambda: api_keys_service().resolve(key))
    if principal.tenant != tenant:
        raise click.ClickException("forbidden: the key is another tenant's (field: key)")
    advice = _run(lambda: accuracy_jobs_service().advice(tenant, job_id))
    update = _run(
        lambda: tenant_admin_service().adopt_accuracy_advice(
            principal.tenant, advice, who=principal
        )
    )
    state = "pending: a second administrator must adopt it too" if update.pending else "applied"
    click.echo(
        json.dumps(
            {
                "status": state,
                "match_threshold": update.policy.match_threshold,
                "match_margin": update.policy.match_margin,
                "pending_change": update.pending,
            },
            indent=2,
        )
    )


@main.command()
@click.option("--tenant", required=True)
@click.option("--name", "display_name", required=True)
@click.option("--ref", "external_ref", default=None)
@click.option(
    "--biometric-consent",
    is_flag=True,
    help="the person gave explicit consent to biometric matching (required; recorded)",
)
@click.argument("photos", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def enrol(
    tenant: str,
    display_name: str,
    external_ref: str | None,
    biometric_consent: bool,
    photos: tuple[Path, ...],
) -> None:
    """Enrol a subject from reference photos (exactly one face each)."""
    data = [p.read_bytes() for p in photos]
    sid = _run(
        lambda: _registry().enrol_subject(
            tenant,
            display_name,
            data,
            external_ref=external_ref,
            biometric_consent=biometric_consent,
            consent_source="cli",
        )
    )
    click.echo(json.dumps({"subject_id": sid}))


@main.group()
def consents() -> None:
    """Portrait consents (quitclaims)."""


@consents.command("grant")
@click.option("--tenant", required=True)
@click.option("--subject", "subject_id", required=True)
@click.option("--purpose", "purposes", multiple=True, required=True)
@click.option("--valid-from", default=None, help="ISO date/time (default: now)")
@click.option("--expires-at", default=None, help="ISO date/time")
def consents_grant(
    tenant: str,
    subject_id: str,
    purposes: tuple[str, ...],
    valid_from: str | None,
    expires_at: str | None,
) -> None:
    """Grant a consent for purposes within a validity window."""
    start = _date(valid_from) or datetime.now(UTC)
    consent = _run(
        lambda: _registry().grant_consent(
            tenant, subject_id, purposes, start, _date(expires_at), source="cli"
        )
    )
    click.echo(json.dumps({"consent_id": consent.consent_id}))


@consents.command("revoke")
@click.option("--tenant", required=True)
@click.option("--subject", "subject_id", required=True)
@click.option("--consent", "consent_id", required=True)
def consents_revoke(tenant: str, subject_id: str, consent_id: str) -> None:
    """Withdraw a consent, effective immediately."""
    consent = _run(lambda: _registry().revoke_consent(tenant, subject_id, consent_id, source="cli"))
    click.echo(
        json.dumps({"consent_id": consent.consent_id, "revoked_at": str(consent.revoked_at)})
    )


main.add_command(api_commands)  # `quitclaim api ...`: the HTTP API (cli.api_cli)
api_commands.add_command(api_audits)  # `quitclaim api audits ...`: accuracy audit jobs
api_commands.add_command(api_tenants)  # `quitclaim api tenants create|delete`: cli.tenants_cli
api_commands.add_command(api_webhooks)  # `quitclaim api webhooks ...`: cli.webhooks_cli
main.add_command(requests_commands)  # `quitclaim requests list` (cli.requests_cli)
main.add_command(import_group)  # `quitclaim import consents`: cli.bulk_cli
main.add_command(backlog_group)  # `quitclaim backlog scan`: cli.bulk_cli
main.add_command(keys_commands)  # `quitclaim keys list|create|revoke|rotate`: cli.keys_cli

from cli.billing_cli import add_billing_commands  # noqa: E402

add_billing_commands(usage)  # `quitclaim usage reconcile|billing|customer` (docs/billing.md)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
