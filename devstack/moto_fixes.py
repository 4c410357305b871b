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
    _paged_version_listings()
    _items_sized_once()
    _attribute_values_as_they_are()
    _atomic_conditional_puts()


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


# DynamoDB's item limit as moto enforces it (between AWS's measured 409 and 410 KB).
_MOTO_ITEM_LIMIT = 405_000


def _items_sized_once() -> None:
    """Let moto size a written item once, not once per attribute (gap 26).

    moto builds an item's attributes in a ``LimitedSizeDict``, which re-sums
    the size of every attribute already there (nested maps walked to the
    leaves) each time one is added, to enforce the 400 KB limit: quadratic in
    the attributes, a third of a PutItem's time for an asset record. Sizes are
    never negative, so some prefix of the attributes is over the limit exactly
    when all of them are: summing them once raises the same error for the
    same items. Updates of a stored item still go through moto's check.
    """
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize

    original: Any = Item.__init__
    if getattr(original, "_quitclaim_sized_once", False):
        return

    def sized_once(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
        self.hash_key = hash_key
        self.range_key = range_key
        typed = {key: DynamoType(value) for key, value in attrs.items()}
        if sum(bytesize(key) + value.size() for key, value in typed.items()) > _MOTO_ITEM_LIMIT:
            raise ItemSizeTooLarge
        self.attrs = LimitedSizeDict.__new__(LimitedSizeDict)
        dict.update(self.attrs, typed)

    sized_once._quitclaim_sized_once = True  # type: ignore[attr-defined]
    functools.update_wrapper(sized_once, original)
    Item.__init__ = sized_once  # type: ignore[method-assign]


class _Unusual(Exception):
    """An attribute value the direct path leaves to moto's serializer."""


def _attribute_value(value: Any) -> dict[str, Any]:
    """A DynamoDB attribute value as its JSON wire form, when it already is one.

    Strings, numbers, their sets, booleans, nulls, and maps and lists of these
    are written as they are held; anything else (binary, which is base64 on
    the wire, or a value of an unexpected type) raises ``_Unusual``.
    """
    if type(value) is not dict or len(value) != 1:
        raise _Unusual
    ((kind, inner),) = value.items()
    if kind in ("S", "N") and type(inner) is str:
        return {kind: inner}
    if kind in ("SS", "NS") and type(inner) is list and all(type(x) is str for x in inner):
        return {kind: list(inner)}
    if kind in ("NULL", "BOOL") and type(inner) is bool:
        return {kind: inner}
    # (an empty name moto writes in place of its map: left to moto, as it is)
    if kind == "M" and type(inner) is dict and all(type(k) is str and k for k in inner):
        return {"M": {k: _attribute_value(v) for k, v in inner.items()}}
    if kind == "L" and type(inner) is list:
        return {"L": [_attribute_value(v) for v in inner]}
    raise _Unusual


def _attribute_values_as_they_are() -> None:
    """Let moto write DynamoDB attribute values without walking their shape (gap 27).

    moto's JSON serializer writes every attribute value of a response through
    the service model: each of the ten members of each nested value looked up
    under several aliases. A BatchGetItem of 100 asset records took ~0.4 s of
    the emulator's CPU, a consent Query ~14 ms. moto already holds the values
    in their wire form (``dynamo_to_dict``), so the usual ones are copied as
    they are: the same JSON. Binary values and anything unexpected still take
    moto's own path.
    """
    from moto.core.serialize import BaseJSONSerializer

    original: Any = BaseJSONSerializer._serialize_type_structure
    if getattr(original, "_quitclaim_direct", False):
        return

    def structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if shape.name == "AttributeValue" and key:
            try:
                serialized[self.get_serialized_name(shape, key)] = _attribute_value(value)
                return
            except _Unusual:
                pass
        original(self, serialized, value, shape, key)

    structure._quitclaim_direct = True  # type: ignore[attr-defined]
    functools.update_wrapper(structure, original)
    BaseJSONSerializer._serialize_type_structure = structure  # type: ignore[method-assign]


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


_CREATES_LOCK = threading.Lock()


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
        with _CREATES_LOCK:
            if self.backend.get_object(self.bucket_name, self.parse_key_name()) is not None:
                raise PreconditionFailed("If-None-Match")
            return original(self)

    copy_object._quitclaim_conditional = True  # type: ignore[attr-defined]
    functools.update_wrapper(copy_object, original)
    S3Response.copy_object = copy_object  # type: ignore[method-assign]


def _atomic_conditional_puts() -> None:
    """Make PutObject's ``If-None-Match`` check and write one step, as S3's are (gap 29).

    moto looks for the key, then writes it, with nothing held in between: two
    create-only puts racing for one key both pass the look and both write, so
    the key gets two versions where S3 would have refused the second with 412
    (seen when 50 appenders rolled one audit record forward at once). The
    look and the write run under the lock the conditional copies take, so a
    copy and a put creating the same key are ordered too.
    """
    from moto.s3.responses import S3Response

    original: Any = S3Response.put_object
    if getattr(original, "_quitclaim_atomic", False):
        return

    def put_object(self: Any) -> Any:
        if self.headers.get("If-None-Match") is None:
            return original(self)
        with _CREATES_LOCK:
            return original(self)

    put_object._quitclaim_atomic = True  # type: ignore[attr-defined]
    functools.update_wrapper(put_object, original)
    S3Response.put_object = put_object  # type: ignore[method-assign]


class _ListedKeys:
    """The keys (with their versions) a page of ListObjectVersions can reach, sorted."""

    def __init__(self, keys: Any, names: list[str]) -> None:
        self._keys = keys
        self._names = names

    def iterlists(self) -> Iterator[tuple[str, list[Any]]]:
        for name in self._names:
            yield name, [_listed(version) for version in self._keys.getlist(name, [])]


_LISTED_CLASSES: dict[type, type] = {}


def _listed_class(base: type) -> type:
    """``base`` whose copy for a listing is itself, and whose end frees nothing it shares."""

    def deepcopy(self: Any, memo: Any) -> Any:
        return self

    def forget(self: Any) -> None:
        return None  # the bytes belong to the stored version

    if base not in _LISTED_CLASSES:
        methods = {"__deepcopy__": deepcopy, "__del__": forget}
        _LISTED_CLASSES[base] = type(f"Listed{base.__name__}", (base,), methods)
    return _LISTED_CLASSES[base]


def _listed(version: Any) -> Any:
    """A version as a listing sees it: its fields, not a copy of its bytes.

    moto deep-copies each listed version (a new buffer, the bytes written
    again) only to mark it latest or not without touching the stored one; a
    shallow copy of its fields does as much.
    """
    listed: Any = object.__new__(_listed_class(type(version)))
    listed.__dict__.update(version.__dict__)
    return listed


class _PageBucket:
    def __init__(self, bucket: Any, keys: _ListedKeys) -> None:
        self._bucket = bucket
        self.keys = keys

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bucket, name)


