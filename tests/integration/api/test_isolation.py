"""Tenant B's key cannot read, list, change or infer tenant A's data: 404, never data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from quitclaim.api.openapi import OPERATIONS
from quitclaim.bootstrap import accuracy_jobs_service
from tests.conftest import FACES
from tests.integration.api.conftest import (
    Api,
    Buckets,
    Tenant,
    assert_error,
    asset_id_of,
    b64,
    make_tenant,
    photo,
)

pytestmark = pytest.mark.integration

SECRET_NAME = "Ada Isolation-Secret"
DOCUMENT = b"%PDF-1.4 signed quitclaim of tenant A"


@dataclass
class World:
    a: Tenant
    b: Tenant
    subject: str
    consent: str
    asset: str
    b_asset: str
    source: str = "a-crm"
    endpoint: str = ""
    delivery: str = ""
    key: str = ""  # the id of A's reviewer key
    job: str = ""  # an accuracy audit job of A's (prepared, not started)


@pytest.fixture(scope="module")
def world(local_stack: Any, chalice_api: Api) -> World:
    # Given tenant A with a subject, a consent with its signed document and a
    # quarantined asset, and tenant B with an asset of its own
    a, b = make_tenant("api-iso-a"), make_tenant("api-iso-b")
    api = chalice_api
    subject = api.call("POST", "/subjects", key=a.admin, json_body={"display_name": SECRET_NAME})
    sid = subject.json["subject_id"]
    consent = api.call(
        "POST",
        f"/subjects/{sid}/consents",
        key=a.admin,
        json_body={
            "purposes": ["web"],
            "valid_from": "2026-01-01",
            "signer": SECRET_NAME,
            "form_version": "v1",
            "document_base64": b64(DOCUMENT),
            "document_type": "application/pdf",
        },
    )
    assert consent.status == 201, consent.body
    stranger = photo("uploads", "stranger-portrait.png")
    # And a webhook source and an endpoint of A's, with a delivery to it
    source = api.call(
        "POST",
        "/webhook-sources",
        key=a.admin,
        json_body={"name": "a-crm", "preset": "generic-form"},
    )
    assert source.status == 201, source.body
    endpoint = api.call(
        "POST",
        "/webhook-endpoints",
        key=a.admin,
        json_body={"url": "http://127.0.0.1:9/a-only", "event_types": ["asset.quarantined"]},
    )
    assert endpoint.status == 201, endpoint.body
    # And a form version of A's (a name B does not have)
    form = api.call(
        "POST",
        "/forms",
        key=a.admin,
        json_body={
            "version": "a-only-form",
            "texts": {"en": {"title": SECRET_NAME, "body": SECRET_NAME}},
            "purposes": ["web"],
        },
    )
    assert form.status == 201, form.body
    # (B has a form of its own, so a link for A's person fails on the person, not the form)
    b_form = {
        "version": "b-form",
        "texts": {"en": {"title": "B", "body": "B"}},
        "purposes": ["web"],
    }
    assert api.call("POST", "/forms", key=b.admin, json_body=b_form).status == 201
    Buckets(local_stack, a.id).upload("stranger.png", stranger)
    Buckets(local_stack, b.id).upload("stranger.png", stranger)
    [delivery] = api.call("GET", "/webhook-deliveries", key=a.admin).json["items"]
    return World(
        a,
        b,
        sid,
        consent.json["consent_id"],
        asset_id_of(api, a.admin, "stranger.png"),
        asset_id_of(api, b.admin, "stranger.png"),
        endpoint=endpoint.json["endpoint"]["endpoint_id"],
        delivery=delivery["delivery_id"],
        key=api.call("GET", "/me", key=a.reviewer).json["key_id"],
        job=accuracy_jobs_service().prepare(a.id, ["a.jpg"])["job_id"],
    )


def _attempts(w: World) -> list[tuple[str, str, Any]]:
    s, c, x = w.subject, w.consent, w.asset
    why = {"justification": "tenant B trying"}
    return [
        ("GET", f"/subjects/{s}", None),
        ("PATCH", f"/subjects/{s}", {"display_name": "Changed by B"}),
        ("DELETE", f"/subjects/{s}", None),
        ("POST", f"/subjects/{s}/photos", {"photos": [b64(b"not even an image")]}),
        ("GET", f"/subjects/{s}/consents", None),
        (
            "POST",
            f"/subjects/{s}/consents",
            {"purposes": ["web"], "valid_from": "2026-01-01", "signer": "B", "form_version": "1"},
        ),
        ("GET", f"/subjects/{s}/consents/{c}", None),
        ("GET", f"/subjects/{s}/consents/{c}/document", None),
        ("POST", f"/subjects/{s}/consents/{c}/revoke", {}),
        ("POST", f"/subjects/{s}/consents/{c}/renew", {"expires_at": "2030-01-01"}),
        ("GET", f"/assets/{x}", None),
        ("GET", f"/assets/{x}/thumbnail", None),
        ("POST", f"/assets/{x}/release", why),
        ("POST", f"/assets/{x}/keep", why),
        ("POST", f"/assets/{x}/reassign", {"face_index": 0, "subject_id": None, **why}),
        ("DELETE", f"/assets/{x}", why),
        # Data-subject rights
        ("GET", f"/subjects/{s}/export", None),
        ("POST", f"/subjects/{s}/erase", None),
        ("GET", f"/subjects/{s}/erasure", None),
        ("POST", f"/assets/{x}/redact", why),
        ("PUT", f"/subjects/{s}/retention", {"until": "2030-01-01"}),
        # Webhooks: sources are named per tenant, so A's name is simply unknown to B
        ("DELETE", f"/webhook-sources/{w.source}", None),
        ("POST", f"/webhook-sources/{w.source}/rotate", {"overlap_hours": 0}),
        ("GET", f"/webhook-sources/{w.source}/deliveries", None),
        ("POST", f"/webhook-sources/{w.source}/deliveries/{w.delivery}/retry", None),
        ("POST", f"/webhook-sources/{w.source}/deliveries/{w.delivery}/dismiss", None),
        ("DELETE", f"/webhook-endpoints/{w.endpoint}", None),
        ("POST", f"/webhook-endpoints/{w.endpoint}/rotate", {"overlap_hours": 0}),
        ("POST", f"/webhook-deliveries/{w.delivery}/replay", None),
        # The hosted form: A's versions are not B's; nor are A's people
        ("GET", "/forms/a-only-form", None),
        ("POST", "/form-links", {"subject_id": s}),
        # A's keys: B can neither revoke nor rotate them
        ("POST", f"/keys/{w.key}/revoke", None),
        ("POST", f"/keys/{w.key}/rotate", {}),
        # Accuracy audit jobs (docs/accuracy-audit.md): the job id is looked up in B's keys
        ("GET", f"/audits/accuracy/{w.job}", None),
        ("GET", f"/audits/accuracy/{w.job}/report", None),
        ("POST", "/audits/accuracy", {"job_id": w.job}),
        ("POST", "/policy/accuracy-advice", {"job_id": w.job}),
    ]


def test_every_route_with_an_id_has_a_cross_tenant_case(world: World) -> None:
    # A new route that takes an id must be added to the attempts above
    covered = set()
    for method, path, _ in _attempts(world):
        for op in OPERATIONS:
            pattern = "^" + re.sub(r"{\w+}", "[^/]+", op.path) + "$"
            if op.method == method and re.match(pattern, path):
                covered.add(op.operation_id)
    with_ids = {op.operation_id for op in OPERATIONS if op.path_params and op.role is not None}
    assert with_ids - covered == set()


def test_b_gets_404_for_every_one_of_as_ids(api: Api, world: World) -> None:
    for method, path, body in _attempts(world):
        # When B's admin key (every role) names A's ids
        for key in (world.b.admin, world.b.reviewer):
            reply = api.call(method, path, key=key, json_body=body)
            # Then 404, or 403 where a reviewer key meets an admin-only route (the role
            # is checked before anything is looked up), and never any of A's data
            admin_only = path.startswith(
                ("/webhook", "/form-links", "/keys", "/audits/", "/policy/accuracy-advice")
            ) or (
                path.startswith("/subjects")
                and (method != "GET" or "/eras" in path or "/export" in path)
            )
            expected = 403 if key == world.b.reviewer and admin_only else 404
            assert_error(reply, expected)
            text = reply.body.decode()
            assert SECRET_NAME not in text and b64(DOCUMENT) not in text, (method, path)


def test_as_data_is_unchanged_after_bs_attempts(api: Api, world: World) -> None:
    # Given all of B's attempts above (run here too, so the order of tests does not matter)
    for method, path, body in _attempts(world):
        api.call(method, path, key=world.b.admin, json_body=body)
    # Then A still sees its subject, consent, document and asset exactly as before
    subject = api.call("GET", f"/subjects/{world.subject}", key=world.a.admin)
    assert subject.status == 200 and subject.json["display_name"] == SECRET_NAME
    consent = api.call(
        "GET", f"/subjects/{world.subject}/consents/{world.consent}", key=world.a.admin
    )
    assert consent.json["status"] == "valid" and consent.json["revoked_at"] is None
    assert [e["event"] for e in consent.json["history"]] == ["granted"]
    document = api.call(
        "GET", f"/subjects/{world.subject}/consents/{world.consent}/document", key=world.a.admin
    )
    assert document.json["content_type"] == "application/pdf"
    assert document.json["document_base64"] == b64(DOCUMENT)
    asset = api.call("GET", f"/assets/{world.asset}", key=world.a.admin).json
    assert asset["status"] == "quarantined" and asset["review"] == {}
    assert [h["action"] for h in asset["history"]][-1] != "release_requested"
    # And A's webhook source, endpoint and delivery are as they were
    sources = api.call("GET", "/webhook-sources", key=world.a.admin).json["items"]
    assert [(x["name"], x["rotated_at"]) for x in sources] == [("a-crm", None)]
    endpoints = api.call("GET", "/webhook-endpoints", key=world.a.admin).json["items"]
    assert [(x["endpoint_id"], x["rotated_at"]) for x in endpoints] == [(world.endpoint, None)]
    deliveries = api.call("GET", "/webhook-deliveries", key=world.a.admin).json["items"]
    assert [(d["delivery_id"], d["replays"]) for d in deliveries] == [(world.delivery, 0)]
    # And A's reviewer key still works, unrevoked
    assert api.call("GET", "/me", key=world.a.reviewer).json["key_id"] == world.key


def test_b_cannot_post_into_as_webhook_source(api: Api, world: World) -> None:
    # Given B's own source and its secret
    mine = api.call(
        "POST",
        "/webhook-sources",
        key=world.b.admin,
        json_body={"name": "crm", "preset": "generic-form"},
    )
    if mine.status == 409:  # the module runs once per transport
        mine = api.call(
            "POST", "/webhook-sources/crm/rotate", key=world.b.admin, json_body={"overlap_hours": 0}
        )
    secret = mine.json["secret"]
    body = b'{"event": "consent.withdrawn", "person": {"id": "x"}}'
    at = datetime.now(UTC)
    headers = {
        "Content-Type": "application/json",
        "webhook-id": "msg_cross",
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign("msg_cross", at, body.decode()),
    }
    # When B signs a delivery with its secret and posts it to A's source URL
    reply = api.call("POST", f"/webhooks/{world.a.id}/{world.source}", body=body, headers=headers)
    # Then it is refused
    assert_error(reply, 401, "invalid_signature")


def test_lists_never_show_the_other_tenant(api: Api, world: World) -> None:
    # When B lists subjects and assets (every status)
    subjects = api.call("GET", "/subjects?limit=100", key=world.b.admin)
    assets = api.call("GET", "/assets?status=all&limit=100", key=world.b.admin)
    # Then only B's own items appear
    assert subjects.status == 200 and assets.status == 200
    assert world.subject not in {s["subject_id"] for s in subjects.json["items"]}
    assert {a["tenant"] for a in subjects.json["items"]} <= {world.b.id}
    assert [a["asset_id"] for a in assets.json["items"]] == [world.b_asset]
    assert SECRET_NAME not in subjects.body.decode() + assets.body.decode()
    # And filtering B's assets by A's subject id finds nothing
    by_subject = api.call("GET", f"/assets?status=all&subject={world.subject}", key=world.b.admin)
    assert by_subject.status == 200 and by_subject.json["items"] == []


def test_the_audit_trail_answers_only_the_callers_tenant(api: Api, world: World) -> None:
    # Given A's audit events (A registered the person; B's attempts are B's own)
    mine = api.call("GET", "/audit/events?limit=1", key=world.a.admin)
    assert mine.status == 200 and mine.json["next_cursor"], mine.body
    # When B lists its audit events, with a tenant in the query, and A's cursor
    listed = api.call("GET", "/audit/events?limit=100", key=world.b.admin)
    verdict = api.call("GET", "/audit/verify", key=world.b.admin)
    named = api.call("GET", f"/audit/events?tenant={world.a.id}", key=world.b.admin)
    crossed = api.call("GET", f"/audit/events?cursor={mine.json['next_cursor']}", key=world.b.admin)
    # Then B sees only B's chain, never an id of A's, and the rest is refused
    assert listed.status == 200 and verdict.status == 200, (listed.body, verdict.body)
    assert {e["tenant"] for e in listed.json["items"]} <= {world.b.id}
    text = listed.body.decode() + verdict.body.decode()
    for secret in (world.subject, world.consent, world.asset, SECRET_NAME):
        assert secret not in text
    assert verdict.json["tenant"] == world.b.id
    assert_error(named, 400, "validation_failed", "tenant")
    assert_error(crossed, 400, "validation_failed", "cursor")


def test_b_cannot_link_its_asset_to_as_subject(api: Api, world: World) -> None:
    # When B says a face in B's own asset is A's subject
    reply = api.call(
        "POST",
        f"/assets/{world.b_asset}/reassign",
        key=world.b.admin,
        json_body={"face_index": 0, "subject_id": world.subject, "justification": "guessing"},
    )
    # Then A's subject does not exist for B
    assert_error(reply, 404, "not_found")


def test_a_tenant_in_the_body_or_query_is_ignored_or_refused(api: Api, world: World) -> None:
    # A body naming another tenant is refused (unknown field), never obeyed
    reply = api.call(
        "POST",
        "/subjects",
        key=world.b.admin,
        json_body={"display_name": "x", "tenant": world.a.id},
    )
    assert_error(reply, 400, "validation_failed", "tenant")
    listed = api.call("GET", f"/subjects?tenant={world.a.id}", key=world.b.admin)
    assert_error(listed, 400, "validation_failed", "tenant")


# ------------------------------------------------------------------ the CLI

# Parameters through which a command names a tenant or one of its things.
CLI_ID_PARAMS = {
    "tenant",
    "subject_id",
    "consent_id",
    "asset_id",
    "delivery_id",
    "endpoint_id",
    "source",
    "subject",
    "name",
}
# Operator commands whose argument *is* the tenant they act on: there is no
# "other tenant" to cross into (test_tenants proves a purge touches only it).
CLI_NOT_CROSSABLE = {
    "tenants delete": "the operator names the tenant to delete; nothing else is touched",
    "api tenants delete": "the same command as `tenants delete`",
    "usage customer": "the operator names the tenant whose Marketplace customer id it sets",
    "usage reconcile": "the operator's billing check: --tenant narrows what the operator reads",
    "import consents": "the operator names the tenant the rows go into; person references "
    "are looked up in that tenant only",
    "backlog scan": "the operator names the tenant the images are fed to (its incoming/ prefix)",
    "tenants plan": "the operator names the tenant whose plan and usage-plan key change",
    "local user": "the operator creates a local-stack account in the tenant it names",
    "audit accuracy": "the operator's own labels and photos, measured with the named tenant's "
    "policy; the report is kept under that tenant only",
}


def _cli_commands() -> dict[str, set[str]]:
    """Every leaf command of ``quitclaim`` with its parameter names."""
    import click

    from cli.main import main

    found: dict[str, set[str]] = {}

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        if isinstance(command, click.Group):
            if command.invoke_without_command:  # a group that is a command too (`usage`)
                found[" ".join(path)] = {p.name for p in command.params if p.name}
            for name, sub in command.commands.items():
                walk(sub, (*path, name))
        else:
            found[" ".join(path)] = {p.name for p in command.params if p.name}

    walk(main, ())
    return found


def _cli_attempts(w: World, tmp: str) -> list[tuple[str, list[str]]]:
    """(command, argv) run with B's key (api) or B's tenant (operator) on A's ids."""
    s, c, x, b = w.subject, w.consent, w.asset, w.b.id
    face = str(FACES / "enroll" / "obama" / "obama-portrait.jpg")
    why = ["--justification", "tenant B trying"]
    return [
        ("api subjects get", ["api", "subjects", "get", s]),
        ("api subjects enrol", ["api", "subjects", "enrol", s, face, "--biometric-consent"]),
        ("api subjects export", ["api", "subjects", "export", s, "--out", tmp]),
        ("api subjects erase", ["api", "subjects", "erase", s]),
        ("api subjects erasure", ["api", "subjects", "erasure", s]),
        ("api subjects retain", ["api", "subjects", "retain", s, "--until", "2030-01-01"]),
        ("api consents list", ["api", "consents", "list", s]),
        (
            "api consents grant",
            [
                *("api", "consents", "grant", s, "--purpose", "web"),
                *("--valid-from", "2026-01-01", "--signer", "B", "--form-version", "1"),
            ],
        ),
        ("api consents revoke", ["api", "consents", "revoke", s, c]),
        ("api consents renew", ["api", "consents", "renew", s, c, "--expires-at", "2030-01-01"]),
        ("api assets list", ["api", "assets", "list", "--status", "all", "--subject", s]),
        ("api assets get", ["api", "assets", "get", x]),
        ("api assets release", ["api", "assets", "release", x, *why]),
        ("api assets keep", ["api", "assets", "keep", x, *why]),
        ("api assets redact", ["api", "assets", "redact", x, *why]),
        ("api webhooks inbound", ["api", "webhooks", "inbound", w.source]),
        ("api webhooks retry-inbound", ["api", "webhooks", "retry-inbound", w.source, "whd_x"]),
        ("api webhooks rotate", ["api", "webhooks", "rotate", "source", w.source]),
        ("api webhooks rotate", ["api", "webhooks", "rotate", "endpoint", w.endpoint]),
        ("api webhooks deliveries", ["api", "webhooks", "deliveries", "--endpoint", w.endpoint]),
        ("api webhooks replay", ["api", "webhooks", "replay", w.delivery]),
        # Names are per tenant: B's source of the same name is B's own
        (
            "api webhooks add-source",
            ["api", "webhooks", "add-source", w.source, "--preset", "generic-form"],
        ),
        # Operator commands given B's tenant and A's ids
        ("check", ["check", "--tenant", b]),
        # B's bill holds B's counters only; a quota for B changes nothing of A's
        ("usage", ["usage", "--tenant", b, "--month", "2026-11", "--csv"]),
        ("quota", ["quota", "--tenant", b, "--images-per-month", "100000"]),
        # The audit chain named is B's own (A's chain is never read for B)
        ("audit verify", ["audit", "verify", "--tenant", b]),
        ("audit show", ["audit", "show", "--tenant", b]),
        # B's admin key on B's tenant, naming A's accuracy audit job: not found
        ("audit adopt-advice", ["audit", "adopt-advice", "--tenant", b, "--job", w.job]),
        ("api audits status", ["api", "audits", "status", w.job]),
        # (a file that is no photo: refused before any face work, and never in A)
        (
            "enrol",
            ["enrol", "--tenant", b, "--name", "B's person", "--biometric-consent", __file__],
        ),
        (
            "consents grant",
            ["consents", "grant", "--tenant", b, "--subject", s, "--purpose", "web"],
        ),
        (
            "consents revoke",
            ["consents", "revoke", "--tenant", b, "--subject", s, "--consent", c],
        ),
        # Creating a tenant under A's id is refused (the id is taken), A untouched
        (
            "tenants create",
            ["tenants", "create", w.a.id, "--name", "B", "--contact-email", "b@b.eu"],
        ),
        (
            "api tenants create",
            ["api", "tenants", "create", w.a.id, "--name", "B", "--contact-email", "b@b.eu"],
        ),
    ]


