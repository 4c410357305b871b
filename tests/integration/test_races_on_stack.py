"""Races on the real local stack, each interleaving made deterministic (issue #10, item 4).

``faults.after_call`` pauses the code under test right after one AWS call
and runs the concurrent actor there, in the same thread, through the real
registry, expiry function or review use-case; then the paused code goes on.
Every test ends with the conservation checker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from quitclaim.adapters.dynamo import AssetModel
from quitclaim.bootstrap import (
    api_keys_service,
    onboarding_service,
    registry_service,
    review_service,
)
from quitclaim.domain.errors import Conflict
from quitclaim.domain.models import TenantPolicy
from quitclaim.domain.registry import Role
from tests import inputs
from tests.conftest import DEMO_NOW, FACES
from tests.integration.faults import after_call, bucket, crash_after, table
from tests.integration.places import Places

pytestmark = pytest.mark.integration
SCAN, RENEW = "it-race-scan", "it-race-renew"


class Stack(Places):
    def record(self, tenant: str, path: str) -> Any:
        [item] = AssetModel.scan((AssetModel.tenant == tenant) & (AssetModel.path == path))
        return item

    def without_consents(self, tenant: str, sid: str) -> None:
        """Withdraw whatever an earlier cell left valid: each cell starts from no consent."""
        registry = registry_service()
        for view in registry.consent_views(tenant, sid):
            if view.status == "valid":
                registry.revoke_consent(tenant, sid, view.consent_id, source="test")
        self.stack.drain()


@pytest.fixture(scope="module")
def on(local_stack: Any) -> Iterator[Stack]:
    yield Stack(local_stack)
    local_stack.clock.set(DEMO_NOW)


@pytest.fixture(scope="module")
def person(on: Stack) -> dict[str, str]:
    """One tenant per race family, each with obama enrolled."""
    registry = registry_service()
    people = {}
    for tenant in (SCAN, RENEW):
        registry.create_tenant(TenantPolicy(tenant=tenant))
        people[tenant] = registry.enrol_subject(
            tenant, "Person R", [inputs.small_enrolment_jpeg()], biometric_consent=True
        )
    return people


# -- (a) a withdrawal while a scan of the person's image is in flight

# Where the scan is paused: (service, operation, which table/bucket, matching calls to let by)
SCAN_PAUSES: dict[str, tuple[str, str, str, int]] = {
    "after-reading-consents": ("dynamodb", "Query", "Consents", 0),
    "after-recording-decision": ("dynamodb", "TransactWriteItems", "Assets", 0),
    # (written in the decision's own transaction since issue 19, I1: the same pause)
    "after-writing-appearances": ("dynamodb", "TransactWriteItems", "Appearances", 0),
    "after-confirming-consents": ("dynamodb", "Query", "Consents", 1),
    # the scanned published form is written to the library (docs/every-pixel.md)
    "after-copying-to-library": ("s3", "PutObject", "library", 0),
}


@pytest.mark.parametrize("pause", list(SCAN_PAUSES))
def test_a_withdrawal_during_a_scan_never_leaves_the_image_approved(
    on: Stack, person: dict[str, str], pause: str
) -> None:
    registry = registry_service()
    sid, path = person[SCAN], f"{pause}.jpg"
    on.without_consents(SCAN, sid)
    # Given a valid consent, and an upload of the person being scanned
    consent = registry.grant_consent(SCAN, sid, ["web"], DEMO_NOW - timedelta(days=1), None)
    service, operation, target, skip = SCAN_PAUSES[pause]
    match = (
        bucket(on.library) if service == "s3" else table(on.tables[target])  # type: ignore[arg-type]
    )

    def withdraw() -> None:
        registry_service().revoke_consent(SCAN, sid, consent.consent_id, source="test")

    on.upload(SCAN, path)
    # When the person withdraws through the registry while the scan is paused there
    with after_call(service, operation, withdraw, skip=skip, match=match) as hit:
        on.stack.drain()
    assert hit[0] == 1, f"{pause}: the scan never reached the pause"
    # Then the image ends held for the withdrawal, with no library version left behind
    assert on.where(SCAN, path) == ["quarantine"], pause
    record = on.record(SCAN, path)
    assert (record.status, list(record.reasons)) == ("quarantined", ["consent_revoked"]), pause
    assert on.versions(on.library, f"{SCAN}/{path}") == 0
    on.holds(SCAN)


def test_a_withdrawal_during_a_scan_then_a_crash_before_the_scan_follows_it(
    on: Stack, person: dict[str, str]
) -> None:
    registry = registry_service()
    sid, path = person[SCAN], "withdrawn-then-crash.jpg"
    on.without_consents(SCAN, sid)
    consent = registry.grant_consent(SCAN, sid, ["web"], DEMO_NOW - timedelta(days=1), None)

    def withdraw() -> None:
        registry_service().revoke_consent(SCAN, sid, consent.consent_id, source="test")

    on.upload(SCAN, path)
    # When the withdrawal lands after the scan confirmed the consent (its re-decision
    # finds no bytes to move yet), and the scan dies after copying into the library
    # and deleting the upload, before it reads the record again
    with (
        after_call("dynamodb", "Query", withdraw, skip=1, match=table(on.tables["Consents"])),
        crash_after("s3", "DeleteObject", match=bucket(on.uploads)) as died,
    ):
        on.stack.drain()
    assert died[0] == 1
    # Then the retry still takes the image out of the library
    assert on.where(SCAN, path) == ["quarantine"]
    assert on.versions(on.library, f"{SCAN}/{path}") == 0
    on.holds(SCAN)


# -- (b) a renewal racing the exact-time expiry


def _expire(on: Stack, sid: str, consent_id: str) -> Callable[[], None]:
    """The exact-time schedule's invocation, as the scheduler makes it."""

    def fire() -> None:
        event = {"kind": "consent_expiry", "tenant": RENEW, "subject_id": sid}
        on.stack.runtime.invoke("ExpiryFunction", {**event, "consent_id": consent_id})

    return fire


