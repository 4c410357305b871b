"""Hostile input through the real stack: S3 upload -> queue -> ingest handler.

The whole generated corpus (``tests/hostile.py``; nothing binary is committed)
is uploaded at once and the queues drained once, so hostile items share
batches with each other. Every item must then be decided as ``CORPUS`` says
or refused with its reason, its original bytes kept byte-identical in exactly
one place under its own tenant's prefix, with no message failed or
dead-lettered, and the conservation law must hold for both tenants.

``hostile-a`` has one person enrolled (consented for web); every image of
the unenrolled face (``KIT``) must be held, never approved: approval would be
a face published without consent. ``hostile-b`` has nothing uploaded: it is
the prefix a traversal key aims at, and must stay empty.
"""

from __future__ import annotations

import hashlib
import io
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pi_heif
import pytest
from PIL import Image

from quitclaim.adapters.dynamo import AssetModel
from quitclaim.bootstrap import conservation_service, registry_service
from quitclaim.domain.models import TenantPolicy
from quitclaim.faces.published import published_form
from quitclaim.usecases.uploads import UNSAFE_KEYS
from tests import hostile as h
from tests.conftest import DEMO_NOW, FACES

pytestmark = pytest.mark.integration
TENANT = "hostile-a"
VICTIM = "hostile-b"


@dataclass(frozen=True)
class Verdict:
    """What the stack must decide: a status, and the reasons or faces that prove it."""

    status: str
    reasons: frozenset[str] = frozenset()
    # Approved: how many faces matched the enrolled person (0: no face at all).
    consented_faces: int = 0
    # Held: the frame the unenrolled face must be reported in.
    face_frame: int = 0


def held(frame: int = 0) -> Verdict:
    """The unenrolled face was found (in ``frame``): quarantined, never published."""
    return Verdict("quarantined", frozenset({"unknown_face"}), face_frame=frame)


def refused(*codes: str) -> Verdict:
    return Verdict("rejected", frozenset(codes))


APPROVED_OBAMA = Verdict("approved", consented_faces=1)
APPROVED_EMPTY = Verdict("approved")


@dataclass(frozen=True)
class Item:
    path: str  # below incoming/{tenant}/ (or the whole key when ``tenant`` is None)
    build: Callable[[], bytes]
    expect: Verdict
    tenant: str | None = TENANT
    content_type: str | None = None


def _kit() -> Any:
    return h.kit()


def _kit_jpeg(label: str) -> bytes:
    return h.labelled_jpeg(h.kit_jpeg(), label)


