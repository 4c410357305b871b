"""Inbound webhooks over real HTTP on loopback: signatures, exactly-once, mappings, parking.

A marketing tool posts Standard Webhooks signed JSON to
``/webhooks/{tenant}/{source}``; the API answers after a durable enqueue and
the inbound worker (the deployed function, run by the local runtime) applies
it through the registry. Every refusal is checked against the tables: a
refused delivery changes nothing.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from quitclaim.adapters.idempotency import PowertoolsOnce
from quitclaim.bootstrap import conservation_service, registry_service
from quitclaim.domain.errors import Conflict
from tests.conftest import DEMO_NOW
from tests.integration.api.conftest import (
    Buckets,
    HttpApi,
    assert_error,
    asset_id_of,
    b64,
    make_tenant,
    photo,
)
from tests.integration.faults import crash_after, failing_calls, table

pytestmark = pytest.mark.integration


@dataclass
class Hook:
    """One tenant with a person held in quarantine and a generic-form source."""

    tenant: Any
    subject_id: str
    asset_id: str
    buckets: Buckets
    secret: str
    path: str


def sample(name: str) -> dict[str, Any]:
    from importlib import resources

    folder = resources.files("quitclaim") / "webhook_mappings" / "samples"
    loaded: dict[str, Any] = json.loads((folder / f"{name}.json").read_text("utf-8"))
    return loaded


def signed(
    secret: str, body: bytes, *, msg_id: str | None = None, at: datetime | None = None
) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(UTC)
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body.decode()),
    }


def form(ref: str = "crm-1042", **consent: Any) -> bytes:
    payload = sample("generic-form")
    payload["person"]["id"] = ref
    payload["person"]["email"] = f"{ref}@example.org"
    payload["consent"]["purposes"] = ["web"]
    payload["consent"].update(consent)
    return json.dumps(payload).encode()


@pytest.fixture(scope="module")
def hook(http_api: HttpApi, local_stack: Any) -> Hook:
    tenant = make_tenant("hooks-in")
    buckets = Buckets(local_stack, tenant.id)
    created = http_api.call(
        "POST",
        "/subjects",
        key=tenant.admin,
        json_body={"display_name": "Barack O.", "external_ref": "crm-1042"},
    )
    sid = created.json["subject_id"]
    enrolled = http_api.call(
        "POST",
        f"/subjects/{sid}/photos",
        key=tenant.admin,
        json_body={
            "photos": [b64(photo("enroll", "obama", "obama-portrait.jpg"))],
            "biometric_consent": True,
        },
    )
    assert enrolled.status == 200, enrolled.body
    # Held: a known face without a consent
    buckets.upload("office.jpg", photo("uploads", "obama-office.jpg"))
    asset_id = asset_id_of(http_api, tenant.admin, "office.jpg")
    assert buckets.places("office.jpg") == ["quarantine"]
    source = http_api.call(
        "POST",
        "/webhook-sources",
        key=tenant.admin,
        json_body={"name": "forms", "preset": "generic-form"},
    )
    assert source.status == 201, source.body
    assert source.json["url_path"] == f"/webhooks/{tenant.id}/forms"
    secret = source.json["secret"]
    assert secret.startswith("whsec_")
    return Hook(tenant, sid, asset_id, buckets, secret, source.json["url_path"])


def post(api: HttpApi, hook: Hook, body: bytes, headers: dict[str, str]) -> Any:
    return api.call("POST", hook.path, body=body, headers=headers)


def consents(hook: Hook) -> list[Any]:
    return registry_service().consent_views(hook.tenant.id, hook.subject_id)


def deliveries(api: HttpApi, hook: Hook, status: str | None = None) -> list[dict[str, Any]]:
    query = f"?status={status}" if status else ""
    reply = api.call("GET", f"/webhook-sources/forms/deliveries{query}", key=hook.tenant.admin)
    assert reply.status == 200, reply.body
    items: list[dict[str, Any]] = reply.json["items"]
    return items


def snapshot(api: HttpApi, hook: Hook) -> tuple[Any, ...]:
    """Everything a delivery could change: consents, deliveries, the asset's place."""
    return (
        [(c.consent_id, c.status, c.version) for c in consents(hook)],
        sorted((d["delivery_id"], d["status"]) for d in deliveries(api, hook)),
        hook.buckets.places("office.jpg"),
    )


