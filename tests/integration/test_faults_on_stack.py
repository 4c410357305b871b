"""The fault matrix: path x step x fault, on the real local stack (issue #10, item 3).

Each cell injects one fault at one step of one path (at the botocore
boundary, see ``faults.py``), lets the runtime retry as Lambda would, and
then asserts the same things: the outcome is the one without the fault,
nothing is published without a decision, there is one record and one copy
(and one e-mail), no dead letter, and the conservation checker holds.
A failing cell names itself in its test id: ``[ingest-copy-slowdown]``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from quitclaim.adapters.dynamo import DynamoConsents
from quitclaim.bootstrap import (
    api_keys_service,
    conservation_service,
    onboarding_service,
    redaction_service,
    registry_service,
    review_service,
    webhook_admin,
    webhook_inbox,
)
from quitclaim.domain.errors import DependencyFailed
from quitclaim.domain.models import Consent, TenantPolicy
from quitclaim.domain.registry import Role
from tests import inputs
from tests.conftest import DEMO_NOW
from tests.integration.faults import (
    HandlerCrashed,
    ProcessDied,
    bucket,
    crash_after,
    failing_calls,
    table,
    timing_out_calls,
)
from tests.integration.places import Places

pytestmark = pytest.mark.integration
INGEST, RECHECK, EXPIRY = "it-faults-ingest", "it-faults-recheck", "it-faults-expiry"
FORM = resources.files("quitclaim") / "webhook_mappings" / "samples" / "generic-form.json"

Fault = Callable[[Any], AbstractContextManager[Any]]


class World(Places):
    """The stack, the tenants' people, and the checks every cell ends with."""

    def __init__(self, stack: Any) -> None:
        super().__init__(stack)
        self.subjects: dict[str, str] = {}

    def dead_letters(self) -> int:
        return sum(
            self.stack.runtime.queue_depth(self.env[name])
            for name in ("QC_INGEST_DLQ_URL", "QC_RECHECK_DLQ_URL", "QC_ASYNC_DLQ_URL")
        )

    def settle(self, cell: str, tenant: str, path: str, place: str) -> None:
        """The checks every cell ends with."""
        assert self.where(tenant, path) == [place], f"{cell}: {self.where(tenant, path)}"
        [record] = self.records(tenant, path)
        assert record.status == {"library": "approved", "quarantine": "quarantined"}[place], cell
        bucket_name = self.library if place == "library" else self.quarantine
        assert self.versions(bucket_name, f"{tenant}/{path}") == 1, f"{cell}: copied twice"
        assert self.dead_letters() == 0, f"{cell}: dead-lettered"
        self.holds(tenant, cell)


@pytest.fixture(scope="module")
def world(local_stack: Any) -> Iterator[World]:
    # Given three tenants, each with obama enrolled (one subject per tenant)
    registry = registry_service()
    world = World(local_stack)
    for tenant in (INGEST, RECHECK, EXPIRY):
        registry.create_tenant(TenantPolicy(tenant=tenant))
        sid = registry.enrol_subject(
            tenant, "Person F", [inputs.small_enrolment_jpeg()], biometric_consent=True
        )
        world.subjects[tenant] = sid
        if tenant == INGEST:
            registry.grant_consent(tenant, sid, ["web"], DEMO_NOW - timedelta(days=1), None)
    yield world
    local_stack.clock.set(DEMO_NOW)


def _assets(w: World) -> Any:
    return table(w.tables["Assets"])


def _consents(w: World) -> Any:
    return table(w.tables["Consents"])


# -- ingest: S3 event -> decision record -> copy -> delete the upload -> placed


