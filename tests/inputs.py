"""Hostile and broken inputs, generated from the real fixture photos."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

from tests.conftest import FACES


def portrait_jpeg() -> bytes:
    return (FACES / "uploads" / "obama-office.jpg").read_bytes()


def zero_bytes() -> bytes:
    return b""


def text_named_jpg() -> bytes:
    return b"Dear DAM, this is not a photo.\n" * 20


def corrupt_jpeg() -> bytes:
    """A JPEG whose entropy-coded data is overwritten with garbage."""
    data = bytearray(portrait_jpeg())
    start = len(data) // 4
    data[start : start + 4096] = b"\xff\x00\x13\x37" * 1024
    return bytes(data)


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
