"""``quitclaim import consents`` and ``quitclaim backlog scan``: bringing an organisation in.

Both talk to the tables and buckets the environment points at (AWS in an
operator's shell, or a ``quitclaim local up`` stack: source its env file),
like ``quitclaim enrol``. docs/import.md describes them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from cli.api_cli import api
from cli.operator import run_operator


@click.group("import")
def import_group() -> None:
    """Import existing records (a spreadsheet of signed consents)."""


@import_group.command("consents")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tenant", required=True)
@click.option(
    "--documents",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="folder of the signed documents the CSV's document column names",
)
@click.option(
    "--photos",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="folder with one folder of reference photos per person reference",
)
@click.option("--dry-run", is_flag=True, help="report per row what would happen; change nothing")
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="where the report is written (.csv or .json; default: beside the CSV)",
)
@click.option(
    "--send-confirmations",
    is_flag=True,
    help="e-mail each imported person a confirmation with a withdrawal link (off by default)",
)
@click.option("--json", "as_json", is_flag=True, help="print the whole report as JSON")
def import_consents(
    csv_file: Path,
    tenant: str,
    documents: Path | None,
    photos: Path | None,
    dry_run: bool,
    report_path: Path | None,
    send_confirmations: bool,
    as_json: bool,
) -> None:
    """Import consents from CSV_FILE (template: docs/templates/consents-import.csv)."""
    from quitclaim.adapters.import_files import FolderFiles
    from quitclaim.bootstrap import consent_import_service

    files = FolderFiles(documents_dir=documents, photos_dir=photos)
    report = run_operator(
        lambda: consent_import_service().run(
            tenant,
            csv_file.read_bytes(),
            files,
            dry_run=dry_run,
            actor="cli-import",
            notify=send_confirmations,
        )
    )
    report_path = _write_import_report(report, report_path, csv_file, dry_run=dry_run)
    if as_json:
        click.echo(report.as_json())
        return
    _show_import(report, report_path, dry_run=dry_run)


def _write_import_report(
    report: Any, report_path: Path | None, csv_file: Path, *, dry_run: bool
) -> Path:
    """The report as CSV (or JSON, by its suffix); by default beside the CSV, timestamped."""
    if report_path is None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        kind = "dry-run" if dry_run else "import"
        report_path = csv_file.with_name(f"{csv_file.stem}.{kind}-report-{stamp}.csv")
    body = report.as_json() if report_path.suffix.lower() == ".json" else report.as_csv()
    report_path.write_text(body, encoding="utf-8")
    return report_path


def _show_import(report: Any, report_path: Path, *, dry_run: bool) -> None:
    """The refused rows, the counts per action and where the report is."""
    for row in report.rows:
        if row.action == "refused":
            reasons = "; ".join(r["message"] for r in row.refusals)
            click.echo(f"line {row.line} ({row.person_ref or '-'}): refused: {reasons}")
    counts = ", ".join(f"{n} {action}" for action, n in sorted(report.counts.items()))
    mode = "dry run" if dry_run else "import"
    click.echo(f"{mode}: {len(report.rows)} rows: {counts or 'none'}")
    click.echo(f"report: {report_path}")
    click.echo(json.dumps({"counts": report.counts}))


@click.group("backlog")
def backlog_group() -> None:
    """Scan an existing library through the bulk lane (stoppable, resumable)."""


@backlog_group.command("scan")
@click.argument("source")
@click.option("--tenant", required=True)
@click.option("--name", default=None, help="the backlog's name (default: from the source)")
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="where the exception report (JSON) is written (default: backlog-<name>-report.json)",
)
@click.option("--no-wait", is_flag=True, help="feed everything, do not wait for the decisions")
def backlog_scan(
    source: str, tenant: str, name: str | None, report_path: Path | None, no_wait: bool
) -> None:
    """Feed every image of SOURCE (s3://bucket/prefix or a folder) through the bulk lane.

    Ctrl-C stops after the image being fed; run the same command again to
    resume where it stopped. Exits 1 if an image is unaccounted for.
    """
    import signal
    import sys

    from quitclaim.bootstrap import backlog_service, backlog_source
    from quitclaim.domain.backlog import Progress, backlog_name

    name = name or backlog_name(source)
    stopping = {"asked": False}

    def ask_stop(signum: int, frame: object) -> None:
        if stopping["asked"]:
            raise KeyboardInterrupt
        stopping["asked"] = True
        click.echo("\nstopping after this image (Ctrl-C again to abort)", err=True)

    def show(progress: Progress) -> None:
        sys.stderr.write("\r" + progress.line() + "   ")
        sys.stderr.flush()

    previous = signal.signal(signal.SIGINT, ask_stop)
    try:
        report = run_operator(
            lambda: backlog_service().run(
                tenant,
                name,
                backlog_source(source),
                stop=lambda: stopping["asked"],
                progress=show,
                drain=not no_wait,
            )
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    sys.stderr.write("\n")
    report_path = report_path or Path(f"backlog-{name}-report.json")
    report_path.write_text(json.dumps(report.as_dict(), indent=2), encoding="utf-8")
    _show_backlog(name, report, report_path)


def _show_backlog(name: str, report: Any, report_path: Path) -> None:
    """The run's totals and first exceptions; exits 1 if an image is unaccounted for."""
    click.echo(
        f"{name}: {report.state}; {report.fed}/{report.listed_images} fed, "
        f"{report.waiting} waiting, decisions {report.decisions}, "
        f"{len(report.exceptions)} exceptions, ${report.cost_usd:.4f}"
    )
    for row in report.exceptions[:20]:
        click.echo(f"  {row['status']:11} {','.join(row['reasons']) or '-':30} {row['path']}")
    if len(report.exceptions) > 20:
        click.echo(f"  ... {len(report.exceptions) - 20} more in the report")
    click.echo(f"report: {report_path}")
    if report.state == "stopped":
        click.echo("stopped: run the same command again to resume")
    if report.unaccounted or report.decided_twice:
        click.echo(f"UNACCOUNTED: {report.unaccounted} twice: {report.decided_twice}", err=True)
        raise SystemExit(1)


@click.group("import")
def api_import_group() -> None:
    """Import existing consents through the HTTP API (files by presigned upload)."""


@api_import_group.command("consents")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--documents", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None
)
@click.option(
    "--photos", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None
)
@click.option("--dry-run", is_flag=True, help="report per row what would happen; change nothing")
@click.pass_context
def api_import_consents(
    ctx: click.Context,
    csv_file: Path,
    documents: Path | None,
    photos: Path | None,
    dry_run: bool,
) -> None:
    """POST /imports/consents: the documents and photos the CSV names are uploaded first."""
    from cli.api_client import _client
    from quitclaim.adapters.import_files import PHOTO_SUFFIXES
    from quitclaim.domain.consent_import import ImportFileInvalid, decode, parse_csv

    client = _client(ctx)
    data = csv_file.read_bytes()
    try:
        text, _ = decode(data)
        parsed = parse_csv(data)
    except ImportFileInvalid as exc:
        raise click.ClickException(str(exc)) from None
    rows = [line.row for line in parsed.lines if line.row is not None]
    named = sorted({r.document for r in rows if r.document})
    docs = [n for n in named if documents is not None and (documents / n).is_file()]
    pictures: dict[str, list[str]] = {}
    for ref in sorted({r.person_ref for r in rows if r.biometric_consent}):
        folder = photos / ref if photos is not None else None
        if folder is not None and folder.is_dir():
            pictures[ref] = sorted(
                p.name for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES
            )
    body: dict[str, object] = {"csv": text, "dry_run": dry_run}
    if docs or pictures:
        staged = client.call(
            "POST", "/imports/consents/uploads", {"documents": docs, "photos": pictures}
        )
        sends = [(documents / n, url) for n, url in staged["documents"].items() if documents]
        for ref, urls in staged["photos"].items():
            sends += [(photos / ref / n, url) for n, url in urls.items() if photos]
        _upload(sends)
        body["import_id"] = staged["import_id"]
    report = client.call("POST", "/imports/consents", body)
    click.echo(json.dumps(report, indent=2))


def _upload(sends: list[tuple[Path, str]]) -> None:
    """PUT each file to its presigned URL (the API's, never user input)."""
    import urllib.request

    for path, url in sends:
        request = urllib.request.Request(  # noqa: S310 - the API's presigned URL
            url,
            data=path.read_bytes(),
            headers={"Content-Type": "application/octet-stream"},
            method="PUT",
        )
        with urllib.request.urlopen(request, timeout=120):  # noqa: S310
            pass


api.add_command(api_import_group)  # `quitclaim api import consents`
