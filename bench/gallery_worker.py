"""Gallery matching and loading at 10k, 100k and 1M templates, in one process.

``python -m bench.gallery_worker OUT.json --sizes 10000,100000,1000000``.
Run with one BLAS thread on one CPU (a 2 GB Lambda has about one vCPU).

Templates are synthesised from real dlib encodings, because the prefilter's
pruning depends on how encodings spread (random isotropic vectors would be
unfair to it, and flatter than dlib's). The encodings of every face the
engine finds in the fixtures (``fixtures/faces``), near-duplicates
dropped, give a mean and a covariance, shrunk toward a multiple of the
identity (Ledoit-Wolf) because 86 faces cannot fix 128 dimensions. Each
subject's centre is drawn from that Gaussian and each of its two templates
adds an offset from the same covariance, scaled so two templates of one
person lie ``SAME_PERSON_DISTANCE`` apart on average (what the fixtures'
portraits measure against their uploads: 0.34-0.41); between people the
total spread stays the fixtures'. Half the probes are a fresh sample of an
enrolled subject, half a person who is not enrolled.

Each probe is also matched by ``baseline_match``, the previous algorithm
(float32 distances to every template, the best two subjects re-measured),
on the same gallery in the same process; an untimed pass counts how many
templates the prefilter leaves to be measured.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.labelled import FACES
from quitclaim.faces.gallery import (
    Gallery,
    GalleryMatch,
    encoding_from_bytes,
    encoding_to_bytes,
)

TEMPLATES_PER_SUBJECT = 2
SAME_PERSON_DISTANCE = 0.38
DUPLICATE_DISTANCE = 0.2  # the same photo at another resolution, not another face
THRESHOLD = 0.5
MARGIN = 0.05

Model = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], float]


def fixture_encodings() -> npt.NDArray[np.float64]:
    """Every face the engine finds in the fixture photos, near-duplicates dropped."""
    from quitclaim.faces.dlib_engine import DlibFaceEngine

    engine = DlibFaceEngine()
    kept: list[npt.NDArray[np.float64]] = []
    for path in sorted(FACES.rglob("*")):
        if path.suffix.lower() not in {".jpg", ".jpeg", ".png"}:
            continue
        for face in engine.analyze(engine.decode(path.read_bytes())):
            row = np.asarray(face.encoding, dtype=np.float64)
            if all(np.linalg.norm(row - k) >= DUPLICATE_DISTANCE for k in kept):
                kept.append(row)
    return np.stack(kept)


def stand_in_encodings(count: int = 86) -> npt.NDArray[np.float64]:
    """Random rows at dlib's scale, for ``--quick`` (no model to load, figures meaningless)."""
    rng = np.random.default_rng(0)
    return rng.normal(0.0, 0.05, size=(count, 128)) + rng.normal(0.0, 0.1, size=128)


