"""Webhook dialects, pure: how each marketing tool signs, frames and retries.

A source speaks one dialect. The dialect owns verification (which secret,
which headers, which bytes are signed), unpacking (one request can carry many
events; each becomes one delivery, applied once by the tool's own event id),
the content type, and any handshake (Mailchimp checks a URL with a GET).

- ``standard``: Standard Webhooks (``webhook-id``, ``webhook-timestamp``,
  ``webhook-signature``), verified by the library in the adapter.
- ``hubspot``: a JSON array of up to 100 events signed with the app's client
  secret: ``X-HubSpot-Signature-v3`` (base64 HMAC-SHA256 of method + URI +
  body + ``X-HubSpot-Request-Timestamp``, at most 5 minutes old), or
  ``X-HubSpot-Signature`` with ``X-HubSpot-Signature-Version`` ``v1``
  (hex SHA-256 of secret + body) or ``v2`` (hex SHA-256 of secret + method +
  URI + body).
- ``mailchimp``: form-encoded, unsigned: a secret token in the URL, compared
  in constant time.
- ``typeform``: ``Typeform-Signature: sha256=<base64 HMAC-SHA256(secret, body)>``.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from quitclaim.domain.errors import Unauthorized, ValidationFailed
from quitclaim.domain.webhooks import WebhookSource

HUBSPOT_TOLERANCE = timedelta(minutes=5)
MAX_BATCH = 100
_FORM_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


class Dialect(enum.StrEnum):
    STANDARD = "standard"
    HUBSPOT = "hubspot"
    MAILCHIMP = "mailchimp"
    TYPEFORM = "typeform"

    @property
    def tool_owns_secret(self) -> bool:
        """The tool issues the secret (HubSpot's client secret, Typeform's secret)."""
        return self in (Dialect.HUBSPOT, Dialect.TYPEFORM)

    @property
    def uses_url_token(self) -> bool:
        return self is Dialect.MAILCHIMP


def dialect_of(source: WebhookSource) -> Dialect:
    """The source's dialect; a record from a newer release is refused rather than guessed."""
    try:
        return Dialect(source.dialect)
    except ValueError:
        raise SignatureRejected("unknown source or invalid signature") from None


class SignatureRejected(Unauthorized):
    """Missing headers, a wrong or stale signature, or an unknown source: all look alike."""

    code = "invalid_signature"


class BodyUnreadable(ValidationFailed):
    """A verified body that is not the dialect's framing (not JSON, not a form)."""

    code = "invalid_body"


@dataclass(frozen=True, slots=True)
class Unit:
    """One event of a request: its id (the tool's own), payload, and what identifies it."""

    delivery_id: str
    payload: Any
    digest: str  # the same event redelivered has the same digest
    stored: str  # what the delivery record keeps for the worker (``reread`` turns it back)


# ---------------------------------------------------------------- signatures


def hubspot_v1(secret: str, body: bytes) -> str:
    return hashlib.sha256(secret.encode() + body).hexdigest()


def hubspot_v2(secret: str, method: str, uri: str, body: bytes) -> str:
    return hashlib.sha256(secret.encode() + method.encode() + uri.encode() + body).hexdigest()


