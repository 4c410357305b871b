"""pipeline_throughput and recheck_1000, from one run of ``bench.stack_worker``."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.engine import worker_env
from bench.labelled import REPO


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
    with tempfile.TemporaryDirectory(prefix="qc-stack-") as folder:
        out = Path(folder) / "stack.json"
        errors = Path(folder) / "stderr.txt"
        with errors.open("w") as err:
            done = subprocess.run(  # noqa: S603 - our interpreter, our module
                [
                    sys.executable,
                    "-m",
                    "bench.stack_worker",
                    str(out),
                    "--uploads",
                    str(uploads),
                    "--batch",
                    str(batch),
                    "--assets",
                    str(assets),
                    "--repeats",
                    str(repeats),
                ],
                cwd=REPO,
                env=worker_env(),
                # The handlers' structured logs go to stdout: not for the table.
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        if done.returncode != 0:
            raise RuntimeError("stack worker failed:\n" + errors.read_text()[-4000:])
        raw: dict[str, Any] = json.loads(out.read_text())
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


def recheck_1000(raw: dict[str, Any]) -> dict[str, Any]:
    r = raw["recheck"]
    cases = {}
    if r["restore_s"]:
        cases["restore_after_new_grant"] = _from_summary("s", r["restore_s"])
    result = _from_summary(
        "s",
        r["withdrawal_s"],
        assets=r["assets"],
        setup_s=r["setup_s"],
        cases=cases,
        note="revoke_consent until the library holds none of the subject's assets",
        target=f"<= 60 s for {r['assets']} assets",
    )
    result["target_met"] = result["value"] <= 60
    return result
