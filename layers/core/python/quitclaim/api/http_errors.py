"""The one place that turns errors into HTTP responses.

Every error body is ``{"error": code, "message": text, "field": name-or-null}``;
a 429 adds ``retry_after`` (seconds, as the ``Retry-After`` header says).
``QuitclaimError`` subclasses carry their own ``http_status`` and ``code``;
pydantic validation errors become 400 naming the field (its location joined
with "."); anything unexpected becomes a 500 that says nothing about why
(the details go to the log, never to the caller).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from quitclaim.domain.errors import QuitclaimError, ValidationFailed
from quitclaim.domain.tenancy import RateLimited

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "message", "field"],
    "properties": {
        "error": {"type": "string", "description": "Stable machine-readable code."},
        "message": {"type": "string"},
        "field": {
            "type": ["string", "null"],
            "description": 'The request field at fault, dotted ("photos.0"), or null.',
        },
        "retry_after": {
            "type": "integer",
            "minimum": 1,
            "description": "429 only: seconds to wait (also the Retry-After header).",
        },
    },
    "additionalProperties": False,
}

# 5xx bodies never carry an exception's text: it may name tables, keys, hosts.
_SERVER_MESSAGES = {503: "a dependency is unavailable; retry later"}
GENERIC_MESSAGE = "internal error"


class InvalidJson(ValidationFailed):
    """The request body is not JSON (or not a JSON object)."""

    code = "invalid_json"

    def __init__(self, message: str = "request body must be a JSON object") -> None:
        super().__init__(message, field="body")


def body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": code, "message": message, "field": field}


def for_exception(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """HTTP status and error body for any exception a view let through."""
    if isinstance(exc, ValidationError):
        return 400, _validation_body(exc)
    if isinstance(exc, QuitclaimError):
        status = int(exc.http_status)
        if status >= 500:
            return status, body(exc.code, _SERVER_MESSAGES.get(status, GENERIC_MESSAGE))
        shaped = body(exc.code, exc.message, _dotted(getattr(exc, "field", None)))
        if isinstance(exc, RateLimited):
            shaped["retry_after"] = exc.retry_after
        return status, shaped
    return 500, body("internal_error", GENERIC_MESSAGE)


def retry_after(exc: BaseException) -> int | None:
    """Seconds for the ``Retry-After`` header (429 only), else None."""
    return exc.retry_after if isinstance(exc, RateLimited) else None


def _dotted(field: str | None) -> str | None:
    """One spelling for item fields: ``photos[0]`` -> ``photos.0`` (as pydantic's loc)."""
    return None if field is None else re.sub(r"\[(\d+)\]", r".\1", field)


def _validation_body(exc: ValidationError) -> dict[str, Any]:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    field = ".".join(str(part) for part in first["loc"]) or "body"
    # pydantic prefixes our own ValueError messages; the field name says enough.
    text = re.sub(r"^(Value error|Assertion failed), ", "", str(first["msg"]))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return body("validation_failed", f"{field}: {text}{more}", field)


def reshape_chalice_error(status: int, payload: Any) -> dict[str, Any] | None:
    """Chalice's own errors (405, 415, ...) in our shape; ``None`` if not one of them."""
    if status < 400 or not isinstance(payload, dict) or set(payload) != {"Code", "Message"}:
        return None
    # "UnsupportedMediaType" -> "unsupported_media_type"
    code = re.sub(r"(?<!^)(?=[A-Z])", "_", str(payload["Code"])).lower()
    code = code.removesuffix("_error") or "error"
    message = GENERIC_MESSAGE if status >= 500 else str(payload["Message"])
    return body(code, message)
