"""``quitclaim api ...``: the HTTP API from the command line (local stack or AWS).

    export QUITCLAIM_URL=http://127.0.0.1:8000 QUITCLAIM_KEY=qc_...
    quitclaim api subjects create --name "A. Person"
    quitclaim api subjects list --json

Every command here is one HTTP call with the key as a Bearer token (stdlib
``urllib``, nothing else to install; ``cli.api_client``). Output is a readable
table, or the API's JSON with ``--json``. The group also holds ``tenants``
(the operator's, direct to the tables: ``cli.tenants_cli``), ``webhooks``
(``cli.webhooks_cli``) and ``audits`` (``cli.audit_api_cli``), added by ``cli.main``.
"""

from __future__ import annotations

import base64
import json
import mimetypes
from pathlib import Path
from typing import Any

import click

from cli.api_client import (
    _client,
    _emit,
    _fields,
    _segment,
    _table,
    json_option,
)

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


@click.group("api")
@click.option("--base-url", envvar="QUITCLAIM_URL", default=None, help="API base URL")
@click.option("--key", envvar="QUITCLAIM_KEY", default=None, help="API key")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@click.pass_context
def api(ctx: click.Context, base_url: str | None, key: str | None, as_json: bool) -> None:
    """The HTTP API ($QUITCLAIM_URL, $QUITCLAIM_KEY)."""
    ctx.obj = {"base_url": base_url, "key": key, "as_json": as_json}


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
