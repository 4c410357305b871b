"""Enrolled templates of one tenant, packed for vectorised matching.

A gallery is immutable and versioned; a warm function keeps recent ones in
``GalleryCache`` keyed by ``(tenant, version)`` so an unchanged gallery is
never reloaded. Matching is exact (brute force's answer) but reads most
templates only through a quarter-size projection that bounds their distance.
Templates are biometric data: nothing here logs them.
"""

from __future__ import annotations

import json
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from quitclaim.domain.ports import Encoding, GalleryMatch, GalleryVersion

ENCODING_DIM: Final = 128
_WIRE_DTYPE: Final = np.dtype("<f4")
ENCODING_BYTES: Final = ENCODING_DIM * _WIRE_DTYPE.itemsize

"""Whatever the tenant record counts gallery changes with (a number today)."""

# The packed form (``Gallery.to_bytes``): magic, a little-endian uint32 length
# and a JSON header, the distinct subject ids (UTF-8, newline-separated), one
# uint32 template count per id, then the float32 matrix, rows grouped by id.
# The prefilter's index is derived from the matrix on every load, never
# stored: a blob cannot carry an index that disagrees with its templates, and
# blobs written before the index existed load unchanged. Another format
# version is refused (the caller rebuilds from the stored templates).
_PACKED_MAGIC: Final = b"QCGALLERY\x01"
_COUNT_DTYPE: Final = np.dtype("<u4")

# Elements of one (probes x templates) bound block: bounds the scratch
# memory of a match against a million templates to ~64 MiB of float32.
_BLOCK_ELEMENTS: Final = 1 << 24

# The prefilter. Each template is stored a second time, rotated onto the
# gallery's principal axes (fitted when the gallery is built) and cut to its
# first _HEAD_DIM coordinates, the length of the rest and its squared length:
# 32 floats. From those, one float32 product per probe gives a lower bound of
# every squared distance while reading a quarter of the memory; only the
# templates whose bound does not rule them out get their distance measured.
_HEAD_DIM: Final = 30
_INDEX_WIDTH: Final = _HEAD_DIM + 2
_BASIS_SAMPLE: Final = 65_536  # rows the axes are fitted on (any axes are exact)
# Below this many rows the axes are not fitted (the coordinate axes serve):
# the whole match is well under a millisecond, less than the fit itself.
_FIT_MIN_ROWS: Final = 4096
_BUILD_ROWS: Final = 8192  # rows projected or measured at once (scratch stays in cache)
_SEED_BLOCK: Final = 256  # the seeds are the lowest bounds of the lowest blocks
_SEEDS: Final = 16
# float32 unit roundoff; the bound's rounding error is a few hundred of them.
_UNIT_ROUNDOFF: Final = 2.0**-24
# Squared lengths the float32 bound and screen hold without overflowing
# (dlib's are about 2; anything near this is not a dlib encoding).
_FLOAT32_SQUARES: Final = 1e30


def encoding_to_bytes(encoding: npt.ArrayLike) -> bytes:
    """128 float32 little-endian (512 bytes): the stored form of a template."""
    vector = _as_encoding(encoding)
    return vector.astype(_WIRE_DTYPE, copy=False).tobytes()


def encoding_from_bytes(data: bytes) -> Encoding:
    """Inverse of ``encoding_to_bytes``; a writable native float32 (128,) array."""
    if len(data) != ENCODING_BYTES:
        raise ValueError(f"an encoding is {ENCODING_BYTES} bytes, got {len(data)}")
    vector = np.frombuffer(data, dtype=_WIRE_DTYPE).astype(np.float32)
    if not np.all(np.isfinite(vector)):
        raise ValueError("the encoding holds non-finite values")
    return vector


def _as_encoding(encoding: npt.ArrayLike) -> Encoding:
    vector = np.asarray(encoding, dtype=np.float32)
    if vector.shape != (ENCODING_DIM,):
        raise ValueError(f"an encoding has shape ({ENCODING_DIM},), got {vector.shape}")
    if not np.all(np.isfinite(vector)):
        raise ValueError("the encoding holds non-finite values")
    return vector


