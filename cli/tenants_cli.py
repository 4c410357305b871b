"""``quitclaim api tenants create|delete`` (also ``quitclaim tenants ...``): the operator's
onboarding and offboarding, direct to the tables and buckets (there is no key yet, or no
longer); ``create`` prints the first admin key."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.api_client import _emit, _fields, _table, json_option
from cli.operator import run_operator
from quitclaim.domain.tenancy import DEFAULT_PLAN, PLANS

if TYPE_CHECKING:
    from quitclaim.domain.models import TenantPolicy


def _default_policy(
    tenant: str, threshold: float | None, default_purpose: str | None
) -> TenantPolicy:
    """The new tenant's policy: the deployment's defaults, with what was given."""
    from quitclaim.config import get_settings
    from quitclaim.domain.models import TenantPolicy

    s = get_settings()
    return TenantPolicy(
        tenant=tenant,
        match_threshold=threshold if threshold is not None else s.default_threshold,
        match_margin=s.default_margin,
        min_face_px=s.default_min_face_px,
        default_purpose=default_purpose or s.default_purpose,
    )


def _created(issued: Any, *, name: str, region: str, plan: str) -> dict[str, Any]:
    """What ``tenants create`` prints: the tenant, its plan's limits and the first key."""
    chosen = PLANS[plan]
    return {
        "tenant": issued.tenant,
        "name": name.strip(),
        "region": region.strip().lower(),
        "plan": chosen.name,
        "images_per_month": chosen.images_per_month,
        "api_rate_per_second": chosen.api_rate_per_second,
        "api_burst": chosen.api_burst,
        "key_id": issued.key_id,
        "role": str(issued.role),
        "label": issued.label,
        "secret": issued.secret,
    }


@click.group("tenants")
def tenants() -> None:
    """Operator: tenants (direct to the tables; no key needed yet)."""


@tenants.command("create")
@click.argument("tenant")
@click.option("--name", required=True, help="the tenant's name (organisation)")
@click.option("--contact-email", required=True, help="the operator's contact at the tenant")
@click.option(
    "--region", default=None, help="EU region pin (default and only choice: this deployment's)"
)
@click.option("--plan", default=DEFAULT_PLAN, show_default=True, type=click.Choice(list(PLANS)))
@click.option("--label", default="admin", show_default=True, help="label of the first key")
@click.option("--threshold", type=float, default=None, help="match threshold of the policy")
@click.option("--default-purpose", default=None, help="the policy's default purpose")
@json_option
@click.pass_context
def tenants_create(
    ctx: click.Context,
    tenant: str,
    name: str,
    contact_email: str,
    region: str | None,
    plan: str,
    label: str,
    threshold: float | None,
    default_purpose: str | None,
    as_json: bool,
) -> None:
    """Onboard TENANT: profile, default policy, first admin key (shown once)."""
    from quitclaim.bootstrap import onboarding_service
    from quitclaim.config import get_settings

    s = get_settings()
    pinned = region if region is not None else s.region
    policy = _default_policy(tenant, threshold, default_purpose)
    issued = run_operator(
        lambda: onboarding_service().create_tenant(
            tenant,
            label=label,
            name=name,
            region=pinned,
            plan=plan,
            contact_email=contact_email,
            policy=policy,
        )
    )
    payload = _created(issued, name=name, region=region or s.region, plan=plan)
    _emit(
        ctx,
        payload,
        lambda p: (
            f"{_fields(p, ('tenant', 'name', 'region', 'plan', 'key_id', 'role', 'label'))}\n"
            "# the secret is shown once; keep it:\n"
            f"export QUITCLAIM_KEY={p['secret']}"
        ),
        as_json=as_json,
    )


@tenants.command("delete")
@click.argument("tenant")
@click.option(
    "--grace-days",
    type=click.IntRange(0, 365),
    default=30,
    show_default=True,
    help="days before --purge is allowed",
)
@click.option("--purge", is_flag=True, help="erase everything (after the grace period)")
@click.option("--now", "early", is_flag=True, help="with --purge: do not wait for the grace period")
@click.option(
    "--yes-delete-everything", "confirmed", is_flag=True, help="confirms --now (irreversible)"
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="where the verification report goes (default: offboarding-TENANT.json)",
)
@json_option
@click.pass_context
def tenants_delete(
    ctx: click.Context,
    tenant: str,
    grace_days: int,
    purge: bool,
    early: bool,
    confirmed: bool,
    report_path: Path | None,
    as_json: bool,
) -> None:
    """Offboard TENANT: first mark it deleting (keys revoked, uploads kept unscanned);
    after the grace period, ``--purge`` erases all its data and verifies it is gone.
    Exits 1 when the verification finds anything left."""
    from quitclaim.bootstrap import offboarding_service

    service = offboarding_service()
    if not purge:
        if early or confirmed:
            raise click.UsageError("--now and --yes-delete-everything go with --purge")
        _start_offboarding(ctx, service, tenant, timedelta(days=grace_days), as_json=as_json)
        return
    if early and not confirmed:
        raise click.UsageError("--now erases before the grace period: add --yes-delete-everything")
    out = report_path or Path(f"offboarding-{tenant}.json")
    if not _purge(ctx, service, tenant, out, early=early, as_json=as_json):
        raise SystemExit(1)


def _start_offboarding(
    ctx: click.Context, service: Any, tenant: str, grace: timedelta, *, as_json: bool
) -> None:
    """Mark TENANT deleting: keys revoked, uploads kept unscanned until the purge."""
    profile = run_operator(lambda: service.start(tenant, grace=grace))
    payload = {
        "tenant": profile.tenant,
        "state": profile.state.value,
        "purge_after": profile.purge_after.isoformat() if profile.purge_after else None,
        "keys": "revoked",
        "uploads": "kept, not scanned",
    }
    _emit(ctx, payload, lambda p: _fields(p, tuple(p)), as_json=as_json)


def _purge(
    ctx: click.Context, service: Any, tenant: str, out: Path, *, early: bool, as_json: bool
) -> bool:
    """Erase TENANT's data and write the verification report; whether nothing is left."""
    report = run_operator(lambda: service.purge(tenant, early=early))
    document = report.as_dict()
    out.write_text(json.dumps(document, indent=2) + "\n")
    rows = [
        {"store": r.store, "found": r.found, "deleted": r.deleted, "remaining": r.remaining}
        for r in report.stores
    ]
    _emit(
        ctx,
        {**document, "written_to": str(out)},
        lambda p: (
            f"{_table(rows, ('store', 'found', 'deleted', 'remaining'))}\n"
            f"complete: {'yes' if p['complete'] else 'NO'}; report: {p['written_to']}"
        ),
        as_json=as_json,
    )
    return bool(report.complete)
