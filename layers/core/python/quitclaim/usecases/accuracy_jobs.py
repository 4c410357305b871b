"""The accuracy audit as an asynchronous API job (docs/accuracy-audit.md).

API Gateway answers within 29 s; an audit takes minutes. So the dashboard (or
a script) first asks for upload URLs (``prepare``: a job id, one presigned PUT
per photo and one for the labels CSV), uploads, then ``submit``s the job: it is
queued (tenant and job id only) and answered 202. The worker function
(``run``) audits with the face engine, deletes the staged photos and labels
(verified), keeps the report with the job and as the tenant's latest evidence,
and records the status, which ``status`` reads back. Every key starts with the
tenant: ``<tenant>/audits/accuracy/jobs/<job>/`` (status, report) and
``audit-staging/<tenant>/<job>/`` (the uploads) in the documents bucket.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from quitclaim.domain import accuracy as acc
from quitclaim.domain.errors import Conflict, NotFound, QuitclaimError, ValidationFailed
from quitclaim.domain.ports import Clock, ObjectStore, ObjectVersions, UploadUrls, WorkQueue
from quitclaim.observability import logger
from quitclaim.usecases.accuracy_audit import AccuracyAudit, StoredPhotos
from quitclaim.usecases.ledger import new_id

JOB_ID = re.compile(r"^acc_[0-9a-f]{16}$")
# Photo names as the labels CSV writes them: folders allowed, nothing leaving the job.
_PHOTO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\- /]{0,199}$")
MAX_PHOTOS = 2000
UPLOAD_URL_SECONDS = 900
LABELS = "labels.csv"
STAGING = "audit-staging/"

# A job's states, in order; "failed" ends it too.
AWAITING_UPLOAD, QUEUED, RUNNING, DONE, FAILED = (
    "awaiting_upload",
    "queued",
    "running",
    "done",
    "failed",
)


def job_prefix(tenant: str, job_id: str) -> str:
    """The job's status and report."""
    return f"{tenant}/audits/accuracy/jobs/{job_id}/"


def staging_prefix(tenant: str, job_id: str) -> str:
    """The job's uploaded labels and photos: a prefix of its own, so that the
    bucket's lifecycle expires what a job never started leaves (2 days)."""
    return f"{STAGING}{tenant}/{job_id}/"


