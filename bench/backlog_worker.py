"""backlog_1k: a backlog scanned through the bulk lane, beside the same images as uploads.

``python -m bench.backlog_worker OUT.json [--images N]`` runs in its own
process on its own local stack (moto keeps global state) and writes its
measurements to ``OUT.json``. The images are the load test's fast mix: one in
ten a fixture photo downscaled to 240 px, the rest tiny face-free images with
unique bytes. The same images are then sent one by one as ordinary uploads
(one PUT each into ``incoming/``, the DAM's path) for another tenant, and
the queues drained.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image

from bench.labelled import UPLOADS, upload_names

BACKLOG_TENANT = "bench-backlog"
UPLOADS_TENANT = "bench-uploads"
PINNED_NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
CONCURRENCY = 10


class _Clock:
    def now(self) -> datetime:
        return PINNED_NOW


def images(count: int, seed: int = 1000) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    faces = []
    for name in upload_names():
        with Image.open(UPLOADS / name) as opened:
            opened.draft("RGB", (480, 480))
            image = opened.convert("RGB")
        image.thumbnail((240, 240))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=85)
        faces.append(out.getvalue())
    made = []
    for i in range(count):
        if i % 10 == 0:
            made.append((f"{i // 100:03d}/{i:05d}-people.jpg", faces[(i // 10) % len(faces)]))
            continue
        w, h = rng.randint(24, 64), rng.randint(24, 64)
        out = io.BytesIO()
        Image.frombytes("RGB", (w, h), rng.randbytes(w * h * 3)).save(out, "JPEG", quality=60)
        made.append((f"{i // 100:03d}/{i:05d}-blank.jpg", out.getvalue()))
    return made


def scan_seconds(tenant: str) -> tuple[int, float, dict[str, int]]:
    """Decisions, their summed stage timings (s) and statuses, from the records."""
    from quitclaim.bootstrap import registry_service
    from quitclaim.usecases.ledger import every_asset

    assets = registry_service().assets
    assert assets is not None
    decided, seconds = 0, 0.0
    statuses: dict[str, int] = {}
    for record in every_asset(assets, tenant):
        decided += 1
        seconds += sum(record.timings_ms.values()) / 1000
        statuses[record.status.value] = statuses.get(record.status.value, 0) + 1
    return decided, seconds, statuses


def _upload(stack: Any, made: list[tuple[str, bytes]]) -> float:
    """The same images as ordinary uploads of the other tenant; seconds until all decided."""
    s3 = stack.client("s3")
    bucket = stack.outputs["UploadsBucketName"]
    began = time.perf_counter()
    for path, data in made:
        s3.put_object(Bucket=bucket, Key=f"incoming/{UPLOADS_TENANT}/{path}", Body=data)
    stack.drain(timeout_s=3600)
    return time.perf_counter() - began


def _result(
    images_n: int,
    report: Any,
    backlog: tuple[float, int, float, dict[str, int]],
    uploads: tuple[float, int, float, dict[str, int]],
) -> dict[str, Any]:
    """(elapsed, decided, scan seconds, statuses) of each path, and the scan's own report."""
    return {
        "images": images_n,
        "concurrency": CONCURRENCY,
        "backlog": {
            "elapsed_s": backlog[0],
            "decided": backlog[1],
            "scan_s": backlog[2],
            "statuses": backlog[3],
            "unaccounted": len(report.unaccounted) + len(report.decided_twice),
            "exceptions": len(report.exceptions),
        },
        "uploads": {
            "elapsed_s": uploads[0],
            "decided": uploads[1],
            "scan_s": uploads[2],
            "statuses": uploads[3],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--images", type=int, default=1000)
    args = parser.parse_args()

    from devstack.stack import LocalStack
    from quitclaim import bootstrap
    from quitclaim.adapters.s3_backlog import FolderSource
    from quitclaim.domain.models import TenantPolicy

    made = images(args.images)
    with tempfile.TemporaryDirectory(prefix="qc-backlog-") as folder:
        root = Path(folder)
        for path, data in made:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(data)
        with LocalStack() as stack, stack.use_client_env():
            bootstrap.reset_container()
            bootstrap.set_clock(_Clock())
            registry = bootstrap.registry_service()
            registry.create_tenant(
                TenantPolicy(tenant=BACKLOG_TENANT, backlog_concurrency=CONCURRENCY)
            )
            registry.create_tenant(TenantPolicy(tenant=UPLOADS_TENANT))

            began = time.perf_counter()
            report = bootstrap.backlog_service().run(
                BACKLOG_TENANT,
                "bench",
                FolderSource(root),
                wait=stack.runtime.poll_once,
            )
            backlog_s = time.perf_counter() - began

            uploads_s = _upload(stack, made)

            backlog = scan_seconds(BACKLOG_TENANT)
            uploads = scan_seconds(UPLOADS_TENANT)
        bootstrap.reset_container()
    result = _result(args.images, report, (backlog_s, *backlog), (uploads_s, *uploads))
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
