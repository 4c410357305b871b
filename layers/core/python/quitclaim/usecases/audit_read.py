"""Reading a tenant's audit trail over the API: a page of events, and the verdict.

Built on ``AuditTrail``'s store and the chain's own rules
(``quitclaim.domain.audit_chain``): the chain format is not touched. Both
reads are bounded in time (``budget_s``): API Gateway answers 504 after 29 s,
so a chain too large to read within the budget is answered as incomplete,
pointing at ``quitclaim audit verify`` / ``show`` (docs/audit.md).

Events are answered with the fields the chain holds (``observability``'s
allow-list: ids, counts, codes, the actor's key id or ``user:<sub>`` and an
e-mail's hash), never anything looked up besides them.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from quitclaim.domain.access import Capability, require
from quitclaim.domain.audit_chain import Verification, chain_records, verify
from quitclaim.domain.errors import ValidationFailed
from quitclaim.domain.registry import Principal
from quitclaim.usecases.audit_trail import AuditTrail

# What an answer may hold of an event besides its place in the chain: the
# fields ``observability.audit`` allows (it refuses any other), listed again
# here so that a field added there is a decision here too.
EVENT_FIELDS = frozenset(
    {
        "action",
        "tenant",
        "asset_id",
        "status",
        "reasons",
        "purpose",
        "faces",
        "versions",
        "policy",
        "timings_ms",
        "subject_id",
        "consent_id",
        "duplicate",
        "dest_bucket",
        "clearance",
        "source",
        "reason",
        "endpoint_id",
        "delivery_id",
        "request_id",
        "source_asset_id",
        "results",
        "plan",
        "region",
        "purge_after",
        "complete",
        "early",
        "stores",
        "images_per_month",
        "requested_by",
        "people",
        "key_id",
        "new_key_id",
        "role",
        "actor",
        "actor_email_hash",
    }
)
# API Gateway's integration timeout is 29 s: the Lambda needs time to answer.
BUDGET_S = 20.0
# Listing a chain's versions cannot be interrupted (the adapter lists before it
# reads): a chain longer than this, by its heads, is not even listed (about
# 50 list calls). Reading the records is what the time budget bounds.
MAX_RECORDS = 50_000
CLI_HINT = "quitclaim audit verify --tenant <tenant> (or audit show) reads a chain of any size"


class OutOfTime(Exception):
    """The chain could not be read within the budget."""


@dataclass(frozen=True)
class AuditEventPage:
    items: tuple[dict[str, Any], ...]
    next_cursor: str | None
    # False: the chain was too large to read in time (nothing is answered; see ``hint``).
    complete: bool = True
    hint: str | None = None


@dataclass(frozen=True)
class AuditVerdict:
    tenant: str
    intact: bool | None  # None: not decided (the chain could not be read in time)
    complete: bool
    records: int
    events: int
    # Problem code -> count (today's verifier stops at the first break: at most one).
    problems: dict[str, int] = field(default_factory=dict)
    first_break: dict[str, Any] | None = None
    hint: str | None = None


@dataclass
class AuditReader:
    trail: AuditTrail
    budget_s: float = BUDGET_S
    max_records: int = MAX_RECORDS
    monotonic: Callable[[], float] = field(default=time.monotonic)

    def events(
        self,
        principal: Principal,
        *,
        limit: int = 50,
        cursor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        action: str | None = None,
    ) -> AuditEventPage:
        """A page of the caller's tenant's events in chain order, oldest first (unverified)."""
        require(principal, Capability.AUDIT)
        tenant = principal.tenant
        start = _decode(cursor, tenant)
        try:
            records = self._records(tenant)
        except OutOfTime:
            return AuditEventPage((), None, complete=False, hint=CLI_HINT)
        items: list[dict[str, Any]] = []
        position = 0
        more = False
        for record in records:
            at = datetime.fromisoformat(record["at"])
            for event in record.get("events") or []:
                position += 1
                if position <= start:
                    continue
                if since is not None and at < since:
                    continue
                if until is not None and at >= until:
                    continue
                if action is not None and event.get("action") != action:
                    continue
                if len(items) == limit:
                    more = True
                    break
                items.append(_shown(record, event))
            if more:
                break
        # The cursor counts the chain's events passed (filtered out or answered):
        # with ``more`` the event at ``position`` was not answered and comes next.
        return AuditEventPage(tuple(items), _encode(tenant, position - 1) if more else None)

    def verify(self, principal: Principal) -> AuditVerdict:
        """The chain's verdict for the caller's tenant, or "not decided" when out of time."""
        require(principal, Capability.AUDIT)
        tenant = principal.tenant
        trail = self.trail
        deadline = self.monotonic() + self.budget_s
        try:
            self._not_too_long(tenant)
            objects = list(self._bounded(trail.store.records(tenant), deadline))
            heads = dict(trail.store.heads(tenant))
            result: Verification = verify(tenant, objects, heads.pop(0, None), heads)
        except OutOfTime:
            return AuditVerdict(tenant, None, False, 0, 0, hint=CLI_HINT)
        found = result.as_dict()
        b = result.first_break
        return AuditVerdict(
            tenant,
            result.intact,
            True,
            result.records,
            result.events,
            problems={} if b is None else {b.problem: 1},
            first_break=found["first_break"],
        )

    def _records(self, tenant: str) -> list[dict[str, Any]]:
        deadline = self.monotonic() + self.budget_s
        store = self.trail.store
        self._not_too_long(tenant)
        objects = list(self._bounded(store.records(tenant), deadline))
        heads = dict(store.heads(tenant))
        return chain_records(tenant, objects, heads.pop(0, None), heads)

    def _not_too_long(self, tenant: str) -> None:
        # The heads say how long the chain is before anything is listed (the
        # heads are read again after the listing, as ``verify`` needs them).
        if sum(head.seq for head in self.trail.store.heads(tenant).values()) > self.max_records:
            raise OutOfTime()

    def _bounded(self, items: Iterable[Any], deadline: float) -> Iterator[Any]:
        for item in items:
            if self.monotonic() > deadline:
                raise OutOfTime()
            yield item


def _shown(record: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    where = {"lane": record["lane"]} if record.get("lane") else {}
    kept = {k: v for k, v in event.items() if k in EVENT_FIELDS}
    return {"seq": record["seq"], **where, "at": record["at"], **kept}


def _encode(tenant: str, position: int) -> str:
    raw = json.dumps({"tenant": tenant, "after": position}, sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode(cursor: str | None, tenant: str) -> int:
    """The position a cursor names; one of another tenant (or garbled) is refused."""
    if not cursor:
        return 0
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError, binascii.Error):
        raise ValidationFailed("cursor is not valid", field="cursor") from None
    if not isinstance(value, dict) or value.get("tenant") != tenant:
        raise ValidationFailed("cursor is not valid", field="cursor")
    after = value.get("after")
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise ValidationFailed("cursor is not valid", field="cursor")
    return after
