"""``quitclaim api audits``: the accuracy audit as an API job (docs/accuracy-audit.md).

``accuracy`` stages the labels and the photos they name through presigned
uploads and starts the job (the API answers 202 at once); ``status`` reads the
job back and, when done, can write its report JSON.
"""

from __future__ import annotations

import csv
import io
import json
import urllib.request
from pathlib import Path

import click

from cli.api_client import TIMEOUT_S, _client, _emit, json_option


@click.group("audits")
def audits() -> None:
    """Accuracy and bias audits as API jobs (admin key)."""


def _photo_names(labels: str) -> list[str]:
    """The photos a labels CSV names, once each, in order (comments and header skipped)."""
    names: dict[str, None] = {}
    for row in csv.reader(io.StringIO(labels)):
        if not row or row[0].startswith("#") or row[0].strip() == "photo":
            continue
        names[row[0].strip()] = None
    return list(names)


def _put(url: str, data: bytes) -> None:
    # The URL is the API's own presigned one (http(s)); octet-stream so nothing re-encodes it.
    headers = {"Content-Type": "application/octet-stream"}
    request = urllib.request.Request(url, data=data, headers=headers, method="PUT")  # noqa: S310
    with urllib.request.urlopen(request, timeout=TIMEOUT_S):  # noqa: S310
        pass


@audits.command("accuracy")
@click.option(
    "--labels",
    "labels_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "--photos", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option("--target-fmr", type=float, default=1e-4, show_default=True)
@click.option("--per-person", is_flag=True, help="name people in the report (the officer asks)")
@json_option
@click.pass_context
def audits_accuracy(
    ctx: click.Context,
    labels_path: Path,
    photos: Path,
    target_fmr: float,
    per_person: bool,
    as_json: bool,
) -> None:
    """Upload labels and photos, start the audit job; prints the job (poll with ``status``)."""
    client = _client(ctx)
    labels = labels_path.read_text(encoding="utf-8")
    names = _photo_names(labels)
    root = photos.resolve()
    files = {}
    for name in names:
        path = (root / name).resolve()
        if root not in path.parents or not path.is_file():
            raise click.BadParameter(f"{name!r} is not a file under --photos", param_hint="labels")
        files[name] = path
    prepared = client.call("POST", "/audits/accuracy/uploads", {"photos": names})
    _put(prepared["labels"], labels.encode("utf-8"))
    for name, url in prepared["photos"].items():
        _put(url, files[name].read_bytes())
    body = {"job_id": prepared["job_id"], "target_fmr": target_fmr, "per_person": per_person}
    job = client.call("POST", "/audits/accuracy", body)
    _emit(
        ctx, job, lambda j: f"{j['job_id']} {j['status']} ({j['photos']} photos)", as_json=as_json
    )


@audits.command("status")
@click.argument("job_id")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="when done: the report JSON"
)
@json_option
@click.pass_context
def audits_status(ctx: click.Context, job_id: str, out: Path | None, as_json: bool) -> None:
    """An audit job's status; with --out, its report when done."""
    job = _client(ctx).call("GET", f"/audits/accuracy/{job_id}")
    report = job.pop("report", None)
    if out is not None and report is not None:
        out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    _emit(ctx, job, lambda j: f"{j['job_id']} {j['status']}", as_json=as_json)
