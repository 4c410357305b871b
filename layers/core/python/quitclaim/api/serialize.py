"""The one JSON shaping helper of the API: dataclasses and values to JSON types.

Datetimes become ISO 8601 in UTC with ``Z``, dates ISO, enums their value,
tuples and lists lists, sets sorted lists. Bytes are refused outright: no
API response may carry raw bytes (an image, a template); a view that means
to return a document encodes it itself.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from quitclaim.domain.models import TenantPolicy

# Field names that must never leave the service, whatever a record grows.
_NEVER = frozenset({"encoding", "encodings", "embedding", "embeddings", "template_bytes"})


def to_json(value: Any) -> Any:
    """``value`` as plain JSON types (see the module docstring)."""
    if value is None or isinstance(value, bool | int | float | str):
        # StrEnum members are str: give their value, not the member.
        return value.value if isinstance(value, enum.Enum) else value
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_json(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.name not in _NEVER
        }
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items() if str(k) not in _NEVER}
    if isinstance(value, set | frozenset):
        return sorted((to_json(v) for v in value), key=repr)
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        raise TypeError("refusing to serialise bytes into an API response")
    raise TypeError(f"cannot serialise {type(value).__name__}")


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` (naive datetimes are taken as UTC)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


def policy_json(policy: TenantPolicy) -> dict[str, Any]:
    """A tenant policy, with ``scan_modes`` as the object clients send back."""
    shaped: dict[str, Any] = to_json(policy)
    modes = getattr(policy, "scan_modes", None)
    if modes is not None:
        shaped["scan_modes"] = {str(k): to_json(v) for k, v in dict(modes).items()}
    return shaped