RENEW_RACES = ["renewal-read-then-expiry", "expiry-read-then-renewal", "expiry-marked-then-renewal"]


@pytest.mark.parametrize("race", RENEW_RACES)
def test_a_renewal_racing_the_expiry_ends_valid(
    on: Stack, person: dict[str, str], race: str
) -> None:
    registry = registry_service()
    sid, path = person[RENEW], f"{race}.jpg"
    on.without_consents(RENEW, sid)
    now = on.stack.clock.now()
    # Given an approved image whose consent expires in a minute
    consent = registry.grant_consent(RENEW, sid, ["web"], now, now + timedelta(minutes=1))
    on.upload(RENEW, path)
    on.stack.drain()
    assert on.where(RENEW, path) == ["library"]
    renewed_until = now + timedelta(days=365)
    on.stack.clock.set(now + timedelta(minutes=2))  # the expiry is due

    def renew() -> None:
        registry_service().renew_consent(
            RENEW, sid, consent.consent_id, renewed_until, source="test"
        )

    expire = _expire(on, sid, consent.consent_id)
    consents = table(on.tables["Consents"])
    # When the two run interleaved at the named point
    if race == "renewal-read-then-expiry":
        with after_call("dynamodb", "GetItem", expire, match=consents) as hit:
            renew()
    elif race == "expiry-read-then-renewal":
        with after_call("dynamodb", "GetItem", renew, match=consents) as hit:
            expire()
    else:
        with after_call("dynamodb", "UpdateItem", renew, match=consents) as hit:
            expire()
    assert hit[0] == 1, race
    on.stack.drain()
    # Then the consent is valid until the renewed date, and the image is published
    view = registry.consent_view(RENEW, sid, consent.consent_id)
    assert (view.status, view.expires_at) == ("valid", renewed_until), race
    assert on.where(RENEW, path) == ["library"], race
    assert on.versions(on.library, f"{RENEW}/{path}") == 1
    on.holds(RENEW)


# -- (c) two reviewers acting on one held image at once

REVIEW_RACES = {
    # paused actor, winner: the winner acts while the paused one has read the asset
    "release-paused-delete-wins": ("release", "delete"),
    "delete-paused-release-wins": ("delete", "release"),
    "release-paused-keep-wins": ("release", "keep"),
}


@pytest.fixture(scope="module")
def reviewers(on: Stack) -> dict[str, Any]:
    admin = api_keys_service().resolve(onboarding_service().create_tenant("it-race-review").secret)
    keys = {
        name: api_keys_service().resolve(
            api_keys_service().create_key(admin, Role.REVIEWER, name, name).secret
        )
        for name in ("asker", "confirmer")
    }
    return {"admin": admin, **keys}


@pytest.mark.parametrize("race", list(REVIEW_RACES))
def test_two_reviewers_at_once_one_wins_the_other_gets_a_conflict(
    on: Stack, reviewers: dict[str, Any], race: str
) -> None:
    tenant, path = reviewers["admin"].tenant, f"{race}.jpg"
    # Given an image held for an unknown face, with a release asked for by one reviewer
    on.upload(tenant, path, (FACES / "uploads" / "stranger-portrait.png").read_bytes())
    on.stack.drain()
    asset_id = on.record(tenant, path).asset_id
    review_service().release(reviewers["asker"], asset_id, "model release on file")
    actions: dict[str, Callable[[], Any]] = {
        "release": lambda: review_service().release(reviewers["confirmer"], asset_id, "confirmed"),
        "delete": lambda: review_service().delete(reviewers["admin"], asset_id, "takedown"),
        "keep": lambda: review_service().keep(reviewers["admin"], asset_id, "keep it held"),
    }
    paused, winner = REVIEW_RACES[race]
    # When the winner acts after the paused reviewer read the asset, before it wrote
    assets = table(on.tables["Assets"])
    with (
        after_call("dynamodb", "GetItem", actions[winner], match=assets),
        pytest.raises(Conflict) as lost,
    ):
        actions[paused]()
    # Then the paused one is refused with a 409 and a clear message, and nothing else moved
    assert lost.value.http_status == 409 and "changed meanwhile" in str(lost.value)
    history = [h["action"] for h in on.record(tenant, path).history]
    done = {"release": "released", "delete": "deleted", "keep": "kept"}
    assert history.count(done[winner]) == 1 and done[paused] not in history, history
    expected = {"release": ["library"], "delete": [], "keep": ["quarantine"]}[winner]
    assert on.where(tenant, path) == expected, race
    for name in (on.library, on.quarantine):
        assert on.versions(name, f"{tenant}/{path}") <= 1
    on.holds(tenant)
