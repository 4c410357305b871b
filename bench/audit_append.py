"""audit_append_concurrency: audit-chain appends per second at 1, 10 and 50 writers.

One local stack (moto on loopback), one tenant per cell. Each writer is a
thread with its own ``AuditTrail`` (its own memory of heads, as a Lambda
container has) that appends one block to warm up (untimed: a container
finds its lane once), then one-event blocks until the cell's time is up. The
previous design (one head per tenant: ``lanes=0``) and the lane design run
in the same process, cell after cell. Every cell's chain must verify after.

``python -m bench.audit_append OUT.json [--seconds S] [--writers 1 10 50]``
is the worker; ``audit_append_concurrency`` runs it and makes the entry.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.engine import run_worker

WRITERS = (1, 10, 50)
# 0: loopback as it is; 10: a modelled in-region round trip per AWS call.
LATENCIES_MS = (0.0, 10.0)
DESIGNS = {"one_head": 0, "lanes": None}  # None: the default number of lanes


def audit_append_concurrency(
    *, seconds: float, writers: tuple[int, ...] = WRITERS, log: Callable[[str], None]
) -> dict[str, Any]:
    """The report entry: the lane design's appends/s beside the one-head design's."""
    raw = run_worker(
        "bench.audit_append", "--seconds", str(seconds), "--writers", *map(str, writers)
    )
    return entry(raw, log)


def entry(raw: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    """Cases ``writers_<n>`` (loopback) and ``writers_<n>_<ms>ms`` (modelled round trips)."""
    cases: dict[str, Any] = {}
    for latency in raw["latencies_ms"]:
        for n in raw["writers"]:
            where = f"{n}/{latency:g}ms"
            new, old = raw["cells"][f"lanes/{where}"], raw["cells"][f"one_head/{where}"]
            log(
                f"  {n} writers, {latency:g} ms per call: {new['appends_per_s']:.1f}/s with "
                f"lanes, {old['appends_per_s']:.1f}/s with one head"
            )
            rate, base = new["appends_per_s"], old["appends_per_s"]
            cases[f"writers_{n}" + (f"_{latency:g}ms" if latency else "")] = {
                "unit": "appends/s",
                "value": rate,
                "min": rate,
                "max": rate,
                "runs": 1,
                "baseline": base,
                # Throughput: bigger is better, so lanes / one head here.
                "speedup": rate / base if base else float("inf"),
                "lanes": new,
                "one_head": old,
            }
    n, latency = max(raw["writers"]), raw["latencies_ms"][-1]
    top = cases[f"writers_{n}" + (f"_{latency:g}ms" if latency else "")]
    return {
        **{k: top[k] for k in ("unit", "value", "min", "max", "runs", "baseline", "speedup")},
        "writers": n,
        "latency_ms": latency,
        "seconds_per_cell": raw["seconds"],
        "stack_start_s": raw["stack_start_s"],
        "note": "moto on loopback in one Python process (CPU-bound): relative figures; "
        "the DynamoDB arithmetic is in docs/audit-capacity.md",
        "cases": cases,
    }


def _cell(
    stack: Any, tenant: str, writers: int, lanes: int | None, seconds: float, latency_ms: float
) -> dict[str, Any]:
    from botocore.config import Config

    from devstack.emulator import BOTO_CONFIG, fake_session
    from quitclaim.adapters.audit_chain_store import DynamoS3AuditChain
    from quitclaim.bootstrap import current_clock
    from quitclaim.config import get_settings
    from quitclaim.usecases.audit_trail import AuditTrail

    settings = get_settings()
    # One pool big enough for every writer (a Lambda container has its own).
    config = BOTO_CONFIG.merge(Config(max_pool_connections=max(10, writers + 4)))
    session = fake_session(stack.region)
    ddb = session.client("dynamodb", endpoint_url=stack.endpoint_url, config=config)
    s3 = session.client("s3", endpoint_url=stack.endpoint_url, config=config)
    if latency_ms:
        # A round trip to DynamoDB / S3 in a region is milliseconds, on loopback
        # microseconds: model it, so that the time a head is held is realistic.
        for client in (ddb, s3):
            client.meta.events.register("before-send", _delay(latency_ms / 1000))
    store = DynamoS3AuditChain(
        ddb, s3, settings.audit_heads_table, settings.audit_bucket, current_clock()
    )
    run = _append_for(store, tenant, writers, lanes, seconds)
    took, appended = run["took"], run["appended"]
    checked = time.perf_counter()
    result = AuditTrail(store, current_clock()).verify(tenant)
    verify_s = time.perf_counter() - checked
    if not result.intact:
        raise RuntimeError(f"{tenant}: chain broken: {result.first_break}")
    if result.events != appended + writers - run["warm_failed"]:  # + the warm-up appends
        raise RuntimeError(f"{tenant}: {result.events} events chained, {appended} appended")
    lanes_used = {k for k in store.heads(tenant)}
    return {
        "writers": writers,
        "appends": appended,
        "failed_appends": run["failed"],
        "seconds": round(took, 2),
        "appends_per_s": round(appended / took, 1),
        "advance_attempts_per_append": round(run["advances"] / max(appended, 1), 2),
        "records": result.records,
        "lanes_used": len(lanes_used),
        "verify_s": round(verify_s, 2),
        "verified": result.intact,
    }


def _append_for(
    store: Any, tenant: str, writers: int, lanes: int | None, seconds: float
) -> dict[str, Any]:
    """``writers`` threads append for ``seconds`` once all have warmed up; what they did."""
    from quitclaim.bootstrap import current_clock
    from quitclaim.domain.errors import DependencyFailed
    from quitclaim.usecases.audit_trail import AuditTrail

    lock = threading.Lock()
    advances = _count_advances(store, lock)
    done, failed = [0] * writers, [0] * writers
    deadline, began = [0.0], [0.0]

    def go() -> None:
        # Runs once, when every writer has warmed up: the timed part starts.
        began[0] = time.perf_counter()
        deadline[0] = began[0] + seconds
        advances[0] = 0

    start = threading.Barrier(writers, action=go)
    warm_failed = [0]

    def work(w: int) -> None:
        trail = AuditTrail(store, current_clock())
        if lanes is not None:
            trail.lanes = lanes
        # One append before the clock starts: a container finds its lane once
        # in its life; a backlog runs on containers that have.
        try:
            trail.append(tenant, f"bench/{w}-warm", [{"action": "bench", "tenant": tenant}])
        except DependencyFailed:
            with lock:
                warm_failed[0] += 1
        start.wait()
        i = 0
        while time.perf_counter() < deadline[0]:
            try:
                trail.append(
                    tenant, f"bench/{w}-{i}", [{"action": "bench.append", "tenant": tenant}]
                )
                done[w] += 1
            except DependencyFailed:
                failed[w] += 1
            i += 1

    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return {
        "took": time.perf_counter() - began[0],
        "appended": sum(done),
        "failed": sum(failed),
        "warm_failed": warm_failed[0],
        "advances": advances[0],
    }


def _count_advances(store: Any, lock: threading.Lock) -> list[int]:
    """Count the store's head-advance attempts from now on (one counter, shared by threads)."""
    advances = [0]
    real_advance = store.advance

    def counted(*args: Any, **kwargs: Any) -> str:
        with lock:
            advances[0] += 1
        return real_advance(*args, **kwargs)

    store.advance = counted
    return advances