# ---------------------------------------------------------------- refusals first


@pytest.mark.parametrize(
    "tamper",
    ["bad_signature", "missing_header", "stale_timestamp", "altered_body", "unknown_source"],
)
def test_a_delivery_that_fails_verification_is_refused_and_changes_nothing(
    http_api: HttpApi, local_stack: Any, hook: Hook, tamper: str
) -> None:
    # Given the state before, and a delivery tampered with one way
    before = snapshot(http_api, hook)
    body = form()
    headers = signed(hook.secret, body)
    path = hook.path
    if tamper == "bad_signature":
        headers = signed("whsec_" + b64(b"another source's secret, 32 bytes!"), body)
    elif tamper == "missing_header":
        del headers["webhook-signature"]
    elif tamper == "stale_timestamp":
        headers = signed(hook.secret, body, at=datetime.now(UTC) - timedelta(minutes=6))
    elif tamper == "altered_body":
        body = body.replace(b'"web"', b'"print"')
    elif tamper == "unknown_source":
        path = f"/webhooks/{hook.tenant.id}/nosuchsource"
    # When it is posted
    reply = http_api.call("POST", path, body=body, headers=headers)
    local_stack.drain()
    # Then it is refused as unauthenticated, and nothing changed
    assert_error(reply, 401, "invalid_signature")
    assert snapshot(http_api, hook) == before


def test_malformed_json_is_a_400_naming_the_body_and_stores_nothing(
    http_api: HttpApi, local_stack: Any, hook: Hook
) -> None:
    before = snapshot(http_api, hook)
    body = b'{"event": "consent.signed", "person": '
    reply = post(http_api, hook, body, signed(hook.secret, body))
    local_stack.drain()
    assert_error(reply, 400, "invalid_json", "body")
    assert snapshot(http_api, hook) == before


def test_a_wrongly_typed_field_is_a_422_naming_it_and_the_delivery_is_parked(
    http_api: HttpApi, local_stack: Any, hook: Hook
) -> None:
    # Given a verified delivery whose valid_until is a number, not a date
    before_consents = [c.consent_id for c in consents(hook)]
    body = form(valid_until=20271126)
    headers = signed(hook.secret, body)
    # When it is posted
    reply = post(http_api, hook, body, headers)
    local_stack.drain()
    # Then the tool hears which field is wrong
    assert_error(reply, 422, "payload_unmappable", "consent.valid_until")
    # And the delivery is kept for review, not lost; no consent was recorded
    parked = {d["delivery_id"]: d for d in deliveries(http_api, hook, "parked")}
    assert parked[headers["webhook-id"]]["field"] == "consent.valid_until"
    assert [c.consent_id for c in consents(hook)] == before_consents


def test_no_input_gets_a_5xx(http_api: HttpApi, local_stack: Any, hook: Hook) -> None:
    odd_bodies = [b"", b"null", b"[]", b'"text"', b"\xff\xfe", b"{" * 5000, b'{"event": 1}']
    for body in odd_bodies:
        for headers in (signed(hook.secret, body) if body != b"\xff\xfe" else {}, {}):
            reply = post(http_api, hook, body, dict(headers))
            assert 400 <= reply.status < 500, (body[:20], reply.status, reply.body)
    local_stack.drain()


# What an HTTP header can carry: printable ASCII, no line breaks.
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)


