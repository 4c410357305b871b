"""Lambda's event filtering (FilterCriteria patterns) for stream event source mappings.

The subset of EventBridge's pattern syntax Lambda accepts: exact values,
``exists``, ``prefix``, ``suffix``, ``anything-but`` and
``equals-ignore-case``; a pattern this does not know is refused when the
mapping is read, never matched loosely.
"""

from __future__ import annotations

import json
from typing import Any

_OPERATORS = frozenset({"exists", "prefix", "suffix", "anything-but", "equals-ignore-case"})


class FilterError(ValueError):
    """A FilterCriteria pattern the local runtime cannot evaluate faithfully."""


def compile_filter(pattern: str) -> dict[str, Any]:
    """Parse a FilterCriteria ``Pattern`` and refuse what ``filter_matches`` does not support.

    Supported: exact values (strings, numbers, booleans, null) in lists,
    nested objects, ``exists``, ``prefix``, ``suffix``, ``anything-but`` (a
    value or a list of values) and ``equals-ignore-case``. ``numeric``,
    ``wildcard``, ``cidr`` and ``$or`` raise instead of silently passing or
    dropping records.
    """
    try:
        parsed = json.loads(pattern)
    except ValueError as exc:
        raise FilterError(f"FilterCriteria pattern is not JSON: {pattern!r}") from exc
    if not isinstance(parsed, dict):
        raise FilterError(f"FilterCriteria pattern must be an object: {pattern!r}")
    _check_pattern(parsed, pattern)
    return parsed


def _check_pattern(node: dict[str, Any], source: str) -> None:
    for key, rule in node.items():
        if key.startswith("$"):
            raise FilterError(f"{key} in {source!r} is not supported locally")
        if isinstance(rule, dict):
            _check_pattern(rule, source)
        elif isinstance(rule, list):
            for matcher in rule:
                if isinstance(matcher, dict):
                    if len(matcher) != 1 or next(iter(matcher)) not in _OPERATORS:
                        raise FilterError(f"matcher {matcher!r} in {source!r} is not supported")
                elif isinstance(matcher, list):
                    raise FilterError(f"nested list {matcher!r} in {source!r}")
        else:
            raise FilterError(f"{key}: a pattern's values must be lists or objects ({source!r})")


def filter_matches(pattern: dict[str, Any], event: Any) -> bool:
    """Whether a Lambda event-filtering pattern matches a (Lambda-shaped) record.

    Every key of the pattern must match (AND); a list of matchers matches when
    any one does (OR); an array in the record matches when any element does.
    """
    if not isinstance(event, dict):
        return False
    for key, rule in pattern.items():
        present = key in event
        value = event.get(key)
        if isinstance(rule, dict):
            if not present or not filter_matches(rule, value):
                return False
        elif not _leaf_matches(rule, present, value):
            return False
    return True


def _leaf_matches(matchers: list[Any], present: bool, value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    for matcher in matchers:
        if isinstance(matcher, dict):
            ((operator, argument),) = matcher.items()
            if operator == "exists":
                if bool(argument) == present:
                    return True
                continue
            if not present:
                continue
            if operator == "prefix" and any(
                isinstance(v, str) and v.startswith(argument) for v in values
            ):
                return True
            if operator == "suffix" and any(
                isinstance(v, str) and v.endswith(argument) for v in values
            ):
                return True
            if operator == "equals-ignore-case" and any(
                isinstance(v, str) and v.casefold() == str(argument).casefold() for v in values
            ):
                return True
            if operator == "anything-but":
                excluded = argument if isinstance(argument, list) else [argument]
                if all(not any(_same(e, v) for e in excluded) for v in values):
                    return True
        elif present and any(_same(matcher, v) for v in values):
            return True
    return False


def _same(expected: Any, actual: Any) -> bool:
    """JSON equality: numbers by value, but ``true`` is not ``1``."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return float(expected) == float(actual)
    return bool(expected == actual)
