"""Load through the local stack: many uploads, duplicate deliveries, consent churn.

Every upload is a real S3 PUT into the stack's uploads bucket; S3's
notification queues it and the real ingest handler decides it with the real
face engine. While the queues drain, a second thread withdraws, renews and
grants consents through the real HTTP API (``serve_api``), and some S3 events
are delivered a second time (S3 is at-least-once). At the end:

- the conservation checker holds for the tenant;
- every upload has exactly one decision, in the place its status names;
- every decision agrees with the final consent state: no approved image
  shows a person whose consent ended withdrawn.

``run_load`` is what ``tests/e2e/test_load.py`` (in ``make test``) and
``make soak`` (``python -m tests.load --uploads 20000``) run. Images are
small on purpose (the cost of one upload is the stack's, ~16 AWS calls, plus
~0.15 s of encoder time per face): the fixture photos downscaled to
160-240 px wide, and mostly tiny face-free images with unique bytes.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from PIL import Image

from tests.conftest import DEMO_NOW, FACES, REPO_ROOT

TENANT = "load"
PURPOSE = "web"
FACE_WIDTHS = (160, 200, 240)
# Shares of the uploads (faces cost ~0.15 s of encoder time each: see docs/testing.md).
FACE_SHARE = 0.10
BAD_SHARE = 0.02
DUPLICATE_SHARE = 0.05
# Each withdrawal or grant re-decides every image of that person (the recheck path).
CHURN_OPERATIONS = 16
# Three batches of 10 per 25 uploads keep the backlog short: moto computes a queue's
# attributes message by message, so a long backlog slows every poll (not so in SQS).
POLLS_PER_CHUNK = 3
CHUNK = 25


@dataclass
class Upload:
    path: str
    kind: str  # "face", "blank", "bad"
    data: bytes


@dataclass
class ChurnLog:
    """What the churn thread did through the API, and each person's final consent."""

    operations: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    live: dict[str, bool] = field(default_factory=dict)  # subject id -> consent holds now


@dataclass
class LoadReport:
    uploads: int
    face_uploads: int
    blank_uploads: int
    bad_uploads: int
    same_bytes_keys: int
    duplicate_deliveries: int
    churn: dict[str, int]
    churn_errors: list[str]
    seconds: float
    uploads_per_s: float
    statuses: dict[str, int]
    decisions: int
    holds: bool
    violations: list[dict[str, Any]]
    disagreements: list[str]
    unaccounted: list[str]
    withdrawn_subjects: int
    held_for_withdrawn: int
    approved_with_faces: int

    @property
    def ok(self) -> bool:
        return self.holds and not (self.disagreements or self.unaccounted or self.churn_errors)

    def summary(self) -> str:
        verdict = "holds" if self.holds else f"BROKEN ({len(self.violations)} violations)"
        return (
            f"load: {self.uploads} uploads in {self.seconds:.1f} s "
            f"({self.uploads_per_s:.1f} uploads/s), {self.duplicate_deliveries} duplicate "
            f"deliveries, {sum(self.churn.values())} consent changes; conservation {verdict}; "
            f"statuses {dict(sorted(self.statuses.items()))}; "
            f"disagreements {len(self.disagreements)}, unaccounted {len(self.unaccounted)}"
        )

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok, "summary": self.summary()}


# ------------------------------------------------------------------ the images


def _jpeg(image: Image.Image, quality: int = 80) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def face_variants(faces: Path = FACES) -> list[bytes]:
    """Each fixture upload downscaled to 160, 200 and 240 px wide (39 distinct images)."""
    variants = []
    for source in sorted((faces / "uploads").iterdir()):
        with Image.open(source) as opened:
            opened.draft("RGB", (480, 480))  # JPEG: decode at a fraction of the size
            image = opened.convert("RGB")
        for width in FACE_WIDTHS:
            height = max(1, round(image.height * width / image.width))
            variants.append(_jpeg(image.resize((width, height), Image.Resampling.LANCZOS)))
    return variants


def blank(rng: random.Random) -> bytes:
    """A tiny face-free image with unique bytes: noise, 24-64 px."""
    width, height = rng.randint(24, 64), rng.randint(24, 64)
    image = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    if rng.random() < 0.3:
        out = io.BytesIO()
        image.save(out, "PNG")
        return out.getvalue()
    return _jpeg(image, quality=60)


