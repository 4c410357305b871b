"""Pipeline throughput and consent-withdrawal recheck, on the embedded local stack.

``python -m bench.stack_worker OUT.json [--uploads N] [--batch B] [--assets M]``
runs in its own process (the stack points ``os.environ`` at the emulator and
moto keeps global state) and writes its measurements to ``OUT.json``.

Every AWS request the process makes is counted by service and operation
(a wrapper around botocore's ``Endpoint.make_request``), so the cost model
prices the requests the real handlers make per image, not a guess.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.labelled import FACES, REPO, UPLOADS, upload_names

TENANT = "demo"  # the demo's tenant: enrol_people grants its consents there
RECHECK_TENANT = "bench-recheck"
# The moment the demo's consents are stated for; pinned like the test suite's.
PINNED_NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
_WRITE_OPERATIONS = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
)


class _Clock:
    def now(self) -> datetime:
        return PINNED_NOW


class RequestCounter:
    """AWS requests by (service, operation); DynamoDB write sizes in 1 KB units."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()
        self.write_units: Counter[str] = Counter()
        self.active = False

    def record(self, operation_model: Any, request_dict: dict[str, Any]) -> None:
        if not self.active:
            return
        service = str(operation_model.service_model.endpoint_prefix)
        name = str(operation_model.name)
        self.calls[(service, name)] += 1
        if service == "dynamodb" and name in _WRITE_OPERATIONS:
            # The JSON request is larger than the item DynamoDB bills (attribute
            # names and type tags count, the envelope does not): an upper bound.
            body = request_dict.get("body") or b""
            size = len(body) if isinstance(body, (bytes, str)) else 0
            self.write_units[name] += max(1, math.ceil(size / 1024))

    @contextmanager
    def counting(self) -> Iterator[None]:
        self.active = True
        try:
            yield
        finally:
            self.active = False

    def per(self, items: int) -> dict[str, Any]:
        return {
            "requests": {f"{s}:{o}": n / items for (s, o), n in sorted(self.calls.items())},
            "dynamodb_write_units": {k: n / items for k, n in sorted(self.write_units.items())},
        }


def install(counter: RequestCounter) -> None:
    import botocore.endpoint

    original: Callable[..., Any] = botocore.endpoint.Endpoint.make_request

    def make_request(self: Any, operation_model: Any, request_dict: dict[str, Any]) -> Any:
        counter.record(operation_model, request_dict)
        return original(self, operation_model, request_dict)

    botocore.endpoint.Endpoint.make_request = make_request  # type: ignore[method-assign,assignment]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def run_pipeline(stack: Any, counter: RequestCounter, uploads: int, batch: int) -> dict[str, Any]:
    from quitclaim.adapters.dynamo import DynamoAssets
    from quitclaim.domain.records import asset_id_for

    s3 = stack.client("s3")
    bucket = stack.outputs["UploadsBucketName"]
    names = upload_names()
    files = [UPLOADS / names[i % len(names)] for i in range(uploads)]
    keys: list[tuple[str, str]] = []  # (key, version or etag)
    batch_rates: list[float] = []
    elapsed = 0.0
    with counter.counting():
        for start in range(0, uploads, batch):
            chunk = files[start : start + batch]
            began = time.perf_counter()
            made = [_put(s3, bucket, start + i, path) for i, path in enumerate(chunk)]
            stack.drain(timeout_s=3600)
            took = time.perf_counter() - began
            elapsed += took
            batch_rates.append(len(chunk) / took)
            keys.extend(made)
    assets = DynamoAssets()
    stages: dict[str, list[float]] = {}
    statuses: Counter[str] = Counter()
    missing = 0
    for key, version in keys:
        record = assets.get(TENANT, asset_id_for(TENANT, bucket, key, version))
        if record is None:
            missing += 1
            continue
        statuses[record.status.value] += 1
        for stage, ms in record.timings_ms.items():
            stages.setdefault(stage, []).append(float(ms))
    return {
        "uploads": uploads,
        "batch": batch,
        "elapsed_s": elapsed,
        "images_per_s": summary(batch_rates),
        "stages_ms": {stage: summary(values) for stage, values in sorted(stages.items())},
        "statuses": dict(statuses),
        "unaccounted": missing,
        **counter.per(uploads),
    }


def _put(s3: Any, bucket: str, index: int, source: Path) -> tuple[str, str]:
    """PUT a fixture under a new key (the same photo again is a new asset), as a DAM would."""
    key = f"incoming/{TENANT}/bench/{index:04d}-{source.name}"
    resp = s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=source.read_bytes(),
        ContentType="image/png" if source.suffix == ".png" else "image/jpeg",
        Metadata={"purpose": "web"},
    )
    return key, str(resp.get("VersionId") or str(resp["ETag"]).strip('"'))


