"""``LocalStack``: emulator + deployed template + gap fills + runtime, in one object.

    with LocalStack() as stack:
        stack.client("s3").put_object(Bucket=stack.outputs["UploadsBucketName"], ...)
        report = stack.drain()

The template is checked (parameters, Rules) before the emulator starts, so a
non-EU region fails at once, as ``sam deploy`` would.

Time is the stack's: ``stack.clock`` (a ``LocalClock``, installed with
``bootstrap.set_clock`` while the stack runs) stands still until moved;
``stack.tick(to)`` moves it, firing schedules and TTL deletions on the way
(``devstack.clock``). A control server on 127.0.0.1 lets
``quitclaim local tick`` do that from another shell (``devstack.control``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devstack import emulator as emulator_module
from devstack import gaps, resource_fills, ttl_reaper
from devstack.clock import COALESCE_AFTER, LocalClock, LocalScheduler
from devstack.deploy import (
    DEFAULT_REGION,
    Deployment,
    deploy,
    preflight,
)
from devstack.emulator import Emulator
from devstack.function_environment import aws_client_env
from devstack.invocations import RunReport
from devstack.runtime import LocalRuntime
from devstack.signin import SignInStandIn
from devstack.tick_report import TickReport
from infra.template_source import default_template_path, load_template
from quitclaim import bootstrap
from quitclaim.config import reset_settings
from quitclaim.domain.ports import Clock

if TYPE_CHECKING:
    from devstack.control import ControlServer

log = logging.getLogger(__name__)


# The product code the local stack meters under (the emulator's Marketplace).
LOCAL_MARKETPLACE_PRODUCT = "quitclaim-local"


class LocalStack:
    """The whole stack on 127.0.0.1.

    Several may run in one process (they share the emulator): give each its
    own ``stack_name`` and ``Stage`` parameter, since bucket names derive from
    the Stage. The clock is the process's (``bootstrap``), so the last stack
    started sets the time until it stops.

    ``start_time``: where the clock starts (default: the wall clock at
    construction). ``control``: start the control server and write its URL
    to ``<control_dir or the current directory>/.quitclaim-local/control.json``.
    """

    def __init__(
        self,
        template_path: str | Path | None = None,
        region: str = DEFAULT_REGION,
        stack_name: str = "quitclaim-local",
        parameters: dict[str, Any] | None = None,
        port: int = 0,
        start_time: datetime | None = None,
        *,
        control: bool = True,
        control_dir: str | Path | None = None,
    ) -> None:
        self.template_path = Path(template_path or default_template_path()).resolve()
        self.region = region
        self.stack_name = stack_name
        # Local receivers listen on loopback over http: let outbound webhooks reach them.
        self.parameters = {"WebhookTargets": "any", **(parameters or {})}
        # Marketplace metering on the emulator (docs/billing.md); "" turns it off.
        self.parameters.setdefault("MarketplaceProductCode", LOCAL_MARKETPLACE_PRODUCT)
        # Off unless a test or developer turns them on: an hourly run over every
        # tenant in every tick would cost the suite more than it checks.
        self.parameters.setdefault("BillingSchedules", "DISABLED")
        self._emulator = Emulator(port=port)
        self._deployment: Deployment | None = None
        self._runtime: LocalRuntime | None = None
        self._scheduler: LocalScheduler | None = None
        self._control: ControlServer | None = None
        self._control_enabled = control
        self._control_dir = Path(control_dir) if control_dir is not None else None
        self._previous_clock: Clock | None = None
        self._emails_from = 0
        self.clock = LocalClock(start_time)
        # One thing at a time swaps os.environ: handler invocations, ticks, control requests.
        self.lock = threading.RLock()
        self.gaps = gaps.GapReport()
        self.timings: dict[str, float] = {}  # seconds per start-up step
        self.signin: SignInStandIn | None = None  # the hosted sign-in's stand-in (gap 22)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> LocalStack:
        """Check the template, start the emulator, deploy, fill the gaps, ready the runtime."""
        started = time.perf_counter()
        template = load_template(self.template_path)
        # Refuse before anything starts: CloudFormation validates first too.
        preflight(template, self.region, self.stack_name, self.parameters)
        self._mark("preflight", started)
        self._previous_clock = bootstrap.current_clock()
        bootstrap.set_clock(self.clock)
        step = time.perf_counter()
        try:
            self._emulator.start()
        except BaseException:
            self.stop()
            raise
        self._mark("emulator", step)
        try:
            step = time.perf_counter()
            self._deployment = deploy(
                self._emulator,
                self.template_path,
                stack_name=self.stack_name,
                region=self.region,
                parameters=self.parameters,
                template=template,
            )
            self._mark("deploy", step)
            step = time.perf_counter()
            self.gaps = gaps.apply(self._deployment)
            self._emails_from = emulator_module.sent_email_count(self.region)
            self._runtime = LocalRuntime(
                self._deployment,
                self._emulator.endpoint_url,
                gap_report=self.gaps,
                lock=self.lock,
            )
            deployment = self._deployment
            tables = ttl_reaper.ttl_tables(deployment)  # TTL settings as deployed (read once)
            self._scheduler = LocalScheduler(
                deployment.client,
                self._runtime,
                self.clock,
                lambda now: ttl_reaper.reap_expired_items(deployment, tables, now),
            )
            self._mark("gaps+runtime", step)
            self.signin = _start_signin(self._deployment)
            if self._control_enabled:
                from devstack.control import ControlServer

                self._control = ControlServer(self, directory=self._control_dir)
                self._control.start()
        except BaseException:
            self.stop()
            raise
        self._mark("total", started)
        return self

    def stop(self) -> None:
        """Drop the runtime's modules and release the emulator (idempotent).

        If other stacks in this process still use the emulator, this stack is
        deleted from it; otherwise the emulator stops and all state is gone.
        """
        if self._control is not None:
            self._control.stop()
            self._control = None
        if self.signin is not None:
            self.signin.stop()
            self.signin = None
        if self._runtime is not None:
            self._runtime.close()
        if self._deployment is not None and self._emulator.shared:
            resource_fills.release(self._deployment, self.gaps)
            try:
                self.client("cloudformation").delete_stack(StackName=self.stack_name)
            except Exception:
                log.warning("could not delete local stack %s", self.stack_name, exc_info=True)
        self._runtime = None
        self._scheduler = None
        self._deployment = None
        self._emulator.stop()
        if self._previous_clock is not None:
            # Only if ours is still the process's clock: a later stack may have replaced it.
            if bootstrap.current_clock() is self.clock:
                bootstrap.set_clock(self._previous_clock)
            self._previous_clock = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _mark(self, name: str, since: float) -> None:
        self.timings[name] = round(time.perf_counter() - since, 3)

    # ------------------------------------------------------------ access

    @property
    def deployment(self) -> Deployment:
        if self._deployment is None:
            raise RuntimeError("the local stack is not started")
        return self._deployment

    @property
    def runtime(self) -> LocalRuntime:
        if self._runtime is None:
            raise RuntimeError("the local stack is not started")
        return self._runtime

    @property
    def endpoint_url(self) -> str:
        return self._emulator.endpoint_url

    @property
    def outputs(self) -> dict[str, str]:
        return dict(self.deployment.outputs)

    @property
    def resources(self) -> dict[str, str]:
        """Logical id -> physical id of every resource the emulator created."""
        return dict(self.deployment.resources)

    def client(self, service: str) -> Any:
        """A boto3 client for the stack's region (fake credentials, standard retries)."""
        return self._emulator.client(service, self.region)

    def function_env(self, logical_id: str) -> dict[str, str]:
        """The environment a function runs with locally."""
        return self.runtime.function_env(logical_id)

    def client_env(self) -> dict[str, str]:
        """Environment for a process or test that talks to the stack as the functions do.

        Endpoint, region and fake credentials, plus the template's Globals
        ``QC_*`` variables resolved against the stack (bucket and table names).
        """
        deployment = self.deployment
        function_globals = (deployment.template.get("Globals") or {}).get("Function") or {}
        variables = (function_globals.get("Environment") or {}).get("Variables") or {}
        settings = {
            name: str(deployment.resolve(value))
            for name, value in variables.items()
            if name.startswith("QC_")
        }
        if self.signin is not None:  # the dashboard opens the stand-in, not AWS's domain
            settings["QC_USER_POOL_DOMAIN_URL"] = self.signin.url
        return {**settings, **aws_client_env(self.endpoint_url, self.region)}

    @contextmanager
    def use_client_env(self) -> Iterator[dict[str, str]]:
        """Point this process at the stack (``client_env`` in ``os.environ``) for a block.

        For code that builds its clients from settings (the registry, the
        demo): without it they would read the caller's environment, which
        may hold real AWS credentials. Restored, and settings reset, on exit.
        """
        environment = self.client_env()
        saved = {k: v for k, v in os.environ.items() if k in environment}
        os.environ.update(environment)
        reset_settings()
        try:
            yield environment
        finally:
            for name in environment:
                os.environ.pop(name, None)
            os.environ.update(saved)
            reset_settings()

    def drain(self, timeout_s: float = 30.0) -> RunReport:
        """Deliver every queued message and stream record (see ``LocalRuntime.drain``)."""
        return self.runtime.drain(timeout_s=timeout_s)

    @property
    def control_url(self) -> str | None:
        """The control server's base URL (None when it is not running)."""
        return self._control.url if self._control is not None else None

    def tick(
        self,
        to: datetime,
        *,
        coalesce_after: timedelta = COALESCE_AFTER,
        drain_timeout_s: float = 60.0,
    ) -> TickReport:
        """Advance the clock to ``to``, firing due schedules and TTL deletions in order.

        After each firing (and each step that reaped items) queues and streams
        are drained. A tick longer than ``coalesce_after`` (default two days)
        fires a more-than-daily ``rate()`` schedule once per 24 hours only.
        Raises ``ValueError`` if ``to`` is before the clock, and
        ``tick_report.TickError`` (with the partial report) if a drain times out.
        See ``devstack.clock`` for what fires when.
        """
        if self._scheduler is None:
            raise RuntimeError("the local stack is not started")
        scheduler = self._scheduler
        with self.lock:
            return scheduler.tick(
                to,
                lambda: self.runtime.drain(timeout_s=drain_timeout_s),
                coalesce_after=coalesce_after,
            )

    def sent_emails(self) -> list[dict[str, Any]]:
        """E-mails sent through the emulator's SES since this stack started (oldest first).

        Stacks sharing the emulator share one SES: filter by recipient when
        several send. See ``emulator.sent_emails`` for the fields.
        """
        if self._deployment is None:
            raise RuntimeError("the local stack is not started")
        return emulator_module.sent_emails(
            self.region, self.deployment.account_id, start=self._emails_from
        )


def _start_signin(deployment: Deployment) -> SignInStandIn | None:
    """The hosted sign-in's stand-in for the template's user pool (None without one)."""
    pool, client = deployment.resources.get("UserPool"), deployment.resources.get("UserPoolClient")
    if not (pool and client):
        return None
    return SignInStandIn(deployment.client("cognito-idp"), pool, client).start()
