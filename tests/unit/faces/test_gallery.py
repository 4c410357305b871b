"""Gallery matching: exact where it matters, ambiguity falls toward unknown."""

from __future__ import annotations

import dataclasses
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quitclaim.faces import gallery as gallery_module
from quitclaim.faces.gallery import (
    Gallery,
    GalleryCache,
    GalleryMatch,
    encoding_from_bytes,
    encoding_to_bytes,
)

# dlib templates have a norm near 1 and spread over all 128 dimensions.
SPREAD = 1 / np.sqrt(128)


def _templates(seed: int, count: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, SPREAD, size=(count, 128)).astype(np.float32)


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128)
    return v / np.linalg.norm(v)


@st.composite
def galleries(draw: st.DrawFn) -> tuple[Gallery, np.ndarray, list[str]]:
    """A gallery of 1-12 subjects with 1-3 templates each, in shuffled order."""
    subjects = draw(st.integers(min_value=1, max_value=12))
    per_subject = draw(st.lists(st.integers(1, 3), min_size=subjects, max_size=subjects))
    ids = [f"sub-{s:02d}" for s, n in enumerate(per_subject) for _ in range(n)]
    matrix = _templates(draw(st.integers(0, 2**32 - 1)), len(ids))
    order = draw(st.permutations(range(len(ids))))
    ids = [ids[i] for i in order]
    matrix = matrix[list(order)]
    return Gallery.build("acme", 7, zip(ids, matrix, strict=True)), matrix, ids


def _brute_force(
    matrix: np.ndarray, ids: list[str], probe: np.ndarray
) -> tuple[str, float, float | None]:
    distances = np.linalg.norm(matrix.astype(np.float64) - probe.astype(np.float64), axis=1)
    best = int(np.argmin(distances))
    others = [d for d, s in zip(distances, ids, strict=True) if s != ids[best]]
    return ids[best], float(distances[best]), (float(min(others)) if others else None)