class _PageBackend:
    """The backend as one page of a listing sees it: only the keys that page can reach."""

    def __init__(self, backend: Any, bucket: _PageBucket) -> None:
        self._backend = backend
        self._bucket = bucket

    def get_bucket(self, bucket_name: str) -> _PageBucket:
        return self._bucket

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


def _reachable(
    keys: Any, prefix: str, key_marker: str | None, delimiter: str | None, max_keys: int | None
) -> list[str]:
    """The key names one page starting at ``key_marker`` can list, in key order.

    Names under the prefix form one contiguous range of the key order, and a
    page starts at its marker, so every other name is skipped by moto anyway.
    Without a delimiter a page holds ``max_keys`` versions: the names up to
    one version past that (plus the marker's own, skipped) are enough.
    """
    names = sorted(
        n for n in list(keys) if n.startswith(prefix) and (key_marker is None or n >= key_marker)
    )
    if delimiter or max_keys is None:
        return names
    wanted = max_keys + 1 + (len(keys.getlist(names[0], [])) if names else 0)
    reached = 0
    for index, name in enumerate(names):
        reached += len(keys.getlist(name, []))
        if reached >= wanted:
            return names[: index + 1]
    return names


def _paged_version_listings() -> None:
    """Let a page of ListObjectVersions cost what the page holds, not the whole bucket.

    moto deep-copies every version of every key in the bucket (the bytes
    too), sorts them all, then walks to the page's marker: each page of
    1,000 costs O(bucket), and listing an audit chain of 20,000 records
    took 20 times 20,000 deep copies (gap 25 in ``devstack/gaps.py``). S3
    pages by key. The listing is moto's own, run on a view of the bucket
    holding only the keys the page can reach (under the prefix, from the
    marker on, about ``max_keys`` versions), each version a shallow copy
    (``_listed``), so its answers are the same.
    """
    from moto.s3.models import S3Backend

    original: Any = S3Backend.list_object_versions
    if getattr(original, "_quitclaim_paged", False):
        return

    def list_object_versions(
        self: Any,
        bucket_name: str,
        delimiter: str | None = None,
        key_marker: str | None = None,
        max_keys: int | None = 1000,
        prefix: str = "",
        version_id_marker: str | None = None,
    ) -> Any:
        bucket = self.get_bucket(bucket_name)
        names = _reachable(bucket.keys, prefix or "", key_marker, delimiter, max_keys)
        view = _PageBackend(self, _PageBucket(bucket, _ListedKeys(bucket.keys, names)))
        return original(
            view,
            bucket_name,
            delimiter=delimiter,
            key_marker=key_marker,
            max_keys=max_keys,
            prefix=prefix,
            version_id_marker=version_id_marker,
        )

    list_object_versions._quitclaim_paged = True  # type: ignore[attr-defined]
    functools.update_wrapper(list_object_versions, original)
    S3Backend.list_object_versions = list_object_versions  # type: ignore[method-assign]