def run_recheck(stack: Any, assets_n: int, repeats: int) -> dict[str, Any]:
    """One subject in ``assets_n`` library assets; withdraw, time until all are out.

    Each round withdraws twice, restoring in between: once batched (the
    design of issue 27) and once one asset at a time (``chunk = 1``, the
    design before it), on the same stack and assets. The withdrawals run in a
    function process of their own (``bench.recheck_function``), as on AWS where
    the function and the services do not share a CPU; wall and CPU of that
    process, and the emulator's CPU (this process) over the same phases.
    """
    from quitclaim.adapters.dynamo import DynamoAssets
    from quitclaim.bootstrap import registry_service
    from quitclaim.domain.models import TenantPolicy

    registry = registry_service()
    registry.create_tenant(TenantPolicy(tenant=RECHECK_TENANT))
    portrait = (FACES / "enroll" / "obama" / "obama-portrait.jpg").read_bytes()
    subject = registry.enrol_subject(
        RECHECK_TENANT, "Bench Subject", [portrait], biometric_consent=True
    )
    consent_id = _grant(registry, subject)
    assets = DynamoAssets()
    template, photo = _approved_template(stack, assets)
    began = time.perf_counter()
    _fill_library(stack, assets, template, photo, assets_n)
    setup_s = time.perf_counter() - began
    library = stack.outputs["LibraryBucketName"]
    if _library_count(stack.client("s3"), library, f"{RECHECK_TENANT}/many/") != assets_n:
        raise RuntimeError("the recheck assets did not all reach the library")
    job = {
        "subject": subject,
        "consent_id": consent_id,
        "library": library,
        "assets": assets_n,
        "repeats": repeats,
    }
    result, emulator_cpu = _in_function_process(job)
    found = result["found"]
    for mode, figures in found.items():
        for phase in ("withdrawal", "restore"):
            figures[f"{phase}_emulator_cpu_s"] = emulator_cpu[f"{mode}:{phase}"]
    batched = found["batched"]
    return {
        "assets": assets_n,
        "setup_s": setup_s,
        "chunk": result["chunk"],
        "withdrawal_s": summary(batched["withdrawal_s"]),
        "restore_s": summary(batched["restore_s"]),
        "modes": {
            mode: {name: summary(values) for name, values in figures.items()}
            for mode, figures in found.items()
        },
        "requests_per_asset": result["requests"],
    }


