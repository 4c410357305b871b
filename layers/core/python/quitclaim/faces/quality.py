"""Reference-photo quality: a blurry template drifts toward an "average face"
and matches strangers more easily, so enrolment refuses it."""

from __future__ import annotations

import numpy as np
from PIL import Image

from quitclaim.domain.models import Box
from quitclaim.domain.ports import Pixels

# Calibrated on the enrolment fixtures (crop normalised to 128 px): sharp
# portraits scored 317-685, the same portraits after a 2 px Gaussian blur
# 14-114. Doubt falls toward refusing: the person can send another photo.
MIN_SHARPNESS = 150.0
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def sharpness(pixels: Pixels, box: Box) -> float:
    """Variance of the Laplacian of the face crop, at a fixed 128 px scale."""
    top, bottom = max(0, box.top), min(pixels.shape[0], box.bottom)
    left, right = max(0, box.left), min(pixels.shape[1], box.right)
    if bottom - top < 3 or right - left < 3:
        return 0.0
    grey = pixels[top:bottom, left:right].astype(np.float32) @ _LUMA
    crop = Image.fromarray(grey.clip(0, 255).astype(np.uint8)).resize((128, 128))
    a = np.asarray(crop, dtype=np.float32)
    laplacian = 4 * a[1:-1, 1:-1] - a[:-2, 1:-1] - a[2:, 1:-1] - a[1:-1, :-2] - a[1:-1, 2:]
    return float(laplacian.var())
