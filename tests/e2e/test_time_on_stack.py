"""Time on the local stack: exact expiry, the sweep, reminders and TTL purges.

Each test moves the stack's clock forward and puts it back afterwards, so the
rest of the session keeps deciding at DEMO_NOW.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from quitclaim.adapters.schedules import schedule_name
from quitclaim.bootstrap import registry_service, reminders_service
from quitclaim.domain.errors import Forbidden
from quitclaim.domain.models import TenantPolicy
from tests import inputs
from tests.conftest import DEMO_NOW

pytestmark = pytest.mark.e2e
# One tenant per test: each enrols the same face, and two people with one face
# in one gallery are (rightly) ambiguous.
TENANT = ""
# Midnight UTC three and a half days after DEMO_NOW; a morning almost three days after it
# (ticks longer than two days, as the months-long ones were: the hourly sweep coalesced).
EXPIRY_T = datetime(2026, 11, 30, tzinfo=UTC)
LOST_T = datetime(2026, 11, 29, 10, tzinfo=UTC)


@pytest.fixture
def stack(local_stack: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    global TENANT
    TENANT = "e2e-" + request.node.name.removeprefix("test_").replace("_", "-")[:40]
    registry_service().create_tenant(TenantPolicy(tenant=TENANT))
    yield local_stack
    local_stack.clock.set(DEMO_NOW)


def _person(name: str, email: str | None = None) -> str:
    registry = registry_service()
    sid = registry.enrol_subject(
        TENANT, name, [inputs.small_enrolment_jpeg()], biometric_consent=True
    )
    if email:
        registry.update_subject(TENANT, sid, {"email": email})
    return sid


def _where(stack: Any, name: str) -> str:
    s3 = stack.client("s3")
    for label, output in (("library", "LibraryBucketName"), ("quarantine", "QuarantineBucketName")):
        try:
            s3.head_object(Bucket=stack.outputs[output], Key=f"{TENANT}/{name}")
            return label
        except s3.exceptions.ClientError:
            continue
    return "nowhere"


def _upload(stack: Any, *names: str) -> None:
    for name in names:
        stack.client("s3").put_object(
            Bucket=stack.outputs["UploadsBucketName"],
            Key=f"incoming/{TENANT}/{name}",
            Body=inputs.small_portrait_jpeg(),
        )
    stack.drain()


def _reasons(stack: Any, name: str) -> list[str]:
    from quitclaim.adapters.dynamo import AssetModel

    [item] = [a for a in AssetModel.scan() if a.tenant == TENANT and a.path == name]
    return list(item.reasons)


def test_assets_leave_the_library_at_the_exact_expiry(stack: Any) -> None:
    # Given obama's consent expiring at T and two approved images of him
    sid = _person("Exact Expiry")
    # Days ahead, not months: every simulated day fires each daily job once (reminders,
    # retention, the digest...) at ~0.7 s of CPU a day; three and a half days still walk each of
    # them, and the sweep, several times before T. What is proved is the moment, not the span.
    t = EXPIRY_T
    consent = registry_service().grant_consent(TENANT, sid, ["web"], DEMO_NOW, t, source="test")
    _upload(stack, "exact-1.jpg", "exact-2.jpg")
    assert [_where(stack, n) for n in ("exact-1.jpg", "exact-2.jpg")] == ["library"] * 2
    # When time reaches just before T / Then nothing moved
    stack.tick(t - timedelta(minutes=1))
    assert [_where(stack, n) for n in ("exact-1.jpg", "exact-2.jpg")] == ["library"] * 2
    # When time passes T / Then both are out of the library, expired, audited
    stack.tick(t + timedelta(minutes=1))
    assert [_where(stack, n) for n in ("exact-1.jpg", "exact-2.jpg")] == ["quarantine"] * 2
    assert _reasons(stack, "exact-1.jpg") == ["consent_expired"]
    view = registry_service().consent_view(TENANT, sid, consent.consent_id)
    assert [e.event for e in view.history] == ["granted", "expired"]
    # And the one-time schedule deleted itself after firing
    group = stack.function_env("IngestFunction")["QC_SCHEDULE_GROUP"]
    names = [
        s["Name"] for s in stack.client("scheduler").list_schedules(GroupName=group)["Schedules"]
    ]
    assert schedule_name(consent) not in names


def test_the_sweep_catches_a_schedule_deleted_by_hand(stack: Any) -> None:
    sid = _person("Lost Schedule")
    # Days ahead (as above): the tick passes T by two hours, so the hourly sweep runs after T
    # whatever the length of the walk to it.
    t = LOST_T
    consent = registry_service().grant_consent(TENANT, sid, ["web"], DEMO_NOW, t, source="test")
    _upload(stack, "lost.jpg")
    assert _where(stack, "lost.jpg") == "library"
    # Given the one-time schedule removed by hand before it fires
    group = stack.function_env("IngestFunction")["QC_SCHEDULE_GROUP"]
    stack.client("scheduler").delete_schedule(Name=schedule_name(consent), GroupName=group)
    # When the clock passes T and the hourly sweep runs
    stack.tick(t + timedelta(hours=2))
    # Then the image is out of the library, and the expiry was recorded once
    assert _where(stack, "lost.jpg") == "quarantine"
    view = registry_service().consent_view(TENANT, sid, consent.consent_id)
    assert [e.event for e in view.history].count("expired") == 1


def test_reminders_are_sent_once_and_their_links_work(stack: Any) -> None:
    # Given a consent expiring in 31 days, for a person with an e-mail address
    sid = _person("Reminded Person", email="reminded@example.org")
    expires = DEMO_NOW.replace(hour=12) + timedelta(days=31)
    consent = registry_service().grant_consent(
        TENANT, sid, ["web"], DEMO_NOW - timedelta(days=300), expires, source="test"
    )
    _upload(stack, "reminded.jpg")
    before = len(stack.sent_emails())
    # When 40 days pass, one daily run at a time
    for day in range(1, 41):
        stack.tick(DEMO_NOW + timedelta(days=day))
    # (by recipient, not substring: the fault cells' person is faults-reminded@example.org, and
    # the session's stack walks their consent's reminders too when they ran on this worker first)
    mails = [m for m in stack.sent_emails()[before:] if "reminded@example.org" in m["to"]]
    # Then the 30-, 7- and 1-day reminders went out exactly once each
    assert len(mails) == 3, mails
    # And after expiry the image is held
    assert _where(stack, "reminded.jpg") == "quarantine"
    link = _link(mails[-1], "renew")
    # A tampered link changes nothing
    with pytest.raises(Forbidden):
        reminders_service().follow_link("renew", link[:-3] + "abc")
    assert _where(stack, "reminded.jpg") == "quarantine"
    # The renewal link renews and releases the image
    reminders_service().follow_link("renew", link)
    assert _where(stack, "reminded.jpg") == "library"
    # The withdrawal link revokes and pulls it
    reminders_service().follow_link("withdraw", _link(mails[-1], "withdraw"))
    assert _where(stack, "reminded.jpg") == "quarantine"
    view = registry_service().consent_view(TENANT, sid, consent.consent_id)
    assert [e.event for e in view.history][-2:] == ["renewed", "revoked"]


def _link(mail: Any, action: str) -> str:
    text = str(mail)
    start = text.index(f"/links/{action}?token=")
    url = text[start:].split()[0].split("<")[0].split('"')[0].split("\\n")[0]
    return parse_qs(urlparse(url).query)["token"][0]


def test_a_ttl_deletion_purges_the_subject_from_the_gallery(stack: Any) -> None:
    registry = registry_service()
    sid = _person("Retained Person")
    registry.grant_consent(TENANT, sid, ["web"], DEMO_NOW - timedelta(days=1), None, source="t")
    _upload(stack, "retained-1.jpg")
    assert _where(stack, "retained-1.jpg") == "library"
    # Given the person's record retained only until tomorrow
    registry.retain_subject_until(TENANT, sid, DEMO_NOW + timedelta(days=1))
    # When DynamoDB TTL removes it
    report = stack.tick(DEMO_NOW + timedelta(days=2))
    assert report is not None
    # Then the same face is no longer recognised (the warm gallery was purged)
    _upload(stack, "retained-2.jpg")
    assert _where(stack, "retained-2.jpg") == "quarantine"
    assert _reasons(stack, "retained-2.jpg") == ["unknown_face"]
