"""The demo: real photographs through the real handlers on the local stack."""

from __future__ import annotations

import base64
import html
import io
import json
import mimetypes
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quitclaim.adapters.dynamo import DynamoApiKeys, DynamoAssets, DynamoSubjects
from quitclaim.domain.models import TenantPolicy
from quitclaim.domain.records import AssetRecord, asset_id_for
from quitclaim.domain.registry import IssuedKey, Role
from quitclaim.usecases.compliance_registry import Registry
from quitclaim.usecases.keys import ApiKeys

DEMO_TENANT = "demo"


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass(frozen=True)
class DemoConsent:
    person: str
    purposes: tuple[str, ...]
    valid_from: datetime
    expires_at: datetime | None
    revoke: bool = False


# The consents of issue #2, stated once; tests read the same table.
DEMO_CONSENTS: tuple[DemoConsent, ...] = (
    DemoConsent("obama", ("web", "social", "print"), _utc("2026-01-01"), _utc("2027-12-31")),
    DemoConsent("biden", ("web", "print"), _utc("2026-01-01"), _utc("2027-06-30")),
    DemoConsent("rose_leslie", ("web",), _utc("2025-10-01"), _utc("2026-10-01")),
    DemoConsent("kit_harington", ("web",), _utc("2026-01-01"), _utc("2027-12-31"), revoke=True),
    DemoConsent("alex_lacamoire", ("print",), _utc("2026-01-01"), _utc("2027-12-31")),
)


@dataclass(frozen=True)
class DemoUpload:
    name: str
    key: str
    version_id: str | None
    etag: str


def fixtures_dir(repo_root: Path) -> Path:
    """The face photographs the demo, tests and benchmarks use (in the repository)."""
    return repo_root / "fixtures" / "faces"


def enrol_people(registry: Registry, faces: Path, tenant: str = DEMO_TENANT) -> dict[str, str]:
    """Create the tenant, enrol everyone under enroll/, grant the demo consents."""
    registry.create_tenant(TenantPolicy(tenant=tenant))
    people: dict[str, str] = {}
    for folder in sorted(p for p in (faces / "enroll").iterdir() if p.is_dir()):
        photos = [p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()]
        people[folder.name] = registry.enrol_subject(
            tenant,
            folder.name.replace("_", " ").title(),
            photos,
            external_ref=folder.name,
            # The demo's people consented to matching (fixtures/faces/README.md).
            biometric_consent=True,
            consent_source="demo",
        )
    for consent in DEMO_CONSENTS:
        granted = registry.grant_consent(
            tenant,
            people[consent.person],
            consent.purposes,
            consent.valid_from,
            consent.expires_at,
            source="demo",
        )
        if consent.revoke:
            registry.revoke_consent(
                tenant, people[consent.person], granted.consent_id, source="demo"
            )
    return people


@dataclass(frozen=True)
class DemoKeys:
    """API keys of the demo tenant: one admin and two reviewers (for releases)."""

    admin: IssuedKey
    reviewers: tuple[IssuedKey, IssuedKey]


def issue_demo_keys(tenant: str = DEMO_TENANT) -> DemoKeys:
    """Keys to sign in to the dashboard or call the API as the demo tenant."""
    keys = ApiKeys(DynamoApiKeys())
    # Each key names its person: the two reviewers are two people (four eyes).
    admin = keys.issue(tenant, Role.ADMIN, "demo admin", "Demo Admin")
    first, second = (
        keys.issue(tenant, Role.REVIEWER, f"demo reviewer {n}", f"Demo Reviewer {n}")
        for n in (1, 2)
    )
    return DemoKeys(admin, (first, second))


def upload_all(
    s3: Any, bucket: str, files: Iterable[Path], tenant: str = DEMO_TENANT, purpose: str = "web"
) -> list[DemoUpload]:
    """PUT each file under incoming/{tenant}/ as a DAM would."""
    uploads = []
    for path in files:
        key = f"incoming/{tenant}/{path.name}"
        resp = s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=path.read_bytes(),
            ContentType=mimetypes.guess_type(path.name)[0] or "application/octet-stream",
            Metadata={"purpose": purpose},
        )
        uploads.append(
            DemoUpload(path.name, key, resp.get("VersionId"), str(resp["ETag"]).strip('"'))
        )
    return uploads


