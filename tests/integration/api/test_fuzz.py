"""Property: no request, however malformed, makes the API answer 5xx.

Hypothesis draws an operation from the route table, then a body (random JSON,
the operation's own fields with random values, or raw bytes), a query string
and path ids (real ones of this tenant, or junk), a key (admin, reviewer,
none, wrong) and a content type. Every answer must be < 500, and every error must be the error
shape. Bounded: ~50 s over both transports.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from quitclaim.api.openapi import OPERATIONS, Operation
from quitclaim.bootstrap import accuracy_jobs_service
from tests.integration.api.conftest import ERROR_KEYS, Api, Buckets, Tenant, make_tenant, photo

pytestmark = pytest.mark.integration

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
# Values that are close to valid: dates, ids, base64, purposes, huge numbers.
tricky = st.sampled_from(
    [
        "2026-01-01",
        "2026-02-30",
        "0000-01-01",
        "9999-12-31T23:59:59+14:00",
        "2026-01-01T00:00:00-25:00",
        "web",
        "admin",
        "",
        " ",
        "\x00",
        "AAAA",
        "////",
        "sub_0000000000000000",
        "../../etc/passwd",
        "a#b",
        10**400,
        -1,
        1e308,
        [],
        {},
    ]
)


CONTENT_TYPES = [
    "application/json",
    "application/json",
    "application/json; charset=utf-8",
    "image/jpeg",  # a raw photo: random bytes reach the image decoder
    "text/plain",
]


def _body_for(op: Operation) -> st.SearchStrategy[Any]:
    if op.body is None:
        return st.none() | json_values
    fields = list(op.body.model_fields)
    shaped = st.fixed_dictionaries({}, optional={f: json_values | tricky for f in fields})
    return shaped | json_values | st.binary(max_size=64)


@st.composite
def requests(draw: st.DrawFn, ids: dict[str, list[str]]) -> tuple[Operation, str, Any, str, str]:
    op = draw(st.sampled_from(OPERATIONS))
    path = op.path
    for name in op.path_params:
        value = draw(
            st.sampled_from(ids.get(name, ["x"]))
            | st.text(min_size=1, max_size=20)
            | st.sampled_from(["a%2Fb", "%00", "..", "x" * 300])
        )
        path = path.replace("{" + name + "}", urllib.parse.quote(value, safe="%"))
    query = draw(
        st.dictionaries(
            st.sampled_from(["limit", "cursor", "status", "reason", "subject", "since", "until"])
            | st.text(min_size=1, max_size=8),
            st.text(max_size=30) | tricky.map(str),
            max_size=3,
        )
    )
    if query:
        path += "?" + urllib.parse.urlencode(query)
    # Mostly valid keys: a request refused at the door tests little.
    key = draw(st.sampled_from(["admin", "admin", "admin", "reviewer", "none", "wrong"]))
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    return op, path, draw(_body_for(op)), key, content_type


@pytest.fixture(scope="module")
def fuzz_world(local_stack: Any, chalice_api: Api) -> tuple[Tenant, dict[str, list[str]]]:
    tenant = make_tenant("api-fuzz")
    api = chalice_api
    sid = api.call("POST", "/subjects", key=tenant.admin, json_body={"display_name": "F"})
    subject_id = sid.json["subject_id"]
    consent = api.call(
        "POST",
        f"/subjects/{subject_id}/consents",
        key=tenant.admin,
        json_body={
            "purposes": ["web"],
            "valid_from": "2026-01-01",
            "signer": "F",
            "form_version": "1",
        },
    )
    Buckets(local_stack, tenant.id).upload("fuzz.png", photo("uploads", "stranger-portrait.png"))
    assets = api.call("GET", "/assets?status=all", key=tenant.admin).json["items"]
    source = api.call(
        "POST",
        "/webhook-sources",
        key=tenant.admin,
        json_body={"name": "fuzz", "preset": "generic-form"},
    )
    endpoint = api.call(
        "POST",
        "/webhook-endpoints",
        key=tenant.admin,
        json_body={"url": "http://127.0.0.1:9/hooks", "event_types": ["asset.approved"]},
    )
    spare = api.call(
        "POST",
        "/keys",
        key=tenant.admin,
        json_body={"role": "reviewer", "label": "fuzz", "person": "fuzz"},
    )
    ids = {
        "subject_id": [subject_id],
        "consent_id": [consent.json["consent_id"]],
        "asset_id": [a["asset_id"] for a in assets],
        "tenant": [tenant.id],
        "source": [source.json["source"]["name"]],
        "endpoint_id": [endpoint.json["endpoint"]["endpoint_id"]],
        "delivery_id": ["msg_0000", "msg_unknown"],
        "file": ["app.js", "app.css", "index.html"],
        # A key of its own to revoke and rotate: never the admin's the fuzzing uses
        "key_id": [spare.json["key_id"], "key_unknown"],
        "job_id": [accuracy_jobs_service().prepare(tenant.id, ["a.jpg"])["job_id"]],
    }
    return tenant, ids


def _check(
    api: Api, tenant: Tenant, op: Operation, path: str, body: Any, key: str, content_type: str
) -> None:
    secret = {"admin": tenant.admin, "reviewer": tenant.reviewer, "wrong": "qc_wrong_1"}.get(key)
    headers = {"Content-Type": content_type}
    raw = body if isinstance(body, bytes) else (None if body is None else json.dumps(body).encode())
    reply = api.call(op.method, path, key=secret, body=raw, headers=headers)
    assert reply.status < 500, (op.operation_id, path, body, reply.status, reply.body)
    event(f"{reply.status}")  # --hypothesis-show-statistics: how deep the inputs got
    if reply.status < 400:
        return
    payload = reply.json
    if reply.status == 403 and set(payload) == {"message"}:
        return  # API Gateway's own answer for a path that is no route (not the app's)
    assert set(payload) == ERROR_KEYS, (op.operation_id, path, reply.body)
    # And an error never echoes a key
    assert tenant.admin not in payload["message"] and tenant.reviewer not in payload["message"]


def _run(api: Api, fuzz_world: Any, examples: int) -> None:
    tenant, ids = fuzz_world

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(requests(ids))
    def check(request: tuple[Operation, str, Any, str, str]) -> None:
        _check(api, tenant, *request)

    check()


def test_no_5xx_through_chalice(chalice_api: Api, fuzz_world: Any) -> None:
    _run(chalice_api, fuzz_world, examples=400)


def test_no_5xx_over_http(http_api: Api, fuzz_world: Any) -> None:
    _run(http_api, fuzz_world, examples=150)


def test_path_params_reach_only_real_routes() -> None:
    # Guard for the strategy above: every path parameter has real ids to draw from
    names = {n for op in OPERATIONS for n in re.findall(r"{(\w+)}", op.path)}
    assert names == {
        "subject_id",
        "consent_id",
        "asset_id",
        "tenant",
        "source",
        "endpoint_id",
        "delivery_id",
        "file",
        "version",
        "key_id",
        "job_id",
    }


# ---------------------------------------------------------------- the key itself


@st.composite
def presented_keys(draw: st.DrawFn, real: str) -> dict[str, str]:
    """Headers carrying anything but the real key: near misses, junk, odd schemes."""
    prefix, secret = real[:-48], real[-48:]
    near = st.one_of(
        st.integers(0, 47).flatmap(  # one hex digit changed
            lambda i: st.sampled_from("0123456789abcdefABCDEF").map(
                lambda c, i=i: prefix + secret[:i] + c + secret[i + 1 :]
            )
        ),
        st.integers(0, len(real) - 1).map(lambda n: real[:n]),  # cut short
        st.text(min_size=1, max_size=3).map(lambda extra: real + extra),  # too long
        st.just(real.upper()),
        st.sampled_from(["qc_other-tenant_", "qc__", "qc_", "QC_", "qc-"]).map(
            lambda p: p + secret
        ),
        st.just(prefix.replace("qc_", "qc_x", 1) + secret),
    )
    junk = st.text(max_size=80) | st.binary(max_size=40).map(lambda b: b.decode("latin-1"))
    secret_drawn = draw(near | junk)
    scheme = draw(st.sampled_from(["Bearer ", "bearer ", "BEARER  ", "Basic ", "Token ", "", " "]))
    where = draw(st.sampled_from(["authorization", "x-api-key", "both"]))
    headers = {}
    if where in ("authorization", "both"):
        headers["Authorization"] = scheme + secret_drawn
    if where in ("x-api-key", "both"):
        headers["x-api-key"] = secret_drawn
    return headers


def test_no_presented_key_but_the_real_one_is_accepted(chalice_api: Api, fuzz_world: Any) -> None:
    tenant, _ids = fuzz_world

    @settings(max_examples=300, deadline=None, database=None)
    @given(presented_keys(tenant.reviewer))
    def check(headers: dict[str, str]) -> None:
        presented = {v.strip().split(" ")[-1] for v in headers.values()}
        assume(tenant.reviewer not in presented and tenant.admin not in presented)
        # When any route a reviewer may call is asked with the header(s)
        reply = chalice_api.call("GET", "/subjects", headers=headers)
        # Then it is refused as unauthenticated (or malformed), never served, never a 5xx
        event(str(reply.status))
        assert reply.status in (400, 401), (headers, reply.status, reply.body)
        assert tenant.reviewer not in reply.body.decode("utf-8", "replace")

    check()