def _obama_half() -> Any:
    image = h.obama()
    return image.resize((image.width // 2, image.height // 2))


def _long_path(unit: str, total_bytes: int) -> str:
    """A path whose full upload key is exactly ``total_bytes`` UTF-8 bytes long."""
    head, tail = "keys/long-", ".png"
    room = total_bytes - len(f"incoming/{TENANT}/{head}{tail}".encode())
    count, spare = divmod(room, len(unit.encode()))
    return head + unit * count + "x" * spare + tail


HEIC_TYPE = "image/heic"

# Stands for h.blank_png labelled with the item's own key (distinct bytes each).
BLANK: Callable[[], bytes] = h.blank_png

NFC = unicodedata.normalize("NFC", "keys/Straße café.png")
NFD = unicodedata.normalize("NFD", NFC)

# The corpus and the verdict each item must get. (Counted in the closing note.)
CORPUS: tuple[Item, ...] = (
    # -- truncated and corrupt: cut through the face, flipped entropy bytes, bad headers
    Item(
        "cut/jpeg-through-face.jpg", lambda: h.cut(h.kit_jpeg(), 0.45), refused("truncated_image")
    ),
    Item("cut/png-through-face.png", lambda: h.cut(h.kit_png(), 0.5), refused("truncated_image")),
    Item(
        "cut/webp-through-face.webp", lambda: h.cut(h.kit_webp(), 0.5), refused("truncated_image")
    ),
    Item("corrupt/jpeg-one-flipped-bit.jpg", lambda: h.jpeg_one_flipped_bit(h.kit_jpeg()), held()),
    # libjpeg only warns about damaged entropy data and Pillow drops the warning:
    # the face decodes as noise. The strict pass refuses it (faces/imaging.py).
    Item(
        "corrupt/jpeg-entropy-garbled.jpg",
        lambda: h.jpeg_flipped_entropy(h.kit_jpeg()),
        refused("corrupt_image"),
    ),
    Item(
        "corrupt/png-flipped-idat.png",
        lambda: h.png_flipped_idat(h.kit_png()),
        refused("corrupt_image"),
    ),
    Item("corrupt/webp-flipped.webp", lambda: h.webp_flipped(h.kit_webp()), held()),
    Item(
        "corrupt/jpeg-no-huffman.jpg",
        lambda: h.jpeg_bad_huffman(h.kit_jpeg()),
        refused("corrupt_image"),
    ),
    Item(
        "corrupt/png-bad-ihdr.png", lambda: h.png_bad_header(h.kit_png()), refused("corrupt_image")
    ),
    Item(
        "corrupt/webp-bad-vp8.webp",
        lambda: h.webp_bad_header(h.kit_webp()),
        refused("corrupt_image"),
    ),
    # -- decompression bombs: pixel bombs and zlib bombs
    Item(
        "bomb/jpeg-65000x65000.jpg",
        partial(h.jpeg_claiming, 65000, 65000),
        refused("too_many_pixels"),
    ),
    Item(
        "bomb/gif-65535x65535.gif",
        partial(h.gif_claiming, 65535, 65535),
        refused("too_many_pixels"),
    ),
    Item(
        "bomb/webp-16383x16383.webp",
        partial(h.webp_claiming, 16383, 16383),
        refused("too_many_pixels"),
    ),
    Item("bomb/png-idat-inflates-200mb.png", lambda: h.png_idat_bomb(_kit(), 200), held()),
    Item(
        "bomb/png-iccp-100mb.png",
        lambda: h.png_iccp_bomb(h.kit_png(), 100),
        refused("corrupt_image"),
    ),
    Item(
        "bomb/png-ztxt-100mb.png",
        lambda: h.png_ztxt_bomb(h.kit_png(), 100),
        refused("corrupt_image"),
    ),
    # -- polyglots, wrong or no extension, lying content types
    Item(
        "poly/jpeg-plus-zip.jpg",
        lambda: h.jpeg_zip_polyglot(h.kit_jpeg()),
        held(),
        content_type="application/zip",
    ),
    Item(
        "poly/gif-plus-html.gif",
        lambda: h.gif_html_polyglot(_kit()),
        held(),
        content_type="text/html",
    ),
    Item("poly/png-named.jpg", h.kit_png, held(), content_type="image/jpeg"),
    Item("poly/jpeg-named.gif", partial(_kit_jpeg, "named.gif"), held()),
    Item("poly/kit-no-extension", partial(_kit_jpeg, "no extension"), held()),
    Item("poly/svg-named.png", h.svg_with_script, refused("unsupported_format")),
    # -- modes
    Item("mode/cmyk.jpg", lambda: h.cmyk_jpeg(_kit()), held()),
    Item("mode/grey-16-bit.png", lambda: h.grey16_png(_kit()), held()),
    Item("mode/rgb-16-bit.png", lambda: h.rgb16_png(_kit()), held()),
    Item("mode/palette.png", lambda: h.palette_png(_kit()), held()),
    Item("mode/grey-alpha.png", lambda: h.la_png(_kit()), held()),
    Item("mode/face-behind-transparency.png", lambda: h.face_behind_transparency(_kit()), held()),
    Item("mode/one-bit.png", lambda: h.one_bit_png(_kit()), held()),
    # -- animations with the face only in the last frame (frame 3)
    Item("anim/face-last.gif", lambda: h.animation_with_face_last(_kit(), "GIF"), held(3)),
    Item("anim/face-last.webp", lambda: h.animation_with_face_last(_kit(), "WEBP"), held(3)),
    # -- HEIF/HEIC, AVIF, TIFF: decided by what is in them, published re-encoded
    # (docs/formats.md); RAW and video refused, each with its own reason
    Item(
        "heif/obama-iphone.heic",
        partial(h.heic, "obama-iphone"),
        APPROVED_OBAMA,
        content_type=HEIC_TYPE,
    ),
    Item(
        "heif/stranger-iphone.heic",
        partial(h.heic, "stranger-iphone"),
        held(),
        content_type=HEIC_TYPE,
    ),
    # the face is only in a second (burst) image: not scanned, and not published
    Item(
        "heif/face-only-in-second.heic",
        partial(h.heic, "face-only-in-second-image"),
        APPROVED_EMPTY,
    ),
    Item(
        "heif/cut.heic",
        lambda: h.cut(h.heic("stranger-iphone"), 0.6),
        refused("truncated_image"),
    ),
    Item(
        "heif/bomb-60000x60000.heic",
        lambda: h.heif_claiming(h.heic("stranger-iphone"), 60_000, 60_000),
        refused("too_many_pixels"),
    ),
    Item("heif/stranger.avif", lambda: h.avif(_kit()), held()),
    Item("heif/cut.avif", lambda: h.cut(h.avif(_kit()), 0.5), refused("truncated_image")),
    Item(
        "heif/sequence.avif",
        lambda: h.avif(h.plain((64, 64), 9), save_all=True, append_images=[h.plain((64, 64), 99)]),
        refused("video_not_supported"),
    ),
    Item("tiff/obama-on-page-3.tif", lambda: h.tiff_face_on_page_3(_obama_half()), APPROVED_OBAMA),
    Item("tiff/stranger-on-page-3.tif", lambda: h.tiff_face_on_page_3(_kit()), held(2)),
    Item(
        "tiff/cut.tif",
        lambda: h.cut(h.tiff_face_on_page_3(_kit()), 0.8),
        refused("truncated_image"),
    ),
    Item("tiff/bomb.tif", partial(h.tiff_claiming, 100_000, 100_000), refused("too_many_pixels")),
    Item("raw/camera.dng", lambda: h.dng_like(h.plain((32, 32), 7)), refused("raw_not_supported")),
    Item("raw/camera.cr2", h.cr2_head, refused("raw_not_supported")),
    Item(
        "video/clip.mp4",
        partial(h.ftyp_only, b"isom", b"isom", b"mp41"),
        refused("video_not_supported"),
    ),
    Item("video/clip.mov", partial(h.ftyp_only, b"qt  ", b"qt  "), refused("video_not_supported")),
    # -- EXIF orientations 1-8 of the consented face: found upright, same decision
    *(
        Item(
            f"orient/obama-{o}.jpg",
            partial(lambda o: h.exif_rotated_jpeg(_obama_half(), o), o),
            APPROVED_OBAMA,
        )
        for o in range(1, 9)
    ),
    # -- huge metadata
    Item("meta/jpeg-exif-xmp-icc-4mb.jpg", lambda: h.jpeg_huge_metadata(h.kit_jpeg(), 4), held()),
    Item(
        "meta/png-5000-texts-3mb-exif.png",
        lambda: h.png_many_text_chunks(h.kit_png(), 5000, 3),
        held(),
    ),
    Item("meta/webp-xmp-4mb.webp", lambda: h.webp_huge_xmp(_kit(), 4), held()),
    # -- keys: each decided or refused, under its own tenant's prefix only
    Item(NFC, BLANK, APPROVED_EMPTY),
    Item(NFD, BLANK, APPROVED_EMPTY),
    Item("keys/with space + plus.png", BLANK, APPROVED_EMPTY),
    Item("keys/percent%2Fslash.png", BLANK, APPROVED_EMPTY),
    Item("keys/percent%252F %20twice.png", BLANK, APPROVED_EMPTY),
    Item(_long_path("l", 1024), BLANK, APPROVED_EMPTY),
    Item(_long_path("é", 1024), BLANK, APPROVED_EMPTY),
    Item(f"keys/../../{VICTIM}/dot-dot.png", BLANK, refused("unsafe_key")),
    Item(f"../{VICTIM}/dot-dot-first.png", BLANK, refused("unsafe_key")),
    Item(f"keys/%2e%2e/%2E%2E/{VICTIM}/encoded.png", BLANK, refused("unsafe_key")),
    Item(f"keys/\uff0e\uff0e/\uff0e\uff0e/{VICTIM}/full-width.png", BLANK, refused("unsafe_key")),
    Item(f"keys\\..\\..\\{VICTIM}\\backslash.png", BLANK, refused("unsafe_key")),
    Item("keys/double//slash.png", BLANK, refused("unsafe_key")),
    Item("keys/./dot.png", BLANK, refused("unsafe_key")),
    Item("keys/folder/", BLANK, refused("unsafe_key")),
    # Not attributable to any tenant: refused, kept under rejected/_unattributed/.
    Item(f"incoming/../{VICTIM}/x.png", BLANK, refused("no_tenant_in_key"), tenant=None),
    Item(
        "incoming/No_Tenant/" + "n" * 1000 + ".png",
        BLANK,
        refused("no_tenant_in_key"),
        tenant=None,
    ),
)


def _build(item: Item) -> bytes:
    return h.blank_png(_key(item)) if item.build is BLANK else item.build()


def _key(item: Item) -> str:
    return item.path if item.tenant is None else f"incoming/{item.tenant}/{item.path}"


@dataclass
class Outcome:
    item: Item
    data: bytes
    record: AssetModel
    places: list[tuple[str, str]]  # (bucket, key) holding these exact bytes


@pytest.fixture(scope="module")
def world(local_stack: Any) -> dict[str, Any]:
    # Given a tenant with one consented person, and a second, empty tenant
    registry = registry_service()
    registry.create_tenant(TenantPolicy(tenant=TENANT))
    registry.create_tenant(TenantPolicy(tenant=VICTIM))
    portrait = (FACES / "enroll" / "obama" / "obama-portrait.jpg").read_bytes()
    subject = registry.enrol_subject(TENANT, "Person A", [portrait], biometric_consent=True)
    registry.grant_consent(TENANT, subject, ["web"], DEMO_NOW.replace(month=1, day=1), None)
    s3 = local_stack.client("s3")
    out = local_stack.outputs
    buckets = {
        "uploads": out["UploadsBucketName"],
        "library": out["LibraryBucketName"],
        "quarantine": out["QuarantineBucketName"],
    }
    # When the whole corpus is uploaded at once and the queues drained once
    corpus = {_key(item): (item, _build(item)) for item in CORPUS}
    assert len(corpus) == len(CORPUS), "two corpus items share a key"
    assert len({data for _, data in corpus.values()}) == len(CORPUS), "two items share bytes"
    for key, (item, data) in corpus.items():
        extra = {"ContentType": item.content_type} if item.content_type else {}
        s3.put_object(
            Bucket=buckets["uploads"], Key=key, Body=data, Metadata={"purpose": "web"}, **extra
        )
    report = local_stack.drain(timeout_s=300)
    records = {r.source_key: r for t in (TENANT, "_unattributed") for r in _records(t)}
    sizes = {len(data) for _, data in corpus.values()}
    objects = {name: _objects_sized(s3, bucket, sizes) for name, bucket in buckets.items()}
    outcomes = {}
    for key, (item, data) in corpus.items():
        places = [
            (bucket, k)
            for name, bucket in buckets.items()
            for k, body in objects[name].items()
            if body == data
        ]
        outcomes[key] = Outcome(item, data, records[key], places)
    return {
        "stack": local_stack,
        "s3": s3,
        "buckets": buckets,
        "report": report,
        "subject": subject,
        "outcomes": outcomes,
        "objects": objects,
    }


def _records(tenant: str) -> list[AssetModel]:
    return list(AssetModel.scan(AssetModel.tenant == tenant))


def _objects_sized(s3: Any, bucket: str, sizes: set[int]) -> dict[str, bytes]:
    """Every object of ``bucket`` (whatever its key) of one of ``sizes``, read."""
    keys = [
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for obj in page.get("Contents", [])
        if obj["Size"] in sizes
    ]
    return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def test_the_batch_survives_every_item(world: dict[str, Any]) -> None:
    # Then no invocation failed and no message was returned or dead-lettered
    report = world["report"]
    assert (report.failures, report.dead_lettered, report.errors) == (0, 0, [])
    stack = world["stack"]
    assert stack.runtime.queue_depth(stack.outputs["IngestDeadLetterQueueUrl"]) == 0


@pytest.mark.parametrize("key", [_key(item) for item in CORPUS])
def test_each_item_is_decided_as_the_table_says(world: dict[str, Any], key: str) -> None:
    outcome: Outcome = world["outcomes"][key]
    record, expect = outcome.record, outcome.item.expect
    assert record.status == expect.status, (record.status, record.reasons)
    if expect.status == "rejected":
        assert set(record.reasons) == set(expect.reasons)
    elif expect.status == "quarantined":
        # the unenrolled face was found, in the frame it is in
        assert expect.reasons <= set(record.reasons)
        unknown = [f["frame"] for f in record.faces if f["subject_id"] is None]
        assert unknown == [expect.face_frame]
    else:
        matched = [f for f in record.faces if f["subject_id"] == world["subject"]]
        assert len(matched) == expect.consented_faces == len(record.faces)


@pytest.mark.parametrize("key", [_key(item) for item in CORPUS])
def test_each_original_is_kept_byte_identical_in_one_place_under_its_tenant(
    world: dict[str, Any], key: str
) -> None:
    outcome: Outcome = world["outcomes"][key]
    record = outcome.record
    rejected = record.status == "rejected"
    if rejected:
        # Then the exact bytes are in exactly the place the record names, and only there
        assert outcome.places == [(record.dest_bucket, record.dest_key)]
    else:
        # Then a scanned upload's exact bytes are kept privately under originals/, and
        # elsewhere only where a published form (this one's, or another item's with
        # its metadata dropped) is exactly these bytes ...
        quarantine = world["buckets"]["quarantine"]
        original = (quarantine, f"originals/{record.tenant}/{record.asset_id}")
        assert original in outcome.places
        digest = hashlib.sha256(outcome.data).hexdigest()
        published_as = {
            (o.record.dest_bucket, o.record.dest_key)
            for o in world["outcomes"].values()
            if o.record.published_sha256 == digest
        }
        assert set(outcome.places) <= {original} | published_as
        # ... and the place holds the bytes whose SHA-256 the decision recorded
        body = world["s3"].get_object(Bucket=record.dest_bucket, Key=record.dest_key)["Body"]
        assert hashlib.sha256(body.read()).hexdigest() == record.published_sha256
    prefix = f"rejected/{record.tenant}/" if rejected else f"{record.tenant}/"
    assert record.dest_key.startswith(prefix)
    # And the place is a plain key: no segment a path resolver would climb out with
    rest = record.dest_key[len(prefix) :]
    assert all(part not in ("", ".", "..") for part in rest.replace("\\", "/").split("/"))
    # And it is the uploaded name as it was (NFD stays NFD, %2F stays %2F), unless
    # that name was unsafe or not attributable: then the asset id names it
    item = outcome.item
    if "unsafe_key" in item.expect.reasons or item.tenant is None:
        assert rest == f"{UNSAFE_KEYS}/{record.asset_id}"
    else:
        assert rest == item.path == record.path
    # And a refused key keeps its original name on record
    assert record.source_key == key


def test_nothing_reaches_the_other_tenant(world: dict[str, Any]) -> None:
    # Then no object and no decision exists under the prefixes the traversal keys aimed at
    s3, buckets = world["s3"], world["buckets"]
    for bucket, prefix in (
        (buckets["uploads"], f"incoming/{VICTIM}/"),
        (buckets["library"], f"{VICTIM}/"),
        (buckets["quarantine"], f"{VICTIM}/"),
        (buckets["quarantine"], f"rejected/{VICTIM}/"),
        (buckets["quarantine"], f"originals/{VICTIM}/"),
    ):
        assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["KeyCount"] == 0
    assert _records(VICTIM) == []


def test_a_polyglot_is_never_served_as_what_its_uploader_claimed(world: dict[str, Any]) -> None:
    # Given a GIF+HTML uploaded as text/html and a JPEG+ZIP as application/zip
    s3 = world["s3"]
    for path in ("poly/gif-plus-html.gif", "poly/jpeg-plus-zip.jpg"):
        record = world["outcomes"][f"incoming/{TENANT}/{path}"].record
        # Then their placed copies are opaque bytes, not a page or an archive
        head = s3.head_object(Bucket=record.dest_bucket, Key=record.dest_key)
        assert head["ContentType"] == "application/octet-stream"
    record = world["outcomes"][f"incoming/{TENANT}/poly/png-named.jpg"].record
    head = s3.head_object(Bucket=record.dest_bucket, Key=record.dest_key)
    assert head["ContentType"] == "image/jpeg"  # an image type is kept as given


def test_the_conservation_law_holds_for_both_tenants(world: dict[str, Any]) -> None:
    check = conservation_service()
    report = check.check(TENANT)
    assert report.holds, report.violations
    attributed = [i for i in CORPUS if i.tenant == TENANT]
    assert report.decisions == len(attributed)
    counts = {s: sum(i.expect.status == s for i in attributed) for s in ("approved", "rejected")}
    assert (report.library, report.rejected) == (counts["approved"], counts["rejected"])
    assert report.quarantine == len(attributed) - counts["approved"] - counts["rejected"]
    assert check.check(VICTIM).holds


# -- HEIC and TIFF: the published object holds only what was scanned (docs/formats.md)


def _published(world: dict[str, Any], path: str, bucket: str) -> tuple[Outcome, bytes, str]:
    """The item's outcome, its published object's bytes and Content-Type, in ``bucket``."""
    outcome: Outcome = world["outcomes"][f"incoming/{TENANT}/{path}"]
    record = outcome.record
    assert record.dest_bucket == world["buckets"][bucket]
    found = world["s3"].get_object(Bucket=record.dest_bucket, Key=record.dest_key)
    return outcome, found["Body"].read(), found["ContentType"]


@pytest.mark.parametrize(
    ("path", "bucket", "size"),
    [
        ("heif/obama-iphone.heic", "library", (469, 900)),
        ("heif/stranger-iphone.heic", "quarantine", (630, 374)),
        ("heif/face-only-in-second.heic", "library", (480, 360)),
    ],
)
def test_a_heic_is_published_as_a_jpeg_of_its_scanned_primary_image_only(
    world: dict[str, Any], path: str, bucket: str, size: tuple[int, int]
) -> None:
    # Given a HEIC with a thumbnail (and, for one, a second image with a face) that was decided
    outcome, body, content_type = _published(world, path, bucket)
    # Then what was placed is a JPEG of the primary image, upright, and nothing else:
    # no thumbnail, no second image, no EXIF beyond the allowlist
    with Image.open(io.BytesIO(body)) as im:
        assert (im.format, im.size, getattr(im, "n_frames", 1)) == ("JPEG", size, 1)
        assert set(im.getexif()) <= {0x8298}
    assert body.count(b"\xff\xd8\xff") == 1 and body.endswith(b"\xff\xd9")
    # And it is the published form the scan decoded, byte for byte
    assert body == published_form(outcome.data)
    if outcome.item.content_type == "image/heic":
        assert content_type == "image/jpeg"
    # And what was left out is real: the upload holds a thumbnail (and a second image)
    upload = pi_heif.open_heif(io.BytesIO(outcome.data))
    assert upload.info["thumbnails"]
    assert len(upload) == (2 if "second" in path else 1)


@pytest.mark.parametrize(
    ("path", "bucket"),
    [("tiff/obama-on-page-3.tif", "library"), ("tiff/stranger-on-page-3.tif", "quarantine")],
)
def test_a_tiff_is_published_with_exactly_the_pages_it_was_scanned_in(
    world: dict[str, Any], path: str, bucket: str
) -> None:
    # Given a three-page TIFF with a face only on page 3, decided by that face
    outcome, body, content_type = _published(world, path, bucket)
    assert [f["frame"] for f in outcome.record.faces] == [2]
    # Then the placed object is a TIFF of the same three pages, pixel for pixel, and no more
    assert content_type == "image/tiff"
    with Image.open(io.BytesIO(outcome.data)) as upload, Image.open(io.BytesIO(body)) as placed:
        assert placed.format == "TIFF" and placed.n_frames == upload.n_frames == 3
        for page in range(3):
            upload.seek(page)
            placed.seek(page)
            assert np.array_equal(
                np.asarray(placed.convert("RGB")), np.asarray(upload.convert("RGB"))
            )
            assert 330 not in placed.tag_v2  # no SubIFDs
    assert body == published_form(outcome.data)
