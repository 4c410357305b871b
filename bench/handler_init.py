"""handler_init: what importing each function's handler module costs a cold start.

Each run is a fresh interpreter that imports ``app`` from the function's
folder, as Lambda does, with the function's environment: the template's
``Globals`` and the function's own variables (references stand in as
placeholders, parameters take their defaults) and what Lambda sets (a task
root, so Powertools sees Lambda and tracing is on). Beside it, in the same
run and environment, a bare ``python -c pass``. The figure is the median
handler import minus the median bare start. The face engine's model load is
not part of it (models load at first use; ``engine_cold_start`` measures it).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

TARGET_S = 0.3  # issue 20: handler import over a bare interpreter start, every function
REGION = "eu-central-1"


class _TemplateLoader(yaml.SafeLoader):
    """CloudFormation's short tags (``!Ref``, ``!Sub``, …) kept as ``{tag: value}``."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {suffix: value}


_TemplateLoader.add_multi_constructor("!", _tagged)


def _resolve(value: Any, defaults: Mapping[str, str]) -> str:
    """A variable's value with parameters' defaults; other references as placeholders."""
    if not isinstance(value, dict):
        return str(value)
    (tag, arg), *_ = value.items()
    if tag in ("Ref", "!Ref"):
        return defaults.get(str(arg), f"placeholder-{arg}")
    if tag in ("Sub", "Fn::Sub"):
        text = str(arg[0] if isinstance(arg, list) else arg)
        for name, default in defaults.items():
            text = text.replace("${" + name + "}", default)
        text = text.replace("${AWS::Region}", REGION).replace("${AWS::AccountId}", "123456789012")
        return text.replace("${AWS::Partition}", "aws")
    if tag == "If":  # a condition's "else": what a stack without the option gets
        return _resolve(arg[2], defaults)
    return "arn:aws:placeholder"


def environments(repo: Path) -> dict[str, dict[str, str]]:
    """Each function folder's environment, as the template (or Chalice) gives it."""
    text = (repo / "infra" / "template.yaml").read_text()
    template = yaml.load(text, Loader=_TemplateLoader)  # noqa: S506 - SafeLoader subclass
    defaults = {
        name: str(spec["Default"])
        for name, spec in (template.get("Parameters") or {}).items()
        if "Default" in spec
    }
    common = template["Globals"]["Function"]["Environment"]["Variables"]
    found: dict[str, dict[str, str]] = {}
    for spec in template["Resources"].values():
        props = spec.get("Properties") or {}
        code = str(props.get("CodeUri", ""))
        if spec.get("Type") != "AWS::Serverless::Function" or "functions/" not in code:
            continue
        own = (props.get("Environment") or {}).get("Variables") or {}
        folder = code.rstrip("/").rsplit("/", 1)[-1]
        found[folder] = {k: _resolve(v, defaults) for k, v in {**common, **own}.items()}
    # The API function is Chalice's: the template's globals are its environment too.
    found.setdefault("api", {k: _resolve(v, defaults) for k, v in common.items()})
    return found


def _lambda_env(repo: Path, folder: str, variables: Mapping[str, str]) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    return {
        **keep,
        **variables,
        "PYTHONPATH": str(repo / "layers" / "core" / "python"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_LAMBDA_FUNCTION_NAME": f"quitclaim-bench-{folder}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "LAMBDA_TASK_ROOT": str(repo / "functions" / folder),
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "_HANDLER": "app.handler",
    }


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _seconds(argv: list[str], cwd: Path, env: Mapping[str, str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one run (CPU: what a busy machine does not inflate)."""
    started, cpu = time.perf_counter(), _cpu()
    done = subprocess.run(  # noqa: S603 - our interpreter
        argv, cwd=cwd, env=dict(env), capture_output=True, text=True
    )
    took = time.perf_counter() - started, _cpu() - cpu
    if done.returncode != 0:
        raise RuntimeError(f"{argv} in {cwd} failed: {done.stderr[-2000:]}")
    return took


def handler_init(
    *, repo: Path, repeats: int = 5, log: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Per function: median handler import over the median bare start (seconds)."""
    cases: dict[str, dict[str, Any]] = {}
    for folder, variables in sorted(environments(repo).items()):
        cwd = repo / "functions" / folder
        env = _lambda_env(repo, folder, variables)
        if repeats > 1:  # warm the page cache (a quick run measures cold, and fast)
            _seconds([sys.executable, "-c", "import app"], cwd, env)
        bare, handler = [], []
        for _ in range(repeats):
            bare.append(_seconds([sys.executable, "-c", "pass"], cwd, env))
            handler.append(_seconds([sys.executable, "-c", "import app"], cwd, env))
        base = statistics.median(b for b, _ in bare)
        over = [h - base for h, _ in handler]
        cpu_over = statistics.median(c for _, c in handler) - statistics.median(c for _, c in bare)
        cases[folder] = {
            "value": round(statistics.median(over), 3),
            "unit": "s over bare",
            "min": round(min(over), 3),
            "max": round(max(over), 3),
            "runs": repeats,
            "handler_s": round(statistics.median(h for h, _ in handler), 3),
            "bare_s": round(base, 3),
            "cpu_over_bare_s": round(cpu_over, 3),
            "target": TARGET_S,
            "target_met": statistics.median(over) <= TARGET_S,
        }
        took = cases[folder]["value"]
        log(f"  {folder}: {took:.3f} s over bare ({base:.3f} s); CPU {cpu_over:.3f} s over bare")
    worst = max(cases.values(), key=lambda c: c["value"])
    return {
        "value": worst["value"],
        "unit": "s over bare",
        "min": min(c["min"] for c in cases.values()),
        "max": max(c["max"] for c in cases.values()),
        "target": TARGET_S,
        "target_met": all(c["target_met"] for c in cases.values()),
        "method": "fresh interpreter importing the handler module with the function's "
        "environment, median of runs, minus the median bare `python -c pass` of the same run",
        "cases": cases,
    }


if __name__ == "__main__":  # python -m bench.handler_init [REPO]: this table alone
    import json

    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]
    print(json.dumps(handler_init(repo=root, log=print)["cases"], indent=1))
