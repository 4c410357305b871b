"""The conservation check of a tenant with many audit records, on the embedded local stack.

``python -m bench.conservation_worker OUT.json [--records N] [--assets M] [--repeats R]``
runs in its own process (moto keeps global state) and writes its figures.

Set-up, made for speed (the check reads what a real run leaves, it does not
care how it got there): ``M`` face-free approved images in the library, each
with its original, its decision record and its ``asset.decided`` event, and
an audit chain of ``N`` records in all, sealed as the chain seals them and
put through the chain's own store (one request a record, in parallel; the
last one advances the head as an append does).

The chain is checked once with checkpoints before its last ``--later``
records are appended (an earlier check: it reads every record and leaves a
checkpoint, ``domain/audit_checkpoint.py``); its time is reported apart.

Measured, in the same run on the same data: the check as it was (audit
records read one after another, library objects one after another, no
checkpoint) and the check now (the records the checkpoint lacks read ahead,
library reads in parallel). Both must report the same verdict: no violation.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.stack_worker import PINNED_NOW, _Clock, summary

TENANT = "bench-conservation"


def _seed(stack: Any, records: int, assets: int, later: int) -> dict[str, float]:
    """The tenant's data; its chain checked once (a checkpoint) ``later`` records before the end."""
    from quitclaim.bootstrap import audit_trail_service, conservation_service

    conservation_service()  # binds the table models to the stack's tables
    began = time.perf_counter()
    decided = _place_assets(stack, assets)
    assets_s = time.perf_counter() - began
    began = time.perf_counter()
    _chain(decided, records - later)
    records_s = time.perf_counter() - began
    # An earlier check (yesterday's): it reads every record and leaves a
    # checkpoint, vouched for by the record it appends.
    first_wall, first_cpu, report = _check(parallel=True)
    if report.violations:
        raise RuntimeError(f"the first check found violations: {report.violations[:3]}")
    began = time.perf_counter()
    trail = audit_trail_service()
    for n in range(later - 1):
        event = {"action": "api.request", "tenant": TENANT, "request_id": f"later{n}"}
        trail.append(TENANT, f"bench/later/{n}", [event])
    return {
        "assets_s": assets_s,
        "records_s": records_s,
        "first_check_s": first_wall,
        "first_check_cpu_s": first_cpu,
        "later_records_s": time.perf_counter() - began,
    }


def _place_assets(stack: Any, assets: int) -> list[dict[str, Any]]:
    """Approved decisions with their library object and original; their audit events."""
    from quitclaim.adapters.dynamo import DynamoAssets
    from quitclaim.config import get_settings
    from quitclaim.domain.models import AssetStatus
    from quitclaim.domain.records import AssetRecord
    from quitclaim.usecases.asset_decisions import META_ASSET_ID, META_STATUS, history_entry

    settings = get_settings()
    s3 = stack.client("s3")
    repo = DynamoAssets()
    decided: list[dict[str, Any]] = []

    def place(i: int) -> None:
        asset_id = f"bench{i:06d}"
        data = f"face-free image {i}".encode()
        path = f"many/{i:06d}.jpg"
        at = PINNED_NOW - timedelta(minutes=1)
        record = AssetRecord(
            tenant=TENANT,
            asset_id=asset_id,
            source_bucket=settings.uploads_bucket,
            source_key=f"{settings.incoming_prefix}{TENANT}/{path}",
            source_version="bench",
            path=path,
            purpose="web",
            status=AssetStatus.APPROVED,
            reasons=(),
            dest_bucket=settings.library_bucket,
            dest_key=f"{TENANT}/{path}",
            decided_at=at,
            size=len(data),
            published_sha256=hashlib.sha256(data).hexdigest(),
        )
        record = replace(record, history=(history_entry(at, "decided", "bench", record),))
        repo.create(record)
        meta = {META_ASSET_ID: asset_id, META_STATUS: "approved"}
        s3.put_object(Bucket=settings.library_bucket, Key=record.dest_key, Body=data, Metadata=meta)
        s3.put_object(
            Bucket=settings.quarantine_bucket,
            Key=f"{settings.originals_prefix}{TENANT}/{asset_id}",
            Body=data,
            Metadata=meta,
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(place, range(assets)))
    for i in range(assets):
        decided.append({"action": "asset.decided", "tenant": TENANT, "asset_id": f"bench{i:06d}"})
    return decided