@settings(max_examples=60, deadline=None)
@given(galleries(), st.data())
def test_a_probe_equal_to_a_template_matches_its_subject_at_zero(
    built: tuple[Gallery, np.ndarray, list[str]], data: st.DataObject
) -> None:
    # Given a gallery and a probe that is one of its templates
    gallery, matrix, ids = built
    row = data.draw(st.integers(0, len(ids) - 1))
    # When it is matched with the default policy
    (match,) = gallery.match(matrix[row], threshold=0.5, margin=0.05)
    # Then it is that subject, at distance ~0 (random templates are ~1.4 apart)
    assert match.subject_id == ids[row]
    assert match.distance == pytest.approx(0.0, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(galleries(), st.integers(0, 2**32 - 1), st.integers(1, 6))
def test_distances_equal_numpys_brute_force_norm(
    built: tuple[Gallery, np.ndarray, list[str]], seed: int, probes: int
) -> None:
    # Given a gallery and some probes near and far from its templates
    gallery, matrix, ids = built
    rng = np.random.default_rng(seed)
    near = matrix[rng.integers(0, len(ids), probes)] + rng.normal(0, 0.02, (probes, 128))
    batch = np.concatenate([near, _templates(seed + 1, probes)]).astype(np.float32)
    # When they are matched
    matches = gallery.match(batch, threshold=0.6, margin=0.0)
    # Then best and runner-up distances are numpy's, to float precision
    assert len(matches) == len(batch)
    for probe, match in zip(batch, matches, strict=True):
        subject, best, runner_up = _brute_force(matrix, ids, probe)
        assert match.distance == pytest.approx(best, abs=1e-5)
        if runner_up is None:
            assert match.runner_up_distance is None
        else:
            assert match.runner_up_distance == pytest.approx(runner_up, abs=1e-5)
        expected = subject if best <= 0.6 and (runner_up is None or runner_up > best) else None
        assert match.subject_id == expected


# dlib-like spread: most of the variance in the first few dozen directions.
ANISOTROPIC = 0.2 * 0.96 ** np.arange(128)


@st.composite
def exact_cases(draw: st.DrawFn) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Random or clustered galleries (ties included) and probes on and off them."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    subjects = draw(st.integers(1, 10))
    per_subject = draw(st.lists(st.integers(1, 4), min_size=subjects, max_size=subjects))
    ids = [f"sub-{s:02d}" for s, n in enumerate(per_subject) for _ in range(n)]
    shape = (len(ids), 128)
    if draw(st.booleans()):
        matrix = rng.normal(size=shape) * ANISOTROPIC
    else:
        # A few tight clusters shared by several people; spread 0 makes
        # identical templates, so distances tie across subjects.
        centres = rng.normal(size=(draw(st.integers(1, 3)), 128)) * ANISOTROPIC
        spread = draw(st.sampled_from([0.0, 0.01, 0.2]))
        matrix = centres[rng.integers(0, len(centres), len(ids))]
        matrix = matrix + rng.normal(size=shape) * ANISOTROPIC * spread
    matrix = matrix.astype(np.float32)
    if draw(st.booleans()) and subjects > 1:
        # Another subject holds an exact copy of someone's template.
        matrix[-1] = matrix[0]
    order = list(draw(st.permutations(range(len(ids)))))
    ids, matrix = [ids[i] for i in order], matrix[order]
    kinds = draw(st.lists(st.sampled_from(["on", "near", "far", "mean"]), min_size=1, max_size=4))
    picks = rng.integers(0, len(ids), len(kinds))
    probes = [
        matrix[i]
        if kind == "on"
        else matrix[i] + rng.normal(size=128) * ANISOTROPIC * 0.1
        if kind == "near"
        else matrix.mean(axis=0)
        if kind == "mean"
        else rng.normal(size=128) * ANISOTROPIC
        for kind, i in zip(kinds, picks, strict=True)
    ]
    return ids, matrix, np.asarray(probes, dtype=np.float32)


def _reference(
    matrix: np.ndarray, ids: list[str], probe: np.ndarray, threshold: float, margin: float
) -> GalleryMatch:
    """Brute force over every template, in float64 from the float32 values."""
    diff = matrix.astype(np.float64) - probe.astype(np.float64)
    distances = np.sqrt(np.sum(diff * diff, axis=1))
    row = int(np.argmin(distances))
    best = float(distances[row])
    others = distances[np.asarray(ids) != ids[row]]
    runner_up = float(others.min()) if others.size else None
    named = best <= threshold and (runner_up is None or runner_up - best > margin)
    return GalleryMatch(ids[row] if named else None, best, runner_up)


@settings(max_examples=50, deadline=None)
@given(
    case=exact_cases(),
    threshold=st.one_of(st.just("at best"), st.floats(0.0, 2.0)),
    margin=st.one_of(st.just("at gap"), st.floats(0.0, 0.3)),
    seeds=st.sampled_from([1, 2, 16]),
    seed_block=st.sampled_from([2, 256]),
    fit_axes=st.booleans(),
)
def test_the_answer_is_brute_forces_whatever_the_prefilter_skips(
    case: tuple[list[str], np.ndarray, np.ndarray],
    threshold: float | str,
    margin: float | str,
    seeds: int,
    seed_block: int,
    fit_axes: bool,
) -> None:
    # Given a gallery, its prefilter tuned to every path it has (fitted or
    # coordinate axes, few or many seeds, blocked seeding or not)
    ids, matrix, probes = case
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gallery_module, "_SEEDS", seeds)
        patch.setattr(gallery_module, "_SEED_BLOCK", seed_block)
        patch.setattr(gallery_module, "_FIT_MIN_ROWS", 0 if fit_axes else 4096)
        gallery = Gallery.build("acme", 1, zip(ids, matrix, strict=True))
        for probe in probes:
            # and a threshold or margin drawn, or set exactly on the probe's
            # best distance or on its gap to the runner-up
            loose = _reference(matrix, ids, probe, 0.0, 0.0)
            assert loose.distance is not None
            at = loose.distance if threshold == "at best" else float(threshold)
            runner_up = loose.runner_up_distance
            if margin != "at gap":
                gap = float(margin)
            else:
                gap = 0.0 if runner_up is None else runner_up - loose.distance
            # When the probe is matched
            (match,) = gallery.match(probe, threshold=at, margin=gap)
            # Then subject and both distances are brute force's, to the bit
            assert match == _reference(matrix, ids, probe, at, gap)


