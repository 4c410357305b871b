"""The officer's digest: what needs them, by e-mail, daily or weekly.

One run (``functions/reminders``, kind ``digest``, every morning) goes through
every tenant whose ``digest`` setting is due today (daily; weekly: Mondays)
and that has a contact address (the tenant profile's ``contact_email``), and
sends one e-mail through the mail port (SES):

- consents expiring in the next 30 days;
- people the renewal reminders cannot reach (no address of their own or of a
  guardian, or one that bounced: ``email_unreachable``);
- the quarantine queue's size and its oldest item;
- dead letters (messages in the dead-letter queues);
- open data-subject requests and their deadlines (``OpenRequests``: the
  verified, unanswered requests people made on the request page,
  ``PersonRequests.open_requests``);
- images deleted by retention since the last digest (the cadence's period);
- API keys expiring in the next 30 days (key id and role: rotate them in time).

The e-mail leaves the stack, so it carries ids, counts and dates only, never
names or images (data minimisation): the dashboard shows the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape
from typing import Any

from quitclaim.domain.models import AssetStatus
from quitclaim.domain.ports import (
    AssetRepository,
    Clock,
    ConsentExpiries,
    Email,
    KeyListing,
    Mailer,
    OpenRequest,
    OpenRequests,
    QueueDepths,
    SubjectRepository,
    TenantDirectory,
)
from quitclaim.domain.registry import key_status
from quitclaim.domain.retention import RETENTION_ACTOR, digest_due, digest_period
from quitclaim.observability import audit, count, logger
from quitclaim.usecases.retention_sweep import assets_in

EXPIRING_DAYS = 30
# A digest lists this many items per section; the counts are always complete.
MAX_LISTED = 50


class NoOpenRequests:
    """No request store wired (unit tests, tools): none are known."""

    def open_requests(self, tenant: str) -> list[OpenRequest]:
        return []


@dataclass(frozen=True, slots=True)
class DigestReport:
    tenant: str
    at: datetime
    since: datetime
    expiring: tuple[tuple[str, str, datetime], ...] = ()  # subject, consent, expires_at
    unreachable: tuple[tuple[str, str], ...] = ()  # subject, why ("no_email" | "bounced")
    quarantine_size: int = 0
    quarantine_oldest: tuple[str, datetime] | None = None  # asset, decided_at
    dead_letters: dict[str, int | None] = field(default_factory=dict)
    open_requests: tuple[OpenRequest, ...] = ()
    deleted: tuple[tuple[str, str, datetime], ...] = ()  # asset, rule, deleted_at
    # Why the last accuracy audit no longer describes the gate (empty: current or none).
    accuracy_stale: tuple[str, ...] = ()
    expiring_keys: tuple[tuple[str, str, datetime], ...] = ()  # key id, role, expires_at

    def counts(self) -> dict[str, int]:
        return {
            "expiring": len(self.expiring),
            "unreachable": len(self.unreachable),
            "quarantine": self.quarantine_size,
            "dead_letters": sum(v or 0 for v in self.dead_letters.values()),
            "open_requests": len(self.open_requests),
            "deleted": len(self.deleted),
            "expiring_keys": len(self.expiring_keys),
        }


class Digest:
    """Builds and sends the tenants' digests (built in bootstrap)."""

    def __init__(
        self,
        *,
        directory: TenantDirectory,
        assets: AssetRepository,
        subjects: SubjectRepository,
        expiries: ConsentExpiries,
        mailer: Mailer,
        clock: Clock,
        queues: QueueDepths | None = None,
        requests: OpenRequests | None = None,
        base_url: str = "",
        accuracy: Callable[[str], dict[str, Any] | None] | None = None,
        keys: KeyListing | None = None,
    ) -> None:
        self._keys = keys
        self._directory = directory
        self._assets = assets
        self._subjects = subjects
        self._expiries = expiries
        self._mailer = mailer
        self._clock = clock
        self._queues = queues
        self._requests = requests or NoOpenRequests()
        self._base_url = base_url.rstrip("/")
        self._accuracy = accuracy

    def send_due(self) -> int:
        """Send today's digests; how many were sent."""
        sent = 0
        now = self._clock.now()
        depths: dict[str, int | None] | None = None
        for policy, contact in self._directory.tenants():
            if not contact or not digest_due(policy, now):
                continue
            tenant = policy.tenant
            if depths is None:
                # Shared queues: read once per run, not per tenant.
                depths = self._queues.depths() if self._queues is not None else {}
            report = self.report(tenant, since=now - digest_period(policy), depths=depths)
            self._mailer.send(render(report, contact, self._base_url))
            audit("digest.sent", tenant=tenant, source="digest", results=report.counts())
            sent += 1
        count("DigestsSent", sent)
        logger.info("digests sent", sent=sent)
        return sent

    def report(
        self, tenant: str, *, since: datetime, depths: dict[str, int | None] | None = None
    ) -> DigestReport:
        """What the digest of ``tenant`` says now (also for a preview)."""
        now = self._clock.now()
        expiring = sorted(
            (
                (c.subject_id, c.consent_id, c.expires_at)
                for c in self._expiries.expiring_between(
                    tenant, now, now + timedelta(days=EXPIRING_DAYS)
                )
                if c.revoked_at is None and c.expires_at is not None
            ),
            key=lambda row: row[2],
        )
        unreachable = []
        for sid in sorted({row[0] for row in expiring}):
            subject = self._subjects.get(tenant, sid)
            if subject is None:
                continue
            guardian_email = subject.guardian.email if subject.guardian else None
            if subject.email_unreachable:
                unreachable.append((sid, "bounced"))
            elif not subject.email and not guardian_email:
                unreachable.append((sid, "no_email"))
        size = 0
        oldest: tuple[str, datetime] | None = None
        for record in assets_in(self._assets, tenant, AssetStatus.QUARANTINED):
            size += 1
            if oldest is None or record.decided_at < oldest[1]:
                oldest = (record.asset_id, record.decided_at)
        deleted = [
            (r.asset_id, str(r.review.get("retention", {}).get("rule", "")), r.decided_at)
            for r in assets_in(self._assets, tenant, AssetStatus.DELETED, since=since)
            if r.history and r.history[-1].get("actor") == RETENTION_ACTOR
        ]
        return DigestReport(
            tenant=tenant,
            at=now,
            since=since,
            expiring=tuple(expiring),
            unreachable=tuple(unreachable),
            quarantine_size=size,
            quarantine_oldest=oldest,
            dead_letters=dict(depths or {}),
            open_requests=tuple(
                sorted(self._requests.open_requests(tenant), key=lambda r: r.deadline)
            ),
            deleted=tuple(deleted),
            accuracy_stale=tuple(self._stale_audit(tenant)),
            expiring_keys=self._expiring_keys(tenant, now),
        )

    def _stale_audit(self, tenant: str) -> list[str]:
        evidence = self._accuracy(tenant) if self._accuracy is not None else None
        return list(evidence.get("stale_reasons", [])) if evidence else []

    def _expiring_keys(self, tenant: str, now: datetime) -> tuple[tuple[str, str, datetime], ...]:
        if self._keys is None:
            return ()
        until = now + timedelta(days=EXPIRING_DAYS)
        rows = [
            (k.key_id, k.role.value, k.expires_at)
            for k in self._keys.keys(tenant)
            if key_status(k, now) == "active" and k.expires_at is not None and k.expires_at <= until
        ]
        return tuple(sorted(rows, key=lambda row: row[2]))


