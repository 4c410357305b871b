"""People's sign-in on the local stack: the user pool from the template, and a hosted-UI stand-in.

moto's ``cognito-idp`` issues RS256 JWTs (``admin_initiate_auth``) and serves
each pool's JWKS and OpenID configuration, but (moto 5.2) its CloudFormation
skips ``AWS::Cognito::*`` and it has no hosted UI, no ``/oauth2/authorize``
and no ``/oauth2/token``. Two gaps, filled here (numbered as in ``gaps``; docs/sign-in.md):

20. **AWS::Cognito::UserPool / UserPoolClient / UserPoolDomain /
    UserPoolGroup** are skipped. ``create_user_pools`` creates them through
    the Cognito API from the template's properties (pool name, username and
    password policy, MFA setting, the ``tenant`` custom attribute; the app
    client's flows, callback URLs and read/write attributes; the groups), so
    ``!Ref`` of each resolves (the functions' ``QC_USER_POOL_*``).
21. **No hosted UI.** ``SignInStandIn`` serves ``/oauth2/authorize`` (a login
    form), ``/login`` (checks the password with ``admin_initiate_auth``, then
    redirects with a one-time code), ``/oauth2/token`` (the code, the
    ``client_id``, the ``redirect_uri`` and the PKCE ``code_verifier`` must
    all match; answers moto's ID and access tokens, with CORS as Cognito's
    token endpoint does) and ``/logout``. The API verifies those tokens with
    the same code as in AWS (``quitclaim.adapters.user_tokens``): the issuer
    is the pool's, the keys come from moto's JWKS.

Not emulated: MFA (moto does not enforce the pool's ``MfaConfiguration: ON``;
the stand-in asks for a password only), federation, refresh tokens. A
redirect URI on loopback (``http://127.0.0.1:<port>/``) is accepted besides
the client's registered ones: the local API's port is chosen at run time.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devstack.deploy import Deployment
    from devstack.gaps import GapReport

CODE_TTL_S = 300  # Cognito's authorization codes live five minutes
ROLE_GROUPS = ("admin", "reviewer", "dpo", "auditor")

_POOL_PROPERTIES = (
    "UsernameAttributes",
    "AutoVerifiedAttributes",
    "AdminCreateUserConfig",
    "MfaConfiguration",
    "Policies",
    "AccountRecoverySetting",
)
_CLIENT_PROPERTIES = (
    "ClientName",
    "GenerateSecret",
    "AllowedOAuthFlowsUserPoolClient",
    "AllowedOAuthFlows",
    "AllowedOAuthScopes",
    "SupportedIdentityProviders",
    "CallbackURLs",
    "LogoutURLs",
    "ReadAttributes",
    "WriteAttributes",
    "PreventUserExistenceErrors",
    "EnableTokenRevocation",
)


def _skipped(deployment: Deployment, kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (logical_id, resource.get("Properties") or {})
        for logical_id, resource in deployment.translated["Resources"].items()
        if resource.get("Type") == kind and logical_id not in deployment.resource_types
    ]


def share_pool_signing_key() -> bool:
    """Import moto's one pool signing key once per process, not once per pool.

    moto signs every pool with the same static key and imports it from its JWK
    file for each new pool (0.3-0.4 s of RSA key checks on this machine), which
    every local stack pays at start. Same key, same tokens: only the time goes.
    True the first time (moto runs in this process, as for ``gaps``).
    """
    from moto.cognitoidp import models

    if getattr(models.jwk, "_quitclaim_shared", False):
        return False
    real = models.jwk
    cache: dict[str, Any] = {}

    class SharedRSAKey:
        @staticmethod
        def import_key(data: Any, *args: Any, **kwargs: Any) -> Any:
            marker = json.dumps(data, sort_keys=True) if not args and not kwargs else None
            if marker is None:
                return real.RSAKey.import_key(data, *args, **kwargs)
            if marker not in cache:
                cache[marker] = real.RSAKey.import_key(data)
            return cache[marker]

    class SharedJwk:
        _quitclaim_shared = True
        RSAKey = SharedRSAKey

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    models.jwk = SharedJwk()  # type: ignore[assignment]
    return True


def create_user_pools(deployment: Deployment, report: GapReport) -> list[str]:
    """Create the template's user pools, app clients, domains and groups (gap 21)."""
    share_pool_signing_key()
    cognito = deployment.client("cognito-idp")
    done = []
    for logical_id, properties in _skipped(deployment, "AWS::Cognito::UserPool"):
        spec = deployment.resolve(properties)
        create = {k: spec[k] for k in _POOL_PROPERTIES if k in spec}
        if spec.get("Schema"):
            create["Schema"] = spec["Schema"]
        name = spec.get("UserPoolName") or f"{deployment.stack_name}-{logical_id}"
        pool_id = cognito.create_user_pool(PoolName=name, **create)["UserPool"]["Id"]
        deployment.resources[logical_id] = pool_id
        report.created.append(("user-pool", pool_id))
        done.append(f"user pool {logical_id} (MFA {spec.get('MfaConfiguration', 'OFF')})")
    for logical_id, properties in _skipped(deployment, "AWS::Cognito::UserPoolClient"):
        spec = deployment.resolve(properties)
        create = {k: spec[k] for k in _CLIENT_PROPERTIES if k in spec}
        create.setdefault("ClientName", logical_id)
        client = cognito.create_user_pool_client(UserPoolId=spec["UserPoolId"], **create)
        deployment.resources[logical_id] = client["UserPoolClient"]["ClientId"]
        done.append(f"app client {logical_id}")
    for logical_id, properties in _skipped(deployment, "AWS::Cognito::UserPoolDomain"):
        spec = deployment.resolve(properties)
        cognito.create_user_pool_domain(Domain=spec["Domain"], UserPoolId=spec["UserPoolId"])
        deployment.resources[logical_id] = spec["Domain"]  # Ref of a domain is its prefix
        done.append(f"user pool domain {logical_id}")
    for logical_id, properties in _skipped(deployment, "AWS::Cognito::UserPoolGroup"):
        spec = deployment.resolve(properties)
        create = {k: spec[k] for k in ("Description", "Precedence") if k in spec}
        cognito.create_group(GroupName=spec["GroupName"], UserPoolId=spec["UserPoolId"], **create)
        deployment.resources[logical_id] = spec["GroupName"]
        done.append(f"group {spec['GroupName']}")
    return done


