"""moto's server with HTTP/1.1 keep-alive: one TCP connection per boto3 pool slot.

Werkzeug's dev server (under moto's ``ThreadedMotoServer``) answers every
request with ``Connection: close``, so each boto3 call opened a new TCP
connection and a new server thread: about a third of a call's CPU on this
stack. Keeping connections open needs three things werkzeug does not do:

- frame every response (Content-Length or chunked) and never write a body
  for HEAD, 1xx, 204 or 304, so the next response starts where the client
  expects it;
- consume each request's body before the next request line is read
  (werkzeug's drain reads "whatever is readable" after the response, which on
  a kept connection is the client's *next* request);
- TCP_NODELAY: status/headers and body go out in separate writes, and Nagle's
  algorithm holding the body back until the client's delayed ACK cost ~40 ms
  per response with a body.

Anything that cannot be framed or drained safely closes the connection,
announced with ``Connection: close`` when the headers are still unsent.
``run_wsgi`` follows werkzeug 3.1's, with those changes.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.exceptions import InternalServerError
from werkzeug.serving import DechunkedInput, make_server
from werkzeug.wsgi import LimitedStream

# A request body left partly unread (an early error) is read off the socket
# up to this size so the connection can serve the next request; beyond it the
# connection is closed instead.
MAX_DRAIN_BYTES = 1_000_000
# An idle kept connection (botocore pools them) gives its thread back after this.
IDLE_TIMEOUT_S = 120.0
_NO_BODY_STATUSES = frozenset({204, 304})


class KeepAliveRequestHandler(MotoRequestHandler):
    """moto's request handler, speaking HTTP/1.1 with persistent connections."""

    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S
    _body: Any = None

    def setup(self) -> None:
        # Headers and body are separate sends: without this, Nagle + delayed ACK ~40 ms.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()
        _connections(self.server).add(self.request)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            _connections(self.server).discard(self.request)

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        wsgi_input = environ["wsgi.input"]
        if isinstance(wsgi_input, DechunkedInput):
            self._body = wsgi_input
        else:
            # Never let a read run past this request's body into the next request.
            self._body = LimitedStream(wsgi_input, _content_length(environ))
            environ["wsgi.input"] = self._body
        return environ

    def body_consumed(self) -> bool:
        """Whether this request's body is off the socket (reading a small rest now)."""
        body = self._body
        if isinstance(body, DechunkedInput):
            return bool(getattr(body, "_done", False))
        if body is None:
            return False
        if body.limit - body._pos > MAX_DRAIN_BYTES:
            return False
        try:
            body.exhaust()
        except Exception:  # the client went away mid-body: this connection is done
            return False
        return True

    def log_error(self, format: str, *args: Any) -> None:
        # An idle kept connection timing out is routine, not an error.
        if not format.startswith("Request timed out"):
            super().log_error(format, *args)

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.environ = environ = self.make_environ()
        response = _Response(self, environ)
        try:
            response.execute(self.server.app)
        except (ConnectionError, TimeoutError) as exc:
            self.close_connection = True
            self.connection_dropped(exc, environ)
        except Exception as exc:
            self.close_connection = True
            if self.server.passthrough_errors:
                raise
            _answer_error(response, exc, self)
        if not response.complete():
            self.close_connection = True


class _Response:
    """One response on a kept connection: framed, and closing when it cannot be."""

    def __init__(self, handler: KeepAliveRequestHandler, environ: dict[str, Any]) -> None:
        self.handler = handler
        self.environ = environ
        self.status: str | None = None
        self.headers: list[tuple[str, str]] | None = None
        self.status_sent: str | None = None
        self.chunked = False
        self.bodyless = False
        self.declared: int | None = None
        self.written = 0

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info:
            try:
                if self.status_sent is not None:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.headers:
            raise AssertionError("Headers already set")
        self.status, self.headers = status, headers
        return self.write

    def send_head(self) -> None:
        assert self.status is not None and self.headers is not None, "write() before start_response"
        handler = self.handler
        self.status_sent = self.status
        code_str, _, message = self.status.partition(" ")
        code = int(code_str)
        handler.send_response(code, message)
        names = set()
        for name, value in self.headers:
            handler.send_header(name, value)
            names.add(name.lower())
            if name.lower() == "content-length":
                self.declared = int(value)
        self.bodyless = (
            self.environ["REQUEST_METHOD"] == "HEAD"
            or 100 <= code < 200
            or code in _NO_BODY_STATUSES
        )
        if not self.bodyless and "content-length" not in names:
            self.chunked = True
            handler.send_header("Transfer-Encoding", "chunked")
        if handler.close_connection or not handler.body_consumed():
            # send_header sets close_connection too.
            handler.send_header("Connection", "close")
        handler.end_headers()

    def write(self, data: bytes) -> None:
        if self.status_sent is None:
            self.send_head()
        assert isinstance(data, bytes), "applications must write bytes"
        wfile = self.handler.wfile
        if data and not self.bodyless:
            self.written += len(data)
            if self.chunked:
                data = b"%x\r\n%s\r\n" % (len(data), data)
            wfile.write(data)
        wfile.flush()

    def execute(self, app: Callable[..., Iterable[bytes]]) -> None:
        application_iter = app(self.environ, self.start_response)
        try:
            for data in application_iter:
                self.write(data)
            if self.status_sent is None:
                self.write(b"")
            if self.chunked:
                self.handler.wfile.write(b"0\r\n\r\n")
        finally:
            close = getattr(application_iter, "close", None)
            if close is not None:
                close()

    def reset(self) -> None:
        self.status = self.headers = None

    def complete(self) -> bool:
        """Whether the response went out whole and as framed."""
        if self.status_sent is None:
            return False
        return self.bodyless or self.chunked or self.declared == self.written


def _answer_error(response: _Response, exc: Exception, handler: KeepAliveRequestHandler) -> None:
    # As werkzeug: a 500 if nothing was sent yet, and the traceback in the log.
    try:
        if response.status_sent is None:
            response.reset()
            response.execute(InternalServerError())
    except Exception:  # noqa: S110  # the client is gone or the response half sent: just close
        pass
    from werkzeug.debug.tbtools import DebugTraceback

    handler.server.log("error", f"Error on request:\n{DebugTraceback(exc).render_traceback_text()}")


def _content_length(environ: dict[str, Any]) -> int:
    try:
        return max(0, int(environ.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


_REGISTRY_LOCK = threading.Lock()


def _connections(server: Any) -> set[socket.socket]:
    with _REGISTRY_LOCK:
        if not hasattr(server, "kept_connections"):
            server.kept_connections = set()
        connections: set[socket.socket] = server.kept_connections
        return connections


class KeepAliveMotoServer(ThreadedMotoServer):
    """``ThreadedMotoServer`` with ``KeepAliveRequestHandler``; stop also ends kept connections."""

    def _server_entry(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=KeepAliveRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()

    def stop(self) -> None:
        super().stop()
        if self._server is None:
            return
        # Idle kept connections would otherwise hold their threads (and serve
        # the next request of a cached client) after the server stopped.
        for connection in list(_connections(self._server)):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
