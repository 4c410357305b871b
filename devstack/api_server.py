"""Serve the Chalice app of ``functions/api`` on 127.0.0.1 against a local stack.

    with LocalStack() as stack, serve_api(stack) as base_url:
        urllib.request.urlopen(f"{base_url}/openapi.json")

Chalice's own local server (``chalice.local``) runs in a background thread:
the same API Gateway emulation ``chalice local`` and its test client use, so
routing, binary bodies and unknown routes behave as deployed.

The app reads its settings from the process environment, as it does in
Lambda. While serving, that environment is the stack's client environment
(the template's ``QC_*`` variables resolved against the stack, the
emulator's endpoint, fake credentials) plus, when the deployed stack has
the API function, its own ``QC_``/``POWERTOOLS_`` variables. The local runtime
swaps ``os.environ`` while a handler runs; requests therefore hold the
stack's ``lock`` (or ``lock=``), which whoever polls or ticks holds too.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from chalice.config import Config
from chalice.local import (
    ChaliceRequestHandler,
    CustomLocalChalice,
    LocalChalice,
    LocalDevServer,
    LocalGatewayException,
)

from infra.template_source import default_template_path
from quitclaim.bootstrap import reset_container

if TYPE_CHECKING:
    from chalice import Chalice

    from devstack.stack import LocalStack

API_FUNCTION = "APIHandler"  # the logical id ``chalice package`` gives the function
STAGE = "prod"
_MODULE_NAME = "_quitclaim_api_app"
_APP_LOCK = threading.Lock()


def api_dir() -> Path:
    """``functions/api`` of the working tree (the Chalice project directory)."""
    return default_template_path().parents[1] / "functions" / "api"


def load_app() -> Chalice:
    """The Chalice app object of ``functions/api/app.py``, imported once per process."""
    with _APP_LOCK:
        module = sys.modules.get(_MODULE_NAME)
        if module is None:
            module = _import(api_dir() / "app.py")
        app: Chalice = module.app
        return app


def _import(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(_MODULE_NAME, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[_MODULE_NAME]
        raise
    return module


def chalice_config(app: Chalice) -> Config:
    """The ``prod`` stage config from ``.chalice/config.json`` (timeouts, names)."""
    on_disk = json.loads((api_dir() / ".chalice" / "config.json").read_text(encoding="utf-8"))
    return Config.create(
        chalice_stage=STAGE,
        app_name=on_disk["app_name"],
        project_dir=str(api_dir()),
        config_from_disk=on_disk,
        chalice_app=app,
    )


def api_environment(stack: LocalStack) -> dict[str, str]:
    """What the API function's code sees of the environment on this stack."""
    environment = stack.client_env()
    if API_FUNCTION in stack.runtime.functions:
        deployed = stack.function_env(API_FUNCTION)
        environment.update(
            {k: v for k, v in deployed.items() if k.startswith(("QC_", "POWERTOOLS_"))}
        )
    return environment


@contextmanager
def serve_api(
    stack: LocalStack,
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    lock: threading.Lock | threading.RLock | None = None,
) -> Iterator[str]:
    """Serve the API until the block ends; yields the base URL (``http://host:port``)."""
    # The stack's own lock serialises its handler runs, clock ticks and control requests.
    lock = lock if lock is not None else stack.lock
    environment = api_environment(stack)
    saved = {name: os.environ.get(name) for name in environment}
    with lock:
        os.environ.update(environment)
        # Services cached for another environment must not serve this stack.
        reset_container()
    try:
        app = load_app()
        server = _server(app, chalice_config(app), host, port, lock)
        bound_port = server.server.server_address[1]
        thread = threading.Thread(
            target=server.server.serve_forever, name="quitclaim-api", daemon=True
        )
        thread.start()
        try:
            yield f"http://{host}:{bound_port}"
        finally:
            server.shutdown()
            server.server.server_close()
            thread.join(timeout=5)
    finally:
        with lock:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            reset_container()


def _server(
    app: Chalice, config: Config, host: str, port: int, lock: threading.Lock | threading.RLock
) -> LocalDevServer:
    class SerialisedHandler(ChaliceRequestHandler):
        """One request at a time, never while the runtime has swapped the environment."""

        def _generic_handle(self) -> None:
            with lock:
                super()._generic_handle()

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle

        def _send_error_response(self, error: LocalGatewayException) -> None:
            # Chalice's gateway echoes the Authorization header (an API key) in its 403
            # for a path that is no route; API Gateway hashes it. Say nothing of it.
            if b"Authorization=" in (error.body or b""):
                error.body = b'{"message": "Missing Authentication Token"}'
            super()._send_error_response(error)

        def log_message(self, format: str, *args: Any) -> None:
            # The default writes every request line (ids in paths) to stderr.
            return

    _thread_local_requests(app)
    return LocalDevServer(app, config, host, port, handler_cls=SerialisedHandler)


def _thread_local_requests(app: Chalice) -> None:
    """What ``chalice.local.create_local_server`` does: ``current_request`` per thread."""
    with _APP_LOCK:
        if not isinstance(app, LocalChalice):
            CustomLocalChalice.__bases__ = (LocalChalice, type(app))
            app.__class__ = CustomLocalChalice
