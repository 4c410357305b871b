"""The 12 MP benchmark images, generated from the fixtures into a scratch folder.

Each fixture is turned upright (EXIF orientation applied), scaled with
LANCZOS to fit 4000x3000 (3000x4000 for portrait-format sources) and
centred on neutral grey, then saved as JPEG quality 90 without EXIF. Fitting
rather than cropping keeps every labelled face in the frame, so the labels
still hold; the hand-drawn boxes of ``detection/`` are mapped with the same
scale and offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from bench.labelled import DETECTION, LABELLED_SETS, UPLOADS, detection_boxes, upload_names
from quitclaim.domain.models import Box

SIZE_12MP = (4000, 3000)
JPEG_QUALITY = 90
_PAD = (128, 128, 128)


@dataclass(frozen=True)
class Placed:
    """Where a source image landed in its generated frame."""

    path: Path
    scale: float
    offset: tuple[int, int]

    def box(self, box: Box) -> Box:
        dx, dy = self.offset
        return Box(
            round(box.left * self.scale) + dx,
            round(box.top * self.scale) + dy,
            round(box.right * self.scale) + dx,
            round(box.bottom * self.scale) + dy,
        )


def fit(source: Path, target: Path, size: tuple[int, int] = SIZE_12MP) -> Placed:
    """``source`` upright, scaled into ``size`` (turned to match its format), as JPEG."""
    with Image.open(source) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    long_side, short_side = max(size), min(size)
    frame = (long_side, short_side) if image.width >= image.height else (short_side, long_side)
    scale = min(frame[0] / image.width, frame[1] / image.height)
    scaled_size = (round(image.width * scale), round(image.height * scale))
    scaled = image.resize(scaled_size, Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", frame, _PAD)
    offset = ((frame[0] - scaled_size[0]) // 2, (frame[1] - scaled_size[1]) // 2)
    canvas.paste(scaled, offset)
    canvas.save(target, "JPEG", quality=JPEG_QUALITY)
    return Placed(target, scale, offset)


@dataclass(frozen=True)
class Corpus:
    uploads: dict[str, Placed]  # upload name → generated file
    detection: dict[str, Placed]  # detection image name → generated file

    def truth(self, xml_name: str) -> dict[str, tuple[Box, ...]]:
        """The hand-drawn boxes of a labelled set, in the generated frames."""
        return {
            name: tuple(self.detection[name].box(b) for b in boxes)
            for name, boxes in detection_boxes(xml_name).items()
            if name in self.detection
        }


def build(
    folder: Path,
    *,
    size: tuple[int, int] = SIZE_12MP,
    uploads: list[str] | None = None,
    detection: list[str] | None = None,
) -> Corpus:
    """Generate the corpus into ``folder``: uploads and labelled detection images.

    ``None`` means all of them; the labelled sets' truth is then restricted
    to the detection images generated.
    """
    folder.mkdir(parents=True, exist_ok=True)
    names = upload_names() if uploads is None else uploads
    made_uploads = {
        name: fit(UPLOADS / name, folder / f"upload-{Path(name).stem}.jpg", size) for name in names
    }
    labelled = sorted({name for xml in LABELLED_SETS for name in detection_boxes(xml)})
    made_detection = {
        name: fit(DETECTION / name, folder / f"detection-{Path(name).stem}.jpg", size)
        for name in (labelled if detection is None else detection)
    }
    return Corpus(made_uploads, made_detection)
