"""HEIF/HEIC, AVIF and TIFF are scanned; RAW and video refused (faces/containers.py).

What a viewer of the published copy can see is what was scanned: a HEIF's
primary image only (thumbnails, depth/auxiliary and burst images dropped), a
TIFF's every page. Each is published re-encoded (faces/published.py) under
the JPEG's metadata allowlist.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import pi_heif
import pytest
from PIL import Image

from quitclaim.domain.errors import RejectedInput
from quitclaim.faces import containers
from quitclaim.faces.imaging import decode_image
from quitclaim.faces.published import published_form, reencoded_type
from tests import hostile as h

LIMITS = {"max_bytes": 50 * 1024 * 1024, "max_pixels": 60_000_000, "max_frames": 200}


def rejection(data: bytes, **overrides: int) -> str:
    with pytest.raises(RejectedInput) as caught:
        decode_image(data, **{**LIMITS, **overrides})
    return caught.value.code


def published_rejection(data: bytes, **limits: int) -> str:
    with pytest.raises(RejectedInput) as caught:
        published_form(data, **limits)
    return caught.value.code


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) of each segment before the first scan."""
    found, pos = [], 2
    while data[pos] == 0xFF and data[pos + 1] != 0xDA:
        marker = data[pos + 1]
        (length,) = struct.unpack_from(">H", data, pos + 2)
        found.append((marker, data[pos + 4 : pos + 2 + length]))
        pos += 2 + length
    return found


# -- HEIF / HEIC ----------------------------------------------------------------------


def test_an_iphone_style_heic_is_decoded_upright_from_its_primary_image_only() -> None:
    # Given a HEIC as a phone writes it: a tiled primary stored sideways (irot), a thumbnail
    data = h.heic("obama-iphone")
    # When decoded
    image = decode_image(data, **LIMITS)
    # Then one picture, upright (the portrait is taller than wide), no thumbnail frame
    assert image.source_format == "HEIF"
    assert (image.width, image.height) == (469, 900)
    assert len(image.frames) == 1 and image.meta["frames"] == "1"


def test_the_published_form_of_a_heic_is_a_jpeg_of_the_primary_image_without_extras() -> None:
    # Given the iPhone-style HEIC (thumbnail, EXIF with GPS and camera, XMP)
    data = h.heic("obama-iphone")
    # When its published form is made
    published = published_form(data)
    # Then it is a JPEG of the primary image, upright, and nothing else
    with Image.open(io.BytesIO(published)) as im:
        assert (im.format, im.size) == ("JPEG", (469, 900))
        exif = im.getexif()
        # only the allowlisted rights tag; no orientation (applied), no GPS, no camera
        assert dict(exif) == {0x8298: "Quitclaim test fixture"}
        assert exif.get_ifd(0x8825) == {}
        assert not exif.get_ifd(0x8769)
    # no thumbnail anywhere: no IFD1, nothing after the end, no APPn but JFIF and EXIF
    assert [m for m, _ in jpeg_segments(published) if 0xE0 <= m <= 0xEF] == [0xE0, 0xE1]
    assert published.count(b"\xff\xd8") == 1 and published.endswith(b"\xff\xd9")
    # And the scan decodes exactly these bytes to the primary image's pixels
    direct = decode_image(data, **LIMITS).frames[0].astype(np.int16)
    scanned = decode_image(published, **LIMITS).frames[0].astype(np.int16)
    assert scanned.shape == direct.shape
    assert np.abs(scanned - direct).mean() < 3  # JPEG quality 92
    # And it is stable: made again, or made of itself, it is the same bytes
    assert published_form(data) == published
    assert published_form(published) == published
    assert reencoded_type(published, "image/heic") == "image/jpeg"


