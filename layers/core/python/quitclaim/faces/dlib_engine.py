"""The dlib adapter behind the ``FaceEngine`` port.

Models: dlib's HOG frontal face detector, the 5-point landmark model and the
ResNet 128-d encoder, read from the ``face_recognition_models`` package
directory. ``face_recognition`` itself is never imported: its import loads the
68-point landmark model (not licensed for commercial use, and about a second
of cold start) and flips Pillow's ``LOAD_TRUNCATED_IMAGES`` for the process.

Detection runs on a working copy of each frame; the working scale is the
larger of "fits in ``detect_max_pixels``" and "a face of ``min_face_px``
full-image pixels is still big enough for the HOG window at ``upsample``".
When the two disagree, recall wins: a missed face is a person published
without consent, a slower scan is only a cost. Landmarks and encodings are
always computed on the frame's own pixels, never on the working copy.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import dlib
import numpy as np
from PIL import Image

from quitclaim.domain.models import Box
from quitclaim.faces.imaging import decode_image
from quitclaim.faces.ports import DecodedImage, FaceObservation, Pixels

ENGINE_VERSION: Final = "quitclaim-dlib/1"
LANDMARKS_MODEL: Final = "shape_predictor_5_face_landmarks"
ENCODER_MODEL: Final = "dlib_face_recognition_resnet_model_v1"

# Side of a face (in detector-input pixels, before dlib's own upsampling)
# that the HOG frontal detector finds reliably: its 80x80 window. Measured on
# detection/*.xml: at upsample 1 (window effectively 40 px) every 37 px face
# is found at full resolution, while the same faces shrunk to 31 px are lost.
_HOG_WINDOW_PX: Final = 80


@dataclass(frozen=True, slots=True)
class _Models:
    detector: Any
    landmarks: Any
    encoder: Any


def default_model_dir() -> Path:
    """Where ``face_recognition_models`` keeps its ``.dat`` files.

    Found without importing the package: its ``__init__`` imports
    ``pkg_resources`` (slow, deprecated) just to build these paths.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face_recognition_models is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


@functools.lru_cache(maxsize=4)
def _load_models(model_dir: str) -> _Models:
    # Cached per process (per Lambda container): loading costs ~0.7 s, mostly
    # deserialising the HOG detector.
    base = Path(model_dir)
    return _Models(
        detector=dlib.get_frontal_face_detector(),
        landmarks=dlib.shape_predictor(str(base / f"{LANDMARKS_MODEL}.dat")),
        encoder=dlib.face_recognition_model_v1(str(base / f"{ENCODER_MODEL}.dat")),
    )


