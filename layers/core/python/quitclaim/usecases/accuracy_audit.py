"""Accuracy and bias audit (issue #25): the deployed engine on the organisation's labelled photos.

Each photo is analysed once (templates cached for the run only); faces are
attributed to labels by box, enrolment photos pass the enrolment gates, and
the statistics are ``domain/accuracy.py``'s. The photos and templates are
dropped when the audit ends and the report says so; the report holds counts
and rates, names only when per-person detail is asked for. The latest report
is kept in the documents bucket as the DPIA's accuracy evidence.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from quitclaim.domain import accuracy as acc
from quitclaim.domain import accuracy_measure as measure
from quitclaim.domain.accuracy_measure import Attributed
from quitclaim.domain.accuracy_report import render_html
from quitclaim.domain.errors import NotFound, QuitclaimError, ValidationFailed
from quitclaim.domain.models import TenantPolicy
from quitclaim.domain.ports import (
    Clock,
    FaceEngine,
    FaceObservation,
    FaceSharpness,
    ObjectStore,
    PhotoSource,
    TenantRepository,
)
from quitclaim.observability import audit
from quitclaim.usecases.ledger import MIN_ENROL_FACE_PX
from quitclaim.usecases.stamp_accuracy import AccuracyStamps

LEGAL_BASIS = (
    "Group attributes such as ethnic origin, health (glasses are not, a medical aid may be) or "
    "religion (head coverings) are special-category data (GDPR Art. 9(1)); the face templates are "
    "biometric data. The controller needs an Art. 9(2) condition to record and process them for "
    "this audit, e.g. the people's explicit consent (Art. 9(2)(a)) or a legal duty to test for "
    "discrimination (Art. 9(2)(g) with national law, and the AI Act Art. 10(5) for bias "
    "detection), plus an Art. 6 basis, and must record them in its DPIA. Quitclaim deletes "
    "them when the audit "
    "ends; only counts and rates per group are kept."
)
METHOD = (
    "Every photo is analysed once by the deployed engine. A labelled face with a box is found when "
    "a detected face overlaps it with IoU >= 0.5; a photo without boxes is used only when it has "
    "one labelled person and the engine finds exactly one face. Verification compares every two "
    "attributed faces: genuine pairs (one person) miss when farther apart than the threshold, "
    "impostor pairs (two people) falsely match when within it. Identification enrols each person "
    "from their enrolment photos (pose 'enrol', else their first row) through the enrolment gates "
    "and probes every other face with the gate's rule (threshold and margin); "
    "strangers ('unknown') are never enrolled. Intervals: 95 % percentile bootstrap over "
    "people, 1000 rounds, fixed seed."
)
LIMITS = (
    "Rates describe these photos of these people, not the population.",
    "A rate of 1 in N needs about 3N comparisons; fewer are reported as unmeasurable.",
    "Pairs and probes of one person are not independent; intervals resample people.",
    "Group labels are the organisation's own; the audit cannot check them.",
    "Detection is measured only where boxes are given; unlabelled extra faces are not counted.",
)


class AccuracyAudit:
    def __init__(
        self,
        *,
        tenants: TenantRepository,
        engine_factory: Callable[[], FaceEngine],
        clock: Clock,
        quality: FaceSharpness,
        store: ObjectStore | None = None,
        bucket: str | None = None,
    ) -> None:
        self._tenants = tenants
        self._quality = quality
        self._engine_factory = engine_factory
        self._clock = clock
        self._store = store
        self._bucket = bucket

    def run(
        self,
        tenant: str,
        labels_text: str,
        photos: PhotoSource,
        *,
        target_fmr: float = acc.DEFAULT_TARGET_FMR,
        per_person: bool = False,
        policy: TenantPolicy | None = None,
        seed: int = acc.DEFAULT_SEED,
    ) -> dict[str, Any]:
        """Measure, advise, drop the photos and templates; the report (JSON-ready)."""
        if policy is None:
            policy = self._tenants.policy(tenant)
            if policy is None:
                raise NotFound(f"tenant {tenant!r} not found")
        if not 0 < target_fmr < 1:
            raise ValidationFailed("target_fmr must be between 0 and 1", field="target_fmr")
        cache: dict[str, tuple[list[FaceObservation], bool]] = {}
        try:
            # inside: staged photos are deleted even when the labels are refused
            labels = acc.parse_labels(labels_text)
            engine = self._engine_factory()
            report = self._measure(
                tenant, labels, photos, engine, cache, policy, target_fmr, per_person, seed
            )
        finally:
            templates = sum(len(faces) for faces, _ in cache.values())
            cache.clear()
            deleted, left = photos.drop()
        if left:
            raise QuitclaimError(f"audit photos not deleted: {len(left)} remain")
        report["cleanup"] = {
            "photos": photos.kind,
            "photos_deleted": deleted,
            "templates_deleted": templates,
            "verified": not left and not cache,
        }
        audit(
            "audit.accuracy_run",
            tenant=tenant,
            source="accuracy_audit",
            # counts only: how many photos and faces were measured
            results=report["data"]["photos"],
            faces=report["data"]["attributed_faces"],
        )
        return report

    def _faces(
        self,
        engine: FaceEngine,
        photos: PhotoSource,
        name: str,
        cache: dict[str, tuple[list[FaceObservation], bool]],
        bad: set[str],
    ) -> tuple[list[FaceObservation], bool]:
        """The photo's faces, once per run; and whether its one face passes the enrolment gates."""
        if name not in cache:
            try:
                image = engine.decode(photos.read(name))
            except (QuitclaimError, FileNotFoundError):
                bad.add(name)
                cache[name] = ([], False)
                return cache[name]
            faces = engine.analyze(image)
            enrollable = False
            if (
                len(faces) == 1
                and min(faces[0].box.width, faces[0].box.height) >= MIN_ENROL_FACE_PX
            ):
                face = faces[0]
                box = face.box if image.scale == 1 else face.box.scaled(1 / image.scale)
                sharp = self._quality.sharpness(image.frames[face.frame], box)
                enrollable = sharp >= self._quality.MIN_SHARPNESS
            cache[name] = (faces, enrollable)
        return cache[name]

    def _measure(
        self,
        tenant: str,
        labels: acc.Labels,
        photos: PhotoSource,
        engine: FaceEngine,
        cache: dict[str, tuple[list[FaceObservation], bool]],
        policy: TenantPolicy,
        target: float,
        per_person: bool,
        seed: int,
    ) -> dict[str, Any]:
        by_photo: dict[str, list[acc.LabelledFace]] = {}
        for label in labels.faces:
            by_photo.setdefault(label.photo, []).append(label)
        seen = Attributed()
        bad: set[str] = set()
        for photo, rows in by_photo.items():
            faces, enrollable = self._faces(engine, photos, photo, cache, bad)
            seen.add_photo(rows, faces, enrollable)
        matrix = seen.distances()
        pairs = acc.Pairs.build(seen.persons, matrix)
        probes, enrolled, not_enrolled = measure.probes(
            seen.persons, matrix, seen.enrol_rows, seen.enrollable_rows
        )
        grouping = measure.Grouping(labels)
        t, m = policy.match_threshold, policy.match_margin
        report = self._header(tenant, engine, policy, target, seed)
        report["data"] = {
            "photos": len(by_photo),
            "unreadable_photos": len(bad),
            "labelled_faces": len(labels.faces),
            "attributed_faces": len(seen.persons),
            "unattributed_faces": seen.unattributed,
            "people": len(pairs.people),
            "enrolled": len(enrolled),
            "not_enrollable": not_enrolled,
            "probes": len(probes.person),
            "genuine_pairs": int(pairs.genuine.size),
            "impostor_pairs": int(pairs.impostor.size),
            "groups": grouping.sizes(),
        }
        g = grouping
        report["detection"] = measure.detection(seen.found, g.groups, g.attrs, g.values, seed)
        report["verification"] = measure.verification(pairs, grouping, t, seed)
        report["identification"] = measure.identification(probes, grouping, t, m, seed)
        report["advice"] = acc.advise(
            pairs, probes, measure.scopes(grouping), threshold=t, margin=m, target=target, seed=seed
        )
        report["curves"] = measure.curves(pairs, grouping)
        report["method"] = METHOD
        report["limits"] = list(LIMITS)
        report["legal_basis"] = LEGAL_BASIS if grouping.attrs else None
        if per_person:
            report["per_person"] = measure.per_person(pairs, seen.persons, t, seed)
        return report

    def _header(
        self, tenant: str, engine: FaceEngine, policy: TenantPolicy, target: float, seed: int
    ) -> dict[str, Any]:
        """What was measured with: engine, policy, target and the statistics' fixed rules."""
        return {
            "format": acc.REPORT_FORMAT,
            "tenant": tenant,
            "created_at": self._clock.now().isoformat(),
            "engine_versions": dict(engine.versions),
            "policy": {
                "match_threshold": policy.match_threshold,
                "match_margin": policy.match_margin,
            },
            "target_fmr": target,
            "seed": seed,
            "rules": {
                "bootstrap_rounds": acc.BOOTSTRAP_ROUNDS,
                "min_people": acc.MIN_PEOPLE,
                "min_comparisons": acc.MIN_COMPARISONS,
                "iou_found": acc.IOU_FOUND,
                "comparisons_per_inverse_target": acc.COMPARISONS_PER_INVERSE_TARGET,
            },
        }

    # -- the DPIA's evidence -------------------------------------------------------
    def _key(self, tenant: str, suffix: str) -> str:
        return f"{tenant}/audits/accuracy/latest.{suffix}"

    def store(self, report: Mapping[str, Any], *, job_prefix: str | None = None) -> None:
        """Keep the report (JSON and HTML) as the tenant's latest accuracy evidence.

        ``job_prefix``: an API job's copy too (``<prefix>.json`` / ``.html``), which
        its status route serves.
        """
        if self._store is None or self._bucket is None:
            raise QuitclaimError("no store configured for accuracy audits")
        tenant = str(report["tenant"])
        data = json.dumps(report, sort_keys=True).encode()
        html = render_html(report).encode()
        stems = [self._key(tenant, "")[:-1]]
        if job_prefix is not None:
            stems.append(job_prefix)
        for stem in stems:
            self._store.write(self._bucket, stem + ".json", data, content_type="application/json")
            self._store.write(self._bucket, stem + ".html", html, content_type="text/html")
        # The small record the digest reads without the face layer (usecases/stamp_accuracy.py).
        AccuracyStamps(self._store, self._bucket, self._tenants).write(report)

    def latest(self, tenant: str) -> dict[str, Any] | None:
        """The last stored report with ``stale`` (reasons) against today's engine and policy."""
        if self._store is None or self._bucket is None:
            return None
        key = self._key(tenant, "json")
        if self._store.head(self._bucket, key) is None:
            return None
        report: dict[str, Any] = json.loads(self._store.read(self._bucket, key))
        policy = self._tenants.policy(tenant)
        reasons = acc.stale_reasons(
            _stamp(report),
            acc.AuditStamp(
                dict(self._engine_factory().versions),
                policy.match_threshold if policy else 0.0,
                policy.match_margin if policy else 0.0,
            ),
        )
        report["stale"] = reasons
        return report


