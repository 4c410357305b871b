"""The face ports: the engine, galleries, the published form, redaction, quality, thumbnails.

Use-cases depend on these, never on dlib, numpy or PIL; faces/ implements them
and the composition root injects the implementations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from quitclaim.domain.models import Box

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Pixels = npt.NDArray[np.uint8]
    Encoding = npt.NDArray[np.float32]
else:
    # At run time the aliases only name types: importing a port must not load
    # numpy (a function that never sees pixels pays nothing for them).
    Pixels = Any
    Encoding = Any


@dataclass(frozen=True)
class DecodedImage:
    """An upload decoded safely: every frame as RGB uint8 (H, W, 3), oriented.

    ``frames[0]`` is the still image; animated formats carry every frame so that
    a face in frame 7 is not missed. A frame with transparency is carried as
    three views (its colour, composited onto white, onto black: a face may be
    drawn in alpha), in that order; ``meta["frames"]`` counts the file's
    frames and ``meta["views"]`` how many views each gave (e.g. ``"1,3"``).
    The engine reports a face once, with ``frame`` the file's frame index
    (``imaging.merge_views``).
    Something that publishes a new image takes ``frames[0]``, the colour
    view of the first frame. ``source_format`` is what the bytes are
    (``JPEG``, ``PNG``, ``WEBP``, ...), never what the file name says.
    """

    frames: tuple[Pixels, ...]
    source_format: str
    width: int
    height: int
    # Set only when a reduced-scale decode (JPEG draft mode) was used for
    # detection: factor mapping these pixels back to the full-size image.
    scale: float = 1.0
    meta: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FaceObservation:
    """One face found by the engine: where, in which frame, and its template.

    The encoding is biometric data: keep it in memory, never log or persist it
    unless the person is being enrolled.
    """

    box: Box
    encoding: Encoding
    frame: int = 0
    # False when the recogniser cannot judge this face (faces/matchability.py):
    # it is never compared with the gallery; ``unmatchable`` says why.
    matchable: bool = True
    unmatchable: str | None = None


class FaceEngine(Protocol):
    """Finds faces and computes their 128-d templates."""

    @property
    def versions(self) -> dict[str, str]:
        """Engine, detector, landmark and encoder model versions (for records)."""
        ...

    def decode(self, data: bytes) -> DecodedImage:
        """Validate and decode bytes; raise ``RejectedInput`` with a reason code."""
        ...

    def analyze(self, image: DecodedImage) -> list[FaceObservation]:
        """Every face in every frame, boxes in full-image pixels."""
        ...


# Galleries: one tenant's templates, matched exactly (faces/gallery.py).
GalleryVersion = int | str


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


class FaceGallery(Protocol):
    """One tenant's templates at one version."""

    def __len__(self) -> int:
        """How many templates it holds."""
        ...

    def match(
        self, encodings: npt.ArrayLike, *, threshold: float, margin: float
    ) -> list[GalleryMatch]:
        """Best subject for each probe row of ``encodings`` (k, 128)."""
        ...


class Galleries(Protocol):
    """The process's galleries, built once per tenant version from stored templates."""

    def load(
        self,
        tenant: str,
        version: GalleryVersion,
        templates: Callable[[], Iterable[tuple[str, bytes]]],
    ) -> FaceGallery:
        """The cached gallery, or one built from ``templates()`` and cached."""
        ...


# Packs ``(subject_id, encoding)`` pairs into a gallery (``Gallery.build``).
GalleryBuilder = Callable[[str, GalleryVersion, Iterable[tuple[str, Encoding]]], FaceGallery]


class PublishedForms(Protocol):
    """What a placed upload publishes (faces/published.py: the module is the adapter)."""

    def published_form(self, data: bytes, *, max_pixels: int, max_frames: int) -> bytes:
        """The picture byte for byte with an allowlist of metadata, or re-encoded."""
        ...

    def reencoded_type(self, published: bytes, uploaded_type: str | None) -> str | None:
        """The content type of ``published`` where re-encoding changed the format."""
        ...


class PixelRedaction(Protocol):
    """Irreversible redaction of face boxes (faces/redaction.py: the module is the adapter)."""

    # Upper case: the module's constants are what implements these.
    @property
    def METHOD(self) -> str: ...

    @property
    def PAD(self) -> float: ...

    @property
    def MOSAIC_BLOCKS(self) -> int: ...

    def padded(self, box: Box, width: int, height: int) -> Box:
        """``box`` grown by the pad on each side, clipped to the image."""
        ...

    def redact(self, pixels: Pixels, boxes: Iterable[Box]) -> Pixels:
        """A copy of ``pixels`` with each padded box replaced by a mosaic."""
        ...

    def to_png(self, pixels: Pixels) -> bytes:
        """Lossless PNG of RGB pixels, without any metadata."""
        ...

    def near(self, encoding: Encoding, originals: Sequence[Encoding], threshold: float) -> bool:
        """Whether ``encoding`` lies within ``threshold`` of any of ``originals``."""
        ...


class FaceSharpness(Protocol):
    """Reference-photo quality (faces/quality.py: the module is the adapter)."""

    @property
    def MIN_SHARPNESS(self) -> float: ...

    def sharpness(self, pixels: Pixels, box: Box) -> float:
        """Variance of the Laplacian of the face crop, at a fixed scale."""
        ...


@dataclass(frozen=True, slots=True)
class Thumbnail:
    """A preview JPEG and the size of the image its face boxes refer to."""

    data: bytes  # JPEG
    width: int  # of the oriented original (the boxes' coordinate space)
    height: int
    content_type: str = "image/jpeg"


class Thumbnails(Protocol):
    """Small previews of stored images (faces/thumbnails.py: the module is the adapter)."""

    def render_thumbnail(
        self, data: bytes, *, max_side: int, max_bytes: int, max_pixels: int, max_frames: int
    ) -> Thumbnail:
        """A JPEG of at most ``max_side`` pixels a side; ``RejectedInput`` if unsafe."""
        ...
