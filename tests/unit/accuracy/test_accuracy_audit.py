"""The accuracy audit on the labelled face fixtures with the deployed engine (issue #25).

The group labels are made up in ``fixture_labels.csv`` (next to this file). Each
photo is analysed once for the whole module: the engine below caches its
answers, so every audit run after the first costs only the statistics.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from quitclaim.bootstrap import face_engine
from quitclaim.domain.accuracy import parse_labels
from quitclaim.domain.errors import QuitclaimError, ValidationFailed
from quitclaim.domain.models import TenantPolicy
from quitclaim.domain.ports import DecodedImage, FaceObservation
from quitclaim.faces import quality
from quitclaim.usecases.accuracy_audit import AccuracyAudit, DirectoryPhotos, StoredPhotos, summary
from tests.conftest import FACES
from tests.unit.fakes import FakeStore, FakeTenants, FixedClock

LABELS = (Path(__file__).parent / "fixture_labels.csv").read_text(encoding="utf-8")
TARGET = 0.02  # 194 impostor pairs here; 1 in 50 needs 150
NAMES = ("alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie")


class OnceEngine:
    """The deployed engine, answering each photo once per test module."""

    def __init__(self) -> None:
        self._engine = face_engine()
        self._decoded: dict[bytes, DecodedImage] = {}
        self._faces: dict[int, list[FaceObservation]] = {}
        self.analysed = 0

    @property
    def versions(self) -> dict[str, str]:
        return self._engine.versions

    def decode(self, data: bytes) -> DecodedImage:
        if data not in self._decoded:
            self._decoded[data] = self._engine.decode(data)
        return self._decoded[data]

    def analyze(self, image: DecodedImage) -> list[FaceObservation]:
        if id(image) not in self._faces:
            self.analysed += 1
            self._faces[id(image)] = self._engine.analyze(image)
        return self._faces[id(image)]


@pytest.fixture(scope="module")
def engine() -> OnceEngine:
    return OnceEngine()


def _audit(engine: OnceEngine, store: FakeStore | None = None) -> AccuracyAudit:
    tenants = FakeTenants()
    tenants.save_tenant(TenantPolicy("acme"))
    return AccuracyAudit(
        tenants=tenants,
        engine_factory=lambda: engine,  # type: ignore[arg-type,return-value]
        clock=FixedClock(),
        quality=quality,
        store=store,
        bucket="docs",
    )


def _run(engine: OnceEngine, threshold: float, **kw: Any) -> dict[str, Any]:
    return _audit(engine).run(
        "acme",
        LABELS,
        DirectoryPhotos(FACES),
        policy=TenantPolicy("acme", match_threshold=threshold),
        target_fmr=TARGET,
        **kw,
    )


@pytest.fixture(scope="module")
def at_policy(engine: OnceEngine) -> dict[str, Any]:
    return _run(engine, 0.5)


@pytest.fixture(scope="module")
def raised(engine: OnceEngine) -> dict[str, Any]:
    return _run(engine, 0.75)


def test_counts_match_a_hand_computation(at_policy: dict[str, Any], engine: OnceEngine) -> None:
    # Faces per person in the labels: alex 2, biden 4, kit 4, obama 7, rose 3, two strangers.
    faces = {"alex": 2, "biden": 4, "kit": 4, "obama": 7, "rose": 3, "s1": 1, "s2": 1}
    genuine = sum(n * (n - 1) // 2 for n in faces.values())  # 1 + 6 + 6 + 21 + 3 = 37
    total = sum(faces.values())  # 22
    impostor = total * (total - 1) // 2 - genuine  # 231 - 37 = 194
    data = at_policy["data"]
    assert (data["photos"], data["labelled_faces"], data["attributed_faces"]) == (18, 22, 22)
    assert (data["genuine_pairs"], data["impostor_pairs"]) == (genuine, impostor) == (37, 194)
    assert (data["people"], data["enrolled"], data["probes"]) == (7, 5, 22 - 5)
    assert data["groups"] == {"g": {"a": 3, "b": 2}, "h": {"x": 1, "y": 4}}
    by_g = at_policy["verification"]["by_group"]["g"]
    # g=a is biden, kit, obama: genuine 6 + 6 + 21; impostor 4*4 + 4*7 + 4*7
    assert by_g["a"]["fnmr"]["comparisons"] == 33
    assert by_g["a"]["fmr"]["comparisons"] == 72
    # across g: (biden, kit, obama) x (alex, rose) = 15 x 5 faces
    assert at_policy["verification"]["across"]["g"]["fmr"]["comparisons"] == 75
    # seven boxed faces in the multi-person photos, all found
    assert at_policy["detection"]["boxed_faces"] == 7
    assert at_policy["detection"]["miss"]["found"] == 7
    # at the default threshold every probe is right
    ident = at_policy["identification"]["overall"]
    assert (ident["right"], ident["unknown"], ident["wrong"]) == (17, 0, 0)
    # each photo was analysed once
    assert engine.analysed == 18


def test_small_groups_are_not_enough_data(at_policy: dict[str, Any]) -> None:
    by_h = at_policy["verification"]["by_group"]["h"]
    # h=x is alex_lacamoire alone with two photos: one genuine pair, no impostors
    assert by_h["x"]["fnmr"]["comparisons"] == 1
    assert by_h["x"]["fnmr"]["status"] == "not enough data"
    assert by_h["x"]["fmr"]["status"] == "not enough data"
    assert by_h["y"]["fmr"]["status"] == "ok"
    assert at_policy["verification"]["by_group"]["g"]["b"]["fmr"]["status"] == "not enough data"


def test_raised_threshold_gives_wrong_matches_and_advice_restores_the_target(
    engine: OnceEngine, raised: dict[str, Any]
) -> None:
    # Given the threshold raised to 0.75: strangers and others match someone
    assert raised["identification"]["overall"]["wrong"] > 0
    assert raised["verification"]["overall"]["fmr"]["rate"] > TARGET
    advice = raised["advice"]
    assert advice["status"] == "ok" and not advice["loosens"]
    assert advice["match_threshold"] < 0.75
    # When the advice is adopted and the audit run again
    policy = advice["policy_change"]
    again = _audit(engine).run(
        "acme",
        LABELS,
        DirectoryPhotos(FACES),
        policy=TenantPolicy(
            "acme", match_threshold=policy["match_threshold"], match_margin=policy["match_margin"]
        ),
        target_fmr=TARGET,
    )
    # Then the target holds again and nobody is named wrongly
    assert again["verification"]["overall"]["fmr"]["rate"] <= TARGET
    assert again["identification"]["overall"]["wrong"] == 0


def test_intervals_widen_as_the_group_shrinks(engine: OnceEngine) -> None:
    # Given a threshold (0.45) at which one genuine pair misses
    report = _run(engine, 0.45)
    v = report["verification"]
    rates = [v["overall"]["fnmr"], v["by_group"]["h"]["y"]["fnmr"], v["by_group"]["g"]["a"]["fnmr"]]
    # Then everyone (5 people), h=y (4) and g=a (3) all hold that miss
    assert [r["people"] for r in rates] == [5, 4, 3]
    assert [r["errors"] for r in rates] == [1, 1, 1]
    # and the interval widens as the group shrinks
    widths = [r["ci95"][1] - r["ci95"][0] for r in rates]
    assert widths[0] < widths[1] < widths[2]


def test_no_names_in_the_report_or_logs_unless_asked(
    engine: OnceEngine, at_policy: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    text = json.dumps(at_policy, allow_nan=False)  # strict JSON for the dashboard
    assert not any(name in text for name in NAMES)
    cleanup = {k: v for k, v in at_policy["cleanup"].items() if k != "photos"}
    assert cleanup == {"photos_deleted": 18, "templates_deleted": 22, "verified": True}
    with caplog.at_level(logging.DEBUG):
        detailed = _run(engine, 0.5, per_person=True)
    assert set(detailed["per_person"]) == set(NAMES)
    logged = " ".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    assert "audit.accuracy_run" in logged
    assert not any(name in logged for name in NAMES)


def test_stored_photos_are_deleted_and_verified(engine: OnceEngine) -> None:
    store = FakeStore()
    names = sorted({f.photo for f in parse_labels(LABELS).faces})
    for name in names:
        store.write("staging", f"acme/audit-1/{name}", (FACES / name).read_bytes())
    audit = _audit(engine, store)
    report = audit.run(
        "acme", LABELS, StoredPhotos(store, "staging", "acme/audit-1", names), target_fmr=TARGET
    )
    assert report["cleanup"]["verified"] is True
    assert not [k for k in store.objects if k[0] == "staging"]
    # The report is kept as evidence, and goes stale when the threshold changes
    audit.store(report)
    assert ("docs", "acme/audits/accuracy/latest.html") in store.objects
    latest = audit.latest("acme")
    assert latest is not None and latest["stale"] == []
    audit._tenants.save_tenant(TenantPolicy("acme", match_threshold=0.45))  # type: ignore[attr-defined]
    shown = summary(audit.latest("acme"))
    assert (
        shown is not None
        and shown["stale"]
        and shown["stale_reasons"] == ["match_threshold changed"]
    )


def test_a_photo_left_behind_fails_the_audit(engine: OnceEngine) -> None:
    class Sticky(DirectoryPhotos):
        def drop(self) -> tuple[int, list[str]]:
            return 0, ["uploads/couple.jpg"]

    with pytest.raises(QuitclaimError):
        _audit(engine).run("acme", LABELS, Sticky(FACES), policy=TenantPolicy("acme"))


def test_the_cli_writes_the_report_and_keeps_the_evidence(
    engine: OnceEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the operator CLI wired to an in-memory tenant and documents bucket
    import cli.main as cli
    import quitclaim.bootstrap as bootstrap

    store = FakeStore()
    service = _audit(engine, store)
    monkeypatch.setattr(bootstrap, "accuracy_audit_service", lambda: service)
    # (the audit chain's bucket is the integration tests' business)
    monkeypatch.setattr(cli, "_run", lambda action: action())
    labels = tmp_path / "labels.csv"
    labels.write_text(LABELS, encoding="utf-8")
    # When the audit runs from the command line
    result = CliRunner().invoke(
        cli.main,
        [
            "audit", "accuracy", "--tenant", "acme", "--labels", str(labels),
            "--photos", str(FACES), "--target-fmr", str(TARGET), "--out", str(tmp_path),
        ],
    )  # fmt: skip
    # Then it prints the summary, writes JSON and HTML, and keeps both as evidence
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout[result.stdout.index("{\n") :])
    assert printed["people"] == 7 and printed["advice"]["status"] == "ok"
    assert json.loads((tmp_path / "accuracy-audit.json").read_text())["data"]["probes"] == 17
    assert "<svg" in (tmp_path / "accuracy-audit.html").read_text()
    assert ("docs", "acme/audits/accuracy/latest.json") in store.objects


def test_staged_photos_are_deleted_even_when_the_labels_are_refused(engine: OnceEngine) -> None:
    store = FakeStore()
    store.write("staging", "acme/audit-2/a.jpg", b"x")
    photos = StoredPhotos(store, "staging", "acme/audit-2", ["a.jpg"])
    with pytest.raises(ValidationFailed):
        _audit(engine).run("acme", "a.jpg,ann,1 2 3\n", photos)
    assert store.objects == {}
