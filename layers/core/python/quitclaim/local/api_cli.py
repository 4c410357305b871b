"""``quitclaim api ...``: the HTTP API from the command line (local stack or AWS).

    export QUITCLAIM_URL=http://127.0.0.1:8000 QUITCLAIM_KEY=qc_...
    quitclaim api subjects create --name "A. Person"
    quitclaim api subjects list --json

Every command but ``tenants create`` and ``tenants delete`` is one HTTP call
with the key as a Bearer token (stdlib ``urllib``, nothing else to install).
Output is a readable table, or the API's JSON with ``--json``. The ``tenants``
commands are the operator's: they talk to the tables and buckets directly
(there is no key yet, or no longer); ``create`` prints the first admin key.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from quitclaim.domain.tenancy import DEFAULT_PLAN, PLANS

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


SUBJECT_COLUMNS = ("subject_id", "display_name", "external_ref", "templates", "date_of_birth")
CONSENT_COLUMNS = ("consent_id", "status", "purposes", "valid_from", "expires_at", "revoked_at")
ASSET_COLUMNS = ("asset_id", "status", "reasons", "path", "decided_at")
EXPORT_COLUMNS = ("request_id", "subject_id", "filename", "sha256", "written_to")
APPEARANCE_COLUMNS = ("asset_id", "status", "path", "location")


def _asset_detail(asset: dict[str, Any]) -> str:
    head = _fields(asset, ("asset_id", "status", "reasons", "path", "purpose", "decided_at"))
    faces = [{"face": i, **face} for i, face in enumerate(asset.get("faces") or [])]
    face_table = _table(faces, ("face", "box", "subject_id", "consent_id", "verdict", "reason"))
    review = asset.get("review") or {}
    note = "".join(
        f"\n{what} requested by {p.get('person') or p['by']}; a second person must confirm"
        for what, p in (
            ("release", review.get("pending_release")),
            ("redaction", review.get("pending_redaction")),
            ("reassignment", review.get("pending_reassign")),
        )
        if p
    )
    return f"{head}\n\nfaces:\n{face_table}{note}"


def _page_footer(page: dict[str, Any]) -> str:
    cursor = page.get("next_cursor")
    return f"\nmore: --cursor {cursor}" if cursor else ""


# ------------------------------------------------------------------ commands

json_option = click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")


@click.group("api")
@click.option("--base-url", envvar="QUITCLAIM_URL", default=None, help="API base URL")
@click.option("--key", envvar="QUITCLAIM_KEY", default=None, help="API key")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@click.pass_context
def api(ctx: click.Context, base_url: str | None, key: str | None, as_json: bool) -> None:
    """The HTTP API ($QUITCLAIM_URL, $QUITCLAIM_KEY)."""
    ctx.obj = {"base_url": base_url, "key": key, "as_json": as_json}


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


# -- tenants (operator) ---------------------------------------------------------


@api.group()
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
    from quitclaim.domain.models import TenantPolicy

    s = get_settings()
    policy = TenantPolicy(
        tenant=tenant,
        match_threshold=threshold if threshold is not None else s.default_threshold,
        match_margin=s.default_margin,
        min_face_px=s.default_min_face_px,
        default_purpose=default_purpose or s.default_purpose,
    )
    issued = run_operator(
        lambda: onboarding_service().create_tenant(
            tenant,
            label=label,
            name=name,
            region=region if region is not None else s.region,
            plan=plan,
            contact_email=contact_email,
            policy=policy,
        )
    )
    chosen = PLANS[plan]
    payload = {
        "tenant": issued.tenant,
        "name": name.strip(),
        "region": (region or s.region).strip().lower(),
        "plan": chosen.name,
        "images_per_month": chosen.images_per_month,
        "api_rate_per_second": chosen.api_rate_per_second,
        "api_burst": chosen.api_burst,
        "key_id": issued.key_id,
        "role": str(issued.role),
        "label": issued.label,
        "secret": issued.secret,
    }
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


T = TypeVar("T")


def run_operator(action: Callable[[], T]) -> T:
    """Run an operator action; a ``QuitclaimError`` becomes a message naming its field."""
    import quitclaim.bootstrap  # noqa: F401 - wires the audit sink (the tenants' chains)
    from quitclaim.domain.errors import QuitclaimError
    from quitclaim.observability import audit_block

    try:
        # A command that changes the registry audits like a handler invocation:
        # its events are chained (one block per command) before it says done.
        with audit_block(f"cli/{uuid.uuid4().hex}"):
            return action()
    except QuitclaimError as exc:
        field = getattr(exc, "field", None)
        where = f" (field: {field})" if field else ""
        raise click.ClickException(f"{exc.code}: {exc.message}{where}") from None


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
    from datetime import timedelta

    from quitclaim.bootstrap import offboarding_service

    service = offboarding_service()
    if not purge:
        if early or confirmed:
            raise click.UsageError("--now and --yes-delete-everything go with --purge")
        profile = run_operator(lambda: service.start(tenant, grace=timedelta(days=grace_days)))
        payload = {
            "tenant": profile.tenant,
            "state": profile.state.value,
            "purge_after": profile.purge_after.isoformat() if profile.purge_after else None,
            "keys": "revoked",
            "uploads": "kept, not scanned",
        }
        _emit(ctx, payload, lambda p: _fields(p, tuple(p)), as_json=as_json)
        return
    if early and not confirmed:
        raise click.UsageError("--now erases before the grace period: add --yes-delete-everything")
    report = run_operator(lambda: service.purge(tenant, early=early))
    out = report_path or Path(f"offboarding-{tenant}.json")
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
    if not report.complete:
        raise SystemExit(1)


# -- subjects --------------------------------------------------------------------


@api.group()
def subjects() -> None:
    """People and their reference photos."""


@subjects.command("create")
@click.option("--name", "display_name", required=True)
@click.option("--ref", "external_ref", default=None, help="your system's id for the person")
@click.option("--email", default=None)
@click.option("--born", "date_of_birth", default=None, help="date of birth, YYYY-MM-DD")
@click.option("--guardian", "guardian_name", default=None, help="guardian's name (minors)")
@click.option("--guardian-email", default=None)
@click.option("--guardian-relation", default=None)
@json_option
@click.pass_context
def subjects_create(
    ctx: click.Context,
    display_name: str,
    external_ref: str | None,
    email: str | None,
    date_of_birth: str | None,
    guardian_name: str | None,
    guardian_email: str | None,
    guardian_relation: str | None,
    as_json: bool,
) -> None:
    """Register a person."""
    body: dict[str, Any] = {"display_name": display_name}
    optional = {"external_ref": external_ref, "email": email, "date_of_birth": date_of_birth}
    body.update({k: v for k, v in optional.items() if v is not None})
    if guardian_name:
        guardian = {"name": guardian_name, "email": guardian_email, "relation": guardian_relation}
        body["guardian"] = {k: v for k, v in guardian.items() if v is not None}
    subject = _client(ctx).call("POST", "/subjects", body)
    _emit(ctx, subject, lambda s: _fields(s, SUBJECT_COLUMNS), as_json=as_json)


@subjects.command("list")
@click.option("--limit", type=int, default=None)
@click.option("--cursor", default=None)
@json_option
@click.pass_context
def subjects_list(ctx: click.Context, limit: int | None, cursor: str | None, as_json: bool) -> None:
    """List people (one page)."""
    page = _client(ctx).call("GET", "/subjects", limit=limit, cursor=cursor)
    _emit(
        ctx,
        page,
        lambda p: _table(p["items"], SUBJECT_COLUMNS) + _page_footer(p),
        as_json=as_json,
    )


@subjects.command("get")
@click.argument("subject_id")
@json_option
@click.pass_context
def subjects_get(ctx: click.Context, subject_id: str, as_json: bool) -> None:
    """Show one person."""
    subject = _client(ctx).call("GET", f"/subjects/{_segment(subject_id)}")
    names = (*SUBJECT_COLUMNS, "email", "guardian", "created_at", "updated_at")
    _emit(ctx, subject, lambda s: _fields(s, names), as_json=as_json)


@subjects.command("enrol")
@click.argument("subject_id")
@click.argument(
    "photos", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--biometric-consent",
    is_flag=True,
    help="the person gave explicit consent to biometric matching (required; recorded)",
)
@json_option
@click.pass_context
def subjects_enrol(
    ctx: click.Context,
    subject_id: str,
    photos: tuple[Path, ...],
    biometric_consent: bool,
    as_json: bool,
) -> None:
    """Enrol reference PHOTOS (exactly one face each) for SUBJECT_ID."""
    encoded = [base64.b64encode(p.read_bytes()).decode() for p in photos]
    body = {"photos": encoded, "biometric_consent": biometric_consent}
    subject = _client(ctx).call("POST", f"/subjects/{_segment(subject_id)}/photos", body)
    _emit(ctx, subject, lambda s: _fields(s, SUBJECT_COLUMNS), as_json=as_json)


@subjects.command("export")
@click.argument("subject_id")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="where to write the ZIP",
)
@json_option
@click.pass_context
def subjects_export(ctx: click.Context, subject_id: str, out: Path, as_json: bool) -> None:
    """Everything held about SUBJECT_ID (GDPR Art. 15), as a ZIP written to --out."""
    export = _client(ctx).call("GET", f"/subjects/{_segment(subject_id)}/export")
    data = base64.b64decode(export["export_base64"])
    out.write_bytes(data)
    summary = {k: v for k, v in export.items() if k != "export_base64"}
    summary["written_to"] = str(out)
    _emit(
        ctx,
        summary,
        lambda e: _fields({**e, **e["counts"]}, (*EXPORT_COLUMNS, *sorted(e["counts"]))),
        as_json=as_json,
    )


@subjects.command("search")
@click.argument("photo", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
@click.pass_context
def subjects_search(ctx: click.Context, photo: Path, as_json: bool) -> None:
    """Where does the person in PHOTO (one face) appear? The photo is not stored."""
    body = {"photo_base64": base64.b64encode(photo.read_bytes()).decode()}
    found = _client(ctx).call("POST", "/appearances/search", body)
    _emit(
        ctx,
        found,
        lambda f: (
            f"{_fields(f, ('request_id', 'subject_id', 'distance', 'template_stored'))}\n\n"
            + _table(f["appearances"], APPEARANCE_COLUMNS)
        ),
        as_json=as_json,
    )


@subjects.command("erase")
@click.argument("subject_id")
@json_option
@click.pass_context
def subjects_erase(ctx: click.Context, subject_id: str, as_json: bool) -> None:
    """Erase SUBJECT_ID (GDPR Art. 17) and print the completeness report."""
    report = _client(ctx).call("POST", f"/subjects/{_segment(subject_id)}/erase")
    _emit(ctx, report, _erasure_report, as_json=as_json)


@subjects.command("erasure")
@click.argument("subject_id")
@json_option
@click.pass_context
def subjects_erasure(ctx: click.Context, subject_id: str, as_json: bool) -> None:
    """Verify a past erasure of SUBJECT_ID again, store by store."""
    status = _client(ctx).call("GET", f"/subjects/{_segment(subject_id)}/erasure")
    _emit(ctx, status, _erasure_report, as_json=as_json)


@subjects.command("retain")
@click.argument("subject_id")
@click.option("--until", "until", required=True, help="YYYY-MM-DD or ISO 8601 (UTC)")
@click.pass_context
def subjects_retain(ctx: click.Context, subject_id: str, until: str) -> None:
    """Set SUBJECT_ID's end of retention: record and templates deleted then (docs/retention.md)."""
    _client(ctx).call("PUT", f"/subjects/{_segment(subject_id)}/retention", {"until": until})
    click.echo(f"{subject_id} retained until {until}")


