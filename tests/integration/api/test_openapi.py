"""The OpenAPI document: valid 3.1, one-to-one with the Chalice routes, true to responses."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate

from devstack.api_server import load_app
from quitclaim.api.openapi import OPERATIONS, document
from tests.integration.api.conftest import Api, Buckets, Tenant, asset_id_of, make_tenant, photo

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def spec(chalice_api: Api) -> dict[str, Any]:
    reply = chalice_api.call("GET", "/openapi.json")
    assert reply.status == 200
    served: dict[str, Any] = reply.json
    return served


def test_served_document_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    assert spec["openapi"] == "3.1.0"
    validate(spec)  # raises on any structural error


def test_every_chalice_route_is_documented_and_nothing_else(spec: dict[str, Any]) -> None:
    app = load_app()
    routes = {(path, method) for path, methods in app.routes.items() for method in methods}
    documented = {
        (path, method.upper()) for path, entries in spec["paths"].items() for method in entries
    }
    assert routes == documented
    assert len(routes) == len(OPERATIONS)


def test_every_operation_documents_its_errors_and_security(spec: dict[str, Any]) -> None:
    error_ref = {"$ref": "#/components/schemas/Error"}
    for op in OPERATIONS:
        entry = spec["paths"][op.path][op.method.lower()]
        assert entry["operationId"] == op.operation_id
        responses = entry["responses"]
        assert str(op.status) in responses
        assert responses["500"]["content"]["application/json"]["schema"] == error_ref
        if op.role is None:
            assert entry["security"] == []
        else:
            assert {"401", "403"} <= set(responses), op.operation_id
        if op.body is not None:
            schema = entry["requestBody"]["content"]["application/json"]["schema"]
            assert schema == {"$ref": f"#/components/schemas/{op.body.__name__}"}
        for name in op.path_params:
            assert name in {p["name"] for p in entry["parameters"] if p["in"] == "path"}
    assert spec["components"]["schemas"]["Error"]["required"] == ["error", "message", "field"]


def test_request_schemas_name_their_fields(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert {"purposes", "valid_from", "signer", "form_version"} <= set(
        schemas["GrantConsent"]["required"]
    )
    assert "justification" in schemas["ReviewAction"]["required"]
    assert schemas["ReviewAction"]["properties"]["justification"]["minLength"] == 3
    query = spec["paths"]["/assets"]["get"]["parameters"]
    assert {"status", "reason", "subject", "since", "until", "limit", "cursor"} == {
        p["name"] for p in query if p["in"] == "query"
    }


def test_document_is_built_from_the_route_table_not_by_hand() -> None:
    assert document() is document()  # built once per container
    assert len([m for p in document()["paths"].values() for m in p]) == len(OPERATIONS)


@pytest.fixture(scope="module")
def tenant(local_stack: Any) -> Tenant:
    return make_tenant("api-openapi")


def test_real_responses_match_their_documented_schemas(
    api: Api, spec: dict[str, Any], tenant: Tenant, local_stack: Any
) -> None:
    # Given real data of every kind
    key = tenant.admin
    sid = api.call("POST", "/subjects", key=key, json_body={"display_name": "Schema"}).json[
        "subject_id"
    ]
    api.call(
        "POST",
        f"/subjects/{sid}/consents",
        key=key,
        json_body={
            "purposes": ["web"],
            "valid_from": "2026-01-01",
            "signer": "S",
            "form_version": "1",
        },
    )
    path = f"schema-{api.name}.png"
    Buckets(local_stack, tenant.id).upload(path, photo("uploads", "stranger-portrait.png"))
    asset_id = asset_id_of(api, key, path)
    cid = api.call("GET", f"/subjects/{sid}/consents", key=key).json["items"][0]["consent_id"]
    calls = {
        "getPolicy": "/policy",
        "listSubjects": "/subjects",
        "getSubject": f"/subjects/{sid}",
        "listConsents": f"/subjects/{sid}/consents",
        "getConsent": f"/subjects/{sid}/consents/{cid}",
        "listAssets": "/assets?status=all",
        "getAsset": f"/assets/{asset_id}",
        "listKeys": "/keys",
        "listAuditEvents": "/audit/events?limit=5",
        "verifyAuditTrail": "/audit/verify",
    }
    components = {"components": spec["components"]}
    for operation_id, url in calls.items():
        op = next(o for o in OPERATIONS if o.operation_id == operation_id)
        reply = api.call("GET", url, key=key)
        assert reply.status == 200, (url, reply.body)
        schema = {"$ref": f"#/components/schemas/{op.response}", **components}
        # Then each answer validates against the schema the document gives for it
        jsonschema.validate(reply.json, schema, cls=jsonschema.Draft202012Validator)
    error = api.call("GET", f"/subjects/{sid}x", key=key)
    jsonschema.validate(
        error.json,
        {"$ref": "#/components/schemas/Error", **components},
        cls=jsonschema.Draft202012Validator,
    )
