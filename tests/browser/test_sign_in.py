"""People sign in with the stack's user pool (docs/sign-in.md), in headless Chromium.

On the local stack the pool is moto's, created from the template, and the
hosted sign-in is the stand-in of ``devstack.signin``: the page runs
the authorization code flow with PKCE against it, exactly as against Cognito.
Runs after test_dashboard.py on the same demo tenant; it releases only
kit-costume.jpg, which no earlier test changes.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from playwright.sync_api import expect

from devstack.scenario import DemoData
from devstack.signin import create_user, sign_in_tokens
from quitclaim.adapters.user_tokens import email_hash
from quitclaim.bootstrap import api_keys_service, audit_trail_service
from quitclaim.domain.registry import Role
from tests.browser.conftest import TENANT, Dashboard, api_get
from tests.browser.test_dashboard import Tabs

pytestmark = pytest.mark.browser

EMAIL = "ria.reviewer@example.org"
PASSWORD = "Correct-horse-9"
PATH = "kit-costume.jpg"


@pytest.fixture(scope="module")
def account(local_stack: Any, demo: DemoData) -> dict[str, str]:
    """A reviewer of the demo tenant in the user pool (what an operator creates)."""
    cognito = local_stack.client("cognito-idp")
    pool = local_stack.resources["UserPool"]
    sub = create_user(
        cognito, pool, email=EMAIL, tenant=TENANT, group="reviewer", password=PASSWORD
    )
    return {"sub": sub, "pool": pool, "client": local_stack.resources["UserPoolClient"]}


def _sign_in_with_account(tab: Dashboard) -> None:
    tab.page.goto("/")
    tab.page.get_by_role("button", name="Sign in with your account").click()
    # The hosted sign-in (here the stand-in): e-mail and password
    tab.page.get_by_label("E-mail").fill(EMAIL)
    tab.page.get_by_label("Password").fill(PASSWORD)
    tab.page.get_by_role("button", name="Sign in").click()
    expect(tab.page.get_by_role("heading", level=1)).to_have_text("Quarantine queue")
    expect(tab.page.locator("#queue-count")).not_to_have_text("Loading…")


def _release(base_url: str, asset_id: str, bearer: str) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{base_url}/assets/{asset_id}/release",
        data=json.dumps({"justification": "Checked the consent on file"}).encode(),
        headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_reviewer_signs_in_with_their_account_and_the_four_eyes_count_people(
    dashboard: Tabs, demo: DemoData, base_url: str, local_stack: Any, account: dict[str, str]
) -> None:
    # Given a reviewer account of the tenant in the user pool
    tab = dashboard()
    # When they sign in with it (authorization code + PKCE through the hosted sign-in)
    _sign_in_with_account(tab)
    # Then the page says who is signed in, and keeps no token in the tab's storage
    expect(tab.page.locator("#who")).to_have_text(f"{EMAIL} · reviewer · {TENANT}")
    stored = tab.page.evaluate(
        "() => JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage)])"
    )
    assert "eyJ" not in stored, stored
    tab.screenshot("signed-in-with-account")

    # When they ask for the release of a held photo
    asset_id = tab.item(PATH).get_by_role("button").get_attribute("data-id")
    assert asset_id
    tab.open(PATH)
    tab.act("Request release", "The photographer's own costume portrait, consent by e-mail")
    expect(tab.said()).to_have_text("Release requested: a second reviewer must confirm it.")

    # Then the same person in another session cannot confirm it: the page says so ...
    again = dashboard()
    _sign_in_with_account(again)
    again.open(PATH)
    expect(again.page.locator("#detail-pending")).to_contain_text("You requested this release")
    # ... and the API refuses their second session's token and a key issued to them
    session = sign_in_tokens(
        local_stack.client("cognito-idp"), account["pool"], account["client"], EMAIL, PASSWORD
    )
    status, body = _release(base_url, asset_id, session["id_token"])
    assert (status, body["error"]) == (403, "same_reviewer")
    admin = api_keys_service().resolve(demo.keys.admin.secret)
    own_key = api_keys_service().create_key(admin, Role.REVIEWER, "ria's script", account["sub"])
    status, body = _release(base_url, asset_id, own_key.secret)
    assert (status, body["error"]) == (403, "same_reviewer")

    # When another reviewer confirms it
    other = dashboard().sign_in(demo.keys.reviewers[1].secret)
    other.open(PATH)
    other.act("Confirm release", "Checked the e-mail consent on file")
    # Then it is released, by the person who asked and the other reviewer
    expect(other.said()).to_have_text("Released: the image is in the library.")
    asset = api_get(base_url, f"/assets/{asset_id}", demo.keys.admin.secret)
    assert asset["status"] == "approved"
    assert asset["review"]["released"]["by"] == [
        f"user:{account['sub']}",
        demo.keys.reviewers[1].key_id,
    ]
    # And the audit trail names the person (sub, e-mail hash) and the key
    events = [
        e
        for e in audit_trail_service().events(TENANT)
        if e.get("asset_id") == asset_id and e["action"].startswith("asset.release")
    ]
    assert [(e["action"], e["actor"], e.get("actor_email_hash")) for e in events] == [
        ("asset.release_requested", f"user:{account['sub']}", email_hash(EMAIL)),
        ("asset.released", demo.keys.reviewers[1].key_id, None),
    ]

    # When the person signs out, Then the page is signed out (and the pool's session ended)
    tab.page.get_by_role("button", name="Sign out").click()
    expect(tab.page.get_by_role("heading", level=1)).to_have_text("Sign in")
    expect(tab.page.get_by_role("navigation")).to_be_hidden()
    expect(tab.page.locator("#who")).to_have_text("")