@settings(max_examples=80, deadline=None)
@given(
    best=st.floats(0.0, 0.4),
    gap_fraction=st.floats(0.0, 0.99),
    margin=st.floats(0.01, 0.1),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_second_subject_within_the_margin_makes_the_face_unknown(
    best: float, gap_fraction: float, margin: float, seed: int
) -> None:
    # Given two subjects whose templates lie at `best` and within `margin` of it
    probe = _templates(seed, 1)[0].astype(np.float64)
    second = best + gap_fraction * margin
    a = probe + best * _unit(seed + 1)
    b = probe + second * _unit(seed + 2)
    gallery = Gallery.build("acme", 1, [("alice", a), ("bob", b)])
    # When the probe is matched under a threshold both pass
    (match,) = gallery.match(probe, threshold=0.5, margin=margin)
    # Then nobody is named: the face goes to review as unknown
    assert match.subject_id is None
    assert match.distance == pytest.approx(best, abs=1e-5)
    assert match.runner_up_distance == pytest.approx(second, abs=1e-5)


@settings(max_examples=60, deadline=None)
@given(best=st.floats(0.0, 0.4), margin=st.floats(0.01, 0.1), seed=st.integers(0, 2**32 - 1))
def test_a_clear_winner_is_named_even_with_a_close_second_template_of_its_own(
    best: float, margin: float, seed: int
) -> None:
    # Given alice with two near-identical templates and bob clearly further off
    probe = _templates(seed, 1)[0].astype(np.float64)
    alice_1 = probe + best * _unit(seed + 1)
    alice_2 = probe + (best + margin / 10) * _unit(seed + 2)
    bob = probe + (best + 2 * margin + 0.01) * _unit(seed + 3)
    gallery = Gallery.build("acme", 1, [("alice", alice_1), ("bob", bob), ("alice", alice_2)])
    # When the probe is matched
    (match,) = gallery.match(probe, threshold=0.5, margin=margin)
    # Then alice's own second template does not count as a rival
    assert match.subject_id == "alice"
    assert match.runner_up_distance == pytest.approx(best + 2 * margin + 0.01, abs=1e-5)


@settings(max_examples=40, deadline=None)
@given(excess=st.floats(1e-3, 0.5), seed=st.integers(0, 2**32 - 1))
def test_a_best_distance_over_the_threshold_is_unknown(excess: float, seed: int) -> None:
    probe = _templates(seed, 1)[0].astype(np.float64)
    gallery = Gallery.build("acme", 1, [("alice", probe + (0.5 + excess) * _unit(seed + 1))])
    (match,) = gallery.match(probe, threshold=0.5, margin=0.05)
    assert match.subject_id is None
    assert match.distance == pytest.approx(0.5 + excess, abs=1e-5)
    assert match.runner_up_distance is None


@settings(max_examples=20, deadline=None)
@given(probes=st.integers(0, 5))
def test_an_empty_gallery_knows_nobody(probes: int) -> None:
    gallery = Gallery.build("acme", 0, [])
    matches = gallery.match(_templates(1, probes), threshold=0.5, margin=0.05)
    assert matches == [GalleryMatch(None, None, None)] * probes
    assert len(gallery) == 0 and gallery.subject_count == 0


def test_blocked_matching_gives_the_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a gallery and probes, matched once in one block
    matrix = _templates(3, 40)
    ids = [f"s{i % 13}" for i in range(40)]
    gallery = Gallery.build("acme", 1, zip(ids, matrix, strict=True))
    probes = matrix[:9] + 0.01
    whole = gallery.match(probes, threshold=0.5, margin=0.05)
    # When the block size forces one probe per block
    monkeypatch.setattr(gallery_module, "_BLOCK_ELEMENTS", 1)
    blocked = gallery.match(probes, threshold=0.5, margin=0.05)
    # Then nothing changes
    assert blocked == whole


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-4.0, 4.0, width=32), min_size=128, max_size=128))
def test_encodings_round_trip_through_512_little_endian_bytes(values: list[float]) -> None:
    encoding = np.array(values, dtype=np.float32)
    blob = encoding_to_bytes(encoding)
    assert len(blob) == 512
    assert blob[:4] == struct.pack("<f", values[0])
    back = encoding_from_bytes(blob)
    assert back.dtype == np.float32 and back.flags.writeable
    assert np.array_equal(back, encoding)


