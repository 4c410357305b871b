"""The field types the API's request models share (``quitclaim.api.schemas``).

Datetimes accept ISO 8601 date-times or plain dates, taken as UTC when they
carry no offset; base64 fields are checked to decode, within a bound; an
``Unsent`` field may be left out but not sent as null.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

# API Gateway refuses payloads over 10 MB anyway; this keeps decoding bounded.
MAX_DECODED_BYTES = 8 * 1024 * 1024


def _utc(value: Any) -> Any:
    # A plain date means the start of that day in UTC ("valid from 2026-01-01").
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        return datetime.fromisoformat(value.strip()).replace(tzinfo=UTC)
    return value


def _to_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDateTime = Annotated[datetime, BeforeValidator(_utc), AfterValidator(_to_utc)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
]
Justification = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=2000),
    Field(description="Why: recorded in the audit trail (at least 3 characters)."),
]


def decode_base64(value: str) -> bytes:
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be standard base64") from None
    if not data:
        raise ValueError("must not be empty")
    if len(data) > MAX_DECODED_BYTES:
        raise ValueError(f"must decode to at most {MAX_DECODED_BYTES} bytes")
    return data


def _check_base64(value: str) -> str:
    decode_base64(value)
    return value


# Validated per item, so an error's location names it ("photos.1").
Base64Bytes = Annotated[
    str,
    AfterValidator(_check_base64),
    Field(json_schema_extra={"contentEncoding": "base64"}),
]


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("must not be null")
    return value


T = TypeVar("T")
# A field that may be left out but not sent as null: None means "not sent". Its
# runtime type is T alone (no union, so error locations stay plain field names
# and the schema shows no null); type checkers see the None default.
if TYPE_CHECKING:
    Unsent = Annotated[T | None, BeforeValidator(_not_null)]
else:
    Unsent = Annotated[T, BeforeValidator(_not_null)]
