"""The HTTP API on the session's local stack: Chalice's test client and real HTTP.

``api`` fixtures speak one tiny interface (``Api.call``) over either
transport, so the same test runs through ``chalice.test.Client`` and over a
socket against ``serve_api`` (the server ``quitclaim local up`` runs). Each
module creates its own tenants (unique ids) on the shared stack; keys come
from the real console, never a stand-in.
"""

from __future__ import annotations

import base64
import functools
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from chalice.test import Client

from devstack.api_server import api_dir, load_app, serve_api
from quitclaim.bootstrap import api_keys_service, onboarding_service
from quitclaim.domain.registry import IssuedKey, Role
from tests.conftest import FACES

pytestmark = pytest.mark.integration

ERROR_KEYS = {"error", "message", "field"}


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


class Api:
    """One transport to the API; ``key`` is sent as a Bearer token."""

    name = "abstract"

    def call(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        json_body: Any = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if key is not None:
            sent.setdefault("Authorization", f"Bearer {key}")
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent.setdefault("Content-Type", "application/json")
        return self._send(method, path, sent, body)

    def _send(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> Reply:
        raise NotImplementedError


class ChaliceApi(Api):
    name = "chalice"

    def __init__(self, client: Client) -> None:
        self.client = client

    def _send(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> Reply:
        response = self.client.http.request(method, path, headers=headers, body=body or b"")
        return Reply(response.status_code, response.body, dict(response.headers))


class HttpApi(Api):
    name = "http"

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def _send(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> Reply:
        request = urllib.request.Request(
            self.base_url + path, data=body, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return Reply(response.status, response.read(), dict(response.headers))
        except urllib.error.HTTPError as exc:
            return Reply(exc.code, exc.read(), dict(exc.headers))


@pytest.fixture(scope="session")
def chalice_api(local_stack: Any) -> Iterator[ChaliceApi]:
    with Client(load_app(), stage_name="prod", project_dir=str(api_dir())) as client:
        yield ChaliceApi(client)


@pytest.fixture(scope="session")
def http_api(local_stack: Any) -> Iterator[HttpApi]:
    with serve_api(local_stack) as base_url:
        yield HttpApi(base_url)


@pytest.fixture(scope="module", params=["chalice", "http"])
def api(request: pytest.FixtureRequest) -> Api:
    """Both transports: a test using it runs once through each."""
    fixture: Api = request.getfixturevalue(f"{request.param}_api")
    return fixture


# ------------------------------------------------------------------ tenants and data


@dataclass
class Tenant:
    """A tenant with an admin key and two reviewer keys."""

    id: str
    admin: str
    reviewer: str
    second_reviewer: str


@functools.cache
def make_tenant(tenant_id: str) -> Tenant:
    """Create the tenant once per session (module fixtures re-run per transport)."""
    first: IssuedKey = onboarding_service().create_tenant(tenant_id)
    admin = api_keys_service().resolve(first.secret)
    reviewers = [
        api_keys_service().create_key(admin, Role.REVIEWER, f"reviewer {n}", f"reviewer {n}")
        for n in (1, 2)
    ]
    return Tenant(tenant_id, first.secret, reviewers[0].secret, reviewers[1].secret)


def photo(*parts: str) -> bytes:
    return FACES.joinpath(*parts).read_bytes()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Buckets:
    """Where an upload of a tenant is: uploads, library, quarantine or rejected."""

    def __init__(self, stack: Any, tenant: str) -> None:
        self.stack = stack
        self.tenant = tenant
        self.s3 = stack.client("s3")
        out = stack.outputs
        self.uploads = out["UploadsBucketName"]
        self.library = out["LibraryBucketName"]
        self.quarantine = out["QuarantineBucketName"]

    def upload(self, path: str, data: bytes, purpose: str = "web") -> None:
        """PUT into incoming/<tenant>/ (as the DAM does) and let the stack process it."""
        self.s3.put_object(
            Bucket=self.uploads,
            Key=f"incoming/{self.tenant}/{path}",
            Body=data,
            Metadata={"purpose": purpose},
        )
        self.stack.drain()

    def places(self, path: str) -> list[str]:
        found = []
        for name, bucket, key in (
            ("uploads", self.uploads, f"incoming/{self.tenant}/{path}"),
            ("library", self.library, f"{self.tenant}/{path}"),
            ("quarantine", self.quarantine, f"{self.tenant}/{path}"),
            ("rejected", self.quarantine, f"rejected/{self.tenant}/{path}"),
        ):
            try:
                self.s3.head_object(Bucket=bucket, Key=key)
            except self.s3.exceptions.ClientError:
                continue
            found.append(name)
        return found


def asset_id_of(api: Api, key: str, path: str) -> str:
    """The id of the asset recorded for ``path`` (any status)."""
    reply = api.call("GET", "/assets?status=all&limit=100", key=key)
    assert reply.status == 200, reply.body
    ids = [a["asset_id"] for a in reply.json["items"] if a["path"] == path]
    assert len(ids) == 1, (path, reply.json)
    return str(ids[0])


def assert_error(reply: Reply, status: int, code: str | None = None, field: str | None = None):  # type: ignore[no-untyped-def]
    """``reply`` is the API's error shape with this status (and code / field)."""
    assert reply.status == status, (reply.status, reply.body)
    body = reply.json
    assert set(body) == ERROR_KEYS, body
    assert isinstance(body["message"], str) and body["message"]
    if code is not None:
        assert body["error"] == code, body
    if field is not None:
        assert body["field"] == field, body
    return body
