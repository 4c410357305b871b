"""Invariant I3, every pixel scanned: what is published is exactly what was scanned.

Real face photographs (``tests.conftest.FACES``) hidden where the old gate
never looked: in a JPEG's EXIF thumbnail, in a PNG's alpha channel. Each
test runs the ingest use-case with the production engine (dlib) against
in-memory stores, then reads what it published.
"""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from PIL import ExifTags, Image

from quitclaim.config import Settings
from quitclaim.domain.models import AssetStatus, TenantPolicy
from quitclaim.domain.records import AssetRecord
from quitclaim.domain.registry import Page
from quitclaim.faces import published as published_forms
from quitclaim.faces.dlib_engine import DlibFaceEngine
from quitclaim.faces.gallery import GalleryCache
from quitclaim.faces.imaging import decode_image
from quitclaim.usecases.asset_decisions import Placement
from quitclaim.usecases.conservation import ConservationCheck
from quitclaim.usecases.scan_asset import ScanAsset
from quitclaim.usecases.uploads import ScanRequest
from tests.conftest import FACES
from tests.unit.fakes import (
    FakeAssets,
    FakeConsents,
    FakeStore,
    FakeSubjects,
    FakeTenants,
    FixedClock,
)

UP, LIB, QUA = "uploads", "library", "quarantine"
NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)
PORTRAIT = FACES / "uploads" / "kit-closeup.jpg"


class ListingStore(FakeStore):
    """FakeStore plus the listing the conservation checker reads."""

    def keys(self, bucket: str, prefix: str) -> list[str]:
        return sorted(k for (b, k) in self.objects if b == bucket and k.startswith(prefix))


class PagedAssets(FakeAssets):
    """FakeAssets plus the one-page listing the conservation checker reads."""

    def page(self, tenant: str, **_: Any) -> Page:
        return Page(tuple(r for (t, _), r in self.records.items() if t == tenant))


@pytest.fixture(scope="module")
def engine() -> DlibFaceEngine:
    return DlibFaceEngine()


class World:
    """Given: tenant 'acme' with an empty gallery (every face is an unknown face)."""

    def __init__(self, engine: DlibFaceEngine) -> None:
        self.settings = Settings(
            uploads_bucket=UP, library_bucket=LIB, quarantine_bucket=QUA, region="eu-central-1"
        )
        self.store = ListingStore()
        self.assets = PagedAssets()
        self.clock = FixedClock(NOW)
        self.consents = FakeConsents([])
        self.scan = ScanAsset(
            settings=self.settings,
            engine_factory=lambda: engine,
            store=self.store,
            tenants=FakeTenants({"acme": TenantPolicy("acme")}, {"acme": 1}),
            subjects=FakeSubjects(),
            consents=self.consents,
            assets=self.assets,
            clock=self.clock,
            galleries=GalleryCache(),
            published_forms=published_forms,
        )

    def ingest(self, path: str, data: bytes) -> AssetRecord:
        key = f"incoming/acme/{path}"
        self.store.objects[(UP, key)] = (data, {})
        result = self.scan(ScanRequest(UP, key, "v1", "etag"))
        record = self.assets.get("acme", result.asset_id)
        assert record is not None
        return record

    def published(self, path: str) -> bytes | None:
        found = self.store.objects.get((LIB, f"acme/{path}"))
        return None if found is None else found[0]

    def conservation(self) -> ConservationCheck:
        return ConservationCheck(
            assets=self.assets,
            consents=self.consents,
            store=self.store,
            clock=self.clock,
            uploads_bucket=UP,
            library_bucket=LIB,
            quarantine_bucket=QUA,
        )


@pytest.fixture
def world(engine: DlibFaceEngine) -> Iterator[World]:
    yield World(engine)


# -- fixtures built from the real photographs ---------------------------------


