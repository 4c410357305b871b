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