INGEST_CELLS: dict[str, Fault] = {
    # consents-read throttled: tests/integration/test_ingest_on_stack.py (not repeated)
    "consents-read-timeout": lambda w: timing_out_calls(
        "dynamodb", "Query", times=1, match=_consents(w)
    ),
    "upload-read-slowdown": lambda w: failing_calls(
        "s3", "GetObject", "SlowDown", times=1, match=bucket(w.uploads)
    ),
    # The record is written but the answer is lost: the retry finds it.
    "record-read-timeout": lambda w: timing_out_calls(
        "dynamodb", "TransactWriteItems", times=1, match=_assets(w)
    ),
    "record-connect-timeout": lambda w: timing_out_calls(
        "dynamodb", "TransactWriteItems", connect=True, times=1, match=_assets(w)
    ),
    "crash-after-record-before-copy": lambda w: crash_after(
        "dynamodb", "TransactWriteItems", match=_assets(w)
    ),
    # "copy": placing the scanned published form in the library (a PutObject since
    # docs/every-pixel.md; the upload's own bytes are copied to originals/).
    "copy-slowdown": lambda w: failing_calls(
        "s3", "PutObject", "SlowDown", times=1, match=bucket(w.library)
    ),
    "copy-failed": lambda w: failing_calls(
        "s3", "PutObject", "InternalError", times=3, match=bucket(w.library)
    ),
    "crash-after-copy-before-delete": lambda w: crash_after(
        "s3", "PutObject", match=bucket(w.library)
    ),
    "crash-after-delete-before-placed": lambda w: crash_after(
        "s3", "DeleteObject", match=bucket(w.uploads)
    ),
    "placed-mark-throttled": lambda w: failing_calls(
        "dynamodb", "UpdateItem", "ThrottlingException", times=1, match=_assets(w)
    ),
}


@pytest.mark.parametrize("step", sorted(INGEST_CELLS))
def test_ingest(world: World, step: str) -> None:
    cell, path = f"ingest/{step}", f"{step}.jpg"
    # Given an upload of a consented face / When it is processed under the fault
    world.upload(INGEST, path)
    with INGEST_CELLS[step](world) as hit:
        report = world.stack.drain()
    # Then the fault did fire and was retried, and the outcome is as without it
    assert hit[0] >= 1, f"{cell}: the fault never fired"
    assert report.failures >= 1 or report.errors, f"{cell}: nothing was retried"
    world.settle(cell, INGEST, path, "library")


def test_ingest_function_dies_mid_batch(world: World) -> None:
    # Given three uploads delivered in one batch
    paths = [f"batch-{i}.jpg" for i in range(3)]
    for path in paths:
        world.upload(INGEST, path)
    # When the function dies (a timeout kill) after placing the first, without returning
    with crash_after("dynamodb", "UpdateItem", match=_assets(world)) as hit:
        first = world.stack.runtime.poll_once()
        # Then the whole batch returned, none acknowledged
        assert hit[0] == 1 and first.messages == 3 and first.failures == 3
        assert sorted(p for p in paths if world.where(INGEST, p) == ["library"]) == paths[:1]
    # And the redelivery completes all three, the first one without a second copy
    world.stack.drain()
    for path in paths:
        world.settle(f"ingest/mid-batch/{path}", INGEST, path, "library")


# -- recheck: a withdrawal on the consents stream -> copy out -> delete -> record


RECHECK_CELLS: dict[str, Fault] = {
    "consents-read-throttled": lambda w: failing_calls(
        "dynamodb",
        "Query",
        "ProvisionedThroughputExceededException",
        times=1,
        match=_consents(w),
    ),
    "copy-slowdown": lambda w: failing_calls(
        "s3", "CopyObject", "SlowDown", times=1, match=bucket(w.quarantine)
    ),
    "crash-after-copy-before-record": lambda w: crash_after(
        "s3", "CopyObject", match=bucket(w.quarantine)
    ),
    "crash-after-delete-before-record": lambda w: crash_after(
        "s3", "DeleteObject", match=bucket(w.library)
    ),
    "record-read-timeout": lambda w: timing_out_calls(
        "dynamodb", "PutItem", times=1, match=_assets(w)
    ),
}


@pytest.fixture(scope="module")
def held(world: World) -> str:
    """One image of the recheck tenant's person, uploaded once (no consent yet: held)."""
    world.upload(RECHECK, "recheck.jpg")
    world.stack.drain()
    assert world.where(RECHECK, "recheck.jpg") == ["quarantine"]
    return world.subjects[RECHECK]


