"""The AWS emulator: moto's server, in this process, on 127.0.0.1.

Everything talks to it over real HTTP, exactly as the functions talk to AWS.
moto keeps its state in process-global backends, so there is one server per
process: every ``Emulator`` started while it runs is a handle on it
(reference counted). The first start begins from an empty account; the last
stop wipes the state and shuts the server down. Stacks sharing it stay apart
by stack name (see ``LocalStack``).
"""

from __future__ import annotations

import copy
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

# moto's default account; ARNs and the template's ${AWS::AccountId} use it.
ACCOUNT_ID = "123456789012"

# Credentials the emulator accepts and AWS rejects: if code ever misses the
# endpoint and reaches AWS, it fails to authenticate instead of using a
# developer's real identity.
FAKE_CREDENTIALS: dict[str, str] = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "aws_session_token": "testing",
}

# The one retry policy: the legacy default does not retry S3 SlowDown.
BOTO_CONFIG = Config(retries={"mode": "standard"})


class EmulatorError(RuntimeError):
    """The emulator could not be started, reached or reset."""


@dataclass
class _Server:
    server: Any  # moto.server.ThreadedMotoServer
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


_WRITES_LOCK = threading.RLock()
_DYNAMODB_WRITES = (
    "put_item",
    "update_item",
    "delete_item",
    "batch_write_item",
    "transact_write_items",
)


