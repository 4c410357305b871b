"""decode_image: every way an upload could hide a face is refused or handled.

Inputs are built as bytes from the real face fixtures, so each rejection is
tested on the data shape that would reach the function in production.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image, ImageFile

from quitclaim.domain.errors import RejectedInput
from quitclaim.domain.models import Box
from quitclaim.domain.ports import DecodedImage
from quitclaim.faces import file_integrity, imaging
from quitclaim.faces.dlib_engine import DlibFaceEngine
from quitclaim.faces.imaging import decode_image
from tests import inputs
from tests.unit.faces._fixtures import ONE_FACE, REPO, UPLOADS, encode, iou, read

LIMITS = {"max_bytes": 50 * 1024 * 1024, "max_pixels": 60_000_000, "max_frames": 200}


def decode(data: bytes, **overrides: int) -> DecodedImage:
    return decode_image(data, **{**LIMITS, **overrides})


def rejection(data: bytes, **overrides: int) -> str:
    with pytest.raises(RejectedInput) as caught:
        decode(data, **overrides)
    return caught.value.code


@pytest.fixture(scope="module")
def engine() -> DlibFaceEngine:
    return DlibFaceEngine()


@pytest.fixture(scope="module")
def upright() -> Image.Image:
    with Image.open(ONE_FACE) as im:
        return im.convert("RGB")


@pytest.fixture(scope="module")
def upright_box(engine: DlibFaceEngine) -> Box:
    faces = engine.analyze(decode(read(ONE_FACE)))
    assert len(faces) == 1
    return faces[0].box


@pytest.fixture(autouse=True)
def _restore_truncated_flag() -> Iterator[None]:
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    yield
    ImageFile.LOAD_TRUNCATED_IMAGES = saved


def _animation(fmt: str, frames: list[Image.Image]) -> bytes:
    params: dict[str, object] = {"save_all": True, "append_images": frames[1:], "duration": 100}
    if fmt == "GIF":
        params["loop"] = 0
    if fmt == "WEBP":
        params["lossless"] = True
    return encode(frames[0], fmt, **params)


def _blank_frames(size: tuple[int, int], count: int) -> list[Image.Image]:
    # Distinct levels: encoders merge identical consecutive frames.
    return [Image.new("RGB", size, (30 + 40 * i, 30 + 40 * i, 30 + 40 * i)) for i in range(count)]


# --- accepted inputs -----------------------------------------------------------


def test_a_jpeg_decodes_to_contiguous_read_only_rgb() -> None:
    # Given a real JPEG upload
    data = read(ONE_FACE)
    # When it is decoded
    image = decode(data)
    # Then there is one RGB uint8 frame of the header's size, safe to share
    (frame,) = image.frames
    assert image.source_format == "JPEG"
    assert frame.shape == (374, 630, 3)
    assert (image.width, image.height) == (630, 374)
    assert frame.dtype == np.uint8
    assert frame.flags.c_contiguous
    assert not frame.flags.writeable


def test_an_rgba_png_decodes_to_rgb() -> None:
    # Given the RGBA PNG upload
    data = read(UPLOADS / "stranger-portrait.png")
    # When it is decoded
    image = decode(data)
    # Then alpha is gone and the format comes from the bytes
    assert image.source_format == "PNG"
    assert image.frames[0].shape == (612, 704, 3)
    assert image.meta["mode"] == "RGBA"


def test_data_after_the_jpeg_end_marker_is_allowed() -> None:
    # Given a complete JPEG followed by a vendor trailer (cameras append these)
    data = read(ONE_FACE) + b"VENDOR-TRAILER" * 10
    # When it is decoded
    image = decode(data)
    # Then it is accepted as the same picture
    assert image.frames[0].shape == (374, 630, 3)


def test_a_file_exactly_at_the_byte_limit_is_accepted() -> None:
    data = read(ONE_FACE)
    assert decode(data, max_bytes=len(data)).width == 630


# --- rejections ----------------------------------------------------------------


def test_an_empty_upload_is_rejected() -> None:
    assert rejection(b"") == "empty_file"


def test_an_upload_over_the_byte_limit_is_rejected() -> None:
    # Given a real JPEG one byte over the limit
    data = read(ONE_FACE)
    # When / Then
    assert rejection(data, max_bytes=len(data) - 1) == "too_large"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"hello, I am a text file named photo.jpg\n", id="text-as-jpg"),
        pytest.param(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", id="pdf"),
        pytest.param(b'<svg xmlns="http://www.w3.org/2000/svg"/>', id="svg"),
        pytest.param(encode(Image.new("RGB", (8, 8)), "BMP"), id="bmp"),
    ],
)
def test_anything_but_the_decoded_formats_is_rejected_by_its_bytes(data: bytes) -> None:
    assert rejection(data) == "unsupported_format"


def test_a_jpeg_with_garbage_headers_is_corrupt() -> None:
    # Given a JPEG whose magic survives but whose tables are overwritten
    data = read(ONE_FACE)
    corrupt = data[:4] + bytes(range(256)) * 2 + data[4 + 512 :]
    # When / Then
    assert rejection(corrupt) == "corrupt_image"


def test_a_png_with_damaged_pixel_data_is_corrupt(upright: Image.Image) -> None:
    # Given a PNG whose compressed pixel stream is damaged
    data = bytearray(encode(upright, "PNG"))
    start = data.find(b"IDAT") + 100
    for i in range(start, start + 40):
        data[i] ^= 0x5A
    # When / Then
    assert rejection(bytes(data)) == "corrupt_image"


def test_a_jpeg_cut_through_the_face_is_rejected_not_greyed(upright_box: Box) -> None:
    # Given the JPEG cut at 60% of its bytes: the face's lower half is missing
    data = read(ONE_FACE)
    cut = data[: int(len(data) * 0.6)]
    # And the process-wide flag face_recognition's import sets
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    # When it is decoded
    code = rejection(cut)
    # Then it is refused, and the flag is off again
    assert code == "truncated_image"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    # (The cut really is through the face: Pillow's lenient mode greys it out.)
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    with Image.open(io.BytesIO(cut)) as lenient:
        pixels = np.asarray(lenient.convert("RGB"))
    face = pixels[upright_box.top : upright_box.bottom, upright_box.left : upright_box.right]
    assert (face == 128).all(axis=2).any()


@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.6, 0.9, 0.999])
@pytest.mark.parametrize("progressive", [False, True])
def test_a_jpeg_cut_anywhere_is_truncated(
    upright: Image.Image, fraction: float, progressive: bool
) -> None:
    data = encode(upright, "JPEG", quality=90, progressive=progressive)
    assert rejection(data[: int(len(data) * fraction)]) == "truncated_image"


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "GIF"])
def test_other_formats_cut_through_the_pixels_are_truncated(upright: Image.Image, fmt: str) -> None:
    data = encode(upright, fmt)
    assert rejection(data[: int(len(data) * 0.6)]) == "truncated_image"


def test_a_gif_cut_between_frames_is_truncated() -> None:
    # Given a complete animated GIF missing only its trailer byte: Pillow would
    # decode it "fine", with the last frames silently gone
    data = _animation("GIF", _blank_frames((32, 32), 4))
    assert data.endswith(b";")
    # When / Then
    assert rejection(data[:-1]) == "truncated_image"


def test_the_jpeg_end_check_ignores_end_markers_inside_segments() -> None:
    # Given a JPEG with an application segment holding an EOI byte pair (as an
    # EXIF thumbnail does), cut in its scan data
    data = read(ONE_FACE)
    payload = b"thumb\xff\xd9thumb"
    with_app = data[:2] + b"\xff\xe9" + struct.pack(">H", len(payload) + 2) + payload + data[2:]
    # Then the primary image's end marker is what counts
    assert file_integrity.jpeg_end_state(with_app) == "complete"
    assert file_integrity.jpeg_end_state(with_app[: int(len(with_app) * 0.8)]) == "truncated"
    assert file_integrity.jpeg_end_state(with_app[:-2]) == "truncated"


def _png_with_size(width: int, height: int) -> bytes:
    """A real 8x8 PNG whose IHDR is patched to claim another size (CRC fixed)."""
    data = bytearray(encode(Image.new("RGB", (8, 8), "grey"), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.parametrize(
    ("width", "height"),
    [
        pytest.param(30_000, 30_000, id="beyond-pillow-bomb-limit"),
        pytest.param(9_000, 9_000, id="under-pillow-limit-over-ours"),
    ],
)
def test_a_forged_png_header_is_refused_before_any_pixel_is_decoded(
    monkeypatch: pytest.MonkeyPatch, width: int, height: int
) -> None:
    # Given a PNG claiming more pixels than allowed
    data = _png_with_size(width, height)

    # And a decoder that fails the test if it is ever asked for pixels
    def no_pixels(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_pixels)
    # When / Then
    assert rejection(data) == "too_many_pixels"


def test_a_real_image_over_the_pixel_limit_is_refused() -> None:
    assert rejection(read(ONE_FACE), max_pixels=630 * 374 - 1) == "too_many_pixels"


def test_pillows_decompression_bomb_warning_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given Pillow's own limit below this image (it would only warn) and ours above
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 150_000)
    # When / Then
    assert rejection(read(ONE_FACE)) == "too_many_pixels"


def test_a_mode_outside_the_allowlist_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an allowlist without RGB (no real JPEG/PNG/GIF/WebP needs a mode we
    # lack, so the allowlist is narrowed to exercise the refusal)
    monkeypatch.setattr(imaging, "ALLOWED_MODES", frozenset({"L"}))
    # When / Then
    assert rejection(read(ONE_FACE)) == "unsupported_mode"


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_an_animation_with_too_many_frames_is_refused(fmt: str) -> None:
    data = _animation(fmt, _blank_frames((32, 32), 5))
    assert len(decode(data, max_frames=5).frames) == 5
    assert rejection(data, max_frames=4) == "too_many_frames"


def test_all_frames_together_are_bounded_by_the_pixel_limit() -> None:
    # Given 5 frames of 1,024 pixels each
    data = _animation("GIF", _blank_frames((32, 32), 5))
    # Then 5 x 1,024 pixels pass and one pixel less does not
    assert len(decode(data, max_pixels=5 * 1024).frames) == 5
    assert rejection(data, max_pixels=5 * 1024 - 1) == "too_many_pixels"


# --- what a naive decoder gets wrong ------------------------------------------------


def test_a_16_bit_png_is_scaled_not_clipped_to_white(
    engine: DlibFaceEngine, upright: Image.Image
) -> None:
    # Given the face as a 16-bit greyscale PNG
    grey = np.asarray(upright.convert("L"))
    data = encode(Image.fromarray(grey.astype(np.uint16) * 257), "PNG")
    with Image.open(io.BytesIO(data)) as naive:
        assert naive.mode == "I;16"
        assert np.asarray(naive.convert("RGB")).mean() > 250  # the hazard: white
    # When it is decoded
    image = decode(data)
    # Then the grey levels survive and the face is found
    frame = image.frames[0]
    assert np.abs(frame[..., 0].astype(int) - grey).max() <= 1
    assert len(engine.analyze(image)) == 1


@pytest.mark.parametrize(
    ("orientation", "stored_as"),
    [
        (3, Image.Transpose.ROTATE_180),
        (6, Image.Transpose.ROTATE_90),
        (8, Image.Transpose.ROTATE_270),
    ],
)
def test_an_exif_rotated_photo_is_oriented_and_its_face_found_in_place(
    engine: DlibFaceEngine,
    upright: Image.Image,
    upright_box: Box,
    orientation: int,
    stored_as: Image.Transpose,
) -> None:
    # Given the photo stored sideways, with the EXIF tag a phone would write
    stored = upright.transpose(stored_as)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(stored, "JPEG", quality=95, exif=exif.tobytes())
    # (A decoder that ignores the tag sees no face at all.)
    assert engine.analyze(DecodedImage((np.asarray(stored),), "JPEG", *stored.size)) == []
    # When it is decoded and analysed
    image = decode(data)
    faces = engine.analyze(image)
    # Then the pixels are upright and the face is where it is in the upright photo
    assert (image.width, image.height) == upright.size
    assert np.abs(image.frames[0].astype(int) - np.asarray(upright)).mean() < 4
    assert image.meta["orientation"] == str(orientation)
    assert len(faces) == 1
    assert iou(faces[0].box, upright_box) > 0.7


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_a_face_only_in_frame_3_of_an_animation_is_found_there(
    engine: DlibFaceEngine, upright: Image.Image, upright_box: Box, fmt: str
) -> None:
    # Given an animation whose face appears only in frame 3 (of 0..4)
    blanks = _blank_frames(upright.size, 4)
    data = _animation(fmt, [*blanks[:3], upright, blanks[3]])
    # When it is decoded and analysed
    image = decode(data)
    faces = engine.analyze(image)
    # Then every frame was decoded to RGB and the face is reported in frame 3
    assert len(image.frames) == 5
    assert all(f.shape == (374, 630, 3) and f.dtype == np.uint8 for f in image.frames)
    assert [f.frame for f in faces] == [3]
    assert iou(faces[0].box, upright_box) > 0.7


# --- draft mode: decoding a JPEG straight to a reduced size -------------------------


def _halve(width: int, height: int) -> int:
    return 2


@pytest.mark.parametrize("orientation", [1, 6])
def test_a_drafted_jpeg_is_half_size_with_full_size_geometry(
    engine: DlibFaceEngine, upright: Image.Image, upright_box: Box, orientation: int
) -> None:
    # Given the photo, stored sideways with its EXIF tag or upright
    stored = upright.transpose(Image.Transpose.ROTATE_90) if orientation == 6 else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(stored, "JPEG", quality=95, exif=exif.tobytes())
    # When it is decoded with a 1/2 reduction
    image = decode_image(data, **LIMITS, reduction=_halve)
    # Then libjpeg delivered half the pixels, upright, and the image keeps the
    # full size and a scale mapping back to it
    (frame,) = image.frames
    assert frame.shape == (187, 315, 3)
    assert (image.width, image.height) == upright.size
    assert image.scale == 2.0
    assert image.meta["reduction"] == "2"
    # And its face is reported where it is in the full-size photo
    (face,) = engine.analyze(image)
    assert iou(face.box, upright_box) > 0.7


def test_a_drafted_jpeg_cut_short_is_still_truncated(upright_box: Box) -> None:
    # Given the photo cut off through the face
    data = read(ONE_FACE)
    cut = data[: int(len(data) * 0.6)]
    # When it is decoded at a reduced scale / Then it is refused as truncated
    with pytest.raises(RejectedInput) as caught:
        decode_image(cut, **LIMITS, reduction=_halve)
    assert caught.value.code == "truncated_image"


def test_a_drafted_jpeg_with_a_broken_huffman_table_is_corrupt() -> None:
    # Given the portrait with its Huffman table destroyed
    data = inputs.corrupt_jpeg()
    # When it is decoded at a reduced scale / Then it is refused, not guessed at
    with pytest.raises(RejectedInput) as caught:
        decode_image(data, **LIMITS, reduction=_halve)
    assert caught.value.code == "corrupt_image"


def test_the_reduction_applies_to_jpegs_only(upright: Image.Image) -> None:
    # Given the same picture as a PNG
    data = encode(upright, "PNG")
    # When it is decoded with a reduction / Then it is decoded at full size
    image = decode_image(data, **LIMITS, reduction=_halve)
    assert image.frames[0].shape == (374, 630, 3)
    assert image.scale == 1.0


def test_the_engine_decodes_ordinary_photos_at_full_size(engine: DlibFaceEngine) -> None:
    # A 12 MP photo's 120 px floor would be 60 px at half size: too small to
    # encode from, so the engine decodes it whole
    assert engine.draft_reduction(4000, 3000) == 1
    image = engine.decode(read(ONE_FACE))
    assert image.scale == 1.0
    assert image.frames[0].shape == (374, 630, 3)


def test_importing_face_recognition_does_not_let_truncated_jpegs_through() -> None:
    # Given a fresh process that imports face_recognition (which sets
    # LOAD_TRUNCATED_IMAGES = True for the whole process)
    script = """
import json, sys
import face_recognition
from PIL import ImageFile
from quitclaim.domain.errors import RejectedInput
from quitclaim.faces.imaging import decode_image
flag_after_import = ImageFile.LOAD_TRUNCATED_IMAGES
data = open(sys.argv[1], "rb").read()
try:
    decode_image(data[: int(len(data) * 0.6)], max_bytes=10**8, max_pixels=10**8, max_frames=10)
    code = None
except RejectedInput as exc:
    code = exc.code
print(json.dumps({"after_import": flag_after_import, "code": code,
                  "after_decode": ImageFile.LOAD_TRUNCATED_IMAGES}))
"""
    # When it decodes a JPEG cut through the face
    done = subprocess.run(
        [sys.executable, "-c", script, str(ONE_FACE)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=120,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # Then the hazard was armed, the cut file is refused, and the flag is off
    assert result["after_import"] is True
    assert result["code"] == "truncated_image"
    assert result["after_decode"] is False
