"""The published form of an upload: its picture byte for byte, an allowlist of its metadata.

An image file can carry other images beside its picture: an EXIF thumbnail
(IFD1), Photoshop's APP13 thumbnails, JFIF/JFXX thumbnails, MPF or FlashPix
previews and second images after the JPEG's end, an XMP ``xmpGImg``
thumbnail, IPTC "object data preview" datasets, PNG text chunks holding a
whole EXIF block. No detector looks at them, and a viewer, a DAM or a search
engine may show any of them. So what the gate scans and publishes is not the
upload but this form of it, rebuilt from the container's structure:

- the picture data is kept byte for byte (JPEG tables and scans, PNG IDAT and
  APNG frames, GIF images, WebP VP8/VP8L/ALPH/ANMF), so no pixel changes and
  nothing is re-compressed;
- of the metadata only what describes the picture's colour and geometry and
  who holds its rights is rebuilt: the ICC profile (JPEG APP2, PNG iCCP/sRGB/
  gAMA/cHRM/cICP, WebP ICCP), the EXIF orientation, resolution, artist,
  copyright and description (IFD0 only: never IFD1 or a sub-IFD), the XMP
  rights and credit properties (as text, in a new packet), the IPTC IIM
  record of the Photoshop block (without its preview datasets), PNG text
  chunks named Copyright/Author/Source/Disclaimer;
- everything else, and every byte after the picture's end, is dropped.

The ingest scans this form (decoded as any upload) and publishes exactly
these bytes; the upload itself is kept privately. HEIF/HEIC, AVIF and TIFF
cannot be rebuilt this way: they are decoded (faces/containers.py) and
re-encoded, see ``reencoded`` and docs/formats.md. Bytes that are none of
these formats come back unchanged: the decoder refuses them with its own code.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from typing import Final
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

from PIL import Image

from quitclaim.domain.errors import RejectedInput
from quitclaim.faces import containers
from quitclaim.faces.imaging import sniff_format

# -- JPEG -------------------------------------------------------------------------

_MARKER: Final = re.compile(rb"\xff+([^\x00\xff])")
_SCAN_END: Final = re.compile(rb"\xff+[^\x00\xff\xd0-\xd7]")
_STANDALONE: Final = frozenset({0x01, *range(0xD0, 0xD8)})
_SOS: Final = 0xDA
_EOI: Final = 0xD9
_APP0, _APP1, _APP2, _APP13, _APP14, _COM = 0xE0, 0xE1, 0xE2, 0xED, 0xEE, 0xFE
_JFIF: Final = b"JFIF\x00"
_EXIF: Final = b"Exif\x00\x00"
_XMP: Final = b"http://ns.adobe.com/xap/1.0/\x00"
_ICC: Final = b"ICC_PROFILE\x00"
_PHOTOSHOP: Final = b"Photoshop 3.0\x00"
_MAX_SEGMENT: Final = 0xFFFF - 2

# EXIF IFD0 tags kept: geometry and rights. Never IFD1 (the thumbnail), never
# a pointer to a sub-IFD (Exif, GPS, Interop: they can point anywhere).
_EXIF_KEEP: Final = (
    0x010E,  # ImageDescription
    0x0112,  # Orientation (what the scan applied; the published copy keeps it)
    0x011A,  # XResolution
    0x011B,  # YResolution
    0x0128,  # ResolutionUnit
    0x013B,  # Artist
    0x8298,  # Copyright
)

# IPTC IIM: record 1 (envelope: its character set) and record 2 (application:
# credit, by-line, copyright notice, caption, keywords...) without 2:200-202,
# the "object data preview" (an embedded preview image).
_IIM_PREVIEW: Final = frozenset({200, 201, 202})
_IRB_IPTC: Final = 0x0404


def published_form(data: bytes, *, max_pixels: int = 60_000_000, max_frames: int = 200) -> bytes:
    """The bytes to scan and publish for upload ``data`` (see the module's docstring).

    Raises ``RejectedInput`` (``corrupt_image``) when metadata that would be
    kept cannot be read; unknown formats come back unchanged. HEIF/HEIC and
    AVIF come back as a JPEG (a PNG when the picture has transparency) of
    their primary image, TIFF as a TIFF of its pages (``reencoded``): the
    limits bound that decode as they bound the scan's (``decode_image``).
    """
    fmt = sniff_format(data)
    if fmt is None:
        kind = containers.kind_of(data)
        if kind in ("HEIF", "AVIF", "TIFF"):
            return reencoded(data, kind, max_pixels=max_pixels, max_frames=max_frames)
    if fmt == "JPEG":
        return _jpeg(data)
    if fmt == "PNG":
        return _png(data)
    if fmt == "GIF":
        return _gif(data)
    if fmt == "WEBP":
        return _webp(data)
    return data


def _segment(code: int, payload: bytes) -> bytes:
    return bytes((0xFF, code)) + struct.pack(">H", len(payload) + 2) + payload


def _jpeg(data: bytes) -> bytes:
    kept = [data[:2]]
    size = len(data)
    pos = 2
    while True:
        match = _MARKER.search(data, pos)
        if match is None:
            # Truncated: the decoder says so (nothing after this point is kept).
            return b"".join(kept)
        code, start = match.group(1)[0], match.start()
        pos = match.end()
        if code == _EOI:
            # MPF second images, FlashPix streams, appended files: all after the end.
            kept.append(b"\xff\xd9")
            return b"".join(kept)
        if code in _STANDALONE:
            kept.append(data[start:pos])
            continue
        if pos + 2 > size:
            return b"".join(kept)
        (length,) = struct.unpack_from(">H", data, pos)
        end = min(pos + length, size)
        payload = data[pos + 2 : end]
        if code == _SOS:
            scan_end = _SCAN_END.search(data, end)
            stop = size if scan_end is None else scan_end.start()
            kept.append(data[start:stop])
            pos = stop
            continue
        pos = end
        if 0xE0 <= code <= 0xEF or code == _COM:
            rebuilt = _jpeg_metadata(code, payload)
            if rebuilt is not None:
                kept.append(rebuilt)
        else:
            kept.append(data[start:end])  # tables, frame header, restart interval


def _jpeg_metadata(code: int, payload: bytes) -> bytes | None:
    """The segment to keep for an APPn/COM segment, or None to drop it."""
    if code == _APP0 and payload.startswith(_JFIF) and len(payload) >= 14:
        # Version, units, densities; the thumbnail's size set to 0x0 and its pixels dropped.
        return _segment(code, payload[:12] + b"\x00\x00")
    if code == _APP1 and payload.startswith(_EXIF):
        exif = exif_allowlisted(payload[len(_EXIF) :])
        return None if exif is None else _segment(code, _EXIF + exif)
    if code == _APP1 and payload.startswith(_XMP):
        packet = xmp_allowlisted(payload[len(_XMP) :])
        return None if packet is None else _segment(code, _XMP + packet)
    if code == _APP2 and payload.startswith(_ICC):
        return _segment(code, payload)
    if code == _APP13 and payload.startswith(_PHOTOSHOP):
        irb = _photoshop_iptc(payload[len(_PHOTOSHOP) :])
        return None if irb is None else _segment(code, _PHOTOSHOP + irb)
    if code == _APP14 and payload.startswith(b"Adobe"):
        return _segment(code, payload)  # how four-channel colour is transformed
    return None


def exif_allowlisted(tiff: bytes) -> bytes | None:
    """A new TIFF block with only the kept IFD0 tags (no IFD1, no sub-IFD), or None."""
    try:
        found = Image.Exif()
        found.load(tiff)
        out = Image.Exif()
        for tag in _EXIF_KEEP:
            value = found.get(tag)
            if value is not None:
                out[tag] = value
        if not len(out):
            return None
        block = out.tobytes()
    except (ValueError, TypeError, KeyError, IndexError, struct.error, OSError, SyntaxError):
        raise RejectedInput("the image's EXIF block cannot be read", code="corrupt_image") from None
    block = block.removeprefix(_EXIF)
    return block if len(block) <= _MAX_SEGMENT - 64 else None


def _photoshop_iptc(blocks: bytes) -> bytes | None:
    """Photoshop image resources → only the IPTC IIM resource, its previews removed."""
    pos = 0
    size = len(blocks)
    while pos + 12 <= size and blocks[pos : pos + 4] == b"8BIM":
        (resource,) = struct.unpack_from(">H", blocks, pos + 4)
        name_len = blocks[pos + 6]
        name_end = pos + 6 + 1 + name_len
        name_end += (name_end - (pos + 6)) % 2  # the Pascal name is padded to even
        if name_end + 4 > size:
            return None
        (length,) = struct.unpack_from(">I", blocks, name_end)
        body = blocks[name_end + 4 : name_end + 4 + length]
        pos = name_end + 4 + length + (length % 2)
        if resource == _IRB_IPTC:
            iim = _iim_without_previews(body)
            if not iim:
                return None
            padding = b"\x00" * (len(iim) % 2)
            return b"8BIM" + struct.pack(">HHI", _IRB_IPTC, 0, len(iim)) + iim + padding
    return None


def _iim_without_previews(body: bytes) -> bytes:
    kept: list[bytes] = []
    pos = 0
    while pos + 5 <= len(body) and body[pos] == 0x1C:
        record, dataset = body[pos + 1], body[pos + 2]
        (length,) = struct.unpack_from(">H", body, pos + 3)
        if length & 0x8000:
            break  # extended lengths are only used for object data: stop there
        end = pos + 5 + length
        if record in (1, 2) and not (record == 2 and dataset in _IIM_PREVIEW):
            kept.append(body[pos:end])
        pos = end
    return b"".join(kept)


# -- XMP --------------------------------------------------------------------------

_NS: Final = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "xmpRights": "http://ns.adobe.com/xap/1.0/rights/",
}
_XMP_KEEP: Final = (
    ("dc", "rights"),
    ("dc", "creator"),
    ("photoshop", "Credit"),
    ("photoshop", "Source"),
    ("xmpRights", "Marked"),
    ("xmpRights", "Owner"),
    ("xmpRights", "UsageTerms"),
    ("xmpRights", "WebStatement"),
)
_RDF_CONTAINERS: Final = ("Alt", "Bag", "Seq")
_XML_LANG: Final = "{http://www.w3.org/XML/1998/namespace}lang"


def xmp_allowlisted(packet: bytes) -> bytes | None:
    """A new XMP packet with only the rights and credit properties, as text; or None.

    Unreadable XMP, and any packet with a DTD (entities), is dropped rather
    than parsed: it is metadata, not the picture.
    """
    if b"<!DOCTYPE" in packet or b"<!ENTITY" in packet:
        return None
    try:
        root = ET.fromstring(packet.rstrip(b"\x00 \t\r\n"))  # noqa: S314 - no DTD (above)
    except ET.ParseError:
        return None
    rdf = _NS["rdf"]
    properties: list[str] = []
    for description in root.iter(f"{{{rdf}}}Description"):
        for prefix, name in _XMP_KEEP:
            qualified = f"{{{_NS[prefix]}}}{name}"
            value = description.get(qualified)
            if value is not None:
                properties.append(f"<{prefix}:{name}>{escape(value)}</{prefix}:{name}>")
            for element in description.findall(qualified):
                text = _xmp_value(element, prefix, name)
                if text is not None:
                    properties.append(text)
    if not properties:
        return None
    namespaces = " ".join(f"xmlns:{p}={quoteattr(uri)}" for p, uri in _NS.items() if p != "rdf")
    body = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        f'<rdf:RDF xmlns:rdf="{rdf}"><rdf:Description rdf:about="" {namespaces}>'
        + "".join(properties)
        + '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    )
    return body.encode()


def _xmp_value(element: ET.Element, prefix: str, name: str) -> str | None:
    """A property as text, or as an rdf container of text items; None for anything else."""
    rdf = _NS["rdf"]
    children = list(element)
    if not children:
        return f"<{prefix}:{name}>{escape(element.text or '')}</{prefix}:{name}>"
    if len(children) != 1 or children[0].tag not in {f"{{{rdf}}}{c}" for c in _RDF_CONTAINERS}:
        return None
    container = children[0].tag.rsplit("}", 1)[1]
    items = []
    for item in children[0]:
        if item.tag != f"{{{rdf}}}li" or len(item):
            return None
        lang = item.get(_XML_LANG)
        attr = "" if lang is None else f" xml:lang={quoteattr(lang)}"
        items.append(f"<rdf:li{attr}>{escape(item.text or '')}</rdf:li>")
    inner = f"<rdf:{container}>{''.join(items)}</rdf:{container}>"
    return f"<{prefix}:{name}>{inner}</{prefix}:{name}>"


# -- PNG --------------------------------------------------------------------------

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_PNG_KEEP: Final = frozenset(
    {
        b"IHDR", b"PLTE", b"IDAT", b"IEND",  # the picture
        b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"cICP", b"sBIT", b"pHYs", b"bKGD",
        b"acTL", b"fcTL", b"fdAT",  # APNG: every frame is decoded and scanned
    }
)  # fmt: skip
_PNG_TEXT: Final = frozenset({b"tEXt", b"zTXt", b"iTXt"})
_PNG_TEXT_KEEP: Final = frozenset({b"Copyright", b"Author", b"Source", b"Disclaimer"})
_PNG_XMP_KEYWORD: Final = b"XML:com.adobe.xmp"
# What Pillow inflates of one text chunk (PngImagePlugin.MAX_TEXT_CHUNK); a
# chunk that inflates past it is refused as Pillow refuses it, kept or not.
_PNG_TEXT_LIMIT: Final = 1024 * 1024


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(data: bytes) -> bytes:
    kept = [_PNG_SIGNATURE]
    pos = len(_PNG_SIGNATURE)
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            break  # truncated: the decoder refuses what is left
        body = data[pos + 8 : pos + 8 + length]
        if kind in _PNG_KEEP:
            kept.append(data[pos:end])
        elif kind == b"eXIf":
            exif = exif_allowlisted(body)
            if exif is not None:
                kept.append(_chunk(kind, exif))
        elif kind in _PNG_TEXT:
            _check_text_inflates(kind, body)
            keyword = body.split(b"\x00", 1)[0]
            if keyword in _PNG_TEXT_KEEP:
                kept.append(data[pos:end])
            elif kind == b"iTXt" and keyword == _PNG_XMP_KEYWORD:
                rebuilt = _png_xmp(body)
                if rebuilt is not None:
                    kept.append(rebuilt)
        pos = end
        if kind == b"IEND":
            break  # nothing after the end
    return b"".join(kept)


def _check_text_inflates(kind: bytes, body: bytes) -> None:
    """Refuse a compressed text chunk that is a decompression bomb (as the decoder would)."""
    _, _, rest = body.partition(b"\x00")
    if kind == b"zTXt":
        compressed = rest[1:]
    elif kind == b"iTXt" and rest[:1] == b"\x01":
        compressed = rest[2:].split(b"\x00", 2)[-1]
    else:
        return
    inflater = zlib.decompressobj()
    try:
        inflater.decompress(compressed, _PNG_TEXT_LIMIT)
    except zlib.error:
        return  # unreadable text is dropped with the chunk; it inflates to nothing
    if inflater.unconsumed_tail:
        raise RejectedInput("a PNG text chunk inflates too far", code="corrupt_image")


def _png_xmp(body: bytes) -> bytes | None:
    # iTXt: keyword \0 compression-flag compression-method language \0 translated \0 text
    try:
        _, rest = body.split(b"\x00", 1)
        flag, _method, rest = rest[0], rest[1], rest[2:]
        _lang, _translated, text = rest.split(b"\x00", 2)
        packet = zlib.decompress(text) if flag else text
    except (ValueError, IndexError, zlib.error):
        return None
    rebuilt = xmp_allowlisted(packet)
    if rebuilt is None:
        return None
    return _chunk(b"iTXt", _PNG_XMP_KEYWORD + b"\x00\x00\x00\x00\x00" + rebuilt)


# -- GIF --------------------------------------------------------------------------

_GIF_APPS_KEPT: Final = frozenset({b"NETSCAPE2.0", b"ANIMEXTS1.0"})  # looping only


def _gif(data: bytes) -> bytes:
    size = len(data)
    if size < 13:
        return data
    packed = data[10]
    pos = 13 + (3 * (2 << (packed & 0x07)) if packed & 0x80 else 0)
    kept = [data[:pos]]
    while pos < size:
        introducer = data[pos]
        start = pos
        if introducer == 0x3B:
            kept.append(b";")  # the trailer; anything after it is dropped
            break
        if introducer == 0x21 and pos + 1 < size:  # extension: label, then sub-blocks
            label = data[pos + 1]
            pos += 2
            first = data[pos + 1 : pos + 12] if pos < size and data[pos] == 11 else b""
            keep = label == 0xF9 or (label == 0xFF and first in _GIF_APPS_KEPT)
        elif introducer == 0x2C and pos + 10 <= size:  # an image
            local = data[pos + 9]
            pos += 10 + (3 * (2 << (local & 0x07)) if local & 0x80 else 0) + 1
            keep = True
        else:
            kept.append(data[start:])  # malformed or truncated: the decoder decides
            break
        while pos < size and data[pos] != 0:
            pos += 1 + data[pos]
        pos += 1
        if keep:
            kept.append(data[start:pos])
    return b"".join(kept)


# -- WebP -------------------------------------------------------------------------

_WEBP_KEEP: Final = frozenset({b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF", b"ICCP"})
_VP8X_EXIF: Final = 0x08
_VP8X_XMP: Final = 0x04


def _webp(data: bytes) -> bytes:
    (riff_size,) = struct.unpack_from("<I", data, 4)
    end = min(len(data), 8 + riff_size)
    kept: list[bytes] = []
    pos = 12
    while pos + 8 <= end:
        kind = data[pos : pos + 4]
        (length,) = struct.unpack_from("<I", data, pos + 4)
        stop = pos + 8 + length + (length % 2)
        if stop > end:
            raise RejectedInput("the image data ends early", code="truncated_image")
        if kind == b"VP8X" and length >= 1:
            flags = data[pos + 8] & ~(_VP8X_EXIF | _VP8X_XMP)
            kept.append(data[pos : pos + 8] + bytes((flags,)) + data[pos + 9 : stop])
        elif kind in _WEBP_KEEP:
            kept.append(data[pos:stop])
        pos = stop
    body = b"WEBP" + b"".join(kept)
    return b"RIFF" + struct.pack("<I", len(body)) + body


# -- HEIF, AVIF, TIFF: decoded and re-encoded ---------------------------------------

# The re-encoded JPEG of a HEIF/AVIF picture. A quality that keeps a phone
# photo's detail; fixed, so that the same upload always gives the same bytes
# (a redelivery checks the published form's SHA-256 against the scanned one).
REENCODE_JPEG_QUALITY: Final = 92
# EXIF IFD0 tags kept in a re-encoded picture: those of the JPEG allowlist but
# the orientation, which the pixels already have applied.
_EXIF_KEEP_REENCODED: Final = tuple(tag for tag in _EXIF_KEEP if tag != 0x0112)
# TIFF tags kept on the first page: ImageDescription, Artist, Copyright.
_TIFF_MODES_KEPT: Final = frozenset({"1", "L", "LA", "RGB", "RGBA", "CMYK"})
_SIXTEEN_BIT: Final = frozenset({"I;16", "I;16L", "I;16B", "I"})


def reencoded(data: bytes, kind: containers.Kind, *, max_pixels: int, max_frames: int) -> bytes:
    """The published form of a HEIF/AVIF (primary image) or TIFF (every page) upload.

    Only the pictures ``containers.pictures`` decodes are written, upright,
    with the metadata allowlist of a JPEG (ICC profile; EXIF IFD0 rights and
    resolution; XMP rights), so thumbnails, auxiliary and depth images, burst
    images, SubIFDs and metadata previews are not in it. Deterministic: the
    same upload gives the same bytes.
    """
    assert kind in ("HEIF", "AVIF", "TIFF")
    found = containers.pictures(
        data, kind, max_pixels=max_pixels, max_frames=max_frames, max_total_pixels=max_pixels
    )
    if kind == "TIFF":
        return _tiff_reencoded(found)
    return _picture_reencoded(found[0])


def _reencoded_exif(exif: Image.Exif | None) -> bytes | None:
    if exif is None:
        return None
    out = Image.Exif()
    for tag in _EXIF_KEEP_REENCODED:
        value = exif.get(tag)
        if value is not None:
            out[tag] = value
    return out.tobytes() if len(out) else None


def _picture_reencoded(picture: containers.Picture) -> bytes:
    """A JPEG of the picture, or a PNG when it has transparency, then rebuilt as any upload."""
    image = picture.image
    exif = _reencoded_exif(picture.exif)
    params: dict[str, object] = {}
    if picture.icc_profile:
        params["icc_profile"] = picture.icc_profile
    if exif:
        params["exif"] = exif
    xmp = xmp_allowlisted(picture.xmp) if picture.xmp else None
    out = io.BytesIO()
    if _has_transparency(image):
        # JPEG has no alpha; a face drawn in alpha must stay where the scan sees it.
        image = image.convert("RGBA") if image.mode not in ("RGBA", "LA") else image
        image.save(out, "PNG", compress_level=6, **params)
        encoded = out.getvalue()
        if xmp is not None:
            encoded = _png_with_xmp(encoded, xmp)
        return _png(encoded)
    image = image if image.mode in ("L", "RGB") else image.convert("RGB")
    image.save(out, "JPEG", quality=REENCODE_JPEG_QUALITY, **params)
    encoded = out.getvalue()
    if xmp is not None:
        # After SOI (and JFIF): an APP1 XMP segment.
        encoded = encoded[:2] + _segment(_APP1, _XMP + xmp) + encoded[2:]
    return _jpeg(encoded)


def _has_transparency(image: Image.Image) -> bool:
    if not image.has_transparency_data:
        return False
    low, _ = image.convert("RGBA").getchannel("A").getextrema()
    return bool(isinstance(low, int | float) and low < 255)


def _png_with_xmp(encoded: bytes, xmp: bytes) -> bytes:
    end = encoded.rindex(b"IEND") - 4
    chunk = _chunk(b"iTXt", _PNG_XMP_KEYWORD + b"\x00\x00\x00\x00\x00" + xmp)
    return encoded[:end] + chunk + encoded[end:]


def _tiff_page(image: Image.Image) -> Image.Image:
    """A page in a mode the TIFF writer keeps as the scan decodes it."""
    if image.mode in _TIFF_MODES_KEPT:
        return image
    if image.mode in _SIXTEEN_BIT:
        # As the scan sees it (faces/imaging.py): the 0..65535 range scaled to 8 bits.
        import numpy as np

        raw = np.asarray(image)
        if image.mode == "I":
            raw = np.clip(raw, 0, 65535)
        grey = ((raw.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
        return Image.fromarray(np.ascontiguousarray(grey), mode="L")
    return image.convert("RGBA" if image.has_transparency_data else "RGB")


def _tiff_reencoded(found: list[containers.Picture]) -> bytes:
    """Every decoded page, upright, deflate-compressed; rights tags of the first page."""
    pages = []
    for picture in found:
        page = _tiff_page(picture.image)
        page.info = {"icc_profile": picture.icc_profile} if picture.icc_profile else {}
        pages.append(page)
    info = {tag: value for tag, value in found[0].tags.items() if isinstance(value, str)}
    out = io.BytesIO()
    pages[0].save(
        out,
        "TIFF",
        save_all=True,
        append_images=pages[1:],
        compression="tiff_deflate",
        tiffinfo=info,
    )
    return out.getvalue()


# Content types an uploader gives the formats that are re-encoded.
_REENCODED_UPLOAD_TYPES: Final = frozenset(
    {"image/heic", "image/heif", "image/heic-sequence", "image/heif-sequence", "image/avif"}
    | {"image/tiff", "image/tif", "image/x-tiff"}
)
_TYPE_OF: Final = {"JPEG": "image/jpeg", "PNG": "image/png", "TIFF": "image/tiff"}


def reencoded_type(published: bytes, uploaded_type: str | None) -> str | None:
    """The Content-Type of a re-encoded published form, or None for the uploader's to stand.

    A HEIC uploaded as ``image/heic`` is published as a JPEG: it is served as
    ``image/jpeg``. A TIFF is served as ``image/tiff`` whatever it was sent as.
    """
    fmt = sniff_format(published)
    if fmt is None and containers.kind_of(published) == "TIFF":
        return _TYPE_OF["TIFF"]
    base = (uploaded_type or "").split(";", 1)[0].strip().lower()
    if base in _REENCODED_UPLOAD_TYPES and fmt in _TYPE_OF:
        return _TYPE_OF[fmt]
    return None