def _serialise_dynamodb_writes() -> None:
    """Make moto's DynamoDB writes atomic against each other, as DynamoDB's are.

    moto serves each request on its own thread and checks a condition, then
    writes, with nothing in between held: two conditional writes racing for
    one item can both pass (seen with the audit chain's head, which then
    forked silently). DynamoDB evaluates a condition and applies the write
    atomically, and transactions are serialisable; one process-wide lock
    around moto's write operations gives the emulator the same guarantee.
    (A gap of the emulator, listed with the others in ``local/gaps.py``.)
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


def _transact_without_table_copies() -> None:
    """Give moto's TransactWriteItems a cost per item, not per table.

    moto backs each transaction up by deep-copying every table it touches,
    whole, to roll back on a failed condition: a transaction on a table of N
    items costs O(N), and a load that writes one per upload slows with every
    upload (a 2,000-upload run spent most of its server time copying the
    assets table). DynamoDB checks every condition before it writes anything,
    so this does the same: conditions first, against the state before the
    transaction (the writes lock is held, and no two operations may touch one
    item, so the order does not matter), then the writes. Cancelled on a
    condition, nothing was written and nothing needs restoring. Only a write
    that itself fails (a validation error, a bug) restores the items written
    before it from per-item copies (gap 18 in ``local/gaps.py``).
    """
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )
    from moto.dynamodb.models import DynamoDBBackend

    if getattr(DynamoDBBackend.transact_write_items, "_quitclaim_per_item", False):
        return
    if getattr(DynamoDBBackend.transact_write_items, "_quitclaim_serialised", False):
        raise EmulatorError("transactions must be replaced before writes are serialised")

    def key_of(backend: Any, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
        if op_type != "Put":
            return dict(op["Key"])
        table = backend.get_table(op["TableName"])
        key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
        if table.range_key_attr is not None:
            key[table.range_key_attr] = op["Item"][table.range_key_attr]
        return key

    def conditions(backend: Any, items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any]]:
        errors: list[tuple[Any, Any, Any]] = []
        seen: set[tuple[str, str]] = set()
        for entry in items:
            if len(entry) > 1:
                raise TransactWriteSingleOpException
            op_type, op = next(iter(entry.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                errors.append(("ValueError", "Unsupported transaction operation", None))
                continue
            try:
                key = key_of(backend, op_type, op)
                unique = (str(op["TableName"]), str(dict(sorted(key.items()))))
                if unique in seen:
                    raise MultipleTransactionsException()
                seen.add(unique)
                current = backend.get_item(op["TableName"], key)
                expression = op.get("ConditionExpression")
                if expression is not None and not get_filter_expression(
                    expression,
                    op.get("ExpressionAttributeNames"),
                    op.get("ExpressionAttributeValues"),
                ).expr(current):
                    old = None
                    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                        old = current.to_json()["Attributes"]
                    failed = ConditionalCheckFailed(item=old)
                    errors.append(("ConditionalCheckFailed", str(failed.message), old))
                    continue
            except (MultipleTransactionsException, MockValidationException):
                raise
            except Exception as exc:  # moto reports any other failure per operation
                errors.append((type(exc).__name__, str(exc), None))
                continue
            errors.append((None, None, None))
        return errors

    def write(backend: Any, op_type: str, op: dict[str, Any], key: dict[str, Any]) -> None:
        common = {
            "condition_expression": op.get("ConditionExpression"),
            "expression_attribute_names": op.get("ExpressionAttributeNames"),
            "expression_attribute_values": op.get("ExpressionAttributeValues"),
        }
        if op_type == "Put":
            backend.put_item(op["TableName"], op["Item"], **common)
        elif op_type == "Delete":
            backend.delete_item(op["TableName"], key, **common)
        elif op_type == "Update":
            backend.update_item(
                op["TableName"], key, update_expression=op["UpdateExpression"], **common
            )

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        if len(transact_items) > 100:
            raise TooManyTransactionsException()
        errors = conditions(self, transact_items)
        if any(code is not None for code, _, _ in errors):
            raise TransactionCanceledException(errors)
        written: list[tuple[str, dict[str, Any], Any]] = []
        for index, entry in enumerate(transact_items):
            op_type, op = next(iter(entry.items()))
            key = key_of(self, op_type, op)
            before = copy.deepcopy(self.get_item(op["TableName"], key))
            try:
                write(self, op_type, op, key)
            except Exception as exc:
                for table, done_key, item in reversed(written):
                    if item is None:
                        self.delete_item(table, done_key)
                    else:
                        self.put_item(table, item.to_json()["Attributes"])
                if isinstance(exc, (MultipleTransactionsException, MockValidationException)):
                    raise
                errors[index] = (type(exc).__name__, str(exc), None)
                raise TransactionCanceledException(errors) from exc
            written.append((op["TableName"], key, before))

    transact_write_items._quitclaim_per_item = True  # type: ignore[attr-defined]
    functools.update_wrapper(transact_write_items, DynamoDBBackend.transact_write_items)
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


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


def _lazy_queue_attributes() -> None:
    """Let moto compute a queue attribute when it is read, not all of them on every send.

    moto's SendMessage reads one attribute (``ContentBasedDeduplication``)
    through ``Queue.attributes``, which computes every attribute, among them
    three message counts that walk the whole queue: a send costs O(queue
    length). An outbox nobody drains (the recheck of 1,000 assets sends 1,000
    events) then spent most of the server's time counting (61 ms a send at
    1,000 messages against ~12 ms a HEAD). SQS's send is O(1). The mapping
    has the same keys and values as moto's dict, each computed on access
    (gap 20 in ``local/gaps.py``).
    """
    import json
    from collections.abc import Iterator, Mapping

    from moto.core.utils import camelcase_to_underscores
    from moto.sqs.models import Queue

    current: Any = Queue.__dict__["attributes"]
    if getattr(current.fget, "_quitclaim_lazy", False):
        return

    class _Attributes(Mapping[str, Any]):
        def __init__(self, queue: Any) -> None:
            self._queue = queue
            names = list(queue.BASE_ATTRIBUTES)
            if queue.fifo_queue:
                names += queue.FIFO_ATTRIBUTES
            if queue.kms_master_key_id:
                names += queue.KMS_ATTRIBUTES
            self._names = list(dict.fromkeys(names))

        def __getitem__(self, name: str) -> Any:
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

    def attributes(self: Any) -> Mapping[str, Any]:
        return _Attributes(self)

    attributes._quitclaim_lazy = True  # type: ignore[attr-defined]
    Queue.attributes = property(attributes)  # type: ignore[assignment,method-assign]


def _complete_marketplace_metering() -> None:
    # Gap 19 in local/gaps.py: moto keeps no accepted record and subscribes nobody.
    from devstack.marketplace import complete_marketplace_metering

    complete_marketplace_metering()


def _start_server(host: str, port: int) -> _Server:
    # Imported here: moto is a local-only dependency, never in a Lambda layer.
    from moto.server import ThreadedMotoServer

    _quiet_request_log()
    _transact_without_table_copies()
    _serialise_dynamodb_writes()
    _complete_marketplace_metering()
    _list_moto_modules_once()
    _lazy_queue_attributes()
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
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
        # Both bodies where gaps.capture_email_bodies kept them; else moto's one body.
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