def shrunk_covariance(
    rows: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Mean and Ledoit-Wolf covariance (shrunk toward a multiple of the identity)."""
    count, dim = rows.shape
    mean = rows.mean(axis=0)
    centred = rows - mean
    sample = centred.T @ centred / count
    scale = np.trace(sample) / dim
    spread = float(((sample - scale * np.eye(dim)) ** 2).sum())
    noise = sum(float(((np.outer(r, r) - sample) ** 2).sum()) for r in centred) / count**2
    shrink = min(noise, spread) / spread
    return mean, (1 - shrink) * sample + shrink * scale * np.eye(dim)


def template_model(real: npt.NDArray[np.float64]) -> Model:
    """(mean, Cholesky factor of the covariance, within-person share of it)."""
    mean, covariance = shrunk_covariance(real)
    within = SAME_PERSON_DISTANCE**2 / 2 / float(np.trace(covariance))
    factor = np.asarray(np.linalg.cholesky(covariance), dtype=np.float64)
    return mean, factor, within


def _draw(model: Model, share: float, count: int, rng: np.random.Generator) -> Any:
    _, factor, _ = model
    return np.sqrt(share) * rng.standard_normal((count, factor.shape[0])) @ factor.T


def synthesise(
    model: Model, size: int, rng: np.random.Generator
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    """``size`` templates, two per subject (rows grouped), and the subjects' centres."""
    mean, _, within = model
    subjects = -(-size // TEMPLATES_PER_SUBJECT)
    centres = mean + _draw(model, 1 - within, subjects, rng)
    matrix = np.empty((size, centres.shape[1]), dtype=np.float32)
    for start in range(0, size, 65_536):
        stop = min(size, start + 65_536)
        owners = np.arange(start, stop) // TEMPLATES_PER_SUBJECT
        matrix[start:stop] = centres[owners] + _draw(model, within, stop - start, rng)
    return matrix, centres


def probes_for(
    model: Model, centres: npt.NDArray[np.float64], count: int, rng: np.random.Generator
) -> npt.NDArray[np.float32]:
    """Alternately an enrolled subject photographed again and a stranger."""
    mean, _, within = model
    enrolled = centres[rng.integers(0, centres.shape[0], count)]
    strangers = mean + _draw(model, 1 - within, count, rng)
    who = np.where((np.arange(count) % 2 == 0)[:, None], enrolled, strangers)
    return (who + _draw(model, within, count, rng)).astype(np.float32)


def baseline_match(gallery: Gallery, probe: npt.NDArray[np.float32]) -> GalleryMatch:
    """The previous ``Gallery.match`` for one probe: every template read in full.

    float32 ``|t|^2 - 2 t.p`` for all templates, the best per subject, the two
    best subjects re-measured in float64.
    """
    matrix, ids = gallery.matrix, gallery.subject_ids
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    stops = np.r_[starts[1:], len(gallery)]
    scores = matrix @ (probe * np.float32(-2.0))
    scores += _squares(gallery)
    two = np.argpartition(np.minimum.reduceat(scores, starts), 1)[:2]

    def exact(group: int) -> float:
        diff = matrix[starts[group] : stops[group]].astype(np.float64) - probe.astype(np.float64)
        return float(np.sqrt(np.min(np.einsum("ij,ij->i", diff, diff))))

    (best, group), (runner_up, _) = sorted((exact(int(g)), int(g)) for g in two)
    named = best <= THRESHOLD and runner_up - best > MARGIN
    return GalleryMatch(str(ids[starts[group]]) if named else None, best, runner_up)


def _same(a: GalleryMatch, b: GalleryMatch) -> bool:
    """Same subject, distances equal to float64 rounding."""
    return bool(
        a.subject_id == b.subject_id
        and a.distance is not None
        and b.distance is not None
        and a.runner_up_distance is not None
        and b.runner_up_distance is not None
        and abs(a.distance - b.distance) <= 1e-9
        and abs(a.runner_up_distance - b.runner_up_distance) <= 1e-9
    )


_SQUARES: dict[int, npt.NDArray[np.float32]] = {}


def _squares(gallery: Gallery) -> npt.NDArray[np.float32]:
    """The baseline's precomputed ``|t|^2`` (built with the gallery, so not timed)."""
    key = id(gallery)
    if key not in _SQUARES:
        _SQUARES.clear()
        _SQUARES[key] = np.einsum("ij,ij->i", gallery.matrix, gallery.matrix, dtype=np.float32)
    return _SQUARES[key]


def _timed(repeats: int, action: Callable[[], object]) -> list[float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return samples


def _from_templates(stored: list[tuple[str, bytes]]) -> Gallery:
    """What a cold container does today: one ``encoding_from_bytes`` per template."""
    return Gallery.build("bench", 1, ((s, encoding_from_bytes(b)) for s, b in stored))


def _measured_rows(gallery: Gallery, probe: npt.NDArray[np.float32]) -> int:
    """Templates whose distance the prefilter left to measure (untimed)."""
    counted: list[int] = []
    screen = Gallery._screen

    def counting(self: Gallery, rows: Any, *args: Any) -> Any:
        counted.append(int(rows.shape[0]))
        return screen(self, rows, *args)

    Gallery._screen = counting  # type: ignore[method-assign,assignment]
    try:
        gallery.match(probe, threshold=THRESHOLD, margin=MARGIN)
    finally:
        Gallery._screen = screen  # type: ignore[method-assign]
    return sum(counted)


def measure(model: Model, size: int, probes: int, load_repeats: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    matrix, centres = synthesise(model, size, rng)
    ids = [f"sub_{i // TEMPLATES_PER_SUBJECT:016x}" for i in range(size)]
    # What DynamoSubjects.templates yields: (subject id, 512 stored bytes).
    stored = [(ids[i], encoding_to_bytes(matrix[i])) for i in range(size)]
    del matrix
    gallery = _from_templates(stored)
    packed = gallery.to_bytes()
    load_templates = _timed(load_repeats, lambda: _from_templates(stored))
    load_packed = _timed(load_repeats, lambda: Gallery.from_bytes(packed))
    stored.clear()

    queries = probes_for(model, centres, probes, rng)
    gallery.match(queries[0], threshold=THRESHOLD, margin=MARGIN)  # warm caches
    baseline_match(gallery, queries[0])
    ours, theirs, agree, named, measured = [], [], 0, 0, []
    for query in queries:
        started = time.perf_counter()
        (match,) = gallery.match(query, threshold=THRESHOLD, margin=MARGIN)
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        old = baseline_match(gallery, query)
        theirs.append(time.perf_counter() - started)
        agree += _same(match, old)
        named += match.subject_id is not None
        measured.append(_measured_rows(gallery, query))
    return {
        "templates": size,
        "subjects": gallery.subject_count,
        "packed_bytes": len(packed),
        "match_s": ours,
        "baseline_match_s": theirs,
        "agree_with_baseline": agree,
        "named": named,
        "measured_rows": measured,
        "load_templates_s": load_templates,
        "load_packed_s": load_packed,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--load-repeats", type=int, default=3)
    parser.add_argument("--faces", choices=("fixtures", "stand-in"), default="fixtures")
    args = parser.parse_args()
    real = fixture_encodings() if args.faces == "fixtures" else stand_in_encodings()
    model = template_model(real)
    results = [
        measure(model, int(size), args.probes, args.load_repeats, seed=index)
        for index, size in enumerate(args.sizes.split(","))
    ]
    args.out.write_text(json.dumps(results))


if __name__ == "__main__":
    main()
