"""SES bounces and complaints, recorded on the subject they concern.

SES publishes them as SNS notifications (``notificationType`` "Bounce" /
"Complaint" from identity notifications, ``eventType`` from a configuration
set's event destination). A permanent bounce or a complaint about the
subject's own address marks it ``email_unreachable``: reminders stop going
there and the digest lists the person as one reminders cannot reach. A
transient bounce (a full mailbox) changes nothing. The subject is found by the
message tags every reminder carries (``tenant``, ``subject``): ids only, so
neither the notification nor this code needs to search by address.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from quitclaim.domain.errors import NotFound
from quitclaim.domain.ports import SubjectRepository
from quitclaim.observability import audit, count, logger


def _kind(notification: Mapping[str, Any]) -> str:
    return str(notification.get("notificationType") or notification.get("eventType") or "")


def _tag(mail: Mapping[str, Any], name: str) -> str | None:
    values = (mail.get("tags") or {}).get(name) or []
    return str(values[0]) if values else None


def _recipients(notification: Mapping[str, Any], kind: str) -> set[str]:
    if kind == "Bounce":
        bounce = notification.get("bounce") or {}
        if bounce.get("bounceType") != "Permanent":
            return set()
        listed = bounce.get("bouncedRecipients") or []
    elif kind == "Complaint":
        listed = (notification.get("complaint") or {}).get("complainedRecipients") or []
    else:
        return set()
    return {str(r.get("emailAddress", "")).strip().lower() for r in listed} - {""}


class MailFeedback:
    """Records SES bounces and complaints on subjects (built in bootstrap)."""

    def __init__(self, *, subjects: SubjectRepository, update: Any) -> None:
        """``update``: ``Registry.update_subject`` (validates, saves and audits)."""
        self._subjects = subjects
        self._update = update

    def record(self, notification: Mapping[str, Any]) -> bool:
        """Apply one notification; True when a subject was marked unreachable."""
        kind = _kind(notification)
        recipients = _recipients(notification, kind)
        mail = notification.get("mail") or {}
        tenant, subject_id = _tag(mail, "tenant"), _tag(mail, "subject")
        if not recipients or tenant is None or subject_id is None:
            logger.info("mail feedback without effect", kind=kind)
            return False
        subject = self._subjects.get(tenant, subject_id)
        if subject is None or subject.email_unreachable:
            return False
        if (subject.email or "").strip().lower() not in recipients:
            # A guardian's address, or one the person has changed since: not theirs now.
            logger.info("mail feedback for another address", tenant=tenant, kind=kind)
            return False
        try:
            self._update(tenant, subject_id, {"email_unreachable": True})
        except NotFound:
            return False
        audit(
            "subject.email_unreachable",
            tenant=tenant,
            subject_id=subject_id,
            source="ses",
            reason=kind.lower(),
        )
        count("MailFeedbackRecorded")
        return True