def _erasure_report(report: dict[str, Any]) -> str:
    report = {**report, **(report.get("report") or {})}
    check = report["verification"]
    lines = [
        _fields(report, ("subject_id", "request_id", "erased_at", "actor")),
        "",
        "deleted:",
        _table(report.get("deleted") or [], ("store", "action", "what", "count")),
        "",
        "kept:",
        _table(report.get("kept") or [], ("store", "what", "count")),
        "",
        f"verification ({'complete' if check['ok'] else 'INCOMPLETE'}):",
        _table(check["checks"], ("store", "ok", "detail")),
    ]
    return "\n".join(lines)


# -- consents --------------------------------------------------------------------


@api.group()
def consents() -> None:
    """Portrait consents (quitclaims)."""


@consents.command("grant")
@click.argument("subject_id")
@click.option("--purpose", "purposes", multiple=True, required=True, help="repeatable")
@click.option("--valid-from", required=True, help="YYYY-MM-DD or ISO 8601 date-time")
@click.option("--expires-at", default=None, help="YYYY-MM-DD or ISO 8601 (default: open-ended)")
@click.option("--signer", required=True, help="who signed (the subject or their guardian)")
@click.option("--form-version", default="v1", show_default=True)
@click.option(
    "--document",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="the signed form (PDF, JPEG or PNG)",
)
@json_option
@click.pass_context
def consents_grant(
    ctx: click.Context,
    subject_id: str,
    purposes: tuple[str, ...],
    valid_from: str,
    expires_at: str | None,
    signer: str,
    form_version: str,
    document: Path | None,
    as_json: bool,
) -> None:
    """Record a signed quitclaim for SUBJECT_ID."""
    body: dict[str, Any] = {
        "purposes": list(purposes),
        "valid_from": valid_from,
        "expires_at": expires_at,
        "signer": signer,
        "form_version": form_version,
    }
    if document is not None:
        body["document_base64"] = base64.b64encode(document.read_bytes()).decode()
        body["document_type"] = mimetypes.guess_type(document.name)[0] or "application/pdf"
    consent = _client(ctx).call("POST", f"/subjects/{_segment(subject_id)}/consents", body)
    _emit(ctx, consent, lambda c: _fields(c, CONSENT_COLUMNS), as_json=as_json)


