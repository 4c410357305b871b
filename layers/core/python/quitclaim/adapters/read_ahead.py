"""An S3 client that reads ahead what a listing just named, on a bounded thread pool.

Why: verifying a tenant's audit chain (``audit verify``, the conservation
checker) lists every stored version, then GETs them one by one: 20,000
records were 20,000 round trips in a row, ~15 minutes. Each GET waits on the
network, not on the CPU, so a few in flight at once divide the wait.

How: a client wrapper, so the reader's code (and the chain's record format)
stays as it is. Paginating ``list_object_versions`` or ``list_objects_v2``
remembers each listed (key, version) in listing order. A ``get_object`` of a
listed version then starts the GETs of the next ``window`` listed versions on
the pool and answers from the one for itself; any other call, and any GET of
something not listed, goes straight to the client. Bodies are read whole in
the pool (records are small), so at most ``window`` bodies are held at once.
A failed read raises in the caller, at the GET it belongs to, as the plain
client would (the read-ahead never swallows an error).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

_LISTINGS = {"list_object_versions": "Versions", "list_objects_v2": "Contents"}

Listed = tuple[str, str, str | None]  # bucket, key, version id


class ReadAheadS3:
    """A boto3 S3 client whose GETs of just-listed objects run ``workers`` at a time.

    boto3 clients are thread-safe; ``workers`` should not exceed the client's
    connection pool (botocore's default ``max_pool_connections`` is 10).
    """

    def __init__(self, client: Any, *, workers: int = 8, window: int = 256) -> None:
        self._client = client
        self._workers = workers
        self._window = window
        self._lock = threading.Lock()
        self._listed: list[Listed] = []
        self._position: dict[Listed, int] = {}
        self._pending: dict[Listed, Future[dict[str, Any]]] = {}
        self._submitted = 0  # listed items [0, _submitted) have been started (or passed)
        self._pool: ThreadPoolExecutor | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_paginator(self, name: str) -> Any:
        paginator = self._client.get_paginator(name)
        if name not in _LISTINGS:
            return paginator
        return _Remembering(self, paginator, _LISTINGS[name])

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        item: Listed = (kwargs.get("Bucket", ""), kwargs.get("Key", ""), kwargs.get("VersionId"))
        if set(kwargs) - {"Bucket", "Key", "VersionId"}:
            return dict(self._client.get_object(**kwargs))
        with self._lock:
            position = self._position.get(item)
            if position is None:
                future = None
            else:
                self._start(position)
                future = self._pending.pop(item, None)
        if future is None:
            return dict(self._client.get_object(**kwargs))
        return future.result()

    def _forget(self) -> None:
        """A new listing: what the last one named is no longer expected."""
        with self._lock:
            for future in self._pending.values():
                future.cancel()
            self._listed, self._position, self._pending = [], {}, {}
            self._submitted = 0

    def _remember(self, bucket: str, key: str, version_id: str | None) -> None:
        item = (bucket, key, version_id)
        with self._lock:
            if item in self._position:
                return
            self._position[item] = len(self._listed)
            self._listed.append(item)

    def _start(self, position: int) -> None:
        """Start the GETs of the listed items from ``position`` to the window's end (locked)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="s3-read-ahead")
        first = max(position, self._submitted)
        end = min(len(self._listed), position + self._window)
        for index in range(first, end):
            item = self._listed[index]
            if item not in self._pending:
                self._pending[item] = self._pool.submit(self._read, item)
        self._submitted = max(self._submitted, end)

    def _read(self, item: Listed) -> dict[str, Any]:
        bucket, key, version_id = item
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id is not None:
            kwargs["VersionId"] = version_id
        response = dict(self._client.get_object(**kwargs))
        body = response["Body"]
        try:
            response["Body"] = io.BytesIO(body.read())
        finally:
            body.close()
        return response

    def close(self) -> None:
        """Stop the pool (reads in flight finish); the wrapper keeps working, unthreaded."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


class _Remembering:
    """A paginator whose pages tell the read-ahead what they list."""

    def __init__(self, owner: ReadAheadS3, paginator: Any, field: str) -> None:
        self._owner = owner
        self._paginator = paginator
        self._field = field

    def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        bucket = str(kwargs.get("Bucket", ""))
        self._owner._forget()
        for page in self._paginator.paginate(**kwargs):
            for entry in page.get(self._field, []):
                self._owner._remember(bucket, str(entry["Key"]), entry.get("VersionId"))
            yield page
