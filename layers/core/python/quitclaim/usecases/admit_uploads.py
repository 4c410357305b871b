"""Admission: which lane an upload is scanned on, so one tenant cannot starve the others.

Every upload of every tenant arrives on one ingest queue (S3 notifications
cannot be split per tenant). At the head of ingest, before any image is read,
each tenant's arrivals are counted in a short window (one atomic ``ADD`` per
tenant per batch). The first ``share`` arrivals of a tenant in a window are
scanned at once on the main lane; the rest are forwarded, body unchanged, to
the bulk lane, a second queue the same function drains with a low concurrency
ceiling. A bulk import then costs the main lane one counter update and one
queue send per message, not a scan, and everyone else's uploads keep the main
lane's concurrency. docs/fairness.md has the reasoning and the numbers.

Nothing is lost: a message is acknowledged on the main lane only after its
forward succeeded (a failed send is reported as a batch item failure and the
message comes back). Nothing is decided twice: a message forwarded twice (a
crash between the send and the acknowledgement) is scanned twice, and
``scan_asset`` records one decision per object version. A message already on
the bulk lane is never routed again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from quitclaim.domain.backlog import is_backlog_path
from quitclaim.domain.errors import DependencyFailed
from quitclaim.domain.ports import AdmissionCounter, Arrival, BulkLane, Clock, Lane
from quitclaim.edges.s3_events import MalformedEvent, uploads_from_message
from quitclaim.observability import count, logger
from quitclaim.usecases.uploads import split_upload_key


@dataclass(frozen=True, slots=True)
class Routing:
    """What to do with each message of a batch (every id is in exactly one set)."""

    scan: tuple[str, ...] = ()  # decide here, now
    forwarded: tuple[str, ...] = ()  # safely on the bulk lane: acknowledge
    failed: tuple[str, ...] = ()  # not forwarded: report as batch item failures


def main_lane_slots(total_before: int, arrivals: int, share: int) -> list[Lane]:
    """The lane of each of ``arrivals`` numbered ``total_before + 1`` onwards.

    Arrival number ``n`` of a tenant in a window is scanned on the main lane
    when ``n <= share``, else it goes to the bulk lane.
    """
    return [Lane.MAIN if total_before + i + 1 <= share else Lane.BULK for i in range(arrivals)]


def tenant_of(body: str, incoming_prefix: str) -> str | None:
    """The one tenant a message's uploads belong to; None if none, several, or unreadable.

    Such a message is scanned on the main lane, where it is rejected or
    dead-lettered as before: admission never hides a poison message.
    """
    try:
        uploads = uploads_from_message(body)
    except MalformedEvent:
        return None
    tenants = set()
    for upload in uploads:
        parts = split_upload_key(upload.key, incoming_prefix)
        tenants.add(parts[0] if parts else None)
    if len(tenants) != 1:
        return None
    return tenants.pop()


def backlog_only(body: str, incoming_prefix: str) -> bool:
    """Whether every upload of a message belongs to a backlog scan (docs/import.md)."""
    try:
        uploads = uploads_from_message(body)
    except MalformedEvent:
        return False
    paths = [split_upload_key(u.key, incoming_prefix) for u in uploads]
    return bool(paths) and all(p is not None and is_backlog_path(p[1]) for p in paths)


class Admission:
    """Routes each batch: scan now, or forward to the bulk lane."""

    def __init__(
        self,
        *,
        counter: AdmissionCounter,
        bulk: BulkLane,
        clock: Clock,
        share: int,
        window_s: int,
        incoming_prefix: str = "incoming/",
    ) -> None:
        if share < 1 or window_s < 1:
            raise ValueError("share and window_s must be positive")
        self._counter = counter
        self._bulk = bulk
        self._clock = clock
        self._share = share
        self._window_s = window_s
        self._prefix = incoming_prefix

    def route(self, arrivals: Sequence[Arrival]) -> Routing:
        """Count each tenant's main-lane arrivals once per batch and pick their lanes."""
        scan: list[str] = []
        by_tenant: dict[str, list[Arrival]] = {}
        to_bulk: list[Arrival] = []
        for arrival in arrivals:
            if arrival.lane is Lane.MAIN and backlog_only(arrival.body, self._prefix):
                # A backlog scan is bulk by definition: it never takes a main-lane share.
                to_bulk.append(arrival)
                continue
            tenant = None if arrival.lane is Lane.BULK else tenant_of(arrival.body, self._prefix)
            if tenant is None:
                scan.append(arrival.message_id)
            else:
                by_tenant.setdefault(tenant, []).append(arrival)

        window = int(self._clock.now().timestamp()) // self._window_s
        # Kept one window past its end, then TTL removes it (no scan ever reads it).
        expires_at = (window + 2) * self._window_s
        for tenant, mine in by_tenant.items():
            try:
                total = self._counter.add(tenant, window, len(mine), expires_at)
            except DependencyFailed:
                # Fairness is a preference, the decision is not: scan on the main
                # lane as before rather than hold everyone's uploads back.
                logger.warning("admission counter unavailable; scanning on the main lane")
                count("AdmissionUnavailable", len(mine))
                scan.extend(a.message_id for a in mine)
                continue
            lanes = main_lane_slots(total - len(mine), len(mine), self._share)
            for arrival, lane in zip(mine, lanes, strict=True):
                if lane is Lane.MAIN:
                    scan.append(arrival.message_id)
                else:
                    to_bulk.append(arrival)

        failed = self._bulk.forward(to_bulk) if to_bulk else set()
        forwarded = tuple(a.message_id for a in to_bulk if a.message_id not in failed)
        if forwarded:
            count("UploadsToBulkLane", len(forwarded))
        if failed:
            count("BulkForwardFailed", len(failed))
        order = {a.message_id: i for i, a in enumerate(arrivals)}
        return Routing(
            scan=tuple(sorted(scan, key=order.__getitem__)),
            forwarded=forwarded,
            failed=tuple(a.message_id for a in to_bulk if a.message_id in failed),
        )
