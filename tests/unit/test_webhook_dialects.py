"""Webhook dialects, pure: HubSpot, Typeform and Mailchimp signatures and framing.

Known answers come from HubSpot's documentation (v1, v2); v3 and Typeform
are computed here from their documented recipes with the standard library,
independently of the code under test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import pytest

from quitclaim.domain.dialects import (
    BodyUnreadable,
    Dialect,
    form_to_tree,
    hubspot_v1,
    hubspot_v2,
    hubspot_v3,
    reread,
    typeform_signature,
    unpack,
    verify_hubspot,
    verify_token,
    verify_typeform,
)
from quitclaim.domain.webhooks import ConsentAction, ConsentMapping
from quitclaim.usecases.webhook_admin import presets

SAMPLES = resources.files("quitclaim") / "webhook_mappings" / "samples"
HS_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
HS_BODY = (
    b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
    b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,'
    b'"changeSource":"CRM","changeFlag":"NEW","appId":54321}]'
)
NOW = datetime(2026, 11, 26, 10, tzinfo=UTC)
URI = "https://api.example.org/webhooks/acme/crm"


def mapping(name: str) -> ConsentMapping:
    return ConsentMapping.parse(presets()[name])


# ---------------------------------------------------------------- HubSpot


def test_hubspot_v1_matches_the_documented_example() -> None:
    assert hubspot_v1(HS_SECRET, HS_BODY) == (
        "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
    )


def test_hubspot_v2_matches_the_documented_example() -> None:
    assert hubspot_v2(HS_SECRET, "GET", "https://www.example.com/webhook_uri", b"") == (
        "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
    )


def test_hubspot_v3_follows_the_documented_recipe() -> None:
    # Given the recipe: base64 HMAC-SHA256(secret, method + URI + body + timestamp)
    stamp = str(int(NOW.timestamp() * 1000))
    expected = base64.b64encode(
        hmac.new(
            HS_SECRET.encode(), b"POST" + URI.encode() + HS_BODY + stamp.encode(), hashlib.sha256
        ).digest()
    ).decode()
    # Then the signer agrees, and a request so signed verifies
    assert hubspot_v3(HS_SECRET, "POST", URI, HS_BODY, stamp) == expected
    headers = {"X-HubSpot-Signature-v3": expected, "X-HubSpot-Request-Timestamp": stamp}
    assert verify_hubspot([HS_SECRET], "POST", URI, headers, HS_BODY, NOW)


@pytest.mark.parametrize(
    "change", ["stale", "future", "body", "uri", "method", "secret", "no_timestamp"]
)
def test_a_hubspot_v3_request_changed_in_any_way_is_refused(change: str) -> None:
    stamp = str(int(NOW.timestamp() * 1000))
    headers = {
        "X-HubSpot-Signature-v3": hubspot_v3(HS_SECRET, "POST", URI, HS_BODY, stamp),
        "X-HubSpot-Request-Timestamp": stamp,
    }
    now, body, uri, method, secret = NOW, HS_BODY, URI, "POST", HS_SECRET
    if change == "stale":
        now = NOW + timedelta(minutes=5, seconds=1)
    elif change == "future":
        now = NOW - timedelta(minutes=5, seconds=1)
    elif change == "body":
        body = HS_BODY.replace(b"123", b"124")
    elif change == "uri":
        uri = "http://lambda.internal/webhooks/acme/crm"
    elif change == "method":
        method = "PUT"
    elif change == "secret":
        secret = "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"
    elif change == "no_timestamp":
        del headers["X-HubSpot-Request-Timestamp"]
    assert not verify_hubspot([secret], method, uri, headers, body, now)


def test_hubspot_v1_and_v2_headers_verify_and_v1_is_the_default_version() -> None:
    v1 = {"X-HubSpot-Signature": hubspot_v1(HS_SECRET, HS_BODY)}
    v2 = {
        "X-HubSpot-Signature": hubspot_v2(HS_SECRET, "POST", URI, HS_BODY),
        "X-HubSpot-Signature-Version": "v2",
    }
    assert verify_hubspot([HS_SECRET], "POST", URI, v1, HS_BODY, NOW)
    assert verify_hubspot([HS_SECRET], "POST", URI, v2, HS_BODY, NOW)
    assert not verify_hubspot(
        [HS_SECRET], "POST", URI, {**v2, "X-HubSpot-Signature-Version": "v1"}, HS_BODY, NOW
    )
    assert not verify_hubspot([HS_SECRET], "POST", URI, {}, HS_BODY, NOW)


def test_a_hubspot_batch_is_one_delivery_per_event_id_and_a_retry_is_the_same_event() -> None:
    events = [
        {"eventId": 7, "objectId": 1, "attemptNumber": 0},
        {"eventId": 8, "objectId": 2, "attemptNumber": 0},
    ]
    units = unpack(Dialect.HUBSPOT, json.dumps(events).encode())
    assert [u.delivery_id for u in units] == ["hs-7", "hs-8"]
    # HubSpot's retry raises attemptNumber: still the same event
    retried = unpack(Dialect.HUBSPOT, json.dumps([{**events[0], "attemptNumber": 3}]).encode())
    assert retried[0].digest == units[0].digest
    changed = unpack(Dialect.HUBSPOT, json.dumps([{**events[0], "objectId": 9}]).encode())
    assert changed[0].digest != units[0].digest
    assert reread(Dialect.HUBSPOT, units[1].stored) == events[1]


@pytest.mark.parametrize("body", [b"{}", b"[]", b"[{}]", b'[{"eventId": true}]', b"nope"])
def test_a_hubspot_body_that_is_not_a_batch_of_events_is_refused(body: bytes) -> None:
    with pytest.raises(BodyUnreadable):
        unpack(Dialect.HUBSPOT, body)


def test_the_hubspot_preset_maps_its_sample_and_its_value_table() -> None:
    # Given the sample in HubSpot's wire format (a JSON array)
    [event] = json.loads((SAMPLES / "hubspot-contact-property.json").read_text("utf-8"))
    # Then a withdrawal names the contact and every purpose
    found = mapping("hubspot-contact-property").apply(event)
    assert found is not None and found.action is ConsentAction.WITHDRAWN
    assert (found.external_ref, found.purposes) == ("123", ())
    assert found.valid_from == datetime.fromtimestamp(event["occurredAt"] / 1000, tz=UTC)
    # And the table maps values to purposes
    social = mapping("hubspot-contact-property").apply(
        {**event, "propertyValue": "withdrawn_social"}
    )
    assert social is not None and social.purposes == ("social",)
    other = mapping("hubspot-contact-property").apply({**event, "propertyName": "lifecyclestage"})
    assert other is None


# ---------------------------------------------------------------- Typeform


def test_a_typeform_signature_is_base64_hmac_of_the_body() -> None:
    body = (SAMPLES / "typeform-quitclaim.json").read_bytes()
    expected = (
        "sha256="
        + base64.b64encode(hmac.new(b"tf-secret-123", body, hashlib.sha256).digest()).decode()
    )
    assert typeform_signature("tf-secret-123", body) == expected
    assert verify_typeform(["tf-secret-123"], {"Typeform-Signature": expected}, body)
    assert not verify_typeform(["tf-secret-124"], {"Typeform-Signature": expected}, body)
    assert not verify_typeform(["tf-secret-123"], {"Typeform-Signature": expected}, body + b" ")
    assert not verify_typeform(["tf-secret-123"], {}, body)


def test_the_typeform_preset_reads_answers_by_field_ref() -> None:
    body = (SAMPLES / "typeform-quitclaim.json").read_bytes()
    [unit] = unpack(Dialect.TYPEFORM, body)
    assert unit.delivery_id == "tf-01JD8X4Q2Z3K7M9P0R5T6V8W1Y"
    assert unit.stored == body.decode()  # the response as sent: the evidence
    event = mapping("typeform-quitclaim").apply(reread(Dialect.TYPEFORM, unit.stored))
    assert event is not None and event.action is ConsentAction.GRANTED
    assert (event.external_ref, event.email) == ("crm-1042", "rose.leslie@example.org")
    assert event.purposes == ("web", "social")
    assert event.signer == "Rose Leslie"
    assert event.valid_from == datetime(2026, 11, 26, tzinfo=UTC)
    assert event.evidence_url and event.evidence_url.endswith("signature.png")


# ---------------------------------------------------------------- Mailchimp


def mailchimp(body: bytes) -> Any:
    [unit] = unpack(Dialect.MAILCHIMP, body)
    return unit, mapping("mailchimp-unsubscribe").apply(reread(Dialect.MAILCHIMP, unit.stored))


def test_a_form_encoded_mailchimp_unsubscribe_withdraws_every_purpose_of_the_email() -> None:
    body = (SAMPLES / "mailchimp-unsubscribe.txt").read_bytes()
    unit, event = mailchimp(body)
    assert unit.payload["data"]["merges"]["EMAIL"] == "Rose.Leslie@example.org"
    assert event.action is ConsentAction.WITHDRAWN
    assert (event.email, event.purposes) == ("rose.leslie@example.org", ())
    # The same form again is the same delivery (Mailchimp sends no id)
    assert mailchimp(body)[0].delivery_id == unit.delivery_id


def test_mailchimp_upemail_moves_the_address_and_cleaned_marks_it_unreachable() -> None:
    _, moved = mailchimp(
        b"type=upemail&fired_at=2026-11-26+09%3A16%3A00&data%5Blist_id%5D=a6b5da1054"
        b"&data%5Bnew_id%5D=51da8c3259&data%5Bnew_email%5D=rose%40new.example"
        b"&data%5Bold_email%5D=Rose.Leslie%40example.org"
    )
    assert moved.action is ConsentAction.EMAIL_CHANGED
    assert (moved.email, moved.new_email) == ("rose.leslie@example.org", "rose@new.example")
    _, cleaned = mailchimp(
        b"type=cleaned&fired_at=2026-11-26+09%3A17%3A00&data%5Blist_id%5D=a6b5da1054"
        b"&data%5Bcampaign_id%5D=4fjk2ma9xd&data%5Breason%5D=hard"
        b"&data%5Bemail%5D=rose%40new.example"
    )
    assert cleaned.action is ConsentAction.UNREACHABLE
    _, profile = mailchimp(b"type=profile&data%5Bemail%5D=rose%40new.example")
    assert profile is None


def test_a_mailchimp_url_token_is_compared_with_each_valid_one() -> None:
    assert verify_token(["tok-current", "tok-previous"], "tok-previous")
    assert not verify_token(["tok-current"], "tok-curren")
    assert not verify_token(["tok-current"], None)


def test_form_keys_become_a_tree_and_the_last_value_wins() -> None:
    tree = form_to_tree([("a[b][c]", "1"), ("a[d]", "2"), ("e", "3"), ("e", "4"), ("[x]", "5")])
    assert tree == {"a": {"b": {"c": "1"}, "d": "2"}, "e": "4"}


@pytest.mark.parametrize("body", [b"\xff\xfe", b"data%5Bemail%5D=x"])
def test_a_mailchimp_body_without_a_type_is_refused(body: bytes) -> None:
    with pytest.raises(BodyUnreadable):
        unpack(Dialect.MAILCHIMP, body)


@pytest.mark.parametrize(
    "body", [b"\xff\xfe{}", b"[]", b'{"event_id": "e1"}', b'{"form_response": {}}']
)
def test_a_typeform_body_without_a_response_and_its_id_is_refused(body: bytes) -> None:
    with pytest.raises(BodyUnreadable):
        unpack(Dialect.TYPEFORM, body)