@st.composite
def tampered_headers(draw: st.DrawFn, good: dict[str, str]) -> dict[str, str]:
    """The three Standard Webhooks headers, at least one of them changed or dropped."""
    msg_id, stamp, signature = (
        good["webhook-id"],
        good["webhook-timestamp"],
        good["webhook-signature"],
    )
    valid = signature.split(",", 1)[1]
    other_ids = header_text | st.just("") | st.just(msg_id + "x") | st.just("m" * 200)
    other_stamps = (
        st.integers(-(2**40), 2**40).map(str)
        | st.integers(-600, 600).map(lambda d: str(int(stamp) + d))
        | header_text
        | st.sampled_from(["1e9", "0x10", "", "NaN", stamp + ".5"])
    )
    # A flip must change the signature's bytes: never the same character, and
    # never base64's last character or padding (their unused low bits decode to
    # the same signature). No filter: the strategy must not depend on ``valid``.
    flipped = st.integers(0, len(valid) - 3).flatmap(
        lambda i: st.sampled_from("AQgw+/=").map(
            lambda c: (
                valid[:i] + (c if c != valid[i] else "B" if c != "B" else "C") + valid[i + 1 :]
            )
        )
    )
    other_signatures = (
        flipped.map(lambda v: "v1," + v)
        | st.binary(min_size=32, max_size=32).map(lambda b: "v1," + b64(b))
        | st.sampled_from(["v1a,", "v2,", "V1,", "v1 ", ""]).map(lambda p: p + valid)
        | header_text
        | st.lists(flipped.map(lambda v: "v1," + v), min_size=2, max_size=4).map(" ".join)
    )
    headers = {"Content-Type": "application/json"}
    for name, current, others in (
        ("webhook-id", msg_id, other_ids),
        ("webhook-timestamp", stamp, other_stamps),
        ("webhook-signature", signature, other_signatures),
    ):
        choice = draw(st.sampled_from(["keep", "change", "drop"]))
        if choice == "keep":
            headers[name] = current
        elif choice == "change":
            headers[name] = draw(others)
    # Changes the server cannot tell apart from the original (HTTP trims spaces;
    # a timestamp is read as an integer) are not changes.
    sent_id = headers.get("webhook-id", "").strip()
    sent_stamp = headers.get("webhook-timestamp", "").strip()
    sent_signatures = headers.get("webhook-signature", "").split()
    assume(
        sent_id != msg_id
        or not (sent_stamp.lstrip("+-").isdigit() and int(sent_stamp) == int(stamp))
        or signature not in sent_signatures
    )
    return headers


def test_no_tampered_signature_header_is_accepted(
    http_api: HttpApi, local_stack: Any, hook: Hook
) -> None:
    # Given the state before, and one well-formed delivery body
    before = snapshot(http_api, hook)
    body = form()

    @settings(max_examples=120, deadline=None, database=None)
    @given(st.data())
    def check(data: st.DataObject) -> None:
        headers = data.draw(tampered_headers(signed(hook.secret, body)))
        # When it is posted with the headers tampered with
        reply = post(http_api, hook, body, headers)
        event(str(reply.status))
        # Then it is refused as unauthenticated or malformed: never accepted, never a 5xx
        assert reply.status in (400, 401), (headers, reply.status, reply.body)

    check()
    local_stack.drain()
    # And nothing changed: no consent, no delivery, the image still held
    assert snapshot(http_api, hook) == before


# ---------------------------------------------------------------- the happy path, once


