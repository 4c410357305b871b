"""backlog_1k: images/s and cost per 1,000 of a backlog scan, beside plain uploads.

One run of ``bench.backlog_worker`` on its own local stack. The entry's value
is seconds per 1,000 images through the bulk lane (``quitclaim backlog
scan``), the baseline the same images sent one by one as uploads (smaller is
better for both; ``speedup`` = baseline / value). Cost per 1,000 comes from
the cost model (quitclaim.domain.backlog, the prices of bench/cost.py) with
the measured scan seconds; "what it means for 100,000" scales both, on this
machine's local stack and on AWS with the bulk lane's ceiling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.engine import run_worker
from quitclaim.domain.backlog import BULK_FORWARD_USD, CHECKPOINT_PUT_USD, cost_usd

# The template's bulk lane: BulkMaxConcurrency invocations of IngestBatchSize images.
AWS_BULK_CONCURRENCY = 2


def run_backlog(*, images: int, log: Callable[[str], None]) -> dict[str, Any]:
    raw = run_worker("bench.backlog_worker", "--images", str(images))
    took = (raw["backlog"]["elapsed_s"], raw["uploads"]["elapsed_s"])
    log(f"  backlog {took[0]:.1f} s, uploads {took[1]:.1f} s")
    return raw


def _one(unit: str, value: float, **extra: Any) -> dict[str, Any]:
    return {"unit": unit, "value": value, "min": value, "max": value, "runs": 1, **extra}


def backlog_1k(raw: dict[str, Any]) -> dict[str, Any]:
    n = raw["images"]
    b, u = raw["backlog"], raw["uploads"]
    per_1000_b = b["elapsed_s"] * 1000 / n
    per_1000_u = u["elapsed_s"] * 1000 / n
    cost_b = cost_usd(b["decided"], b["scan_s"]) * 1000 / max(b["decided"], 1)
    cost_u = (
        (
            cost_usd(u["decided"], u["scan_s"])
            - u["decided"] * (BULK_FORWARD_USD + CHECKPOINT_PUT_USD)
        )
        * 1000
        / max(u["decided"], 1)
    )
    mean_scan = b["scan_s"] / max(b["decided"], 1)
    aws_rate = AWS_BULK_CONCURRENCY / mean_scan if mean_scan > 0 else 0.0
    return {
        **_one("s/1000 images", per_1000_b),
        "baseline": per_1000_u,
        "baseline_min": per_1000_u,
        "baseline_max": per_1000_u,
        "speedup": per_1000_u / per_1000_b if per_1000_b > 0 else float("inf"),
        "baseline_is": "the same images sent one by one as uploads (main lane), then drained",
        "images": n,
        "concurrency": raw["concurrency"],
        "statuses": b["statuses"],
        "unaccounted": b["unaccounted"],
        "cases": {
            "backlog_images_per_s": _one("images/s", n / b["elapsed_s"]),
            "uploads_images_per_s": _one("images/s", n / u["elapsed_s"]),
            "backlog_cost_per_1000": _one("USD/1000 images", cost_b),
            "uploads_cost_per_1000": _one("USD/1000 images", cost_u),
        },
        "for_100000": {
            "local_stack_hours": round(per_1000_b * 100 / 3600, 2),
            "aws_bulk_lane_hours": round(100_000 / aws_rate / 3600, 2) if aws_rate else None,
            "aws_cost_usd": round(cost_b * 100, 2),
            "note": (
                "local: this machine, one invocation at a time; AWS: the bulk lane's "
                f"{AWS_BULK_CONCURRENCY} concurrent invocations at the measured mean scan "
                "time per image (a Graviton core differs), costs from the cost model"
            ),
        },
    }
