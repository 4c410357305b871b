"""Scan an existing library: feed every image of a source through the bulk lane.

``BacklogScan.run`` lists the source after the checkpoint's last key, feeds
each image as an upload under ``incoming/<tenant>/backlog/<name>/`` (admission
sends these to the bulk lane: docs/fairness.md), keeps at most the tenant's
``backlog_concurrency`` undecided at once, and saves the checkpoint after each
image, so a stop (Ctrl-C, ``stop()``) loses nothing and a resume feeds each
image once. It ends with a report: counts per decision and the exceptions
(quarantined, rejected, held) with their reasons. docs/import.md.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from quitclaim.domain.backlog import (
    Checkpoint,
    Progress,
    cost_usd,
    is_backlog_name,
    is_image_key,
    upload_path,
)
from quitclaim.domain.errors import Conflict, NotFound, ValidationFailed
from quitclaim.domain.models import AssetStatus
from quitclaim.domain.ports import (
    AssetRepository,
    BacklogSource,
    BacklogStore,
    Clock,
    TenantRepository,
)
from quitclaim.domain.records import asset_id_for
from quitclaim.observability import audit, count
from quitclaim.usecases.ledger import every_asset


@dataclass
class BacklogReport:
    tenant: str
    name: str
    source: str
    state: str  # stopped | fed (everything uploaded, not waited for) | complete
    listed_images: int
    fed: int
    skipped: int
    waiting: int  # fed, not yet decided
    decisions: dict[str, int]
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    # Source images with no decision and not waiting, or more than one decision:
    # both empty when every image is accounted for exactly once.
    unaccounted: list[str] = field(default_factory=list)
    decided_twice: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    images_per_s: float = 0.0
    cost_usd: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class _Run:
    checkpoint: Checkpoint
    listed: list[str]  # the source's image keys
    started: float
    in_flight: dict[str, str] = field(default_factory=dict)  # asset id -> path
    # Fed by an earlier run and still waiting: they count against the concurrency too.
    carried: set[str] = field(default_factory=set)
    decided: int = 0
    scan_s: float = 0.0
    last_progress: float = 0.0


class BacklogScan:
    def __init__(
        self,
        *,
        store: BacklogStore,
        assets: AssetRepository,
        tenants: TenantRepository,
        clock: Clock,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._assets = assets
        self._tenants = tenants
        self._clock = clock
        self._monotonic = monotonic

    def run(
        self,
        tenant: str,
        name: str,
        source: BacklogSource,
        *,
        stop: Callable[[], bool] = lambda: False,
        wait: Callable[[], object] = lambda: time.sleep(0.5),
        progress: Callable[[Progress], None] = lambda _: None,
        progress_every_s: float = 1.0,
        drain: bool = True,
    ) -> BacklogReport:
        """Feed the source (from the checkpoint on) and, with ``drain``, wait for every decision."""
        if not is_backlog_name(name):
            raise ValidationFailed(
                "a backlog name is 1-63 lowercase letters, digits or dashes", field="name"
            )
        policy = self._tenants.policy(tenant)
        if policy is None:
            raise NotFound(f"tenant {tenant!r} not found")
        checkpoint = self._open(tenant, name, source.describe())
        listed = [k for k in source.keys_after("") if is_image_key(k)]
        run = _Run(checkpoint, listed, self._monotonic())
        run.carried = set(self._store.waiting(tenant, upload_path(name, "")))
        if checkpoint.state != "listed":
            limit = policy.backlog_concurrency
            stopped = self._feed(
                run, tenant, name, source, limit, stop, wait, progress, progress_every_s
            )
            if stopped:
                return self._finish(run, tenant, name, "stopped")
            run.checkpoint = replace(run.checkpoint, state="listed")
            self._store.save(run.checkpoint)
        if drain:
            while run.in_flight or self._store.waiting(tenant, upload_path(name, "")):
                if stop():
                    return self._finish(run, tenant, name, "stopped")
                self._settle(run, tenant)
                if not run.in_flight and self._only_held(tenant, name):
                    break
                wait()
                self._tick(run, progress, progress_every_s)
        self._settle(run, tenant)
        self._tick(run, progress, 0.0)
        # Without draining, "fed": everything is uploaded, the decisions may still come.
        return self._finish(run, tenant, name, "complete" if drain else "fed")

    def _open(self, tenant: str, name: str, described: str) -> Checkpoint:
        """Start the named scan, or resume it when it scans the same source; saved and audited."""
        checkpoint = self._store.load(tenant, name)
        now = self._clock.now().isoformat()
        if checkpoint is not None and checkpoint.source != described:
            raise Conflict(
                f"backlog {name!r} scans {checkpoint.source}; choose another name",
                code="backlog_source",
            )
        event = "started" if checkpoint is None else "resumed"
        checkpoint = checkpoint or Checkpoint(tenant, name, described, started_at=now)
        checkpoint = replace(
            checkpoint,
            state="running" if checkpoint.state != "listed" else "listed",
            history=(*checkpoint.history, {"at": now, "event": event}),
        )
        self._store.save(checkpoint)
        audit("backlog.started", tenant=tenant, source=name, results=checkpoint.fed)
        return checkpoint

    # -- feeding ------------------------------------------------------------
    def _feed(
        self,
        run: _Run,
        tenant: str,
        name: str,
        source: BacklogSource,
        concurrency: int,
        stop: Callable[[], bool],
        wait: Callable[[], object],
        progress: Callable[[Progress], None],
        every_s: float,
    ) -> bool:
        """Feed after the checkpoint; True when stopped before the end of the listing."""
        for key in source.keys_after(run.checkpoint.last_key):
            if stop():
                run.checkpoint = replace(run.checkpoint, state="stopped")
                self._store.save(run.checkpoint)
                return True
            if not is_image_key(key):
                run.checkpoint = replace(
                    run.checkpoint, last_key=key, skipped=run.checkpoint.skipped + 1
                )
                continue
            while len(run.in_flight) + len(run.carried) >= concurrency:
                self._settle(run, tenant)
                if len(run.in_flight) + len(run.carried) >= concurrency:
                    wait()
                self._tick(run, progress, every_s)
            path = upload_path(name, key)
            version = self._store.put(tenant, path, source.read(key))
            incoming = self._store.incoming_key(tenant, path)
            run.in_flight[asset_id_for(tenant, self._store.uploads_bucket, incoming, version)] = (
                path
            )
            # Saved after every image: a stop between two images loses nothing,
            # and a resume starts after the last one fed (never feeds it twice).
            run.checkpoint = run.checkpoint.fed_one(key)
            self._store.save(run.checkpoint)
            count("BacklogImagesFed")
            self._tick(run, progress, every_s)
        return False

    def _settle(self, run: _Run, tenant: str) -> None:
        """Forget the in-flight images that have a decision now; add up their scan time."""
        if run.carried:
            run.carried &= set(self._store.waiting(tenant, upload_path(run.checkpoint.name, "")))
        for asset_id in list(run.in_flight):
            record = self._assets.get(tenant, asset_id)
            if record is None:
                continue
            del run.in_flight[asset_id]
            run.decided += 1
            run.scan_s += sum(record.timings_ms.values()) / 1000

    def _only_held(self, tenant: str, name: str) -> bool:
        """Whether every upload still waiting is held (over quota): none will be decided now."""
        waiting = set(self._store.waiting(tenant, upload_path(name, "")))
        held = {r.path for r in self._records(tenant, name) if r.status is AssetStatus.HELD}
        return waiting <= held

    def _tick(self, run: _Run, progress: Callable[[Progress], None], every_s: float) -> None:
        now = self._monotonic()
        if every_s and now - run.last_progress < every_s:
            return
        run.last_progress = now
        progress(self._progress(run))

    def _progress(self, run: _Run) -> Progress:
        mean = run.scan_s / run.decided if run.decided else 0.0
        # Fed and no longer waiting: decided, whichever run fed it (one listing).
        name, tenant = run.checkpoint.name, run.checkpoint.tenant
        decided = run.checkpoint.fed - len(self._store.waiting(tenant, upload_path(name, "")))
        return Progress(
            decided=decided,
            fed=run.checkpoint.fed,
            total=len(run.listed),
            elapsed_s=self._monotonic() - run.started,
            cost_usd=cost_usd(decided, decided * mean),
        )

    # -- the report ---------------------------------------------------------
    def _records(self, tenant: str, name: str) -> Iterator[Any]:
        prefix = upload_path(name, "")
        return (r for r in every_asset(self._assets, tenant) if r.path.startswith(prefix))

    def _finish(self, run: _Run, tenant: str, name: str, state: str) -> BacklogReport:
        checkpoint = run.checkpoint
        if state == "stopped" and checkpoint.state != "stopped":
            checkpoint = replace(checkpoint, state="stopped")
        now = self._clock.now().isoformat()
        checkpoint = replace(
            checkpoint,
            scan_seconds=checkpoint.scan_seconds + run.scan_s,
            history=(*checkpoint.history, {"at": now, "event": state, "fed": checkpoint.fed}),
        )
        self._store.save(checkpoint)
        records = list(self._records(tenant, name))
        by_path: Counter[str] = Counter(r.path for r in records)
        decisions = Counter(r.status.value for r in records)
        exceptions = [
            {
                "path": r.path.removeprefix(upload_path(name, "")),
                "status": r.status.value,
                "reasons": list(r.reasons),
                "asset_id": r.asset_id,
            }
            for r in sorted(records, key=lambda r: r.path)
            if r.status in (AssetStatus.QUARANTINED, AssetStatus.REJECTED, AssetStatus.HELD)
        ]
        waiting = set(self._store.waiting(tenant, upload_path(name, "")))
        unaccounted: list[str] = []
        if state == "complete":
            source_paths = {upload_path(name, k) for k in run.listed}
            unaccounted = sorted(p for p in source_paths if p not in by_path and p not in waiting)
        elapsed = self._monotonic() - run.started
        # The decisions' own stage timings: exact, whichever run saw them decided.
        scanned_s = sum(sum(r.timings_ms.values()) for r in records) / 1000
        report = BacklogReport(
            tenant=tenant,
            name=name,
            source=checkpoint.source,
            state=state,
            listed_images=len(run.listed),
            fed=checkpoint.fed,
            skipped=checkpoint.skipped,
            waiting=len(waiting),
            decisions=dict(decisions),
            exceptions=exceptions,
            unaccounted=unaccounted,
            decided_twice=sorted(p for p, n in by_path.items() if n > 1),
            elapsed_s=round(elapsed, 2),
            images_per_s=round(run.decided / elapsed, 2) if elapsed > 0 else 0.0,
            cost_usd=round(cost_usd(len(records), scanned_s), 6),
        )
        audit("backlog." + state, tenant=tenant, source=name, results=dict(decisions))
        return report