@pytest.mark.parametrize("step", sorted(RECHECK_CELLS))
def test_recheck(world: World, held: str, step: str) -> None:
    cell = f"recheck/{step}"
    # Given the person's consent, and their image in the library
    registry = registry_service()
    consent = registry.grant_consent(RECHECK, held, ["web"], DEMO_NOW - timedelta(days=1), None)
    world.stack.drain()
    world.settle(cell + " (granted)", RECHECK, "recheck.jpg", "library")
    # When it is withdrawn in the table and the stream's re-decision runs under the fault
    DynamoConsents().revoke(consent, DEMO_NOW, source="test")
    with RECHECK_CELLS[step](world) as hit:
        report = world.stack.drain()
    # Then the image left the library all the same, once
    assert hit[0] >= 1, f"{cell}: the fault never fired"
    assert report.errors, f"{cell}: nothing was retried"
    world.settle(cell, RECHECK, "recheck.jpg", "quarantine")


def test_recheck_publish_dies_after_the_copy(world: World, held: str) -> None:
    cell = "recheck/publish-crash-after-copy-before-delete"
    registry = registry_service()
    # When a grant's re-decision (record first, then the move into the library)
    # dies after the copy, before the held copy is deleted
    with crash_after("s3", "CopyObject", match=bucket(world.library)) as hit:
        with pytest.raises(ProcessDied):
            registry.grant_consent(RECHECK, held, ["web"], DEMO_NOW - timedelta(days=1), None)
        world.stack.drain()  # the stream's re-decision of the same grant
    assert hit[0] == 1
    # Then the image is published once and the held copy is gone
    world.settle(cell, RECHECK, "recheck.jpg", "library")
    # And a later withdrawal leaves no library copy behind
    for view in registry.consent_views(RECHECK, held):
        registry.revoke_consent(RECHECK, held, view.consent_id, source="test")
    world.stack.drain()
    world.settle(cell + " (withdrawn)", RECHECK, "recheck.jpg", "quarantine")


# -- expiry: the exact-time schedule -> mark expired -> re-decide -> move out

EXPIRY_CELLS: dict[str, Fault] = {
    "mark-expired-throttled": lambda w: failing_calls(
        "dynamodb", "UpdateItem", "ThrottlingException", times=1, match=_consents(w)
    ),
    "mark-expired-read-timeout": lambda w: timing_out_calls(
        "dynamodb", "UpdateItem", times=1, match=_consents(w)
    ),
    "crash-after-copy-before-record": lambda w: crash_after(
        "s3", "CopyObject", match=bucket(w.quarantine), error=HandlerCrashed
    ),
}


@pytest.mark.parametrize("step", sorted(EXPIRY_CELLS))
def test_expiry(world: World, step: str) -> None:
    cell, path = f"expiry/{step}", f"expiry-{step}.jpg"
    registry = registry_service()
    now = world.stack.clock.now()
    # Given a consent expiring in ten minutes, and an image of the person in the library
    consent = registry.grant_consent(
        EXPIRY, world.subjects[EXPIRY], ["web"], now, now + timedelta(minutes=10)
    )
    world.upload(EXPIRY, path)
    world.stack.drain()
    assert world.where(EXPIRY, path) == ["library"], cell
    # When the exact-time schedule fires under the fault (the sweep not yet due)
    with EXPIRY_CELLS[step](world) as hit:
        tick = world.stack.tick(now + timedelta(minutes=11))
    # Then the first attempt failed, a retry made it, and the image is held
    assert hit[0] >= 1, f"{cell}: the fault never fired"
    # (this consent's own schedule: the sweep, or another test's consent on this
    # session's stack, may fall in the same window)
    exact = [f for f in tick.firings if consent.consent_id in f.schedule]
    assert [f.attempts for f in exact] == [2], cell
    world.settle(cell, EXPIRY, path, "quarantine")


# -- I1 (issue 19): no image in the library that a withdrawal cannot reach
#
# A withdrawal (or an expiry) finds a person's images only through their
# appearance rows. Each publishing path is crashed (or throttled) between every
# pair of its writes; after the retries, the person withdraws, and the image
# must leave the library, with the conservation checker holding. In between,
# whatever is in the library must already have its appearance rows.
# ``A|B``: whichever of the two calls the path makes (see ``faults._intercept``).
DECISION = "PutItem|TransactWriteItems"
APPEARANCES = "BatchWriteItem|TransactWriteItems"