def _delay(seconds: float) -> Callable[..., None]:
    def wait(**_: Any) -> None:
        time.sleep(seconds)

    return wait


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--writers", type=int, nargs="+", default=list(WRITERS))
    parser.add_argument("--latency-ms", type=float, nargs="+", default=list(LATENCIES_MS))
    args = parser.parse_args()

    from devstack.stack import LocalStack
    from quitclaim import bootstrap

    started = time.perf_counter()
    cells: dict[str, Any] = {}
    with LocalStack(control=False) as stack, stack.use_client_env():
        bootstrap.reset_container()
        stack_s = time.perf_counter() - started
        for latency in args.latency_ms:
            for n in args.writers:
                # Alternate the designs per writer count: drift hits both alike.
                for design, lanes in DESIGNS.items():
                    name = f"{design}/{n}/{latency:g}ms"
                    tenant = f"bench-audit-{design.replace('_', '-')}-{n}-{latency:g}"
                    cells[name] = _cell(stack, tenant, n, lanes, args.seconds, latency)
                    print(f"{name}: {cells[name]}", file=sys.stderr, flush=True)
    bootstrap.reset_container()
    args.out.write_text(
        json.dumps(
            {
                "stack_start_s": round(stack_s, 1),
                "seconds": args.seconds,
                "writers": args.writers,
                "latencies_ms": args.latency_ms,
                "cells": cells,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
