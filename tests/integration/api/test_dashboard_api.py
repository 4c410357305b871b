"""What the review dashboard needs from the API: its files, who am I, people, overview, previews.

The page itself is tested in a browser (tests/browser); here the routes it
calls, through both transports, against the documented schemas.
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass
from typing import Any

import jsonschema
import pytest
from PIL import Image, ImageOps

from quitclaim.api.openapi import document
from quitclaim.config import get_settings
from tests.integration.api.conftest import (
    Api,
    Buckets,
    Tenant,
    assert_error,
    asset_id_of,
    make_tenant,
    photo,
)

pytestmark = pytest.mark.integration


def _valid(payload: Any, component: str) -> None:
    schema = {"$ref": f"#/components/schemas/{component}", "components": document()["components"]}
    jsonschema.validate(payload, schema, cls=jsonschema.Draft202012Validator)


# ------------------------------------------------------------------ the page and its files


def test_health_moved_to_its_own_path(api: Api) -> None:
    reply = api.call("GET", "/health")
    assert reply.status == 200 and reply.json == {"status": "ok"}


def test_the_page_is_served_at_the_root_with_a_strict_policy(api: Api) -> None:
    # When a browser opens the API's root, with no key
    reply = api.call("GET", "/")
    # Then it gets the dashboard's HTML, which may run only this origin's scripts
    assert reply.status == 200
    assert reply.header("Content-Type") == "text/html; charset=utf-8"
    assert b"<title>Quitclaim</title>" in reply.body
    policy = reply.header("Content-Security-Policy") or ""
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert reply.header("X-Content-Type-Options") == "nosniff"
    assert reply.header("X-Frame-Options") == "DENY"
    # And it names no other host: everything is bundled
    assert not re.search(rb"(src|href)=\"(https?:)?//", reply.body)
    # And with the stack's user pool it names the app client, and may reach only the
    # pool's sign-in origin besides its own (the token exchange; docs/sign-in.md)
    settings = get_settings()
    assert f'data-client-id="{settings.user_pool_client_id}"'.encode() in reply.body
    assert f"connect-src 'self' {settings.user_pool_domain_url};" in policy


def test_every_file_the_page_loads_is_served_with_its_type(api: Api) -> None:
    page = api.call("GET", "/").body.decode()
    referenced = re.findall(r'(?:src|href)="(/ui/[^"]+)"', page)
    assert {"/ui/app.js", "/ui/i18n.js", "/ui/app.css", "/ui/icon.svg"} <= set(referenced)
    types = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}
    for path in referenced:
        reply = api.call("GET", path)
        assert reply.status == 200, path
        assert (reply.header("Content-Type") or "").startswith(types[path.rsplit(".", 1)[1]])
        assert reply.header("X-Content-Type-Options") == "nosniff"


@pytest.mark.parametrize(
    "path", ["/ui/nothing.js", "/ui/index.html", "/ui/..%2Fstatic.py", "/ui/app.py", "/ui/APP.JS"]
)
def test_nothing_else_is_served_from_ui(api: Api, path: str) -> None:
    assert_error(api.call("GET", path), 404, "not_found")


# ------------------------------------------------------------------ a tenant's data


@dataclass
class World:
    tenant: Tenant
    subjects: dict[str, str]
    quarantined: str
    rejected: str
    deleted: str


@pytest.fixture(scope="module")
def world(local_stack: Any, chalice_api: Api) -> World:
    # Given people in every consent state (the stack's clock stands at 2026-11-26 12:00 UTC)
    tenant = make_tenant("api-dashboard")
    api, key = chalice_api, tenant.admin
    windows = {
        "Valid Val": ("2026-01-01", "2027-12-31"),
        "Soon Sam": ("2026-01-01", "2026-12-06"),  # in 10 days
        "Later Lee": ("2026-01-01", "2027-01-31"),  # in 66 days
        "Old Olga": ("2025-10-01", "2026-10-01"),
        "Gone Gus": ("2026-01-01", "2026-12-10"),  # withdrawn below
    }
    subjects = {}
    for name in [*windows, "None Nina"]:
        created = api.call("POST", "/subjects", key=key, json_body={"display_name": name})
        subjects[name] = created.json["subject_id"]
    for name, (start, end) in windows.items():
        consent = api.call(
            "POST",
            f"/subjects/{subjects[name]}/consents",
            key=key,
            json_body={
                "purposes": ["web"],
                "valid_from": start,
                "expires_at": end,
                "signer": name,
                "form_version": "1",
            },
        )
        assert consent.status == 201, consent.body
        if name == "Gone Gus":
            cid = consent.json["consent_id"]
            api.call("POST", f"/subjects/{subjects[name]}/consents/{cid}/revoke", key=key)
    # And one quarantined upload (an unknown face), one that cannot be decoded, and one
    # a reviewer deleted
    buckets = Buckets(local_stack, tenant.id)
    buckets.upload("stranger.png", photo("uploads", "stranger-portrait.png"))
    buckets.upload("broken.jpg", b"\xff\xd8\xff not really a jpeg")
    buckets.upload("to-delete.png", photo("uploads", "stranger-portrait.png"))
    deleted = asset_id_of(api, key, "to-delete.png")
    gone = api.call(
        "DELETE",
        f"/assets/{deleted}",
        key=tenant.reviewer,
        json_body={"justification": "duplicate upload"},
    )
    assert gone.status == 204, gone.body
    return World(
        tenant,
        subjects,
        asset_id_of(api, key, "stranger.png"),
        asset_id_of(api, key, "broken.jpg"),
        deleted,
    )


def test_who_am_i_names_the_key_never_its_secret(api: Api, world: World) -> None:
    reply = api.call("GET", "/me", key=world.tenant.reviewer)
    assert reply.status == 200
    assert reply.json["tenant"] == world.tenant.id
    assert reply.json["role"] == "reviewer" and reply.json["label"] == "reviewer 1"
    assert world.tenant.reviewer not in reply.body.decode()
    _valid(reply.json, "Principal")


def test_people_carry_a_summary_of_their_consent(api: Api, world: World) -> None:
    # When a reviewer lists people
    reply = api.call("GET", "/people?limit=100", key=world.tenant.reviewer)
    assert reply.status == 200, reply.body
    _valid(reply.json, "PersonPage")
    by_name = {p["subject"]["display_name"]: p for p in reply.json["items"]}
    # Then each has the status the server's clock gives it
    assert {name: p["consent_status"] for name, p in by_name.items()} == {
        "Valid Val": "valid",
        "Soon Sam": "expiring",
        "Later Lee": "valid",
        "Old Olga": "expired",
        "Gone Gus": "withdrawn",
        "None Nina": "none",
    }
    assert by_name["Soon Sam"]["valid_until"] == "2026-12-06T00:00:00Z"
    assert by_name["Old Olga"]["valid_until"] is None
    # And their consents with history, as listConsents gives them
    assert [c["status"] for c in by_name["Gone Gus"]["consents"]] == ["revoked"]
    assert [e["event"] for e in by_name["Gone Gus"]["consents"][0]["history"]] == [
        "granted",
        "revoked",
    ]


def test_the_overview_counts_this_month_and_the_coming_expiries(api: Api, world: World) -> None:
    reply = api.call("GET", "/overview?months=3", key=world.tenant.reviewer)
    assert reply.status == 200, reply.body
    _valid(reply.json, "OverviewReport")
    body = reply.json
    # Then three calendar months, this one last, with this tenant's images only
    assert [m["month"] for m in body["months"]] == ["2026-09", "2026-10", "2026-11"]
    november = body["months"][-1]
    assert november["scanned"] == 3 and november["faces"] == 2
    assert (november["quarantined"], november["rejected"], november["approved"]) == (2, 1, 0)
    assert november["erased"] == 1
    assert body["months"][0] == {
        "month": "2026-09",
        "scanned": 0,
        "faces": 0,
        "approved": 0,
        "quarantined": 0,
        "rejected": 0,
        "erased": 0,
    }
    assert body["volumes_complete"] is True
    # And the consents ending within 30/60/90 days, a withdrawn one not counted
    assert body["expiring"] == {"30": 1, "60": 1, "90": 2}
    # And the deployment's dead-letter queues, by name (room for more queues later)
    assert body["dead_letters"] == {
        "ingest": 0,
        "bulk": 0,
        "recheck": 0,
        "purge": 0,
        "async": 0,
        "inbound": 0,
        "events": 0,
        "webhooks": 0,
    }


def test_the_overview_refuses_a_silly_window(api: Api, world: World) -> None:
    reply = api.call("GET", "/overview?months=0", key=world.tenant.reviewer)
    assert_error(reply, 400, "validation_failed", "months")


def test_a_preview_is_a_small_jpeg_in_the_boxes_coordinates(api: Api, world: World) -> None:
    # When a reviewer asks for the preview of the quarantined image
    reply = api.call("GET", f"/assets/{world.quarantined}/thumbnail", key=world.tenant.reviewer)
    assert reply.status == 200, reply.body
    _valid(reply.json, "Thumbnail")
    # Then it is a JPEG of at most 640 px a side
    preview = Image.open(io.BytesIO(base64.b64decode(reply.json["image_base64"])))
    assert preview.format == "JPEG" and max(preview.size) <= 640
    # And width/height are the oriented original's: the space its face boxes are in
    original = ImageOps.exif_transpose(
        Image.open(io.BytesIO(photo("uploads", "stranger-portrait.png")))
    )
    assert (reply.json["width"], reply.json["height"]) == original.size
    asset = api.call("GET", f"/assets/{world.quarantined}", key=world.tenant.reviewer).json
    left, top, right, bottom = asset["faces"][0]["box"]
    assert 0 <= left < right <= original.width and 0 <= top < bottom <= original.height


def test_a_rejected_upload_has_no_preview(api: Api, world: World) -> None:
    reply = api.call("GET", f"/assets/{world.rejected}/thumbnail", key=world.tenant.reviewer)
    assert_error(reply, 409, "no_preview")


def test_a_deleted_image_has_no_preview(api: Api, world: World) -> None:
    reply = api.call("GET", f"/assets/{world.deleted}/thumbnail", key=world.tenant.reviewer)
    assert_error(reply, 404, "not_found")
