"""Safe decoding of uploads into oriented RGB frames.

Every way an image can fail to decode is a way a face can go unseen, and an
unseen face means publication without consent. So this module refuses rather
than guesses: unknown bytes, oversized headers, truncated data, odd pixel
modes and too many frames are rejected with a stable ``RejectedInput.code``
(the original is held under ``rejected/`` for review).

Pillow global state: ``ImageFile.LOAD_TRUNCATED_IMAGES`` is forced back to
False on every call (``import face_recognition`` sets it True process-wide,
which turns a cut-off JPEG into a grey hole where the face was). Nothing else
global is changed; the decompression-bomb warning is made an error only
inside this module's decode.
"""

from __future__ import annotations

import dataclasses
import io
import struct
import warnings
import zlib
from collections.abc import Callable
from typing import Final

import numpy as np
import simplejpeg
from PIL import ExifTags, Image, ImageFile, ImageFilter

from quitclaim.domain.errors import RejectedInput
from quitclaim.domain.models import Box
from quitclaim.domain.ports import DecodedImage, FaceObservation, Pixels
from quitclaim.faces import containers
from quitclaim.faces.file_integrity import check_container_complete, check_jpeg_entropy

# Magic bytes → Pillow format: these four are decoded as they are; HEIF, AVIF
# and TIFF through faces/containers.py. The file name and the declared content
# type are never trusted.
_PNG_MAGIC: Final = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC: Final = b"\xff\xd8\xff"
# Modes our four formats can produce. Anything else (float, signed, LAB, ...)
# has no agreed mapping to what a viewer sees, so it is refused.
ALLOWED_MODES: frozenset[str] = frozenset(
    {
        "1",
        "L",
        "LA",
        "P",
        "PA",
        "RGB",
        "RGBA",
        "CMYK",
        "YCbCr",
        "I;16",
        "I;16L",
        "I;16B",
        "I",
    }
)
_SIXTEEN_BIT_MODES: Final = frozenset({"I;16", "I;16L", "I;16B", "I"})
# The scale-downs libjpeg's DCT scaling offers through Pillow's draft mode.
_DCT_REDUCTIONS: Final = frozenset({1, 2, 4, 8})

# EXIF orientations that transpose the image (width and height swap).
_SWAPS_AXES: Final = frozenset({5, 6, 7, 8})

# Exceptions Pillow and its codecs raise for bad data (UnidentifiedImageError
# is an OSError). Anything outside this list is a bug and propagates.
_DECODE_ERRORS: Final = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    struct.error,
    zlib.error,
)


def sniff_format(data: bytes) -> str | None:
    """The Pillow format name the magic bytes announce, or None if not allowed."""
    if data.startswith(_JPEG_MAGIC):
        return "JPEG"
    if data.startswith(_PNG_MAGIC):
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def decode_image(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    max_frames: int,
    max_total_pixels: int | None = None,
    reduction: Callable[[int, int], int] | None = None,
) -> DecodedImage:
    """Validate ``data`` and decode every frame to oriented RGB uint8.

    ``max_pixels`` bounds one frame and is checked from the header before any
    pixel is decoded; ``max_total_pixels`` (default: ``max_pixels``) bounds the
    sum over all frames of an animation. ``reduction`` maps a JPEG's header
    size (width, height) to a DCT scale-down (1, 2, 4 or 8): libjpeg then
    decodes straight to that size (draft mode), still reading every byte, so
    truncation and corruption are caught as in a full decode; the result has
    ``scale`` set to it and ``width``/``height`` of the full-size image.
    Other formats ignore it. Raises ``RejectedInput`` with code
    ``empty_file``, ``too_large``, ``unsupported_format``, ``too_many_pixels``,
    ``unsupported_mode``, ``too_many_frames``, ``truncated_image``,
    ``corrupt_image``, ``raw_not_supported`` or ``video_not_supported``.

    HEIF/HEIC and AVIF decode to their primary image, TIFF to every page
    (faces/containers.py); pages count as frames against ``max_frames`` and
    ``max_total_pixels``.
    """
    # Set on every call, not once at import: a later `import face_recognition`
    # flips it back to True for the whole process. First thing, so that even a
    # rejected call leaves the process safe for the next decode.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    if not data:
        raise RejectedInput("the upload is empty", code="empty_file")
    if len(data) > max_bytes:
        raise RejectedInput(
            f"the upload has {len(data)} bytes; the limit is {max_bytes}", code="too_large"
        )
    fmt = sniff_format(data)
    total_budget = max_pixels if max_total_pixels is None else max_total_pixels
    if fmt is None:
        kind = containers.kind_of(data)
        if kind is None:
            raise RejectedInput(
                "the content is not a JPEG, PNG, GIF, WebP, HEIF, AVIF or TIFF image",
                code="unsupported_format",
            )
        found = containers.pictures(
            data,
            kind,
            max_pixels=max_pixels,
            max_frames=max_frames,
            max_total_pixels=total_budget,
        )
        return _decoded_pictures(found, kind)
    check_container_complete(data, fmt)
    return _decode_refusing(data, fmt, max_pixels, max_frames, total_budget, reduction)


