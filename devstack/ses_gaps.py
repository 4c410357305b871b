"""SES on the emulator (gaps 14 and 23 in ``gaps.py``): the stack's sender verified,
its configuration sets created through the SES API, and both bodies of a sent e-mail
kept where moto keeps only one."""

from __future__ import annotations

import inspect
import json
import logging
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devstack.deploy import Deployment

log = logging.getLogger(__name__)

# Held while a send and the capture of its bodies happen together.
_SES_LOCK = threading.Lock()


def verify_mail_sender(deployment: Deployment) -> list[str]:
    """Verify the stack's MailFrom identity, as an operator does once per account (gap 14)."""
    sender = deployment.parameters.get("MailFrom")
    if not sender:
        return []
    ses = deployment.client("ses")
    if sender in ses.list_identities(IdentityType="EmailAddress")["Identities"]:
        return []
    ses.verify_email_identity(EmailAddress=sender)
    return [f"SES sender {sender} verified"]


def capture_email_bodies() -> bool:
    """Make moto keep the text and the HTML body of each e-mail (gap 14).

    Returns True when the wrappers were installed now (False: already there,
    or moto's messages keep both bodies themselves).
    """
    from moto.ses.models import Message
    from moto.ses.responses import EmailResponse
    from moto.sesv2.responses import SESV2Response

    if {"text", "html"} & set(inspect.signature(Message.__init__).parameters):
        return False
    if getattr(EmailResponse.send_email, "_quitclaim_captured", False):
        return False
    send_v1 = EmailResponse.send_email
    send_v2 = SESV2Response.send_email

    def bodies_v1(self: Any) -> Any:
        with _SES_LOCK:
            sent = self.backend.sent_messages
            before = len(sent)
            result = send_v1(self)
            text = self._get_param("Message.Body.Text.Data")
            html = self._get_param("Message.Body.Html.Data")
            for message in sent[before:]:
                message.quitclaim_bodies = {"text": text, "html": html}
        return result

    def bodies_v2(self: Any) -> Any:
        with _SES_LOCK:
            sent = self.sesv2_backend.core_backend.sent_messages
            before = len(sent)
            result = send_v2(self)
            body = ((json.loads(self.body).get("Content") or {}).get("Simple") or {}).get("Body")
            for message in sent[before:]:
                if body:
                    message.quitclaim_bodies = {
                        "text": (body.get("Text") or {}).get("Data"),
                        "html": (body.get("Html") or {}).get("Data"),
                    }
        return result

    bodies_v1._quitclaim_captured = True  # type: ignore[attr-defined]
    EmailResponse.send_email = bodies_v1  # type: ignore[method-assign]
    SESV2Response.send_email = bodies_v2  # type: ignore[method-assign]
    return True
