"""The accuracy audit's stamp: what the digest reads without the face layer (issue #25, item 5)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from quitclaim.bootstrap import face_engine
from quitclaim.domain.accuracy_stamp import MODEL_VERSIONS
from quitclaim.domain.models import TenantPolicy
from quitclaim.usecases.stamp_accuracy import AccuracyStamps, stamp_key
from tests.conftest import REPO_ROOT
from tests.unit.fakes import FakeStore, FakeTenants

REPORT: dict[str, Any] = {
    "tenant": "acme",
    "created_at": "2026-11-26T12:00:00+00:00",
    "engine_versions": {**MODEL_VERSIONS, "dlib": "20.0", "num_jitters": "1"},
    "policy": {"match_threshold": 0.5, "match_margin": 0.05},
}


def test_the_stamped_model_versions_are_the_deployed_engines() -> None:
    # The constants restate the engine's own versions: a new model or engine must change both.
    versions = face_engine().versions
    assert {k: versions[k] for k in MODEL_VERSIONS} == dict(MODEL_VERSIONS)


def test_the_stamp_reads_without_the_face_layer() -> None:
    # Given numpy, OpenCV and dlib unavailable (the reminders function's layers)
    code = (
        "import sys\n"
        "for m in ('numpy', 'cv2', 'dlib', 'PIL'): sys.modules[m] = None\n"
        "import quitclaim.usecases.stamp_accuracy, quitclaim.usecases.digest\n"
        "print('ok')\n"
    )
    path = f"{REPO_ROOT / 'layers' / 'core' / 'python'}"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": path},
        check=False,
    )
    # Then the stamp and the digest import
    assert done.stdout.strip() == "ok", done.stderr


def _stamps() -> tuple[AccuracyStamps, FakeStore, FakeTenants]:
    store, tenants = FakeStore(), FakeTenants()
    tenants.save_tenant(TenantPolicy("acme", match_threshold=0.5, match_margin=0.05))
    return AccuracyStamps(store, "docs", tenants), store, tenants


def test_the_stamp_holds_versions_and_policy_only_and_is_current_until_a_change() -> None:
    # Given an audit's stamp
    stamps, store, tenants = _stamps()
    assert stamps.evidence("acme") is None  # never run
    stamps.write(REPORT)
    stored = store.read("docs", stamp_key("acme")).decode()
    assert '"dlib"' not in stored and "acme" not in stored  # models only; no tenant data
    # Then it is current
    assert stamps.evidence("acme") == {
        "created_at": REPORT["created_at"],
        "stale": False,
        "stale_reasons": [],
    }
    # When the tenant's threshold changes, it is stale, saying why
    tenants.save_tenant(TenantPolicy("acme", match_threshold=0.45, match_margin=0.05))
    assert stamps.evidence("acme")["stale_reasons"] == ["match_threshold changed"]  # type: ignore[index]


def test_an_audit_of_another_engine_is_stale() -> None:
    stamps, _, _ = _stamps()
    stamps.write({**REPORT, "engine_versions": {**MODEL_VERSIONS, "engine": "quitclaim-dlib/2"}})
    evidence = stamps.evidence("acme")
    assert evidence is not None and evidence["stale"]
    assert evidence["stale_reasons"] == ["engine or model changed: engine"]