def face_free_jpeg(width: int = 800, height: int = 600) -> bytes:
    """A smooth colour gradient: no face for any detector."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height, (x + y) * 127 // (width + height)], -1)
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(out, "JPEG", quality=90)
    return out.getvalue()


def portrait_thumbnail(max_side: int = 240) -> bytes:
    with Image.open(PORTRAIT) as im:
        im = im.convert("RGB")
        im.thumbnail((max_side, max_side))
        out = io.BytesIO()
        im.save(out, "JPEG", quality=85)
    return out.getvalue()


def with_exif_thumbnail(jpeg: bytes, thumbnail: bytes) -> bytes:
    """``jpeg`` with an APP1 EXIF block whose IFD1 carries ``thumbnail`` (as cameras write)."""
    ifd0 = struct.pack("<H", 1) + struct.pack("<HHII", 0x0112, 3, 1, 1) + struct.pack("<I", 26)
    thumb_at = 26 + 2 + 2 * 12 + 4
    ifd1 = (
        struct.pack("<H", 2)
        + struct.pack("<HHII", 0x0201, 4, 1, thumb_at)
        + struct.pack("<HHII", 0x0202, 4, 1, len(thumbnail))
        + struct.pack("<I", 0)
    )
    tiff = b"II*\x00" + struct.pack("<I", 8) + ifd0 + ifd1 + thumbnail
    payload = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + app1 + jpeg[2:]


def face_in_alpha_png() -> bytes:
    """RGB all black; the portrait drawn in alpha (opaque where it is dark)."""
    with Image.open(PORTRAIT) as im:
        grey = np.asarray(im.convert("L"))
    rgba = np.zeros((*grey.shape, 4), dtype=np.uint8)
    rgba[..., 3] = 255 - grey
    out = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(out, "PNG")
    return out.getvalue()


# -- the EXIF thumbnail ----------------------------------------------------------


def test_the_thumbnail_fixture_hides_a_face_the_main_image_lacks(engine: DlibFaceEngine) -> None:
    # Given the JPEG built for the next test
    upload = with_exif_thumbnail(face_free_jpeg(), portrait_thumbnail())
    # Then Pillow sees its thumbnail, the thumbnail shows a face, the main image none
    assert Image.open(io.BytesIO(upload)).getexif().get_ifd(ExifTags.IFD.IFD1)
    assert engine.analyze(engine.decode(portrait_thumbnail()))
    assert not engine.analyze(engine.decode(upload))


def test_a_face_only_in_the_exif_thumbnail_is_never_published(world: World) -> None:
    # Given a face-free photograph whose EXIF thumbnail is a portrait
    upload = with_exif_thumbnail(face_free_jpeg(), portrait_thumbnail())
    # When it is ingested
    record = world.ingest("face-in-thumbnail.jpg", upload)
    # Then whatever reached the library carries no thumbnail and no embedded JPEG at all
    published = world.published("face-in-thumbnail.jpg")
    if record.status is AssetStatus.APPROVED:
        assert published is not None
        assert b"\xff\xd8\xff" not in published[2:], "an embedded JPEG was published"
        assert not Image.open(io.BytesIO(published)).getexif().get_ifd(ExifTags.IFD.IFD1)
    else:
        assert published is None


# -- the alpha channel -------------------------------------------------------------


def test_a_face_drawn_in_alpha_is_decoded_on_white_and_on_black(engine: DlibFaceEngine) -> None:
    # Given an RGBA PNG whose colour is all black and whose face is in alpha
    upload = face_in_alpha_png()
    # When it is decoded
    image = decode_image(upload, max_bytes=10**8, max_pixels=10**8, max_frames=10)
    # Then one view is the picture composited on white (the face shows) ...
    white = [f for f in image.frames if f.max() > 200]
    assert white, "no view shows the picture against white"
    # ... and the engine finds the face there
    assert engine.analyze(image)


def test_a_face_drawn_in_alpha_is_not_approved_as_face_free(world: World) -> None:
    # Given the same RGBA PNG
    # When it is ingested
    record = world.ingest("face-in-alpha.png", face_in_alpha_png())
    # Then its face is found, and it is held (an unknown face), not published
    assert record.faces
    assert record.status is not AssetStatus.APPROVED
    assert world.published("face-in-alpha.png") is None


# -- what is published is what was recorded -----------------------------------------


def test_the_published_bytes_hash_to_the_recorded_sha256(world: World) -> None:
    # Given a face-free photograph (with a thumbnail, so the published copy is not the upload)
    upload = with_exif_thumbnail(face_free_jpeg(), portrait_thumbnail())
    # When it is approved and published
    record = world.ingest("landscape.jpg", upload)
    assert record.status is AssetStatus.APPROVED
    published = world.published("landscape.jpg")
    assert published is not None
    # Then the decision records the SHA-256 of exactly the published bytes
    assert record.published_sha256 == hashlib.sha256(published).hexdigest()
    # And the conservation law holds, the original counted once, privately
    report = world.conservation().check("acme")
    assert report.violations == ()
    assert (report.library, report.originals) == (1, 1)


def test_the_checker_reports_a_replaced_library_object(world: World) -> None:
    # Given an approved, published image
    world.ingest("landscape.jpg", face_free_jpeg())
    assert world.conservation().check("acme").holds
    # When someone replaces the library object's bytes (the metadata left as it was)
    _, meta = world.store.objects[(LIB, "acme/landscape.jpg")]
    world.store.objects[(LIB, "acme/landscape.jpg")] = (face_in_alpha_png(), meta)
    # Then the checker reports it under its own rule
    report = world.conservation().check("acme")
    assert [v.rule for v in report.violations] == ["published_bytes_differ"]
    assert report.violations[0].location == "acme/landscape.jpg"


def test_the_original_is_kept_privately_and_never_in_the_library(world: World) -> None:
    # Given a face-free photograph with a thumbnail
    upload = with_exif_thumbnail(face_free_jpeg(), portrait_thumbnail())
    # When it is approved
    record = world.ingest("landscape.jpg", upload)
    # Then the untouched original sits in the quarantine bucket under originals/, and nowhere
    # readable by the library's reader
    originals = [(b, k) for (b, k), (data, _) in world.store.objects.items() if data == upload]
    assert originals == [(QUA, f"originals/acme/{record.asset_id}")]
    assert all(k.startswith("acme/") for (b, k) in world.store.objects if b == LIB)


def test_every_frame_of_an_animation_is_scanned_with_its_transparency(
    engine: DlibFaceEngine,
) -> None:
    # Given an animated PNG: an opaque face-free first frame, then the face drawn in alpha
    with Image.open(io.BytesIO(face_in_alpha_png())) as hidden:
        second = hidden.convert("RGBA")
    first = Image.new("RGBA", second.size, (90, 140, 200, 255))
    out = io.BytesIO()
    first.save(out, "PNG", save_all=True, append_images=[second], duration=100, loop=0)
    # When it is decoded and analysed
    image = decode_image(out.getvalue(), max_bytes=10**8, max_pixels=10**8, max_frames=10)
    # Then the first frame is one view, the second three, and the face is found once,
    # in the second frame of the file
    assert (image.meta["frames"], image.meta["views"]) == ("2", "1,3")
    assert [obs.frame for obs in engine.analyze(image)] == [1]


def test_deleting_an_asset_deletes_its_original_and_the_law_still_holds(world: World) -> None:
    # Given an approved image, its original kept under originals/
    record = world.ingest("landscape.jpg", face_free_jpeg())
    original = (QUA, f"originals/acme/{record.asset_id}")
    assert original in world.store.objects
    # When a reviewer deletes it (the placement the API uses)
    placement = Placement(
        store=world.store, assets=world.assets, clock=world.clock, originals=(QUA, "originals/")
    )
    gone = replace(record, status=AssetStatus.DELETED, reasons=(), dest_bucket="", dest_key="")
    placement.transition(record, gone)
    # Then the published copy and the original are both gone, and the checker agrees
    assert original not in world.store.objects
    assert (LIB, "acme/landscape.jpg") not in world.store.objects
    report = world.conservation().check("acme")
    assert report.holds, report.violations
    assert (report.library, report.originals) == (0, 0)


def test_the_checker_reports_a_missing_or_stray_original(world: World) -> None:
    # Given an approved image whose original was removed, and a stray object under originals/
    record = world.ingest("landscape.jpg", face_free_jpeg())
    key = f"originals/acme/{record.asset_id}"
    world.store.objects[(QUA, "originals/acme/not-an-asset")] = world.store.objects.pop((QUA, key))
    # Then both are reported
    found = [(v.rule, v.location) for v in world.conservation().check("acme").violations]
    assert found == [("original", key), ("orphan", "originals/acme/not-an-asset")]


def test_a_face_seen_in_several_views_of_a_frame_is_one_face(engine: DlibFaceEngine) -> None:
    # Given the portrait as a half-transparent RGBA PNG (visible in all three views)
    with Image.open(PORTRAIT) as im:
        rgba = im.convert("RGBA")
    rgba.putalpha(160)
    out = io.BytesIO()
    rgba.save(out, "PNG")
    image = decode_image(out.getvalue(), max_bytes=10**8, max_pixels=10**8, max_frames=10)
    assert image.meta["views"] == "3"
    # When it is analysed / Then its one face is reported once, in frame 0
    assert [obs.frame for obs in engine.analyze(image)] == [0]