def _day(at: datetime) -> str:
    return at.date().isoformat()


def _sections(report: DigestReport) -> list[tuple[str, list[str]]]:
    """Each section's heading (with its count) and its lines, in the e-mail's order."""
    c = report.counts()
    sections: list[tuple[str, list[str]]] = [
        (
            f"Consents expiring in the next {EXPIRING_DAYS} days: {c['expiring']}",
            [f"subject {s}, consent {k}, expires {_day(at)}" for s, k, at in report.expiring],
        ),
        (
            f"People renewal reminders cannot reach: {c['unreachable']}",
            [
                f"subject {s}: {'address bounced' if why == 'bounced' else 'no e-mail address'}"
                for s, why in report.unreachable
            ],
        ),
        (
            f"Quarantine queue: {c['quarantine']}",
            [f"oldest: asset {a}, held since {_day(at)}" for a, at in [report.quarantine_oldest]]
            if report.quarantine_oldest
            else [],
        ),
        (
            f"Dead letters: {c['dead_letters']}",
            [
                f"{name}: {'unknown' if n is None else n}"
                for name, n in sorted(report.dead_letters.items())
                if n != 0
            ],
        ),
        (
            f"Open data-subject requests: {c['open_requests']}",
            [
                f"{r.kind} {r.request_id}, answer by {_day(r.deadline)}"
                for r in report.open_requests
            ],
        ),
        (
            f"Deleted by retention since {_day(report.since)}: {c['deleted']}",
            [f"asset {a} ({rule}), deleted {_day(at)}" for a, rule, at in report.deleted],
        ),
        (
            f"API keys expiring in the next {EXPIRING_DAYS} days: {c['expiring_keys']}",
            [f"key {k} ({role}), expires {_day(at)}" for k, role, at in report.expiring_keys],
        ),
    ]
    if report.accuracy_stale:
        sections.append(("Accuracy audit is stale: run it again", list(report.accuracy_stale)))
    return sections


def render(report: DigestReport, to: str, base_url: str = "") -> Email:
    """The digest as an e-mail: a plain-text and an HTML body with the same lines."""
    sections = _sections(report)
    title = f"Quitclaim digest for {report.tenant}, {_day(report.at)}"
    text_lines = [title, ""]
    html_parts = [f"<h1>{escape(title)}</h1>"]
    for heading, lines in sections:
        shown = lines[:MAX_LISTED]
        more = len(lines) - len(shown)
        text_lines.append(heading)
        text_lines.extend(f"  - {line}" for line in shown)
        if more:
            text_lines.append(f"  ... and {more} more")
        text_lines.append("")
        items = "".join(f"<li>{escape(line)}</li>" for line in shown)
        if more:
            items += f"<li>... and {more} more</li>"
        html_parts.append(f"<h2>{escape(heading)}</h2>" + (f"<ul>{items}</ul>" if items else ""))
    if base_url:
        text_lines.append(f"Dashboard: {base_url}/dashboard")
        html_parts.append(f'<p><a href="{escape(base_url)}/dashboard">Dashboard</a></p>')
    return Email(to=to, subject=title, text="\n".join(text_lines), html="".join(html_parts))