class AccuracyJobs:
    def __init__(
        self,
        *,
        store: ObjectStore,
        bucket: str,
        clock: Clock,
        audit: Callable[[], AccuracyAudit],
        urls: UploadUrls | None = None,
        queue: WorkQueue | None = None,
        versions: ObjectVersions | None = None,
    ) -> None:
        self._store = store
        self._bucket = bucket
        self._clock = clock
        self._audit = audit
        self._urls = urls
        self._queue = queue
        # The bucket is versioned: the staged files' old versions go too (as erasure).
        self._versions = versions

    # -- the API's side ------------------------------------------------------------
    def prepare(self, tenant: str, photos: Sequence[str]) -> dict[str, Any]:
        """A new job: upload URLs for the labels CSV and each photo the labels name."""
        if self._urls is None:
            raise QuitclaimError("no upload URLs configured for accuracy audits")
        if not photos:
            raise ValidationFailed("name at least one photo", field="photos")
        if len(photos) > MAX_PHOTOS:
            raise ValidationFailed(f"at most {MAX_PHOTOS} photos per audit", field="photos")
        for name in photos:
            if not _PHOTO_NAME.fullmatch(name) or ".." in name.split("/"):
                raise ValidationFailed(
                    f"{name!r}: letters, digits, '._- /', not leaving the audit", field="photos"
                )
        if len(set(photos)) != len(photos):
            raise ValidationFailed("a photo is named twice", field="photos")
        job_id = new_id("acc")
        prefix = staging_prefix(tenant, job_id)
        self._write_status(tenant, job_id, {"status": AWAITING_UPLOAD, "photos": sorted(photos)})
        return {
            "job_id": job_id,
            "expires_in_s": UPLOAD_URL_SECONDS,
            "labels": self._urls.upload_url(prefix + LABELS, UPLOAD_URL_SECONDS),
            "photos": {
                n: self._urls.upload_url(f"{prefix}photos/{n}", UPLOAD_URL_SECONDS) for n in photos
            },
        }

    def submit(
        self,
        tenant: str,
        job_id: str,
        *,
        target_fmr: float = acc.DEFAULT_TARGET_FMR,
        per_person: bool = False,
        actor: str = "",
    ) -> dict[str, Any]:
        """Queue a prepared job whose labels are uploaded; its status (``queued``)."""
        if self._queue is None:
            raise QuitclaimError("no queue configured for accuracy audits")
        state = self._read_status(tenant, job_id)
        if state["status"] != AWAITING_UPLOAD:
            raise Conflict(f"the job is {state['status']}, not awaiting its upload")
        if not 0 < target_fmr < 1:
            raise ValidationFailed("target_fmr must be between 0 and 1", field="target_fmr")
        if self._store.head(self._bucket, staging_prefix(tenant, job_id) + LABELS) is None:
            raise ValidationFailed("the labels CSV is not uploaded", field="labels")
        state = {
            **state,
            "status": QUEUED,
            "queued_at": self._clock.now().isoformat(),
            "target_fmr": target_fmr,
            "per_person": per_person,
            "requested_by": actor,
        }
        self._write_status(tenant, job_id, state)
        self._queue.send({"tenant": tenant, "job_id": job_id})
        return self._public(job_id, state)

    def status(self, tenant: str, job_id: str) -> dict[str, Any]:
        """The job's status; when done, its report (JSON) too."""
        state = self._read_status(tenant, job_id)
        shown = self._public(job_id, state)
        if state["status"] == DONE:
            key = job_prefix(tenant, job_id) + "report.json"
            shown["report"] = json.loads(self._store.read(self._bucket, key))
        return shown

    def report_html(self, tenant: str, job_id: str) -> str:
        if self._read_status(tenant, job_id)["status"] != DONE:
            raise NotFound("the job has no report (yet)")
        key = job_prefix(tenant, job_id) + "report.html"
        return self._store.read(self._bucket, key).decode("utf-8")

    def advice(self, tenant: str, job_id: str | None) -> dict[str, Any]:
        """The threshold advice to adopt: the done job's, else the latest stored report's."""
        if job_id is not None:
            report = self.status(tenant, job_id).get("report")
            if report is None:
                raise Conflict("the job is not done; nothing to adopt yet")
        else:
            key = f"{tenant}/audits/accuracy/latest.json"
            if self._store.head(self._bucket, key) is None:
                raise NotFound("no accuracy audit report to adopt")
            report = json.loads(self._store.read(self._bucket, key))
        advice: dict[str, Any] = report["advice"]
        return advice

    # -- the worker's side ---------------------------------------------------------
    def run(self, tenant: str, job_id: str) -> dict[str, Any]:
        """Audit a queued job; staged files deleted (verified) whatever happens."""
        state = self._read_status(tenant, job_id)
        prefix = staging_prefix(tenant, job_id)
        photos = StoredPhotos(self._store, self._bucket, prefix + "photos", state["photos"])
        if state["status"] == RUNNING:
            # Delivered again while "running": the last run crashed (timeout, memory).
            # Nothing staged may stay: delete it and record the failure.
            photos.drop()
            self._delete_verified(prefix + LABELS)
            self._purge_versions(prefix)
            return self._end(tenant, job_id, state, {"code": "crashed", "field": None})
        if state["status"] != QUEUED:
            # A redelivered message after the job ended: nothing to do again.
            logger.info("accuracy job not queued", job_id=job_id, status=state["status"])
            return self._public(job_id, state)
        self._write_status(tenant, job_id, {**state, "status": RUNNING})
        audit = self._audit()
        try:
            try:
                labels = self._store.read(self._bucket, prefix + LABELS).decode("utf-8")
            finally:
                # The labels carry group attributes (special-category data): gone first.
                self._delete_verified(prefix + LABELS)
            report = audit.run(
                tenant,
                labels,
                photos,
                target_fmr=float(state.get("target_fmr", acc.DEFAULT_TARGET_FMR)),
                per_person=bool(state.get("per_person", False)),
            )
        except QuitclaimError as exc:
            photos.drop()  # again: also when the labels could not be read
            self._purge_versions(prefix)
            return self._end(
                tenant, job_id, state, {"code": exc.code, "field": getattr(exc, "field", None)}
            )
        report["cleanup"]["versions_deleted"] = self._purge_versions(prefix)
        audit.store(report, job_prefix=job_prefix(tenant, job_id) + "report")
        ended = {
            **state,
            "status": DONE,
            "ended_at": self._clock.now().isoformat(),
            "counts": {k: report["data"][k] for k in ("photos", "people", "attributed_faces")},
            "cleanup": report["cleanup"],
        }
        self._write_status(tenant, job_id, ended)
        return self._public(job_id, ended)

    def _end(
        self, tenant: str, job_id: str, state: dict[str, Any], error: dict[str, Any]
    ) -> dict[str, Any]:
        """Record a failed job: the error's code and field only (no names, no rows)."""
        ended = {**state, "status": FAILED, "error": error}
        ended["ended_at"] = self._clock.now().isoformat()
        self._write_status(tenant, job_id, ended)
        logger.warning("accuracy job failed", job_id=job_id, code=error["code"])
        return self._public(job_id, ended)

    # -- storage -------------------------------------------------------------------
    def _purge_versions(self, prefix: str) -> int:
        """Every stored version of the staged files deleted, then listed again: none left."""
        if self._versions is None:
            return 0
        staged = [prefix + "photos/", prefix + LABELS]
        found = [v for p in staged for v in self._versions.versions(self._bucket, p)]
        for version in found:
            self._store.delete(self._bucket, version.key, version.version_id)
        if any(self._versions.versions(self._bucket, p) for p in staged):
            raise QuitclaimError("audit photos not deleted: versions remain")
        return len(found)

    def _delete_verified(self, key: str) -> None:
        self._store.delete(self._bucket, key)
        if self._store.head(self._bucket, key) is not None:
            raise QuitclaimError("audit labels not deleted")

    def _status_key(self, tenant: str, job_id: str) -> str:
        return job_prefix(tenant, job_id) + "status.json"

    def _read_status(self, tenant: str, job_id: str) -> dict[str, Any]:
        if not JOB_ID.fullmatch(job_id):
            raise ValidationFailed("job_id is not one this API gave", field="job_id")
        key = self._status_key(tenant, job_id)
        if self._store.head(self._bucket, key) is None:
            raise NotFound("no such accuracy audit job")
        state: dict[str, Any] = json.loads(self._store.read(self._bucket, key))
        return state

    def _write_status(self, tenant: str, job_id: str, state: dict[str, Any]) -> None:
        data = json.dumps(state, sort_keys=True).encode()
        self._store.write(
            self._bucket, self._status_key(tenant, job_id), data, content_type="application/json"
        )

    @staticmethod
    def _public(job_id: str, state: dict[str, Any]) -> dict[str, Any]:
        shown = {"job_id": job_id, "status": state["status"], "photos": len(state["photos"])}
        for k in ("queued_at", "ended_at", "target_fmr", "counts", "cleanup", "error"):
            if k in state:
                shown[k] = state[k]
        return shown
