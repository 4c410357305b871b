"""pipeline_throughput and recheck_1000, from one run of ``bench.stack_worker``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.engine import run_worker


def _from_summary(unit: str, s: dict[str, float], **extra: Any) -> dict[str, Any]:
    return {
        "unit": unit,
        "value": s["median"],
        "min": s["min"],
        "max": s["max"],
        "runs": s["n"],
        **extra,
    }


def run_stack(
    *, uploads: int, batch: int, assets: int, repeats: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """Both stack measurements (one stack start); raw worker output as well."""
    raw = run_worker(
        "bench.stack_worker",
        *("--uploads", str(uploads), "--batch", str(batch)),
        *("--assets", str(assets), "--repeats", str(repeats)),
    )
    log(f"  stack started in {raw['stack_start_s']:.1f} s")
    return raw


def pipeline_throughput(raw: dict[str, Any]) -> dict[str, Any]:
    p = raw["pipeline"]
    stages = {f"stage_{name}": _from_summary("ms/image", s) for name, s in p["stages_ms"].items()}
    return _from_summary(
        "images/s",
        p["images_per_s"],
        uploads=p["uploads"],
        batch=p["batch"],
        elapsed_s=p["elapsed_s"],
        statuses=p["statuses"],
        unaccounted=p["unaccounted"],
        requests_per_image=p["requests"],
        cases=stages,
        note=(
            "S3 put -> queue -> ingest handler -> records -> move, one invocation at a "
            "time on the local runtime; runs are batches of uploads, stages are the "
            "asset records' timings_ms (median over images)"
        ),
    )


def _beside(ours: dict[str, float], base: dict[str, float]) -> dict[str, Any]:
    """Seconds, with the old path's median from the same run and the speed-up."""
    return _from_summary(
        "s", ours, baseline=base["median"], speedup=base["median"] / ours["median"]
    )


def recheck_1000(raw: dict[str, Any]) -> dict[str, Any]:
    """The batched recheck beside the one-asset-at-a-time path, same stack, same assets."""
    r = raw["recheck"]
    modes = r["modes"]
    ours, base = modes["batched"], modes["per_asset"]
    cases = {
        "restore_after_new_grant": _from_summary("s", ours["restore_s"]),
        "withdrawal_cpu": _beside(ours["withdrawal_cpu_s"], base["withdrawal_cpu_s"]),
        "withdrawal_emulator_cpu": _beside(
            ours["withdrawal_emulator_cpu_s"], base["withdrawal_emulator_cpu_s"]
        ),
        "per_asset_restore_after_new_grant": _from_summary("s", base["restore_s"]),
    }
    result = _from_summary(
        "s",
        ours["withdrawal_s"],
        assets=r["assets"],
        setup_s=r["setup_s"],
        chunk=r["chunk"],
        baseline=base["withdrawal_s"]["median"],
        baseline_min=base["withdrawal_s"]["min"],
        baseline_max=base["withdrawal_s"]["max"],
        speedup=base["withdrawal_s"]["median"] / ours["withdrawal_s"]["median"],
        requests_per_asset=r["requests_per_asset"],
        cases=cases,
        note=(
            "revoke_consent until the library holds none of the subject's assets; "
            "baseline: the same withdrawal re-deciding one asset at a time (chunk 1, "
            "the design before issue 27), same run and stack; the withdrawals run in a "
            "function process of their own (as on AWS, the function and the services "
            "do not share a CPU): withdrawal_cpu is that process's CPU, "
            "withdrawal_emulator_cpu the emulator's over the same withdrawals"
        ),
        target=f"<= 30 s for {r['assets']} assets",
    )
    result["target_met"] = result["value"] <= 30
    return result