def _chain(decided: list[dict[str, Any]], records: int) -> None:
    """``records`` sealed audit records (the decisions' events first), head advanced once."""
    from quitclaim.bootstrap import audit_trail_service
    from quitclaim.domain.audit_chain import GENESIS, canonical, seal

    store = audit_trail_service().store
    at = PINNED_NOW.isoformat()
    bodies: list[tuple[int, dict[str, Any], bytes]] = []
    prev = GENESIS
    for seq in range(1, records + 1):
        # The decisions' events first, then requests as an API's blocks hold them.
        events = [decided[seq - 1]] if seq <= len(decided) else []
        events.append({"action": "api.request", "tenant": TENANT, "request_id": f"r{seq}"})
        record = seal(TENANT, seq, prev, f"bench/{seq}", at, events)
        bodies.append((seq, record, canonical(record)))
        prev = str(record["hash"])
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda b: store.put_record(TENANT, b[0], b[2]), bodies[:-1]))
    seq, record, body = bodies[-1]
    if store.advance(TENANT, None, record, body) != "advanced":
        raise RuntimeError("the bench tenant's chain head was not new")
    store.put_record(TENANT, seq, body)
    store.mark_written(TENANT, seq)


def _check(parallel: bool) -> tuple[float, float, Any]:
    from quitclaim.adapters.audit_chain_store import DynamoS3AuditChain
    from quitclaim.adapters.aws import aws_client
    from quitclaim.adapters.read_ahead import ReadAheadS3
    from quitclaim.bootstrap import conservation_service, current_clock
    from quitclaim.config import get_settings
    from quitclaim.usecases.audit_trail import AuditTrail

    settings = get_settings()
    s3 = aws_client("s3", settings)
    chain = DynamoS3AuditChain(
        dynamodb=aws_client("dynamodb", settings),
        s3=ReadAheadS3(s3) if parallel else s3,
        table=settings.audit_heads_table,
        bucket=settings.audit_bucket,
        clock=current_clock(),
    )
    # The check now: read-ahead, checkpoints, library reads in parallel.
    trail = AuditTrail(store=chain, clock=current_clock(), checkpoints=chain if parallel else None)
    check = replace(conservation_service(), audit=trail, reads=8 if parallel else 1)
    started, cpu = time.perf_counter(), time.process_time()
    report = check.check(TENANT)
    return time.perf_counter() - started, time.process_time() - cpu, report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--assets", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=1)
    # Records appended after the last checkpoint (an earlier check's).
    parser.add_argument("--later", type=int, default=1_000)
    args = parser.parse_args()

    from devstack.stack import LocalStack
    from quitclaim import bootstrap

    started = time.perf_counter()
    with LocalStack() as stack, stack.use_client_env():
        bootstrap.reset_container()
        bootstrap.set_clock(_Clock())
        stack_s = time.perf_counter() - started
        later = min(args.later, args.records // 2)
        seeded = _seed(stack, args.records, min(args.assets, args.records), later)
        found: dict[str, dict[str, list[float]]] = {
            mode: {"wall_s": [], "cpu_s": []} for mode in ("parallel", "sequential")
        }
        verdicts: dict[str, list[str]] = {}
        for _ in range(args.repeats):
            for mode in ("sequential", "parallel"):
                wall, cpu, report = _check(mode == "parallel")
                found[mode]["wall_s"].append(wall)
                found[mode]["cpu_s"].append(cpu)
                verdicts[mode] = sorted(f"{v.rule}: {v.detail}" for v in report.violations)
                if report.decisions != min(args.assets, args.records):
                    raise RuntimeError(f"the check saw {report.decisions} decisions")
        if verdicts["parallel"] != verdicts["sequential"]:
            raise RuntimeError("the two checks disagree")
    bootstrap.reset_container()
    out = {
        "stack_start_s": stack_s,
        "records": args.records,
        "after_checkpoint": later,
        "assets": min(args.assets, args.records),
        "seed": seeded,
        "modes": {
            mode: {name: summary(values) for name, values in figures.items()}
            for mode, figures in found.items()
        },
        "violations": verdicts["parallel"][:20],
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    args.out.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