def test_a_second_image_of_a_heic_is_not_published_nor_is_it_its_primary() -> None:
    # Given a HEIC whose primary shows no one; a second top-level image (a burst) shows a face
    data = h.heic("face-only-in-second-image")
    assert len(pi_heif.open_heif(io.BytesIO(data))) == 2
    # When its published form is made
    published = published_form(data)
    # Then it holds one picture: the primary's size, not the second image's
    with Image.open(io.BytesIO(published)) as im:
        assert im.size == (480, 360)
        assert getattr(im, "n_frames", 1) == 1
    assert published.count(b"\xff\xd8") == 1


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.95, 0.999])
def test_a_cut_heic_is_truncated(fraction: float) -> None:
    data = h.heic("obama-iphone")
    cut = data[: int(len(data) * fraction)]
    assert rejection(cut) == "truncated_image"
    assert published_rejection(cut) == "truncated_image"


def test_a_heic_claiming_a_huge_picture_is_refused_before_it_is_decoded() -> None:
    # Given the HEIC with every ispe box claiming 60,000 x 60,000 pixels
    bomb = h.heif_claiming(h.heic("obama-iphone"), 60_000, 60_000)
    # Then it is refused by its header as too many pixels
    assert rejection(bomb) == "too_many_pixels"
    assert published_rejection(bomb) == "too_many_pixels"
    # And within libheif's limits but over ours, it is too_many_pixels by our check
    over = h.heif_claiming(h.heic("obama-iphone"), 1000, 1000)
    assert rejection(over, max_pixels=999_999) == "too_many_pixels"


def test_a_heif_head_without_an_image_is_corrupt_not_unsupported() -> None:
    assert rejection(h.iso_bmff(b"heic")) == "corrupt_image"


# -- AVIF -----------------------------------------------------------------------------


def test_an_avif_is_published_as_a_jpeg_of_its_picture() -> None:
    data = h.avif(h.kit())
    published = published_form(data)
    assert published[:3] == b"\xff\xd8\xff"
    image = decode_image(published, **LIMITS)
    assert (image.width, image.height) == h.kit().size
    assert decode_image(data, **LIMITS).source_format == "AVIF"
    assert published_form(published) == published


def test_an_avif_with_alpha_is_published_as_a_png_that_keeps_it() -> None:
    # Given an AVIF whose picture has transparent parts (a face could be drawn in alpha)
    rgba = h.kit().convert("RGBA")
    rgba.putalpha(0)
    rgba.paste((0, 0, 0, 255), (0, 0, 40, 40))
    published = published_form(h.avif(rgba, lossless=True))
    # Then the published form is a PNG, and the scan sees its three views
    assert published.startswith(b"\x89PNG")
    assert decode_image(published, **LIMITS).meta["views"] == "3"


def test_an_avif_sequence_is_video() -> None:
    frames = [h.plain((64, 64), 10), h.plain((64, 64), 200)]
    data = h.avif(frames[0], save_all=True, append_images=frames[1:])
    assert rejection(data) == "video_not_supported"


