"""The review dashboard, used as a compliance officer would, in headless Chromium.

The tests share one demo tenant and run in file order: the queue is read
before anything is released, and each test changes only images the tests
after it do not rely on (stranger-portrait.png is released; Rose Leslie's
images are released by her new quitclaim).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from devstack.scenario import DemoData
from tests.browser.conftest import TENANT, Dashboard, api_get
from tests.conftest import FACES

pytestmark = pytest.mark.browser

ROSE = "Rose Leslie's consent expired on 1 October 2026"
# Withdrawn by the demo at the stack's pinned now: 2026-11-26 12:00 UTC (13:00 in Amsterdam).
KIT = "Kit Harington withdrew consent on 26 November 2026"
ALEX = "Alex Lacamoire's consent does not cover “web” (only print)"
UNKNOWN = "An unknown person (not enrolled)"
NOT_MATCHABLE = "A face too turned, blurred or hidden to recognise: check it by eye"
REASONS = {
    "stage-with-child.jpg": [UNKNOWN],
    "stranger-portrait.png": [UNKNOWN],
    "crowd.jpg": [UNKNOWN, NOT_MATCHABLE],
    "couple.jpg": [ROSE, KIT],
    "kit-closeup.jpg": [KIT],
    "kit-costume.jpg": [KIT],
    "rose-red-carpet.jpg": [ROSE],
    "alex-studio.jpg": [ALEX],
}
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"

Tabs = Callable[..., Dashboard]


def test_a_wrong_key_is_refused(dashboard: Tabs) -> None:
    # Given the page, signed out
    tab = dashboard()
    tab.page.goto("/")
    tab.screenshot("sign-in")
    # When someone signs in with a key that does not exist
    tab.page.get_by_label("API key").fill(f"qc_{TENANT}_" + "0" * 48)
    tab.page.get_by_role("button", name="Sign in", exact=True).click()
    # Then they are told, and see nothing of the tenant
    expect(tab.page.get_by_role("alert")).to_have_text(
        "This key is not valid. Check it and try again."
    )
    expect(tab.page.get_by_role("navigation")).to_be_hidden()
    expect(tab.page.locator("#view-queue")).to_be_hidden()


def test_the_queue_shows_the_quarantined_images_with_their_reasons(
    dashboard: Tabs, demo: DemoData
) -> None:
    # When a reviewer signs in
    tab = dashboard().sign_in(demo.keys.reviewers[0].secret)
    # Then the queue holds exactly the demo's quarantined images, each with its reasons
    # in plain words
    quarantined = {r["key"] for r in demo.report["uploads"] if r["status"] == "quarantined"}
    assert quarantined == set(REASONS)
    assert sorted(tab.queue_paths()) == sorted(REASONS)
    for path, sentences in REASONS.items():
        assert sorted(tab.item(path).locator(".reason").all_inner_texts()) == sorted(sentences)
    # And the header says who is signed in, for which tenant
    expect(tab.page.locator("#who")).to_have_text(f"demo reviewer 1 · reviewer · {TENANT}")

    # When they open the couple's photo
    tab.open("couple.jpg")
    # Then each face is boxed in its verdict's colour and explained
    boxes = tab.page.locator("#detail-image svg rect.box")
    expect(boxes).to_have_count(2)
    assert sorted(boxes.evaluate_all("els => els.map(e => e.getAttribute('class'))")) == [
        "box k-expired",
        "box k-revoked",
    ]
    colours = boxes.evaluate_all("els => els.map(e => getComputedStyle(e).stroke)")
    assert len(set(colours)) == 2
    faces = tab.page.locator("#detail-faces li").all_inner_texts()
    assert sorted(f.split(": ", 1)[1] for f in faces) == sorted([ROSE, KIT])
    # And the actions a reviewer has are offered
    actions = tab.page.locator("#detail-actions").get_by_role("button")
    expect(actions).to_have_text(
        [
            "Request release",
            "Keep in quarantine",
            "Reassign a face",
            "Publish with faces pixelated",
            "Delete",
        ]
    )
    tab.screenshot("queue")


def test_the_queue_is_usable_with_the_keyboard(dashboard: Tabs, demo: DemoData) -> None:
    tab = dashboard().sign_in(demo.keys.reviewers[0].secret)
    paths = tab.queue_paths()
    items = tab.page.locator("#queue-list button.item")
    # Given the first image focused
    items.first.focus()
    # When the reviewer presses the down arrow, then Enter
    tab.page.keyboard.press("ArrowDown")
    expect(items.nth(1)).to_be_focused()
    tab.page.keyboard.press("Enter")
    # Then the second image opens and takes the focus
    expect(tab.page.locator("#detail-title")).to_have_text(paths[1])
    expect(tab.page.locator("#detail-title")).to_be_focused()
    # And End / Home reach the ends of the list
    items.nth(1).focus()
    tab.page.keyboard.press("End")
    expect(items.last).to_be_focused()
    tab.page.keyboard.press("Home")
    expect(items.first).to_be_focused()


def test_a_release_needs_a_second_reviewer(dashboard: Tabs, demo: DemoData, base_url: str) -> None:
    path = "stranger-portrait.png"
    first = dashboard().sign_in(demo.keys.reviewers[0].secret)
    asset_id = first.item(path).get_by_role("button").get_attribute("data-id")
    # When the first reviewer asks for the release, with a justification
    first.open(path)
    first.act("Request release", "Press photographer's own portrait, consent by e-mail")
    # Then it is only requested: still in the queue, and they cannot confirm it themselves
    expect(first.said()).to_have_text("Release requested: a second reviewer must confirm it.")
    expect(first.page.locator("#detail-pending")).to_contain_text("You requested this release")
    expect(first.page.get_by_role("button", name="Request release")).to_be_disabled()
    assert path in first.queue_paths()
    first.screenshot("release-requested")

    # When a second reviewer, in their own session, confirms it
    second = dashboard().sign_in(demo.keys.reviewers[1].secret)
    second.open(path)
    expect(second.page.locator("#detail-pending")).to_contain_text("Release requested by")
    second.act("Confirm release", "Checked the e-mail consent on file")
    # Then the image leaves the queue and is shown as approved
    expect(second.said()).to_have_text("Released: the image is in the library.")
    expect(second.item(path)).to_have_count(0)
    expect(second.page.locator("#detail-status")).to_contain_text("Approved")
    second.filter_status("Approved")
    expect(second.item(path).locator(".status")).to_have_text("Approved")
    second.screenshot("released")
    # And the system agrees: published by two different reviewers
    asset = api_get(base_url, f"/assets/{asset_id}", demo.keys.admin.secret)
    assert asset["status"] == "approved"
    assert asset["review"]["released"]["by"] == [
        demo.keys.reviewers[0].key_id,
        demo.keys.reviewers[1].key_id,
    ]


def test_a_signed_quitclaim_for_rose_leslie_releases_her_images(
    dashboard: Tabs, demo: DemoData, tmp_path: Path
) -> None:
    admin = dashboard().sign_in(demo.keys.admin.secret)
    admin.go("People")
    rose = admin.page.get_by_role("row").filter(has_text="Rose Leslie")
    expect(rose.locator(".badge")).to_have_text("Expired")
    # When the officer records her newly signed quitclaim, with the scanned form
    form = tmp_path / "rose-quitclaim.pdf"
    form.write_bytes(PDF)
    rose.get_by_role("button", name="Open Rose Leslie").click()
    grant = admin.page.locator("#grant-form")
    grant.get_by_label("web").check()
    grant.get_by_label("Valid from").fill("2026-11-01")
    grant.get_by_label("Valid until (optional)").fill("2027-11-01")
    expect(grant.get_by_label("Signed by")).to_have_value("Rose Leslie")
    grant.get_by_label("Signed document (PDF, JPEG or PNG)").set_input_files(str(form))
    grant.get_by_role("button", name="Record quitclaim").click()
    # Then she is valid again, and the evidence can be opened
    expect(admin.said()).to_contain_text("Quitclaim recorded for Rose Leslie")
    expect(rose.locator(".badge")).to_have_text("Valid")
    expect(rose).to_contain_text("1 November 2027")
    with admin.page.expect_download() as download:
        admin.page.get_by_role("button", name="Open the signed document").click()
    assert Path(download.value.path()).read_bytes() == PDF
    admin.screenshot("people")

    # And her images left the queue; the couple's photo now waits only for Kit
    admin.go("Quarantine queue")
    # (a retrying expectation: the queue reloads when the view opens)
    expect(admin.item("rose-red-carpet.jpg")).to_have_count(0)
    assert admin.item("couple.jpg").locator(".reason").all_inner_texts() == [KIT]
    admin.filter_status("Approved")
    expect(admin.item("rose-red-carpet.jpg").locator(".status")).to_have_text("Approved")


def test_a_reference_photo_is_enrolled(dashboard: Tabs, demo: DemoData) -> None:
    admin = dashboard().sign_in(demo.keys.admin.secret)
    admin.go("People")
    obama = admin.page.get_by_role("row").filter(has_text="obama")
    expect(obama.get_by_role("cell").nth(3)).to_have_text("1")
    # When the officer enrols another photo of him
    obama.get_by_role("button").click()
    enrol = admin.page.locator("#enrol-form")
    enrol.get_by_label("Photo (JPEG or PNG)").set_input_files(
        str(FACES / "resolution" / "obama-720p.jpg")
    )
    # (the form asks for his explicit consent to face matching, recorded with the photo)
    enrol.get_by_label("The person gave explicit consent to face matching").check()
    enrol.get_by_role("button", name="Enrol photo").click()
    # Then he has two reference photos
    expect(admin.said()).to_have_text("Photo enrolled for Obama: 2 reference photos.")
    expect(obama.get_by_role("cell").nth(3)).to_have_text("2")


def test_retention_settings_and_a_persons_end_of_retention(
    dashboard: Tabs, demo: DemoData, base_url: str
) -> None:
    admin = dashboard().sign_in(demo.keys.admin.secret)
    # When the officer sets the retention days and a daily digest on the overview
    admin.go("Overview")
    form = admin.page.locator("#retention-form")
    expect(form.get_by_label("Days to keep photos of unknown people")).to_have_value("90")
    form.get_by_label("Days to keep photos of unknown people").fill("60")
    form.get_by_label("Days to keep rejected uploads").fill("14")
    form.get_by_label("Digest e-mail to the contact address").select_option("daily")
    form.get_by_role("button", name="Save").click()
    # Then the tenant's policy holds them
    expect(admin.said()).to_have_text("Retention and digest settings saved.")
    policy = api_get(base_url, "/policy", demo.keys.admin.secret)
    assert (policy["quarantine_retention_days"], policy["rejected_retention_days"]) == (60, 14)
    assert policy["digest"] == "daily"
    # When the officer sets the end of retention of a person
    admin.go("People")
    admin.page.get_by_role("button", name="Open Kit Harington").click()
    retain = admin.page.locator("#retain-form")
    retain.get_by_label("Delete the record on").fill("2027-12-31")
    retain.get_by_role("button", name="Set end of retention").click()
    # Then it is set (DynamoDB TTL deletes the record then)
    expect(admin.said()).to_have_text("Kit Harington's record will be deleted on 31 December 2027.")


def test_a_reviewer_key_sees_no_registry_forms(dashboard: Tabs, demo: DemoData) -> None:
    tab = dashboard().sign_in(demo.keys.reviewers[1].secret)
    tab.go("People")
    tab.page.get_by_role("button", name="Open Kit Harington").click()
    expect(tab.page.locator("#person-title")).to_have_text("Kit Harington")
    expect(tab.page.locator("#grant-form")).to_be_hidden()
    expect(tab.page.locator("#enrol-form")).to_be_hidden()
    expect(tab.page.locator("#retain-form")).to_be_hidden()


def test_an_auditor_reads_and_verifies_the_audit_trail_only(
    dashboard: Tabs, demo: DemoData, base_url: str
) -> None:
    # Given an auditor's key, issued by the admin (audited as key.created)
    admin = api_get(base_url, "/me", demo.keys.admin.secret)["key_id"]
    issued = _post(
        base_url,
        "/keys",
        demo.keys.admin.secret,
        {"role": "auditor", "label": "audit", "person": "Auditor"},
    )
    tab = dashboard()
    tab.page.goto("/")
    tab.page.get_by_label("API key").fill(issued["secret"])
    tab.page.get_by_role("button", name="Sign in", exact=True).click()
    # Then the audit trail is all they are shown (the API would refuse the rest)
    expect(tab.page.get_by_role("heading", level=1)).to_have_text("Audit trail")
    nav = tab.page.get_by_role("navigation").get_by_role("link")
    expect(nav).to_have_text(["Audit trail"])
    expect(tab.page.locator("#audit-rows tr[data-seq]").first).to_be_visible()
    # When they ask for the key creations
    tab.page.get_by_label("Kind of event").fill("key.created")
    tab.page.get_by_role("button", name="Show", exact=True).click()
    # Then the admin is named as who acted (its key id: the chain holds no names)
    rows = tab.page.locator("#audit-rows tr")
    expect(rows.locator("[data-field=action]").first).to_have_text("key.created")
    expect(rows.locator("[data-field=actor]").last).to_have_text(admin)
    # And verifying the chain says it is intact
    tab.page.get_by_role("button", name="Verify the chain").click()
    expect(tab.page.locator("#audit-verdict")).to_contain_text("Intact")
    tab.screenshot("audit-trail")


def test_the_overview(dashboard: Tabs, demo: DemoData, base_url: str) -> None:
    # Given Biden also signed a short consent that ends in 20 days
    biden = next(
        p["subject"]["subject_id"]
        for p in api_get(base_url, "/people", demo.keys.admin.secret)["items"]
        if p["subject"]["external_ref"] == "biden"
    )
    _post(
        base_url,
        f"/subjects/{biden}/consents",
        demo.keys.admin.secret,
        {
            "purposes": ["print"],
            "valid_from": "2026-11-01",
            "expires_at": "2026-12-16",
            "signer": "Biden",
            "form_version": "event-2026",
        },
    )
    tab = dashboard().sign_in(demo.keys.admin.secret)
    # When the officer opens the overview
    tab.go("Overview")
    november = tab.page.locator("#volumes-rows tr[data-month='2026-11']")
    expect(november).to_be_visible()
    # Then this month shows every image the demo scanned, with its faces
    faces = sum(len(r["faces"]) for r in demo.report["uploads"])
    expect(november.locator("[data-series=scanned]")).to_have_text("13")
    expect(november.locator("[data-series=faces]")).to_have_text(str(faces))
    # (8 quarantined at scan; approved: at scan, and every release since, all this month)
    expect(november.locator("[data-series=quarantined]")).to_have_text("8")
    approved = api_get(base_url, "/assets?status=approved&limit=100", demo.keys.admin.secret)
    expect(november.locator("[data-series=approved]")).to_have_text(str(len(approved["items"])))
    # And a chart of the twelve months, five series each
    expect(tab.page.locator("#chart svg[role=img]")).to_have_count(1)
    expect(tab.page.locator("#chart rect.bar")).to_have_count(12 * 5 + 5)
    # And Biden's short consent in every window; no dead letters
    for days in ("30", "60", "90"):
        expect(tab.page.locator(f"#expiring dd[data-days='{days}']")).to_have_text("1")
    expect(tab.page.locator("#dlq dd")).to_have_text(["0"] * 8)
    # And this month's usage against the plan's quota and prices, projected (docs/billing.md)
    images = tab.page.locator("#bill-rows tr[data-dimension=images_scanned]")
    expect(images.locator("[data-field=used]")).to_have_text("13")
    total = tab.page.locator("#bill-rows tr[data-dimension=total] [data-field=amount]")
    expect(total).to_contain_text("€")
    tab.screenshot("overview")


def test_dutch_and_english(dashboard: Tabs, demo: DemoData) -> None:
    tab = dashboard().sign_in(demo.keys.reviewers[0].secret)
    # When the reviewer switches to Dutch
    tab.page.get_by_label("Language").select_option("nl")
    # Then the page, the reasons and the dates are Dutch
    expect(tab.page.locator("html")).to_have_attribute("lang", "nl")
    expect(tab.page.get_by_role("heading", level=1)).to_have_text("Quarantaine")
    expect(tab.item("kit-closeup.jpg").locator(".reason")).to_have_text(
        "Kit Harington heeft de toestemming op 26 november 2026 ingetrokken"
    )
    tab.screenshot("queue-nl")
    # And it stays Dutch, and signed in, after a reload
    tab.page.reload()
    expect(tab.page.get_by_role("heading", level=1)).to_have_text("Quarantaine")
    tab.go("Personen")
    kit = tab.page.get_by_role("row").filter(has_text="Kit Harington")
    expect(kit.locator(".badge")).to_have_text("Ingetrokken")
    tab.screenshot("people-nl")
    # When they switch back, English returns
    tab.page.get_by_label("Taal").select_option("en")
    expect(tab.page.get_by_role("heading", level=1)).to_have_text("People")


def test_no_serious_accessibility_violations(dashboard: Tabs, demo: DemoData) -> None:
    tab = dashboard()
    tab.page.goto("/")
    checked = {"sign-in": tab.axe_violations()}
    tab.sign_in(demo.keys.admin.secret)
    tab.open("kit-closeup.jpg")
    checked["queue"] = tab.axe_violations()
    tab.page.locator("#detail-actions").get_by_role("button", name="Keep in quarantine").click()
    expect(tab.page.get_by_role("dialog")).to_be_visible()
    checked["dialog"] = tab.axe_violations()
    tab.screenshot("dialog")
    tab.page.keyboard.press("Escape")
    expect(tab.page.get_by_role("dialog")).to_be_hidden()
    tab.go("People")
    tab.page.get_by_role("button", name="Open Kit Harington").click()
    checked["people"] = tab.axe_violations()
    tab.go("Overview")
    expect(tab.page.locator("#volumes-rows tr")).to_have_count(12)
    checked["overview"] = tab.axe_violations()
    tab.page.get_by_label("Language").select_option("nl")
    tab.go("Quarantaine")
    expect(tab.page.locator("#queue-list li").first).to_be_visible()
    checked["queue-nl"] = tab.axe_violations()
    assert checked == {name: [] for name in checked}


def _post(base_url: str, path: str, key: str, body: Any) -> Any:
    request = urllib.request.Request(
        base_url + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_a_held_photo_is_published_with_the_child_pixelated(
    dashboard: Tabs, demo: DemoData
) -> None:
    # (last in the module: it adds an approved image to the demo tenant)
    first = dashboard().sign_in(demo.keys.reviewers[0].secret)
    first.open("stage-with-child.jpg")
    # When a reviewer asks for the stage photo with its unknown face pixelated
    first.act("Publish with faces pixelated", "Publish the speakers without the child")
    # Then it is only requested: they cannot confirm it themselves
    expect(first.said()).to_have_text("Pixelated copy requested: a second person must confirm it.")
    expect(first.page.locator("#detail-pending")).to_contain_text("Pixelated copy requested by")
    expect(
        first.page.locator("#detail-actions").get_by_role(
            "button", name="Publish with faces pixelated"
        )
    ).to_be_disabled()
    # When a second reviewer confirms it
    tab = dashboard().sign_in(demo.keys.reviewers[1].secret)
    tab.open("stage-with-child.jpg")
    tab.act("Confirm pixelated copy", "Checked: the child is unrecognisable")
    # Then the copy is published and the original stays held, without the action now
    # (the API decodes, pixelates and re-scans the photo first: seconds on a busy machine)
    expect(tab.said()).to_contain_text("Published the pixelated copy", timeout=60_000)
    expect(tab.said()).to_contain_text("stage-with-child.redacted.png")
    tab.open("stage-with-child.jpg")
    expect(
        tab.page.locator("#detail-actions").get_by_role(
            "button", name="Publish with faces pixelated"
        )
    ).to_be_hidden()
    tab.filter_status("Approved")
    expect(tab.item("stage-with-child.redacted.png").locator(".status")).to_have_text("Approved")
    tab.screenshot("redacted")