def hubspot_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    message = method.encode() + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def typeform_signature(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return str(value).strip()
    return ""


def verify_hubspot(
    secrets_: Iterable[str],
    method: str,
    uri: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
) -> bool:
    """Whether any of ``secrets_`` signed this request (v3 when sent, else v1/v2)."""
    keys = list(secrets_)
    v3 = header(headers, "x-hubspot-signature-v3")
    if v3:
        stamp = header(headers, "x-hubspot-request-timestamp")
        if not stamp.isascii() or not stamp.isdigit():
            return False
        age = abs(now.timestamp() * 1000 - int(stamp))
        if age > HUBSPOT_TOLERANCE.total_seconds() * 1000:
            return False
        return any(_same(hubspot_v3(k, method, uri, body, stamp), v3) for k in keys)
    signature = header(headers, "x-hubspot-signature").lower()
    version = header(headers, "x-hubspot-signature-version").lower() or "v1"
    if not signature:
        return False
    if version == "v1":
        return any(_same(hubspot_v1(k, body), signature) for k in keys)
    if version == "v2":
        return any(_same(hubspot_v2(k, method, uri, body), signature) for k in keys)
    return False


def verify_typeform(secrets_: Iterable[str], headers: Mapping[str, str], body: bytes) -> bool:
    sent = header(headers, "typeform-signature")
    return bool(sent) and any(_same(typeform_signature(k, body), sent) for k in secrets_)


def verify_token(secrets_: Iterable[str], token: str | None) -> bool:
    """A Mailchimp URL token against the current (and overlapping previous) one."""
    if not token:
        return False
    # Every candidate is compared (no early exit on the first match).
    return any([_same(k, token) for k in secrets_])


def new_url_token() -> str:
    return secrets.token_urlsafe(32)


# ---------------------------------------------------------------- unpacking


def unpack(dialect: Dialect, body: bytes) -> list[Unit]:
    """A verified request's events, each with the tool's own id (not ``standard``)."""
    if dialect is Dialect.HUBSPOT:
        return _hubspot(body)
    if dialect is Dialect.MAILCHIMP:
        return [_mailchimp(body)]
    if dialect is Dialect.TYPEFORM:
        return [_typeform(body)]
    raise ValueError(f"{dialect} is not unpacked here")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise BodyUnreadable("body is not valid JSON", field="body", code="invalid_json") from None


def _canonical(value: Any) -> str:
    return hashlib.sha256(
        json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def _hubspot(body: bytes) -> list[Unit]:
    events = _json(body)
    if not isinstance(events, list) or not events:
        raise BodyUnreadable("a HubSpot delivery is a non-empty JSON array", field="body")
    if len(events) > MAX_BATCH:
        raise BodyUnreadable(f"at most {MAX_BATCH} events per request", field="body")
    units: list[Unit] = []
    for index, event in enumerate(events):
        event_id = event.get("eventId") if isinstance(event, dict) else None
        if isinstance(event_id, bool) or not isinstance(event_id, (int, str)) or not str(event_id):
            raise BodyUnreadable(f"[{index}].eventId is required", field=f"[{index}].eventId")
        # A retry carries a higher attemptNumber: the same event all the same.
        same = {k: v for k, v in event.items() if k != "attemptNumber"}
        stored = json.dumps(event, separators=(",", ":"))
        units.append(Unit(f"hs-{_id_part(str(event_id))}", event, _canonical(same), stored))
    return units


def _mailchimp(body: bytes) -> Unit:
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise BodyUnreadable("body is not a form (x-www-form-urlencoded)", field="body") from None
    payload = form_to_tree(pairs)
    if not isinstance(payload.get("type"), str):
        raise BodyUnreadable("a Mailchimp delivery names its type", field="type")
    # Mailchimp sends no event id: the event itself (type, time, data) is its identity.
    digest = _canonical(payload)
    return Unit(f"mc-{digest[:32]}", payload, digest, json.dumps(payload))


def form_to_tree(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``data[merges][EMAIL]=x`` → ``{"data": {"merges": {"EMAIL": "x"}}}``."""
    tree: dict[str, Any] = {}
    for key, value in pairs:
        match = _FORM_KEY.fullmatch(key)
        if match is None:
            continue
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = tree
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return tree


def _typeform(body: bytes) -> Unit:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyUnreadable("body is not UTF-8 JSON", field="body", code="invalid_json") from None
    payload = _json(body)
    if not isinstance(payload, dict) or not isinstance(payload.get("form_response"), dict):
        raise BodyUnreadable("a Typeform delivery holds form_response", field="form_response")
    response = payload["form_response"]
    event_id = payload.get("event_id") or response.get("token")
    if not isinstance(event_id, str) or not event_id:
        raise BodyUnreadable("event_id is required", field="event_id")
    # Answers keyed by the field's ref, so a mapping can name them.
    by_ref: dict[str, Any] = {}
    for answer in response.get("answers") or ():
        if isinstance(answer, dict) and isinstance(answer.get("field"), dict):
            ref = answer["field"].get("ref")
            if isinstance(ref, str) and ref:
                by_ref[ref] = answer_value(answer)
    unpacked = {**payload, "form_response": {**response, "answers_by_ref": by_ref}}
    # The response as sent is kept: it becomes the consent's evidence (stored, hashed).
    return Unit(f"tf-{_id_part(event_id)}", unpacked, _canonical(payload), text)


def reread(dialect: Dialect, stored: str) -> Any:
    """The payload a mapping reads, from what the delivery record kept."""
    if dialect is Dialect.TYPEFORM:
        return _typeform(stored.encode("utf-8")).payload
    return json.loads(stored)


def answer_value(answer: Mapping[str, Any]) -> Any:
    """A Typeform answer's value by its ``type`` (choices: the labels, a list)."""
    kind = answer.get("type")
    if kind == "choices":
        return list((answer.get("choices") or {}).get("labels") or [])
    if kind == "choice":
        return (answer.get("choice") or {}).get("label")
    if isinstance(kind, str) and kind in answer:
        return answer[kind]
    return None


def _id_part(value: str) -> str:
    """The tool's id as a path-safe delivery id (hashed when it is not)."""
    if re.fullmatch(r"[A-Za-z0-9_-]{1,100}", value):
        return value
    return hashlib.sha256(value.encode()).hexdigest()[:32]