def collect_report(
    uploads: list[DemoUpload],
    *,
    uploads_bucket: str,
    s3: Any,
    assets: DynamoAssets,
    subjects: DynamoSubjects,
    tenant: str = DEMO_TENANT,
) -> dict[str, Any]:
    """Read back where every upload ended up, from the records and the buckets."""
    names = subjects.display_names(tenant)
    refs = subjects.external_refs(tenant)
    rows: list[dict[str, Any]] = []
    unaccounted: list[str] = []
    for up in uploads:
        asset_id = asset_id_for(tenant, uploads_bucket, up.key, up.version_id or up.etag)
        record = assets.get(tenant, asset_id)
        if record is None or not _exists(s3, record.dest_bucket, record.dest_key):
            unaccounted.append(up.name)
            rows.append({"key": up.name, "status": "unaccounted", "reasons": [], "faces": []})
            continue
        if _exists(s3, uploads_bucket, up.key):
            unaccounted.append(up.name)  # in two places: the upload was not removed
        rows.append(_row(up.name, record, names, refs))
    return {
        "tenant": tenant,
        "generated_at": datetime.now(UTC).isoformat(),
        "uploads": rows,
        "unaccounted": unaccounted,
    }


def _external_refs(subjects: DynamoSubjects, tenant: str) -> dict[str, str]:
    from quitclaim.adapters.dynamo import SubjectModel

    return {
        item.subject_id: item.external_ref or item.subject_id for item in SubjectModel.query(tenant)
    }


def _row(
    name: str, record: AssetRecord, names: dict[str, str], refs: dict[str, str]
) -> dict[str, Any]:
    faces = []
    for face in record.faces:
        sid = face.subject_id
        faces.append(
            {
                "subject": refs.get(sid, sid) if sid else None,
                "name": names.get(sid) if sid else None,
                "box": face.box,
                "identifiable": face.identifiable,
                "distance": face.distance,
                "consent": face.consent_id,
                "verdict": face.verdict or ("too_small" if not face.identifiable else None),
                "reason": face.reason,
            }
        )
    return {
        "key": name,
        "status": record.status.value,
        "reasons": list(record.reasons),
        "faces": faces,
        "asset_id": record.asset_id,
        "location": f"s3://{record.dest_bucket}/{record.dest_key}",
    }


def _exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError:
        return False
    return True


def format_table(report: dict[str, Any]) -> str:
    """A plain-text table: image, faces, per face who/consent/verdict, outcome."""
    lines = [f"{'image':24} {'status':12} {'reasons':34} faces (who: verdict)"]
    lines.append("-" * 110)
    for row in report["uploads"]:
        faces = ", ".join(
            f"{f['subject'] or 'unknown'}: {f['verdict'] or f['reason'] or '-'}"
            for f in row["faces"][:6]
        )
        if len(row["faces"]) > 6:
            faces += f", … ({len(row['faces'])} faces)"
        lines.append(
            f"{row['key']:24} {row['status']:12} {','.join(row['reasons']) or '-':34} "
            f"[{len(row['faces'])}] {faces}"
        )
    return "\n".join(lines)


_COLOURS = {"valid": "#1a7f37", None: "#cf222e", "too_small": "#8c959f"}


def write_html(report: dict[str, Any], faces_dir: Path, path: Path) -> None:
    """The photos with face boxes and verdicts drawn (green: consented)."""
    from PIL import Image, ImageDraw, ImageOps

    cards = []
    for row in report["uploads"]:
        image = ImageOps.exif_transpose(Image.open(faces_dir / "uploads" / row["key"]))
        image = image.convert("RGB")
        draw = ImageDraw.Draw(image)
        width = max(2, image.width // 250)
        for face in row["faces"]:
            colour = _COLOURS.get(face["verdict"], "#bf8700")
            draw.rectangle(face["box"], outline=colour, width=width)
        image.thumbnail((480, 480))
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=80)
        src = base64.b64encode(buf.getvalue()).decode()
        items = "".join(
            f"<li>{html.escape(f['name'] or 'unknown')}: "
            f"{html.escape(f['verdict'] or f['reason'] or '-')}</li>"
            for f in row["faces"][:12]
        )
        cards.append(
            f'<figure class="{row["status"]}"><img alt="{html.escape(row["key"])}" '
            f'src="data:image/jpeg;base64,{src}"><figcaption><strong>'
            f"{html.escape(row['key'])}</strong> — {row['status']}"
            f" {html.escape(', '.join(row['reasons']))}<ul>{items}</ul></figcaption></figure>"
        )
    path.write_text(
        "<!doctype html><html lang='en'><meta charset='utf-8'><title>Quitclaim demo</title>"
        "<style>body{font-family:sans-serif;margin:2em}figure{display:inline-block;"
        "vertical-align:top;width:500px;margin:1em}.approved figcaption{color:#1a7f37}"
        ".quarantined figcaption{color:#9a6700}.rejected figcaption{color:#cf222e}</style>"
        f"<h1>Quitclaim demo — tenant {html.escape(report['tenant'])}</h1>"
        + "".join(cards)
        + "</html>",
        encoding="utf-8",
    )


def write_json(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
