"""The outbound webhook sender's SSRF guard: resolve once, refuse what fails, pin what passed.

Name resolution is replaced per test (``socket.getaddrinfo``), and so is the
connection (``socket.create_connection``): no packet leaves the machine.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import pytest

from quitclaim.adapters.webhook_http import UrllibSender
from quitclaim.domain.errors import ValidationFailed

PUBLIC = "93.184.215.14"
URL = "https://hooks.example.org/quitclaim?x=1"


def _info(address: str, port: Any = 0) -> list[Any]:
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 0)))]


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """What DNS answers, one entry per lookup (the last one repeats)."""
    queue: list[Any] = []
    asked: list[str] = []

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> list[Any]:
        try:
            literal = str(ipaddress.ip_address(host))  # a literal: no DNS, as in libc
            return _info(literal, args[0] if args else kwargs.get("port"))
        except ValueError:
            pass
        asked.append(host)
        answer = queue[0] if len(queue) == 1 else queue.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return _info(answer)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield queue


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Where the sender connects (refused: nothing listens)."""
    seen: list[Any] = []

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(tuple(address))
        raise ConnectionRefusedError("nothing listens here")

    monkeypatch.setattr(socket, "create_connection", create_connection)
    return seen


def test_a_host_that_does_not_resolve_is_refused(answers: list[Any], connects: list[Any]) -> None:
    # Given DNS cannot resolve the endpoint's host
    answers.append(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    sender = UrllibSender()
    # Then registering it is refused, and so is a delivery, without connecting
    with pytest.raises(ValidationFailed) as err:
        sender.check_url(URL)
    assert err.value.field == "url"
    assert sender.post(URL, {}, b"{}") == (None, "target_not_allowed")
    assert connects == []


def test_the_delivery_connects_to_the_address_that_was_checked(
    answers: list[Any], connects: list[Any]
) -> None:
    # Given DNS answers a public address first and a loopback one after (rebinding)
    answers.extend([PUBLIC, "127.0.0.1"])
    # When a delivery is attempted
    status = UrllibSender().post(URL, {}, b"{}")
    # Then the connection goes to the checked public address, never re-resolved
    assert connects == [(PUBLIC, 443)]
    assert status == (None, "refused")


def test_a_private_answer_is_refused_without_connecting(
    answers: list[Any], connects: list[Any]
) -> None:
    answers.extend(["10.0.0.7"])
    assert UrllibSender().post(URL, {}, b"{}") == (None, "target_not_allowed")
    assert connects == []


def test_the_pinned_connection_keeps_the_host_name_for_tls(
    answers: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the checked address accepts the connection
    answers.append(PUBLIC)
    ours, theirs = socket.socketpair()
    reached: list[Any] = []
    named: list[str | None] = []

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        reached.append(tuple(address))
        return ours

    def wrap_socket(self: ssl.SSLContext, sock: Any, *args: Any, **kwargs: Any) -> Any:
        named.append(kwargs.get("server_hostname"))
        raise ssl.SSLError("handshake stopped by the test")

    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(ssl.SSLContext, "wrap_socket", wrap_socket)
    try:
        # When a delivery is attempted
        status = UrllibSender().post(URL, {}, b"{}")
    finally:
        ours.close()
        theirs.close()
    # Then TCP goes to the checked address and TLS (SNI, certificate) to the name
    assert reached == [(PUBLIC, 443)]
    assert named == ["hooks.example.org"]
    assert status == (None, "unreachable")


def test_a_pinned_plain_delivery_still_names_its_host(answers: list[Any]) -> None:
    # Given a receiver on loopback (the local stack allows private targets),
    # whose name resolves once and then no more
    import http.server
    import threading

    seen: list[tuple[str | None, bytes]] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            seen.append((self.headers["Host"], self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    port = server.server_address[1]
    answers.extend(["127.0.0.1", socket.gaierror(socket.EAI_NONAME, "gone")])
    thread = threading.Thread(target=server.handle_request)
    thread.start()
    try:
        # When a delivery is made
        status = UrllibSender(allow_private=True).post(
            f"http://receiver.test:{port}/in", {"webhook-id": "m1"}, b'{"a":1}'
        )
    finally:
        thread.join(5)
        server.server_close()
    # Then it arrived, addressed to the name, over the one resolution
    assert status == (204, None)
    assert seen == [(f"receiver.test:{port}", b'{"a":1}')]
