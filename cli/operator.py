"""Operator actions (direct to the tables and buckets): run, audited, errors shown."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TypeVar

import click

T = TypeVar("T")


def run_operator(action: Callable[[], T]) -> T:
    """Run an operator action; a ``QuitclaimError`` becomes a message naming its field."""
    import quitclaim.bootstrap  # noqa: F401 - wires the audit sink (the tenants' chains)
    from quitclaim.domain.errors import QuitclaimError
    from quitclaim.observability import audit_block

    try:
        # A command that changes the registry audits like a handler invocation:
        # its events are chained (one block per command) before it says done.
        with audit_block(f"cli/{uuid.uuid4().hex}"):
            return action()
    except QuitclaimError as exc:
        field = getattr(exc, "field", None)
        where = f" (field: {field})" if field else ""
        raise click.ClickException(f"{exc.code}: {exc.message}{where}") from None
