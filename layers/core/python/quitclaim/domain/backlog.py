"""Scanning an existing library (a backlog): keys, checkpoint, progress and cost (pure).

A backlog scan lists a source (an S3 prefix or a folder) in key order and
feeds each image into the uploads under ``incoming/<tenant>/backlog/<name>/``;
admission sends every upload under that collection to the bulk lane
(docs/fairness.md), so other tenants' uploads keep the main lane. The
checkpoint records the last source key fed, so a stopped scan resumes after
it. usecases/backlog_scan.py does the work; this module holds the rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

# The collection (first folder of the upload path) a backlog's images are fed under.
BACKLOG_COLLECTION = "backlog"
BACKLOG_CONCURRENCY_MAX = 64
DEFAULT_BACKLOG_CONCURRENCY = 4
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".gif", ".webp", ".tif", ".tiff", ".heic", ".heif", ".avif"}
)
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

# The cost model (docs/deploy.md "What it costs", bench/cost.py: eu-central-1 list
# prices of November 2025): Lambda arm64 per GB-second, the ingest function's
# memory, and the per-image requests (S3, DynamoDB, SQS, CloudTrail, X-Ray, KMS).
LAMBDA_GB_SECOND_USD = 0.0000133334
LAMBDA_REQUEST_USD = 0.20 / 1_000_000
INGEST_MEMORY_MB = 2048
REQUESTS_PER_IMAGE_USD = 0.036 / 1000
# A bulk-lane image costs one more SQS send and receive (the forward).
BULK_FORWARD_USD = 2 * 0.40 / 1_000_000
# The checkpoint saved after each image fed (one S3 PUT).
CHECKPOINT_PUT_USD = 0.0054 / 1000


def is_backlog_name(name: str) -> bool:
    return bool(_NAME.fullmatch(name))


def backlog_name(source: str) -> str:
    """A default name for a source: its last folder, lowercase, dashes for the rest."""
    tail = source.rstrip("/").rsplit("/", 1)[-1] or "backlog"
    slug = re.sub(r"[^a-z0-9]+", "-", tail.lower()).strip("-")[:63]
    return slug or "backlog"


def upload_path(name: str, relative: str) -> str:
    """The upload path (below ``incoming/<tenant>/``) an image of the backlog is fed as."""
    return f"{BACKLOG_COLLECTION}/{name}/{relative.lstrip('/')}"


def is_backlog_path(path: str) -> bool:
    """Whether an upload path (below the tenant) belongs to a backlog scan."""
    return path.startswith(BACKLOG_COLLECTION + "/")


def is_image_key(key: str) -> bool:
    name = key.rsplit("/", 1)[-1]
    return "." in name and "." + name.rsplit(".", 1)[-1].lower() in IMAGE_SUFFIXES


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a backlog scan stands: kept after every image it feeds."""

    tenant: str
    name: str
    source: str
    last_key: str = ""  # the last source key fed; listing resumes after it
    fed: int = 0
    skipped: int = 0  # listed but not images
    state: str = "running"  # running | stopped | listed (everything fed)
    started_at: str = ""
    scan_seconds: float = 0.0  # of scans already accounted for by progress (cost)
    history: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def fed_one(self, key: str) -> Checkpoint:
        return replace(self, last_key=key, fed=self.fed + 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "name": self.name,
            "source": self.source,
            "last_key": self.last_key,
            "fed": self.fed,
            "skipped": self.skipped,
            "state": self.state,
            "started_at": self.started_at,
            "scan_seconds": self.scan_seconds,
            "history": list(self.history),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Checkpoint:
        return cls(
            tenant=str(data["tenant"]),
            name=str(data["name"]),
            source=str(data["source"]),
            last_key=str(data.get("last_key", "")),
            fed=int(data.get("fed", 0)),
            skipped=int(data.get("skipped", 0)),
            state=str(data.get("state", "running")),
            started_at=str(data.get("started_at", "")),
            scan_seconds=float(data.get("scan_seconds", 0.0)),
            history=tuple(data.get("history", ())),
        )


def cost_usd(images: int, scan_seconds: float, memory_mb: int = INGEST_MEMORY_MB) -> float:
    """What ``images`` bulk-lane scans that took ``scan_seconds`` in all cost (USD)."""
    compute = scan_seconds * (memory_mb / 1024) * LAMBDA_GB_SECOND_USD
    per_image = REQUESTS_PER_IMAGE_USD + BULK_FORWARD_USD + CHECKPOINT_PUT_USD + LAMBDA_REQUEST_USD
    return compute + images * per_image


@dataclass(frozen=True, slots=True)
class Progress:
    """The progress line's numbers."""

    decided: int
    fed: int
    total: int | None  # None while the listing has not reached the end
    elapsed_s: float
    cost_usd: float

    @property
    def rate(self) -> float:
        return self.decided / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        if self.total is None or self.rate <= 0:
            return None
        return max(self.total - self.decided, 0) / self.rate

    def line(self) -> str:
        of = f"/{self.total}" if self.total is not None else ""
        eta = self.eta_s
        left = "?" if eta is None else _duration(eta)
        return (
            f"{self.decided}{of} decided ({self.fed} fed), {self.rate:.1f} images/s, "
            f"ETA {left}, cost so far ${self.cost_usd:.4f}"
        )


def _duration(seconds: float) -> str:
    s = round(seconds)
    hours, rest = divmod(s, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
