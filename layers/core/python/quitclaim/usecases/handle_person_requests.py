"""Access and erasure requests a person makes on a page, without a phone call.

1. ``submit``: the person gives an e-mail address and a kind. The request is
   stored unverified under a random id and a signed link goes to the address.
   Nothing reads the subjects (or anything else about the address) here, so
   a known and an unknown address get the same answer, in the same time.
2. ``verify``: the address's owner confirms through the link. Only now are the
   tenant's records looked up by the address; the request gets its one-month
   deadline and reminders for the officer 7 and 2 days ahead.
   - access: today's export ZIP of each matching record (``SubjectRights``),
     delivered through a link that expires; answered.
   - erasure: registered for the officer, who decides (nothing is erased here).
3. ``remind_officers``: the daily reminders run mails the tenant's contact
   about open requests whose deadline is 7 or 2 days away, each once.
4. ``sweep``: the same daily run deletes what is kept no longer than needed:
   a request still unverified ``UNVERIFIED_DAYS`` after it was made (its
   address with it), and an answered request's export ZIPs the day after their
   ``DOWNLOAD_DAYS`` download window (the bucket's lifecycle rule on
   ``exports/`` is the backstop in AWS; docs/person-pages.md).

Logs and audit records hold ids and kinds only, never the address.
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta

from quitclaim.domain.errors import Conflict, DependencyFailed, Forbidden, NotFound
from quitclaim.domain.person_requests import (
    DOWNLOAD_DAYS,
    REMIND_DAYS_BEFORE,
    UNVERIFIED_DAYS,
    PersonRequest,
    checked_request,
    one_month_after,
)
from quitclaim.domain.ports import (
    Clock,
    Email,
    ExportLinks,
    Mailer,
    OpenRequest,
    PersonRequestStore,
    TenantRepository,
)
from quitclaim.domain.rights import AccessExport
from quitclaim.observability import audit, count, logger
from quitclaim.usecases.reminders import LinkClaims, LinkSigner

ACTION = "request"  # the signed link's action: it verifies a request, nothing else


@dataclass(frozen=True, slots=True)
class Verified:
    """What the page after verification shows."""

    request: PersonRequest
    downloads: tuple[str, ...] = ()  # access: one expiring link per matching record
    already: bool = False  # the link was followed before: nothing new happened
    contact: str | None = None


MAIL: dict[str, dict[str, str]] = {
    "en": {
        "verify.subject": "Confirm your {kind} request to {tenant}",
        "verify.body": (
            "Hello,\n\nSomeone (we hope you) asked {tenant} for {what} with this e-mail "
            "address. Confirm the request here (the link works for {hours} hours):\n{link}\n\n"
            "If you did not ask, ignore this e-mail: nothing happens."
        ),
        "access": "a copy of the data it holds about them (GDPR Art. 15)",
        "erasure": "the erasure of their data (GDPR Art. 17)",
        "ready.subject": "Your data from {tenant}",
        "ready.body": (
            "Hello,\n\nYour access request to {tenant} is answered. Download your data "
            "here (the links expire on {until}):\n{links}"
        ),
    },
    "nl": {
        "verify.subject": "Bevestig uw verzoek aan {tenant}",
        "verify.body": (
            "Hallo,\n\nIemand (hopelijk u) vroeg {tenant} met dit e-mailadres om {what}. "
            "Bevestig het verzoek hier (de link werkt {hours} uur):\n{link}\n\n"
            "Vroeg u niets, negeer deze e-mail dan: er gebeurt niets."
        ),
        "access": "een kopie van de gegevens over hem of haar (AVG art. 15)",
        "erasure": "het wissen van zijn of haar gegevens (AVG art. 17)",
        "ready.subject": "Uw gegevens bij {tenant}",
        "ready.body": (
            "Hallo,\n\nUw inzageverzoek aan {tenant} is beantwoord. Download uw gegevens "
            "hier (de links verlopen op {until}):\n{links}"
        ),
    },
}
OFFICER = (
    "Quitclaim: {kind} request {request_id} of tenant {tenant} is due on {deadline} "
    "({days} days from now). It was verified on {verified}; "
    "see `quitclaim requests list` or the dashboard."
)


class PersonRequests:
    def __init__(
        self,
        *,
        store: PersonRequestStore,
        tenants: TenantRepository,
        find_subjects: Callable[[str, str], list[str]],
        export: Callable[[str, str], AccessExport],
        links: ExportLinks,
        mailer: Mailer,
        signer: LinkSigner,
        clock: Clock,
        base_url: str,
        contact: Callable[[str], str | None],
        verify_hours: int = 24,
        download_days: int = DOWNLOAD_DAYS,
        unverified_days: int = UNVERIFIED_DAYS,
    ) -> None:
        self._store = store
        self._tenants = tenants
        self._find = find_subjects
        self._export = export
        self._links = links
        self._mailer = mailer
        self._signer = signer
        self._clock = clock
        self._base = base_url.rstrip("/")
        self._contact = contact
        self._verify = timedelta(hours=verify_hours)
        self.download_days = download_days
        self._unverified_days = unverified_days

    # ------------------------------------------------------------------ the person

    def tenant_exists(self, tenant: str) -> bool:
        return self._tenants.policy(tenant) is not None

    def contact(self, tenant: str) -> str | None:
        """Whom a person asks about a request: the tenant's contact address."""
        return self._contact(tenant)

    def submit(self, tenant: str, email: str, kind: str, language: str) -> None:
        """Store the request unverified and mail the address a link to confirm it.

        The same steps for every address: no lookup, so nothing to tell apart.
        """
        address, kind = checked_request(email, kind)
        if not self.tenant_exists(tenant):
            raise NotFound("no such organisation")
        now = self._clock.now()
        request = PersonRequest(
            tenant, "prq_" + secrets.token_hex(10), kind, address, now, detail={"lang": language}
        )
        self._store.create(request)
        gone = (now + timedelta(days=self._unverified_days)).date().isoformat()
        self._store.add_sweep(gone, tenant, request.request_id, "unverified")
        claims = LinkClaims(
            tenant, request.request_id, kind, ACTION, int((now + self._verify).timestamp())
        )
        link = f"{self._base}/requests/{tenant}/verify?token={self._signer.sign(claims)}"
        texts = MAIL.get(language, MAIL["en"])
        fields = {
            "tenant": tenant,
            "kind": kind,
            "what": texts[kind],
            "hours": int(self._verify.total_seconds() // 3600),
            "link": link,
        }
        text = texts["verify.body"].format(**fields)
        self._mailer.send(
            Email(address, texts["verify.subject"].format(**fields), text, _html(text, [link]))
        )
        audit("person_request.received", tenant=tenant, request_id=request.request_id, source=kind)
        count("PersonRequestsReceived")

    def pending(self, tenant: str, token: str) -> PersonRequest:
        """The request a verification link names (``Forbidden`` for a bad or old link)."""
        claims = self._signer.verify(token, ACTION, self._clock.now())
        if claims.tenant != tenant:
            raise Forbidden("this link is not valid", code="bad_link")
        request = self._store.get(tenant, claims.subject_id)
        if request is None:
            raise Forbidden("this link is not valid", code="bad_link")
        return request

    def verify(self, tenant: str, token: str) -> Verified:
        """Register the request (once); an access request is answered at once."""
        request = self.pending(tenant, token)
        contact = self._contact(tenant)
        if request.status != "unverified":
            return Verified(request, already=True, contact=contact)
        now = self._clock.now()
        # Only now, for the verified owner of the address, are the records looked up.
        subject_ids = tuple(sorted(self._find(tenant, request.email)))
        verified = replace(
            request,
            status="open",
            verified_at=now,
            deadline=one_month_after(now),
            subject_ids=subject_ids,
        )
        if not self._store.mark_verified(verified):
            raise Conflict("this request is registered already", code="already_verified")
        downloads: tuple[str, ...] = ()
        if verified.kind == "access" and subject_ids:
            downloads = tuple(self._deliver(verified))
            verified = replace(
                verified,
                status="answered",
                detail={**verified.detail, "answered_at": now.isoformat()},
            )
            self._store.update(verified)
        else:
            assert verified.deadline is not None
            for days in REMIND_DAYS_BEFORE:
                day = (verified.deadline - timedelta(days=days)).date().isoformat()
                self._store.add_reminder(day, tenant, verified.request_id, days)
        audit(
            "person_request.verified",
            tenant=tenant,
            request_id=verified.request_id,
            results=len(subject_ids),
            source=verified.kind,
        )
        count("PersonRequestsVerified")
        return Verified(verified, downloads, contact=contact)

    def _deliver(self, request: PersonRequest) -> list[str]:
        # Scheduled before the ZIPs exist: a failure half-way leaves nothing unswept.
        gone = self._clock.now() + timedelta(days=self.download_days + 1)
        self._store.add_sweep(gone.date().isoformat(), request.tenant, request.request_id, "export")
        urls = []
        for subject_id in request.subject_ids:
            export = self._export(request.tenant, subject_id)
            urls.append(
                self._links.publish(
                    request.tenant, request.request_id, export.filename, export.data
                )
            )
        texts = MAIL.get(request.detail.get("lang", "en"), MAIL["en"])
        until = (self._clock.now() + timedelta(days=self.download_days)).date().isoformat()
        fields = {"tenant": request.tenant, "until": until, "links": "\n".join(urls)}
        text = texts["ready.body"].format(**fields)
        try:
            self._mailer.send(
                Email(
                    request.email, texts["ready.subject"].format(**fields), text, _html(text, urls)
                )
            )
        except DependencyFailed:
            # The page shows the links too: the answer stands.
            count("PersonRequestMailFailed")
            logger.warning(
                "access mail not sent", tenant=request.tenant, request_id=request.request_id
            )
        return urls

    # ------------------------------------------------------------------ the officer

    def open_requests(self, tenant: str) -> list[OpenRequest]:
        """Verified requests not answered yet, with their deadlines (the officer's digest)."""
        return [
            OpenRequest(request_id=r.request_id, kind=r.kind, deadline=r.deadline)
            for r in self._store.verified(tenant)
            if r.status == "open" and r.deadline is not None
        ]

    def list(self, tenant: str) -> list[PersonRequest]:
        """The tenant's verified requests, the nearest deadline first."""
        return sorted(
            self._store.verified(tenant),
            key=lambda r: (r.status == "answered", r.deadline or r.received_at),
        )

    def remind_officers(self, lookback_days: int = 3) -> int:
        """Mail the officer about open requests due in 7 or 2 days, each reminder once.

        Looks back a few days so a missed daily run still reminds (late).
        """
        now = self._clock.now()
        sent = 0
        for back in range(lookback_days, -1, -1):
            day = (now - timedelta(days=back)).date().isoformat()
            for tenant, request_id, days in self._store.reminders_on(day):
                request = self._store.get(tenant, request_id)
                if request is None or request.status != "open" or request.deadline is None:
                    continue
                to = self._contact(tenant)
                if not to:
                    count("PersonRequestNoOfficer")
                    logger.info("no officer contact for a request reminder", tenant=tenant)
                    continue
                if not self._store.claim_reminder(day, tenant, request_id, days):
                    continue
                left = (request.deadline.date() - now.date()).days
                text = OFFICER.format(
                    kind=request.kind,
                    request_id=request_id,
                    tenant=tenant,
                    deadline=request.deadline.date().isoformat(),
                    days=left,
                    verified=(request.verified_at or request.received_at).date().isoformat(),
                )
                subject = f"{request.kind.capitalize()} request due in {left} days ({tenant})"
                try:
                    self._mailer.send(Email(to, subject, text, _html(text, [])))
                except DependencyFailed:
                    self._store.release_reminder(day, tenant, request_id, days)
                    raise
                sent += 1
        count("PersonRequestReminders", sent)
        return sent

    # ------------------------------------------------------------------ the daily run

    def sweep(self, lookback_days: int = 14) -> int:
        """Delete expired unverified requests and export ZIPs; how many things went.

        Each due item is dropped once done, so a run missed for up to
        ``lookback_days`` catches up, and running twice deletes nothing twice.
        """
        now = self._clock.now()
        deleted = 0
        for back in range(lookback_days, -1, -1):
            day = (now - timedelta(days=back)).date().isoformat()
            for tenant, request_id, what in self._store.sweeps_on(day):
                deleted += self._sweep_one(tenant, request_id, what)
                self._store.drop_sweep(day, tenant, request_id, what)
        count("PersonRequestsSwept", deleted)
        return deleted

    def _sweep_one(self, tenant: str, request_id: str, what: str) -> int:
        if what == "unverified":
            request = self._store.get(tenant, request_id)
            if request is None or request.status != "unverified":
                return 0  # verified meanwhile: it lives on as a registered request
            self._store.delete(tenant, request_id)
            audit("person_request.expired", tenant=tenant, request_id=request_id)
            return 1
        if what == "export":
            removed = self._links.remove(tenant, request_id)
            audit(
                "person_request.export_deleted",
                tenant=tenant,
                request_id=request_id,
                results=removed,
            )
            return removed
        logger.warning("unknown person request sweep", tenant=tenant, what=what)
        return 0


def _html(text: str, links: list[str]) -> str:
    body = html.escape(text).replace("\n", "<br>")
    for link in links:
        escaped = html.escape(link)
        body = body.replace(escaped, f'<a href="{escaped}">{escaped}</a>')
    return body