class DlibFaceEngine:
    """``FaceEngine`` on dlib HOG + 5-point landmarks + ResNet encoder.

    Construct once per container (models load in the constructor and are
    shared by every instance of the process)::

        s = get_settings()
        engine = DlibFaceEngine(
            max_bytes=s.max_upload_bytes,
            max_pixels=s.max_pixels,
            max_frames=s.max_frames,
            detect_max_pixels=s.detect_max_pixels,
        )
    """

    def __init__(
        self,
        *,
        max_bytes: int = 50 * 1024 * 1024,
        max_pixels: int = 60_000_000,
        max_frames: int = 200,
        detect_max_pixels: int = 2_500_000,
        upsample: int = 1,
        min_face_px: int | None = 40,
        max_upsample: int = 2,
        adjust_threshold: float = 0.0,
        num_jitters: int = 1,
        model_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        """Configure limits and detection; load the models (once per process).

        ``min_face_px``: smallest face side, in full-image pixels, that must be
        detected as reliably as plain ``face_recognition`` would (the working
        copy is enlarged, up to full resolution and then by extra upsampling up
        to ``max_upsample``, to honour it). ``None`` bounds detection by
        ``detect_max_pixels`` alone: faster on large images, but faces smaller
        than about ``40 / working_scale`` pixels are then missed.
        """
        if detect_max_pixels <= 0:
            raise ValueError("detect_max_pixels must be positive")
        if not 0 <= upsample <= max_upsample:
            raise ValueError("upsample must be between 0 and max_upsample")
        if min_face_px is not None and min_face_px <= 0:
            raise ValueError("min_face_px must be positive")
        self._max_bytes = max_bytes
        self._max_pixels = max_pixels
        self._max_frames = max_frames
        self._detect_max_pixels = detect_max_pixels
        self._upsample = upsample
        self._min_face_px = min_face_px
        self._max_upsample = max_upsample
        self._adjust_threshold = float(adjust_threshold)
        self._num_jitters = num_jitters
        directory = Path(model_dir) if model_dir is not None else default_model_dir()
        self._models = _load_models(str(directory.resolve()))

    @property
    def versions(self) -> dict[str, str]:
        """Engine, model and parameter versions, for decision records."""
        return {
            "engine": ENGINE_VERSION,
            "dlib": str(dlib.__version__),
            "detector": "hog-frontal",
            "landmarks": LANDMARKS_MODEL,
            "encoder": ENCODER_MODEL,
            "upsample": str(self._upsample),
            "max_upsample": str(self._max_upsample),
            "min_face_px": "none" if self._min_face_px is None else str(self._min_face_px),
            "detect_max_pixels": str(self._detect_max_pixels),
            "adjust_threshold": repr(self._adjust_threshold),
            "num_jitters": str(self._num_jitters),
        }

    def decode(self, data: bytes) -> DecodedImage:
        """Validate and decode an upload; ``RejectedInput`` with a code on failure."""
        return decode_image(
            data,
            max_bytes=self._max_bytes,
            max_pixels=self._max_pixels,
            max_frames=self._max_frames,
        )

    def analyze(self, image: DecodedImage) -> list[FaceObservation]:
        """Every face in every frame, with boxes in full-image pixels."""
        observations: list[FaceObservation] = []
        # Animations often repeat frames; identical pixels give identical
        # faces, so they are analysed once and reported for every frame.
        seen: dict[bytes, list[FaceObservation]] = {}
        for index, pixels in enumerate(image.frames):
            key = _frame_key(pixels) if len(image.frames) > 1 else b""
            found = seen.get(key) if key else None
            if found is None:
                found = self._analyze_frame(pixels, image.scale)
                if key:
                    seen[key] = found
            observations.extend(
                FaceObservation(box=obs.box, encoding=obs.encoding, frame=index) for obs in found
            )
        return observations

    def detection_plan(
        self, width: int, height: int, frame_scale: float = 1.0
    ) -> tuple[float, int]:
        """(working scale, HOG upsample count) used for a ``width`` x ``height`` frame.

        ``frame_scale`` maps frame pixels to full-image pixels (see
        ``DecodedImage.scale``). Exposed for benchmarks and tests.
        """
        bound = min(1.0, math.sqrt(self._detect_max_pixels / max(1, width * height)))
        upsample = self._upsample
        if self._min_face_px is None:
            return bound, upsample
        floor_px = self._min_face_px / frame_scale
        needed = _HOG_WINDOW_PX / (2**upsample * floor_px)
        while needed > 1.0 and upsample < self._max_upsample:
            upsample += 1
            needed = _HOG_WINDOW_PX / (2**upsample * floor_px)
        return min(1.0, max(bound, needed)), upsample

    def _analyze_frame(self, pixels: Pixels, frame_scale: float) -> list[FaceObservation]:
        height, width = pixels.shape[:2]
        scale, upsample = self.detection_plan(width, height, frame_scale)
        work = _resize(pixels, scale) if scale < 1.0 else pixels
        # Per-axis factors: rounding the working size makes them differ slightly.
        sx = work.shape[1] / width
        sy = work.shape[0] / height
        models = self._models
        rects, _scores, _kinds = models.detector.run(work, upsample, self._adjust_threshold)
        if not rects:
            return []

        shapes = dlib.full_object_detections()
        boxes: list[Box] = []
        for rect in rects:
            # dlib rectangles are inclusive; Box is right/bottom exclusive.
            left = rect.left() / sx
            top = rect.top() / sy
            right = (rect.right() + 1) / sx
            bottom = (rect.bottom() + 1) / sy
            # Landmarks get the unclipped box: the predictor was trained on
            # detector boxes, which may overhang the image edge.
            full_rect = dlib.rectangle(
                round(left),
                round(top),
                max(round(left), round(right) - 1),
                max(round(top), round(bottom) - 1),
            )
            shapes.append(models.landmarks(pixels, full_rect))
            boxes.append(_to_full_box(left, top, right, bottom, frame_scale, width, height))

        descriptors = models.encoder.compute_face_descriptor(pixels, shapes, self._num_jitters)
        return [
            FaceObservation(box=box, encoding=np.asarray(descriptor, dtype=np.float32))
            for box, descriptor in zip(boxes, descriptors, strict=True)
        ]


def _resize(pixels: Pixels, scale: float) -> Pixels:
    height, width = pixels.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # LANCZOS keeps the edges HOG needs; reducing_gap does the bulk of a big
    # reduction with a cheap box filter first, at no visible cost.
    small = Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.ascontiguousarray(np.asarray(small, dtype=np.uint8))


def _to_full_box(
    left: float,
    top: float,
    right: float,
    bottom: float,
    frame_scale: float,
    width: int,
    height: int,
) -> Box:
    # Outward rounding, then clipping to the frame as it sits in the full image.
    max_x = round(width * frame_scale)
    max_y = round(height * frame_scale)
    return Box(
        left=min(max_x, max(0, math.floor(left * frame_scale))),
        top=min(max_y, max(0, math.floor(top * frame_scale))),
        right=min(max_x, max(0, math.ceil(right * frame_scale))),
        bottom=min(max_y, max(0, math.ceil(bottom * frame_scale))),
    )


def _frame_key(pixels: Pixels) -> bytes:
    digest = hashlib.blake2b(np.ascontiguousarray(pixels).data, digest_size=16)
    digest.update(repr(pixels.shape).encode())
    return digest.digest()