def _assets_or_appearances(w: World) -> Any:
    return table(w.tables["Appearances"])


def _person(tenant: str, purposes: tuple[str, ...] = ("web",)) -> tuple[str, str]:
    """A tenant of its own, obama enrolled, one consent: (subject, consent)."""
    registry = registry_service()
    registry.create_tenant(TenantPolicy(tenant=tenant))
    sid = registry.enrol_subject(
        tenant, "Person W", [inputs.small_enrolment_jpeg()], biometric_consent=True
    )
    consent = registry.grant_consent(tenant, sid, purposes, DEMO_NOW - timedelta(days=1), None)
    return sid, consent.consent_id


def _two_reviewers(tenant: str) -> tuple[str, Any, Any]:
    """A tenant of its own and two reviewers who are two people (four eyes)."""
    admin = api_keys_service().resolve(onboarding_service().create_tenant(tenant).secret)
    asker, confirmer = (
        api_keys_service().resolve(
            api_keys_service().create_key(admin, Role.REVIEWER, name, name).secret
        )
        for name in ("asker", "confirmer")
    )
    return admin.tenant, asker, confirmer


def _reachable(w: World, tenant: str, cell: str) -> None:
    """Whatever of the tenant is in the library has its appearance rows (mid-way)."""
    report = conservation_service().check(tenant)
    missing = [v for v in report.violations if v.rule == "appearances_missing"]
    assert missing == [], f"{cell}: {missing}"


def _withdrawn(w: World, cell: str, tenant: str, sid: str, consent_id: str, path: str) -> None:
    """The person withdraws: the image must leave the library, and everything hold."""
    registry_service().revoke_consent(tenant, sid, consent_id, source="test")
    w.stack.drain()
    assert w.where(tenant, path) == ["quarantine"], f"{cell}: withdrawn, {w.where(tenant, path)}"
    [record] = w.records(tenant, path)
    assert (record.status, list(record.reasons)) == ("quarantined", ["consent_revoked"]), cell
    assert w.versions(w.library, f"{tenant}/{path}") == 0, f"{cell}: a library version is left"
    assert w.dead_letters() == 0, f"{cell}: dead-lettered"
    w.holds(tenant, cell)


def test_an_appearance_write_that_fails_leaves_no_image_a_withdrawal_cannot_reach(
    world: World,
) -> None:
    """Finding 1 of issue 19, as reported."""
    cell, tenant, path = "reach/appearances-throttled", "it-reach-finding", "finding.jpg"
    sid, consent_id = _person(tenant)
    # Given an upload of a consented face, whose appearance rows fail to be written
    # once (throttled): the message is redelivered
    world.upload(tenant, path)
    with failing_calls(
        "dynamodb", APPEARANCES, "ThrottlingException", times=1, match=_assets_or_appearances(world)
    ) as hit:
        world.stack.drain()
    assert hit[0] == 1, f"{cell}: the fault never fired"
    # Then the redelivery publishes it, with the appearance rows a withdrawal needs
    world.settle(cell, tenant, path, "library")
    # And when the person withdraws, the image leaves the library
    _withdrawn(world, cell, tenant, sid, consent_id, path)


# Ingest's writes: decision (+ usage + appearance rows), published form, original, delete, placed.
INGEST_REACH: dict[str, Fault] = {
    "crash-after-decision": lambda w: crash_after("dynamodb", DECISION, match=_assets(w)),
    "crash-after-appearances": lambda w: crash_after(
        "dynamodb", APPEARANCES, match=_assets_or_appearances(w)
    ),
    # the published form written into the library, the original kept apart (docs/every-pixel.md)
    "crash-after-write": lambda w: crash_after("s3", "PutObject", match=bucket(w.library)),
    "crash-after-original": lambda w: crash_after("s3", "CopyObject", match=bucket(w.quarantine)),
    "crash-after-delete": lambda w: crash_after("s3", "DeleteObject", match=bucket(w.uploads)),
    "crash-after-placed": lambda w: crash_after("dynamodb", "UpdateItem", match=_assets(w)),
}