@pytest.mark.parametrize(
    "bad",
    [b"", b"\x00" * 511, b"\x00" * 513, struct.pack("<f", float("nan")) + b"\x00" * 508],
)
def test_malformed_encoding_bytes_are_refused(bad: bytes) -> None:
    with pytest.raises(ValueError):
        encoding_from_bytes(bad)


def test_build_refuses_wrong_shapes_and_missing_ids() -> None:
    with pytest.raises(ValueError):
        Gallery.build("acme", 1, [("alice", np.zeros(127, dtype=np.float32))])
    with pytest.raises(ValueError):
        Gallery.build("acme", 1, [("", np.zeros(128, dtype=np.float32))])
    gallery = Gallery.build("acme", 1, [("alice", np.zeros(128, dtype=np.float32))])
    with pytest.raises(ValueError):
        gallery.match(np.zeros((1, 64), dtype=np.float32), threshold=0.5, margin=0.05)


def test_a_gallery_cannot_be_changed_after_build() -> None:
    gallery = Gallery.build("acme", 1, [("alice", _templates(1, 1)[0])])
    with pytest.raises(dataclasses.FrozenInstanceError):
        gallery.tenant = "other"  # type: ignore[misc]
    with pytest.raises(ValueError):
        gallery.matrix[0, 0] = 1.0


@settings(max_examples=40, deadline=None)
@given(galleries(), st.data())
def test_a_packed_gallery_loads_back_identical_and_matches_the_same(
    case: tuple[Gallery, np.ndarray, list[str]], data: st.DataObject
) -> None:
    # Given a gallery and its packed form
    gallery, matrix, _ids = case
    blob = gallery.to_bytes()
    # When it is loaded back
    loaded = Gallery.from_bytes(blob)
    # Then tenant, version, ids and templates are the same, and so are answers
    assert (loaded.tenant, loaded.version) == ("acme", 7)
    assert np.array_equal(loaded.subject_ids, gallery.subject_ids)
    assert np.array_equal(loaded.matrix, gallery.matrix)
    probe = matrix[data.draw(st.integers(0, len(matrix) - 1))]
    assert loaded.match(probe, threshold=0.5, margin=0.05) == gallery.match(
        probe, threshold=0.5, margin=0.05
    )
    assert loaded.to_bytes() == blob


def test_an_empty_gallery_packs_and_loads() -> None:
    empty = Gallery.build("acme", "v9", [])
    loaded = Gallery.from_bytes(empty.to_bytes())
    assert len(loaded) == 0 and loaded.version == "v9"


def test_a_damaged_packed_gallery_is_refused() -> None:
    blob = Gallery.build("acme", 1, [("alice", _templates(1, 1)[0])]).to_bytes()
    nan = struct.pack("<f", float("nan"))
    for bad in (
        b"",
        b"not a gallery" * 10,
        blob[:-1],
        blob + b"\x00",
        blob[:-4] + nan,
        blob.replace(b'"dim": 128', b'"dim": 64'),
    ):
        with pytest.raises(ValueError):
            Gallery.from_bytes(bad)


