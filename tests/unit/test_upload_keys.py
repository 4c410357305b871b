"""Upload keys that could lead a placed object out of its tenant's prefix, and served types."""

from __future__ import annotations

import posixpath
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quitclaim.domain.models import AssetStatus
from quitclaim.usecases.uploads import (
    UNSAFE_KEYS,
    safe_path,
    served_type,
    split_upload_key,
)
from tests.unit.fakes import fake_image
from tests.unit.test_scan_asset import QUA, World


@pytest.fixture
def world() -> World:
    return World()


@pytest.mark.parametrize(
    "path",
    [
        "../other/x.jpg",
        "a/../../other/x.jpg",
        "a/./x.jpg",
        "a//x.jpg",
        "/x.jpg",
        "folder/",
        "a/%2e%2e/%2E%2E/other/x.jpg",
        "a/%2F%2Fx.jpg",
        "a/\uff0e\uff0e/other/x.jpg",
        "a\\..\\..\\other\\x.jpg",
        "a/line\nbreak.jpg",
        "a/nul\x00.jpg",
        f"{UNSAFE_KEYS}/abc",
    ],
)
def test_a_path_that_could_climb_or_collide_is_unsafe(path: str) -> None:
    assert not safe_path(path)


@pytest.mark.parametrize(
    "path",
    [
        "x.jpg",
        "zomer 2026/Straße été + meer.jpg",
        "a/percent%2Fslash.jpg",
        "a/..hidden/x.jpg",
        "a/x..jpg",
        "é" * 400 + ".jpg",
    ],
)
def test_an_ordinary_path_is_safe(path: str) -> None:
    assert safe_path(path)


_SEGMENT = st.text(alphabet=st.sampled_from(list("ab.%2eE/\\\uff0e é+")), min_size=0, max_size=12)


@given(_SEGMENT)
def test_a_safe_path_resolves_to_itself_inside_the_tenant(path: str) -> None:
    # Rule: whatever resolves dot segments (as written or percent-decoded)
    # finds a safe path exactly where it is, below the tenant's prefix.
    if not safe_path(path):
        return
    for form in (path, unquote(path)):
        resolved = posixpath.normpath(f"tenant/{form}")
        assert resolved == f"tenant/{form}"


@pytest.mark.parametrize(
    "path",
    ["acme/../other/x.jpg", "acme/a//x.jpg", "acme/folder/", "acme/%2e%2e/other/x.jpg"],
)
def test_an_unsafe_key_is_rejected_and_kept_under_its_own_tenant(world: World, path: str) -> None:
    # Given an upload of a real picture under an unsafe key
    data = fake_image((0, 120))
    request = world.upload(path, data)
    # When scanned
    result = world.scan(request)
    # Then it is refused with its reason, its bytes under the tenant's rejected/ prefix
    assert result.status is AssetStatus.REJECTED and result.reasons == ("unsafe_key",)
    assert result.dest_key == f"rejected/acme/{UNSAFE_KEYS}/{result.asset_id}"
    assert world.store.objects[(QUA, result.dest_key)][0] == data
    # And the record keeps the key as it was uploaded
    record = world.assets.get("acme", result.asset_id)
    assert record is not None and record.source_key == request.key


def test_an_unattributable_key_too_long_to_prefix_is_kept_under_an_id(world: World) -> None:
    # Given a 1,024-byte key with no tenant (prefixing it would pass S3's limit)
    key = "No_Tenant/" + "n" * (1024 - len("incoming/No_Tenant/"))
    request = world.upload(key, b"\x89PNG not really")
    assert len(request.key.encode()) == 1024
    # When scanned / Then it is refused, stored under a key S3 accepts
    result = world.scan(request)
    assert result.reasons == ("no_tenant_in_key",)
    assert result.dest_key == f"rejected/_unattributed/{UNSAFE_KEYS}/{result.asset_id}"
    assert world.store.objects[(QUA, result.dest_key)][0] == b"\x89PNG not really"


def test_a_trailing_slash_key_is_still_attributed_to_its_tenant() -> None:
    assert split_upload_key("incoming/acme/folder/", "incoming/") == ("acme", "folder/")
    assert split_upload_key("incoming/acme/", "incoming/") is None


@pytest.mark.parametrize(
    ("given", "served"),
    [
        ("image/jpeg", "image/jpeg"),
        ("IMAGE/PNG; charset=binary", "image/png"),
        ("text/html", "application/octet-stream"),
        ("image/svg+xml", "application/octet-stream"),
        (None, "application/octet-stream"),
    ],
)
def test_only_decoded_image_types_are_served_as_given(given: str | None, served: str) -> None:
    assert served_type(given) == served
