"""The emulator keeps HTTP connections open and frames every response (devstack/keepalive.py).

One raw HTTP/1.1 connection (``http.client``, which refuses a response it
cannot frame) carries a sequence of S3 requests: a stray body after a HEAD,
204 or 304, or an unread request body, would corrupt the next response.
"""

from __future__ import annotations

import http.client
import threading
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from werkzeug.serving import make_server

from devstack.emulator import Emulator, fake_session
from devstack.keepalive import KeepAliveRequestHandler

pytestmark = pytest.mark.integration


@pytest.fixture
def bucket() -> Iterator[tuple[Any, http.client.HTTPConnection, str]]:
    with Emulator() as emulator:
        s3 = emulator.client("s3", "us-east-1")
        name = f"ka-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(Bucket=name)
        url = urlsplit(emulator.endpoint_url)
        connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
        try:
            yield s3, connection, name
        finally:
            connection.close()
            for item in s3.list_objects_v2(Bucket=name).get("Contents", []):
                s3.delete_object(Bucket=name, Key=item["Key"])
            s3.delete_bucket(Bucket=name)


def _ask(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> tuple[http.client.HTTPResponse, bytes]:
    # Signed as boto3 would (fake credentials): the emulator checks S3 requests.
    host = f"{connection.host}:{connection.port}"
    signed = AWSRequest(method, f"http://{host}{path}", headers={**(headers or {})})
    signed.headers["X-Amz-Content-SHA256"] = "UNSIGNED-PAYLOAD"
    SigV4Auth(fake_session("us-east-1").get_credentials(), "s3", "us-east-1").add_auth(signed)
    connection.request(method, path, body=body, headers=dict(signed.headers.items()), **kwargs)
    response = connection.getresponse()
    return response, response.read()


def test_one_connection_carries_puts_heads_gets_304s_204s_and_errors(bucket: Any) -> None:
    # Given one HTTP/1.1 connection to the emulator
    s3, connection, name = bucket
    body = b"x" * 5000
    # When a PUT (with Expect: 100-continue, as botocore sends), HEAD, GET,
    # conditional GET, DELETE and a failing GET go over it in turn
    put, _ = _ask(connection, "PUT", f"/{name}/k", body, {"Expect": "100-continue"})
    sock = connection.sock
    head, head_body = _ask(connection, "HEAD", f"/{name}/k")
    get, got = _ask(connection, "GET", f"/{name}/k")
    etag = get.getheader("ETag") or ""
    unchanged, unchanged_body = _ask(connection, "GET", f"/{name}/k", None, {"If-None-Match": etag})
    deleted, deleted_body = _ask(connection, "DELETE", f"/{name}/k")
    missing, missing_body = _ask(connection, "GET", f"/{name}/k")
    # Then each answer is whole and framed, and the connection stayed open throughout
    assert put.status == 200
    assert (head.status, head.getheader("Content-Length"), head_body) == (200, "5000", b"")
    assert (get.status, got) == (200, body)
    assert (unchanged.status, unchanged_body) == (304, b"")
    assert (deleted.status, deleted_body) == (204, b"")
    assert missing.status == 404 and b"NoSuchKey" in missing_body
    responses = (put, head, get, unchanged, deleted, missing)
    assert not any(r.will_close for r in responses)
    assert connection.sock is sock
    # And boto3 still sees the same state
    assert s3.list_objects_v2(Bucket=name).get("KeyCount") == 0


def test_a_request_body_the_server_never_reads_does_not_leak_into_the_next_request(
    bucket: Any,
) -> None:
    # Given an object, and a GET carrying a body the emulator ignores
    s3, connection, name = bucket
    s3.put_object(Bucket=name, Key="k", Body=b"hello")
    junk = b"GET /not-a-request HTTP/1.1\r\n\r\n" * 40
    # When that GET and then a HEAD go over one connection
    first, first_body = _ask(connection, "GET", f"/{name}/k", junk)
    second, _ = _ask(connection, "HEAD", f"/{name}/k")
    # Then both are answered as themselves
    assert (first.status, first_body) == (200, b"hello")
    assert (second.status, second.getheader("Content-Length")) == (200, "5")
    assert not second.will_close


def test_a_chunked_upload_is_read_whole_and_the_connection_kept(bucket: Any) -> None:
    # Given a body sent with Transfer-Encoding: chunked
    _, connection, name = bucket
    parts = [b"a" * 3000, b"b" * 10, b"c" * 700]
    # When it is PUT, then read back over the same connection
    put, _ = _ask(connection, "PUT", f"/{name}/c", iter(parts), encode_chunked=True)
    get, got = _ask(connection, "GET", f"/{name}/c")
    # Then the object is the whole body
    assert put.status == 200
    assert got == b"".join(parts)
    assert not get.will_close


def test_a_client_asking_to_close_is_told_so(bucket: Any) -> None:
    # Given a request saying Connection: close
    _, connection, name = bucket
    # When it is answered
    response, _ = _ask(connection, "HEAD", f"/{name}", None, {"Connection": "close"})
    # Then the answer says the connection closes
    assert response.status == 200
    assert response.getheader("Connection") == "close"
    assert response.will_close


def _serve(app: Any) -> Any:
    """A bare server with the emulator's request handler (no moto) around ``app``."""
    server = make_server(
        "127.0.0.1", 0, app, threaded=True, request_handler=KeepAliveRequestHandler
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_streamed_response_goes_chunked_and_an_app_error_closes_the_connection() -> None:
    # Given an app that streams a body of unknown length, or fails before answering
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        if environ["PATH_INFO"] == "/fail":
            raise RuntimeError("boom")
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield from (b"one,", b"two,", b"three")

    server = _serve(app)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        # When the stream is asked for twice, then the failing path
        responses = []
        for path in ("/stream", "/stream", "/fail"):
            connection.request("GET", path)
            response = connection.getresponse()
            responses.append((response, response.read()))
    finally:
        connection.close()
        server.shutdown()
        server.server_close()
    # Then the streams arrive whole, chunked, on one kept connection
    (first, first_body), (second, second_body), (failed, _) = responses
    assert first.getheader("Transfer-Encoding") == "chunked"
    assert first_body == second_body == b"one,two,three"
    assert not first.will_close and not second.will_close
    # And the error is a 500 that closes the connection
    assert failed.status == 500
    assert failed.will_close
