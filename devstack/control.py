"""The local stack's control server, and ``quitclaim local tick`` that talks to it.

``LocalStack.start()`` serves, on 127.0.0.1 and a free port, in a thread:

- ``POST /tick`` ``{"to": "2027-07-01T00:00:00Z"}`` -> the ``TickReport`` as JSON
  (400: bad input; 409: ``to`` is before the clock; 500: the tick failed,
  with the partial report);
- ``GET /emails`` -> what the emulator's SES captured since the stack started;
- ``GET /clock`` -> ``{"now": ...}``.

Its URL and a random token go to ``.quitclaim-local/control.json`` in the
current directory (mode 0600); every request must carry the token, so other
local users cannot move this stack's clock. ``quitclaim local tick`` reads
that file. A file that belongs to another running stack is left alone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from devstack.tick_report import TickError

if TYPE_CHECKING:
    from devstack.stack import LocalStack

log = logging.getLogger(__name__)

CONTROL_DIR = ".quitclaim-local"
CONTROL_FILE = "control.json"
_TOKEN_HEADER = "X-Quitclaim-Control-Token"  # noqa: S105 - a header name, not a secret
_MAX_BODY = 64 * 1024


def control_file(directory: str | Path | None = None) -> Path:
    """Where the control server's URL is written (``<directory>/.quitclaim-local/control.json``)."""
    return Path(directory if directory is not None else Path.cwd()) / CONTROL_DIR / CONTROL_FILE


def parse_time(value: str) -> datetime:
    """An ISO 8601 time; ``Z`` and offsets are honoured, a naive time is UTC."""
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class ControlServer:
    """Serves tick/emails/clock for one stack until stopped."""

    def __init__(
        self, stack: LocalStack, *, host: str = "127.0.0.1", directory: str | Path | None = None
    ) -> None:
        self._stack = stack
        self._host = host
        self._file = control_file(directory)
        self._token = secrets.token_urlsafe(24)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._wrote_file = False

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the control server is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        self._server = ThreadingHTTPServer((self._host, 0), _handler(self._stack, self._token))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="quitclaim-control", daemon=True
        )
        self._thread.start()
        self._write_file()
        return self.url

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._remove_file()
        self._server = None
        self._thread = None

    def _write_file(self) -> None:
        existing = _read(self._file)
        if existing and existing.get("pid") != os.getpid() and _alive(existing.get("pid")):
            log.warning(
                "%s belongs to another running local stack (pid %s); not replacing it",
                self._file,
                existing.get("pid"),
            )
            return
        self._file.parent.mkdir(parents=True, exist_ok=True)
        content = json.dumps(
            {
                "url": self.url,
                "token": self._token,
                "pid": os.getpid(),
                "stack": self._stack.stack_name,
            }
        )
        # Created 0600: the token is what keeps other users from moving this stack's clock.
        descriptor = os.open(self._file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(content)
        self._wrote_file = True

    def _remove_file(self) -> None:
        if not self._wrote_file:
            return
        existing = _read(self._file)
        if existing and existing.get("token") == self._token:
            self._file.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self._file.parent.rmdir()  # only when empty
        self._wrote_file = False


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _handler(stack: LocalStack, token: str) -> type[BaseHTTPRequestHandler]:
    """The request handler class for one stack's control server."""
    return type("ControlHandler", (_ControlHandler,), {"stack": stack, "token": token})


class _ControlHandler(BaseHTTPRequestHandler):
    """The routes: GET /emails and /clock, POST /tick; every one needs the token."""

    stack: LocalStack
    token: str

    def do_GET(self) -> None:
        if not self._authorised():
            return
        if self.path == "/emails":
            self._reply(HTTPStatus.OK, self.stack.sent_emails())
        elif self.path == "/clock":
            self._reply(HTTPStatus.OK, {"now": self.stack.clock.now().isoformat()})
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}"})

    def do_POST(self) -> None:
        if not self._authorised():
            return
        if self.path != "/tick":
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}"})
            return
        self._reply(*self._tick())

    def _tick(self) -> tuple[HTTPStatus, Any]:
        """Tick the stack to the body's ``to``: the report, or why not with its status."""
        try:
            to = self._tick_target()
        except (ValueError, KeyError, TypeError) as exc:
            return HTTPStatus.BAD_REQUEST, {"error": f'expected {{"to": iso}}: {exc}'}
        try:
            report = self.stack.tick(to)
        except TickError as exc:
            return HTTPStatus.INTERNAL_SERVER_ERROR, {
                "error": str(exc),
                "report": exc.report.to_json(),
            }
        except ValueError as exc:
            return HTTPStatus.CONFLICT, {"error": str(exc)}
        except Exception as exc:
            log.exception("tick failed")
            return HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(exc).__name__}"}
        return HTTPStatus.OK, report.to_json()

    def _tick_target(self) -> datetime:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            raise ValueError("body too large")
        body = json.loads(self.rfile.read(length) or b"{}")
        return parse_time(str(body["to"]))

    def _authorised(self) -> bool:
        given = self.headers.get(_TOKEN_HEADER) or ""
        if secrets.compare_digest(given.encode(), self.token.encode()):
            return True
        self._reply(HTTPStatus.FORBIDDEN, {"error": "missing or wrong control token"})
        return False

    def _reply(self, status: HTTPStatus, payload: Any) -> None:
        body = json.dumps(payload, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return  # no request lines on stderr


# ---------------------------------------------------------------- the client side


class ControlError(click.ClickException):
    """The control server could not be reached or refused the request."""


def call(
    method: str,
    path: str,
    payload: Any = None,
    *,
    directory: str | Path | None = None,
    timeout_s: float = 600.0,
) -> Any:
    """One request to the running stack named by the control file; its JSON answer."""
    where = control_file(directory)
    found = _read(where)
    if not found or "url" not in found:
        raise ControlError(
            f"no running local stack: {where} not found (start `quitclaim local up`)"
        )
    url = str(found["url"])
    if not url.startswith("http://127.0.0.1:"):
        raise ControlError(f"{where} does not name a loopback control server: {url}")
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(  # noqa: S310 - loopback http, checked above
        f"{url}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json", _TOKEN_HEADER: str(found.get("token", ""))},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        raise ControlError(f"{method} {path}: {exc.code} {detail}") from exc
    except OSError as exc:
        raise ControlError(f"cannot reach the local stack at {url}: {exc}") from exc


@click.command("tick")
@click.option("--to", "to", required=True, help="ISO time to advance to, e.g. 2027-07-01T00:00:00Z")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="where `quitclaim local up` runs (default: the current directory)",
)
def tick_command(to: str, directory: Path | None) -> None:
    """Advance a running local stack's clock, firing schedules and TTL deletions."""
    try:
        parse_time(to)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--to") from exc
    report = call("POST", "/tick", {"to": to}, directory=directory)
    click.echo(json.dumps(report, indent=2))