def summary(report: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The few lines the dashboard, digest and records of processing show."""
    if report is None:
        return None
    overall = report["verification"]["overall"]
    return {
        "created_at": report["created_at"],
        "engine": report["engine_versions"].get("engine"),
        "encoder": report["engine_versions"].get("encoder"),
        "people": report["data"]["people"],
        "fmr": overall["fmr"]["rate"],
        "fnmr": overall["fnmr"]["rate"],
        "wrong": report["identification"]["overall"]["wrong"],
        "advice": report["advice"].get("status"),
        "stale": bool(report.get("stale")),
        "stale_reasons": list(report.get("stale") or []),
    }


def _stamp(report: Mapping[str, Any]) -> acc.AuditStamp:
    return acc.AuditStamp(
        dict(report.get("engine_versions", {})),
        float(report["policy"]["match_threshold"]),
        float(report["policy"]["match_margin"]),
    )


class DirectoryPhotos:
    """Photos read from an operator's directory (the CLI). The audit never copies them.

    ``drop`` deletes nothing of the organisation's own directory: it forgets the bytes read
    and reports what it held.
    """

    kind = "operator's directory: read in place, never copied; bytes dropped from memory"

    def __init__(self, root: Path) -> None:
        self._root = Path(root).resolve()
        self._read: dict[str, int] = {}

    def read(self, name: str) -> bytes:
        path = (self._root / name).resolve()
        if self._root not in path.parents:
            raise ValidationFailed("photo path leaves the photos directory", field="photo")
        data = path.read_bytes()
        self._read[name] = len(data)
        return data

    def drop(self) -> tuple[int, list[str]]:
        count = len(self._read)
        self._read.clear()
        return count, []


class StoredPhotos:
    """Photos uploaded for one audit job under ``prefix`` in a bucket (the API path).

    ``drop`` deletes each and then checks, as erasure does, that none is still
    there; the audit fails loudly when one is.
    """

    kind = "staged in the bucket: deleted, and verified gone"

    def __init__(self, store: ObjectStore, bucket: str, prefix: str, names: list[str]) -> None:
        self._store = store
        self._bucket = bucket
        self._prefix = prefix.rstrip("/") + "/"
        self._names = list(names)

    def read(self, name: str) -> bytes:
        return self._store.read(self._bucket, self._prefix + name)

    def drop(self) -> tuple[int, list[str]]:
        for name in self._names:
            self._store.delete(self._bucket, self._prefix + name)
        left = [n for n in self._names if self._store.head(self._bucket, self._prefix + n)]
        return len(self._names) - len(left), left