def test_a_signed_delivery_grants_the_consent_and_releases_the_held_image(
    http_api: HttpApi, local_stack: Any, hook: Hook
) -> None:
    # Given the held image and a signed form submission for the person
    assert hook.buckets.places("office.jpg") == ["quarantine"]
    body = form(valid_until="2027-11-26")
    headers = signed(hook.secret, body)
    # When the tool posts it
    reply = post(http_api, hook, body, headers)
    # Then it is acknowledged once stored and queued
    assert reply.status == 202, reply.body
    assert reply.json == {"status": "accepted", "delivery_id": headers["webhook-id"]}
    local_stack.drain()
    # And the worker granted the consent, with the form's evidence link
    [granted] = [c for c in consents(hook) if c.evidence and c.evidence.source == "webhook:forms"]
    assert granted.status == "valid" and granted.purposes == ("web",)
    assert granted.expires_at == datetime(2027, 11, 26, tzinfo=UTC)
    assert granted.evidence.document_url == sample("generic-form")["consent"]["document_url"]
    # And the held image is released to the library
    assert hook.buckets.places("office.jpg") == ["library"]
    asset = http_api.call("GET", f"/assets/{hook.asset_id}", key=hook.tenant.admin).json
    assert asset["status"] == "approved"
    # And the delivery is listed as applied, with ids only
    [applied] = [d for d in deliveries(http_api, hook) if d["delivery_id"] == headers["webhook-id"]]
    assert applied["status"] == "applied"
    assert applied["subject_id"] == hook.subject_id
    assert applied["consent_ids"] == [granted.consent_id]

    # When the same delivery is replayed (the tool retried after a timeout)
    before = snapshot(http_api, hook)
    again = post(http_api, hook, body, signed(hook.secret, body, msg_id=headers["webhook-id"]))
    local_stack.drain()
    # Then it is acknowledged as a duplicate and changes nothing
    assert again.status == 202, again.body
    assert again.json["status"] == "duplicate"
    assert snapshot(http_api, hook) == before

    # When the same webhook-id comes with another (validly signed) body
    other = form(valid_until="2030-01-01")
    reused = post(http_api, hook, other, signed(hook.secret, other, msg_id=headers["webhook-id"]))
    local_stack.drain()
    # Then it is refused, and nothing changed
    assert_error(reused, 409, "id_reused")
    assert snapshot(http_api, hook) == before


def test_an_unknown_person_is_parked_then_applied_after_review(
    http_api: HttpApi, local_stack: Any, hook: Hook
) -> None:
    # Given a signed form for someone Quitclaim does not know
    body = form(ref="crm-9999")
    headers = signed(hook.secret, body)
    # When it is posted, it is accepted (the tool did nothing wrong) ...
    reply = post(http_api, hook, body, headers)
    assert reply.status == 202, reply.body
    local_stack.drain()
    # ... and parked for review, not dropped
    parked = {d["delivery_id"]: d for d in deliveries(http_api, hook, "parked")}
    assert parked[headers["webhook-id"]]["reason"] == "unknown_subject"
    # When the officer registers the person and retries the delivery
    created = http_api.call(
        "POST",
        "/subjects",
        key=hook.tenant.admin,
        json_body={"display_name": "New Person", "external_ref": "crm-9999"},
    )
    retried = http_api.call(
        "POST",
        f"/webhook-sources/forms/deliveries/{headers['webhook-id']}/retry",
        key=hook.tenant.admin,
    )
    assert retried.status == 202, retried.body
    local_stack.drain()
    # Then it is applied to that person
    [done] = [d for d in deliveries(http_api, hook) if d["delivery_id"] == headers["webhook-id"]]
    assert done["status"] == "applied"
    assert done["subject_id"] == created.json["subject_id"]
    views = registry_service().consent_views(hook.tenant.id, created.json["subject_id"])
    assert [v.status for v in views] == ["valid"]


def test_a_rotated_secret_keeps_working_for_its_overlap_only(
    http_api: HttpApi, local_stack: Any, hook: Hook
) -> None:
    old = hook.secret
    try:
        # Given a rotation with a one-hour overlap
        rotated = http_api.call(
            "POST",
            "/webhook-sources/forms/rotate",
            key=hook.tenant.admin,
            json_body={"overlap_hours": 1},
        )
        assert rotated.status == 200, rotated.body
        new = rotated.json["secret"]
        assert new != old and rotated.json["previous_valid_until"]
        # Then within the overlap both secrets verify (an unknown person: parked, no effect)
        for secret in (old, new):
            body = form(ref="crm-rotation")
            assert post(http_api, hook, body, signed(secret, body)).status == 202
        # When the overlap has passed
        local_stack.clock.set(DEMO_NOW + timedelta(hours=2))
        before = snapshot(http_api, hook)
        body = form(ref="crm-rotation")
        late = post(http_api, hook, body, signed(old, body))
        # Then the old secret is refused and nothing changed; the new one works
        assert_error(late, 401, "invalid_signature")
        assert snapshot(http_api, hook) == before
        assert post(http_api, hook, body, signed(new, body)).status == 202
        hook.secret = new
    finally:
        local_stack.clock.set(DEMO_NOW)
        local_stack.drain()


