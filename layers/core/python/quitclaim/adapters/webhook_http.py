"""Standard Webhooks signing (the ``standardwebhooks`` library) and the HTTP sender.

Signatures: HMAC-SHA256 over ``{webhook-id}.{webhook-timestamp}.{body}``,
``v1,<base64>``, several space-separated during a secret rotation; the
library compares in constant time and enforces the 5-minute tolerance
against the wall clock (transport time, not the business clock).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from quitclaim.domain.errors import ValidationFailed

USER_AGENT = "Quitclaim-Webhooks/1.0"


class StandardWebhooksSignature:
    """The ``WebhookSignature`` port."""

    def verify(self, secrets: Sequence[str], headers: Mapping[str, str], body: bytes) -> bool:
        """True when any of ``secrets`` signed this body (and the timestamp is fresh)."""
        lowered = {k.lower(): v for k, v in headers.items()}
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return False
        for secret in secrets:
            try:
                Webhook(secret).verify(text, lowered, json_parse=False)
                return True
            # The library raises its own error, and ValueError/binascii.Error
            # (a ValueError) for a malformed signature header.
            except (WebhookVerificationError, ValueError):
                continue
        return False

    def headers(
        self, secrets: Sequence[str], message_id: str, at: datetime, body: str
    ) -> dict[str, str]:
        """The three Standard Webhooks headers, signed with every given secret."""
        signatures = " ".join(Webhook(s).sign(message_id, at, body) for s in secrets)
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signatures,
        }


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect could point a signed event at another host: count it as a failure.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class UrllibSender:
    """The ``WebhookSender`` port: one POST, a verdict, never an exception."""

    def __init__(self, *, timeout_s: float = 10.0, allow_private: bool = False) -> None:
        self._timeout = timeout_s
        self._allow_private = allow_private
        self._opener = urllib.request.build_opener(_NoRedirects())

    def check_url(self, url: str) -> None:
        """Refuse URLs we must not call (``ValidationFailed`` on field ``url``)."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValidationFailed("url must be an absolute https URL", field="url")
        if self._allow_private:
            return
        if parts.scheme != "https":
            raise ValidationFailed("url must use https", field="url")
        if not _public(parts.hostname):
            raise ValidationFailed("url must point at a public address", field="url")

    def post(
        self,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        timeout_s: float | None = None,
    ) -> tuple[int | None, str | None]:
        """(HTTP status, None) or (status or None, an error code) for a failure.

        ``timeout_s`` (what is left of a batch's budget) can only shorten the
        sender's own timeout.
        """
        timeout = self._timeout if timeout_s is None else min(self._timeout, timeout_s)
        try:
            self.check_url(url)
        except ValidationFailed:
            return None, "target_not_allowed"
        request = urllib.request.Request(  # noqa: S310 (check_url admitted http(s) only)
            url,
            data=body,
            method="POST",
            headers={
                **headers,
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
            },
        )
        try:
            with self._opener.open(request, timeout=timeout) as response:
                response.read(64 * 1024)
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code, f"http_{exc.code}"
        except TimeoutError:
            return None, "timeout"
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError | socket.timeout):
                return None, "timeout"
            if isinstance(reason, ConnectionRefusedError):
                return None, "refused"
            return None, "unreachable"
        if 200 <= status < 300:
            return status, None
        return status, f"http_{status}"


def _public(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return True  # unresolvable now: the attempt itself will fail and retry
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            return False
    return True
