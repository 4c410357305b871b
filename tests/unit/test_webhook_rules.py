"""Webhook rules, pure: the shipped mappings on their samples, mapping errors, retries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quitclaim.domain.webhooks import (
    ConsentAction,
    ConsentMapping,
    MappingInvalid,
    PayloadUnmappable,
    SecretSet,
    lookup,
    new_secret,
    next_attempt_at,
    retry_delay,
)
from quitclaim.usecases.webhook_admin import presets

FOLDER = resources.files("quitclaim") / "webhook_mappings"


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FOLDER / "samples" / f"{name}.json").read_text("utf-8"))
    return loaded


def mapping(name: str) -> ConsentMapping:
    return ConsentMapping.parse(presets()[name])


# ---------------------------------------------------------------- the shipped mappings


def test_the_presets_ship_each_with_a_sample() -> None:
    assert set(presets()) == {
        "generic-form",
        "crm-contact-property",
        "newsletter-unsubscribe",
        "hubspot-contact-property",
        "mailchimp-unsubscribe",
        "typeform-quitclaim",
    }
    samples = {entry.name.rsplit(".", 1)[0] for entry in (FOLDER / "samples").iterdir()}
    assert set(presets()) <= samples


def test_the_generic_form_sample_is_a_grant_with_its_evidence() -> None:
    event = mapping("generic-form").apply(sample("generic-form"))
    assert event is not None
    assert event.action is ConsentAction.GRANTED
    assert (event.external_ref, event.email) == ("crm-1042", "rose.leslie@example.org")
    assert event.purposes == ("web", "print")
    assert event.valid_from == datetime(2026, 11, 26, 10, tzinfo=UTC)
    assert event.valid_until == datetime(2027, 11, 26, tzinfo=UTC)
    assert event.evidence_url and event.evidence_url.endswith("quitclaim.pdf")
    assert event.signer == "Rose Leslie"


def test_the_crm_sample_withdraws_by_contact_id() -> None:
    event = mapping("crm-contact-property").apply(sample("crm-contact-property"))
    assert event is not None
    assert event.action is ConsentAction.WITHDRAWN
    assert event.external_ref == "5150" and event.email is None
    assert event.valid_from == datetime.fromtimestamp(1795600000, tz=UTC)


def test_the_crm_mapping_ignores_other_properties() -> None:
    other = {**sample("crm-contact-property"), "propertyName": "lifecyclestage"}
    assert mapping("crm-contact-property").apply(other) is None


def test_the_newsletter_sample_withdraws_by_email_case_insensitively() -> None:
    event = mapping("newsletter-unsubscribe").apply(sample("newsletter-unsubscribe"))
    assert event is not None
    assert event.action is ConsentAction.WITHDRAWN
    assert event.email == "rose.leslie@example.org"
    assert mapping("newsletter-unsubscribe").apply({"type": "subscribe", "data": {}}) is None


# ---------------------------------------------------------------- payload errors name the field


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda p: p["consent"].update(valid_until=20271126), "consent.valid_until"),
        (lambda p: p["consent"].update(valid_until="next year"), "consent.valid_until"),
        (lambda p: p["consent"].update(signed_at="2026-11-26T10:00:00"), "consent.signed_at"),
        (lambda p: p["consent"].update(purposes=[1, 2]), "consent.purposes"),
        (lambda p: p.update(event="consent.maybe"), "event"),
        (lambda p: p.update(person={"name": "only a name"}), "person.id"),
        (lambda p: p["person"].update(id={"nested": True}), "person.id"),
    ],
)
def test_a_payload_that_does_not_fit_names_its_field(change: Any, field: str) -> None:
    payload = sample("generic-form")
    change(payload)
    with pytest.raises(PayloadUnmappable) as raised:
        mapping("generic-form").apply(payload)
    assert raised.value.field == field
    assert raised.value.http_status == 422


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"subject": {"email": "e"}}, "mapping.event"),
        ({"event": {"value": "granted"}}, "mapping.subject"),
        ({"event": "x", "subject": {"phone": "p"}}, "mapping.subject"),
        ({"event": "x", "subject": {"email": "a..b"}}, "mapping.subject.email"),
        ({"event": {"path": "x", "value": 1}, "subject": {"email": "e"}}, "mapping.event"),
        ({"event": "x", "subject": {"email": "e"}, "colour": "red"}, "mapping.colour"),
        ({"event": "x", "subject": {"email": "e"}, "when": [{"path": "a"}]}, "mapping.when"),
        ({"event": {"path": "x", "type": "money"}, "subject": {"email": "e"}}, "mapping.event"),
    ],
)
def test_a_broken_mapping_is_refused_naming_the_key(document: Any, field: str) -> None:
    with pytest.raises(MappingInvalid) as raised:
        ConsentMapping.parse(document)
    assert raised.value.field == field


def test_lookup_walks_dots_and_indexes_and_never_raises() -> None:
    payload = {"a": {"b": [{"c": 1}, {"c": 2}]}, "x": None}
    assert lookup(payload, "a.b[1].c") == 2
    assert lookup(payload, "a.b[5].c") is None
    assert lookup(payload, "x.y") is None
    assert lookup([1, 2], "a") is None
    assert lookup(payload, "a..b") is None


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=20,
    )
)
def test_any_json_either_maps_or_is_refused_with_a_field(payload: Any) -> None:
    # Whatever a tool sends, the mapper answers an event, None, or a named refusal
    for name in presets():
        try:
            mapping(name).apply(payload)
        except PayloadUnmappable as exc:
            assert exc.field


# ---------------------------------------------------------------- retries


@given(st.integers(min_value=1, max_value=60), st.floats(min_value=0, max_value=1))
def test_retry_delays_grow_are_capped_and_jittered_down_only(failures: int, jitter: float) -> None:
    delay = retry_delay(failures, jitter)
    base = min(timedelta(seconds=30) * 2 ** min(failures - 1, 20), timedelta(hours=6))
    assert base * 0.8 <= delay <= base
    assert retry_delay(failures + 1, 1.0) >= retry_delay(failures, 1.0)


@given(st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=200))
def test_retries_go_on_for_at_least_the_window_then_stop(jitters: list[float]) -> None:
    # Given a receiver that never answers, retried with any jitter
    first = datetime(2026, 11, 26, 12, tzinfo=UTC)
    window = timedelta(hours=24)
    at, failures = first, 0
    while True:
        failures += 1
        due = next_attempt_at(first, at, failures, window, jitters[failures % len(jitters)])
        if due is None:
            break
        assert due > at and due.microsecond == 0
        at = due
    # Then the last attempt was at least the window after the first, within one gap more
    assert window <= at - first <= window + timedelta(hours=6)
    assert failures < 30


def test_a_rotated_secret_is_valid_only_during_its_overlap() -> None:
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    old, new = new_secret(), new_secret()
    assert old != new and old.startswith("whsec_")
    rotated = SecretSet(new, old, now + timedelta(hours=1))
    assert rotated.valid(now) == [new, old]
    assert rotated.valid(now + timedelta(hours=1)) == [new]
    assert SecretSet(new).valid(now) == [new]