def test_a_newsletter_unsubscribe_withdraws_and_pulls_the_image(
    http_api: HttpApi, local_stack: Any, hook: Hook
) -> None:
    # Given the person approved in the library (the grant above) and their e-mail on record
    registry_service().update_subject(
        hook.tenant.id, hook.subject_id, {"email": "rose.leslie@example.org"}
    )
    assert hook.buckets.places("office.jpg") == ["library"]
    source = http_api.call(
        "POST",
        "/webhook-sources",
        key=hook.tenant.admin,
        json_body={"name": "newsletter", "preset": "newsletter-unsubscribe"},
    )
    assert source.status == 201, source.body
    # When the newsletter platform reports the unsubscribe (e-mail in another case)
    body = json.dumps(sample("newsletter-unsubscribe")).encode()
    reply = http_api.call(
        "POST",
        source.json["url_path"],
        body=body,
        headers=signed(source.json["secret"], body),
    )
    assert reply.status == 202, reply.body
    local_stack.drain()
    # Then every consent of the person is withdrawn and the image leaves the library
    assert {c.status for c in consents(hook)} == {"revoked"}
    assert hook.buckets.places("office.jpg") == ["quarantine"]


def test_sources_need_an_admin_key_and_a_valid_mapping(http_api: HttpApi, hook: Hook) -> None:
    body = {"name": "crm", "preset": "crm-contact-property"}
    assert_error(
        http_api.call("POST", "/webhook-sources", key=hook.tenant.reviewer, json_body=body), 403
    )
    broken = {"name": "broken", "mapping": {"event": {"value": "granted"}}}
    assert_error(
        http_api.call("POST", "/webhook-sources", key=hook.tenant.admin, json_body=broken),
        400,
        "mapping_invalid",
        "mapping.subject",
    )
    unknown = {"name": "x", "preset": "no-such-tool"}
    assert_error(
        http_api.call("POST", "/webhook-sources", key=hook.tenant.admin, json_body=unknown),
        400,
        field="preset",
    )
    listed = http_api.call("GET", "/webhook-sources", key=hook.tenant.admin)
    assert "secret" not in listed.body.decode()
    assert {s["name"] for s in listed.json["items"]} >= {"forms"}


def test_acceptance_is_recorded_by_powertools_idempotency_without_the_payload(
    http_api: HttpApi, local_stack: Any, hook: Hook
) -> None:
    # Given one accepted delivery
    body = form(ref="crm-idem")
    headers = signed(hook.secret, body)
    assert post(http_api, hook, body, headers).status == 202
    local_stack.drain()
    # Then the idempotency table holds a completed record for it, with ids only
    table = local_stack.resources["IdempotencyTable"]
    items = local_stack.client("dynamodb").scan(TableName=table)["Items"]
    completed = [i for i in items if i["status"]["S"] == "COMPLETED"]
    assert completed, items
    stored = " ".join(json.dumps(i) for i in items)
    assert "crm-idem" not in stored and "example.org" not in stored
    assert {"status": "accepted"} in [json.loads(i["data"]["S"]) for i in completed]