@consents.command("list")
@click.argument("subject_id")
@json_option
@click.pass_context
def consents_list(ctx: click.Context, subject_id: str, as_json: bool) -> None:
    """A person's consents."""
    found = _client(ctx).call("GET", f"/subjects/{_segment(subject_id)}/consents")
    _emit(ctx, found, lambda p: _table(p["items"], CONSENT_COLUMNS), as_json=as_json)


@consents.command("revoke")
@click.argument("subject_id")
@click.argument("consent_id")
@json_option
@click.pass_context
def consents_revoke(ctx: click.Context, subject_id: str, consent_id: str, as_json: bool) -> None:
    """Withdraw a consent now; images depending on it leave the library."""
    path = f"/subjects/{_segment(subject_id)}/consents/{_segment(consent_id)}/revoke"
    consent = _client(ctx).call("POST", path, {})
    _emit(ctx, consent, lambda c: _fields(c, CONSENT_COLUMNS), as_json=as_json)


@consents.command("renew")
@click.argument("subject_id")
@click.argument("consent_id")
@click.option("--expires-at", required=True, help='YYYY-MM-DD, ISO 8601, or "none"')
@click.option("--valid-from", default=None)
@json_option
@click.pass_context
def consents_renew(
    ctx: click.Context,
    subject_id: str,
    consent_id: str,
    expires_at: str,
    valid_from: str | None,
    as_json: bool,
) -> None:
    """Give a consent a new validity window."""
    body: dict[str, Any] = {"expires_at": None if expires_at.lower() == "none" else expires_at}
    if valid_from is not None:
        body["valid_from"] = valid_from
    path = f"/subjects/{_segment(subject_id)}/consents/{_segment(consent_id)}/renew"
    consent = _client(ctx).call("POST", path, body)
    _emit(ctx, consent, lambda c: _fields(c, CONSENT_COLUMNS), as_json=as_json)


