"""Gallery matching and loading at 10k, 100k and 1M templates, in one process.

``python -m bench.gallery_worker OUT.json --sizes 10000,100000,1000000``.
Run with one BLAS thread on one CPU (a 2 GB Lambda has about one vCPU).
Templates are random unit-length vectors, two per subject (the design asks
for several enrolment photos per person); timings do not depend on values.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from quitclaim.faces.gallery import Gallery, encoding_from_bytes, encoding_to_bytes

TEMPLATES_PER_SUBJECT = 2


def _timed(repeats: int, action: Any) -> list[float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return samples


def _from_templates(stored: list[tuple[str, bytes]]) -> Gallery:
    """What a cold container does today: one ``encoding_from_bytes`` per template."""
    return Gallery.build("bench", 1, ((s, encoding_from_bytes(b)) for s, b in stored))


def measure(size: int, probes: int, load_repeats: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    matrix = rng.standard_normal((size, 128), dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    ids = [f"sub_{i // TEMPLATES_PER_SUBJECT:016x}" for i in range(size)]
    # What DynamoSubjects.templates yields: (subject id, 512 stored bytes).
    stored = [(ids[i], encoding_to_bytes(matrix[i])) for i in range(size)]
    del matrix
    gallery = _from_templates(stored)
    packed = gallery.to_bytes()
    load_templates = _timed(load_repeats, lambda: _from_templates(stored))
    load_packed = _timed(load_repeats, lambda: Gallery.from_bytes(packed))
    stored.clear()

    queries = rng.standard_normal((probes, 128), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    gallery.match(queries[0], threshold=0.5, margin=0.05)  # warm caches
    per_probe = []
    for query in queries:
        started = time.perf_counter()
        gallery.match(query, threshold=0.5, margin=0.05)
        per_probe.append(time.perf_counter() - started)
    return {
        "templates": size,
        "subjects": gallery.subject_count,
        "packed_bytes": len(packed),
        "match_s": per_probe,
        "load_templates_s": load_templates,
        "load_packed_s": load_packed,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--load-repeats", type=int, default=3)
    args = parser.parse_args()
    results = [
        measure(int(size), args.probes, args.load_repeats, seed=index)
        for index, size in enumerate(args.sizes.split(","))
    ]
    args.out.write_text(json.dumps(results))


if __name__ == "__main__":
    main()
