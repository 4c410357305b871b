"""Binds the route table to a Chalice app: auth, parsing, errors, JSON, per route.

A view receives a ``Call`` (principal, validated body and query) and the
path parameters, calls the use-case it needs (``quitclaim.bootstrap``) and
returns the value to serialise (or a ``Reply`` for another status).
Everything around that is here, once:

1. authenticate (before anything else, so an anonymous caller learns nothing);
2. refuse path ids that cannot exist (404, same as an unknown id);
3. validate the query string and the body with the operation's models;
4. map any exception to the error body (``quitclaim.api.http_errors``);
5. serialise with ``quitclaim.api.serialize.to_json``; log one line with ids only.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chalice import Chalice, Response

from quitclaim.api import http_errors
from quitclaim.api.auth import authenticate
from quitclaim.api.openapi import BY_ID, OPERATIONS, Operation
from quitclaim.api.route_access import capability_of
from quitclaim.api.schemas import Body, Query, is_id
from quitclaim.api.serialize import to_json
from quitclaim.domain.errors import NotFound, Unauthorized, ValidationFailed
from quitclaim.domain.registry import Principal
from quitclaim.observability import acting_as, audit_block, logger

if TYPE_CHECKING:
    from chalice.app import Request

    from quitclaim.usecases.request_gate import RequestGate

# Responses hold personal data: no shared caches, no content sniffing.
BASE_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
JSON_HEADERS = {**BASE_HEADERS, "Content-Type": "application/json"}


@dataclass(frozen=True)
class Call:
    """What a view gets besides its path parameters."""

    principal: Principal  # public routes get no Call at all
    body: Any = None  # the operation's validated body model (None: raw or none)
    query: Any = None  # the operation's validated query model
    raw: bytes | None = None  # a raw (non-JSON) body, e.g. one photo
    content_type: str = "application/json"


@dataclass(frozen=True)
class Signed:
    """What a signature-authenticated view (an inbound webhook) gets."""

    headers: dict[str, str]
    body: bytes
    method: str = "POST"
    query: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """A view's answer when the status differs from the operation's default."""

    status: int
    payload: Any = None


@dataclass(frozen=True)
class Content:
    """A view's answer that is not JSON: a page or a file of the dashboard (text only)."""

    body: str
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Posted:
    """What a public page's view gets besides its query: its raw request (a form post)."""

    body: bytes
    content_type: str
    source_ip: str
    accept_language: str = ""


View = Callable[..., Any]
PublicView = Callable[[], Any]


class Router:
    """Registers views for ``OPERATIONS`` on ``app`` (``@router("getSubject")``)."""

    def __init__(self, app: Chalice, gate: Callable[[], RequestGate]) -> None:
        self.app = app
        # Looked up per request: the local stack swaps the composition root's cache.
        self._gate = gate
        self._bound: set[str] = set()

    def __call__(self, operation_id: str) -> Callable[[View], View]:
        op = BY_ID[operation_id]  # KeyError: a view for an undeclared route

        def register(view: View) -> View:
            if operation_id in self._bound:
                raise ValueError(f"{operation_id} is bound twice")
            self._bound.add(operation_id)
            self.app.route(
                op.path,
                methods=[op.method],
                name=operation_id,
                content_types=op.content_types,
            )(self._handler(op, view))
            return view

        return register

    def bind(self, views: Mapping[str, View]) -> None:
        """Register a module's table of views (operation id -> view) at once."""
        for operation_id, view in views.items():
            self(operation_id)(view)

    def check_complete(self) -> None:
        """Fail at import when a declared operation has no view."""
        missing = [op.operation_id for op in OPERATIONS if op.operation_id not in self._bound]
        if missing:
            raise RuntimeError(f"operations without a view: {missing}")

    # ------------------------------------------------------------------ per request

    def _handler(self, op: Operation, view: View) -> Callable[..., Response]:
        def handle(**path: str) -> Response:
            started = time.perf_counter()
            seen: list[Principal] = []  # the caller, once authenticated (for the log line)
            try:
                request = self.app.current_request
                if request is None:  # Chalice sets it before any view runs
                    raise RuntimeError("no current request")
                # One audit block per request, chained before the reply says
                # it worked: a chain failure answers 503 (the caller retries).
                request_id = request.context.get("requestId") or uuid.uuid4().hex
                with audit_block(f"api/{request_id}"):
                    reply = self._dispatch(op, view, request, path, seen)
                response = _json_response(reply.status, reply.payload)
            except Exception as exc:  # one mapping for every failure
                response = _error_response(op, exc)
            _log_request(op, response, seen[0] if seen else None, started)
            return response

        handle.__name__ = op.operation_id
        return handle

    def _dispatch(
        self,
        op: Operation,
        view: View,
        request: Request,
        path: dict[str, str],
        seen: list[Principal],
    ) -> Reply:
        if op.signed:
            # The view verifies the signature before it reads the body.
            if not all(is_id(value) for value in path.values()):
                raise Unauthorized("unknown source or invalid signature")
            return _as_reply(op, view(_signed(op, request), **path))
        if op.role is None:
            # Public routes (links in e-mails, the dashboard's files) get their
            # query and path, never a principal; they check their own path.
            args: list[Any] = [_query(op.query, request)] if op.query else []
            if op.raw_types:  # a page that takes a form post reads its own body
                args.append(_posted(request))
            return _as_reply(op, view(*args, **path))
        principal = self._admitted(op, request)
        seen.append(principal)
        if not all(is_id(value) for value in path.values()):
            raise NotFound("not found")
        call = _call(op, request, principal)
        # Every audit event of this request names the key or the person.
        with acting_as(principal.key_id, principal.email_hash):
            return _as_reply(op, view(call, **path))

    def _admitted(self, op: Operation, request: Request) -> Principal:
        """The caller, holding the operation's capability, within its rate, metered."""
        gate = self._gate()
        principal = authenticate(
            request.headers, gate.resolve_key, capability_of(op), gate.resolve_token
        )
        gate.admit(principal)
        # Billed once per authenticated request: API Gateway does not retry.
        gate.count_api_call(principal)
        return principal