@pytest.mark.parametrize("step", list(INGEST_REACH))
def test_ingest_crash_then_withdrawal(world: World, step: str) -> None:
    cell, tenant, path = f"reach/ingest/{step}", f"it-reach-ingest-{step}", "reach.jpg"
    sid, consent_id = _person(tenant)
    # (whatever is queued before, such as S3's test event when this cell runs first, is
    # handled first: the batch that dies holds this upload alone)
    world.stack.drain()
    # Given an upload of a consented face / When ingest dies after that write
    world.upload(tenant, path)
    with INGEST_REACH[step](world) as hit:
        first = world.stack.runtime.poll_once()
        assert hit[0] == 1 and first.failures == 1, f"{cell}: {hit[0]}, {first}"
        _reachable(world, tenant, cell)
    # Then the redelivery publishes it once
    world.stack.drain()
    world.settle(cell, tenant, path, "library")
    # And a withdrawal pulls it
    _withdrawn(world, cell, tenant, sid, consent_id, path)


# A grant re-decides the person's held image and publishes it: decision, copy, delete.
# "registry": inline, as the API and the inbound-webhooks worker grant (the consents
# stream re-decides after it); "stream": only the recheck function's re-decision.
PUBLISH_REACH: dict[str, Fault] = {
    "crash-after-decision": lambda w: crash_after("dynamodb", DECISION, match=_assets(w)),
    "crash-after-copy": lambda w: crash_after("s3", "CopyObject", match=bucket(w.library)),
    "crash-after-delete": lambda w: crash_after("s3", "DeleteObject", match=bucket(w.quarantine)),
}


@pytest.mark.parametrize("via", ["registry", "stream"])
@pytest.mark.parametrize("step", list(PUBLISH_REACH))
def test_grant_publish_crash_then_withdrawal(world: World, step: str, via: str) -> None:
    cell, tenant, path = f"reach/{via}/{step}", f"it-reach-{via}-{step}", "held.jpg"
    registry = registry_service()
    # Given the person's image held for want of a consent
    registry.create_tenant(TenantPolicy(tenant=tenant))
    sid = registry.enrol_subject(
        tenant, "Person W", [inputs.small_enrolment_jpeg()], biometric_consent=True
    )
    world.upload(tenant, path)
    world.stack.drain()
    assert world.where(tenant, path) == ["quarantine"], cell
    # When a consent is granted and its re-decision dies after that write
    with PUBLISH_REACH[step](world) as hit:
        if via == "registry":
            with pytest.raises(ProcessDied):
                registry.grant_consent(tenant, sid, ["web"], DEMO_NOW - timedelta(days=1), None)
        else:
            # (written straight into the table: only the stream's re-decision runs)
            DynamoConsents().save(
                Consent(tenant, sid, "con_reach", frozenset({"web"}), DEMO_NOW, None),
                source="test",
            )
            world.stack.runtime.poll_once()
        assert hit[0] == 1, f"{cell}: the fault never fired"
        _reachable(world, tenant, cell)
    # Then the retries publish it
    world.stack.drain()
    world.settle(cell, tenant, path, "library")
    [view] = registry.consent_views(tenant, sid)
    # And a withdrawal pulls it
    _withdrawn(world, cell, tenant, sid, view.consent_id, path)


