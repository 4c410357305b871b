"""What a tick of the local clock did: its firings, the items reaped, the drain's totals."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devstack.invocations import RunReport


@dataclass
class Firing:
    """One schedule invocation during a tick."""

    schedule: str  # group/name
    at: datetime
    function: str  # logical id
    kind: str  # "one-time" | "recurring"
    event: Any
    result: Any = None
    error: str | None = None
    attempts: int = 0
    deleted: bool = False  # ActionAfterCompletion DELETE applied
    coalesced: int = 0  # occurrences folded into this firing

    def to_json(self) -> dict[str, Any]:
        return {
            "schedule": self.schedule,
            "at": self.at.isoformat(),
            "function": self.function,
            "kind": self.kind,
            "event": self.event,
            "result": self.result,
            "error": self.error,
            "attempts": self.attempts,
            "deleted": self.deleted,
            "coalesced": self.coalesced,
        }


@dataclass
class Reaped:
    """An item the TTL reaper deleted."""

    table: str  # logical id
    keys: dict[str, Any]
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "keys": self.keys, "at": self.at.isoformat()}


@dataclass
class TickReport:
    """What ``tick`` did: firings and reaped items in order, and the drain totals."""

    started: datetime
    to: datetime
    firings: list[Firing] = field(default_factory=list)
    reaped: list[Reaped] = field(default_factory=list)
    drained: RunReport | None = None
    errors: list[str] = field(default_factory=list)  # schedules that could not fire at all
    elapsed_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        drained = self.drained
        return {
            "started": self.started.isoformat(),
            "to": self.to.isoformat(),
            "firings": [f.to_json() for f in self.firings],
            "reaped": [r.to_json() for r in self.reaped],
            "drained": {
                "invocations": drained.invocations,
                "messages": drained.messages,
                "stream_records": drained.stream_records,
                "filtered": drained.filtered,
                "discarded": drained.discarded,
                "dead_lettered": drained.dead_lettered,
                "errors": list(drained.errors),
            }
            if drained is not None
            else None,
            "errors": list(self.errors),
            "elapsed_s": round(self.elapsed_s, 3),
        }


class TickError(RuntimeError):
    """The tick could not finish (events did not drain); ``report`` holds what it did."""

    def __init__(self, message: str, report: TickReport) -> None:
        super().__init__(message)
        self.report = report