@dataclass(frozen=True)
class Gallery:
    """One tenant's templates: ``matrix`` row ``i`` belongs to ``subject_ids[i]``.

    Rows are kept grouped by subject (sorted by id), so a row's subject is
    found by bisecting the group starts.
    """

    tenant: str
    version: GalleryVersion
    subject_ids: npt.NDArray[np.str_]
    matrix: npt.NDArray[np.float32]
    _group_starts: npt.NDArray[np.intp] = field(init=False, repr=False, compare=False)
    _group_ids: npt.NDArray[np.str_] = field(init=False, repr=False, compare=False)
    _mean: npt.NDArray[np.float64] = field(init=False, repr=False, compare=False)
    _basis: npt.NDArray[np.float64] = field(init=False, repr=False, compare=False)
    _index: npt.NDArray[np.float32] = field(init=False, repr=False, compare=False)
    _radius: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ids = np.asarray(self.subject_ids, dtype=np.str_).reshape(-1)
        matrix = np.asarray(self.matrix, dtype=np.float32)
        if matrix.size == 0:
            matrix = matrix.reshape(0, ENCODING_DIM)
        if matrix.ndim != 2 or matrix.shape[1] != ENCODING_DIM:
            raise ValueError(f"matrix must be (n, {ENCODING_DIM}), got {matrix.shape}")
        if ids.shape[0] != matrix.shape[0]:
            raise ValueError("subject_ids and matrix rows differ in number")
        if not np.all(np.isfinite(matrix)):
            raise ValueError("the gallery holds non-finite values")
        order = np.argsort(ids, kind="stable")
        ids = ids[order]
        matrix = np.ascontiguousarray(matrix[order])
        if ids.size:
            starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        else:
            starts = np.zeros(0, dtype=np.intp)
        mean, basis = _principal_axes(matrix)
        index, radius = _project(matrix, mean, basis)
        for array in (ids, matrix, starts, mean, basis, index):
            array.flags.writeable = False
        object.__setattr__(self, "subject_ids", ids)
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "_group_starts", starts.astype(np.intp))
        object.__setattr__(self, "_group_ids", ids[starts])
        object.__setattr__(self, "_mean", mean)
        object.__setattr__(self, "_basis", basis)
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_radius", radius)

    @classmethod
    def build(
        cls, tenant: str, version: GalleryVersion, items: Iterable[tuple[str, npt.ArrayLike]]
    ) -> Gallery:
        """Pack ``(subject_id, encoding)`` pairs; several per subject are welcome."""
        ids: list[str] = []
        rows: list[Encoding] = []
        for subject_id, encoding in items:
            if not subject_id:
                raise ValueError("a template needs a subject id")
            ids.append(subject_id)
            rows.append(_as_encoding(encoding))
        matrix = np.stack(rows) if rows else np.zeros((0, ENCODING_DIM), dtype=np.float32)
        return cls(tenant, version, np.asarray(ids, dtype=np.str_), matrix)

    def to_bytes(self) -> bytes:
        """The whole gallery as one blob, loaded again by ``from_bytes``.

        Rebuilding a million templates from their per-template bytes costs
        seconds of Python per row; this form loads with a few array copies.
        """
        ids = [str(i) for i in self._group_ids]
        if any("\n" in i for i in ids):
            raise ValueError("a subject id holds a newline; it cannot be packed")
        id_blob = "\n".join(ids).encode("utf-8")
        stops = np.r_[self._group_starts[1:], len(self)]
        counts = (stops - self._group_starts).astype(_COUNT_DTYPE)
        header = json.dumps(
            {
                "tenant": self.tenant,
                "version": self.version,
                "rows": len(self),
                "subjects": self.subject_count,
                "dim": ENCODING_DIM,
                "id_bytes": len(id_blob),
            }
        ).encode("utf-8")
        return b"".join(
            (
                _PACKED_MAGIC,
                struct.pack("<I", len(header)),
                header,
                id_blob,
                counts.tobytes(),
                self.matrix.astype(_WIRE_DTYPE, copy=False).tobytes(),
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Gallery:
        """Inverse of ``to_bytes``; ``ValueError`` on anything malformed."""
        view = memoryview(data)
        start = len(_PACKED_MAGIC)
        if bytes(view[:start]) != _PACKED_MAGIC or len(view) < start + 4:
            raise ValueError("not a packed gallery")
        (header_len,) = struct.unpack_from("<I", view, start)
        pos = start + 4
        try:
            header = json.loads(bytes(view[pos : pos + header_len]))
            rows, subjects = int(header["rows"]), int(header["subjects"])
            id_bytes, dim = int(header["id_bytes"]), int(header["dim"])
            tenant, version = str(header["tenant"]), header["version"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError("the packed gallery's header is damaged") from exc
        if dim != ENCODING_DIM or min(rows, subjects, id_bytes) < 0:
            raise ValueError("the packed gallery's header is inconsistent")
        pos += header_len
        counts_at = pos + id_bytes
        matrix_at = counts_at + subjects * _COUNT_DTYPE.itemsize
        if len(view) != matrix_at + rows * ENCODING_BYTES:
            raise ValueError("the packed gallery has the wrong length")
        ids = bytes(view[pos:counts_at]).decode("utf-8").split("\n") if subjects else []
        counts = np.frombuffer(view, dtype=_COUNT_DTYPE, count=subjects, offset=counts_at)
        if len(ids) != subjects or int(counts.sum()) != rows:
            raise ValueError("the packed gallery's ids and rows disagree")
        matrix = np.frombuffer(view, dtype=_WIRE_DTYPE, count=rows * ENCODING_DIM, offset=matrix_at)
        return cls(
            tenant,
            version,
            np.repeat(np.asarray(ids, dtype=np.str_), counts),
            matrix.reshape(rows, ENCODING_DIM).astype(np.float32),
        )

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def subject_count(self) -> int:
        return int(self._group_starts.shape[0])

    @property
    def nbytes(self) -> int:
        """Approximate memory held (for cache sizing)."""
        return int(self.matrix.nbytes + self.subject_ids.nbytes + self._index.nbytes)

    def match(
        self, encodings: npt.ArrayLike, *, threshold: float, margin: float
    ) -> list[GalleryMatch]:
        """Best subject for each probe row of ``encodings`` (k, 128).

        Exact: the answer is brute force's. A distance is
        ``sqrt(sum((t - p) ** 2))`` over the float64 values of the float32
        template and probe; ``distance`` is the least over all templates,
        ``runner_up_distance`` the least over other subjects' templates, and
        the subject is named when ``distance <= threshold`` and
        ``runner_up_distance - distance > margin``. The prefilter only skips
        templates it proves cannot change either distance.
        """
        if threshold < 0 or margin < 0:
            raise ValueError("threshold and margin must not be negative")
        probes = np.asarray(encodings, dtype=np.float32)
        if probes.ndim == 1:
            probes = probes.reshape(1, -1)
        if probes.size == 0:
            return []
        if probes.ndim != 2 or probes.shape[1] != ENCODING_DIM:
            raise ValueError(f"probes must be (k, {ENCODING_DIM}), got {probes.shape}")
        if not np.all(np.isfinite(probes)):
            raise ValueError("a probe holds non-finite values")
        if len(self) == 0:
            return [GalleryMatch(None, None, None) for _ in range(probes.shape[0])]

        rows_per_block = max(1, _BLOCK_ELEMENTS // len(self))
        results: list[GalleryMatch] = []
        for start in range(0, probes.shape[0], rows_per_block):
            block = probes[start : start + rows_per_block]
            results.extend(self._match_block(block, threshold, margin))
        return results

    def _match_block(
        self, probes: npt.NDArray[np.float32], threshold: float, margin: float
    ) -> list[GalleryMatch]:
        exact = probes.astype(np.float64)
        rotated = (exact - self._mean) @ self._basis  # (k, 128), same distances
        head = rotated[:, :_HEAD_DIM]
        tail = np.sqrt(np.einsum("ij,ij->i", rotated[:, _HEAD_DIM:], rotated[:, _HEAD_DIM:]))
        weights = np.empty((probes.shape[0], _INDEX_WIDTH), dtype=np.float32)
        # Row j: |t|^2 - 2 (head_p . head_t + tail_p tail_t) for every template
        # t; plus |p|^2 this is |head_p - head_t|^2 + (tail_p - tail_t)^2,
        # which the triangle inequality keeps at or below |p - t|^2. Overflow
        # is possible only past _FLOAT32_SQUARES, where the bound is not used.
        with np.errstate(over="ignore", invalid="ignore"):
            weights[:, :_HEAD_DIM] = -2.0 * head
            weights[:, _HEAD_DIM] = -2.0 * tail
            weights[:, _HEAD_DIM + 1] = 1.0
            lower = weights @ self._index  # (k, n), one BLAS product
        lengths = np.sqrt(np.einsum("ij,ij->i", rotated, rotated))

        matches: list[GalleryMatch] = []
        for row in range(probes.shape[0]):
            # Every term of the float32 bound is at most (|p| + |t|)^2 (lengths
            # from the mean); each rounding is within one unit roundoff of
            # that, a dot product of w terms within w of them, and the stored
            # coordinates within one each (a 4-fold safety on top).
            scale = float(lengths[row] + self._radius) ** 2
            if scale < _FLOAT32_SQUARES:
                slack = 4.0 * (_INDEX_WIDTH + 8) * _UNIT_ROUNDOFF * scale
                best, group, runner_up = self._nearest_two(
                    lower[row], float(lengths[row]) ** 2 - slack, probes[row], exact[row]
                )
            else:
                # float32 squares could overflow: measure every template.
                every = np.arange(len(self), dtype=np.intp)
                best, group, runner_up = self._best_two(every, self._distances(every, exact[row]))
            ambiguous = runner_up is not None and runner_up - best <= margin
            subject = None if best > threshold or ambiguous else str(self._group_ids[group])
            matches.append(GalleryMatch(subject, best, runner_up))
        return matches

    def _nearest_two(
        self,
        lower: npt.NDArray[np.float32],
        offset: float,
        probe32: npt.NDArray[np.float32],
        probe: npt.NDArray[np.float64],
    ) -> tuple[float, int, float | None]:
        """(best distance, its subject's group, best distance to another subject).

        ``lower + offset`` is at most every template's squared distance.
        """
        seeds = _seed_rows(lower)
        found = self._best_two(seeds, self._distances(seeds, probe))
        if found[2] is None and self.subject_count > 1:
            # The seeds are all one subject's: add a row of another one.
            other = self._group_starts[(found[1] + 1) % self.subject_count]
            seeds = np.append(seeds, other)
            found = self._best_two(seeds, self._distances(seeds, probe))
        rows = np.flatnonzero(lower <= _limit(found, offset))
        if rows.shape[0] > 4 * _SEEDS:
            # The lowest bounds left are closer seeds: a nearer reach is cheap
            # to find and can cut the rows to measure severalfold.
            closer = rows[np.argpartition(lower[rows], _SEEDS - 1)[:_SEEDS]]
            seeds = np.union1d(seeds, closer)
            found = self._best_two(seeds, self._distances(seeds, probe))
            rows = rows[lower[rows] <= _limit(found, offset)]
        rows = np.union1d(self._screen(rows, probe32, found), seeds)
        return self._best_two(rows, self._distances(rows, probe))

    def _screen(
        self,
        rows: npt.NDArray[np.intp],
        probe: npt.NDArray[np.float32],
        found: tuple[float, int, float | None],
    ) -> npt.NDArray[np.intp]:
        """``rows`` whose float32 distance does not put them beyond reach.

        Differences first, so every rounding is relative to a non-negative
        term: the float32 sum of squares is within a relative ``slack`` (a
        few hundred unit roundoffs, with a 4-fold safety) of the exact one.
        The float32 distances also give a nearer reach than the seeds did:
        the same argument as ``_limit``, with the slack on both sides.
        """
        slack = 4.0 * (ENCODING_DIM + 3) * _UNIT_ROUNDOFF
        approx = np.empty(rows.shape[0], dtype=np.float32)
        for start in range(0, rows.shape[0], _BUILD_ROWS):
            part = rows[start : start + _BUILD_ROWS]
            diff = self.matrix[part] - probe
            approx[start : start + part.shape[0]] = np.einsum("ij,ij->i", diff, diff)
        reach = found[2] if found[2] is not None else found[0]
        limit = reach * reach * (1.0 + slack)
        if rows.shape[0]:
            groups = np.searchsorted(self._group_starts, rows, side="right") - 1
            order = np.lexsort((groups, approx))
            rivals = order[groups[order] != groups[order[0]]]
            if rivals.size or self.subject_count == 1:
                pivot = float(approx[rivals[0] if rivals.size else order[0]])
                limit = min(limit, pivot * (1.0 + slack) / (1.0 - slack))
        return rows[approx.astype(np.float64) <= limit]

    def _distances(
        self, rows: npt.NDArray[np.intp], probe: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        out = np.empty(rows.shape[0], dtype=np.float64)
        for start in range(0, rows.shape[0], _BUILD_ROWS):
            part = rows[start : start + _BUILD_ROWS]
            diff = self.matrix[part].astype(np.float64) - probe
            out[start : start + part.shape[0]] = np.sqrt(np.sum(diff * diff, axis=1))
        return out

    def _best_two(
        self, rows: npt.NDArray[np.intp], distances: npt.NDArray[np.float64]
    ) -> tuple[float, int, float | None]:
        groups = np.searchsorted(self._group_starts, rows, side="right") - 1
        order = np.lexsort((groups, distances))  # ties: the first subject by id
        best = int(order[0])
        rivals = order[groups[order] != groups[best]]
        runner_up = float(distances[rivals[0]]) if rivals.size else None
        return float(distances[best]), int(groups[best]), runner_up


def _limit(found: tuple[float, int, float | None], offset: float) -> np.float32:
    """The largest bound a row may have and still change ``found``.

    The true best distance is at most the best found, and the true runner-up
    at most the larger of the two found (whichever subject is truly nearest,
    the other one found is a rival): a row whose lower bound exceeds that
    reach can change neither.
    """
    reach = found[2] if found[2] is not None else found[0]
    limit = reach * reach - offset
    limit32 = np.float32(limit)
    if limit32 < limit:
        limit32 = np.nextafter(limit32, np.float32(np.inf))
    return limit32


def _principal_axes(
    matrix: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Mean and orthonormal axes (columns, by falling variance) of ``matrix``.

    Fitted on an even sample of rows: the axes only decide how much the
    prefilter prunes; any orthonormal axes keep it exact.
    """
    if matrix.shape[0] == 0:
        return np.zeros(ENCODING_DIM), np.eye(ENCODING_DIM)
    sample = matrix[:: max(1, matrix.shape[0] // _BASIS_SAMPLE)].astype(np.float64)
    mean = sample.mean(axis=0)
    if matrix.shape[0] < _FIT_MIN_ROWS:
        return mean, np.eye(ENCODING_DIM)
    centred = sample - mean
    _, vectors = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
    return mean, np.ascontiguousarray(vectors[:, ::-1])


def _project(
    matrix: npt.NDArray[np.float32],
    mean: npt.NDArray[np.float64],
    basis: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float32], float]:
    """(head coordinates, tail length and |row - mean|^2 per row; max |row - mean|)."""
    rows = matrix.shape[0]
    # One row per coordinate: the product then streams whole rows, which
    # measured faster than dotting 32 floats per template.
    index = np.empty((_INDEX_WIDTH, rows), dtype=np.float32)
    radius = 0.0
    axes = np.ascontiguousarray(basis[:, :_HEAD_DIM].T)
    scratch = np.empty((min(rows, _BUILD_ROWS), ENCODING_DIM), dtype=np.float64)
    for start in range(0, rows, _BUILD_ROWS):
        stop = min(rows, start + _BUILD_ROWS)
        centred = scratch[: stop - start]
        np.subtract(matrix[start:stop], mean, out=centred)
        head = axes @ centred.T  # (_HEAD_DIM, rows)
        squares = np.einsum("ij,ij->i", centred, centred)
        # In float64 the difference loses nothing a float32 bound could see.
        tail = np.maximum(squares - np.einsum("ij,ij->j", head, head), 0.0)
        with np.errstate(over="ignore"):  # past _FLOAT32_SQUARES: never used
            index[:_HEAD_DIM, start:stop] = head
            index[_HEAD_DIM, start:stop] = np.sqrt(tail)
            index[_HEAD_DIM + 1, start:stop] = squares
        radius = max(radius, float(np.sqrt(squares.max())))
    return index, radius


def _seed_rows(lower: npt.NDArray[np.float32]) -> npt.NDArray[np.intp]:
    """A few rows with low bounds: their exact distances set how far to look.

    Not necessarily the lowest (a full partition of a million bounds costs
    more than the rest of the match): the lowest bound of each of the
    ``_SEEDS`` blocks whose lowest bound is lowest.
    """
    rows = lower.shape[0]
    if rows <= _SEEDS * _SEED_BLOCK:
        count = min(rows, _SEEDS)
        return np.argpartition(lower, count - 1)[:count].astype(np.intp)
    full = rows - rows % _SEED_BLOCK
    blocks = lower[:full].reshape(-1, _SEED_BLOCK)
    chosen = np.argpartition(blocks.min(axis=1), _SEEDS - 1)[:_SEEDS]
    seeds = chosen * _SEED_BLOCK + blocks[chosen].argmin(axis=1)
    if full < rows:
        seeds = np.append(seeds, full + int(lower[full:].argmin()))
    return seeds.astype(np.intp)


class GalleryCache:
    """Process-level LRU of galleries keyed by ``(tenant, version)``.

    Putting a tenant's new version drops its older ones: they can never be
    asked for again and a large gallery is hundreds of MiB.
    """

    def __init__(self, max_entries: int = 8) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._entries: OrderedDict[tuple[str, GalleryVersion], Gallery] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, tenant: str, version: GalleryVersion) -> Gallery | None:
        """The cached gallery, or None (a miss means: load it and ``put`` it)."""
        with self._lock:
            gallery = self._entries.get((tenant, version))
            if gallery is not None:
                self._entries.move_to_end((tenant, version))
            return gallery

    def put(self, gallery: Gallery) -> None:
        """Cache ``gallery``, evicting the tenant's other versions and the LRU."""
        key = (gallery.tenant, gallery.version)
        with self._lock:
            for stale in [k for k in self._entries if k[0] == gallery.tenant and k != key]:
                del self._entries[stale]
            self._entries[key] = gallery
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def load(
        self,
        tenant: str,
        version: GalleryVersion,
        templates: Callable[[], Iterable[tuple[str, bytes]]],
    ) -> Gallery:
        """The cached gallery, or one built from stored ``templates()`` and cached."""
        cached = self.get(tenant, version)
        if cached is not None:
            return cached
        gallery = Gallery.build(
            tenant, version, ((sid, encoding_from_bytes(blob)) for sid, blob in templates())
        )
        self.put(gallery)
        return gallery

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def count(self, tenant: str) -> int:
        """How many cached galleries belong to ``tenant``."""
        with self._lock:
            return sum(1 for key in self._entries if key[0] == tenant)

    def drop(self, tenant: str) -> int:
        """Forget every gallery of ``tenant`` (offboarding); how many there were."""
        with self._lock:
            mine = [key for key in self._entries if key[0] == tenant]
            for key in mine:
                del self._entries[key]
            return len(mine)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: Any) -> bool:
        with self._lock:
            return key in self._entries