# The inbound-webhooks worker applies a signed form submission: the grant, and its
# inline re-decision publishes the person's held image (the consents stream re-decides
# after it). Crashed after each write of that publication.
@pytest.mark.parametrize("step", list(PUBLISH_REACH))
def test_webhook_grant_publish_crash_then_withdrawal(world: World, step: str) -> None:
    cell, tenant, path = f"reach/webhook/{step}", f"it-reach-webhook-{step}", "held.jpg"
    registry = registry_service()
    # Given the person's image held for want of a consent, and a signed form submission
    registry.create_tenant(TenantPolicy(tenant=tenant))
    sid = registry.enrol_subject(
        tenant,
        "Person W",
        [inputs.small_enrolment_jpeg()],
        external_ref="crm-reach",
        biometric_consent=True,
    )
    world.upload(tenant, path)
    world.stack.drain()
    assert world.where(tenant, path) == ["quarantine"], cell
    _, issued = webhook_admin().register_source(tenant, "forms", preset="generic-form")
    payload = json.loads(FORM.read_text("utf-8"))
    payload["person"] = {"id": "crm-reach", "email": "reach@example.org", "name": "W"}
    payload["consent"]["purposes"] = ["web"]
    body, msg_id, at = json.dumps(payload), f"msg_reach_{step}", datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(issued.secret).sign(msg_id, at, body),
    }
    webhook_inbox().receive(tenant, "forms", headers, body.encode())
    # When the worker's re-decision dies after that write
    with PUBLISH_REACH[step](world) as hit:
        world.stack.runtime.poll_once()
        assert hit[0] == 1, f"{cell}: the fault never fired"
        _reachable(world, tenant, cell)
    # Then the retries publish it
    world.stack.drain()
    world.settle(cell, tenant, path, "library")
    [view] = registry.consent_views(tenant, sid)
    # And a withdrawal pulls it
    _withdrawn(world, cell, tenant, sid, view.consent_id, path)


# Two reviewers release a held image (a bystander nobody knows is waived): decision,
# copy into the library, delete from quarantine. A crashed confirmation is not
# retried (the asset is no longer quarantined): the person's withdrawal must pull
# whatever it left.
@pytest.mark.parametrize("step", list(PUBLISH_REACH))
def test_release_crash_then_withdrawal(world: World, step: str) -> None:
    cell, path = f"reach/release/{step}", "released.jpg"
    tenant, asker, confirmer = _two_reviewers(f"it-reach-release-{step}")
    registry = registry_service()
    sid = registry.enrol_subject(
        tenant, "Person W", [inputs.small_enrolment_jpeg()], biometric_consent=True
    )
    consent = registry.grant_consent(tenant, sid, ["web"], DEMO_NOW - timedelta(days=1), None)
    # Given a photo of the person with people nobody enrolled, held
    world.upload(tenant, path, inputs.small_stage_jpeg())
    world.stack.drain()
    [record] = world.records(tenant, path)
    assert (record.status, list(record.reasons)) == ("quarantined", ["unknown_face"]), cell
    review_service().release(asker, record.asset_id, "the others are crew, releases on file")
    # When the second reviewer's confirmation dies after that write
    with PUBLISH_REACH[step](world) as hit, pytest.raises(ProcessDied):
        review_service().release(confirmer, record.asset_id, "confirmed")
    assert hit[0] == 1, f"{cell}: the fault never fired"
    _reachable(world, tenant, cell)
    world.stack.drain()
    # Then the person's withdrawal pulls it, whatever the crash left
    _withdrawn(world, cell, tenant, sid, consent.consent_id, path)


# Two reviewers reassign a held face to a person with a consent (one asks, another
# confirms): the re-decision with the new person's rows, copy, delete. A crash after
# each write; the new person's withdrawal must pull whatever it left in the library.
@pytest.mark.parametrize("step", list(PUBLISH_REACH))
def test_reassign_crash_then_withdrawal(world: World, step: str) -> None:
    cell, path = f"reach/reassign/{step}", "reassigned.jpg"
    tenant, asker, confirmer = _two_reviewers(f"it-reach-reassign-{step}")
    registry = registry_service()
    # Given the face matched to an enrolled person without a consent: held
    registry.enrol_subject(
        tenant, "Person V", [inputs.small_enrolment_jpeg()], biometric_consent=True
    )
    world.upload(tenant, path, inputs.small_enrolment_jpeg())
    world.stack.drain()
    [record] = world.records(tenant, path)
    assert record.status == "quarantined", cell
    # And another person, with a consent, whom a reviewer says it is
    sid = registry.create_subject(tenant, "Person W").subject_id
    consent = registry.grant_consent(tenant, sid, ["web"], DEMO_NOW - timedelta(days=1), None)
    asked = review_service().reassign(asker, record.asset_id, 0, sid, "it is W, not V")
    assert asked.status == "quarantined", f"{cell}: one person published alone"
    # When the second reviewer's confirmation dies after that write
    with PUBLISH_REACH[step](world) as hit, pytest.raises(ProcessDied):
        review_service().reassign(confirmer, record.asset_id, 0, sid, "confirmed: W")
    assert hit[0] == 1, f"{cell}: the fault never fired"
    _reachable(world, tenant, cell)
    world.stack.drain()
    # Then W's withdrawal pulls it, whatever the crash left
    registry.revoke_consent(tenant, sid, consent.consent_id, source="test")
    world.stack.drain()
    assert world.where(tenant, path) == ["quarantine"], f"{cell}: {world.where(tenant, path)}"
    _reachable(world, tenant, cell)


