"""A hostile upload corpus, generated at run time from the shared face photos.

Nothing here is committed as a binary: every item is built from a fixture
photo with Pillow, zlib and struct when a test asks for it. ``KIT`` (an
unenrolled face) is the base of every item whose only safe outcomes are
"held" or "refused": if one of them were approved, a face would have been
published without consent. ``OBAMA`` (enrolled, consented in the tests that
use it) is the base where the decision must match the upright photo's.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from functools import cache

import numpy as np
from PIL import Image

from tests.conftest import FACES

KIT = FACES / "uploads" / "kit-closeup.jpg"
OBAMA = FACES / "uploads" / "obama-office.jpg"

# Pixels stored so that applying EXIF orientation N shows the upright photo
# (the inverse of PIL.ImageOps.exif_transpose's table).
_STORE_FOR_ORIENTATION: dict[int, Image.Transpose | None] = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@cache
def kit() -> Image.Image:
    with Image.open(KIT) as im:
        return im.convert("RGB")


@cache
def obama() -> Image.Image:
    with Image.open(OBAMA) as im:
        return im.convert("RGB")


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def kit_jpeg() -> bytes:
    return KIT.read_bytes()


def kit_png() -> bytes:
    return encode(kit(), "PNG")


def kit_webp() -> bytes:
    return encode(kit(), "WEBP", quality=90)


def blank_png(label: str = "") -> bytes:
    """A small picture of nothing (no face), its colour drawn from ``label``."""
    shade = zlib.crc32(label.encode()).to_bytes(4, "big")
    return encode(Image.new("RGB", (48, 32), tuple(shade[:3])), "PNG")


# --- PNG chunk surgery ---------------------------------------------------------------


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk after the signature."""
    pos, found = 8, []
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        found.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return found


def png_from(chunks: list[tuple[bytes, bytes]]) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"".join(png_chunk(k, p) for k, p in chunks)


def png_insert_before_idat(data: bytes, extra: list[tuple[bytes, bytes]]) -> bytes:
    chunks = png_chunks(data)
    first_idat = next(i for i, (kind, _) in enumerate(chunks) if kind == b"IDAT")
    return png_from([*chunks[:first_idat], *extra, *chunks[first_idat:]])


