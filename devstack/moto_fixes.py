"""Fixes to moto's backends, applied in this process before its server starts.

Each makes the emulator behave as AWS does where moto does not, or cost what
AWS costs where moto's cost grows with the data; each is one of the gaps
listed in ``devstack/gaps.py``. ``apply`` is idempotent: a second emulator in
the same process finds every fix in place.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from devstack import marketplace, moto_transactions

_WRITES_LOCK = threading.RLock()
_DYNAMODB_WRITES = (
    "put_item",
    "update_item",
    "delete_item",
    "batch_write_item",
    "transact_write_items",
)


def apply() -> None:
    """Every fix, in the order they depend on (transactions before the writes' lock)."""
    moto_transactions.install()
    _serialise_dynamodb_writes()
    # Gap 19: moto keeps no accepted Marketplace record and subscribes nobody.
    marketplace.complete_marketplace_metering()
    _list_moto_modules_once()
    _lazy_queue_attributes()
    _conditional_copies()


def _serialise_dynamodb_writes() -> None:
    """Make moto's DynamoDB writes atomic against each other, as DynamoDB's are.

    moto serves each request on its own thread and checks a condition, then
    writes, with nothing in between held: two conditional writes racing for
    one item can both pass (seen with the audit chain's head, which then
    forked silently). DynamoDB evaluates a condition and applies the write
    atomically, and transactions are serialisable; one process-wide lock
    around moto's write operations gives the emulator the same guarantee.
    (A gap of the emulator, listed with the others in ``devstack/gaps.py``.)
    """
    from moto.dynamodb.models import DynamoDBBackend

    for name in _DYNAMODB_WRITES:
        original = getattr(DynamoDBBackend, name)
        if getattr(original, "_quitclaim_serialised", False):
            continue

        def serialised(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with _WRITES_LOCK:
                return __original(self, *args, **kwargs)

        serialised._quitclaim_serialised = True  # type: ignore[attr-defined]
        functools.update_wrapper(serialised, original)
        setattr(DynamoDBBackend, name, serialised)


def _list_moto_modules_once() -> None:
    """Let moto's server list its own service folders once, not on every request.

    To route a request, moto's dispatcher asks whether the host names one of
    its service modules, and answers by listing and stat-ing its package
    directory (~120 system calls) per request: about a fifth of the server's
    time per call. The folders do not change while the process runs.
    """
    from moto import backends

    if getattr(backends.list_of_moto_modules, "_quitclaim_cached", False):
        return
    listed = tuple(backends.list_of_moto_modules())

    def cached() -> tuple[str, ...]:
        return listed

    cached._quitclaim_cached = True  # type: ignore[attr-defined]
    backends.list_of_moto_modules = cached


class _LazyQueueAttributes(Mapping[str, Any]):
    """A queue's attributes with moto's keys and values, each computed when read."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        names = list(queue.BASE_ATTRIBUTES)
        if queue.fifo_queue:
            names += queue.FIFO_ATTRIBUTES
        if queue.kms_master_key_id:
            names += queue.KMS_ATTRIBUTES
        self._names = list(dict.fromkeys(names))

    def __getitem__(self, name: str) -> Any:
        from moto.core.utils import camelcase_to_underscores

        if name not in self._names:
            raise KeyError(name)
        queue = self._queue
        if name == "Policy" and queue.policy:
            value = queue.policy
        elif name == "RedrivePolicy" and queue.redrive_policy:
            value = json.dumps(queue.redrive_policy)
        else:
            value = getattr(queue, camelcase_to_underscores(name))
        return str(value).lower() if isinstance(value, bool) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _lazy_queue_attributes() -> None:
    """Let moto compute a queue attribute when it is read, not all of them on every send.

    moto's SendMessage reads one attribute (``ContentBasedDeduplication``)
    through ``Queue.attributes``, which computes every attribute, among them
    three message counts that walk the whole queue: a send costs O(queue
    length). An outbox nobody drains (the recheck of 1,000 assets sends 1,000
    events) then spent most of the server's time counting (61 ms a send at
    1,000 messages against ~12 ms a HEAD). SQS's send is O(1). The mapping
    has the same keys and values as moto's dict, each computed on access
    (gap 20 in ``devstack/gaps.py``).
    """
    from moto.sqs.models import Queue

    current: Any = Queue.__dict__["attributes"]
    if getattr(current.fget, "_quitclaim_lazy", False):
        return

    def attributes(self: Any) -> Mapping[str, Any]:
        return _LazyQueueAttributes(self)

    attributes._quitclaim_lazy = True  # type: ignore[attr-defined]
    Queue.attributes = property(attributes)  # type: ignore[assignment,method-assign]


_COPIES_LOCK = threading.Lock()


def _conditional_copies() -> None:
    """Let CopyObject honour ``If-None-Match: *`` on its destination, as S3 does.

    S3 copies only if the destination key has no current object, else
    answers 412 PreconditionFailed (gap 24 in ``devstack/gaps.py``); moto
    ignores the header and copies anyway, which would let a second copy of a
    retried move land as a second version unnoticed. The check and the copy
    run under one lock, as S3's are atomic.
    """
    from moto.s3.exceptions import PreconditionFailed
    from moto.s3.responses import S3Response

    original: Any = S3Response.copy_object
    if getattr(original, "_quitclaim_conditional", False):
        return

    def copy_object(self: Any) -> Any:
        if self.headers.get("If-None-Match") != "*":
            return original(self)
        with _COPIES_LOCK:
            if self.backend.get_object(self.bucket_name, self.parse_key_name()) is not None:
                raise PreconditionFailed("If-None-Match")
            return original(self)

    copy_object._quitclaim_conditional = True  # type: ignore[attr-defined]
    functools.update_wrapper(copy_object, original)
    S3Response.copy_object = copy_object  # type: ignore[method-assign]
