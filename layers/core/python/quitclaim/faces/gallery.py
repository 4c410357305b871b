"""Enrolled templates of one tenant, packed for vectorised matching.

A gallery is immutable and versioned; a warm function keeps recent ones in
``GalleryCache`` keyed by ``(tenant, version)`` so an unchanged gallery is
never reloaded. Templates are biometric data: nothing here logs them.
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

from quitclaim.faces.ports import Encoding

ENCODING_DIM: Final = 128
_WIRE_DTYPE: Final = np.dtype("<f4")
ENCODING_BYTES: Final = ENCODING_DIM * _WIRE_DTYPE.itemsize

GalleryVersion = int | str
"""Whatever the tenant record counts gallery changes with (a number today)."""

# The packed form (``Gallery.to_bytes``): magic, a little-endian uint32 length
# and a JSON header, the distinct subject ids (UTF-8, newline-separated), one
# uint32 template count per id, then the float32 matrix, rows grouped by id.
_PACKED_MAGIC: Final = b"QCGALLERY\x01"
_COUNT_DTYPE: Final = np.dtype("<u4")

# Elements of one (probes x templates) distance block: bounds the scratch
# memory of a match against a million templates to ~64 MiB of float32.
_BLOCK_ELEMENTS: Final = 1 << 24


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


@dataclass(frozen=True, slots=True)
class GalleryMatch:
    """The gallery's answer for one probe face.

    ``subject_id`` is None when the best distance exceeds the threshold or
    another subject comes within the margin of the best one (ambiguity is
    resolved toward "unknown", which sends the image to review).
    ``distance`` is None only for an empty gallery; ``runner_up_distance`` is
    the best distance to any *other* subject (None with fewer than two).
    """

    subject_id: str | None
    distance: float | None
    runner_up_distance: float | None


@dataclass(frozen=True)
class Gallery:
    """One tenant's templates: ``matrix`` row ``i`` belongs to ``subject_ids[i]``.

    Rows are kept grouped by subject (sorted by id) so a subject's best
    template is found with one ``minimum.reduceat`` per probe block.
    """

    tenant: str
    version: GalleryVersion
    subject_ids: npt.NDArray[np.str_]
    matrix: npt.NDArray[np.float32]
    _sq_norms: npt.NDArray[np.float32] = field(init=False, repr=False, compare=False)
    _group_starts: npt.NDArray[np.intp] = field(init=False, repr=False, compare=False)
    _group_ids: npt.NDArray[np.str_] = field(init=False, repr=False, compare=False)

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
        sq_norms = np.einsum("ij,ij->i", matrix, matrix, dtype=np.float32)
        for array in (ids, matrix, sq_norms, starts):
            array.flags.writeable = False
        object.__setattr__(self, "subject_ids", ids)
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "_sq_norms", sq_norms)
        object.__setattr__(self, "_group_starts", starts.astype(np.intp))
        object.__setattr__(self, "_group_ids", ids[starts])

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
        return int(self.matrix.nbytes + self.subject_ids.nbytes + self._sq_norms.nbytes)

    def match(
        self, encodings: npt.ArrayLike, *, threshold: float, margin: float
    ) -> list[GalleryMatch]:
        """Best subject for each probe row of ``encodings`` (k, 128).

        Distances are euclidean. Candidates are ranked with
        ``|a|^2 + |b|^2 - 2ab`` in float32 (one matrix product), then the two
        reported distances are recomputed exactly, so rounding can never move
        a reported distance across the threshold.
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
        # |t|^2 - 2 t.p per template (one BLAS product, the -2 folded into the
        # probes); |p|^2 is constant per probe, so it is added after reducing.
        sq = self.matrix @ (probes.T * np.float32(-2.0))  # (n, k)
        sq += self._sq_norms[:, None]
        if self.subject_count == len(self):
            per_subject = sq
        else:
            # Per-subject best: rows are grouped by subject. (m, k)
            per_subject = np.minimum.reduceat(sq, self._group_starts, axis=0)
        per_subject += np.einsum("ij,ij->i", probes, probes, dtype=np.float32)[None, :]
        two = min(2, per_subject.shape[0])
        ranked = np.argpartition(per_subject, two - 1, axis=0)[:two]

        matches: list[GalleryMatch] = []
        for column in range(probes.shape[0]):
            candidates = ranked[:, column]
            exact = sorted(
                (self._exact_subject_distance(int(g), probes[column]), int(g)) for g in candidates
            )
            best_distance, best_group = exact[0]
            runner_up = exact[1][0] if len(exact) > 1 else None
            ambiguous = runner_up is not None and runner_up - best_distance <= margin
            subject = (
                None if best_distance > threshold or ambiguous else str(self._group_ids[best_group])
            )
            matches.append(GalleryMatch(subject, best_distance, runner_up))
        return matches

    def _exact_subject_distance(self, group: int, probe: npt.NDArray[np.float32]) -> float:
        start = int(self._group_starts[group])
        stop = int(self._group_starts[group + 1]) if group + 1 < self.subject_count else len(self)
        # The subject's templates are few; recompute all of them in float64
        # rather than trust the float32 ranking inside the subject.
        diff = self.matrix[start:stop].astype(np.float64) - probe.astype(np.float64)
        return float(np.sqrt(np.min(np.einsum("ij,ij->i", diff, diff))))


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