def bad(rng: random.Random, face: bytes) -> tuple[str, bytes]:
    """A file the gate must reject: not an image, empty, or cut off."""
    choice = rng.randrange(4)
    if choice == 0:
        return "bad.jpg", b"\xff\xd8\xff\xe0 not really a jpeg"
    if choice == 1:
        return "empty.png", b""
    if choice == 2:
        return "notes.jpg", rng.randbytes(200)
    return "cut.jpg", face[: len(face) // 3]


def plan(count: int, seed: int, faces: Path = FACES) -> list[Upload]:
    """``count`` uploads: faces (same bytes under many keys), blanks, bad files."""
    rng = random.Random(seed)
    variants = face_variants(faces)
    uploads = []
    for index in range(count):
        roll = rng.random()
        if roll < BAD_SHARE:
            name, data = bad(rng, rng.choice(variants))
            uploads.append(Upload(f"batch-{index // 100}/{index}-{name}", "bad", data))
        elif roll < BAD_SHARE + FACE_SHARE:
            data = variants[rng.randrange(len(variants))]
            uploads.append(Upload(f"batch-{index // 100}/{index}-people.jpg", "face", data))
        else:
            uploads.append(Upload(f"batch-{index // 100}/{index}-blank.jpg", "blank", blank(rng)))
    return uploads


# ------------------------------------------------------------------ the churn


class Churn(threading.Thread):
    """Withdraws, renews and grants consents through the HTTP API while queues drain."""

    def __init__(
        self,
        base_url: str,
        key: str,
        consents: dict[str, str],
        operations: int,
        seed: int,
        now: datetime,
    ) -> None:
        super().__init__(name="load-churn", daemon=True)
        self.base_url, self.key, self.now = base_url, key, now
        self.current = dict(consents)  # subject id -> its latest consent id
        self.planned = operations
        self.rng = random.Random(seed)
        self.log = ChurnLog(live={sid: True for sid in consents})
        self.stop = threading.Event()
        # The upload loop releases one step at a time, so the changes spread over the run.
        self.go = threading.Semaphore(0)

    def run(self) -> None:
        subjects = sorted(self.current)
        for _ in range(self.planned):
            self.go.acquire()
            if self.stop.is_set():
                break
            self.step(self.rng.choice(subjects))

    def halt(self) -> None:
        self.stop.set()
        self.go.release()
        self.join()

    def step(self, subject: str) -> None:
        if not self.log.live[subject]:
            self.grant(subject)
        elif self.rng.random() < 0.5:
            self.revoke(subject)
        else:
            self.renew(subject)

    def finish(self, withdrawn: str, granted: str) -> None:
        """End with one person withdrawn and one holding a fresh consent, whatever came before."""
        if self.log.live[withdrawn]:
            self.revoke(withdrawn)
        if self.log.live[granted]:
            self.revoke(granted)
        self.grant(granted)

    def revoke(self, subject: str) -> None:
        path = f"/subjects/{subject}/consents/{self.current[subject]}/revoke"
        if self._post(path, {}, "revoke") is not None:
            self.log.live[subject] = False

    def renew(self, subject: str) -> None:
        path = f"/subjects/{subject}/consents/{self.current[subject]}/renew"
        expires = self.now + timedelta(days=self.rng.randint(30, 900))
        self._post(path, {"expires_at": expires.isoformat()}, "renew")

    def grant(self, subject: str) -> None:
        body = {
            "purposes": [PURPOSE],
            "valid_from": (self.now - timedelta(days=1)).isoformat(),
            "expires_at": (self.now + timedelta(days=365)).isoformat(),
            "signer": "the person",
            "form_version": "load-1",
        }
        made = self._post(f"/subjects/{subject}/consents", body, "grant")
        if made is not None:
            self.current[subject] = made["consent_id"]
            self.log.live[subject] = True

    def _post(self, path: str, body: dict[str, Any], name: str) -> Any:
        request = urllib.request.Request(
            self.base_url + path,
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                self.log.operations[name] += 1
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            # The status only: error bodies may echo ids, never anything secret, but stay terse.
            self.log.errors.append(f"{name} -> HTTP {exc.code}")
            return None


# ------------------------------------------------------------------ the run


@dataclass
class World:
    stack: Any
    admin_key: str
    subjects: dict[str, str]  # subject id -> fixture person
    consents: dict[str, str]  # subject id -> consent id


def set_up(stack: Any, now: datetime, tenant: str = TENANT) -> World:
    """A tenant with the five fixture people enrolled, each with a valid web consent."""
    from quitclaim.bootstrap import onboarding_service, registry_service

    with stack.lock:
        issued = onboarding_service().create_tenant(tenant)
        registry = registry_service()
        subjects, consents = {}, {}
        for folder in sorted((FACES / "enroll").iterdir()):
            photo = next(iter(sorted(folder.iterdir()))).read_bytes()
            sid = registry.enrol_subject(
                tenant, f"Person {len(subjects) + 1}", [photo], biometric_consent=True
            )
            consent = registry.grant_consent(
                tenant, sid, [PURPOSE], now - timedelta(days=1), now + timedelta(days=365)
            )
            subjects[sid] = folder.name
            consents[sid] = consent.consent_id
        stack.drain()
    return World(stack, issued.secret, subjects, consents)


class _Deliveries:
    """Every S3 event body the ingest function receives (for redelivery)."""

    def __init__(self) -> None:
        self.bodies: list[str] = []

    def __call__(self, function: str, event: dict[str, Any]) -> None:
        if function != "IngestFunction":
            return
        for record in event.get("Records", []):
            body = record.get("body", "")
            if '"Records"' in body:
                self.bodies.append(body)


@contextmanager
def _observing(stack: Any, deliveries: _Deliveries) -> Iterator[None]:
    stack.runtime.observers.append(deliveries)
    try:
        yield
    finally:
        stack.runtime.observers.remove(deliveries)


def run_load(
    world: World,
    count: int,
    *,
    seed: int = 2026,
    tenant: str = TENANT,
    churn_ops: int = 0,
    progress: Callable[[str], None] | None = None,
) -> LoadReport:
    """Upload ``count`` files while consents churn; drain; check. Returns the figures.

    ``progress`` hears a line every 1,000 uploads and at each phase (the soak runs an hour).
    """
    from devstack.api_server import serve_api

    stack = world.stack
    uploads = plan(count, seed)
    rng = random.Random(seed + 1)
    s3, sqs = stack.client("s3"), stack.client("sqs")
    bucket, queue = stack.outputs["UploadsBucketName"], stack.outputs["IngestQueueUrl"]
    deliveries = _Deliveries()
    redelivered = 0
    ops = churn_ops or CHURN_OPERATIONS
    subjects = sorted(world.subjects)
    with serve_api(stack) as base_url, _observing(stack, deliveries):
        churn = Churn(base_url, world.admin_key, world.consents, ops, seed, stack.clock.now())
        started = time.perf_counter()
        churn.start()
        chunks = range(0, len(uploads), CHUNK)
        # Chunk index -> steps the churn thread takes after it (while the polls run); a short
        # run has fewer chunks than changes, so a chunk may release more than one.
        steps = Counter(round(i * len(chunks) / ops) for i in range(ops))
        try:
            for number, first in enumerate(chunks):
                for _ in range(steps[number]):
                    churn.go.release()
                for upload in uploads[first : first + CHUNK]:
                    s3.put_object(
                        Bucket=bucket,
                        Key=f"incoming/{tenant}/{upload.path}",
                        Body=upload.data,
                        Metadata={"purpose": PURPOSE},
                    )
                # S3 delivers some events twice, a while after the first time.
                for body in _sample(rng, deliveries.bodies, DUPLICATE_SHARE * CHUNK):
                    sqs.send_message(QueueUrl=queue, MessageBody=body)
                    redelivered += 1
                for _ in range(POLLS_PER_CHUNK):
                    stack.runtime.poll_once()
                done = first + CHUNK
                if progress is not None and done % 1000 == 0:
                    elapsed = time.perf_counter() - started
                    progress(f"{done}/{len(uploads)} uploaded, {elapsed:.0f} s")
            if progress is not None:
                progress(f"all uploaded, draining, {time.perf_counter() - started:.0f} s")
            churn.halt()
            churn.finish(withdrawn=subjects[0], granted=subjects[-1])
            stack.drain(timeout_s=max(60.0, count * 0.5))
            for body in _sample(rng, deliveries.bodies, DUPLICATE_SHARE * CHUNK):
                sqs.send_message(QueueUrl=queue, MessageBody=body)
                redelivered += 1
            stack.drain(timeout_s=120.0)
        finally:
            if churn.is_alive():
                churn.halt()
        seconds = time.perf_counter() - started
    if progress is not None:
        progress(f"drained in {seconds:.0f} s; checking")
    return _account(world, uploads, churn.log, redelivered, seconds, tenant)


def _sample(rng: random.Random, items: list[str], share: float) -> list[str]:
    wanted = min(len(items), int(share) + (1 if rng.random() < share % 1 else 0))
    return rng.sample(items, wanted) if wanted else []


def _account(
    world: World,
    uploads: list[Upload],
    churn: ChurnLog,
    redelivered: int,
    seconds: float,
    tenant: str,
) -> LoadReport:
    from quitclaim.bootstrap import conservation_service

    with world.stack.lock:
        checker = conservation_service()
        report = checker.check(tenant)
        records = list(checker._records(tenant))
    by_path: dict[str, list[Any]] = {}
    for record in records:
        by_path.setdefault(record.path, []).append(record)
    unaccounted = [u.path for u in uploads if len(by_path.get(u.path, [])) != 1]
    withdrawn = {sid for sid, live in churn.live.items() if not live}
    disagreements, held_for_withdrawn, approved_with_faces = [], 0, 0
    kinds = {u.path: u.kind for u in uploads}
    for record in records:
        named = set(record.subject_ids) & withdrawn
        status = record.status.value
        if named and status == "approved" and "released" not in record.review:
            disagreements.append(f"{record.asset_id}: approved, names a withdrawn person")
        if named and status != "approved":
            held_for_withdrawn += 1
        if status == "approved" and record.subject_ids:
            approved_with_faces += 1
        if kinds.get(record.path) == "bad" and status != "rejected":
            disagreements.append(f"{record.asset_id}: a bad file was {status}")
        if kinds.get(record.path) == "blank" and status != "approved":
            disagreements.append(f"{record.asset_id}: a face-free image was {status}")
    distinct = Counter(u.data for u in uploads if u.kind == "face")
    return LoadReport(
        uploads=len(uploads),
        face_uploads=sum(u.kind == "face" for u in uploads),
        blank_uploads=sum(u.kind == "blank" for u in uploads),
        bad_uploads=sum(u.kind == "bad" for u in uploads),
        same_bytes_keys=sum(n for n in distinct.values() if n > 1),
        duplicate_deliveries=redelivered,
        churn=dict(churn.operations),
        churn_errors=churn.errors,
        seconds=round(seconds, 2),
        uploads_per_s=round(len(uploads) / seconds, 2) if seconds else 0.0,
        statuses=dict(Counter(r.status.value for r in records)),
        decisions=report.decisions,
        holds=report.holds,
        violations=[asdict(v) for v in report.violations[:50]],
        disagreements=disagreements[:50],
        unaccounted=unaccounted[:50],
        withdrawn_subjects=len(withdrawn),
        held_for_withdrawn=held_for_withdrawn,
        approved_with_faces=approved_with_faces,
    )


def write_report(report: LoadReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.as_json(), indent=2, default=str), encoding="utf-8")


@contextmanager
def own_stack(stage: str) -> Iterator[Any]:
    """A stack of its own beside any other in this process (the emulator is shared)."""
    from devstack.stack import LocalStack
    from quitclaim import bootstrap

    saved = dict(os.environ)
    stack = LocalStack(
        template_path=REPO_ROOT / "infra" / "template.yaml",
        stack_name=f"quitclaim-{stage}",
        parameters={"Stage": stage, "IngestBatchSize": "10"},
        control=False,
    )
    with stack:
        try:
            with stack.lock:
                os.environ.update(stack.client_env())
                bootstrap.reset_container()
                stack.clock.set(DEMO_NOW)
            yield stack
        finally:
            with stack.lock:
                os.environ.clear()
                os.environ.update(saved)
                bootstrap.reset_container()


def _progress(line: str) -> None:
    print(f"load: {line}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """``make soak``: the load run at scale; prints its figures, exits 1 if anything broke."""
    parser = argparse.ArgumentParser(prog="python -m tests.load")
    parser.add_argument("--uploads", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--churn", type=int, default=40, help="consent changes (API calls)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "soak-report.json")
    args = parser.parse_args(argv)
    with own_stack("soak") as stack:
        world = set_up(stack, DEMO_NOW)
        report = run_load(
            world, args.uploads, seed=args.seed, churn_ops=args.churn, progress=_progress
        )
    write_report(report, args.out)
    print(report.summary())
    print(json.dumps({"statuses": report.statuses, "churn": report.churn}, sort_keys=True))
    if not report.ok:
        print(json.dumps(report.as_json()["violations"][:10], default=str))
    print(f"report: {args.out}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
