"""The face engine port. Use-cases depend on this, never on dlib."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from quitclaim.domain.models import Box

Pixels = npt.NDArray[np.uint8]
Encoding = npt.NDArray[np.float32]


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
