"""The AWS emulator: moto's server, in this process, on 127.0.0.1.

Everything talks to it over real HTTP, exactly as the functions talk to AWS.
moto keeps its state in process-global backends, so there is one server per
process: every ``Emulator`` started while it runs is a handle on it
(reference counted). The first start begins from an empty account; the last
stop wipes the state and shuts the server down. Stacks sharing it stay apart
by stack name (see ``LocalStack``).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import urllib.request
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.configprovider import ConstantProvider

from devstack import moto_fixes
from devstack.account import ACCOUNT_ID, FAKE_CREDENTIALS

# The one retry policy: the legacy default does not retry S3 SlowDown.
BOTO_CONFIG = Config(retries={"mode": "standard"})


class EmulatorError(RuntimeError):
    """The emulator could not be started, reached or reset."""


@dataclass
class _Server:
    server: Any  # devstack.keepalive.KeepAliveMotoServer
    host: str
    port: int
    users: int = 0

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"


_LOCK = threading.Lock()
_shared: _Server | None = None


class Emulator:
    """A handle on the process's moto server (``port=0``: any free loopback port)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._endpoint_url: str | None = None
        # Building a boto3 client costs ~50 ms (model loading); reuse them.
        self._clients: dict[tuple[str, str], Any] = {}

    @property
    def endpoint_url(self) -> str:
        if self._endpoint_url is None:
            raise EmulatorError("the emulator is not running")
        return self._endpoint_url

    @property
    def running(self) -> bool:
        return self._endpoint_url is not None

    @property
    def shared(self) -> bool:
        """Whether other handles in this process use the same server right now."""
        with _LOCK:
            return self.running and _shared is not None and _shared.users > 1

    def start(self) -> str:
        """Start (or join) the server; return the endpoint URL."""
        global _shared
        if self.running:
            return self.endpoint_url
        with _LOCK:
            if _shared is None:
                _shared = _start_server(self._host, self._port)
            elif self._port not in (0, _shared.port) or self._host != _shared.host:
                raise EmulatorError(
                    f"this process's emulator already runs at {_shared.endpoint_url}; "
                    f"cannot also serve {self._host}:{self._port} (moto's state is global)"
                )
            _shared.users += 1
            self._endpoint_url = _shared.endpoint_url
        return self._endpoint_url

    def stop(self) -> None:
        """Release the server; the last handle wipes its state and stops it (idempotent)."""
        global _shared
        if not self.running:
            return
        with _LOCK:
            self._endpoint_url = None
            self._clients.clear()
            if _shared is None:
                return
            _shared.users -= 1
            if _shared.users > 0:
                return
            server, _shared = _shared, None
        try:
            _reset(server.endpoint_url)
        except EmulatorError:
            pass  # shutting down anyway; the next first start resets again
        finally:
            server.server.stop()

    def client(self, service: str, region: str) -> Any:
        """A (shared) boto3 client for this emulator: fake credentials, standard retries.

        The session gets its credentials explicitly, so nothing from the
        caller's environment or ~/.aws (profiles, session tokens) is used.
        """
        key = (service, region)
        if key not in self._clients:
            create: Any = fake_session(region).client
            self._clients[key] = create(service, endpoint_url=self.endpoint_url, config=BOTO_CONFIG)
        return self._clients[key]

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _start_server(host: str, port: int) -> _Server:
    # Imported here: moto is a local-only dependency, never in a Lambda layer.
    from devstack.keepalive import KeepAliveMotoServer

    _quiet_request_log()
    moto_fixes.apply()
    # Keep-alive: a new TCP connection (and server thread) per call cost ~1/3 of its CPU.
    server = KeepAliveMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    bound_host, bound_port = server.get_host_and_port()
    started = _Server(server=server, host=bound_host, port=bound_port)
    try:
        # moto's backends are process-global: whatever an earlier server or a
        # mock_aws left behind must not leak into this one.
        _reset(started.endpoint_url)
    except Exception:
        server.stop()
        raise
    return started


