"""GET /audit/events and /audit/verify on the real app and the local stack's chain."""

from __future__ import annotations

from typing import Any

import pytest

from quitclaim.bootstrap import api_keys_service, audit_trail_service, onboarding_service
from quitclaim.domain.registry import Role
from quitclaim.usecases.audit_read import AuditReader
from tests.integration.api.conftest import ChaliceApi, assert_error

pytestmark = pytest.mark.integration

TENANT = "api-audit-read"
NAME = "Zed Audit-Secret"


@pytest.fixture(scope="module")
def keys(local_stack: Any, chalice_api: ChaliceApi) -> dict[str, str]:
    # Given a tenant whose admin registered and renamed a person over the API
    first = onboarding_service().create_tenant(TENANT)
    admin = api_keys_service().resolve(first.secret)
    auditor = api_keys_service().create_key(admin, Role.AUDITOR, "audit key", "auditor one")
    reviewer = api_keys_service().create_key(admin, Role.REVIEWER, "review key", "reviewer one")
    created = chalice_api.call(
        "POST", "/subjects", key=first.secret, json_body={"display_name": NAME}
    )
    assert created.status == 201, created.body
    sid = created.json["subject_id"]
    renamed = chalice_api.call(
        "PATCH", f"/subjects/{sid}", key=first.secret, json_body={"display_name": NAME + "2"}
    )
    assert renamed.status == 200, renamed.body
    return {
        "admin": first.secret,
        "admin_id": admin.key_id,
        "auditor": auditor.secret,
        "reviewer": reviewer.secret,
        "subject": sid,
    }


def test_an_auditor_reads_who_did_what_without_names(
    chalice_api: ChaliceApi, keys: dict[str, str]
) -> None:
    # When the auditor lists the tenant's subject events
    reply = chalice_api.call(
        "GET", "/audit/events?action=subject.created&limit=100", key=keys["auditor"]
    )
    # Then the admin's registration is there, naming the admin's key as the actor
    assert reply.status == 200, reply.body
    page = reply.json
    assert page["complete"] is True and page["next_cursor"] is None
    [created] = [e for e in page["items"] if e["subject_id"] == keys["subject"]]
    assert created["actor"] == keys["admin_id"] and created["tenant"] == TENANT
    # And no name is in the answer
    assert NAME not in reply.body.decode()


def test_pages_follow_the_cursor_to_the_same_events(
    chalice_api: ChaliceApi, keys: dict[str, str]
) -> None:
    whole = chalice_api.call("GET", "/audit/events?limit=100", key=keys["auditor"]).json["items"]
    assert len(whole) >= 2  # the person registered, then renamed
    paged: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(len(whole)):
        reply = chalice_api.call("GET", f"/audit/events?limit=1{cursor}", key=keys["auditor"])
        assert reply.status == 200, reply.body
        paged.extend(reply.json["items"])
        if reply.json["next_cursor"] is None:
            break
        cursor = f"&cursor={reply.json['next_cursor']}"
    assert paged == whole


def test_bad_filters_name_the_field(chalice_api: ChaliceApi, keys: dict[str, str]) -> None:
    backwards = "/audit/events?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z"
    assert_error(chalice_api.call("GET", backwards, key=keys["auditor"]), 400, field="until")
    odd = chalice_api.call("GET", "/audit/events?action=DROP%20TABLE", key=keys["auditor"])
    assert_error(odd, 400, field="action")
    garbled = chalice_api.call("GET", "/audit/events?cursor=abc", key=keys["auditor"])
    assert_error(garbled, 400, field="cursor")


def test_verify_answers_the_tenants_verdict(chalice_api: ChaliceApi, keys: dict[str, str]) -> None:
    reply = chalice_api.call("GET", "/audit/verify", key=keys["auditor"])
    assert reply.status == 200, reply.body
    verdict = reply.json
    assert (verdict["tenant"], verdict["intact"], verdict["complete"]) == (TENANT, True, True)
    assert verdict["records"] >= 2 and verdict["problems"] == {}
    # And the reviewer is refused both
    for path in ("/audit/verify", "/audit/events"):
        assert_error(chalice_api.call("GET", path, key=keys["reviewer"]), 403, "forbidden")


def test_out_of_time_on_the_real_chain_says_so(keys: dict[str, str]) -> None:
    # Given the stack's chain read with no time left (a chain too large for 29 s)
    principal = api_keys_service().resolve(keys["auditor"])
    reader = AuditReader(audit_trail_service(), budget_s=-1.0)
    # Then the answer is "not decided", pointing at the CLI
    verdict = reader.verify(principal)
    assert verdict.intact is None and not verdict.complete and "audit verify" in str(verdict.hint)
