"""Retention through the API and the CLI: the tenant's days, a person's end of retention."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import main
from quitclaim.adapters.dynamo import SubjectModel
from tests.integration.api.conftest import Api, HttpApi, Tenant, assert_error, make_tenant

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tenant(local_stack: Any) -> Tenant:
    return make_tenant("api-retention")


def _ttl(tenant: Tenant, subject_id: str) -> datetime | None:
    ttl: datetime | None = SubjectModel.get(tenant.id, subject_id, consistent_read=True).ttl
    return ttl


def test_retention_days_and_digest_are_policy_settings(api: Api, local_stack: Any) -> None:
    # Given a new tenant (one per transport) with the defaults: 90 days for strangers'
    # photos, 30 for rejected uploads, a weekly digest
    tenant = make_tenant(f"api-retention-{api.name}")
    policy = api.call("GET", "/policy", key=tenant.reviewer).json
    assert (policy["quarantine_retention_days"], policy["rejected_retention_days"]) == (90, 30)
    assert policy["digest"] == "weekly"
    # When an admin shortens them (no second person: it publishes nothing)
    changes = {"quarantine_retention_days": 30, "rejected_retention_days": 7, "digest": "daily"}
    reply = api.call("PATCH", "/policy", key=tenant.admin, json_body=changes)
    # Then they are kept
    assert reply.status == 200, reply.body
    assert {k: reply.json[k] for k in changes} == changes
    # And a value out of range, or a cadence not offered, names its field
    bad = api.call("PATCH", "/policy", key=tenant.admin, json_body={"digest": "hourly"})
    assert_error(bad, 400, field="digest")
    bad = api.call(
        "PATCH", "/policy", key=tenant.admin, json_body={"quarantine_retention_days": -1}
    )
    assert_error(bad, 400, field="quarantine_retention_days")


def test_a_persons_end_of_retention_is_set_through_the_api(api: Api, tenant: Tenant) -> None:
    # Given a person
    made = api.call("POST", "/subjects", key=tenant.admin, json_body={"display_name": "Ret Person"})
    sid = made.json["subject_id"]
    path = f"/subjects/{sid}/retention"
    # When an admin sets their end of retention
    reply = api.call("PUT", path, key=tenant.admin, json_body={"until": "2030-01-31"})
    # Then the record carries it as its TTL
    assert reply.status == 204, reply.body
    assert _ttl(tenant, sid) == datetime(2030, 1, 31, tzinfo=UTC)
    # And a reviewer may not, a missing date names its field, an unknown person is 404
    assert (
        api.call("PUT", path, key=tenant.reviewer, json_body={"until": "2030-01-31"}).status == 403
    )
    assert_error(api.call("PUT", path, key=tenant.admin, json_body={}), 400, field="until")
    unknown = api.call(
        "PUT", "/subjects/sub_nobody/retention", key=tenant.admin, json_body={"until": "2030-01-31"}
    )
    assert unknown.status == 404


def test_the_cli_sets_an_end_of_retention(http_api: HttpApi, tenant: Tenant) -> None:
    sid = http_api.call(
        "POST", "/subjects", key=tenant.admin, json_body={"display_name": "Cli Ret"}
    ).json["subject_id"]
    result = CliRunner().invoke(
        main,
        ["api", "subjects", "retain", sid, "--until", "2031-05-01T00:00:00Z"],
        env={"QUITCLAIM_URL": http_api.base_url, "QUITCLAIM_KEY": tenant.admin},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert _ttl(tenant, sid) == datetime(2031, 5, 1, tzinfo=UTC)
    # And the retention days through the CLI
    result = CliRunner().invoke(
        main,
        ["api", "policy", "retention", "--quarantine-days", "45", "--digest", "off", "--json"],
        env={"QUITCLAIM_URL": http_api.base_url, "QUITCLAIM_KEY": tenant.admin},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    policy = http_api.call("GET", "/policy", key=tenant.admin).json
    assert (policy["quarantine_retention_days"], policy["digest"]) == (45, "off")
