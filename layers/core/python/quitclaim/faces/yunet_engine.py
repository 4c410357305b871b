"""The deployed ``FaceEngine``: YuNet detection, dlib 5-point + ResNet matching.

Detector: YuNet (libfacedetection.train, Apache-2.0; weights in
``faces/models/``, see docs/face-detector.md) through OpenCV's
``cv2.FaceDetectorYN``. Unlike dlib's HOG frontal detector it finds turned
faces up to profile, tilted and partly hidden faces, and gives five landmarks
(eyes, nose tip, mouth corners) that ``faces.matchability`` reads.

Scan plan for a frame (``detection_passes``): YuNet finds faces of about
``_MIN_WORK_FACE_PX`` to ``_MAX_WORK_FACE_PX`` pixels of its input, so

- a *fine* pass scales the frame so that the floor face (``min_face_px``
  full-image pixels) measures ``_MIN_WORK_FACE_PX`` (never enlarging, and
  never below ``_FINE_SIDE`` on the long side: smaller photos are scanned whole);
- *coarse* passes follow, each ``_PASS_STEP`` times smaller (but not below
  ``_COARSEST_SIDE`` on the long side), while the last pass is over
  ``_COARSE_SIDE``, for the large faces.

Each pass's copy is shrunk from the previous one with area averaging (a
whole-factor step first: OpenCV's fast path), never from the frame again.

A photo with no EXIF orientation (or orientation 1) may be stored sideways
or upside down: every pass is run in the four quarter-turn orientations of
its working copy (a rotation of the small copy, not of the photo). Hits of
every pass and orientation are merged by non-maximum suppression.

The photo's upright (``_upright``) is the quarter turn in which most hits
score ``_ACCEPT_SCORE`` or more. When one of those is near the floor (under
``_DENSE_TRIGGER`` floors: a crowd), the upright alone is scanned once more
with the floor face at ``_DENSE_WORK_FACE_PX`` (the dense pass).

Verification: a hit scoring under ``_ACCEPT_SCORE`` is looked at again on
crops around it with both YuNet models. In the upright: with two face sides of
context, at 24-96 px, kept when ``_UPRIGHT_NEED`` of the ten looks find it at
``_RELOOK_SCORE`` (a majority, six, when its box is under the floor). Turned
against the upright (or without one): with half a side of context, at 48, 64
and 128 px, kept only when all six do (without an upright: five, four under
two floors; in the upright, too large for the ten looks: four if it scores
0.75); turned against it and under the floor, or under half the floor in any
orientation: dropped.
Chosen on the hard-case set (docs/face-detector.md, "Verification").

Matching: dlib's 5-point predictor and ResNet encoder on the frame's own
pixels, turned upright for faces found in another orientation. A face that
``matchability`` judges unreliable gets ``matchable=False``.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import cv2
import dlib
import numpy as np
import numpy.typing as npt

from quitclaim.domain.ports import DecodedImage, FaceObservation, Pixels
from quitclaim.faces.dlib_engine import DEFAULT_DETECT_BUDGET_PIXELS, DlibFaceEngine
from quitclaim.faces.frame_geometry import (
    Landmarks,
    dlib_rect,
    iou,
    landmark_box,
    shrink,
    to_full_box,
    turn_box,
    turned,
    unturn,
)
from quitclaim.faces.matchability import assess

ENGINE_VERSION: Final = "quitclaim-yunet/6"
MODEL_DIR: Final = Path(__file__).resolve().parent / "models"
YUNET_MODEL: Final = "yunet_s_640_640.onnx"
YUNET_CHECK_MODEL: Final = "yunet_n_640_640.onnx"

_MIN_WORK_FACE_PX: Final = 12.0
_MAX_WORK_FACE_PX: Final = 300.0
_COARSE_SIDE: Final = 640
# The fine pass is never smaller than this on the long side (never enlarging):
# what a 12 MP photo's fine pass measures anyway (4000 x 12 / 40), so it costs
# nothing there; smaller photos are scanned whole up to 1200 px (was 640 px).
_FINE_SIDE: Final = 1200
# The coarse passes go down to this long side: a third of a 12 MP photo's
# fine pass, so one coarse pass covers faces from ~120 px to the frame's size.
_COARSEST_SIDE: Final = 480
_PASS_STEP: Final = 3.0
_SCORE: Final = 0.5
# Upright and upside down share the working copy's shape, so do both quarter
# turns: grouped, YuNet's input size changes twice per pass instead of three times.
_ALL_TURNS: Final = (0, 2, 1, 3)
_NMS_IOU: Final = 0.3
_ACCEPT_SCORE: Final = 0.9
_RELOOK_SCORE: Final = 0.6
_RELOOK_SIDES: Final = (48.0, 64.0, 128.0)
# Of the six looks (three sizes, two models), this many must find the hit:
# all of them, for a hit turned against the photo's confident faces (hands,
# specks and printed faces lying sideways were the false positives left).
_RELOOK_NEED: Final = 6
# ... and in a photo with no confident face at all (nothing to be turned
# against): 5 of 6, so that a lone damaged or blurred face is kept (the
# hostile corpus's smeared WebP of kit passes 5) while a dog's face (4) is not.
_RELOOK_NEED_ALONE: Final = 5
# ... but 4 of 6 (v2's rule) for such a hit under this many floors (80 px at
# the default): the masked faces of a crowd with no confident face pass 4
# (version 5); the dog's face above, at 4.9 floors, still needs 5.
_ALONE_SMALL_FLOORS: Final = 2.0
_ALONE_SMALL_NEED: Final = 4
# A hit in the upright too large for the loose rule below (the face of a
# close-up selfie cut by the frame, 0.81, 4 of 6) needs 4 of the six tight
# looks when it scores this much; the painted backdrop of the demo's
# biden-event.jpg (0.74: 1 look; 0.59: 3 looks) still needs all six.
_LARGE_UPRIGHT_MIN_SCORE: Final = 0.75
_LARGE_UPRIGHT_NEED: Final = 4
_RELOOK_CONTEXT: Final = 0.5
_RELOOK_IOU: Final = 0.4
# In the photo's upright orientation (``_upright``), where the confident faces
# stand, a hit under _ACCEPT_SCORE needs fewer relooks than a hit turned
# against them (see docs/face-detector.md, "Verification").
_UPRIGHT_MIN_SCORE: Final = 0.5
# Two face sides of context: on a tight crop YuNet misses small, dim faces of
# a crowd that it finds with their neighbours around them.
_UPRIGHT_CONTEXT: Final = 2.0
_UPRIGHT_SIDES: Final = (24.0, 32.0, 48.0, 64.0, 96.0)
_UPRIGHT_NEED: Final = 3
# ... for hits under this many floors (4: 160 px at the default).
_UPRIGHT_MAX_FLOORS: Final = 4.0
# ... and a majority, 6 of the ten, for a hit whose box is under the floor: the
# scan promises nothing there, and at the default policy such a face blocks
# nothing, so asking more costs the gate nothing. The last false face on the
# labelled sets was of that size (a gold disc on a shop wall: 4-5 looks in each
# orientation); of the 32 labelled faces under the floor that 3 looks kept, 31
# pass 6 (docs/face-detector.md, "Version 6").
_UPRIGHT_NEED_UNDER_FLOOR: Final = 6
# Scan the other orientations of a photo with upright faces at the coarse passes
# only (faster; lying faces then found from about 2.5 floors). Off: see detect().
_TURNED_COARSE_ONLY: Final = False
# The dense pass: run when a confident upright face is under this many floors.
_DENSE_TRIGGER: Final = 2.5
_DENSE_WORK_FACE_PX: Final = 20.0


@dataclass(frozen=True, slots=True)
class _Hit:
    box: tuple[float, float, float, float]  # frame pixels, upright frame
    landmarks: Landmarks  # (5, 2) in the rotated frame (face upright)
    score: float
    turns: int  # np.rot90 quarter turns that make the face upright


def _sane(row: Any, width: int, height: int) -> bool:
    """A detector row with finite numbers inside (a margin around) the image it was run on.

    OpenCV's YuNet occasionally returned rows of ~1e28 coordinates on a hostile input (seen
    on the stack, not reproducible on the same bytes): numerical garbage, not a face; a
    real face is found again by the same pass with sane numbers.
    """
    values = np.asarray(row[:15], dtype=np.float64)
    if not np.all(np.isfinite(values)) or not 0.0 <= values[14] <= 1.0:
        return False
    xs, ys = values[[0, 4, 6, 8, 10, 12]], values[[1, 5, 7, 9, 11, 13]]
    inside = (
        np.all((xs >= -width) & (xs <= 2 * width))
        and np.all((ys >= -height) & (ys <= 2 * height))
        and 0 < values[2] <= 3 * width
        and 0 < values[3] <= 3 * height
    )
    return bool(inside)


@functools.lru_cache(maxsize=4)
def _nets(directory: str) -> tuple[Any, Any]:
    base = Path(directory)

    def create(name: str) -> Any:
        path = base / name
        if not path.is_file():
            raise RuntimeError(f"face detector weights missing: {path}")
        return cv2.FaceDetectorYN.create(str(path), "", (320, 320), _SCORE, _NMS_IOU, 5000)

    return create(YUNET_MODEL), create(YUNET_CHECK_MODEL)


class YuNetFaceEngine(DlibFaceEngine):
    """``FaceEngine``: YuNet finds faces, dlib aligns and encodes them.

    Built by ``bootstrap.face_engine()`` from the settings; ``min_face_px``
    is the smallest face (full-image pixels) the scan promises at any image
    size (no relative floor).
    """

    _USES_HOG = False

    def __init__(
        self,
        *,
        max_bytes: int = 50 * 1024 * 1024,
        max_pixels: int = 60_000_000,
        max_frames: int = 200,
        detect_max_pixels: int = 2_500_000,
        detect_budget_pixels: int = DEFAULT_DETECT_BUDGET_PIXELS,
        min_face_px: int = 40,
        num_jitters: int = 1,
        model_dir: str | os.PathLike[str] | None = None,
        detector_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(
            max_bytes=max_bytes,
            max_pixels=max_pixels,
            max_frames=max_frames,
            detect_max_pixels=detect_max_pixels,
            detect_budget_pixels=detect_budget_pixels,
            min_face_px=min_face_px,
            min_face_fraction=None,
            num_jitters=num_jitters,
            model_dir=model_dir,
        )
        self._floor_px = float(min_face_px)
        directory = Path(detector_dir) if detector_dir is not None else MODEL_DIR
        self._detector, self._checker = _nets(str(directory.resolve()))
        # Orientations scanned: set per image by ``analyze``; outside it, all
        # four (what ``scan_pixels`` then reports is the untagged worst case).
        self._turns: tuple[int, ...] = _ALL_TURNS

    @property
    def versions(self) -> dict[str, str]:
        return {
            "engine": ENGINE_VERSION,
            "dlib": str(dlib.__version__),
            "opencv": str(cv2.__version__),
            "detector": YUNET_MODEL.removesuffix(".onnx"),
            "detector_check": YUNET_CHECK_MODEL.removesuffix(".onnx"),
            "landmarks": "shape_predictor_5_face_landmarks",
            "encoder": "dlib_face_recognition_resnet_model_v1",
            "min_face_px": str(int(self._floor_px)),
            "detect_budget_pixels": str(self._detect_budget_pixels),
            "num_jitters": str(self._num_jitters),
        }

    # -- plan -------------------------------------------------------------

    def detection_passes(self, width: int, height: int, frame_scale: float = 1.0) -> list[float]:
        """Working scales of the passes over a ``width`` x ``height`` frame, finest first."""
        floor = self._floor_px / frame_scale
        longest = max(width, height)
        # Never finer than the frame, never coarser than _FINE_SIDE: a photo up
        # to that size is scanned whole, where YuNet finds the masked, dim and
        # side-view faces of a crowd that it misses at half size.
        scale = min(1.0, max(_MIN_WORK_FACE_PX / floor, _FINE_SIDE / longest))
        scales = [scale]
        # Coarse passes until the frame fits _COARSE_SIDE (within a quarter:
        # a pass barely smaller than the last adds cost, not faces).
        while longest * scale > _COARSE_SIDE * 1.25:
            scale = max(scale / _PASS_STEP, _COARSEST_SIDE / longest)
            scales.append(scale)
        return scales

    def scan_pixels(self, width: int, height: int, frame_scale: float = 1.0) -> int:
        """Pixels YuNet scans for a frame: every pass, in every orientation scanned.

        What the pixel budget counts (``analyze`` refuses an image over it).
        """
        return len(self._turns) * sum(
            _size(width, s)[0] * _size(height, s)[0]
            for s in self.detection_passes(width, height, frame_scale)
        )

    def analyze(self, image: DecodedImage) -> list[FaceObservation]:
        # No orientation tag: the photo may be stored turned, scan all four ways.
        untagged = image.meta.get("orientation", "1") == "1"
        self._turns = _ALL_TURNS if untagged else (0,)
        try:
            return super().analyze(image)
        finally:
            self._turns = _ALL_TURNS

    # -- detection --------------------------------------------------------

    def _analyze_frame(self, pixels: Pixels, frame_scale: float) -> list[FaceObservation]:
        hits = self.detect(pixels, frame_scale)
        if not hits:
            return []
        height, width = pixels.shape[:2]
        out: list[FaceObservation] = []
        for turns in sorted({h.turns for h in hits}):
            group = [h for h in hits if h.turns == turns]
            upright = turned(pixels, turns)
            shapes = dlib.full_object_detections()
            for hit in group:
                shapes.append(self._models.landmarks(upright, dlib_rect(hit.landmarks)))
            descriptors = self._models.encoder.compute_face_descriptor(
                upright, shapes, self._num_jitters
            )
            for hit, descriptor in zip(group, descriptors, strict=True):
                rotated_box = landmark_box(hit.landmarks, upright.shape[1], upright.shape[0])
                verdict = assess(upright, rotated_box, hit.landmarks, hit.score, frame_scale)
                out.append(
                    FaceObservation(
                        box=to_full_box(hit.box, frame_scale, width, height),
                        encoding=np.asarray(descriptor, dtype=np.float32),
                        matchable=verdict.reason is None,
                        unmatchable=verdict.reason,
                    )
                )
        return out

    def detect(self, pixels: Pixels, frame_scale: float = 1.0) -> list[_Hit]:
        """Verified faces of one frame (boxes in frame pixels), best first."""
        height, width = pixels.shape[:2]
        copies: list[npt.NDArray[Any]] = []
        source: npt.NDArray[Any] = pixels
        for scale in self.detection_passes(width, height, frame_scale):
            # Each pass is shrunk from the previous, larger, copy (not from the
            # frame again).
            source = shrink(source, (_size(width, scale)[0], _size(height, scale)[0]))
            copies.append(source)
        stored, others = self._turns[:1], self._turns[1:]
        raw = [h for copy in copies for h in self._scan(copy, width, height, stored)]
        # A photo whose faces stand confidently as stored is not stored turned,
        # but someone in it may lie down (a patient in bed): scanning its other
        # orientations at the coarse passes only would raise their floor to about
        # 100 px in 12 MP. The floor is a promise, so that saving is off.
        coarse_only = _TURNED_COARSE_ONLY and _upright(raw) == stored[0] and len(copies) > 1
        for copy in copies[1:] if coarse_only else copies:
            raw.extend(self._scan(copy, width, height, others))
        upright = _upright(raw)
        dense = self._dense_scale(width, height, frame_scale, raw, upright)
        if upright is not None and dense is not None:
            copy = shrink(pixels, (_size(width, dense)[0], _size(height, dense)[0]))
            raw.extend(self._scan(copy, width, height, (upright,)))
        return self._verified(pixels, raw, upright, frame_scale)

    def _verified(
        self, pixels: Pixels, raw: list[_Hit], upright: int | None, frame_scale: float
    ) -> list[_Hit]:
        """The raw hits merged (NMS) and, under ``_ACCEPT_SCORE``, confirmed by relooks."""
        floor = self._floor_px / frame_scale
        # The looser upright rule is for faces of crowds, near the floor: a large
        # low-scoring hit (a painted backdrop) is judged by the strict one.
        loose_under = _UPRIGHT_MAX_FLOORS * floor
        kept: list[_Hit] = []
        for hit in sorted(raw, key=lambda h: -h.score):
            if any(iou(hit.box, k.box) > _NMS_IOU for k in kept):
                continue
            width, height = hit.box[2] - hit.box[0], hit.box[3] - hit.box[1]
            if hit.score < _ACCEPT_SCORE:
                # Under half the floor: not promised, and the specks of the
                # hard-case set's false positives.
                if min(width, height) < floor / 2:
                    continue
                # Turned against the photo's confident faces and under the floor
                # (not promised): every such hit on the hard-case set was a hand
                # or a speck, and most passed every relook (docs/face-detector.md).
                if upright is not None and hit.turns != upright and min(width, height) < floor:
                    continue
                loose = hit.turns == upright and max(width, height) < loose_under
                floors = max(width, height) / floor
                need = _loose_need(floors) if loose else _tight_need(hit, upright, floors)
                if not self._confirmed(pixels, hit, loose, need):
                    continue
            kept.append(hit)
        return kept

    def _scan(
        self, source: npt.NDArray[Any], width: int, height: int, turns_list: tuple[int, ...]
    ) -> list[_Hit]:
        """YuNet's hits on an RGB working copy of a ``width`` x ``height`` frame, per turn."""
        # RGB to BGR on the small copy: YuNet reads BGR.
        work = cv2.cvtColor(source, cv2.COLOR_RGB2BGR)
        sx, sy = work.shape[1] / width, work.shape[0] / height
        out: list[_Hit] = []
        for turns in turns_list:
            rotated = turned(work, turns)
            for row in _run(self._detector, rotated):
                if not _sane(row, rotated.shape[1], rotated.shape[0]):
                    continue
                points = row[4:14].reshape(5, 2).astype(np.float32)
                corners = np.array(
                    [[row[0], row[1]], [row[0] + row[2], row[1] + row[3]]], dtype=np.float32
                )
                back = unturn(corners, turns, work.shape[1], work.shape[0])
                box = (
                    float(back[:, 0].min() / sx),
                    float(back[:, 1].min() / sy),
                    float(back[:, 0].max() / sx),
                    float(back[:, 1].max() / sy),
                )
                # Landmarks in the full-resolution frame turned ``turns`` times.
                fx, fy = (sx, sy) if turns % 2 == 0 else (sy, sx)
                out.append(
                    _Hit(box, points / np.array([fx, fy], np.float32), float(row[14]), turns)
                )
        return out

    def _dense_scale(
        self,
        width: int,
        height: int,
        frame_scale: float,
        raw: list[_Hit],
        upright: int | None,
    ) -> float | None:
        """Scale of the dense pass over the frame, or None when it is not run.

        Small faces come in crowds: when a confident face near the floor stands
        in the photo's upright orientation, that orientation is scanned again
        with the floor face at ``_DENSE_WORK_FACE_PX``, where YuNet finds more
        of the small, dim and half-hidden faces beside it. Never finer than
        the frame, not when the fine pass already was as fine, and not beyond
        the pixel budget.
        """
        if upright is None:
            return None
        floor = self._floor_px / frame_scale
        near_floor = any(
            h.turns == upright
            and h.score >= _ACCEPT_SCORE
            and min(h.box[2] - h.box[0], h.box[3] - h.box[1]) < _DENSE_TRIGGER * floor
            for h in raw
        )
        fine = self.detection_passes(width, height, frame_scale)[0]
        dense = min(1.0, _DENSE_WORK_FACE_PX / floor)
        if not near_floor or dense <= fine * 1.05:
            return None
        extra = _size(width, dense)[0] * _size(height, dense)[0]
        if self.scan_pixels(width, height, frame_scale) + extra > self._detect_budget_pixels:
            return None
        return dense

    def _confirmed(self, pixels: Pixels, hit: _Hit, upright: bool, need: int) -> bool:
        """Whether ``need`` relooks find the hit again (the ten loose looks in the upright, or the
        six tight ones)."""
        height, width = pixels.shape[:2]
        left, top, right, bottom = hit.box
        side = max(right - left, bottom - top, 1.0)
        sides: tuple[float, ...]
        if upright:
            if hit.score < _UPRIGHT_MIN_SCORE:
                return False
            context, sides = _UPRIGHT_CONTEXT, _UPRIGHT_SIDES
        else:
            context, sides = _RELOOK_CONTEXT, _RELOOK_SIDES
        margin = side * context
        x0, y0 = max(0, math.floor(left - margin)), max(0, math.floor(top - margin))
        x1, y1 = min(width, math.ceil(right + margin)), min(height, math.ceil(bottom + margin))
        if x1 - x0 < 2 or y1 - y0 < 2:
            return False
        # A large hit is first reduced by a whole factor (OpenCV's fast area
        # path; the crop trimmed to a multiple of it, under ``step`` px of
        # context) so that the looks below resize a small crop, not a frame-sized one.
        step = max(1, int(side // (2 * max(sides))))
        x1, y1 = x0 + (x1 - x0) // step * step, y0 + (y1 - y0) // step * step
        crop: npt.NDArray[Any] = pixels[y0:y1, x0:x1]
        if step > 1:
            size = ((x1 - x0) // step, (y1 - y0) // step)
            crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        target = turn_box(hit.box, x0, y0, hit.turns, x1 - x0, y1 - y0)
        passed = failed = 0
        looks = 2 * len(sides)
        for want in sides:
            # The verdict is known once enough looks passed, or too many failed.
            if passed >= need or looks - failed < need:
                break
            factor = want / side
            size = (max(1, round((x1 - x0) * factor)), max(1, round((y1 - y0) * factor)))
            method = cv2.INTER_AREA if size[0] < crop.shape[1] else cv2.INTER_LINEAR
            scaled = cv2.resize(crop, size, interpolation=method)
            scaled = turned(cv2.cvtColor(scaled, cv2.COLOR_RGB2BGR), hit.turns)
            # Scaled pixels per crop pixel, along the turned axes.
            fx, fy = size[0] / (x1 - x0), size[1] / (y1 - y0)
            if hit.turns % 2:
                fx, fy = fy, fx
            for net in (self._detector, self._checker):
                best = 0.0
                for row in _run(net, scaled):
                    found = (
                        row[0] / fx,
                        row[1] / fy,
                        (row[0] + row[2]) / fx,
                        (row[1] + row[3]) / fy,
                    )
                    if iou(found, target) >= _RELOOK_IOU:
                        best = max(best, float(row[14]))
                if best >= _RELOOK_SCORE:
                    passed += 1
                else:
                    failed += 1
        return passed >= need


def _loose_need(floors: float) -> int:
    """Of the ten loose looks in the upright, how many must find a hit ``floors`` floors long."""
    return _UPRIGHT_NEED_UNDER_FLOOR if floors < 1.0 else _UPRIGHT_NEED


def _tight_need(hit: _Hit, upright: int | None, floors: float) -> int:
    """Of the six tight looks, how many must find ``hit`` (``floors``: its long side / floor).

    With no confident face in the photo there is nothing to be turned
    against: a lone face blurred or damaged below 0.9 needs 5 (4 near the
    floor); a large confident-looking hit in the upright needs 4; a hit
    turned against the upright, all six.
    """
    if upright is None:
        return _ALONE_SMALL_NEED if floors < _ALONE_SMALL_FLOORS else _RELOOK_NEED_ALONE
    if hit.turns == upright and hit.score >= _LARGE_UPRIGHT_MIN_SCORE:
        return _LARGE_UPRIGHT_NEED
    return _RELOOK_NEED


def _upright(raw: list[_Hit]) -> int | None:
    """The photo's upright: the quarter turn of most confident hits (None without one).

    Ties go to the turn scanned first (0: as stored).
    """
    counts = [sum(h.turns == t and h.score >= _ACCEPT_SCORE for h in raw) for t in _ALL_TURNS]
    best = max(counts)
    return _ALL_TURNS[counts.index(best)] if best > 0 else None


def _run(net: Any, bgr: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    net.setInputSize((bgr.shape[1], bgr.shape[0]))
    _, faces = net.detect(bgr)
    return np.empty((0, 15), np.float32) if faces is None else faces


def _size(length: int, scale: float) -> tuple[int]:
    return (max(1, round(length * scale)),)