def test_templates_too_large_for_float32_squares_are_still_matched_exactly() -> None:
    # Given templates and a probe whose squares overflow float32 (no dlib
    # encoding is near this, but the gallery accepts any finite float32)
    matrix = (_templates(3, 64) * 1e21).astype(np.float32)
    ids = [f"s{i // 2:02d}" for i in range(64)]
    gallery = Gallery.build("acme", 1, zip(ids, matrix, strict=True))
    probe = (matrix[2] * 1.001).astype(np.float32)
    # When it is matched, Then the answer is still brute force's
    (match,) = gallery.match(probe, threshold=1e20, margin=0.0)
    assert match == _reference(matrix, ids, probe, 1e20, 0.0)
    assert match.subject_id == "s01"


def test_a_packed_gallery_of_another_format_version_is_refused_not_misread() -> None:
    # Given a packed gallery whose format byte is not this code's
    blob = Gallery.build("acme", 1, [("alice", _templates(1, 1)[0])]).to_bytes()
    newer = blob.replace(b"QCGALLERY\x01", b"QCGALLERY\x02", 1)
    # When it is loaded, Then it is refused (the caller rebuilds from templates)
    with pytest.raises(ValueError):
        Gallery.from_bytes(newer)


def test_the_prefilter_measures_few_templates_of_a_spread_gallery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given 2,048 anisotropic templates, two per subject, with fitted axes
    monkeypatch.setattr(gallery_module, "_FIT_MIN_ROWS", 0)
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(1024, 128)) * ANISOTROPIC
    matrix = np.repeat(centres, 2, axis=0) + rng.normal(size=(2048, 128)) * ANISOTROPIC * 0.3
    ids = [f"s{i // 2:05d}" for i in range(2048)]
    gallery = Gallery.build("acme", 1, zip(ids, matrix.astype(np.float32), strict=True))
    # and probes: enrolled people photographed again
    probes = (centres[:8] + rng.normal(size=(8, 128)) * ANISOTROPIC * 0.3).astype(np.float32)
    measured: list[int] = []
    screen = Gallery._screen

    def counting(self: Gallery, rows: np.ndarray, *args: object) -> np.ndarray:
        measured.append(len(rows))
        return screen(self, rows, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Gallery, "_screen", counting)
    # When they are matched
    matches = gallery.match(probes, threshold=0.6, margin=0.05)
    # Then each answer is brute force's, and under 10% of templates were measured
    for probe, match in zip(probes, matches, strict=True):
        assert match == _reference(matrix.astype(np.float32), ids, probe, 0.6, 0.05)
    assert len(measured) == len(probes)
    assert max(measured) < 0.1 * len(ids)


def test_an_id_with_a_newline_cannot_be_packed() -> None:
    gallery = Gallery.build("acme", 1, [("a\nb", _templates(1, 1)[0])])
    with pytest.raises(ValueError):
        gallery.to_bytes()


def _gallery(tenant: str, version: int) -> Gallery:
    return Gallery.build(tenant, version, [("s", _templates(version, 1)[0])])


def test_the_cache_returns_what_was_put_for_the_same_version_only() -> None:
    cache = GalleryCache(max_entries=4)
    g = _gallery("acme", 3)
    cache.put(g)
    assert cache.get("acme", 3) is g
    assert cache.get("acme", 4) is None
    assert cache.get("other", 3) is None


def test_a_new_version_drops_the_tenants_old_one() -> None:
    cache = GalleryCache(max_entries=4)
    cache.put(_gallery("acme", 1))
    cache.put(_gallery("beta", 1))
    cache.put(_gallery("acme", 2))
    assert cache.get("acme", 1) is None
    assert cache.get("acme", 2) is not None
    assert cache.get("beta", 1) is not None
    assert len(cache) == 2


def test_the_least_recently_used_tenant_is_evicted_first() -> None:
    cache = GalleryCache(max_entries=2)
    cache.put(_gallery("a", 1))
    cache.put(_gallery("b", 1))
    assert cache.get("a", 1) is not None  # a is now the most recent
    cache.put(_gallery("c", 1))
    assert cache.get("b", 1) is None
    assert cache.get("a", 1) is not None
    assert cache.get("c", 1) is not None
