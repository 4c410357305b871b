"""``quitclaim keys list|create|revoke|rotate`` (over the API) and ``quitclaim tenants plan``.

One HTTP call each with the key as a Bearer token, as ``quitclaim api`` does
($QUITCLAIM_URL, $QUITCLAIM_KEY). Secrets are printed only by ``create`` and
``rotate``, once; ``list`` never shows one (the API keeps only hashes).
"""

from __future__ import annotations

from typing import Any

import click

from cli.api_client import (
    ApiClient,
    _emit,
    _fields,
    _segment,
    _table,
    json_option,
)
from cli.operator import run_operator
from quitclaim.domain.tenancy import PLANS

KEY_COLUMNS = ("key_id", "label", "person", "role", "status", "expires_at", "revoked_at")


@click.group("keys")
@click.option("--base-url", envvar="QUITCLAIM_URL", default=None, help="API base URL")
@click.option("--key", envvar="QUITCLAIM_KEY", default=None, help="API key (an admin's)")
@click.pass_context
def keys(ctx: click.Context, base_url: str | None, key: str | None) -> None:
    """API keys: list, create, revoke, rotate (docs/access.md)."""
    ctx.obj = {"base_url": base_url, "key": key, "as_json": False}


def _client(ctx: click.Context) -> ApiClient:
    options = ctx.obj or {}
    if not options.get("base_url"):
        raise click.UsageError("no API URL: pass --base-url or set QUITCLAIM_URL")
    if not options.get("key"):
        raise click.UsageError("no API key: pass --key or set QUITCLAIM_KEY")
    return ApiClient(options["base_url"], options["key"])


def _issued(issued: dict[str, Any]) -> str:
    head = _fields(issued, ("key_id", "label", "person", "role", "expires_at"))
    return f"{head}\nsecret      {issued['secret']}  (shown once)"


@keys.command("list")
@json_option
@click.pass_context
def keys_list(ctx: click.Context, as_json: bool) -> None:
    """Every key with its person, role, expiry and status (never a secret)."""
    found = _client(ctx).call("GET", "/keys")
    _emit(ctx, found, lambda f: _table(f["items"], KEY_COLUMNS), as_json=as_json)


@keys.command("create")
@click.option("--role", type=click.Choice(["admin", "reviewer", "dpo", "auditor"]), required=True)
@click.option("--label", required=True, help="what the key is for")
@click.option("--person", required=True, help="who holds it (four eyes count people)")
@click.option("--valid-days", type=int, default=None, help="default 365, at most 730")
@json_option
@click.pass_context
def keys_create(
    ctx: click.Context, role: str, label: str, person: str, valid_days: int | None, as_json: bool
) -> None:
    """Issue a key to a named person; prints its secret once."""
    body: dict[str, Any] = {"role": role, "label": label, "person": person}
    if valid_days is not None:
        body["valid_days"] = valid_days
    _emit(ctx, _client(ctx).call("POST", "/keys", body), _issued, as_json=as_json)


@keys.command("revoke")
@click.argument("key_id")
@json_option
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: str, as_json: bool) -> None:
    """Revoke KEY_ID: its next request is refused (401)."""
    done = _client(ctx).call("POST", f"/keys/{_segment(key_id)}/revoke")
    _emit(ctx, done, lambda d: _fields(d, KEY_COLUMNS), as_json=as_json)


@keys.command("rotate")
@click.argument("key_id")
@click.option("--valid-days", type=int, default=None, help="default 365, at most 730")
@json_option
@click.pass_context
def keys_rotate(ctx: click.Context, key_id: str, valid_days: int | None, as_json: bool) -> None:
    """A new secret for KEY_ID's name and person; the old key is revoked."""
    body = {"valid_days": valid_days} if valid_days is not None else {}
    issued = _client(ctx).call("POST", f"/keys/{_segment(key_id)}/rotate", body)
    _emit(ctx, issued, _issued, as_json=as_json)


@click.command("plan")
@click.argument("tenant")
@click.argument("plan", type=click.Choice(list(PLANS)))
def tenants_plan(tenant: str, plan: str) -> None:
    """Operator: move TENANT to PLAN (stored plan, and its usage-plan key in AWS)."""
    from quitclaim.bootstrap import plan_service

    run_operator(lambda: plan_service().change(tenant, plan))
    click.echo(f"{tenant}: plan {plan}")
