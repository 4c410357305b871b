"""The last accuracy audit's stamp, where the digest can read it (docs/accuracy-audit.md).

The audit keeps, beside its report, ``<tenant>/audits/accuracy/stamp.json``:
the engine and model names, threshold and margin it measured with, and when.
The digest (the reminders function: no face layer, read access to this one
key only) compares it with the engine constants and the tenant's policy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from quitclaim.domain.accuracy_stamp import stamp_of, stamp_stale_reasons
from quitclaim.domain.ports import ObjectStore, TenantRepository


def stamp_key(tenant: str) -> str:
    return f"{tenant}/audits/accuracy/stamp.json"


class AccuracyStamps:
    def __init__(self, store: ObjectStore, bucket: str, tenants: TenantRepository) -> None:
        self._store = store
        self._bucket = bucket
        self._tenants = tenants

    def write(self, report: Mapping[str, Any]) -> None:
        tenant = str(report["tenant"])
        data = json.dumps(stamp_of(report), sort_keys=True).encode()
        self._store.write(self._bucket, stamp_key(tenant), data, content_type="application/json")

    def evidence(self, tenant: str) -> dict[str, Any] | None:
        """``created_at``, ``stale`` and ``stale_reasons`` of the last audit; None: never run."""
        key = stamp_key(tenant)
        if self._store.head(self._bucket, key) is None:
            return None
        stamp = json.loads(self._store.read(self._bucket, key))
        policy = self._tenants.policy(tenant)
        if policy is None:
            return None
        reasons = stamp_stale_reasons(stamp, policy.match_threshold, policy.match_margin)
        return {"created_at": stamp["created_at"], "stale": bool(reasons), "stale_reasons": reasons}
