"""Clearance per channel with in-memory ports: tags on the placed copy, rechecks, the checker."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from quitclaim.domain.clearance import TAG_ASSET_ID, TAG_UNTIL, clearance_tags
from quitclaim.domain.errors import ValidationFailed
from quitclaim.domain.models import AssetStatus, Consent, TenantPolicy
from quitclaim.domain.registry import Page, Principal, Role
from quitclaim.usecases.asset_decisions import Placement
from quitclaim.usecases.conservation import ConservationCheck
from quitclaim.usecases.recheck import Recheck
from quitclaim.usecases.review import Review
from quitclaim.usecases.tenant_admin import _policy_changes
from tests.unit.fakes import FakeAssets, FakeStore, FixedClock, fake_image
from tests.unit.test_scan_asset import LIB, NOW, QUA, UP, World

PURPOSES = frozenset({"web", "social", "print", "internal"})
WEB_UNTIL = NOW + timedelta(days=30)
SOCIAL_UNTIL = NOW + timedelta(days=10)


class ListingStore(FakeStore):
    def keys(self, bucket: str, prefix: str) -> list[str]:
        return sorted(k for (b, k) in self.objects if b == bucket and k.startswith(prefix))


class PagedAssets(FakeAssets):
    def page(self, tenant: str, **_: Any) -> Page:
        return Page(tuple(r for (t, _), r in self.records.items() if t == tenant))


def channels_world(publishing: frozenset[str] = frozenset({"web"})) -> World:
    """Given sub_ok consented to web (one quitclaim) and social (another), not print."""
    world = World()
    world.store = ListingStore()
    world.assets = PagedAssets()
    world.scan._store = world.store
    world.scan._assets = world.assets
    world.tenants.policies["acme"] = TenantPolicy(
        "acme", purposes=PURPOSES, publishing_purposes=publishing
    )
    world.consents.items.append(
        Consent(
            "acme",
            "sub_ok",
            "con_social",
            frozenset({"social"}),
            NOW - timedelta(days=1),
            SOCIAL_UNTIL,
        )
    )
    return world


def recheck(world: World) -> Recheck:
    placement = Placement(store=world.store, assets=world.assets, clock=FixedClock(NOW))
    return Recheck(
        assets=world.assets,
        consents=world.consents,
        placement=placement,
        clock=FixedClock(NOW),
        library_bucket=LIB,
        quarantine_bucket=QUA,
    )


def checker(world: World) -> ConservationCheck:
    return ConservationCheck(
        assets=world.assets,  # type: ignore[arg-type]
        consents=world.consents,
        store=world.store,  # type: ignore[arg-type]
        clock=FixedClock(NOW),
        uploads_bucket=UP,
        library_bucket=LIB,
        quarantine_bucket=QUA,
    )


def consent(world: World, consent_id: str) -> Consent:
    return next(c for c in world.consents.items if c.consent_id == consent_id)


def test_a_photo_cleared_for_web_and_social_is_published_with_its_tags() -> None:
    world = channels_world()
    # When a photo of the person is uploaded (for print: publishing purposes decide)
    result = world.scan(world.upload("acme/ann.jpg", fake_image((0, 120)), purpose="print"))
    # Then it is in the library, the decision says per channel why
    assert result.status is AssetStatus.APPROVED
    record = world.assets.get("acme", result.asset_id)
    assert record is not None
    channels = record.clearance["channels"]
    assert channels["web"] == {"cleared": True, "reasons": []}
    assert channels["social"] == {"cleared": True, "reasons": []}
    assert channels["print"] == {"cleared": False, "reasons": ["out_of_scope"]}
    assert record.clearance["publishing"] == ["web"]
    # And the library copy carries one tag per channel, the earliest expiry, the id
    assert world.store.tags(LIB, "acme/ann.jpg") == {
        TAG_ASSET_ID: result.asset_id,
        "quitclaim-channel-web": "cleared",
        "quitclaim-channel-social": "cleared",
        "quitclaim-channel-print": "held",
        "quitclaim-channel-internal": "held",
        TAG_UNTIL: SOCIAL_UNTIL.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    assert checker(world).check("acme").holds


def test_withdrawing_a_channel_retags_and_withdrawing_a_publishing_one_pulls() -> None:
    world = channels_world()
    result = world.scan(world.upload("acme/ann.jpg", fake_image((0, 120))))
    # When the social quitclaim is withdrawn
    world.consents.revoke(consent(world, "con_social"), NOW - timedelta(seconds=1), source="t")
    changes = recheck(world).recheck_subject("acme", "sub_ok", actor="test")
    # Then it stays in the library (web still cleared), its tags say social is held
    assert changes == []
    assert world.where("ann.jpg") == ["library/acme/ann.jpg"]
    tags = world.store.tags(LIB, "acme/ann.jpg")
    assert tags["quitclaim-channel-social"] == "held"
    assert tags["quitclaim-channel-web"] == "cleared"
    assert tags[TAG_UNTIL] == WEB_UNTIL.strftime("%Y-%m-%dT%H:%M:%SZ")
    record = world.assets.get("acme", result.asset_id)
    assert record is not None
    assert record.clearance["channels"]["social"]["reasons"] == ["consent_revoked"]
    assert checker(world).check("acme").holds
    # When the web quitclaim is withdrawn too (a publishing purpose)
    world.consents.revoke(consent(world, "con_1"), NOW - timedelta(seconds=1), source="t")
    changes = recheck(world).recheck_subject("acme", "sub_ok", actor="test")
    # Then the image leaves the library, and its quarantined copy says so
    assert [c.after for c in changes] == [AssetStatus.QUARANTINED]
    assert world.where("ann.jpg") == ["quarantine/acme/ann.jpg"]
    assert world.store.tags(QUA, "acme/ann.jpg")["quitclaim-channel-web"] == "held"


def test_every_publishing_purpose_must_be_cleared() -> None:
    # Given a tenant that publishes only what is cleared for web and print
    world = channels_world(frozenset({"web", "print"}))
    # When a photo of the person (web and social, not print) is uploaded
    result = world.scan(world.upload("acme/ann.jpg", fake_image((0, 120))))
    # Then it is held, for the print channel's reason
    assert result.status is AssetStatus.QUARANTINED
    assert result.reasons == ("out_of_scope",)
    assert world.store.tags(QUA, "acme/ann.jpg")["quitclaim-channel-print"] == "held"


def test_without_publishing_purposes_the_upload_purpose_decides_as_before() -> None:
    world = channels_world(frozenset())
    # When uploaded for print, which the person did not consent to
    held = world.scan(world.upload("acme/a.jpg", fake_image((0, 120)), purpose="print"))
    # Then it is held as before (print was the one purpose judged), and for web it is published
    assert (held.status, held.reasons) == (AssetStatus.QUARANTINED, ("out_of_scope",))
    shown = world.scan(world.upload("acme/b.jpg", fake_image((0, 120)), purpose="web"))
    assert shown.status is AssetStatus.APPROVED


def test_the_checker_reports_tags_that_disagree_with_the_decision() -> None:
    world = channels_world()
    result = world.scan(world.upload("acme/ann.jpg", fake_image((0, 120))))
    assert checker(world).check("acme").holds
    # When someone (or a lost write) leaves the copy saying print is cleared
    tags = world.store.tags(LIB, "acme/ann.jpg")
    world.store.put_tags(LIB, "acme/ann.jpg", {**tags, "quitclaim-channel-print": "cleared"})
    # Then the checker reports exactly that tag
    report = checker(world).check("acme")
    assert [(v.rule, v.asset_id, v.detail) for v in report.violations] == [
        (
            "tags_disagree",
            result.asset_id,
            "object tags disagree with the decision: quitclaim-channel-print",
        )
    ]
    # And a copy without any tags is reported too
    world.store.put_tags(LIB, "acme/ann.jpg", {})
    assert [v.rule for v in checker(world).check("acme").violations] == ["tags_disagree"]


def test_tags_stay_within_s3_limits_and_name_no_one() -> None:
    # Given a decision for twelve channels (S3 allows 10 tags per object)
    channels = {f"p{i:02d}": {"cleared": i % 2 == 0, "reasons": []} for i in range(12)}
    clearance = {"publishing": ["p11"], "channels": channels, "until": None}
    tags = clearance_tags("a" * 32, clearance)
    # Then at most 10 tags, the publishing purpose among them, single values only
    assert len(tags) == 10
    assert tags["quitclaim-channel-p11"] == "held"
    assert tags[TAG_UNTIL] == "never"
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 +-=._:/@")
    for key, value in tags.items():
        assert set(key) <= allowed and set(value) <= allowed, (key, value)
        assert len(key) <= 128 and len(value) <= 256


def test_a_record_from_before_is_rechecked_as_before_and_keeps_no_clearance() -> None:
    world = channels_world()
    result = world.scan(world.upload("acme/ann.jpg", fake_image((0, 120))))
    record = world.assets.get("acme", result.asset_id)
    assert record is not None
    world.assets.records[("acme", result.asset_id)] = replace(record, clearance={})
    world.consents.revoke(consent(world, "con_1"), NOW - timedelta(seconds=1), source="t")
    changes = recheck(world).recheck_subject("acme", "sub_ok", actor="test")
    assert [c.after for c in changes] == [AssetStatus.QUARANTINED]
    after = world.assets.get("acme", result.asset_id)
    assert after is not None and after.clearance == {}


def test_publishing_purposes_is_a_policy_field_among_the_purposes() -> None:
    current = TenantPolicy("acme", purposes=PURPOSES)
    # When an administrator sets it, it is kept as a set of the tenant's purposes
    changed = _policy_changes(current, {"publishing_purposes": [" Web ", "social"]})
    assert changed["publishing_purposes"] == frozenset({"web", "social"})
    # And a purpose the tenant does not use is refused, as is dropping one still required
    with pytest.raises(ValidationFailed) as failed:
        _policy_changes(current, {"publishing_purposes": ["billboards"]})
    assert failed.value.field == "publishing_purposes"
    required = replace(current, publishing_purposes=frozenset({"print"}))
    with pytest.raises(ValidationFailed):
        _policy_changes(required, {"purposes": ["web", "social"], "default_purpose": "web"})
    # And an empty list goes back to the default (the upload's own purpose)
    assert _policy_changes(required, {"publishing_purposes": []})["publishing_purposes"] == (
        frozenset()
    )


def test_a_release_by_two_reviewers_clears_the_channels_it_waived() -> None:
    world = channels_world()
    # Given a photo held for a stranger beside the consented person
    result = world.scan(world.upload("acme/two.jpg", fake_image((0, 120), (None, 120))))
    assert (result.status, result.reasons) == (AssetStatus.QUARANTINED, ("unknown_face",))
    assert world.store.tags(QUA, "acme/two.jpg")["quitclaim-channel-web"] == "held"
    placement = Placement(store=world.store, assets=world.assets, clock=FixedClock(NOW))
    review = Review(
        assets=world.assets,
        subjects=world.subjects,
        placement=placement,
        recheck=recheck(world),
        clock=FixedClock(NOW),
        library_bucket=LIB,
    )
    ana, ben = (Principal("acme", f"key_{p}", Role.REVIEWER, person=p) for p in ("ana", "ben"))
    # When two reviewers release it despite the stranger
    review.release(ana, result.asset_id, "the stranger signed on paper")
    review.release(ben, result.asset_id, "the stranger signed on paper")
    # Then the library copy says the channels the person consented to are cleared
    tags = world.store.tags(LIB, "acme/two.jpg")
    assert tags["quitclaim-channel-web"] == "cleared"
    assert tags["quitclaim-channel-social"] == "cleared"
    assert tags["quitclaim-channel-print"] == "held"
    assert checker(world).check("acme").holds