def _raw_png(width: int, height: int, bit_depth: int, colour: int, rows: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return png_from([(b"IHDR", ihdr), (b"IDAT", zlib.compress(rows, 6)), (b"IEND", b"")])


def _rows(pixels: np.ndarray) -> bytes:
    """Filter type 0 before every scanline."""
    flat = pixels.reshape(pixels.shape[0], -1).view(np.uint8)
    zero = np.zeros((flat.shape[0], 1), dtype=np.uint8)
    return np.hstack([zero, flat]).tobytes()


# --- truncated and corrupt -----------------------------------------------------------


def cut(data: bytes, fraction: float) -> bytes:
    return data[: int(len(data) * fraction)]


def _jpeg_scan_start(data: bytes) -> int:
    pos = 2
    while True:
        marker = data[pos + 1]
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if marker == 0xDA:
            return pos + 2 + length
        pos += 2 + length


def jpeg_flipped_entropy(data: bytes) -> bytes:
    """Every 97th byte of the first scan's middle third inverted (no 0xFF made)."""
    out = bytearray(data)
    start = _jpeg_scan_start(data)
    end = data.rindex(b"\xff\xd9")
    for i in range(start + (end - start) // 3, start + 2 * (end - start) // 3, 97):
        if out[i] not in (0x00, 0xFF) and out[i] ^ 0x5A not in (0x00, 0xFF):
            out[i] ^= 0x5A
    return bytes(out)


def jpeg_one_flipped_bit(data: bytes) -> bytes:
    """One bit of the scan inverted halfway through: libjpeg resyncs, the face stays visible."""
    out = bytearray(data)
    start = _jpeg_scan_start(data)
    index = start + (data.rindex(b"\xff\xd9") - start) // 2
    while out[index] in (0x00, 0xFF, 0xFE):
        index += 1
    out[index] ^= 0x01
    return bytes(out)


def jpeg_bad_huffman(data: bytes) -> bytes:
    """The image's own first Huffman table (not the EXIF thumbnail's) made unusable."""
    out = bytearray(data)
    pos = 2
    while data[pos + 1] != 0xC4:  # walk the segments: a thumbnail hides in APP1
        (length,) = struct.unpack_from(">H", data, pos + 2)
        pos += 2 + length
    out[pos + 5 : pos + 21] = b"\xff" * 16
    return bytes(out)


def labelled_jpeg(data: bytes, label: str) -> bytes:
    """The same JPEG with a comment segment naming ``label`` (distinct bytes, same picture)."""
    body = label.encode()
    return data[:2] + b"\xff\xfe" + struct.pack(">H", len(body) + 2) + body + data[2:]


def png_flipped_idat(data: bytes) -> bytes:
    """Bytes of the compressed pixels inverted, the chunk CRC left as it was."""
    out = bytearray(data)
    idat = data.index(b"IDAT")
    (length,) = struct.unpack_from(">I", data, idat - 4)
    for i in range(idat + 4 + length // 3, idat + 4 + 2 * length // 3, 101):
        out[i] ^= 0x5A
    return bytes(out)


def png_bad_header(data: bytes) -> bytes:
    """IHDR says colour type 5 (no such type), CRC recomputed so only the value lies."""
    chunks = png_chunks(data)
    ihdr = bytearray(chunks[0][1])
    ihdr[9] = 5
    return png_from([(b"IHDR", bytes(ihdr)), *chunks[1:]])


def webp_flipped(data: bytes) -> bytes:
    out = bytearray(data)
    for i in range(len(data) // 3, 2 * len(data) // 3, 89):
        out[i] ^= 0x5A
    return bytes(out)


def webp_bad_header(data: bytes) -> bytes:
    """The VP8 frame tag's start code destroyed."""
    out = bytearray(data)
    vp8 = data.index(b"VP8 ")
    out[vp8 + 11 : vp8 + 14] = b"\x00\x00\x00"
    return bytes(out)


# --- decompression bombs -------------------------------------------------------------


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header then claims ``width`` x ``height``."""
    out = bytearray(encode(Image.new("RGB", (16, 16), "white"), "JPEG"))
    sof = out.index(b"\xff\xc0")
    out[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(out)


def gif_claiming(width: int, height: int) -> bytes:
    """A one-pixel GIF whose logical screen and image are ``width`` x ``height``."""
    out = bytearray(encode(Image.new("P", (1, 1)), "GIF"))
    out[6:10] = struct.pack("<HH", width, height)
    image = out.index(b",")
    out[image + 5 : image + 9] = struct.pack("<HH", width, height)
    return bytes(out)


def webp_claiming(width: int, height: int) -> bytes:
    """An extended (VP8X) WebP whose canvas is ``width`` x ``height``."""
    inner = encode(Image.new("RGB", (16, 16), "white"), "WEBP", lossless=True)[12:]
    vp8x = struct.pack("<I", 0) + (width - 1).to_bytes(3, "little")
    vp8x += (height - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", 10) + vp8x + inner
    return b"RIFF" + struct.pack("<I", len(body)) + body


def png_idat_bomb(image: Image.Image, inflated_mb: int) -> bytes:
    """The photo's own pixels, then a zlib stream that keeps inflating ``inflated_mb`` MB."""
    rgb = np.asarray(image.convert("RGB"))
    rows = _rows(rgb)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = b"\x78\xda" + packer.compress(rows) + packer.flush(zlib.Z_FULL_FLUSH)
    stream += _deflated_megabyte() * inflated_mb + b"\x03\x00"
    adler = zlib.adler32(rows)
    zeros = bytes(1 << 20)
    for _ in range(inflated_mb):
        adler = zlib.adler32(zeros, adler)
    stream += struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", rgb.shape[1], rgb.shape[0], 8, 2, 0, 0, 0)
    return png_from([(b"IHDR", ihdr), (b"IDAT", stream), (b"IEND", b"")])


@cache
def _deflated_megabyte() -> bytes:
    """1 MiB of zeros as a self-contained run of deflate blocks (history reset)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(bytes(1 << 20)) + packer.flush(zlib.Z_FULL_FLUSH)


@cache
def _deflated_zeros(megabytes: int) -> bytes:
    """A zlib stream of ``megabytes`` MiB of zeros, built without deflating them all."""
    adler = 1
    zeros = bytes(1 << 20)
    for _ in range(megabytes):
        adler = zlib.adler32(zeros, adler)
    final_block = b"\x03\x00"  # an empty fixed-Huffman block marked last
    return b"\x78\xda" + _deflated_megabyte() * megabytes + final_block + struct.pack(">I", adler)


def png_iccp_bomb(base: bytes, inflated_mb: int) -> bytes:
    payload = b"bomb\x00\x00" + _deflated_zeros(inflated_mb)
    return png_insert_before_idat(base, [(b"iCCP", payload)])


def png_ztxt_bomb(base: bytes, inflated_mb: int) -> bytes:
    payload = b"Comment\x00\x00" + _deflated_zeros(inflated_mb)
    return png_insert_before_idat(base, [(b"zTXt", payload)])


def svg_with_script() -> bytes:
    return b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


# --- polyglots -----------------------------------------------------------------------


def zip_archive() -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("payload.html", "<script>alert(1)</script>" * 40)
    return buffer.getvalue()


def jpeg_zip_polyglot(data: bytes) -> bytes:
    return data + zip_archive()


def gif_html_polyglot(image: Image.Image) -> bytes:
    return encode(image, "GIF") + b"<html><script>alert(document.domain)</script></html>\n"


# --- modes ---------------------------------------------------------------------------


def cmyk_jpeg(image: Image.Image) -> bytes:
    return encode(image.convert("CMYK"), "JPEG", quality=92)


def grey16_png(image: Image.Image) -> bytes:
    grey = np.asarray(image.convert("L")).astype(np.uint16) * 257
    return _raw_png(grey.shape[1], grey.shape[0], 16, 0, _rows(grey.astype(">u2")))


def rgb16_png(image: Image.Image) -> bytes:
    rgb = np.asarray(image.convert("RGB")).astype(np.uint16) * 257
    return _raw_png(rgb.shape[1], rgb.shape[0], 16, 2, _rows(rgb.astype(">u2")))


def palette_png(image: Image.Image) -> bytes:
    return encode(image.convert("P", palette=Image.Palette.ADAPTIVE, colors=256), "PNG")


def la_png(image: Image.Image) -> bytes:
    return encode(image.convert("LA"), "PNG")


def face_behind_transparency(image: Image.Image) -> bytes:
    """RGBA with alpha 0 everywhere: a viewer sees nothing, the pixels hold the face."""
    rgba = image.convert("RGBA")
    rgba.putalpha(0)
    return encode(rgba, "PNG")


def one_bit_png(image: Image.Image) -> bytes:
    return encode(image.convert("1"), "PNG")


# --- animations ----------------------------------------------------------------------


def animation_with_face_last(image: Image.Image, fmt: str, frames: int = 4) -> bytes:
    """``frames - 1`` plain frames, then the face: only the last frame shows anyone."""
    plain = [
        Image.new("RGB", image.size, (30 + 40 * i, 60, 90 + 30 * i)) for i in range(frames - 1)
    ]
    params: dict[str, object] = {
        "save_all": True,
        "append_images": [*plain[1:], image],
        "duration": 120,
        "loop": 0,
    }
    if fmt == "WEBP":
        params["quality"] = 85
    return encode(plain[0], fmt, **params)


# --- HEIF / AVIF / TIFF / RAW / video ---------------------------------------------------

# Committed HEIC files, made once from the face photos (fixtures/formats/make_heic.py):
# nothing in this environment encodes HEVC without the GPL x265 encoder.
HEIC = FACES.parent / "formats"


def heic(name: str) -> bytes:
    """A committed HEIC: ``obama-iphone``, ``stranger-iphone``, ``face-only-in-second-image``."""
    return (HEIC / f"{name}.heic").read_bytes()


def iso_bmff(brand: bytes) -> bytes:
    """An ISO-BMFF file head (ftyp, then an empty meta box) as phones write HEIC/AVIF."""
    ftyp = b"ftyp" + brand + b"\x00\x00\x00\x00" + b"mif1" + brand
    meta = b"meta" + b"\x00" * 4
    return struct.pack(">I", 4 + len(ftyp)) + ftyp + struct.pack(">I", 4 + len(meta)) + meta


def ftyp_only(major: bytes, *compatible: bytes) -> bytes:
    """An ISO-BMFF head naming exactly these brands (MP4, MOV, CR3, image sequences)."""
    ftyp = b"ftyp" + major + b"\x00\x00\x02\x00" + b"".join(compatible)
    return struct.pack(">I", 4 + len(ftyp)) + ftyp + struct.pack(">I", 8) + b"free"


def heif_claiming(data: bytes, width: int, height: int) -> bytes:
    """Every ``ispe`` (image spatial extents) box rewritten to claim ``width`` x ``height``."""
    out = bytearray(data)
    start = 0
    while (found := out.find(b"ispe", start)) != -1:
        out[found + 8 : found + 16] = struct.pack(">II", width, height)
        start = found + 4
    return bytes(out)


def avif(image: Image.Image, **params: object) -> bytes:
    return encode(image, "AVIF", quality=60, speed=10, **params)


def tiff_pages(*pages: Image.Image, **params: object) -> bytes:
    """A multi-page TIFF (one IFD per page, LZW)."""
    return encode(
        pages[0], "TIFF", save_all=True, append_images=list(pages[1:]), compression="tiff_lzw",
        **params,
    )  # fmt: skip


def plain(size: tuple[int, int], shade: int) -> Image.Image:
    return Image.new("RGB", size, (shade, 90, 255 - shade))


def tiff_face_on_page_3(face: Image.Image) -> bytes:
    """Three pages; only the third shows anyone (a scanned archive's folder)."""
    return tiff_pages(plain(face.size, 40), plain(face.size, 160), face)


def tiff_claiming(width: int, height: int) -> bytes:
    """A one-strip TIFF header that claims ``width`` x ``height`` pixels (a pixel bomb)."""
    data = bytearray(encode(Image.new("L", (16, 16), 128), "TIFF"))
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(order + "I", data, 4)
    (entries,) = struct.unpack_from(order + "H", data, ifd)
    for entry in range(ifd + 2, ifd + 2 + 12 * entries, 12):
        (tag,) = struct.unpack_from(order + "H", data, entry)
        if tag in (256, 257):  # ImageWidth, ImageLength
            value = width if tag == 256 else height
            struct.pack_into(order + "HHI", data, entry, tag, 4, 1)
            struct.pack_into(order + "I", data, entry + 8, value)
    return bytes(data)


def tiff_many_pages(count: int) -> bytes:
    return tiff_pages(*(Image.new("L", (8, 8), i % 256) for i in range(count)))


def dng_like(image: Image.Image) -> bytes:
    """A TIFF that says it is a DNG (DNGVersion 1.4): camera RAW, not a picture."""
    return encode(image, "TIFF", tiffinfo={50706: b"\x01\x04\x00\x00"})


def cr2_head() -> bytes:
    """Canon CR2: a TIFF header with ``CR`` and a version at byte 8."""
    return b"II*\x00\x10\x00\x00\x00CR\x02\x00" + bytes(64)


# --- orientation ---------------------------------------------------------------------


def exif_rotated_jpeg(image: Image.Image, orientation: int) -> bytes:
    """Pixels stored so that orientation ``orientation`` displays ``image`` upright."""
    method = _STORE_FOR_ORIENTATION[orientation]
    stored = image if method is None else image.transpose(method)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored, "JPEG", quality=92, exif=exif.tobytes())


# --- huge metadata -------------------------------------------------------------------


def jpeg_huge_metadata(data: bytes, megabytes: int) -> bytes:
    """An EXIF block near the 64 KiB segment limit, then ``megabytes`` MB of XMP and ICC."""
    segments = []
    exif = Image.Exif()
    exif[0x010E] = "x" * 65_000  # ImageDescription
    payload = b"Exif\x00\x00" + exif.tobytes()
    segments.append(b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload)
    chunk = 65_000
    xmp_total = megabytes * (1 << 19)
    for offset in range(0, xmp_total, chunk):
        body = b"http://ns.adobe.com/xmp/extension/\x00" + b"0" * 32
        body += struct.pack(">II", xmp_total, offset) + b"<x/>".ljust(chunk, b" ")
        segments.append(b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body)
    icc_parts = max(1, megabytes * (1 << 19) // chunk)
    for index in range(icc_parts):
        body = b"ICC_PROFILE\x00" + bytes([index + 1, icc_parts]) + b"\x00" * chunk
        segments.append(b"\xff\xe2" + struct.pack(">H", len(body) + 2) + body)
    return data[:2] + b"".join(segments) + data[2:]


def png_many_text_chunks(base: bytes, count: int, exif_mb: int) -> bytes:
    texts = [(b"tEXt", b"Comment\x00" + f"note {i}".encode() * 20) for i in range(count)]
    exif = Image.Exif()
    exif[0x010E] = "y" * (exif_mb << 20)
    return png_insert_before_idat(base, [*texts, (b"eXIf", exif.tobytes())])


def webp_huge_xmp(image: Image.Image, megabytes: int) -> bytes:
    return encode(image, "WEBP", quality=90, xmp=b"<x:xmpmeta>" + b" " * (megabytes << 20))


Builder = Callable[[], bytes]