def _error_response(op: Operation, exc: Exception) -> Response:
    status, payload = http_errors.for_exception(exc)
    if status >= 500:
        logger.exception("api error", extra={"operation": op.operation_id})
    response = _json_response(status, payload)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="quitclaim"'
    retry_after = http_errors.retry_after(exc)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _log_request(
    op: Operation, response: Response, principal: Principal | None, started: float
) -> None:
    # Ids and timings only: never names, bodies or keys.
    logger.info(
        "api request",
        extra={
            "operation": op.operation_id,
            "status": response.status_code,
            "tenant": principal.tenant if principal else None,
            "key_id": principal.key_id if principal else None,
            "ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )


def _signed(op: Operation, request: Request) -> Signed:
    raw = request.raw_body
    body = (raw.encode() if isinstance(raw, str) else raw) or b""
    return Signed(
        dict(request.headers),
        body,
        op.method,
        {str(k): str(v) for k, v in (request.query_params or {}).items()},
    )


def _call(op: Operation, request: Request, principal: Principal) -> Call:
    content_type = (request.headers.get("content-type") or "application/json").split(";")[0]
    content_type = content_type.strip().lower()
    query = _query(op.query, request)
    if op.body is None:
        return Call(principal, query=query, content_type=content_type)
    raw = request.raw_body
    raw_body = (raw.encode() if isinstance(raw, str) else raw) or b""
    if content_type in op.raw_types:
        if not raw_body:
            raise ValidationFailed("the request body is empty", field="body")
        return Call(principal, query=query, raw=raw_body, content_type=content_type)
    return Call(principal, body=_body(op.body, raw_body), query=query)


def _posted(request: Request) -> Posted:
    raw = request.raw_body if request.method != "GET" else b""
    headers = request.headers
    identity = (request.context or {}).get("identity") or {}
    return Posted(
        (raw.encode() if isinstance(raw, str) else raw) or b"",
        headers.get("content-type") or "",  # whole: a multipart boundary is in it
        str(identity.get("sourceIp") or ""),
        headers.get("accept-language") or "",
    )


def _body(model: type[Body], raw: bytes) -> Body:
    if not raw.strip():
        data: Any = {}  # no body: valid only where nothing is required
    else:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise http_errors.InvalidJson() from None
    if not isinstance(data, dict):
        raise http_errors.InvalidJson()
    return model.model_validate(data)


def _query(model: type[Query] | None, request: Request) -> Query | None:
    params = request.query_params
    if model is None:
        return None
    values: dict[str, str] = {}
    if params is not None:
        for name in params:
            given = params.getlist(name)
            if len(given) > 1:
                raise ValidationFailed(f"{name} is given more than once", field=name)
            values[name] = given[0]
    return model.model_validate(values)


def _as_reply(op: Operation, result: Any) -> Reply:
    return result if isinstance(result, Reply) else Reply(op.status, result)


def _json_response(status: int, payload: Any) -> Response:
    if isinstance(payload, Content):
        headers: dict[str, str | list[str]] = {
            **BASE_HEADERS,
            "Cache-Control": "no-cache",
            **payload.headers,
        }
        headers["Content-Type"] = payload.content_type
        return Response(body=payload.body, status_code=status, headers=headers)
    if status == 204:
        return Response(body="", status_code=204, headers=dict(BASE_HEADERS))
    return Response(body=_dumps(to_json(payload)), status_code=status, headers=dict(JSON_HEADERS))


def _dumps(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False)


def reshape_chalice_errors(event: Any, get_response: Callable[[Any], Response]) -> Response:
    """HTTP middleware: Chalice's own 4xx/5xx (405, 415...) in the API's error shape."""
    response = get_response(event)
    shaped = http_errors.reshape_chalice_error(response.status_code, response.body)
    if shaped is None:
        return response
    headers = {**response.headers, **JSON_HEADERS}
    return Response(body=_dumps(shaped), status_code=response.status_code, headers=headers)