# -- assets ----------------------------------------------------------------------


@api.group()
def assets() -> None:
    """Scanned images and the review queue."""


@assets.command("list")
@click.option(
    "--status",
    type=click.Choice(["quarantined", "approved", "rejected", "deleted", "held", "all"]),
    default=None,
    help="default: quarantined (the review queue)",
)
@click.option("--reason", default=None)
@click.option("--subject", default=None)
@click.option("--since", default=None)
@click.option("--until", default=None)
@click.option("--limit", type=int, default=None)
@click.option("--cursor", default=None)
@json_option
@click.pass_context
def assets_list(
    ctx: click.Context,
    status: str | None,
    reason: str | None,
    subject: str | None,
    since: str | None,
    until: str | None,
    limit: int | None,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List assets (one page)."""
    page = _client(ctx).call(
        "GET",
        "/assets",
        status=status,
        reason=reason,
        subject=subject,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )
    _emit(ctx, page, lambda p: _table(p["items"], ASSET_COLUMNS) + _page_footer(p), as_json=as_json)


@assets.command("get")
@click.argument("asset_id")
@json_option
@click.pass_context
def assets_get(ctx: click.Context, asset_id: str, as_json: bool) -> None:
    """One asset with its faces and reasons."""
    asset = _client(ctx).call("GET", f"/assets/{_segment(asset_id)}")
    _emit(ctx, asset, _asset_detail, as_json=as_json)


def _review_command(action: str, help_text: str) -> None:
    @assets.command(action, help=help_text)
    @click.argument("asset_id")
    @click.option("--justification", "-j", required=True, help="recorded in the audit trail")
    @json_option
    @click.pass_context
    def command(ctx: click.Context, asset_id: str, justification: str, as_json: bool) -> None:
        path = f"/assets/{_segment(asset_id)}/{action}"
        asset = _client(ctx).call("POST", path, {"justification": justification})
        _emit(ctx, asset, _asset_detail, as_json=as_json)


_review_command("release", "Ask for (or, as a second reviewer, confirm) a release.")
_review_command("keep", "Keep an asset in quarantine.")
_review_command(
    "redact",
    "Ask for (or, as a second person, confirm) a variant with the faces lacking consent pixelated.",
)


# -- usage -------------------------------------------------------------------------


@api.command("usage")
@click.option("--month", default=None, help="UTC month YYYY-MM (default: this one)")
@click.option("--csv", "as_csv", is_flag=True, help="month,tenant,unit,quantity rows")
@json_option
@click.pass_context
def usage(ctx: click.Context, month: str | None, as_csv: bool, as_json: bool) -> None:
    """The key's tenant's billable usage in one UTC month."""
    from quitclaim.domain.usage import UsageReport, usage_csv

    found = _client(ctx).call("GET", "/usage", month=month)
    if as_csv:
        click.echo(usage_csv(UsageReport(**found)), nl=False)
        return
    _emit(
        ctx,
        found,
        lambda r: _table(
            [{"unit": unit, "quantity": qty} for unit, qty in r["units"].items()],
            ["unit", "quantity"],
        ),
        as_json=as_json,
    )


# -- records of processing ---------------------------------------------------------


@api.command("records")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="directory for records-of-processing.json and dpia.md",
)
@json_option
@click.pass_context
def records(ctx: click.Context, out: Path, as_json: bool) -> None:
    """Records of processing (GDPR Art. 30) and a DPIA starter, pre-filled."""
    found = _client(ctx).call("GET", "/records-of-processing")
    out.mkdir(parents=True, exist_ok=True)
    (out / "records-of-processing.json").write_text(
        json.dumps(found["record"], indent=2), encoding="utf-8"
    )
    (out / "dpia.md").write_text(found["dpia_markdown"], encoding="utf-8")
    totals = found["record"]["volumes"]["total"]
    _emit(
        ctx,
        {"tenant": found["tenant"], "written_to": str(out), **totals},
        lambda t: _fields(t, list(t)),
        as_json=as_json,
    )


# -- policy ----------------------------------------------------------------------


@api.group()
def policy() -> None:
    """The tenant's policy."""


@policy.command("get")
@json_option
@click.pass_context
def policy_get(ctx: click.Context, as_json: bool) -> None:
    """Show the tenant policy."""
    current = _client(ctx).call("GET", "/policy")
    _emit(ctx, current, lambda p: _fields(p, sorted(p)), as_json=as_json)


@policy.command("retention")
@click.option("--quarantine-days", type=int, default=None, help="photos of unknown people (0: off)")
@click.option("--rejected-days", type=int, default=None, help="rejected uploads (0: off)")
@click.option("--digest", type=click.Choice(["daily", "weekly", "off"]), default=None)
@json_option
@click.pass_context
def policy_retention(
    ctx: click.Context,
    quarantine_days: int | None,
    rejected_days: int | None,
    digest: str | None,
    as_json: bool,
) -> None:
    """Set the retention days and the digest cadence (docs/retention.md)."""
    changes: dict[str, Any] = {
        k: v
        for k, v in (
            ("quarantine_retention_days", quarantine_days),
            ("rejected_retention_days", rejected_days),
            ("digest", digest),
        )
        if v is not None
    }
    if not changes:
        raise click.UsageError("give --quarantine-days, --rejected-days or --digest")
    updated = _client(ctx).call("PATCH", "/policy", changes)
    _emit(ctx, updated, lambda p: _fields(p, sorted(changes)), as_json=as_json)


# -- webhooks ----------------------------------------------------------------------

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


@api.group()
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
    _emit(
        ctx,
        created,
        lambda c: (
            f"POST {c['url_path']}\n"
            + (
                f"secret {c['secret']}  (shown once; store it in the tool)"
                if c["secret"]
                else "secret: the tool's own (stored, never shown)"
            )
        ),
        as_json=as_json,
    )


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


def _segment(value: str) -> str:
    """An id as one URL path segment (never a path of its own)."""
    return urllib.parse.quote(value, safe="")
