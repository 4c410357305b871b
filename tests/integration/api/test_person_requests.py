"""A person's own access and erasure requests on the local stack, through the API.

The verification mail is read from the emulator's SES; the export ZIP from
the documents bucket the presigned link names.
"""

from __future__ import annotations

import html
import io
import json
import re
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner

from cli.main import main
from quitclaim import bootstrap
from quitclaim.adapters.dynamo import DynamoSubjects
from quitclaim.bootstrap import (
    api_keys_service,
    digest_service,
    onboarding_service,
    person_requests_service,
    subject_admin_service,
)
from quitclaim.config import get_settings
from quitclaim.usecases.limits import PublicLimits
from tests.conftest import DEMO_NOW
from tests.integration.api.conftest import Api, HttpApi

pytestmark = pytest.mark.integration
TENANT = "api-person-requests"
OFFICER = "officer@person-requests.example.org"
KNOWN = "known.person@example.org"
UNKNOWN = "nobody.here@example.org"
BROWSER = {
    "Accept": "text/html,application/xhtml+xml,*/*;q=0.8",
    "Accept-Language": "en-GB,en;q=0.9",
}
FORM = {**BROWSER, "Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def tenant(local_stack: Any) -> dict[str, Any]:
    # Given a tenant with an officer's contact address and one person on record
    issued = onboarding_service().create_tenant(TENANT, contact_email=OFFICER)
    admin = api_keys_service().resolve(issued.secret)
    subject = subject_admin_service().create_subject(admin.tenant, "Known Person", email=KNOWN)
    return {"key": issued.secret, "subject": subject.subject_id, "stack": local_stack}


@pytest.fixture
def no_lookups(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Any read of the subjects fails the request (and is recorded)."""
    tried: list[str] = []

    def refuse(name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            tried.append(name)
            raise AssertionError(f"subjects.{name} read before verification")

        return fail

    for name in ("find", "get", "page", "search"):
        if hasattr(DynamoSubjects, name):
            monkeypatch.setattr(DynamoSubjects, name, refuse(name))
    yield tried


def _ask(api: Api, email: str, kind: str) -> Any:
    body = f"email={email}&kind={kind}".encode()
    return api.call("POST", f"/requests/{TENANT}", headers=FORM, body=body)


def _shown_headers(reply: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in reply.headers.items() if k.lower() not in ("date",)}


def _verify_path(stack: Any, before: int, to: str) -> str:
    [mail] = [m for m in stack.sent_emails()[before:] if to in m["to"]]
    url = next(w for w in mail["text"].split() if "/verify?token=" in w)
    parsed = urlparse(url)
    return f"{parsed.path}?token={parse_qs(parsed.query)['token'][0]}"


def test_known_and_unknown_addresses_get_the_same_answer_without_a_lookup(
    http_api: Api, tenant: dict[str, Any], no_lookups: list[str]
) -> None:
    stack = tenant["stack"]
    before = len(stack.sent_emails())
    # When a request is made for an address on record and for one that is not
    known = _ask(http_api, KNOWN, "erasure")
    unknown = _ask(http_api, UNKNOWN, "erasure")
    # Then both get the same status, body and headers
    assert known.status == unknown.status == 202
    assert known.body == unknown.body
    assert _shown_headers(known) == _shown_headers(unknown)
    assert "Check your inbox" in known.body.decode()
    # And nothing read the subjects
    assert no_lookups == []
    # And each address got a verification link (the same mail, but for its link)
    sent = stack.sent_emails()[before:]
    assert sorted(m["to"][0] for m in sent) == sorted([KNOWN, UNKNOWN])
    texts = [re.sub(r"token=\S+", "token=…", m["text"]) for m in sent]
    assert texts[0] == texts[1]
    # And so does a JSON client
    json_known = http_api.call(
        "POST", f"/requests/{TENANT}", json_body={"email": KNOWN, "kind": "access"}
    )
    json_unknown = http_api.call(
        "POST", f"/requests/{TENANT}", json_body={"email": UNKNOWN, "kind": "access"}
    )
    assert (json_known.status, json_known.body) == (json_unknown.status, json_unknown.body)
    assert json_known.json == {"status": "verification_sent"}
    assert no_lookups == []


def test_a_bad_address_is_named_on_the_page(chalice_api: Api, tenant: dict[str, Any]) -> None:
    reply = _ask(chalice_api, "not-an-address", "access")
    assert reply.status == 400
    assert 'role="alert"' in reply.body.decode()
    assert 'aria-invalid="true"' in reply.body.decode()


def test_an_access_request_is_answered_with_an_expiring_link(
    chalice_api: Api, tenant: dict[str, Any]
) -> None:
    stack = tenant["stack"]
    before = len(stack.sent_emails())
    assert _ask(chalice_api, KNOWN, "access").status == 202
    path = _verify_path(stack, before, KNOWN)
    # When the person opens the link (a mail scanner would too)
    opened = chalice_api.call("GET", path, headers=BROWSER)
    # Then a page asks them to confirm, and nothing is registered yet
    assert opened.status == 200 and "Confirm your request" in opened.body.decode()
    assert person_requests_service().list(TENANT) == []
    # When they confirm
    done = chalice_api.call("POST", path, headers=FORM, body=b"")
    # Then the page gives the export through a presigned link that expires
    assert done.status == 200, done.body
    links = re.findall(r'<a href="([^"]+)">Download', done.body.decode())
    assert len(links) == 1
    url = urlparse(html.unescape(links[0]))
    query = parse_qs(url.query)
    assert query["X-Amz-Expires"] == [str(7 * 86400)]
    assert "X-Amz-Signature" in query
    # And the ZIP behind it is today's access export of that person
    key = unquote(url.path.lstrip("/"))
    bucket = get_settings().documents_bucket
    key = key.removeprefix(bucket + "/")
    data = stack.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    manifest = zipfile.ZipFile(io.BytesIO(data)).read("manifest.json").decode()
    assert tenant["subject"] in manifest
    # And the request is listed as answered, for the officer too
    listed = chalice_api.call("GET", "/person-requests", key=tenant["key"]).json["items"]
    assert [(r["kind"], r["status"]) for r in listed] == [("access", "answered")]
    # And confirming again changes nothing
    again = chalice_api.call("POST", path, headers=FORM, body=b"")
    assert "registered already" in again.body.decode()


def test_an_erasure_request_is_registered_with_a_deadline_and_reminders(
    chalice_api: Api, http_api: HttpApi, tenant: dict[str, Any]
) -> None:
    stack = tenant["stack"]
    before = len(stack.sent_emails())
    assert _ask(chalice_api, KNOWN, "erasure").status == 202
    path = _verify_path(stack, before, KNOWN)
    # When the person confirms
    done = chalice_api.call("POST", path, headers=FORM, body=b"")
    # Then it is registered with its one-month deadline, and nothing is erased
    assert done.status == 200
    deadline = DEMO_NOW.replace(
        month=DEMO_NOW.month % 12 + 1, year=DEMO_NOW.year + (DEMO_NOW.month == 12)
    )
    assert f"{deadline.day} " in done.body.decode()
    listed = chalice_api.call("GET", "/person-requests", key=tenant["key"]).json["items"]
    erasures = [r for r in listed if r["kind"] == "erasure"]
    assert [(r["status"], r["subject_ids"]) for r in erasures] == [("open", [tenant["subject"]])]
    assert subject_admin_service().subject(
        api_keys_service().resolve(tenant["key"]).tenant, tenant["subject"]
    )
    # And the CLI lists it for the officer, with its deadline
    env = {"QUITCLAIM_URL": http_api.base_url, "QUITCLAIM_KEY": tenant["key"]}
    result = CliRunner().invoke(main, ["requests", "list", "--json"], env=env)
    assert result.exit_code == 0, result.output
    [cli_erasure] = [r for r in json.loads(result.stdout)["items"] if r["kind"] == "erasure"]
    assert cli_erasure["deadline"].startswith(deadline.date().isoformat())
    table = CliRunner().invoke(main, ["requests", "list"], env=env).stdout
    assert cli_erasure["request_id"] in table and "open" in table
    # And the officer's digest lists it, with its deadline (docs/retention.md)
    digest = digest_service().report(TENANT, since=DEMO_NOW - timedelta(days=7))
    assert [(r.request_id, r.kind) for r in digest.open_requests] == [
        (cli_erasure["request_id"], "erasure")
    ]
    assert digest.open_requests[0].deadline.date() == deadline.date()
    # When the day 7 days before the deadline comes, and then the one 2 days before
    service = person_requests_service()
    mails = []
    try:
        for days in (8, 7, 7, 2):
            stack.clock.set(deadline - timedelta(days=days))
            start = len(stack.sent_emails())
            service.remind_officers()
            mails += [m for m in stack.sent_emails()[start:] if OFFICER in m["to"]]
    finally:
        stack.clock.set(DEMO_NOW)
    # Then the officer got one reminder each time, and none twice
    assert [m["subject"] for m in mails] == [
        f"Erasure request due in 7 days ({TENANT})",
        f"Erasure request due in 2 days ({TENANT})",
    ]
    assert KNOWN not in str(mails)


def _request_id(path: str) -> str:
    token = parse_qs(urlparse(path).query)["token"][0]
    return person_requests_service().pending(TENANT, token).request_id


def test_stale_requests_and_old_exports_are_deleted_by_the_daily_run(
    chalice_api: Api, tenant: dict[str, Any]
) -> None:
    stack = tenant["stack"]
    service = person_requests_service()
    bucket = get_settings().documents_bucket
    s3 = stack.client("s3")
    # Given a request nobody verified, and an access request answered with an export
    before = len(stack.sent_emails())
    assert _ask(chalice_api, UNKNOWN, "access").status == 202
    stale = _verify_path(stack, before, UNKNOWN)
    stale_id = _request_id(stale)
    before = len(stack.sent_emails())
    assert _ask(chalice_api, KNOWN, "access").status == 202
    answered = _verify_path(stack, before, KNOWN)
    answered_id = _request_id(answered)
    done = chalice_api.call("POST", answered, headers=FORM, body=b"")
    [link] = re.findall(r'<a href="([^"]+)">Download', done.body.decode())
    prefix = f"exports/{TENANT}/{answered_id}/"
    assert s3.list_object_versions(Bucket=bucket, Prefix=prefix).get("Versions")
    try:
        # When the daily run comes within the windows, nothing goes
        stack.clock.set(DEMO_NOW + timedelta(days=6))
        service.sweep()
        assert service._store.get(TENANT, stale_id) is not None
        assert s3.list_object_versions(Bucket=bucket, Prefix=prefix).get("Versions")
        # When it comes after them (7 days unverified; the 7-day download window)
        stack.clock.set(DEMO_NOW + timedelta(days=8))
        service.sweep()
    finally:
        stack.clock.set(DEMO_NOW)
    # Then the unverified request, with its address, is gone; the answered one stays listed
    assert service._store.get(TENANT, stale_id) is None
    assert answered_id in [r.request_id for r in service.list(TENANT)]
    # And every version of the export ZIP is gone
    listed = s3.list_object_versions(Bucket=bucket, Prefix=prefix)
    assert not listed.get("Versions") and not listed.get("DeleteMarkers")
    # And the key the download link names answers S3's clear 404 (NoSuchKey), not a 500
    # (read with the stack's client: the moto server refuses presigned signatures)
    key = unquote(urlparse(html.unescape(link)).path.lstrip("/")).removeprefix(bucket + "/")
    with pytest.raises(ClientError) as gone:
        s3.get_object(Bucket=bucket, Key=key)
    assert gone.value.response["Error"]["Code"] == "NoSuchKey"
    assert gone.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # And the stale request's link answers a page that says so, not an error
    again = chalice_api.call("POST", stale, headers=FORM, body=b"")
    assert again.status == 403 and "not valid" in again.body.decode().lower()


def test_the_public_request_page_is_rate_limited(
    http_api: HttpApi, tenant: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the public pages' bound at two requests from one address (the real one: 20)
    small = PublicLimits(source_rate=0.01, source_burst=2)
    monkeypatch.setattr(bootstrap, "public_limits", lambda: small)
    before = len(tenant["stack"].sent_emails())
    # When one client asks three times at once
    replies = [_ask(http_api, f"flood{n}@example.org", "access") for n in range(3)]
    # Then the third is refused with 429, a message and when to retry, and mails nothing
    assert [r.status for r in replies] == [202, 202, 429]
    refused = replies[2]
    assert refused.json["error"] == "rate_limited"
    assert "too many requests" in refused.json["message"]
    assert int(refused.header("Retry-After") or 0) >= 1
    assert len(tenant["stack"].sent_emails()) == before + 2