def _decode_refusing(
    data: bytes,
    fmt: str,
    max_pixels: int,
    max_frames: int,
    total_budget: int,
    reduction: Callable[[int, int], int] | None,
) -> DecodedImage:
    """``_decode``, with every way the decoder fails mapped to a ``RejectedInput`` code."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return _decode(data, fmt, max_pixels, max_frames, total_budget, reduction)
    except RejectedInput:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise RejectedInput(
            "the image header declares more pixels than can be decoded safely",
            code="too_many_pixels",
        ) from None
    except _DECODE_ERRORS as exc:
        if _looks_truncated(exc):
            raise RejectedInput("the image data ends early", code="truncated_image") from None
        raise RejectedInput(
            f"the image cannot be decoded ({type(exc).__name__})", code="corrupt_image"
        ) from None


def _decode(
    data: bytes,
    fmt: str,
    max_pixels: int,
    max_frames: int,
    total_budget: int,
    reduction: Callable[[int, int], int] | None,
) -> DecodedImage:
    with Image.open(io.BytesIO(data), formats=[fmt]) as im:
        width, height = im.size
        _check_pixels(width, height, max_pixels)
        _check_mode(im.mode)
        if fmt == "JPEG":
            # After the header's pixel check: a declared bomb is never decoded, even at 1/8.
            check_jpeg_entropy(data)
        declared = 1 if fmt == "GIF" else int(getattr(im, "n_frames", 1))
        # GIF frame counts are only known by walking the file (which decodes);
        # the loop in ``_frames`` enforces the limit for GIFs as it goes.
        if declared > max_frames:
            raise RejectedInput(
                f"the image has {declared} frames; the limit is {max_frames}",
                code="too_many_frames",
            )
        orientation = _orientation(im)
        original_mode = im.mode
        scale = 1
        if fmt == "JPEG" and reduction is not None:
            scale = _draft(im, reduction(width, height))
        whole = None
        if fmt == "JPEG" and scale == 1 and declared == 1 and width * height <= total_budget:
            whole = _whole_jpeg(im, data, orientation)
        if whole is not None:
            return whole
        frames, views = _frames(im, declared, max_pixels, max_frames, total_budget, orientation)

    meta = {"mode": original_mode, "orientation": str(orientation), "frames": str(len(views))}
    if any(n > 1 for n in views):
        # A frame with transparency became three views (colour, on white, on
        # black; see ``_views``): how many each frame of the file gave, in order.
        meta["views"] = ",".join(map(str, views))
    if scale == 1:
        first = frames[0]
        return DecodedImage(
            frames=tuple(frames),
            source_format=fmt,
            width=int(first.shape[1]),
            height=int(first.shape[0]),
            meta=meta,
        )
    # The full-size image as oriented (orientations 5-8 swap the axes).
    full_w, full_h = (height, width) if orientation in _SWAPS_AXES else (width, height)
    return DecodedImage(
        frames=tuple(frames),
        source_format=fmt,
        width=full_w,
        height=full_h,
        scale=float(scale),
        meta={**meta, "reduction": str(scale)},
    )


def _frames(
    im: Image.Image,
    declared: int,
    max_pixels: int,
    max_frames: int,
    total_budget: int,
    orientation: int,
) -> tuple[list[Pixels], list[int]]:
    """Every frame's views, and how many views each frame gave (one entry per frame)."""
    frames: list[Pixels] = []
    views: list[int] = []
    budget = total_budget
    index = 0
    while True:
        if index > 0:
            try:
                im.seek(index)
            except EOFError:
                if index < declared:
                    # The header promised more frames than the data holds.
                    raise RejectedInput(
                        "the animation ends before its last frame", code="truncated_image"
                    ) from None
                break
        if index >= max_frames:
            raise RejectedInput(
                f"the image has more than {max_frames} frames", code="too_many_frames"
            )
        frame_w, frame_h = im.size
        _check_pixels(frame_w, frame_h, max_pixels)
        budget -= frame_w * frame_h
        if budget < 0:
            raise RejectedInput(
                f"all frames together exceed {total_budget} pixels", code="too_many_pixels"
            )
        _check_mode(im.mode)
        im.load()
        frame_views = _views(im, orientation)
        views.append(len(frame_views))
        frames.extend(frame_views)
        index += 1
        if not getattr(im, "is_animated", False):
            break
    return frames, views


