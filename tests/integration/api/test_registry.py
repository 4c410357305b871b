"""Subjects, keys and policy through the API: create, page, change, delete."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from quitclaim.api.schemas import PolicyChanges
from quitclaim.domain.models import TenantPolicy
from tests.integration.api.conftest import Api, Tenant, assert_error, make_tenant

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tenant(local_stack: Any) -> Tenant:
    return make_tenant("api-registry")


def test_subjects_are_paged_with_a_cursor(api: Api, tenant: Tenant) -> None:
    # Given three subjects
    made = {
        api.call("POST", "/subjects", key=tenant.admin, json_body={"display_name": f"P{n}"}).json[
            "subject_id"
        ]
        for n in range(3)
    }
    # When they are listed two at a time
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = api.call("GET", f"/subjects{query}", key=tenant.reviewer).json
        assert len(page["items"]) <= 2
        seen += [s["subject_id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # Then every subject appears exactly once across the pages
    assert made <= set(seen) and len(seen) == len(set(seen))


def test_subject_update_and_delete(api: Api, tenant: Tenant) -> None:
    sid = api.call(
        "POST",
        "/subjects",
        key=tenant.admin,
        json_body={
            "display_name": "Minor Person",
            "date_of_birth": "2015-03-01",
            "guardian": {"name": "Parent Person", "relation": "mother"},
        },
    ).json["subject_id"]
    # When details change, sent fields replace the old ones and null clears one
    changed = api.call(
        "PATCH",
        f"/subjects/{sid}",
        key=tenant.admin,
        json_body={"email": "minor@example.org", "external_ref": "crm-1"},
    )
    assert changed.status == 200, changed.body
    assert changed.json["email"] == "minor@example.org"
    assert changed.json["guardian"] == {
        "name": "Parent Person",
        "email": None,
        "relation": "mother",
    }
    cleared = api.call("PATCH", f"/subjects/{sid}", key=tenant.admin, json_body={"email": None})
    assert cleared.json["email"] is None and cleared.json["external_ref"] == "crm-1"
    # And the name can change but never be null
    assert_error(
        api.call("PATCH", f"/subjects/{sid}", key=tenant.admin, json_body={"display_name": None}),
        400,
        field="display_name",
    )
    # When the subject is deleted
    deleted = api.call("DELETE", f"/subjects/{sid}", key=tenant.admin)
    assert deleted.status == 204 and deleted.body == b""
    # Then it is gone
    assert_error(api.call("GET", f"/subjects/{sid}", key=tenant.admin), 404, "not_found")


def test_policy_changes_are_returned_and_kept(api: Api, tenant: Tenant) -> None:
    changes = {
        "purposes": ["web", "print", "newsletter"],
        "scan_modes": {"products": "off", "events": "detect-only"},
        "match_threshold": 0.45,
    }
    # Given products scanned strictly (tightening: one admin suffices; each transport)
    strict = {"scan_modes": {"products": "detect-only", "events": "detect-only"}}
    assert api.call("PATCH", "/policy", key=tenant.admin, json_body=strict).status == 200
    # (switching a collection's scan off loosens the gate: a second admin confirms it)
    asked = api.call("PATCH", "/policy", key=tenant.admin, json_body=changes)
    assert asked.status == 202, asked.body
    assert api.call("GET", "/policy", key=tenant.reviewer).json["pending_change"]["loosens"] == [
        "scan_modes"
    ]
    second = api.call(
        "POST",
        "/keys",
        key=tenant.admin,
        json_body={"role": "admin", "label": f"second admin {api.name}", "person": "second"},
    ).json["secret"]
    reply = api.call("PATCH", "/policy", key=second, json_body=changes)
    assert reply.status == 200, reply.body
    policy = api.call("GET", "/policy", key=tenant.reviewer).json
    assert "pending_change" not in policy
    assert policy["purposes"] == ["newsletter", "print", "web"]
    assert policy["scan_modes"]["products"] == "off" and policy["scan_modes"]["*"] == "recognize"
    assert policy["match_threshold"] == 0.45
    # A value outside the console's bounds names its field
    too_low = api.call("PATCH", "/policy", key=tenant.admin, json_body={"min_face_px": 5})
    assert_error(too_low, 400, field="min_face_px")
    unknown = api.call("PATCH", "/policy", key=tenant.admin, json_body={"scan_modes": {"x": "on"}})
    assert_error(unknown, 400, field="scan_modes.x")


def test_every_policy_field_can_be_patched() -> None:
    # The request model follows the domain policy (tenant is the key's, never sent)
    fields = {f.name for f in dataclasses.fields(TenantPolicy)} - {"tenant"}
    assert set(PolicyChanges.model_fields) == fields