# Two reviewers redact a held image (one asks, another confirms): the variant's decision
# (with its rows), its bytes written into the library, marked placed, re-decided, noted
# on the original. Crashed after each write of the variant's publication; the person's
# withdrawal must pull it.
REDACT_REACH: dict[str, Fault] = {
    "crash-after-decision": lambda w: crash_after("dynamodb", DECISION, match=_assets(w)),
    "crash-after-write": lambda w: crash_after("s3", "PutObject", match=bucket(w.library)),
    "crash-after-placed": lambda w: crash_after("dynamodb", "UpdateItem", match=_assets(w)),
}


@pytest.mark.parametrize("step", list(REDACT_REACH))
def test_redaction_crash_then_withdrawal(world: World, step: str) -> None:
    cell, path, variant = f"reach/redact/{step}", "stage.jpg", "stage.redacted.png"
    tenant, asker, confirmer = _two_reviewers(f"it-reach-redact-{step}")
    registry = registry_service()
    sid = registry.enrol_subject(
        tenant, "Person W", [inputs.small_enrolment_jpeg()], biometric_consent=True
    )
    consent = registry.grant_consent(tenant, sid, ["web"], DEMO_NOW - timedelta(days=1), None)
    # Given a photo of the person with people nobody enrolled, held
    world.upload(tenant, path, inputs.small_stage_jpeg())
    world.stack.drain()
    [record] = world.records(tenant, path)
    assert (record.status, list(record.reasons)) == ("quarantined", ["unknown_face"]), cell
    # And one reviewer asks for a pixelated copy (four eyes: nothing is published yet)
    asked = redaction_service().request(asker, record.asset_id, "publish without the others")
    assert asked.asset_id == record.asset_id and asked.status == "quarantined", cell
    # When the second reviewer's confirmation dies after that write
    with REDACT_REACH[step](world) as hit, pytest.raises(ProcessDied):
        redaction_service().request(confirmer, record.asset_id, "confirmed")
    assert hit[0] == 1, f"{cell}: the fault never fired"
    _reachable(world, tenant, cell)
    world.stack.drain()
    # Then the person's withdrawal leaves no version of the variant in the library
    registry_service().revoke_consent(tenant, sid, consent.consent_id, source="test")
    world.stack.drain()
    assert world.versions(world.library, f"{tenant}/{variant}") == 0, cell
    [after] = world.records(tenant, variant)
    assert after.status == "quarantined" and "consent_revoked" in after.reasons, cell
    _reachable(world, tenant, cell)
    # And the checker finds nothing else wrong but what a redaction cut short leaves
    # (not I1; docs/reach.md): it cannot be resumed (a second redaction is refused,
    # "redacted"), so a variant decided but never written is missing from its place,
    # and its audit event, sent only at the end, is lost with the process.
    cut_short = {"unaudited"} | ({"misplaced"} if step == "crash-after-decision" else set())
    report = conservation_service().check(tenant)
    assert {v.rule for v in report.violations} == cut_short, f"{cell}: {report.violations}"
    assert {v.asset_id for v in report.violations} == {after.asset_id}, cell


# -- reminders: a claim, one e-mail through SES


