"""The accuracy audit as an API job: prepare, submit, run, status (in-memory fakes)."""

from __future__ import annotations

from typing import Any

import pytest

from quitclaim.domain.errors import Conflict, NotFound, ValidationFailed
from quitclaim.usecases.accuracy_jobs import AccuracyJobs, job_prefix, staging_prefix
from tests.unit.fakes import FakeStore, FixedClock


class Urls:
    def upload_url(self, key: str, expires_s: int) -> str:
        return f"https://put.example/{key}"


class Queue:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, item: dict[str, Any]) -> None:
        self.sent.append(item)


class StubAudit:
    """Reads every staged photo, drops them, answers a minimal report."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.stored: list[str] = []

    def run(self, tenant: str, labels: str, photos: Any, **kw: Any) -> dict[str, Any]:
        try:
            if self.fail is not None:
                raise self.fail
            read = [photos.read(n) for n in ("a.jpg", "sub/b.jpg")]
        finally:
            deleted, left = photos.drop()
        return {
            "tenant": tenant,
            "data": {"photos": len(read), "people": 2, "attributed_faces": 2},
            "labels_seen": labels,
            "cleanup": {"photos_deleted": deleted, "verified": not left},
        }

    def store(self, report: dict[str, Any], *, job_prefix: str | None = None) -> None:
        self.stored.append(str(job_prefix))
        store, bucket = self.target
        store.write(bucket, f"{job_prefix}.json", b'{"format": 1}')
        store.write(bucket, f"{job_prefix}.html", b"<html>report</html>")


def _jobs(audit: StubAudit) -> tuple[AccuracyJobs, FakeStore, Queue]:
    store, q = FakeStore(), Queue()
    audit.target = (store, "docs")  # type: ignore[attr-defined]
    jobs = AccuracyJobs(
        store=store, bucket="docs", clock=FixedClock(), audit=lambda: audit, urls=Urls(), queue=q
    )
    return jobs, store, q


def _stage(store: FakeStore, tenant: str, job: str) -> None:
    prefix = staging_prefix(tenant, job)
    for key in ("labels.csv", "photos/a.jpg", "photos/sub/b.jpg"):
        store.write("docs", prefix + key, b"bytes")


def test_a_job_runs_queued_and_leaves_no_staged_file() -> None:
    # Given a prepared job whose labels and photos are uploaded
    audit = StubAudit()
    jobs, store, queue = _jobs(audit)
    prepared = jobs.prepare("acme", ["a.jpg", "sub/b.jpg"])
    job = prepared["job_id"]
    url = prepared["photos"]["sub/b.jpg"]
    assert url.endswith(f"audit-staging/acme/{job}/photos/sub/b.jpg")
    _stage(store, "acme", job)
    # When it is submitted, then run by the worker
    queued = jobs.submit("acme", job, target_fmr=0.01, actor="key_1")
    assert queued["status"] == "queued" and queue.sent == [{"tenant": "acme", "job_id": job}]
    done = jobs.run("acme", job)
    # Then it is done with counts, the report is served, and nothing staged remains
    assert done["status"] == "done" and done["counts"]["photos"] == 2
    assert done["cleanup"] == {"photos_deleted": 2, "verified": True, "versions_deleted": 0}
    shown = jobs.status("acme", job)
    assert shown["report"] == {"format": 1}
    assert jobs.report_html("acme", job) == "<html>report</html>"
    staged = [k for (_, k) in store.objects if "/photos/" in k or k.endswith("labels.csv")]
    assert staged == []
    # And a redelivered message does not run it twice
    assert jobs.run("acme", job)["status"] == "done" and len(audit.stored) == 1


def test_another_tenant_cannot_see_the_job() -> None:
    jobs, _, _ = _jobs(StubAudit())
    job = jobs.prepare("acme", ["a.jpg"])["job_id"]
    with pytest.raises(NotFound):
        jobs.status("other", job)


def test_submit_refuses_missing_labels_bad_ids_and_a_second_submit() -> None:
    jobs, store, _ = _jobs(StubAudit())
    job = jobs.prepare("acme", ["a.jpg"])["job_id"]
    with pytest.raises(ValidationFailed) as missing:
        jobs.submit("acme", job)
    assert missing.value.field == "labels"
    with pytest.raises(ValidationFailed) as bad:
        jobs.submit("acme", "../x")
    assert bad.value.field == "job_id"
    _stage(store, "acme", job)
    with pytest.raises(ValidationFailed) as target:
        jobs.submit("acme", job, target_fmr=2.0)
    assert target.value.field == "target_fmr"
    jobs.submit("acme", job)
    with pytest.raises(Conflict):
        jobs.submit("acme", job)


@pytest.mark.parametrize("names", [[], ["../x.jpg"], ["a.jpg", "a.jpg"], ["/abs.jpg"]])
def test_prepare_refuses_bad_photo_names(names: list[str]) -> None:
    jobs, _, _ = _jobs(StubAudit())
    with pytest.raises(ValidationFailed) as refused:
        jobs.prepare("acme", names)
    assert refused.value.field == "photos"


def test_a_failed_audit_is_recorded_and_still_deletes_the_staged_files() -> None:
    # Given a queued job whose labels the audit refuses
    jobs, store, _ = _jobs(StubAudit(fail=ValidationFailed("bad row 3", field="groups")))
    job = jobs.prepare("acme", ["a.jpg", "sub/b.jpg"])["job_id"]
    _stage(store, "acme", job)
    jobs.submit("acme", job)
    # When the worker runs it
    ended = jobs.run("acme", job)
    # Then it failed, naming the code and field only, and the staged files are gone
    assert ended["status"] == "failed"
    assert ended["error"] == {"code": "validation_failed", "field": "groups"}
    assert not [k for (_, k) in store.objects if "/photos/" in k or k.endswith("labels.csv")]
    with pytest.raises(NotFound):
        jobs.report_html("acme", job)


def test_a_crashed_run_is_recorded_failed_and_its_staged_files_deleted() -> None:
    # Given a job whose run crashed midway (status "running", files still staged)
    jobs, store, _ = _jobs(StubAudit())
    job = jobs.prepare("acme", ["a.jpg", "sub/b.jpg"])["job_id"]
    _stage(store, "acme", job)
    jobs.submit("acme", job)
    key = job_prefix("acme", job) + "status.json"
    store.write("docs", key, store.read("docs", key).replace(b'"queued"', b'"running"'))
    # When its message is delivered again
    ended = jobs.run("acme", job)
    # Then the job failed as crashed and nothing staged remains
    assert ended["status"] == "failed" and ended["error"]["code"] == "crashed"
    assert not [k for (_, k) in store.objects if "/photos/" in k or k.endswith("labels.csv")]
