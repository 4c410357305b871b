"""``quitclaim requests list``: a person's own access and erasure requests.

One HTTP call to ``GET /person-requests`` with the key as a Bearer token, as
``quitclaim api`` does ($QUITCLAIM_URL, $QUITCLAIM_KEY); the nearest deadline
first. The e-mail addresses are shown: the officer answers them.
"""

from __future__ import annotations

import click

from cli.api_client import ApiClient, _emit, _table, json_option

REQUEST_COLUMNS = (
    "request_id",
    "kind",
    "status",
    "deadline",
    "verified_at",
    "email",
    "subject_ids",
)


@click.group("requests")
@click.option("--base-url", envvar="QUITCLAIM_URL", default=None, help="API base URL")
@click.option("--key", envvar="QUITCLAIM_KEY", default=None, help="API key")
@click.pass_context
def requests(ctx: click.Context, base_url: str | None, key: str | None) -> None:
    """People's access (Art. 15) and erasure (Art. 17) requests."""
    ctx.obj = {"base_url": base_url, "key": key, "as_json": False}


@requests.command("list")
@json_option
@click.pass_context
def requests_list(ctx: click.Context, as_json: bool) -> None:
    """Verified requests with their one-month deadlines (nearest first)."""
    options = ctx.obj or {}
    if not options.get("base_url"):
        raise click.UsageError("no API URL: pass --base-url or set QUITCLAIM_URL")
    if not options.get("key"):
        raise click.UsageError("no API key: pass --key or set QUITCLAIM_KEY")
    found = ApiClient(options["base_url"], options["key"]).call("GET", "/person-requests")
    _emit(ctx, found, lambda p: _table(p["items"], REQUEST_COLUMNS), as_json=as_json)
