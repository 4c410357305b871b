"""``python -m bench --quick``: the benchmark runs end to end and reports every entry.

Structure only: the quick run's figures mean nothing and no timing is asserted.
It starts its own local stack (in the benchmark's worker process) and runs the
face_recognition baseline when it is installed.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.report import REQUIRED
from tests.conftest import REPO_ROOT

# face_recognition (the baseline) is installed by `make test`'s setup; its
# absence is a broken environment and must fail, not skip.
pytestmark = [pytest.mark.integration]

# Entries measured against a baseline in the same run.
WITH_BASELINE = {
    "engine_12mp",
    "engine_cold_start",
    "cost_per_1000",
    "recheck_1000",
    "conservation_20k",
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "bench-report.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    # The table is printed with every entry
    for name in REQUIRED:
        assert name in done.stdout
    data: dict[str, Any] = json.loads(Path(out).read_text())
    return data


def _check(name: str, entry: dict[str, Any]) -> None:
    for key in ("value", "unit", "min", "max"):
        assert key in entry, (name, key)
    assert isinstance(entry["unit"], str) and entry["unit"]
    for key in ("value", "min", "max"):
        assert isinstance(entry[key], (int, float)) and math.isfinite(entry[key]), (name, key)
    assert entry["min"] <= entry["value"] <= entry["max"], name
    if "baseline" in entry:
        # Bigger is better: baseline / value for times and costs, value / baseline
        # for rates (a unit per second)
        rate = entry["unit"].endswith("/s")
        expected = (
            entry["value"] / entry["baseline"] if rate else entry["baseline"] / entry["value"]
        )
        assert entry["speedup"] == pytest.approx(expected), name


def test_every_entry_has_value_unit_min_and_max(report: dict[str, Any]) -> None:
    entries = report["entries"]
    assert sorted(entries) == sorted(REQUIRED)
    for name, entry in entries.items():
        _check(name, entry)
        for case, sub in (entry.get("cases") or {}).items():
            _check(f"{name}.{case}", sub)


def test_entries_with_a_baseline_report_it_and_the_speedup(report: dict[str, Any]) -> None:
    for name in WITH_BASELINE:
        entry = report["entries"][name]
        assert "baseline" in entry and "speedup" in entry, name


def test_the_engine_entry_reports_both_recalls(report: dict[str, Any]) -> None:
    recall = report["entries"]["engine_12mp"]["recall"]["12mp"]
    for who in ("baseline", "ours"):
        assert set(recall[who]["sets"]) == {"testing.xml", "training.xml"}
        assert "uploads" in recall[who]


def test_the_cost_entry_states_its_prices_and_their_date(report: dict[str, Any]) -> None:
    cost = report["entries"]["cost_per_1000"]
    assert cost["prices_as_of"]
    assert cost["prices_usd"]["lambda_arm64_gb_second"] == 0.0000133334
    assert cost["memory_mb"] > 0


def test_the_report_says_where_and_how_it_was_measured(report: dict[str, Any]) -> None:
    meta = report["meta"]
    assert meta["quick"] is True
    assert meta["machine"]["cpus_usable"] >= 1
    assert "face_recognition" in meta["packages"]
