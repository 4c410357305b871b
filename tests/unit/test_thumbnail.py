"""A preview shows the asked asset's own bytes, of the caller's tenant, or nothing.

The asset record names where its bytes are; the object there names its asset
(``quitclaim-asset-id`` metadata, written by every placement). A record whose
place holds another asset's image (a later upload under the same path, a
stale record, a forged key) must not preview that other image.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pytest
from PIL import Image

from quitclaim.domain.errors import NotFound
from quitclaim.domain.models import AssetStatus
from quitclaim.domain.records import AssetRecord
from quitclaim.faces import thumbnails
from quitclaim.usecases.asset_decisions import META_ASSET_ID
from quitclaim.usecases.dashboard import Dashboard, ImageLimits
from tests.unit.fakes import FakeAssets, FakeStore, FixedClock

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def _jpeg(width: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, 20), (120, 80, 40)).save(out, "JPEG")
    return out.getvalue()


def _record(tenant: str, asset_id: str, dest_key: str) -> AssetRecord:
    return AssetRecord(
        tenant=tenant,
        asset_id=asset_id,
        source_bucket="uploads",
        source_key=f"incoming/{dest_key}",
        source_version="v1",
        path=dest_key.split("/", 1)[1],
        purpose="web",
        status=AssetStatus.QUARANTINED,
        reasons=("unknown_face",),
        dest_bucket="quarantine",
        dest_key=dest_key,
        decided_at=NOW,
    )


def _dashboard(store: FakeStore, assets: FakeAssets) -> Dashboard:
    none: Any = None
    return Dashboard(
        registry=none,
        assets=assets,
        activity=none,
        expiries=none,
        store=store,
        clock=FixedClock(),
        limits=ImageLimits(max_bytes=10_000_000, max_pixels=50_000_000, max_frames=1),
        thumbnails=thumbnails,
    )


@pytest.fixture
def world() -> tuple[FakeStore, FakeAssets]:
    store, assets = FakeStore(), FakeAssets()
    # acme's asset "mine" at acme/mine.jpg (its own bytes, 30 px wide)
    store.objects[("quarantine", "acme/mine.jpg")] = (_jpeg(30), {META_ASSET_ID: "mine"})
    assets.records[("acme", "mine")] = _record("acme", "mine", "acme/mine.jpg")
    # acme's asset "stale", whose place now holds another asset's image
    store.objects[("quarantine", "acme/reused.jpg")] = (_jpeg(40), {META_ASSET_ID: "newer"})
    assets.records[("acme", "stale")] = _record("acme", "stale", "acme/reused.jpg")
    # acme's record "crossed" pointing into globex's prefix (the object says "crossed")
    store.objects[("quarantine", "globex/crossed.jpg")] = (_jpeg(50), {META_ASSET_ID: "crossed"})
    assets.records[("acme", "crossed")] = _record("acme", "crossed", "globex/crossed.jpg")
    # and an object that names no asset at all
    store.objects[("quarantine", "acme/bare.jpg")] = (_jpeg(60), {})
    assets.records[("acme", "bare")] = _record("acme", "bare", "acme/bare.jpg")
    return store, assets


def test_the_preview_is_of_the_asked_asset(world: tuple[FakeStore, FakeAssets]) -> None:
    preview = _dashboard(*world).thumbnail("acme", "mine")
    assert (preview.width, preview.height) == (30, 20)


@pytest.mark.parametrize("asset_id", ["stale", "crossed", "bare"])
def test_no_preview_of_bytes_that_are_not_the_asked_assets(
    world: tuple[FakeStore, FakeAssets], asset_id: str
) -> None:
    # When a preview is asked for an asset whose place holds other bytes
    # Then it is not found (no other asset's or tenant's image is shown)
    with pytest.raises(NotFound):
        _dashboard(*world).thumbnail("acme", asset_id)
