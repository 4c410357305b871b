"""What an accuracy audit measured with, and why it went stale (issue #25, item 5).

Importable without the face layer (no numpy, no dlib): the daily digest runs in
the reminders function, which has neither. So the deployed engine's name and
its models are restated here as constants; a unit test holds them equal to
the engine's own ``versions`` (tests/unit/accuracy/test_accuracy_stamp.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The deployed engine (faces/yunet_engine.py) and the models it runs.
ENGINE_VERSION = "quitclaim-yunet/6"
MODEL_VERSIONS: Mapping[str, str] = {
    "engine": ENGINE_VERSION,
    "detector": "yunet_s_640_640",
    "detector_check": "yunet_n_640_640",
    "landmarks": "shape_predictor_5_face_landmarks",
    "encoder": "dlib_face_recognition_resnet_model_v1",
}


@dataclass(frozen=True)
class AuditStamp:
    """What an audit measured with: it goes stale when any of this changes."""

    engine_versions: Mapping[str, str] = field(default_factory=dict)
    match_threshold: float = 0.0
    match_margin: float = 0.0


def stale_reasons(measured: AuditStamp, now: AuditStamp) -> list[str]:
    """Why the last audit no longer describes the deployed gate ([] when it still does)."""
    reasons = []
    changed = sorted(
        k
        for k in set(measured.engine_versions) | set(now.engine_versions)
        if measured.engine_versions.get(k) != now.engine_versions.get(k)
    )
    if changed:
        reasons.append("engine or model changed: " + ", ".join(changed))
    if not math.isclose(measured.match_threshold, now.match_threshold):
        reasons.append("match_threshold changed")
    if not math.isclose(measured.match_margin, now.match_margin):
        reasons.append("match_margin changed")
    return reasons


def stamp_of(report: Mapping[str, Any]) -> dict[str, Any]:
    """The small record the digest reads: engine and models, threshold and margin, date."""
    versions = report.get("engine_versions", {})
    return {
        "created_at": report["created_at"],
        "engine_versions": {k: versions[k] for k in MODEL_VERSIONS if k in versions},
        "match_threshold": float(report["policy"]["match_threshold"]),
        "match_margin": float(report["policy"]["match_margin"]),
    }


def stamp_stale_reasons(
    stamp: Mapping[str, Any], match_threshold: float, match_margin: float
) -> list[str]:
    """A stored stamp against today's engine constants and the tenant's policy."""
    return stale_reasons(
        AuditStamp(
            dict(stamp.get("engine_versions", {})),
            float(stamp["match_threshold"]),
            float(stamp["match_margin"]),
        ),
        AuditStamp(dict(MODEL_VERSIONS), match_threshold, match_margin),
    )
