"""``quitclaim api webhooks ...``: inbound sources (marketing tools) and outbound
endpoints (DAM, CRM), their deliveries, retries and replays, over the HTTP API."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from cli.api_client import _client, _emit, _fields, _segment, _table, json_option

SOURCE_COLUMNS = ("name", "default_validity_days", "created_at", "rotated_at")
ENDPOINT_COLUMNS = ("endpoint_id", "url", "event_types", "created_at", "rotated_at")
INBOUND_COLUMNS = (
    "delivery_id",
    "status",
    "action",
    "reason",
    "field",
    "subject_id",
    "received_at",
)
OUTBOUND_COLUMNS = (
    "delivery_id",
    "status",
    "event_type",
    "endpoint_id",
    "attempts",
    "last_error",
    "next_attempt_at",
)


@click.group("webhooks")
def webhooks() -> None:
    """Inbound sources (marketing tools) and outbound endpoints (DAM, CRM)."""


@webhooks.command("add-source")
@click.argument("name")
@click.option("--preset", default=None, help="generic-form, crm-contact-property, ...")
@click.option(
    "--mapping",
    "mapping_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="a JSON mapping file (instead of --preset)",
)
@click.option("--validity-days", type=int, default=365, show_default=True)
@click.option(
    "--dialect",
    type=click.Choice(["standard", "hubspot", "mailchimp", "typeform"]),
    default="standard",
    show_default=True,
    help="how the tool signs and frames its requests (docs/webhooks.md)",
)
@click.option(
    "--secret-stdin",
    is_flag=True,
    help="read the tool's own secret (HubSpot client secret, Typeform secret) from stdin",
)
@json_option
@click.pass_context
def webhooks_add_source(
    ctx: click.Context,
    name: str,
    preset: str | None,
    mapping_file: Path | None,
    validity_days: int,
    dialect: str,
    secret_stdin: bool,
    as_json: bool,
) -> None:
    """Register a source; prints its URL path and signing secret (shown once)."""
    body: dict[str, Any] = {
        "name": name,
        "default_validity_days": validity_days,
        "dialect": dialect,
    }
    if secret_stdin:
        body["secret"] = sys.stdin.read().strip()
    if preset:
        body["preset"] = preset
    if mapping_file:
        body["mapping"] = json.loads(mapping_file.read_text(encoding="utf-8"))
    created = _client(ctx).call("POST", "/webhook-sources", body)
    _emit(ctx, created, _source_created, as_json=as_json)


def _source_created(created: dict[str, Any]) -> str:
    """The source's URL path, and its secret when Quitclaim made it (shown once)."""
    if created["secret"]:
        line = f"secret {created['secret']}  (shown once; store it in the tool)"
    else:
        line = "secret: the tool's own (stored, never shown)"
    return f"POST {created['url_path']}\n{line}"


@webhooks.command("sources")
@json_option
@click.pass_context
def webhooks_sources(ctx: click.Context, as_json: bool) -> None:
    """List inbound sources."""
    found = _client(ctx).call("GET", "/webhook-sources")
    _emit(ctx, found, lambda f: _table(f["items"], SOURCE_COLUMNS), as_json=as_json)


@webhooks.command("inbound")
@click.argument("source")
@click.option(
    "--status", type=click.Choice(["queued", "applied", "ignored", "parked", "dismissed"])
)
@json_option
@click.pass_context
def webhooks_inbound(ctx: click.Context, source: str, status: str | None, as_json: bool) -> None:
    """A source's deliveries (``--status parked``: those waiting for review)."""
    found = _client(ctx).call(
        "GET", f"/webhook-sources/{_segment(source)}/deliveries", status=status
    )
    _emit(ctx, found, lambda f: _table(f["items"], INBOUND_COLUMNS), as_json=as_json)


@webhooks.command("retry-inbound")
@click.argument("source")
@click.argument("delivery_id")
@json_option
@click.pass_context
def webhooks_retry_inbound(
    ctx: click.Context, source: str, delivery_id: str, as_json: bool
) -> None:
    """Apply a parked delivery again (after registering the person, say)."""
    path = f"/webhook-sources/{_segment(source)}/deliveries/{_segment(delivery_id)}/retry"
    done = _client(ctx).call("POST", path)
    _emit(ctx, done, lambda d: _fields(d, INBOUND_COLUMNS), as_json=as_json)


@webhooks.command("add-endpoint")
@click.argument("url")
@click.option("--event", "event_types", multiple=True, help="repeatable; none: every event")
@click.option("--description", default="")
@json_option
@click.pass_context
def webhooks_add_endpoint(
    ctx: click.Context, url: str, event_types: Sequence[str], description: str, as_json: bool
) -> None:
    """Register a receiver; prints its id and signing secret (shown once)."""
    body = {"url": url, "event_types": list(event_types), "description": description}
    created = _client(ctx).call("POST", "/webhook-endpoints", body)
    _emit(
        ctx,
        created,
        lambda c: f"{c['endpoint']['endpoint_id']}\nsecret {c['secret']}  (shown once)",
        as_json=as_json,
    )


@webhooks.command("endpoints")
@json_option
@click.pass_context
def webhooks_endpoints(ctx: click.Context, as_json: bool) -> None:
    """List outbound endpoints."""
    found = _client(ctx).call("GET", "/webhook-endpoints")
    _emit(ctx, found, lambda f: _table(f["items"], ENDPOINT_COLUMNS), as_json=as_json)


@webhooks.command("rotate")
@click.argument("kind", type=click.Choice(["source", "endpoint"]))
@click.argument("name")
@click.option("--overlap-hours", type=float, default=24, show_default=True)
@json_option
@click.pass_context
def webhooks_rotate(
    ctx: click.Context, kind: str, name: str, overlap_hours: float, as_json: bool
) -> None:
    """A new signing secret; the old one keeps working for the overlap."""
    base = "/webhook-sources" if kind == "source" else "/webhook-endpoints"
    issued = _client(ctx).call(
        "POST", f"{base}/{_segment(name)}/rotate", {"overlap_hours": overlap_hours}
    )
    _emit(
        ctx,
        issued,
        lambda i: f"secret {i['secret']}  (old one valid until {i['previous_valid_until']})",
        as_json=as_json,
    )


@webhooks.command("deliveries")
@click.option("--status", type=click.Choice(["pending", "retrying", "delivered", "dead"]))
@click.option("--endpoint", "endpoint_id", default=None)
@json_option
@click.pass_context
def webhooks_deliveries(
    ctx: click.Context, status: str | None, endpoint_id: str | None, as_json: bool
) -> None:
    """Outbound deliveries (``--status dead``: the dead-letter list)."""
    found = _client(ctx).call("GET", "/webhook-deliveries", status=status, endpoint_id=endpoint_id)
    _emit(ctx, found, lambda f: _table(f["items"], OUTBOUND_COLUMNS), as_json=as_json)


@webhooks.command("replay")
@click.argument("delivery_id")
@json_option
@click.pass_context
def webhooks_replay(ctx: click.Context, delivery_id: str, as_json: bool) -> None:
    """Send a dead (or delivered) event again, with the same webhook-id."""
    done = _client(ctx).call("POST", f"/webhook-deliveries/{_segment(delivery_id)}/replay")
    _emit(ctx, done, lambda d: _fields(d, OUTBOUND_COLUMNS), as_json=as_json)
