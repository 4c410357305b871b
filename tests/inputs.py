"""Hostile and broken inputs, generated from the real fixture photos."""

from __future__ import annotations

import functools
import io
import struct
import zlib

from PIL import Image

from tests.conftest import FACES


def portrait_jpeg() -> bytes:
    return (FACES / "uploads" / "obama-office.jpg").read_bytes()


# The fault and race cells test storage, not the detector: a real photo at 480 px scans in
# ~0.17 s of CPU where the 1,137 px original takes ~0.9 s, across ~60 uploads and enrolments.
SMALL = 480


@functools.cache
def small_portrait_jpeg() -> bytes:
    """The upload portrait (obama-office.jpg) scaled to 480 px on its long side."""
    return _scaled(FACES / "uploads" / "obama-office.jpg")


@functools.cache
def small_enrolment_jpeg() -> bytes:
    """The enrolment portrait (enroll/obama/obama-portrait.jpg) at 480 px on its long side."""
    return _scaled(FACES / "enroll" / "obama" / "obama-portrait.jpg")


@functools.cache
def small_stage_jpeg() -> bytes:
    """stage-with-child.jpg (2,000 px, three people) at 1,000 px: each face still ~90 px."""
    return _scaled(FACES / "uploads" / "stage-with-child.jpg", 1000)


def _scaled(path: object, longest: int = SMALL) -> bytes:
    with Image.open(str(path)) as im:
        image = im.convert("RGB")
    image.thumbnail((longest, longest), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def zero_bytes() -> bytes:
    return b""


def text_named_jpg() -> bytes:
    return b"Dear DAM, this is not a photo.\n" * 20


def corrupt_jpeg() -> bytes:
    """The portrait with its main Huffman table destroyed (undecodable).

    Garbage in the entropy-coded data alone is not enough: libjpeg decodes it
    with only a warning. A broken table is what a damaged file looks like to
    a decoder that must refuse it.
    """
    data = bytearray(portrait_jpeg())
    offset = 2
    while offset < len(data):  # walk the segments to the image's own DHT
        marker = data[offset + 1]
        length = struct.unpack(">H", data[offset + 2 : offset + 4])[0]
        if marker == 0xC4:
            data[offset + 5 : offset + 21] = b"\xff" * 16
            return bytes(data)
        offset += 2 + length
    raise AssertionError("fixture has no Huffman table")


def truncated_through_face() -> bytes:
    """The portrait cut off part-way through the face (no EOI marker)."""
    data = portrait_jpeg()
    return data[: int(len(data) * 0.45)]


def png_claiming(width: int, height: int) -> bytes:
    """A valid small PNG whose IHDR then claims ``width`` x ``height`` pixels."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = 8  # after the signature: length(4) 'IHDR'(4) data(13) crc(4)
    data[ihdr + 8 : ihdr + 16] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr + 4 : ihdr + 21])) & 0xFFFFFFFF
    data[ihdr + 21 : ihdr + 25] = struct.pack(">I", crc)
    return bytes(data)
