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
import ssl
import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import datetime

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


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Plain HTTP to ``address`` (already checked); ``Host`` stays the URL's."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to ``address`` (already checked); SNI, certificate and ``Host`` are the URL's."""

    def __init__(
        self, host: str, port: int, address: str, timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        try:
            self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)
        except BaseException:
            raw.close()
            raise


class UrllibSender:
    """The ``WebhookSender`` port: one POST, a verdict, never an exception.

    SSRF guard: the host is resolved once; a name that does not resolve, or
    any answer that is not a public address, is refused; the connection goes
    to the address that was checked (no second lookup a rebinding DNS could
    answer differently), while TLS (SNI, certificate check) and ``Host`` use
    the URL's name. No redirects are followed (a 3xx is a failure), and no
    proxy from the environment is used.
    """

    def __init__(self, *, timeout_s: float = 10.0, allow_private: bool = False) -> None:
        self._timeout = timeout_s
        self._allow_private = allow_private
        self._tls = ssl.create_default_context()

    def check_url(self, url: str) -> None:
        """Refuse URLs we must not call (``ValidationFailed`` on field ``url``)."""
        self._target(url, resolve=not self._allow_private)

    def _target(self, url: str, *, resolve: bool = True) -> tuple[str, str, int, str, str]:
        """(scheme, host, port, path, address to connect to) of an admissible URL."""
        parts = urllib.parse.urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            raise ValidationFailed("url has an invalid port", field="url") from None
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValidationFailed("url must be an absolute https URL", field="url")
        if not self._allow_private and parts.scheme != "https":
            raise ValidationFailed("url must use https", field="url")
        host = parts.hostname
        port = port or (443 if parts.scheme == "https" else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if not resolve:
            return parts.scheme, host, port, path, ""
        try:
            addresses = _addresses(host, port)
        except OSError:
            # Unresolvable is not "public": refused, never assumed safe.
            raise ValidationFailed("url's host does not resolve", field="url") from None
        if not self._allow_private and not all(_is_public(a) for a in addresses):
            raise ValidationFailed("url must point at a public address", field="url")
        return parts.scheme, host, port, path, addresses[0]

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
            scheme, host, port, path, address = self._target(url)
        except ValidationFailed:
            return None, "target_not_allowed"
        connection: http.client.HTTPConnection
        if scheme == "https":
            connection = _PinnedHTTPSConnection(host, port, address, timeout, self._tls)
        else:
            connection = _PinnedHTTPConnection(host, port, address, timeout)
        try:
            connection.request(
                "POST",
                path,
                body=body,
                headers={
                    **headers,
                    "Content-Type": "application/json",
                    "User-Agent": USER_AGENT,
                },
            )
            response = connection.getresponse()
            response.read(64 * 1024)
            status = int(response.status)
        except TimeoutError:
            return None, "timeout"
        except ConnectionRefusedError:
            return None, "refused"
        except (http.client.HTTPException, OSError):
            return None, "unreachable"
        finally:
            connection.close()
        if 200 <= status < 300:
            return status, None
        return status, f"http_{status}"


def _addresses(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (one lookup); OSError when none."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found = [str(info[4][0]) for info in infos]
    if not found:
        raise OSError(f"no address for {host}")
    return found


def _is_public(address: str) -> bool:
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return parsed.is_global
