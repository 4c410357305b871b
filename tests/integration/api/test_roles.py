"""Every authenticated route, for each role, on the real app: allowed, or 403.

One tenant with a key per role (admin, reviewer, dpo, auditor). A route the
role may use answers anything but 401/403 (dummy ids give 404, empty bodies
400: the role check comes first, so reaching them proves it passed); one it
may not use answers 403 in the error shape. Chalice's client only: the rule
lives in the app, not in the transport.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from quitclaim.api.openapi import OPERATIONS, Operation
from quitclaim.api.route_access import capability_of
from quitclaim.bootstrap import api_keys_service, onboarding_service
from quitclaim.domain.access import CHANGES, allows
from quitclaim.domain.registry import Role
from tests.integration.api.conftest import ChaliceApi, assert_error

pytestmark = pytest.mark.integration

TENANT = "api-roles"
# Reads first, then writes: a write that succeeds cannot change what a read sees.
ROUTES = sorted((op for op in OPERATIONS if op.role is not None), key=lambda op: op.method != "GET")


@pytest.fixture(scope="module")
def keys(local_stack: Any) -> dict[Role, str]:
    admin = api_keys_service().resolve(onboarding_service().create_tenant(TENANT).secret)
    return {
        role: api_keys_service()
        .create_key(admin, role, f"{role.value} key", f"{role.value} person")
        .secret
        for role in Role
    }


def _path(op: Operation) -> str:
    return re.sub(r"{(\w+)}", "abc123", op.path)


def test_each_role_gets_exactly_its_routes(chalice_api: ChaliceApi, keys: dict[Role, str]) -> None:
    seen: dict[tuple[Role, str], int] = {}
    for op in ROUTES:
        for role in (Role.AUDITOR, Role.DPO, Role.REVIEWER, Role.ADMIN):
            # When each role calls the route with dummy ids and an empty body
            reply = chalice_api.call(op.method, _path(op), key=keys[role], json_body={})
            seen[(role, op.operation_id)] = reply.status
            if allows(role, capability_of(op)):
                # Then an allowed role gets past the check (and the console agrees)
                assert reply.status not in (401, 403), (role, op.operation_id, reply.body)
            else:
                assert_error(reply, 403, "forbidden")
    # And the dpo is refused every write route, the auditor everything but its reads
    writes = [op for op in ROUTES if capability_of(op) in CHANGES]
    assert writes and all(seen[(Role.DPO, op.operation_id)] == 403 for op in writes)
    auditor_ok = {
        oid for (role, oid), status in seen.items() if role is Role.AUDITOR and status != 403
    }
    assert auditor_ok == {
        "whoAmI",
        "getRecordsOfProcessing",
        "listAuditEvents",
        "verifyAuditTrail",
    }
    # And the audit trail is not the reviewer's (it is not theirs to judge)
    for oid in ("listAuditEvents", "verifyAuditTrail"):
        assert seen[(Role.REVIEWER, oid)] == 403, oid


def test_a_dpo_exports_a_person_and_reads_the_records_of_processing(
    chalice_api: ChaliceApi, keys: dict[Role, str]
) -> None:
    # Given a person registered by an admin
    created = chalice_api.call(
        "POST", "/subjects", key=keys[Role.ADMIN], json_body={"display_name": "Dee Export"}
    )
    assert created.status == 201, created.body
    sid = created.json["subject_id"]
    # When the dpo asks for the person's export and the records of processing
    export = chalice_api.call("GET", f"/subjects/{sid}/export", key=keys[Role.DPO])
    records = chalice_api.call("GET", "/records-of-processing", key=keys[Role.DPO])
    # Then both are answered
    assert export.status == 200, export.body
    assert records.status == 200, records.body
    # And the auditor reads the records, but not the person
    assert chalice_api.call("GET", "/records-of-processing", key=keys[Role.AUDITOR]).status == 200
    denied = chalice_api.call("GET", f"/subjects/{sid}/export", key=keys[Role.AUDITOR])
    assert_error(denied, 403, "forbidden")
    # And the dpo cannot change the person
    change = chalice_api.call(
        "PATCH", f"/subjects/{sid}", key=keys[Role.DPO], json_body={"display_name": "X"}
    )
    assert_error(change, 403, "forbidden")