def test_reminder_ses_failure_is_retried_and_sent_once(world: World) -> None:
    tenant, registry = "it-faults-remind", registry_service()
    registry.create_tenant(TenantPolicy(tenant=tenant))
    # (no photo: a reminder needs a person and an address, not a face)
    sid = registry.create_subject(
        tenant, "Reminded F", email="faults-reminded@example.org"
    ).subject_id
    now = world.stack.clock.now()
    registry.grant_consent(tenant, sid, ["web"], now, now + timedelta(days=7, hours=20))
    before = len(world.stack.sent_emails())

    def mails() -> int:
        return sum("faults-reminded" in str(m) for m in world.stack.sent_emails()[before:])

    def daily_run() -> None:
        """What the daily schedule invokes (each failed invocation is retried)."""
        world.stack.runtime.invoke("RemindersFunction", {"kind": "reminders"})

    # Given the morning the 7-day reminder is due
    world.stack.clock.set(now + timedelta(days=1) - timedelta(hours=5))
    # When SES throttles the run / Then it fails, nothing is sent, the claim is given back
    with (
        failing_calls("ses", "SendEmail", "Throttling", times=1) as hit,
        pytest.raises(DependencyFailed),
    ):
        daily_run()
    assert (hit[0], mails()) == (1, 0)
    # When the retry sends it and then dies before it returns
    with (
        crash_after("ses", "SendEmail", error=HandlerCrashed) as died,
        pytest.raises(HandlerCrashed),
    ):
        daily_run()
    assert (died[0], mails()) == (1, 1)
    # Then neither its own retry nor the next day's run sends it again
    daily_run()
    world.stack.clock.set(now + timedelta(days=2) - timedelta(hours=5))
    daily_run()
    assert mails() == 1
    world.stack.clock.set(now)
    world.holds(tenant)


# -- poison: a malformed body on each queue ends in its DLQ, with a reason in the logs

POISON_QUEUES = {
    "ingest": ("IngestQueueUrl", "QC_INGEST_DLQ_URL"),
    "events": ("QC_EVENTS_QUEUE_URL", "QC_EVENTS_DLQ_URL"),
    "inbound": ("QC_INBOUND_QUEUE_URL", "QC_INBOUND_DLQ_URL"),
}
POISON_REASONS = {
    "ingest": "MalformedEvent",
    "events": "JSONDecodeError",
    "inbound": "JSONDecodeError",
}


@pytest.mark.parametrize("queue", sorted(POISON_QUEUES))
def test_poison_message_is_dead_lettered_with_a_reason(
    world: World, queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    source, dlq = (world.env.get(n) or world.stack.outputs[n] for n in POISON_QUEUES[queue])
    sqs = world.stack.client("sqs")
    body = '{"Records": "Zebedee Quillfeather, not a list"'  # malformed, and it holds a name
    sent = sqs.send_message(QueueUrl=source, MessageBody=body)["MessageId"]
    # When the runtime delivers it until the queue gives up on it
    with caplog.at_level(logging.INFO):
        report = world.stack.drain()
    # Then it is in the dead-letter queue, intact, after maxReceiveCount tries
    assert report.dead_lettered == 1, report
    [dead] = sqs.receive_message(
        QueueUrl=dlq, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )["Messages"]
    sqs.delete_message(QueueUrl=dlq, ReceiptHandle=dead["ReceiptHandle"])
    assert (dead["MessageId"], dead["Body"]) == (sent, body)
    assert int(dead["Attributes"]["ApproximateReceiveCount"]) >= 5
    # And each try is logged under the id the DLQ shows, with a reason code, not the body
    tries = [r for r in caplog.records if getattr(r, "message_id", None) == sent]
    assert [int(getattr(r, "receive_count", 0)) for r in tries] == [1, 2, 3, 4, 5]
    assert {getattr(r, "reason", None) for r in tries} == {POISON_REASONS[queue]}
    logged = caplog.text + "".join(str(r.__dict__) for r in tries)
    assert "Zebedee" not in logged and "Quillfeather" not in logged
    assert world.stack.runtime.queue_depth(source) == 0


@pytest.fixture(autouse=True)
def _quiet_after(world: World) -> Iterator[None]:
    yield
    world.stack.drain()