def _in_function_process(job: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """Run the withdrawals in ``bench.recheck_function``; its result, and the emulator's CPU.

    This process only serves (the emulator's threads), so its CPU time
    between a phase's start and end marks is the emulator's for that phase.
    """
    read_fd, write_fd = os.pipe()
    with tempfile.TemporaryFile("w+") as errors:
        child = subprocess.Popen(  # noqa: S603 - our interpreter, our module
            [sys.executable, "-m", "bench.recheck_function", str(write_fd)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            pass_fds=(write_fd,),
            cwd=REPO,
            text=True,
        )
        os.close(write_fd)
        assert child.stdin is not None
        child.stdin.write(json.dumps(job))
        child.stdin.close()
        emulator_cpu: dict[str, list[float]] = {}
        started: dict[str, float] = {}
        result: dict[str, Any] | None = None
        with os.fdopen(read_fd) as lines:
            for line in lines:
                message = json.loads(line)
                if "mark" not in message:
                    result = message
                    continue
                name, _, edge = str(message["mark"]).rpartition(":")
                if edge == "start":
                    started[name] = time.process_time()
                else:
                    took = time.process_time() - started.pop(name)
                    emulator_cpu.setdefault(name, []).append(took)
        if child.wait() != 0 or result is None:
            errors.seek(0)
            raise RuntimeError("bench.recheck_function failed:\n" + errors.read()[-4000:])
    return result, emulator_cpu


def _grant(registry: Any, subject: str) -> str:
    """The subject's consent to web use (the same each time it is granted again)."""
    consent = registry.grant_consent(
        RECHECK_TENANT, subject, ["web"], datetime(2026, 1, 1, tzinfo=UTC), None, source="bench"
    )
    return str(consent.consent_id)


def _approved_template(stack: Any, assets: Any) -> tuple[Any, bytes]:
    """A real approved decision for a photo of the subject, to copy, and the photo.

    The ingest handler's own record shape, not one written by hand.
    """
    from quitclaim.domain.models import AssetStatus
    from quitclaim.domain.records import asset_id_for

    s3 = stack.client("s3")
    uploads = stack.outputs["UploadsBucketName"]
    photo = (UPLOADS / "obama-speech.jpg").read_bytes()
    resp = s3.put_object(
        Bucket=uploads,
        Key=f"incoming/{RECHECK_TENANT}/template.jpg",
        Body=photo,
        Metadata={"purpose": "web"},
    )
    stack.drain(timeout_s=600)
    version = str(resp.get("VersionId") or str(resp["ETag"]).strip('"'))
    template = assets.get(
        RECHECK_TENANT,
        asset_id_for(RECHECK_TENANT, uploads, f"incoming/{RECHECK_TENANT}/template.jpg", version),
    )
    if template is None or template.status is not AssetStatus.APPROVED:
        raise RuntimeError(f"the template upload was not approved: {template}")
    return template, photo


def _fill_library(stack: Any, assets: Any, template: Any, photo: bytes, assets_n: int) -> None:
    """``assets_n`` copies of the approved decision, each with its object in the library."""
    from quitclaim.domain.records import AssetRecord, asset_id_for
    from quitclaim.usecases.asset_decisions import META_ASSET_ID, META_STATUS

    s3 = stack.client("s3")
    uploads = stack.outputs["UploadsBucketName"]
    library = stack.outputs["LibraryBucketName"]
    for i in range(assets_n):
        path = f"many/{i:05d}.jpg"
        source_key = f"incoming/{RECHECK_TENANT}/{path}"
        record: AssetRecord = replace(
            template,
            asset_id=asset_id_for(RECHECK_TENANT, uploads, source_key, "bench"),
            source_key=source_key,
            source_version="bench",
            path=path,
            dest_key=f"{RECHECK_TENANT}/{path}",
        )
        assets.create(record)
        assets.add_appearances(record)
        s3.put_object(
            Bucket=library,
            Key=record.dest_key,
            Body=photo,
            Metadata={META_ASSET_ID: record.asset_id, META_STATUS: record.status.value},
        )


class _Rounds:
    """Withdraw the subject's consent, check the library emptied, grant it again; timed.

    ``mark`` hears ``"<mode>:<phase>:start"`` and ``":end"`` around each timed
    phase (the benchmark's process reads the emulator's CPU at each).
    """

    def __init__(
        self,
        registry: Any,
        subject: str,
        s3: Any,
        library: str,
        assets_n: int,
        counter: RequestCounter | None,
        mark: Callable[[str], None] = lambda name: None,
    ) -> None:
        self._registry = registry
        self._subject = subject
        self._s3 = s3
        self._library = library
        self._assets_n = assets_n
        self._counter = counter
        self._mark = mark
        self.mode = "batched"
        # the last withdrawal's AWS requests per asset (with a counter)
        self.requests: dict[str, float] = {}

    def in_library(self) -> int:
        return _library_count(self._s3, self._library, f"{RECHECK_TENANT}/many/")

    def withdraw_and_restore(self, consent_id: str, figures: dict[str, list[float]]) -> str:
        """One round into ``figures``; the id of the consent granted again."""
        counter = self._counter
        if counter is not None:
            counter.calls.clear()
        self._mark(f"{self.mode}:withdrawal:start")
        started, cpu = time.perf_counter(), time.process_time()
        if counter is not None:
            with counter.counting():
                self._revoke(consent_id)
        else:
            self._revoke(consent_id)
        left = self.in_library()
        figures["withdrawal_s"].append(time.perf_counter() - started)
        figures["withdrawal_cpu_s"].append(time.process_time() - cpu)
        self._mark(f"{self.mode}:withdrawal:end")
        if counter is not None:
            self.requests = counter.per(self._assets_n)["requests"]
        if left:
            raise RuntimeError(f"{left} assets still in the library after the withdrawal")
        self._mark(f"{self.mode}:restore:start")
        started, cpu = time.perf_counter(), time.process_time()
        consent_id = _grant(self._registry, self._subject)
        figures["restore_s"].append(time.perf_counter() - started)
        figures["restore_cpu_s"].append(time.process_time() - cpu)
        self._mark(f"{self.mode}:restore:end")
        if self.in_library() != self._assets_n:
            raise RuntimeError("a new grant did not restore every asset")
        return consent_id

    def _revoke(self, consent_id: str) -> None:
        self._registry.revoke_consent(RECHECK_TENANT, self._subject, consent_id, source="bench")


def _library_count(s3: Any, bucket: str, prefix: str) -> int:
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        count += len(page.get("Contents", []))
    return count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--assets", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    counter = RequestCounter()
    install(counter)
    from devstack.demo import enrol_people
    from devstack.stack import LocalStack
    from quitclaim import bootstrap

    started = time.perf_counter()
    with LocalStack() as stack, stack.use_client_env():
        bootstrap.reset_container()
        bootstrap.set_clock(_Clock())
        stack_s = time.perf_counter() - started
        enrol_people(bootstrap.registry_service(), FACES)
        pipeline = run_pipeline(stack, counter, args.uploads, args.batch) if args.uploads else None
        recheck = run_recheck(stack, args.assets, args.repeats) if args.assets else None
    bootstrap.reset_container()
    args.out.write_text(
        json.dumps({"stack_start_s": stack_s, "pipeline": pipeline, "recheck": recheck}, indent=2)
    )


if __name__ == "__main__":
    main()
