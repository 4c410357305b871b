"""A person's own access (Art. 15) or erasure (Art. 17) request, made on a page.

A request exists unverified from the moment it is made (a random id, the
address and the kind, nothing looked up); once the address's owner follows
the e-mailed link it is verified, and from then on it has a deadline of one
month (GDPR Art. 12(3)), reminded to the tenant's officer 7 and 2 days ahead.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import datetime

from quitclaim.domain.errors import ValidationFailed

KINDS = ("access", "erasure")
REMIND_DAYS_BEFORE = (7, 2)
# An unverified request (an address and a kind, nothing more) is deleted this
# many days after it was made: its 24-hour link cannot verify it any more.
UNVERIFIED_DAYS = 7
# An access export's ZIP is deleted the day after its download window ends.
DOWNLOAD_DAYS = 7
# Deliberately loose (one @, a dot in the domain, no spaces): the mail itself verifies.
_EMAIL = re.compile(r"^[^@\s<>\"']{1,64}@[^@\s<>\"']{1,251}\.[^@\s<>\"'.]{2,63}$")


@dataclass(frozen=True, slots=True)
class PersonRequest:
    tenant: str
    request_id: str
    kind: str  # access | erasure
    email: str  # where the person asked from (personal data: never logged)
    received_at: datetime
    status: str = "unverified"  # unverified | open | answered
    verified_at: datetime | None = None
    deadline: datetime | None = None
    subject_ids: tuple[str, ...] = ()  # the records the verified address matched
    detail: dict[str, str] = field(default_factory=dict)


def checked_request(email: str, kind: str) -> tuple[str, str]:
    """The normalised address and kind; ``ValidationFailed`` names the field."""
    address = (email or "").strip().lower()
    if len(address) > 254 or not _EMAIL.fullmatch(address):
        raise ValidationFailed("enter a valid e-mail address", field="email")
    if kind not in KINDS:
        raise ValidationFailed(f"kind must be one of {list(KINDS)}", field="kind")
    return address, kind


def one_month_after(at: datetime) -> datetime:
    """The same day next month (the month's last day where it has no such day)."""
    year, month = (at.year + 1, 1) if at.month == 12 else (at.year, at.month + 1)
    last = calendar.monthrange(year, month)[1]
    return at.replace(year=year, month=month, day=min(at.day, last))