def release_user_pool(deployment: Deployment, pool_id: str) -> None:
    deployment.client("cognito-idp").delete_user_pool(UserPoolId=pool_id)


def create_user(
    cognito: Any, pool_id: str, *, email: str, tenant: str, group: str, password: str
) -> str:
    """A confirmed account of ``tenant`` in ``group`` (what an operator does); its sub."""
    if group not in ROLE_GROUPS:
        raise ValueError(f"group must be one of {', '.join(ROLE_GROUPS)}")
    cognito.admin_create_user(
        UserPoolId=pool_id,
        Username=email,
        UserAttributes=[
            {"Name": "email", "Value": email},
            {"Name": "email_verified", "Value": "true"},
            {"Name": "custom:tenant", "Value": tenant},
        ],
        MessageAction="SUPPRESS",
    )
    cognito.admin_set_user_password(
        UserPoolId=pool_id, Username=email, Password=password, Permanent=True
    )
    cognito.admin_add_user_to_group(UserPoolId=pool_id, Username=email, GroupName=group)
    user = cognito.admin_get_user(UserPoolId=pool_id, Username=email)
    return str(next(a["Value"] for a in user["UserAttributes"] if a["Name"] == "sub"))


def sign_in_tokens(
    cognito: Any, pool_id: str, client_id: str, email: str, password: str
) -> dict[str, str]:
    """The pool's ID and access tokens for a password (what the hosted UI hands out)."""
    result = cognito.admin_initiate_auth(
        UserPoolId=pool_id,
        ClientId=client_id,
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": email, "PASSWORD": password},
    )
    auth = result.get("AuthenticationResult")
    if not auth:  # a challenge (new password, MFA) the stand-in does not answer
        raise PermissionError(result.get("ChallengeName") or "no tokens")
    return {
        "id_token": auth["IdToken"],
        "access_token": auth["AccessToken"],
        "expires_in": str(auth.get("ExpiresIn", 3600)),
    }


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of ``verifier`` (RFC 7636)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class _Pending:
    client_id: str
    redirect_uri: str
    challenge: str
    tokens: dict[str, str]
    expires: float


