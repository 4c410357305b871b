"""Roles and capabilities: one explicit rule per operation, checked in one place."""

from __future__ import annotations

import pytest

from quitclaim.api.auth import authenticate
from quitclaim.api.openapi import OPERATIONS, Operation
from quitclaim.api.route_access import ACCESS, capability_of
from quitclaim.domain.access import CHANGES, ROLES, Capability, allows
from quitclaim.domain.errors import Forbidden
from quitclaim.domain.registry import Principal, Role

AUTHENTICATED = [op for op in OPERATIONS if op.role is not None]


def _principal(role: Role) -> Principal:
    return Principal("t1", "key_1", role, "label", "person")


def test_every_authenticated_operation_has_an_explicit_rule_and_no_rule_is_stale() -> None:
    # Given the route table / Then each authenticated route is listed, and nothing else is
    assert {op.operation_id for op in AUTHENTICATED} == set(ACCESS)


def test_role_values_are_the_lowercase_names_user_pool_groups_use() -> None:
    assert [r.value for r in Role] == ["admin", "reviewer", "dpo", "auditor"]
    assert Role("dpo") is Role.DPO and Role("auditor") is Role.AUDITOR


@pytest.mark.parametrize("op", AUTHENTICATED, ids=lambda op: op.operation_id)
def test_admin_and_reviewer_keep_what_the_minimum_role_gave_them(op: Operation) -> None:
    # Given the operation's former minimum role / When its capability is checked
    needs = capability_of(op)
    # Then admin may call every route, and a reviewer exactly the reviewer routes
    assert allows(Role.ADMIN, needs)
    assert allows(Role.REVIEWER, needs) == (op.role is Role.REVIEWER)


@pytest.mark.parametrize("op", AUTHENTICATED, ids=lambda op: op.operation_id)
def test_a_dpo_changes_nothing_and_an_auditor_reads_only_records_and_audit(op: Operation) -> None:
    needs = capability_of(op)
    # A GET never needs a change capability; a dpo holds none of those
    if op.method == "GET":
        assert needs not in CHANGES
    assert allows(Role.DPO, needs) == (needs not in CHANGES)
    assert allows(Role.AUDITOR, needs) == (
        needs in {Capability.SELF, Capability.RECORDS, Capability.AUDIT}
    )


def test_admin_holds_every_capability_a_reviewer_holds() -> None:
    for roles in ROLES.values():
        assert Role.REVIEWER not in roles or Role.ADMIN in roles


def test_dpo_may_export_and_read_records_of_processing() -> None:
    assert capability_of(_op("exportSubject")) is Capability.EXPORT
    assert capability_of(_op("getRecordsOfProcessing")) is Capability.RECORDS
    assert allows(Role.DPO, Capability.EXPORT) and allows(Role.DPO, Capability.RECORDS)
    assert not allows(Role.AUDITOR, Capability.EXPORT)


def test_authenticate_refuses_a_role_without_the_capability() -> None:
    # Given an auditor's key / When a read of the tenant's data is asked for
    def resolve(secret: str) -> Principal:
        return _principal(Role.AUDITOR)

    headers = {"authorization": "Bearer qc_x"}
    with pytest.raises(Forbidden):
        authenticate(headers, resolve, Capability.READ)
    # Then records of processing are fine
    assert authenticate(headers, resolve, Capability.RECORDS).role is Role.AUDITOR


def test_authenticate_still_takes_a_minimum_role() -> None:
    # A bare role reads as before: reviewer = read, admin = write
    def resolve(secret: str) -> Principal:
        return _principal(Role.REVIEWER)

    headers = {"x-api-key": "qc_x"}
    assert authenticate(headers, resolve, Role.REVIEWER).role is Role.REVIEWER
    with pytest.raises(Forbidden):
        authenticate(headers, resolve, Role.ADMIN)


def test_an_operation_from_another_branch_falls_back_to_its_minimum_role() -> None:
    new_read = Operation("x", "GET", "/x", "x", "x", role=Role.REVIEWER)
    new_write = Operation("y", "POST", "/y", "y", "y", role=Role.ADMIN)
    assert capability_of(new_read) is Capability.READ
    assert capability_of(new_write) is Capability.WRITE


def _op(operation_id: str) -> Operation:
    return next(op for op in OPERATIONS if op.operation_id == operation_id)
