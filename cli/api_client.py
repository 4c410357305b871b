"""The HTTP API's client for the ``quitclaim`` commands: one call, its errors, and how
an answer is shown (a readable table, or the API's JSON with ``--json``)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import click

TIMEOUT_S = 120  # enrolment scans photos; generous, but never forever


@dataclass(frozen=True)
class ApiClient:
    base_url: str
    key: str | None

    def call(self, method: str, path: str, body: Any = None, **query: Any) -> Any:
        """One request; the decoded JSON answer (``None`` for 204). Raises ``ClickException``."""
        params = {k: v for k, v in query.items() if v is not None}
        url = self.base_url.rstrip("/") + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        if not url.startswith(("http://", "https://")):
            raise click.UsageError(f"--base-url must be an http(s) URL, not {self.base_url!r}")
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise click.ClickException(_describe_error(exc.code, exc.read())) from None
        except urllib.error.URLError as exc:
            raise click.ClickException(f"cannot reach {self.base_url}: {exc.reason}") from None
        return json.loads(raw) if raw else None


def _describe_error(status: int, raw: bytes) -> str:
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and "error" in payload:
        field = f" (field: {payload['field']})" if payload.get("field") else ""
        return f"HTTP {status} {payload['error']}: {payload.get('message', '')}{field}"
    return f"HTTP {status}"


# ------------------------------------------------------------------ output


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(_cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _fields(record: dict[str, Any], names: Sequence[str]) -> str:
    width = max(len(n) for n in names)
    return "\n".join(f"{n.ljust(width)}  {_cell(record.get(n))}" for n in names)


def _emit(ctx: click.Context, payload: Any, render: Callable[[Any], str], *, as_json: bool) -> None:
    if as_json or _options(ctx).get("as_json"):
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(render(payload))


json_option = click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")


def _options(ctx: click.Context) -> dict[str, Any]:
    found = ctx.find_object(dict)
    return found if found is not None else {}


def _client(ctx: click.Context) -> ApiClient:
    options = _options(ctx)
    if not options.get("base_url"):
        raise click.UsageError("no API URL: pass --base-url or set QUITCLAIM_URL")
    if not options.get("key"):
        raise click.UsageError("no API key: pass --key or set QUITCLAIM_KEY")
    return ApiClient(options["base_url"], options["key"])


def _segment(value: str) -> str:
    """An id as one URL path segment (never a path of its own)."""
    return urllib.parse.quote(value, safe="")
