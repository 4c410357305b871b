"""The review queue: two different reviewers to release; keep and delete are recorded."""

from __future__ import annotations

from typing import Any

import pytest

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


@pytest.fixture(scope="module")
def tenant(local_stack: Any) -> Tenant:
    return make_tenant("api-review")


@pytest.fixture(scope="module")
def buckets(local_stack: Any, tenant: Tenant) -> Buckets:
    return Buckets(local_stack, tenant.id)


def _held(api: Api, tenant: Tenant, buckets: Buckets, path: str) -> str:
    """Upload a portrait of someone not enrolled: it is held for an unknown face."""
    buckets.upload(path, photo("uploads", "stranger-portrait.png"))
    asset_id = asset_id_of(api, tenant.admin, path)
    asset = api.call("GET", f"/assets/{asset_id}", key=tenant.admin).json
    assert (asset["status"], asset["reasons"]) == ("quarantined", ["unknown_face"])
    assert buckets.places(path) == ["quarantine"]
    return asset_id


def test_one_reviewer_alone_cannot_release(api: Api, tenant: Tenant, buckets: Buckets) -> None:
    path = f"release-{api.name}.png"
    asset_id = _held(api, tenant, buckets, path)
    why = {"justification": "model release on file"}
    # When the first reviewer releases
    first = api.call("POST", f"/assets/{asset_id}/release", key=tenant.reviewer, json_body=why)
    # Then it is only a request (202): still quarantined, not in the library
    assert first.status == 202, first.body
    assert first.json["status"] == "quarantined"
    assert first.json["review"]["pending_release"]["justification"] == "model release on file"
    assert buckets.places(path) == ["quarantine"]
    # When the same reviewer "confirms" their own request (with another key of the
    # same person it would be a different key; the rule is per key)
    again = api.call("POST", f"/assets/{asset_id}/release", key=tenant.reviewer, json_body=why)
    # Then 403, and still nothing is published
    assert_error(again, 403, "same_reviewer")
    assert buckets.places(path) == ["quarantine"]
    # When a second, different reviewer confirms
    second = api.call(
        "POST",
        f"/assets/{asset_id}/release",
        key=tenant.second_reviewer,
        json_body={"justification": "checked the release form"},
    )
    # Then it is published: the object moved from quarantine to the library
    assert second.status == 200, second.body
    assert second.json["status"] == "approved" and second.json["reasons"] == []
    assert buckets.places(path) == ["library"]
    released = second.json["review"]["released"]
    assert len(set(released["by"])) == 2 and released["waived"] == ["unknown_face"]
    actions = [h["action"] for h in second.json["history"]]
    assert actions[-2:] == ["release_requested", "released"]
    # And a released asset cannot be "released" again
    assert_error(
        api.call("POST", f"/assets/{asset_id}/release", key=tenant.admin, json_body=why), 409
    )


def test_keep_cancels_a_pending_release(api: Api, tenant: Tenant, buckets: Buckets) -> None:
    path = f"keep-{api.name}.png"
    asset_id = _held(api, tenant, buckets, path)
    api.call(
        "POST",
        f"/assets/{asset_id}/release",
        key=tenant.reviewer,
        json_body={"justification": "looks fine"},
    )
    # When another reviewer decides to keep it
    kept = api.call(
        "POST",
        f"/assets/{asset_id}/keep",
        key=tenant.second_reviewer,
        json_body={"justification": "no release form found"},
    )
    assert kept.status == 200, kept.body
    assert "pending_release" not in kept.json["review"] and kept.json["status"] == "quarantined"
    # Then the earlier request cannot be confirmed any more: a new release is a new request
    again = api.call(
        "POST",
        f"/assets/{asset_id}/release",
        key=tenant.second_reviewer,
        json_body={"justification": "changed my mind"},
    )
    assert again.status == 202 and buckets.places(path) == ["quarantine"]


def test_delete_removes_the_image_and_keeps_a_tombstone(
    api: Api, tenant: Tenant, buckets: Buckets
) -> None:
    path = f"delete-{api.name}.png"
    asset_id = _held(api, tenant, buckets, path)
    reply = api.call(
        "DELETE",
        f"/assets/{asset_id}",
        key=tenant.reviewer,
        json_body={"justification": "erasure request 42"},
    )
    assert reply.status == 204 and reply.body == b""
    assert buckets.places(path) == []
    record = api.call("GET", f"/assets/{asset_id}", key=tenant.admin).json
    assert record["status"] == "deleted"
    assert record["history"][-1]["justification"] == "erasure request 42"


def test_queue_lists_held_assets_with_reasons_and_faces(
    api: Api, tenant: Tenant, buckets: Buckets
) -> None:
    path = f"queue-{api.name}.png"
    asset_id = _held(api, tenant, buckets, path)
    page = api.call("GET", "/assets?reason=unknown_face&limit=100", key=tenant.reviewer).json
    listed = {a["asset_id"]: a for a in page["items"]}
    assert asset_id in listed
    assert all(a["status"] == "quarantined" for a in page["items"])
    faces = listed[asset_id]["faces"]
    assert faces and faces[0]["reason"] == "unknown_face" and len(faces[0]["box"]) == 4
    # Faces carry pseudonymous ids and boxes only: no encodings, no names
    assert not {"encoding", "encodings", "name", "display_name"} & set(faces[0])
