"""People's sign-in tokens: JWTs of the stack's Cognito user pool, verified here only.

The one verifier the API uses, locally (moto's pool, the stand-in of
``devstack.signin``) and in AWS alike (docs/sign-in.md):

- RS256 only (``alg: none``, HS256 with the public key as secret, anything
  else: 401), signed by a key of the pool's JWKS, fetched once per container
  and fetched again when a token names an unknown ``kid`` (a key rotation),
  at most once per ``refetch_after_s`` so random kids cannot make every
  request a JWKS download;
- ``iss`` is the pool's issuer; ``token_use`` is ``id`` (``aud`` must be the
  app client) or ``access`` (``client_id`` must be the app client); ``exp``
  is in the future (wall clock: a token's lifetime is transport time, not the
  business clock a local stack may move);
- the tenant is the ``custom:tenant`` claim (only an administrator can write
  it: the app client's write attributes leave it out), which Cognito puts in
  ID tokens; the role is the most privileged of the user's groups
  (``cognito:groups``) that names a ``Role``; no such group: 403.

Every failure of the token itself is one ``Unauthorized`` (its reason goes to
the log as a code, never the token).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import jwt

from quitclaim.domain.errors import Forbidden, Unauthorized
from quitclaim.domain.models import is_tenant_id
from quitclaim.domain.registry import Principal, Role
from quitclaim.observability import logger

# Group names in order of privilege: a user in several groups gets the first.
ROLE_ORDER = ("admin", "reviewer", "dpo", "auditor")
TENANT_CLAIM = "custom:tenant"
# A Cognito ID token is 1-2 KB; this bounds the parsing work of a hostile caller.
MAX_TOKEN_LENGTH = 8192
LEEWAY_S = 5  # clock skew between the pool and this container

JwksFetch = Callable[[str], Mapping[str, Any]]


def issuer_of(region: str, user_pool_id: str) -> str:
    """The ``iss`` of a pool's tokens (the same string moto uses)."""
    return f"https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"


def jwks_url_of(issuer: str, endpoint_url: str | None = None) -> str:
    """Where the pool's keys are: under the issuer in AWS, under the emulator locally."""
    if endpoint_url:
        return f"{endpoint_url.rstrip('/')}/{issuer.rsplit('/', 1)[1]}/.well-known/jwks.json"
    return f"{issuer}/.well-known/jwks.json"


def looks_like_jwt(secret: str) -> bool:
    """Three dot-separated parts: API keys (``qc_<tenant>_<hex>``) never have a dot."""
    return secret.count(".") == 2


def email_hash(email: str) -> str:
    """SHA-256 of the trimmed, case-folded address: the audit trail's pseudonym of a person."""
    return hashlib.sha256(email.strip().casefold().encode()).hexdigest()


def role_of(groups: object) -> Role:
    """The most privileged known role among ``groups``; ``Forbidden`` when none."""
    names = {str(g) for g in groups} if isinstance(groups, list) else set()
    for name in ROLE_ORDER:
        if name in names:
            try:
                return Role(name)
            except ValueError:  # a role this version does not have yet
                continue
    raise Forbidden("the signed-in user is in no role group of this service")


def fetch_jwks(url: str) -> Mapping[str, Any]:
    """GET the JWKS document (a small JSON file; 5 s is generous)."""
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (an https/http URL of config)
        document: Mapping[str, Any] = json.loads(response.read(1_000_000))
        return document


class UserTokens:
    """Verifies a pool's tokens and turns them into a ``Principal``."""

    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        jwks_url: str,
        fetch: JwksFetch = fetch_jwks,
        now: Callable[[], float] = time.time,
        refetch_after_s: float = 60.0,
    ) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self._jwks_url = jwks_url
        self._fetch = fetch
        self._now = now
        self._refetch_after_s = refetch_after_s
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def principal(self, token: str) -> Principal:
        """The person a valid token stands for (``Unauthorized`` / ``Forbidden``)."""
        claims = self.claims(token)
        tenant = claims.get(TENANT_CLAIM)
        if not isinstance(tenant, str) or not is_tenant_id(tenant):
            raise _refused("no_tenant")
        role = role_of(claims.get("cognito:groups"))
        sub = str(claims["sub"])
        email = claims.get("email")
        return Principal(
            tenant,
            f"user:{sub}",
            role,
            label="signed in",
            person=sub,
            email_hash=email_hash(email) if isinstance(email, str) and email else "",
        )

    def claims(self, token: str) -> dict[str, Any]:
        """The verified claims of ``token`` (``Unauthorized`` on any failure)."""
        if len(token) > MAX_TOKEN_LENGTH or not looks_like_jwt(token):
            raise _refused("malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _refused("malformed") from None
        if header.get("alg") != "RS256":
            raise _refused("algorithm")
        key = self._key(str(header.get("kid") or ""))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                issuer=self.issuer,
                leeway=LEEWAY_S,
                # aud is checked below (ID tokens only; access tokens carry client_id).
                options={
                    "require": ["exp", "iss", "sub", "token_use"],
                    "verify_aud": False,
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidIssuerError:
            raise _refused("issuer") from None
        except jwt.PyJWTError:
            raise _refused("signature") from None
        # exp (and only exp: iat says nothing more) against this verifier's clock.
        if not isinstance(claims["exp"], int | float) or claims["exp"] + LEEWAY_S <= self._now():
            raise _refused("expired")
        use = claims.get("token_use")
        audience = {"id": claims.get("aud"), "access": claims.get("client_id")}.get(str(use))
        if use not in ("id", "access"):
            raise _refused("token_use")
        if audience != self.client_id:
            raise _refused("audience")
        return claims

    def _key(self, kid: str) -> Any:
        with self._lock:
            if kid not in self._keys and self._may_fetch():
                self._keys = self._load()
                self._fetched_at = self._now()
            key = self._keys.get(kid)
        if key is None:
            raise _refused("unknown_key")
        return key

    def _may_fetch(self) -> bool:
        return self._fetched_at is None or self._now() - self._fetched_at >= self._refetch_after_s

    def _load(self) -> dict[str, Any]:
        try:
            document = self._fetch(self._jwks_url)
        except Exception:  # the pool unreachable: nobody signs in, keys still work
            logger.exception("user pool keys not fetched")
            return self._keys
        keys = {}
        for jwk in document.get("keys", ()):
            if jwk.get("kty") == "RSA" and jwk.get("alg", "RS256") == "RS256" and jwk.get("kid"):
                keys[str(jwk["kid"])] = jwt.PyJWK(jwk, algorithm="RS256").key
        return keys


def _refused(reason: str) -> Unauthorized:
    # The reason is a code for the log; the caller always reads the same message.
    logger.info("user token refused", extra={"reason": reason})
    return Unauthorized("a valid sign-in token or API key is required")