def test_a_failed_enqueue_is_a_503_and_the_tools_retry_is_accepted(
    http_api: HttpApi, local_stack: Any, hook: Hook
) -> None:
    # Given the queue refusing messages while a delivery comes in
    body = form(ref="crm-fault")
    headers = signed(hook.secret, body)
    with failing_calls("sqs", "SendMessage", "ServiceUnavailable"):
        reply = post(http_api, hook, body, headers)
    # Then the tool hears 503 (not acknowledged: it will retry)
    assert_error(reply, 503, "dependency_failed")
    # When it retries the same delivery
    again = post(http_api, hook, body, signed(hook.secret, body, msg_id=headers["webhook-id"]))
    # Then it is accepted, not taken for a duplicate, and handled once
    assert again.status == 202 and again.json["status"] == "accepted", again.body
    local_stack.drain()
    mine = [d for d in deliveries(http_api, hook) if d["delivery_id"] == headers["webhook-id"]]
    assert [d["status"] for d in mine] == ["parked"]  # crm-fault is nobody: parked, not lost


def _accepted_grant(http_api: HttpApi, hook: Hook, ref: str) -> tuple[str, str]:
    """A person with reference ``ref`` and an accepted, signed grant for them (not applied)."""
    created = http_api.call(
        "POST",
        "/subjects",
        key=hook.tenant.admin,
        json_body={"display_name": "Retry Person", "external_ref": ref},
    )
    body = form(ref=ref)
    headers = signed(hook.secret, body)
    assert post(http_api, hook, body, headers).status == 202
    return created.json["subject_id"], headers["webhook-id"]


def _applied_once(http_api: HttpApi, local_stack: Any, hook: Hook, sid: str, hook_id: str) -> None:
    """After the retries: one valid consent, and the delivery applied with it."""
    local_stack.drain()
    views = registry_service().consent_views(hook.tenant.id, sid)
    assert [v.status for v in views] == ["valid"]
    [done] = [d for d in deliveries(http_api, hook) if d["delivery_id"] == hook_id]
    assert done["status"] == "applied" and done["consent_ids"] == [views[0].consent_id]
    assert conservation_service().check(hook.tenant.id).holds


def test_a_worker_failure_is_retried_and_applied_exactly_once(
    http_api: HttpApi, local_stack: Any, hook: Hook
) -> None:
    # Given a person and a signed grant for them
    sid, hook_id = _accepted_grant(http_api, hook, "crm-retry")
    # When the consents table fails while the worker applies it
    with failing_calls("dynamodb", "PutItem", "InternalServerError"):
        local_stack.runtime.poll_once()
    assert registry_service().consent_views(hook.tenant.id, sid) == []
    # Then the returned message is retried once the table recovers, and one consent exists
    _applied_once(http_api, local_stack, hook, sid, hook_id)


def test_a_worker_that_dies_after_the_grant_is_retried_and_grants_once(
    http_api: HttpApi, local_stack: Any, hook: Hook
) -> None:
    # Given a person and a signed, accepted grant for them
    sid, hook_id = _accepted_grant(http_api, hook, "crm-crash")
    # When the worker dies right after writing the consent, before it records the delivery
    consents_table = table(local_stack.resources["ConsentsTable"])
    with crash_after("dynamodb", "PutItem", match=consents_table) as died:
        local_stack.runtime.poll_once()
    assert died[0] == 1
    # Then the redelivered message finds the consent it wrote: one consent, delivery applied
    _applied_once(http_api, local_stack, hook, sid, hook_id)