def _reset(endpoint_url: str) -> None:
    """Forget every emulated resource (moto's ``/moto-api/reset``)."""
    # Our own loopback server (http, built above), never user input.
    url = f"{endpoint_url}/moto-api/reset"
    request = urllib.request.Request(url, data=b"", method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            response.read()
    except OSError as exc:
        raise EmulatorError(f"cannot reset the emulator: {exc}") from exc


@functools.cache
def fake_session(region: str) -> boto3.session.Session:
    """A boto3 session with the fake credentials, blind to the caller's AWS configuration.

    No profile, config or credentials file is read, so a developer's
    AWS_PROFILE (even a missing one) or ~/.aws settings change nothing.
    Cached: a session caches the service models, which makes each further
    client cheap (the local stack creates many, and tests create many stacks).
    """
    core = botocore.session.Session()
    # Replace the providers (env var, then default) of these settings outright:
    # an instance variable of None would fall back to AWS_PROFILE.
    store = core.get_component("config_store")
    store.set_config_provider("profile", ConstantProvider(None))
    store.set_config_provider("config_file", ConstantProvider(os.devnull))
    store.set_config_provider("credentials_file", ConstantProvider(os.devnull))
    return boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=FAKE_CREDENTIALS["aws_secret_access_key"],
        aws_session_token=FAKE_CREDENTIALS["aws_session_token"],
        region_name=region,
        botocore_session=core,
    )


def _quiet_request_log() -> None:
    # werkzeug logs every request at INFO; leave it alone if someone configured it.
    log = logging.getLogger("werkzeug")
    if log.level == logging.NOTSET:
        log.setLevel(logging.WARNING)


def sent_email_count(region: str, account_id: str = ACCOUNT_ID) -> int:
    """How many e-mails the emulator's SES has captured in ``region`` so far."""
    from moto.ses.models import ses_backends

    return len(ses_backends[account_id][region].sent_messages)


def sent_emails(region: str, account_id: str = ACCOUNT_ID, start: int = 0) -> list[dict[str, Any]]:
    """What the emulator's SES (v1 and v2 share it) captured, from the ``start``-th on.

    Read from moto's backend in this process. Each e-mail is a dict with
    ``message_id``, ``source``, ``to``/``cc``/``bcc``, ``subject``, ``text``,
    ``html`` (None where the e-mail had no such body) and, for templated
    sends, ``template`` and ``template_data``.
    """
    from moto.ses.models import ses_backends

    return [_email(m) for m in list(ses_backends[account_id][region].sent_messages)[start:]]


def _email(message: Any) -> dict[str, Any]:
    destinations = getattr(message, "destinations", None) or {}
    result: dict[str, Any] = {
        "message_id": getattr(message, "id", None),
        "source": getattr(message, "source", None),
        "to": [],
        "cc": [],
        "bcc": [],
        "subject": getattr(message, "subject", None),
        "text": None,
        "html": None,
    }
    if isinstance(destinations, dict):
        result["to"] = list(destinations.get("ToAddresses", []))
        result["cc"] = list(destinations.get("CcAddresses", []))
        result["bcc"] = list(destinations.get("BccAddresses", []))
    else:
        result["to"] = list(destinations)
    raw = getattr(message, "raw_data", None)
    if raw is not None:
        result.update(_mime(raw))
    elif hasattr(message, "template"):
        result["template"] = message.template
        result["template_data"] = message.template_data
    else:
        # Both bodies where ses_gaps.capture_email_bodies kept them; else moto's one body.
        bodies = getattr(message, "quitclaim_bodies", None)
        if bodies is None:
            body = getattr(message, "body", None)
            looks_html = isinstance(body, str) and body.lstrip().startswith("<")
            bodies = {"html": body} if looks_html else {"text": body}
        result["text"] = bodies.get("text")
        result["html"] = bodies.get("html")
    return result


def _mime(raw: str) -> dict[str, Any]:
    import email
    from email import policy

    parsed = email.message_from_string(raw, policy=policy.default)
    found: dict[str, Any] = {"subject": parsed.get("Subject"), "text": None, "html": None}
    for kind in ("plain", "html"):
        part = parsed.get_body(preferencelist=(kind,))
        if part is not None:
            found["text" if kind == "plain" else "html"] = part.get_content()
    return found
