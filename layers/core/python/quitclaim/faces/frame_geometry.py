"""Geometry of the detector's working copies: quarter turns, shrinking, boxes.

Pure functions over numpy arrays and ``(left, top, right, bottom)`` tuples,
shared by the scan, the relooks and the alignment in ``faces.yunet_engine``.
"""

from __future__ import annotations

import math
from typing import Any, Final

import cv2
import dlib
import numpy as np
import numpy.typing as npt

from quitclaim.domain.models import Box

Landmarks = npt.NDArray[np.float32]

# dlib's 5-point predictor was trained on HOG boxes: about the square from the
# brows to the lower lip. From YuNet's landmarks: centred between the eyes'
# midpoint and the mouth's, side a multiple of their distance (checked on
# the fixtures' uploads and portraits: the encodings differ from those of the
# HOG box by 0.048 on average, 0.16 at most; sides 1.8-2.4, drops 0-0.3 tried).
_DLIB_BOX_SIDE: Final = 2.0
_DLIB_BOX_DROP: Final = 0.3

_ROTATIONS: Final = {
    1: cv2.ROTATE_90_COUNTERCLOCKWISE,
    2: cv2.ROTATE_180,
    3: cv2.ROTATE_90_CLOCKWISE,
}


def turned(image: npt.NDArray[Any], turns: int) -> npt.NDArray[Any]:
    """``np.rot90(image, turns)``, contiguous (cv2.rotate: a tenth of numpy's copy time)."""
    return image if turns == 0 else cv2.rotate(image, _ROTATIONS[turns])


def shrink(image: npt.NDArray[Any], size: tuple[int, int]) -> npt.NDArray[Any]:
    """``image`` resized to ``size`` (width, height) with area averaging; never enlarged.

    The whole-factor part goes first through OpenCV's fast area path (a 12 MP
    photo halved in ~9 ms), the rest from that smaller copy (~58 ms for
    one non-integer area resize of the 12 MP photo, ~30 ms in two steps).
    """
    height, width = image.shape[:2]
    if size == (width, height):
        return image
    step = min(width // size[0], height // size[1])
    if step >= 2:
        rows, cols = (height // step) * step, (width // step) * step
        image = cv2.resize(
            image[:rows, :cols], (cols // step, rows // step), interpolation=cv2.INTER_AREA
        )
        if image.shape[1] == size[0] and image.shape[0] == size[1]:
            return image
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def unturn(
    points: npt.NDArray[np.float32], turns: int, width: int, height: int
) -> npt.NDArray[np.float32]:
    """Points of ``np.rot90(img, turns)`` mapped back to ``img`` (``width`` x ``height``)."""
    out = points.astype(np.float32).copy()
    dims = [(width, height), (height, width)]
    for step in range(turns, 0, -1):
        # One counter-clockwise quarter turn maps (x, y) of an image w wide to (y, w - x);
        # undo it with the width of the image before that turn.
        w_before = dims[(step - 1) % 2][0]
        x, y = out[:, 0].copy(), out[:, 1].copy()
        out[:, 0] = w_before - y
        out[:, 1] = x
    return out


def turn_box(
    box: tuple[float, float, float, float], x0: int, y0: int, turns: int, width: int, height: int
) -> tuple[float, float, float, float]:
    """A frame box, relative to a crop at (x0, y0) of ``width`` x ``height``, after ``turns``."""
    pts = np.array([[box[0] - x0, box[1] - y0], [box[2] - x0, box[3] - y0]], np.float32)
    dims = [(width, height), (height, width)]
    for step in range(turns):
        w_before = dims[step % 2][0]
        x, y = pts[:, 0].copy(), pts[:, 1].copy()
        pts[:, 0] = y
        pts[:, 1] = w_before - x
    return (
        float(pts[:, 0].min()),
        float(pts[:, 1].min()),
        float(pts[:, 0].max()),
        float(pts[:, 1].max()),
    )


def dlib_rect(landmarks: Landmarks) -> Any:
    left, top, right, bottom = landmark_square(landmarks)
    return dlib.rectangle(round(left), round(top), round(right) - 1, round(bottom) - 1)


def landmark_square(landmarks: Landmarks) -> tuple[float, float, float, float]:
    eyes = (landmarks[0] + landmarks[1]) / 2
    mouth = (landmarks[3] + landmarks[4]) / 2
    span = max(
        float(np.hypot(*(mouth - eyes))), float(np.hypot(*(landmarks[1] - landmarks[0]))), 1.0
    )
    cx, cy = (eyes + mouth) / 2
    side = _DLIB_BOX_SIDE * span
    cy = cy - _DLIB_BOX_DROP * span
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def landmark_box(landmarks: Landmarks, width: int, height: int) -> Box:
    left, top, right, bottom = landmark_square(landmarks)
    return Box(
        max(0, math.floor(left)),
        max(0, math.floor(top)),
        min(width, math.ceil(right)),
        min(height, math.ceil(bottom)),
    )


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def to_full_box(
    box: tuple[float, float, float, float], frame_scale: float, width: int, height: int
) -> Box:
    max_x, max_y = round(width * frame_scale), round(height * frame_scale)
    left, top, right, bottom = box
    return Box(
        left=min(max_x, max(0, math.floor(left * frame_scale))),
        top=min(max_y, max(0, math.floor(top * frame_scale))),
        right=min(max_x, max(0, math.ceil(right * frame_scale))),
        bottom=min(max_y, max(0, math.ceil(bottom * frame_scale))),
    )