def test_no_name_or_email_from_a_payload_reaches_the_logs(
    http_api: HttpApi,
    local_stack: Any,
    hook: Hook,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a delivery naming a person, an address and a signer, for a person not known
    payload = json.loads(form(ref="crm-logs"))
    payload["person"].update(name="Zebedee Quillfeather", email="zebedee.q@example.org")
    payload["consent"]["signed_by"] = "Zebedee Quillfeather"
    body = json.dumps(payload).encode()
    capfd.readouterr()
    # When it is accepted, applied (parked: unknown person) and listed
    assert post(http_api, hook, body, signed(hook.secret, body)).status == 202
    local_stack.drain()
    deliveries(http_api, hook, "parked")
    # Then the logs of the API and the worker carry ids only
    out, err = capfd.readouterr()
    logged = out + err + caplog.text
    # (the worker's audit line and metrics were captured: the check sees real output)
    assert "webhook.inbound_parked" in logged and "WebhooksParked" in logged
    for secret in ("Zebedee", "Quillfeather", "zebedee.q@example.org", hook.secret):
        assert secret not in logged


class _Crash(BaseException):
    """A process dying mid-acceptance: not an Exception, so nothing cleans up."""


def test_an_acceptance_that_died_midway_is_retried_after_its_budget(local_stack: Any) -> None:
    # Given the guard over the deployed idempotency table, with a one-second budget
    guard = PowertoolsOnce(
        local_stack.resources["IdempotencyTable"],
        local_stack.client("dynamodb"),
        expires_after_s=3600,
        in_progress_ms=1000,
    )
    key = {"tenant": "hooks-crash", "source": "forms", "webhook_id": f"msg_{uuid.uuid4().hex}"}

    def die() -> dict[str, Any]:
        raise _Crash

    # When the first acceptance dies after claiming the id
    with pytest.raises(_Crash):
        guard.once(key, "digest", die)
    # Then a retry at once is told to wait (409), not accepted twice ...
    with pytest.raises(Conflict) as busy:
        guard.once(key, "digest", lambda: {"status": "accepted"})
    assert busy.value.code == "in_progress"
    # ... and once the budget has passed, the retry runs (the event is not lost)
    time.sleep(1.2)
    assert guard.once(key, "digest", lambda: {"status": "accepted"}) == (
        {"status": "accepted"},
        False,
    )


def test_a_delivery_whose_sender_gave_up_after_a_503_is_pushed_by_the_officer(
    http_api: HttpApi, local_stack: Any, hook: Hook
) -> None:
    # Given a delivery stored, but not queued (the enqueue failed), and no retry from the tool
    body = form(ref="crm-gave-up")
    headers = signed(hook.secret, body)
    with failing_calls("sqs", "SendMessage", "ServiceUnavailable"):
        assert post(http_api, hook, body, headers).status == 503
    local_stack.drain()
    [waiting] = [d for d in deliveries(http_api, hook) if d["delivery_id"] == headers["webhook-id"]]
    assert waiting["status"] == "queued"
    # When the officer pushes it again
    path = f"/webhook-sources/forms/deliveries/{headers['webhook-id']}/retry"
    assert http_api.call("POST", path, key=hook.tenant.admin).status == 202
    local_stack.drain()
    # Then it was handled (parked: an unknown person), once; pushing a handled one is refused
    [done] = [d for d in deliveries(http_api, hook) if d["delivery_id"] == headers["webhook-id"]]
    assert (done["status"], done["reason"]) == ("parked", "unknown_subject")
    dismissed = f"/webhook-sources/forms/deliveries/{headers['webhook-id']}/dismiss"
    assert http_api.call("POST", dismissed, key=hook.tenant.admin).status == 200
    assert_error(http_api.call("POST", path, key=hook.tenant.admin), 409, "not_parked")


def test_people_are_found_by_reference_else_by_email_and_the_index_follows_changes(
    hook: Hook,
) -> None:
    registry = registry_service()
    tenant = hook.tenant.id
    sid = registry.create_subject(
        tenant, "Lookup Person", external_ref="crm-lookup", email="Lookup.Person@Example.org"
    ).subject_id
    # By reference, and by e-mail whatever its case
    assert registry.find_subjects(tenant, external_ref="crm-lookup") == [sid]
    assert registry.find_subjects(tenant, email="lookup.person@example.ORG") == [sid]
    # Never another tenant's person with the same reference
    assert registry.find_subjects("hooks-in-other", external_ref="crm-lookup") == []
    # When the reference and e-mail change, the old ones find nobody
    registry.update_subject(tenant, sid, {"external_ref": "crm-lookup-2", "email": None})
    assert registry.find_subjects(tenant, external_ref="crm-lookup") == []
    assert registry.find_subjects(tenant, email="lookup.person@example.org") == []
    assert registry.find_subjects(tenant, external_ref="crm-lookup-2") == [sid]
