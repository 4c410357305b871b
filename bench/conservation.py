"""conservation_20k: the conservation check of a tenant with 20,000 audit records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.engine import run_worker
from bench.stack import _beside, _from_summary


def run_conservation(
    *, records: int, assets: int, repeats: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """The check as it was and as it is, one stack, one set-up (``bench.conservation_worker``)."""
    raw = run_worker(
        "bench.conservation_worker",
        *("--records", str(records), "--assets", str(assets), "--repeats", str(repeats)),
    )
    log(f"  seeded {raw['records']} records, {raw['assets']} assets: {raw['seed']}")
    return raw


def conservation_20k(raw: dict[str, Any]) -> dict[str, Any]:
    ours, base = raw["modes"]["parallel"], raw["modes"]["sequential"]
    result = _from_summary(
        "s",
        ours["wall_s"],
        records=raw["records"],
        assets=raw["assets"],
        seed_s=raw["seed"],
        baseline=base["wall_s"]["median"],
        baseline_min=base["wall_s"]["min"],
        baseline_max=base["wall_s"]["max"],
        speedup=base["wall_s"]["median"] / ours["wall_s"]["median"],
        violations=len(raw["violations"]),
        after_checkpoint=raw.get("after_checkpoint"),
        first_check_s=raw["seed"].get("first_check_s"),
        cases={
            "cpu": _beside(ours["cpu_s"], base["cpu_s"]),
        },
        note=(
            "ConservationCheck.check of one tenant whose chain an earlier check "
            "checkpointed before its last after_checkpoint records (first_check_s: that "
            "check, reading every record): only the records the checkpoint lacks are "
            "read (ahead, on 8 threads), library bytes and tags 8 at a time; baseline: "
            "every read one after another, no checkpoint (the check before issue 27), "
            "same run and data. The emulator runs in this process: the CPU case is "
            "client and server together"
        ),
        target="< 120 s",
    )
    result["target_met"] = result["value"] < 120
    return result
