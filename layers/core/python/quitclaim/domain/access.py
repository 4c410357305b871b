"""Who may do what: each operation needs one capability, each role holds a set.

The single rule the API (``quitclaim.api.auth.authenticate``) and the console
(defence in depth) check. Roles are the lowercase strings ``admin``,
``reviewer``, ``dpo`` and ``auditor`` (user-pool groups map onto them by name).

- ``admin`` can do everything of the tenant;
- ``reviewer`` reads the tenant's data and works the review queue;
- ``dpo`` (data protection officer) reads everything, runs a person's export
  and the records of processing, and changes nothing;
- ``auditor`` reads the audit trail and the records of processing only.
"""

from __future__ import annotations

import enum

from quitclaim.domain.errors import Forbidden
from quitclaim.domain.registry import Principal, Role


class Capability(enum.StrEnum):
    SELF = "self"  # who am I (every role: the dashboard needs it to draw itself)
    READ = "read"  # the tenant's data, as reviewers read it today
    ADMIN_READ = "admin_read"  # configuration and records admins read (webhooks, keys, erasures)
    REVIEW = "review"  # the review queue's actions (release, keep, reassign, delete, redact)
    WRITE = "write"  # every other change of the tenant
    EXPORT = "export"  # a person's data export and where they appear (Art. 15)
    RECORDS = "records"  # records of processing (Art. 30)
    AUDIT = "audit"  # the audit trail


_ALL = frozenset(Role)

# The one table: which roles hold each capability.
ROLES: dict[Capability, frozenset[Role]] = {
    Capability.SELF: _ALL,
    Capability.READ: frozenset({Role.ADMIN, Role.REVIEWER, Role.DPO}),
    Capability.ADMIN_READ: frozenset({Role.ADMIN, Role.DPO}),
    Capability.REVIEW: frozenset({Role.ADMIN, Role.REVIEWER}),
    Capability.WRITE: frozenset({Role.ADMIN}),
    Capability.EXPORT: frozenset({Role.ADMIN, Role.DPO}),
    Capability.RECORDS: frozenset({Role.ADMIN, Role.DPO, Role.AUDITOR}),
    Capability.AUDIT: frozenset({Role.ADMIN, Role.DPO, Role.AUDITOR}),
}

# Capabilities that change something: a read-only role holds none of them.
CHANGES = frozenset({Capability.REVIEW, Capability.WRITE})


def allows(role: Role, capability: Capability) -> bool:
    return role in ROLES[capability]


def require(principal: Principal, capability: Capability) -> None:
    """``Forbidden`` unless the caller's role holds ``capability``."""
    if not allows(principal.role, capability):
        roles = ", ".join(sorted(r.value for r in ROLES[capability]))
        raise Forbidden(f"this action needs one of the roles: {roles}")
