"""The published form: the picture byte for byte, an allowlist of metadata, no preview.

Each test builds a file the way cameras and editors write them (embedded
previews of a real portrait, ``tests.conftest.FACES``), and checks what
``published_form`` keeps, drops, and that the pixels do not change.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageCms

from quitclaim.domain.errors import RejectedInput
from quitclaim.faces.imaging import decode_image
from quitclaim.faces.published import published_form
from tests.conftest import FACES

PORTRAIT = FACES / "uploads" / "kit-closeup.jpg"
SOI = b"\xff\xd8\xff"
LIMITS = {"max_bytes": 10**8, "max_pixels": 10**8, "max_frames": 50}


def portrait(max_side: int = 160) -> Image.Image:
    with Image.open(PORTRAIT) as im:
        im = im.convert("RGB")
        im.thumbnail((max_side, max_side))
        return im


def jpeg_of(im: Image.Image, **kwargs: object) -> bytes:
    out = io.BytesIO()
    im.save(out, "JPEG", quality=85, **kwargs)
    return out.getvalue()


def segment(code: int, payload: bytes) -> bytes:
    return bytes((0xFF, code)) + struct.pack(">H", len(payload) + 2) + payload


def exif_with_thumbnail(thumbnail: bytes, *, copyright_: bytes = b"(c) Agency\x00") -> bytes:
    """TIFF: IFD0 (Orientation 6, Copyright) then IFD1 pointing at a JPEG thumbnail."""
    ifd0_at, entries0 = 8, 2
    ifd1_at = ifd0_at + 2 + 12 * entries0 + 4
    copyright_at = ifd1_at + 2 + 12 * 2 + 4
    thumb_at = copyright_at + len(copyright_)
    ifd0 = (
        struct.pack("<H", entries0)
        + struct.pack("<HHII", 0x0112, 3, 1, 6)
        + struct.pack("<HHII", 0x8298, 2, len(copyright_), copyright_at)
        + struct.pack("<I", ifd1_at)
    )
    ifd1 = (
        struct.pack("<H", 2)
        + struct.pack("<HHII", 0x0201, 4, 1, thumb_at)
        + struct.pack("<HHII", 0x0202, 4, 1, len(thumbnail))
        + struct.pack("<I", 0)
    )
    return b"II*\x00" + struct.pack("<I", ifd0_at) + ifd0 + ifd1 + copyright_ + thumbnail


XMP = (
    b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
    b'xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" '
    b'xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
    b'xmlns:xmpGImg="http://ns.adobe.com/xap/1.0/g/img/" '
    b'photoshop:Credit="Agency &amp; Co">'
    b'<dc:rights><rdf:Alt><rdf:li xml:lang="x-default">(c) Agency</rdf:li></rdf:Alt></dc:rights>'
    b"<xmp:Thumbnails><rdf:Alt><rdf:li><xmpGImg:image>THUMBNAIL-BASE64</xmpGImg:image>"
    b"</rdf:li></rdf:Alt></xmp:Thumbnails>"
    b'</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)


def iim(record: int, dataset: int, value: bytes) -> bytes:
    return bytes((0x1C, record, dataset)) + struct.pack(">H", len(value)) + value


def irb(resource: int, body: bytes) -> bytes:
    return (
        b"8BIM"
        + struct.pack(">H", resource)
        + b"\x00\x00"
        + struct.pack(">I", len(body))
        + body
        + b"\x00" * (len(body) % 2)
    )


def camera_jpeg() -> tuple[bytes, bytes]:
    """A JPEG carrying every kind of preview we know of; and its ICC profile."""
    main = portrait(480)
    thumb = jpeg_of(portrait(120))
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    body = jpeg_of(main, icc_profile=icc)
    iptc = iim(1, 90, b"\x1b%G") + iim(2, 110, b"Agency Credit") + iim(2, 202, thumb[:2000])
    photoshop = b"Photoshop 3.0\x00" + irb(0x0404, iptc) + irb(0x0409, thumb)
    inserted = (
        segment(0xE1, b"Exif\x00\x00" + exif_with_thumbnail(thumb))
        + segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + XMP)
        + segment(0xED, photoshop)
        + segment(0xE2, b"MPF\x00" + b"\x00" * 16)
        + segment(0xFE, b"a comment")
    )
    # Pillow writes SOI, APP0 JFIF, APP2 ICC...; ours go after SOI; a second image trails.
    return body[:2] + inserted + body[2:] + thumb, icc


def test_a_camera_jpeg_keeps_its_picture_and_rights_and_loses_every_preview() -> None:
    # Given a JPEG with an EXIF, a Photoshop and an IPTC thumbnail, an XMP one,
    # an MPF header and a second image after its end
    upload, icc = camera_jpeg()
    assert upload.count(SOI) >= 4
    # When its published form is made
    published = published_form(upload)
    # Then no embedded JPEG remains, nor anything after the end of the picture
    assert published.count(SOI) == 1
    assert published.endswith(b"\xff\xd9") and published.count(b"\xff\xd9") == 1
    assert b"THUMBNAIL-BASE64" not in published and b"MPF\x00" not in published
    assert b"a comment" not in published
    im = Image.open(io.BytesIO(published))
    exif = im.getexif()
    assert not exif.get_ifd(ExifTags.IFD.IFD1)
    # And the colour profile, orientation and rights stay
    assert im.info["icc_profile"] == icc
    assert exif[ExifTags.Base.Orientation] == 6
    assert exif[ExifTags.Base.Copyright] == "(c) Agency"
    assert b"(c) Agency" in published and b"Agency &amp; Co" in published
    assert b"Agency Credit" in published and b"8BIM\x04\x09" not in published
    # And the pixels are exactly the upload's (nothing is re-compressed)
    before = decode_image(upload, **LIMITS).frames
    after = decode_image(published, **LIMITS).frames
    assert len(before) == len(after) == 1
    assert np.array_equal(before[0], after[0])


def test_the_published_form_of_a_published_form_is_itself() -> None:
    upload, _ = camera_jpeg()
    once = published_form(upload)
    assert published_form(once) == once


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_a_png_keeps_its_pixels_and_copyright_and_loses_exif_thumbnails() -> None:
    # Given an RGBA PNG with a Copyright text, an eXIf block with a thumbnail,
    # ImageMagick's "Raw profile type exif" (a whole EXIF block, thumbnail
    # included) and a JPEG appended after IEND
    out = io.BytesIO()
    portrait(200).convert("RGBA").save(out, "PNG")
    png = out.getvalue()
    thumb = jpeg_of(portrait(100))
    extra = (
        png_chunk(b"tEXt", b"Copyright\x00(c) Agency")
        + png_chunk(b"eXIf", exif_with_thumbnail(thumb))
        + png_chunk(
            b"zTXt",
            b"Raw profile type exif\x00\x00" + zlib.compress(thumb.hex().encode()),
        )
    )
    ihdr_end = 8 + 25
    upload = png[:ihdr_end] + extra + png[ihdr_end:] + thumb
    # When its published form is made
    published = published_form(upload)
    # Then the thumbnails are gone, the copyright and orientation stay
    assert SOI not in published and b"Raw profile" not in published
    assert published.endswith(png_chunk(b"IEND", b""))
    im = Image.open(io.BytesIO(published))
    assert im.info.get("Copyright") == "(c) Agency"
    assert not im.getexif().get_ifd(ExifTags.IFD.IFD1)
    assert im.getexif()[ExifTags.Base.Orientation] == 6
    # And the pixels (alpha included) are the upload's
    assert np.array_equal(
        np.asarray(Image.open(io.BytesIO(upload))), np.asarray(Image.open(io.BytesIO(published)))
    )


def test_a_gif_loses_comments_foreign_extensions_and_what_follows_its_end() -> None:
    # Given a two-frame GIF with a comment, an XMP application block and a page appended
    frames = [portrait(120).convert("P"), portrait(120).rotate(90).convert("P")]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], loop=0, comment=b"hi")
    gif = out.getvalue()
    xmp_block = b"\x21\xff\x0bXMP DataXMP" + b"\x05hello" + b"\x00"
    at = gif.index(b"\x21\xf9")  # before the first graphic control extension
    upload = gif[:at] + xmp_block + gif[at:] + b"<html>page</html>"
    # When its published form is made
    published = published_form(upload)
    # Then only the pictures and the loop remain, every frame unchanged
    assert b"XMP DataXMP" not in published and b"<html>" not in published
    assert Image.open(io.BytesIO(upload)).info.get("comment") == b"hi"
    assert "comment" not in Image.open(io.BytesIO(published)).info
    assert published.endswith(b";") and b"NETSCAPE2.0" in published
    before = decode_image(upload, **LIMITS).frames
    after = decode_image(published, **LIMITS).frames
    assert len(before) == len(after) == 2
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def test_a_webp_loses_its_exif_and_keeps_its_pixels() -> None:
    # Given a lossless WebP whose EXIF block carries a thumbnail
    exif = b"Exif\x00\x00" + exif_with_thumbnail(jpeg_of(portrait(100)))
    out = io.BytesIO()
    portrait(200).save(out, "WEBP", lossless=True, exif=exif)
    upload = out.getvalue()
    assert SOI in upload
    # When its published form is made
    published = published_form(upload)
    # Then no EXIF chunk (nor its flag) remains, and the pixels are the upload's
    assert SOI not in published and b"EXIF" not in published
    assert published[20] & 0x08 == 0
    assert np.array_equal(
        np.asarray(Image.open(io.BytesIO(upload))), np.asarray(Image.open(io.BytesIO(published)))
    )


def test_bytes_that_are_not_an_image_come_back_for_the_decoder_to_refuse() -> None:
    assert published_form(b"<html>not an image</html>") == b"<html>not an image</html>"


def test_a_text_chunk_that_inflates_too_far_is_refused_even_though_it_is_dropped() -> None:
    # Given a PNG whose comment inflates to 8 MiB of zeros
    out = io.BytesIO()
    portrait(100).save(out, "PNG")
    png = out.getvalue()
    bomb = png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"\x00" * (8 << 20), 9))
    upload = png[:33] + bomb + png[33:]
    # When its published form is made / Then it is refused, as the decoder refuses it
    with pytest.raises(RejectedInput) as refused:
        published_form(upload)
    assert refused.value.code == "corrupt_image"
