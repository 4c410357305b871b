"""Offboarding reaches what the hosted form and the request page store.

Form versions live in the tenants table under ``{tenant}#form…`` and a
person's own requests in the requests table under ``{tenant}#person``: neither
is the tenant's own partition, so the purge must look for them by prefix,
and must not touch another tenant's.
"""

from __future__ import annotations

from typing import Any

import pytest

from quitclaim.bootstrap import (
    forms_service,
    offboarding_service,
    onboarding_service,
    person_requests_service,
)

pytestmark = pytest.mark.integration
GONE, KEPT = "offb-new-stores-a", "offb-new-stores-b"
TEXTS = {"en": {"title": "Photo consent", "body": "We may publish your photo."}}


def _store(name: str) -> Any:
    [store] = [s for s in offboarding_service()._stores if s.name == name]
    return store


def test_a_purge_takes_the_form_versions_and_the_persons_requests(local_stack: Any) -> None:
    # Given two tenants, each with a published form version and a person's request
    for tenant in (GONE, KEPT):
        onboarding_service().create_tenant(tenant, contact_email=f"officer@{tenant}.example.org")
        forms_service().publish(tenant, "v1", TEXTS, ["web"], 365)
        person_requests_service().submit(tenant, "someone@example.org", "access", "en")
    tenants, requests = _store("ddb:tenants"), _store("ddb:requests")
    before = {t: (tenants.count(t), requests.count(t)) for t in (GONE, KEPT)}
    # (the tenant record plus the form's items; the unverified request)
    assert before[GONE][0] >= 3 and before[GONE][1] >= 1
    assert before[KEPT] == before[GONE]

    # When the operator deletes the first tenant and purges it
    offboarding = offboarding_service()
    offboarding.start(GONE, actor="test")
    report = offboarding.purge(GONE, early=True, actor="test")

    # Then nothing of it is left in either table, and the purge says so
    assert report.complete
    assert (tenants.count(GONE), requests.count(GONE)) == (0, 0)
    # And the other tenant's form and request are untouched
    assert (tenants.count(KEPT), requests.count(KEPT)) == before[KEPT]
    assert forms_service().version(KEPT, "v1") is not None
