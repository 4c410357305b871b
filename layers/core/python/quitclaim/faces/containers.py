"""Containers that are decoded into pictures and re-encoded: HEIF/HEIC, AVIF, TIFF.

JPEG, PNG, GIF and WebP are published byte for byte (faces/published.py).
These three are not: a HEIF file holds, besides its primary image, thumbnails,
auxiliary images (depth, alpha, HDR gain maps) and further top-level images
(bursts), any of which a viewer may show; a TIFF holds pages, SubIFDs
(previews, RAW data), and EXIF/Photoshop/IPTC/XMP blocks with their own
thumbnails. Rebuilding those containers item by item would need the same kind
of list the published form avoids (docs/every-pixel.md), so they are decoded
here into the pictures a viewer of the published copy will see, and
published.py re-encodes exactly those (docs/formats.md):

- HEIF/HEIC: the primary image only, as libheif shows it (grid tiles
  assembled, ``irot``/``imir`` applied); every other image is dropped.
- AVIF: the primary image, with Pillow's AVIF plugin (its ``irot``/``imir``
  become an orientation, applied here); an AVIF sequence is refused as video.
- TIFF: every page (every IFD of the main chain), each with its own
  orientation applied; SubIFDs and metadata blocks are dropped.

RAW camera files and video are refused, each with its own code
(``raw_not_supported``, ``video_not_supported``).

HEIF is decoded by ``pi-heif`` (libheif + libde265, LGPL-3.0; no encoder,
in particular not the GPL x265 that pillow-heif's wheels carry). Pillow is
never registered as a HEIF opener: nothing global changes.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from PIL import Image, ImageFile, TiffImagePlugin, features

from quitclaim.domain.errors import RejectedInput

Kind = Literal["HEIF", "AVIF", "TIFF", "RAW", "VIDEO"]

# ISO-BMFF brands. Still images coded with HEVC (HEIC) or any codec (mif1);
# AVIF stills; image sequences (refused as video); Canon CR3 (RAW).
_HEIF_STILL: Final = frozenset({b"heic", b"heix", b"heim", b"heis", b"mif1", b"mif2"})
_AVIF_STILL: Final = frozenset({b"avif"})
_SEQUENCE: Final = frozenset({b"msf1", b"hevc", b"hevx", b"avis"})
_CR3: Final = b"crx "
# Boxes an old QuickTime movie may start with (no ftyp).
_QUICKTIME_BOXES: Final = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})

_TIFF_MAGIC: Final = (b"II*\x00", b"MM\x00*")
_BIGTIFF_MAGIC: Final = (b"II+\x00", b"MM\x00+")
# Camera RAW formats that do not look like TIFF at all.
_RAW_MAGIC: Final = (
    b"FUJIFILMCCD-RAW",  # RAF
    b"IIRO",  # Olympus ORF
    b"IIRS",
    b"MMOR",
    b"IIU\x00",  # Panasonic RW2
    b"FOVb",  # Sigma X3F
    b"\x00MRM",  # Minolta MRW
    b"II\x1a\x00\x00\x00HEAPCCDR",  # Canon CRW
)
# TIFF tags that mark a camera RAW (DNG, NEF, ARW, PEF, ...), not a picture.
_DNG_VERSION: Final = 0xC612
_CFA_TAGS: Final = frozenset({0x828D, 0x828E})  # CFARepeatPatternDim, CFAPattern
_RAW_PHOTOMETRIC: Final = frozenset({32803, 34892})  # CFA, LinearRaw
_SUBIFDS: Final = 0x014A
_NEW_SUBFILE_TYPE: Final = 0x00FE
_PHOTOMETRIC: Final = 0x0106
_ORIENTATION: Final = 0x0112
# Bytes per value of each TIFF field type (BYTE, ASCII, SHORT, LONG, RATIONAL, ...).
_TIFF_TYPE_SIZES: Final = {
    1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4,
    16: 8, 17: 8, 18: 8,
}  # fmt: skip
_STRIP_OFFSETS, _STRIP_COUNTS = 0x0111, 0x0117
_TILE_OFFSETS, _TILE_COUNTS = 0x0144, 0x0145

_VIDEO_MAGIC: Final = (
    b"\x1a\x45\xdf\xa3",  # Matroska / WebM
    b"\x00\x00\x01\xba",  # MPEG program stream
    b"\x00\x00\x01\xb3",  # MPEG-1/2 video
    b"FLV\x01",
    b"\x30\x26\xb2\x75\x8e\x66\xcf\x11",  # ASF / WMV
)

# Same table as PIL.ImageOps.exif_transpose.
ORIENTATION_TRANSPOSE: Final[dict[int, Image.Transpose]] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# What Pillow, pi-heif and their codecs raise for bad data.
_DECODE_ERRORS: Final = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    RuntimeError,
    struct.error,
    zlib.error,
)


@dataclass(frozen=True)
class Picture:
    """One decoded picture, upright (its orientation applied), with the metadata kept."""

    image: Image.Image
    exif: Image.Exif | None = None
    xmp: bytes | None = None
    icc_profile: bytes | None = None
    tags: dict[int, object] = field(default_factory=dict)


def kind_of(data: bytes) -> Kind | None:
    """Which of these containers ``data`` is, from its first bytes; None for none."""
    head = data[:64]
    if head.startswith(_RAW_MAGIC):
        return "RAW"
    if head.startswith(_TIFF_MAGIC):
        return "RAW" if head[8:10] == b"CR" else "TIFF"  # Canon CR2 is a TIFF
    if head.startswith(_BIGTIFF_MAGIC):
        return "TIFF"
    if head.startswith(_VIDEO_MAGIC):
        return "VIDEO"
    if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX"):
        return "VIDEO"
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return _iso_bmff_kind(data)
    if len(data) >= 8 and data[4:8] in _QUICKTIME_BOXES:
        return "VIDEO"
    return None


def _iso_bmff_kind(data: bytes) -> Kind:
    (size,) = struct.unpack_from(">I", data, 0)
    end = min(max(size, 16), len(data), 256)
    # major brand, minor version, then compatible brands
    brands = {data[8:12], *(data[i : i + 4] for i in range(16, end - 3, 4))}
    if _CR3 in brands:
        return "RAW"
    if brands & _AVIF_STILL:
        return "AVIF"
    if brands & _HEIF_STILL:
        return "HEIF"
    # MP4, MOV, 3GP, HEIF/AVIF image sequences: moving pictures.
    return "VIDEO"


def refuse_unsupported(kind: Kind | None) -> None:
    """RAW camera data and video are not decoded: each is refused with its own code."""
    if kind == "RAW":
        raise RejectedInput(
            "camera RAW files are not decoded; export a JPEG, PNG, TIFF or HEIC",
            code="raw_not_supported",
        )
    if kind == "VIDEO":
        raise RejectedInput("video is not scanned; upload still images", code="video_not_supported")


def pictures(
    data: bytes, kind: Kind, *, max_pixels: int, max_frames: int, max_total_pixels: int
) -> list[Picture]:
    """Every picture of ``data`` a viewer of its published copy will see, upright and loaded.

    ``max_pixels`` bounds one picture and is checked from the header before it
    is decoded; ``max_total_pixels`` bounds all pages together; ``max_frames``
    the page count. Raises ``RejectedInput`` with the codes of
    ``imaging.decode_image`` (and ``raw_not_supported``/``video_not_supported``).
    """
    refuse_unsupported(kind)
    if kind == "TIFF":
        _check_tiff_chain(data, max_frames)
    else:
        _check_boxes_complete(data)
    with _decoding():
        if kind == "HEIF":
            return [_heif_primary(data, max_pixels)]
        if kind == "AVIF":
            return [_avif_primary(data, max_pixels)]
        return _tiff_pages(data, max_pixels, max_frames, max_total_pixels)


def _check_boxes_complete(data: bytes) -> None:
    """Every top-level ISO-BMFF box ends inside the file (libheif may decode a cut one).

    A file cut inside its ``mdat`` still decodes when the cut misses the
    primary image's data (a thumbnail's is lost): refused all the same, as a
    cut JPEG is, so that nothing is judged on part of a file.
    """
    size = len(data)
    pos = 0
    while pos < size:
        if pos + 8 > size:
            raise RejectedInput("the image data ends early", code="truncated_image")
        (length,) = struct.unpack_from(">I", data, pos)
        if length == 1:  # a 64-bit size follows the type
            if pos + 16 > size:
                raise RejectedInput("the image data ends early", code="truncated_image")
            (length,) = struct.unpack_from(">Q", data, pos + 8)
        elif length == 0:  # the box runs to the end of the file
            return
        if length < 8:
            raise RejectedInput("the ISO-BMFF structure is damaged", code="corrupt_image")
        if pos + length > size:
            raise RejectedInput("the image data ends early", code="truncated_image")
        pos += length


def _check_tiff_chain(data: bytes, max_frames: int) -> None:
    """Walk a classic TIFF's IFD chain: each IFD inside the file, no loop, not too many.

    Pillow reads a chain cut short as a corrupt EXIF block, or as fewer pages;
    either way a page a viewer of the whole file would see is missing.
    BigTIFF is left to the decoder.
    """
    size = len(data)
    if data[:4] not in _TIFF_MAGIC or size < 8:
        return
    order = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack_from(order + "I", data, 4)
    seen: set[int] = set()
    while offset:
        if offset in seen:
            raise RejectedInput("the TIFF's pages form a loop", code="corrupt_image")
        seen.add(offset)
        if len(seen) > max_frames:
            raise RejectedInput(
                f"the TIFF has more than {max_frames} pages", code="too_many_frames"
            )
        if offset + 2 > size:
            raise RejectedInput("the image data ends early", code="truncated_image")
        (entries,) = struct.unpack_from(order + "H", data, offset)
        end = offset + 2 + 12 * entries
        if end + 4 > size:
            raise RejectedInput("the image data ends early", code="truncated_image")
        for entry in range(offset + 2, end, 12):
            kind, count, value = struct.unpack_from(order + "HII", data, entry + 2)
            length = _TIFF_TYPE_SIZES.get(kind, 1) * count
            # A value longer than 4 bytes lives elsewhere in the file.
            if length > 4 and value + length > size:
                raise RejectedInput("the image data ends early", code="truncated_image")
        (offset,) = struct.unpack_from(order + "I", data, end)


@contextmanager
def _decoding() -> Iterator[None]:
    """Decoder errors as ``RejectedInput`` codes; decompression bombs refused."""
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except RejectedInput:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise RejectedInput(
            "the image header declares more pixels than can be decoded safely",
            code="too_many_pixels",
        ) from None
    except _DECODE_ERRORS as exc:
        text = str(exc).lower()
        if isinstance(exc, EOFError) or any(
            word in text for word in ("truncated", "end of file", "premature", "end of data")
        ):
            raise RejectedInput("the image data ends early", code="truncated_image") from None
        raise RejectedInput(
            f"the image cannot be decoded ({type(exc).__name__})", code="corrupt_image"
        ) from None


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise RejectedInput("the image has no pixels", code="corrupt_image")
    if width * height > max_pixels:
        raise RejectedInput(
            f"the image is {width}x{height} pixels; the limit is {max_pixels} pixels",
            code="too_many_pixels",
        )


def _heif_primary(data: bytes, max_pixels: int) -> Picture:
    import pi_heif  # the face layer's; imported here so importing this module needs no codec

    heif = pi_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
    if len(heif) == 0:
        raise RejectedInput("the HEIF file holds no image", code="corrupt_image")
    # ispe, read before anything is decoded (libheif's own limits apply too).
    width, height = heif.size
    _check_pixels(width, height, max_pixels)
    # Only the primary image is decoded; libheif assembles a grid's tiles and
    # applies irot/imir, so the pixels are upright as every HEIF viewer shows them.
    image = heif.to_pillow()
    image.load()
    exif = Image.Exif()
    raw_exif = image.info.get("exif")
    if raw_exif:
        exif.load(raw_exif)
    return Picture(
        image=_bare(image),
        exif=exif,
        xmp=image.info.get("xmp"),
        icc_profile=image.info.get("icc_profile"),
    )


def _avif_primary(data: bytes, max_pixels: int) -> Picture:
    if not features.check("avif"):
        raise RejectedInput("this Pillow has no AVIF decoder", code="unsupported_format")
    with Image.open(io.BytesIO(data), formats=["AVIF"]) as im:
        width, height = im.size
        _check_pixels(width, height, max_pixels)
        if getattr(im, "n_frames", 1) > 1:
            raise RejectedInput("an AVIF sequence is video", code="video_not_supported")
        im.load()
        exif = im.getexif()
        # irot/imir arrive as an EXIF orientation; the pixels are not turned yet.
        orientation = _int(exif.get(_ORIENTATION, 1))
        image = _upright(_bare(im), orientation)
        return Picture(
            image=image,
            exif=exif,
            xmp=im.info.get("xmp"),
            icc_profile=im.info.get("icc_profile"),
        )


def _tiff_pages(data: bytes, max_pixels: int, max_frames: int, total_budget: int) -> list[Picture]:
    pages: list[Picture] = []
    budget = total_budget
    with Image.open(io.BytesIO(data), formats=["TIFF"]) as opened:
        assert isinstance(opened, TiffImagePlugin.TiffImageFile)
        im = opened
        _refuse_raw_tiff(im.tag_v2)
        declared = int(getattr(im, "n_frames", 1))  # walks the IFD chain (headers only)
        if declared > max_frames:
            raise RejectedInput(
                f"the TIFF has {declared} pages; the limit is {max_frames}",
                code="too_many_frames",
            )
        for index in range(declared):
            im.seek(index)
            width, height = im.size
            _check_pixels(width, height, max_pixels)
            budget -= width * height
            if budget < 0:
                raise RejectedInput(
                    f"all pages together exceed {total_budget} pixels", code="too_many_pixels"
                )
            tags = im.tag_v2
            _check_page_complete(tags, len(data))
            im.load()
            kept = {tag: tags[tag] for tag in (0x010E, 0x013B, 0x8298) if tag in tags}
            pages.append(
                Picture(
                    image=_upright(_bare(im), _int(tags.get(_ORIENTATION, 1))),
                    icc_profile=im.info.get("icc_profile"),
                    tags=kept,
                )
            )
    if not pages:
        raise RejectedInput("the TIFF has no page", code="corrupt_image")
    return pages


def _refuse_raw_tiff(tags: Mapping[int, Any]) -> None:
    """A TIFF that is a camera's RAW data: what Pillow would show is only its preview."""
    get = tags.get
    subfile = _int(get(_NEW_SUBFILE_TYPE, 0))
    if (
        get(_DNG_VERSION) is not None
        or any(get(tag) is not None for tag in _CFA_TAGS)
        or _int(get(_PHOTOMETRIC, 0)) in _RAW_PHOTOMETRIC
        or (subfile & 1 and get(_SUBIFDS) is not None)
    ):
        refuse_unsupported("RAW")


def _check_page_complete(tags: Mapping[int, Any], size: int) -> None:
    """Every strip or tile of the page lies inside the file (a cut file is truncated)."""
    get = tags.get
    offsets = get(_STRIP_OFFSETS) or get(_TILE_OFFSETS)
    counts = get(_STRIP_COUNTS) or get(_TILE_COUNTS)
    if offsets is None or counts is None:
        raise RejectedInput("a TIFF page has no image data", code="corrupt_image")
    offsets = offsets if isinstance(offsets, tuple) else (offsets,)
    counts = counts if isinstance(counts, tuple) else (counts,)
    if len(offsets) != len(counts):
        raise RejectedInput("a TIFF page's strips are inconsistent", code="corrupt_image")
    if any(int(o) + int(c) > size for o, c in zip(offsets, counts, strict=True)):
        raise RejectedInput("the image data ends early", code="truncated_image")


def _bare(im: Image.Image) -> Image.Image:
    """A plain copy of the pixels: no info, no tags a later save could carry along."""
    image = im.copy()
    image.info = {}
    return image


def _upright(image: Image.Image, orientation: int) -> Image.Image:
    method = ORIENTATION_TRANSPOSE.get(orientation)
    return image if method is None else image.transpose(method)


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0