class SignInStandIn:
    """The hosted UI's authorize, login, token and logout endpoints on 127.0.0.1 (gap 22)."""

    def __init__(self, cognito: Any, pool_id: str, client_id: str) -> None:
        self._cognito = cognito
        self.pool_id = pool_id
        self.client_id = client_id
        client = cognito.describe_user_pool_client(UserPoolId=pool_id, ClientId=client_id)
        self._callbacks = set(client["UserPoolClient"].get("CallbackURLs") or [])
        self._codes: dict[str, _Pending] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sign-in stand-in is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self, host: str = "127.0.0.1", port: int = 0) -> SignInStandIn:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stand_in._get(self)

            def do_POST(self) -> None:
                stand_in._post(self)

            def do_OPTIONS(self) -> None:
                _send(self, 204, b"", "text/plain")

            def log_message(self, format: str, *args: Any) -> None:
                return  # request lines hold codes

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="quitclaim-signin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # ------------------------------------------------------------ endpoints

    def _redirect_allowed(self, uri: str) -> bool:
        parsed = urllib.parse.urlsplit(uri)
        loopback = parsed.scheme == "http" and parsed.hostname in ("127.0.0.1", "localhost")
        return uri in self._callbacks or loopback

    def _get(self, request: BaseHTTPRequestHandler) -> None:
        parsed = urllib.parse.urlsplit(request.path)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        if parsed.path == "/oauth2/authorize":
            problem = self._authorize_problem(query)
            if problem:
                _send(request, 400, json.dumps({"error": problem}).encode(), "application/json")
                return
            _send(request, 200, _login_page(query, "").encode(), "text/html; charset=utf-8")
        elif parsed.path == "/logout":
            target = query.get("logout_uri") or ""
            if query.get("client_id") != self.client_id or not self._redirect_allowed(target):
                _send(request, 400, b'{"error":"invalid_request"}', "application/json")
                return
            _redirect(request, target)
        elif parsed.path == "/favicon.ico":
            _send(request, 204, b"", "image/x-icon")  # a browser asks; nothing to show
        else:
            _send(request, 404, b'{"error":"not_found"}', "application/json")

    def _authorize_problem(self, query: dict[str, str]) -> str:
        if query.get("client_id") != self.client_id:
            return "invalid_client"
        if query.get("response_type") != "code":
            return "unsupported_response_type"
        if not self._redirect_allowed(query.get("redirect_uri") or ""):
            return "redirect_mismatch"
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return "invalid_request"  # PKCE is required of a public client
        return ""

    def _post(self, request: BaseHTTPRequestHandler) -> None:
        length = min(int(request.headers.get("Content-Length") or 0), 65536)
        form = dict(urllib.parse.parse_qsl(request.rfile.read(length).decode("utf-8", "replace")))
        path = urllib.parse.urlsplit(request.path).path
        if path == "/login":
            self._login(request, form)
        elif path == "/oauth2/token":
            self._token(request, form)
        else:
            _send(request, 404, b'{"error":"not_found"}', "application/json")

    def _login(self, request: BaseHTTPRequestHandler, form: dict[str, str]) -> None:
        if self._authorize_problem(form):
            _send(request, 400, b'{"error":"invalid_request"}', "application/json")
            return
        try:
            tokens = sign_in_tokens(
                self._cognito,
                self.pool_id,
                self.client_id,
                form.get("username", ""),
                form.get("password", ""),
            )
        except Exception:  # wrong password, unknown user, a challenge: one answer
            page = _login_page(form, "Incorrect username or password.")
            _send(request, 200, page.encode(), "text/html; charset=utf-8")
            return
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Pending(
                self.client_id,
                form["redirect_uri"],
                form["code_challenge"],
                tokens,
                time.monotonic() + CODE_TTL_S,
            )
        params = {"code": code, **({"state": form["state"]} if form.get("state") else {})}
        sep = "&" if "?" in form["redirect_uri"] else "?"
        _redirect(request, f"{form['redirect_uri']}{sep}{urllib.parse.urlencode(params)}")

    def _token(self, request: BaseHTTPRequestHandler, form: dict[str, str]) -> None:
        with self._lock:
            pending = self._codes.pop(form.get("code", ""), None)  # one use only
        if (
            form.get("grant_type") != "authorization_code"
            or pending is None
            or pending.expires < time.monotonic()
            or form.get("client_id") != pending.client_id
            or form.get("redirect_uri") != pending.redirect_uri
            or s256(form.get("code_verifier", "")) != pending.challenge
        ):
            _send(request, 400, b'{"error":"invalid_grant"}', "application/json")
            return
        body = {
            "id_token": pending.tokens["id_token"],
            "access_token": pending.tokens["access_token"],
            "expires_in": int(pending.tokens["expires_in"]),
            "token_type": "Bearer",
        }
        _send(request, 200, json.dumps(body).encode(), "application/json")


def _send(request: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str) -> None:
    request.send_response(status)
    request.send_header("Content-Type", content_type)
    request.send_header("Content-Length", str(len(body)))
    request.send_header("Cache-Control", "no-store")
    # The token endpoint is called by the dashboard's page (another origin), as in AWS.
    request.send_header("Access-Control-Allow-Origin", "*")
    request.send_header("Access-Control-Allow-Headers", "Content-Type")
    request.end_headers()
    request.wfile.write(body)


def _redirect(request: BaseHTTPRequestHandler, location: str) -> None:
    request.send_response(302)
    request.send_header("Location", location)
    request.send_header("Content-Length", "0")
    request.end_headers()


_CARRIED = (
    "client_id",
    "response_type",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
    "scope",
)


def _login_page(query: dict[str, str], error: str) -> str:
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(query.get(name, ""))}">'
        for name in _CARRIED
    )
    message = f'<p role="alert">{html.escape(error)}</p>' if error else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<title>Sign in (local stand-in)</title></head><body>"
        "<h1>Sign in</h1><p>Local stand-in for the user pool's hosted sign-in.</p>"
        f'{message}<form method="post" action="/login">{hidden}'
        '<label>E-mail <input name="username" type="email" autocomplete="username" required>'
        '</label><label>Password <input name="password" type="password" '
        'autocomplete="current-password" required></label>'
        '<button type="submit">Sign in</button></form></body></html>'
    )
