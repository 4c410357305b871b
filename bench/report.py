"""Report entries: every figure as median, min and max, beside its baseline.

An entry is ``{"value", "unit", "min", "max"}``, plus ``"baseline"`` and
``"speedup"`` (bigger is better: baseline / value for times and costs, value /
baseline for rates, whose unit ends in ``/s``)
where there is a baseline measured in the same run, and ``"target"`` /
``"target_met"`` where the design states one (reported, never asserted).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from typing import Any

REQUIRED = (
    "engine_12mp",
    "engine_cold_start",
    "gallery_match",
    "pipeline_throughput",
    "recheck_1000",
    "cost_per_1000",
    "backlog_1k",
    "accuracy_audit",
    "audit_append_concurrency",
    "conservation_20k",
    "handler_init",
)


def stats(samples: Iterable[float]) -> dict[str, float]:
    """Median, min and max of repeated measurements (at least one)."""
    values = [float(v) for v in samples]
    if not values:
        raise ValueError("no measurements")
    return {
        "value": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
    }


def entry(
    unit: str,
    samples: Iterable[float],
    *,
    baseline: Iterable[float] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An entry from repeated measurements; ``baseline`` samples from the same run."""
    result: dict[str, Any] = {"unit": unit, **stats(samples)}
    if baseline is not None:
        base = stats(baseline)
        result["baseline"] = base["value"]
        result["baseline_min"] = base["min"]
        result["baseline_max"] = base["max"]
        result["speedup"] = speedup(base["value"], result["value"])
    result.update(extra)
    return result


def speedup(baseline: float, value: float) -> float:
    return baseline / value if value > 0 else float("inf")


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        magnitude = abs(value)
        if magnitude == 0:
            return "0"
        if magnitude >= 100:
            return f"{value:.0f}"
        if magnitude >= 1:
            return f"{value:.2f}"
        if magnitude >= 0.001:
            return f"{value:.4f}"
        return f"{value:.2e}"
    return str(value)


def table(entries: Mapping[str, Mapping[str, Any]]) -> str:
    """The entries (and their cases) as a plain-text table."""
    header = ("entry", "value", "unit", "min..max", "baseline", "speedup", "target")
    rows: list[tuple[str, ...]] = [header]

    def add(name: str, e: Mapping[str, Any]) -> None:
        target = str(e.get("target", ""))
        if "target_met" in e:
            target += " ✓" if e["target_met"] else " ✗"
        rows.append(
            (
                name,
                _fmt(e["value"]),
                str(e["unit"]),
                f"{_fmt(e['min'])}..{_fmt(e['max'])}",
                _fmt(e["baseline"]) if "baseline" in e else "",
                f"{e['speedup']:.2f}x" if "speedup" in e else "",
                target,
            )
        )

    for name, e in entries.items():
        add(name, e)
        for case, sub in (e.get("cases") or {}).items():
            add(f"  {case}", sub)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)