def _decoded_pictures(found: list[containers.Picture], kind: str) -> DecodedImage:
    """HEIF/AVIF/TIFF pictures (already upright) as frames, each with its views."""
    frames: list[Pixels] = []
    views: list[int] = []
    for picture in found:
        _check_mode(picture.image.mode)
        picture_views = _views(picture.image, 1)
        views.append(len(picture_views))
        frames.extend(picture_views)
    meta = {"mode": found[0].image.mode, "orientation": "1", "frames": str(len(found))}
    if any(n > 1 for n in views):
        meta["views"] = ",".join(map(str, views))
    first = frames[0]
    return DecodedImage(
        frames=tuple(frames),
        source_format=kind,
        width=int(first.shape[1]),
        height=int(first.shape[0]),
        meta=meta,
    )


def _draft(im: Image.Image, wanted: int) -> int:
    """Switch a JPEG to DCT-scaled decoding by ``wanted``; the reduction obtained."""
    if wanted not in _DCT_REDUCTIONS:
        raise RuntimeError(f"a JPEG reduction is one of {sorted(_DCT_REDUCTIONS)}, not {wanted}")
    if wanted == 1:
        return 1
    width, height = im.size
    # The mode stays as the file has it (conversion to RGB follows); libjpeg
    # picks the largest reduction whose result is at least the asked size, and
    # every reduced pixel stands for exactly wanted x wanted source pixels.
    result = im.draft(None, (width // wanted, height // wanted))
    if result is None:
        return 1
    obtained = round(width / result[1][2])
    if obtained != wanted:
        raise RuntimeError(f"JPEG draft gave 1/{obtained}, not 1/{wanted}")
    return obtained


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise RejectedInput("the image has no pixels", code="corrupt_image")
    if width * height > max_pixels:
        raise RejectedInput(
            f"the image is {width}x{height} pixels; the limit is {max_pixels} pixels",
            code="too_many_pixels",
        )


def _check_mode(mode: str) -> None:
    if mode not in ALLOWED_MODES:
        raise RejectedInput(f"pixel mode {mode!r} is not supported", code="unsupported_mode")


def _orientation(im: Image.Image) -> int:
    # Unreadable EXIF propagates to the caller's mapping (corrupt_image): a
    # guessed orientation could hide a sideways face from a frontal detector.
    # (For PNG this loads frame 0, since eXIf may follow the pixel data.)
    value = im.getexif().get(ExifTags.Base.Orientation, 1)
    try:
        return int(value)
    except (TypeError, ValueError):
        return 1


def _views(im: Image.Image, orientation: int) -> list[Pixels]:
    """What a viewer may see of one frame: its colour, and, with transparency, two composites.

    A frame with alpha (or a transparent palette entry or colour key) is
    seen against whatever the page behind it is: a face drawn in the alpha
    channel over black colour shows on white and vanishes on black, the
    reverse for white colour. So such a frame is scanned three times: the
    colour as stored (what a tool that drops alpha shows, and what lies under
    fully transparent pixels), composited onto white, and onto black. A frame
    whose alpha is opaque everywhere is one view.
    """
    colour = _to_rgb_array(im, orientation)
    if im.mode in _SIXTEEN_BIT_MODES or not im.has_transparency_data:
        return [colour]
    rgba = im.convert("RGBA")
    low, _ = rgba.getchannel("A").getextrema()
    if low == 255:
        return [colour]
    views = [colour]
    for background in ((255, 255, 255, 255), (0, 0, 0, 255)):
        flat = Image.alpha_composite(Image.new("RGBA", rgba.size, background), rgba)
        views.append(_to_rgb_array(flat.convert("RGB"), orientation))
    return views


# Two detections of one face in two views of a frame overlap at least this much.
_SAME_FACE_IOU: Final = 0.5


def merge_views(image: DecodedImage, found: list[FaceObservation]) -> list[FaceObservation]:
    """Faces found in the views of a frame (``_views``) as faces of the file's frames.

    A face seen in the colour view and again on white or on black is one
    face: a detection overlapping (IoU >= 0.5) one already kept for the same
    frame is dropped, the views taken in order. ``frame`` becomes the file's
    frame index. Without views (no transparency) ``found`` comes back as is.
    """
    counts = image.meta.get("views")
    if not counts:
        return found
    frame_of = [frame for frame, n in enumerate(map(int, counts.split(","))) for _ in range(n)]
    kept: list[FaceObservation] = []
    for obs in sorted(found, key=lambda o: o.frame):
        frame = frame_of[obs.frame]
        if any(k.frame == frame and _iou(k.box, obs.box) >= _SAME_FACE_IOU for k in kept):
            continue
        kept.append(dataclasses.replace(obs, frame=frame))
    return kept


def _iou(a: Box, b: Box) -> float:
    width = min(a.right, b.right) - max(a.left, b.left)
    height = min(a.bottom, b.bottom) - max(a.top, b.top)
    if width <= 0 or height <= 0:
        return 0.0
    overlap = width * height
    return overlap / (a.width * a.height + b.width * b.height - overlap)


def _to_rgb_array(im: Image.Image, orientation: int) -> Pixels:
    if im.mode in _SIXTEEN_BIT_MODES:
        # Pillow's convert() clips 16-bit values at 255 (a white image, no
        # face); scale the full 0..65535 range down instead.
        raw = np.asarray(im)
        if im.mode == "I":
            raw = np.clip(raw, 0, 65535)
        wide = raw.astype(np.uint32)
        grey = ((wide * 255 + 32767) // 65535).astype(np.uint8)
        rgb_image = Image.fromarray(np.ascontiguousarray(grey), mode="L").convert("RGB")
    elif im.mode == "RGB":
        # convert() would copy 36 MB of a 12 MP frame for nothing.
        rgb_image = im
    elif im.mode == "1":
        # A bilevel (dithered) picture is grey to a viewer's eye, but its single-pixel
        # dots hide a face from a CNN detector: scanned as the eye sees it, smoothed.
        rgb_image = im.convert("L").filter(ImageFilter.GaussianBlur(1.0)).convert("RGB")
    else:
        rgb_image = im.convert("RGB")
    # Applied per frame ourselves so an animated image is oriented once, from
    # frame 0's tag, without extra copies.
    method = containers.ORIENTATION_TRANSPOSE.get(orientation)
    if method is not None:
        rgb_image = rgb_image.transpose(method)
    pixels = np.ascontiguousarray(np.asarray(rgb_image, dtype=np.uint8))
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise RejectedInput("the image did not decode to RGB pixels", code="corrupt_image")
    # Frames are shared (engine, thumbnails, ...); nobody may paint on them.
    pixels.flags.writeable = False
    return pixels


def _whole_jpeg(im: Image.Image, data: bytes, orientation: int) -> DecodedImage | None:
    """A one-frame colour JPEG at full size, decoded by libjpeg-turbo straight into numpy.

    The same pixels as Pillow's (both are libjpeg-turbo; checked on the
    fixtures), in under half the time: Pillow's tiled load plus its copy into
    numpy cost ~0.15 s of a 12 MP photo. None (Pillow decodes it, as before)
    for any other mode, or when simplejpeg refuses the data.
    """
    if im.mode != "RGB":
        return None
    try:
        pixels = simplejpeg.decode_jpeg(data, colorspace="RGB")
    except ValueError:
        return None
    if pixels.shape != (im.size[1], im.size[0], 3):
        return None
    method = containers.ORIENTATION_TRANSPOSE.get(orientation)
    if method is not None:
        pixels = np.asarray(Image.fromarray(pixels).transpose(method), dtype=np.uint8)
    pixels = np.ascontiguousarray(pixels)
    # Frames are shared (engine, thumbnails, ...); nobody may paint on them.
    pixels.flags.writeable = False
    return DecodedImage(
        frames=(pixels,),
        source_format="JPEG",
        width=int(pixels.shape[1]),
        height=int(pixels.shape[0]),
        meta={"mode": "RGB", "orientation": str(orientation), "frames": "1"},
    )


def _looks_truncated(exc: BaseException) -> bool:
    if isinstance(exc, EOFError):
        return True
    text = str(exc).lower()
    return "truncated" in text or "end of file" in text or "premature" in text