def test_every_cli_command_with_a_tenant_or_id_has_a_cross_tenant_case(
    world: World, tmp_path: Any
) -> None:
    # A new CLI command that takes a tenant or an id must be added to the attempts above
    commands = _cli_commands()
    takes_ids = {path for path, params in commands.items() if params & CLI_ID_PARAMS}
    covered = {path for path, _ in _cli_attempts(world, str(tmp_path))}
    assert covered <= set(commands), covered - set(commands)
    assert takes_ids - covered - set(CLI_NOT_CROSSABLE) == set()


def test_the_cli_with_bs_key_or_tenant_never_reaches_as_data(
    http_api: Any, world: World, tmp_path: Any
) -> None:
    from click.testing import CliRunner

    from cli.main import main

    env = {"QUITCLAIM_URL": http_api.base_url, "QUITCLAIM_KEY": world.b.admin}
    runner = CliRunner()
    for command, argv in _cli_attempts(world, str(tmp_path / "export.zip")):
        # When B runs the command on A's ids
        result = runner.invoke(main, argv, env=env, catch_exceptions=False)
        output = result.output
        # Then it fails as "not found" (or "taken"), or succeeds on B's own data only
        assert SECRET_NAME not in output and b64(DOCUMENT) not in output, command
        if command in {"api assets list", "api webhooks deliveries"}:
            assert result.exit_code == 0 and world.asset not in output, (command, output)
        elif command in {
            "check",
            "api webhooks add-source",
            "usage",
            "quota",
            "audit verify",
            "audit show",
        }:
            assert result.exit_code == 0 and world.a.id not in output, (command, output)
        elif command == "enrol":
            assert result.exit_code == 1 and world.a.id not in output, (command, output)
        elif command.endswith("tenants create"):
            assert result.exit_code == 1 and "conflict" in output, (command, output)
        else:
            assert result.exit_code == 1, (command, output)
            assert "not_found" in output or "404" in output, (command, output)
    assert not (tmp_path / "export.zip").exists()
    # And A's subject, consent and asset are exactly as before
    a = {"Authorization": f"Bearer {world.a.admin}"}
    subject = http_api.call("GET", f"/subjects/{world.subject}", headers=a)
    assert subject.json["display_name"] == SECRET_NAME and subject.json["templates"] == 0
    consent = http_api.call(
        "GET", f"/subjects/{world.subject}/consents/{world.consent}", headers=a
    ).json
    assert consent["status"] == "valid" and [e["event"] for e in consent["history"]] == ["granted"]
    asset = http_api.call("GET", f"/assets/{world.asset}", headers=a).json
    assert asset["status"] == "quarantined" and asset["review"] == {}
    sources = http_api.call("GET", "/webhook-sources", headers=a).json["items"]
    assert [(x["name"], x["rotated_at"]) for x in sources] == [("a-crm", None)]
