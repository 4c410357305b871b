"""decode_image on the generated hostile corpus (tests/hostile.py): refusals and bounds.

The stack test (tests/integration/test_hostile_on_stack.py) pushes the same
items through the deployed ingest; these pin the decoder's part.
"""

from __future__ import annotations

import io
import time
import tracemalloc
from collections.abc import Callable

import pytest
from PIL import Image, ImageFile

from quitclaim.domain.errors import RejectedInput
from quitclaim.faces import containers
from quitclaim.faces.imaging import decode_image
from tests import hostile as h

LIMITS = {"max_bytes": 50 * 1024 * 1024, "max_pixels": 60_000_000, "max_frames": 200}


def rejection(data: bytes) -> str:
    with pytest.raises(RejectedInput) as caught:
        decode_image(data, **LIMITS)
    return caught.value.code


@pytest.mark.parametrize("brand", [b"heic", b"heix", b"mif1", b"avif"])
def test_a_heif_or_avif_head_is_decoded_as_such_not_refused_as_unknown(brand: bytes) -> None:
    # Given what a phone writes, cut after its head: an ISO-BMFF head naming a HEIF brand
    data = h.iso_bmff(brand)
    # Then it is recognised and decoded (tests/unit/faces/test_containers.py): it holds no
    # image, so it is corrupt, not an unknown format and not video
    assert containers.kind_of(data) in {"HEIF", "AVIF"}
    assert rejection(data) == "corrupt_image"


def test_the_shortest_heic_head_is_still_recognised() -> None:
    # (this was the "heic" case of test_anything_but_jpeg_png_gif_webp_is_rejected_by_its_bytes)
    assert containers.kind_of(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00") == "HEIF"
    assert rejection(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00") == "truncated_image"


def test_other_iso_bmff_files_are_video() -> None:
    mp4 = h.iso_bmff(b"isom").replace(b"mif1", b"mp41")
    assert containers.kind_of(mp4) == "VIDEO"
    assert rejection(mp4) == "video_not_supported"


def test_a_gif_with_a_page_after_its_trailer_is_decoded_not_called_truncated() -> None:
    # Given a GIF+HTML polyglot (the page follows the GIF trailer)
    data = h.gif_html_polyglot(h.kit())
    # When decoded / Then the picture is there in full
    image = decode_image(data, **LIMITS)
    assert image.frames[0].shape == (374, 630, 3)


def test_a_gif_with_a_block_that_is_no_block_is_corrupt() -> None:
    # Given a GIF whose first block after the header is neither extension, image nor trailer
    data = bytearray(h.encode(h.kit(), "GIF"))
    data[13 + 3 * 256] = 0x42
    assert rejection(bytes(data)) == "corrupt_image"


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.99])
def test_an_animated_gif_cut_anywhere_is_truncated(fraction: float) -> None:
    data = h.animation_with_face_last(h.kit(), "GIF")
    assert rejection(h.cut(data, fraction)) == "truncated_image"


@pytest.mark.parametrize("bomb", [h.png_iccp_bomb, h.png_ztxt_bomb])
def test_a_text_or_profile_chunk_that_inflates_hugely_is_refused(
    bomb: Callable[[bytes, int], bytes],
) -> None:
    # Given a PNG whose iCCP / zTXt chunk inflates to 100 MiB
    data = bomb(h.kit_png(), 100)
    assert len(data) < 1_000_000
    # Then it is refused without inflating it
    tracemalloc.start()
    try:
        assert rejection(data) == "corrupt_image"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024 * 1024


def test_pixel_data_that_inflates_past_the_picture_stops_at_the_picture() -> None:
    # Given the photo as a PNG whose IDAT stream goes on for 200 MiB of zeros
    data = h.png_idat_bomb(h.kit(), 200)
    # When decoded / Then only the picture is inflated: little memory, little time
    tracemalloc.start()
    started = time.perf_counter()
    try:
        image = decode_image(data, **LIMITS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert image.frames[0].shape == (374, 630, 3)
    assert peak < 32 * 1024 * 1024
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    ("build", "code"),
    [
        (lambda: h.jpeg_claiming(65000, 65000), "too_many_pixels"),
        (lambda: h.gif_claiming(65535, 65535), "too_many_pixels"),
        (lambda: h.webp_claiming(16383, 16383), "too_many_pixels"),
        (lambda: h.jpeg_bad_huffman(h.kit_jpeg()), "corrupt_image"),
        (lambda: h.png_bad_header(h.kit_png()), "corrupt_image"),
        (lambda: h.png_flipped_idat(h.kit_png()), "corrupt_image"),
        (lambda: h.webp_bad_header(h.kit_webp()), "corrupt_image"),
    ],
)
def test_pixel_bombs_and_broken_headers_are_refused(build: h.Builder, code: str) -> None:
    assert rejection(build()) == code


def test_a_jpeg_with_damaged_compressed_data_is_refused_not_judged_as_noise() -> None:
    # Given a photo of a face whose entropy-coded data has bytes flipped mid-scan
    clean = h.kit_jpeg()
    garbled = h.jpeg_flipped_entropy(clean)
    # (which Pillow alone decodes without a word: libjpeg only warns)
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    with Image.open(io.BytesIO(garbled)) as lenient:
        lenient.load()
    # When it is decoded for the gate
    with pytest.raises(RejectedInput) as refused:
        decode_image(garbled, **LIMITS)
    # Then it is refused as corrupt, while the undamaged photo decodes
    assert refused.value.code == "corrupt_image"
    assert decode_image(clean, **LIMITS).frames


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_intact_jpegs_of_every_colour_model_pass_the_strict_check(mode: str) -> None:
    # Given undamaged baseline and progressive JPEGs in each colour model
    for progressive in (False, True):
        out = io.BytesIO()
        h.kit().convert(mode).save(out, "JPEG", quality=85, progressive=progressive)
        # When decoded, Then each gives its frame
        assert decode_image(out.getvalue(), **LIMITS).frames