def test_a_cut_avif_is_truncated() -> None:
    data = h.avif(h.kit())
    assert rejection(data[: len(data) // 2]) == "truncated_image"


# -- TIFF -----------------------------------------------------------------------------


def test_every_page_of_a_tiff_is_a_frame_and_the_face_on_page_3_is_in_frame_2() -> None:
    # Given a three-page TIFF with a face only on page 3
    data = h.tiff_face_on_page_3(h.kit())
    # When decoded
    image = decode_image(data, **LIMITS)
    # Then all three pages are frames, page 3 the face photo itself
    assert image.source_format == "TIFF" and image.meta["frames"] == "3"
    assert np.array_equal(image.frames[2], np.asarray(h.kit()))


def test_the_published_form_of_a_tiff_holds_exactly_its_pages_and_no_metadata_images() -> None:
    # Given a three-page TIFF whose first page also carries XMP, IPTC, a Photoshop block and EXIF
    extras = {700: b"<x:xmpmeta/>", 33723: b"\x1c\x02\x00", 34377: b"8BIM", 33432: "(c) Org"}
    data = h.tiff_pages(h.plain((64, 48), 40), h.plain((64, 48), 160), h.kit(), tiffinfo=extras)
    # When its published form is made
    published = published_form(data)
    # Then it is a TIFF of the same three pages, pixel for pixel
    with Image.open(io.BytesIO(published)) as im:
        assert im.n_frames == 3
        kept = set(im.tag_v2)
        assert {700, 33723, 34377, 34665, 34853, 330}.isdisjoint(kept)
        assert im.tag_v2.get(33432) == "(c) Org"
    before = decode_image(data, **LIMITS).frames
    after = decode_image(published, **LIMITS).frames
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    assert published_form(published) == published
    assert reencoded_type(published, None) == "image/tiff"


def test_each_tiff_page_is_turned_by_its_own_orientation() -> None:
    # Given page 2 stored sideways with orientation 6 in its own IFD (page 1 untagged)
    sideways = h.kit().transpose(Image.Transpose.ROTATE_90)
    data = _with_orientation_on_page(h.tiff_pages(h.plain((32, 32), 5), sideways), 1, 6)
    # When decoded / Then page 2 is upright, page 1 as stored
    image = decode_image(data, **LIMITS)
    assert image.frames[0].shape == (32, 32, 3)
    assert np.array_equal(image.frames[1], np.asarray(h.kit()))


def _with_orientation_on_page(data: bytes, page: int, orientation: int) -> bytes:
    """Rewrite page ``page``'s IFD with an Orientation entry (tags kept sorted)."""
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(order + "I", data, 4)
    for _ in range(page):
        (entries,) = struct.unpack_from(order + "H", data, ifd)
        (ifd,) = struct.unpack_from(order + "I", data, ifd + 2 + 12 * entries)
    (entries,) = struct.unpack_from(order + "H", data, ifd)
    items = [data[ifd + 2 + 12 * i : ifd + 14 + 12 * i] for i in range(entries)]
    (following,) = struct.unpack_from(order + "I", data, ifd + 2 + 12 * entries)
    items.append(struct.pack(order + "HHIHH", 0x0112, 3, 1, orientation, 0))
    items.sort(key=lambda e: struct.unpack_from(order + "H", e)[0])
    new_ifd = len(data)
    body = struct.pack(order + "H", len(items)) + b"".join(items)
    body += struct.pack(order + "I", following)
    out = bytearray(data + body)
    # point the previous link at the new IFD
    (link_ifd,) = struct.unpack_from(order + "I", data, 4)
    if page == 0:
        struct.pack_into(order + "I", out, 4, new_ifd)
    else:
        for _ in range(page - 1):
            (entries,) = struct.unpack_from(order + "H", data, link_ifd)
            (link_ifd,) = struct.unpack_from(order + "I", data, link_ifd + 2 + 12 * entries)
        (entries,) = struct.unpack_from(order + "H", data, link_ifd)
        struct.pack_into(order + "I", out, link_ifd + 2 + 12 * entries, new_ifd)
    return bytes(out)


@pytest.mark.parametrize("fraction", [0.01, 0.3, 0.6, 0.95])
def test_a_cut_tiff_is_truncated(fraction: float) -> None:
    data = h.tiff_face_on_page_3(h.kit())
    assert rejection(data[: int(len(data) * fraction)]) == "truncated_image"


def test_a_tiff_pixel_bomb_is_refused_from_its_header() -> None:
    assert rejection(h.tiff_claiming(100_000, 100_000)) == "too_many_pixels"
    assert rejection(h.tiff_claiming(8_000, 8_000)) == "too_many_pixels"  # 64 MP > 60 MP


def test_a_tiff_with_too_many_pages_is_refused() -> None:
    data = h.tiff_many_pages(12)
    assert rejection(data, max_frames=10) == "too_many_frames"
    assert published_rejection(data, max_frames=10) == "too_many_frames"


def test_the_pages_of_a_tiff_count_together_against_the_pixel_limit() -> None:
    # Given three pages of 64 x 48: each fits a 5,000-pixel limit, together they do not
    data = h.tiff_pages(*(h.plain((64, 48), s) for s in (10, 90, 170)))
    assert rejection(data, max_pixels=5_000) == "too_many_pixels"


def test_a_tiff_whose_pages_loop_is_corrupt() -> None:
    data = bytearray(h.tiff_pages(h.plain((8, 8), 1), h.plain((8, 8), 2)))
    (first,) = struct.unpack_from("<I", data, 4)
    (entries,) = struct.unpack_from("<H", data, first)
    (second,) = struct.unpack_from("<I", data, first + 2 + 12 * entries)
    (entries2,) = struct.unpack_from("<H", data, second)
    struct.pack_into("<I", data, second + 2 + 12 * entries2, first)  # page 2 -> page 1
    assert rejection(bytes(data)) == "corrupt_image"


# -- RAW and video: refused, each with its own code --------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(h.dng_like(h.plain((16, 16), 3)), id="dng"),
        pytest.param(h.cr2_head(), id="cr2"),
        pytest.param(b"FUJIFILMCCD-RAW 0201FF383501" + bytes(64), id="raf"),
        pytest.param(b"IIRO\x08\x00\x00\x00" + bytes(64), id="orf"),
        pytest.param(b"IIU\x00\x08\x00\x00\x00" + bytes(64), id="rw2"),
        pytest.param(h.ftyp_only(b"crx ", b"crx ", b"isom"), id="cr3"),
    ],
)
def test_camera_raw_is_refused_as_raw(data: bytes) -> None:
    # (a DNG is a TIFF by its magic; its DNGVersion tag says RAW)
    assert containers.kind_of(data) in {"RAW", "TIFF"}
    assert rejection(data) == "raw_not_supported"
    # And no published form is made of it: it is refused there too, or left as it is
    try:
        assert published_form(data) == data
    except RejectedInput as exc:
        assert exc.code == "raw_not_supported"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(h.ftyp_only(b"isom", b"isom", b"mp41"), id="mp4"),
        pytest.param(h.ftyp_only(b"qt  ", b"qt  "), id="mov"),
        pytest.param(h.ftyp_only(b"msf1", b"msf1", b"hevc"), id="heif-sequence"),
        pytest.param(h.ftyp_only(b"avis", b"avis", b"msf1"), id="avif-sequence"),
        pytest.param(b"\x00\x00\x00\x08wide\x00\x00\x00\x10mdat" + bytes(8), id="old-mov"),
        pytest.param(b"\x1a\x45\xdf\xa3" + bytes(32), id="webm"),
        pytest.param(b"RIFF\x00\x01\x00\x00AVI LIST" + bytes(32), id="avi"),
    ],
)
def test_video_is_refused_as_video(data: bytes) -> None:
    assert containers.kind_of(data) == "VIDEO"
    assert rejection(data) == "video_not_supported"


# -- the detector's pixel budget counts every page (docs/budgets.md) ---------------------


def test_the_detection_budget_counts_every_page_of_a_tiff() -> None:
    from quitclaim.faces.yunet_engine import YuNetFaceEngine

    # Given a three-page TIFF of distinct pages, and what each page alone costs to scan
    data = h.tiff_pages(*(h.plain((640, 480), s) for s in (10, 90, 170)))
    probe = YuNetFaceEngine()
    image = probe.decode(data)
    one_page = probe.scan_pixels(640, 480)
    # When the budget holds two pages but not three
    engine = YuNetFaceEngine(detect_budget_pixels=3 * one_page - 1)
    assert engine.scan_pixels(640, 480) == one_page
    # Then the image is refused with the budget's code, not scanned in part
    with pytest.raises(RejectedInput) as refused:
        engine.analyze(image)
    assert refused.value.code == "detection_budget_exceeded"
