"""The one Logger, Tracer and Metrics of the package, and the audit event.

Audit events carry ids, boxes, distances, versions and reasons: never names,
encodings or image bytes (Principle 4). ``audit`` refuses unknown fields so a
careless caller cannot slip personal data in.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = "quitclaim"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace="Quitclaim", service=SERVICE)

_AUDIT_FIELDS = frozenset(
    {
        "tenant",
        "asset_id",
        "status",
        "reasons",
        "purpose",
        "faces",
        "versions",
        "policy",
        "timings_ms",
        "subject_id",
        "consent_id",
        "duplicate",
        "dest_bucket",
        "source",
        "reason",
        "endpoint_id",
        "delivery_id",
        # data-subject rights: the request, the asset a variant was made from,
        # how many results a search or export gave (counts, never content)
        "request_id",
        "source_asset_id",
        "results",
        # tenants: onboarding (plan, region pin) and offboarding (when, and
        # per store what remains: counts, never content)
        "plan",
        "region",
        "purge_after",
        "complete",
        "early",
        "stores",
        # metering: a tenant's plan quota (a number)
        "images_per_month",
    }
)


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def log_to_stderr() -> None:
    """Send log lines to stderr (the CLI: stdout is for the command's output)."""
    handler = logger.registered_handler
    if isinstance(handler, logging.StreamHandler):
        handler.setStream(_CurrentStderr())


def audit(action: str, **fields: Any) -> None:
    """Write one structured audit event (the accountable record of an AI step)."""
    unknown = set(fields) - _AUDIT_FIELDS
    if unknown:
        raise ValueError(f"audit fields not allowed: {sorted(unknown)}")
    logger.info(action, extra={"audit": {"action": action, **fields}})


def count(name: str, value: float = 1, unit: MetricUnit = MetricUnit.Count) -> None:
    """Add to a metric of this invocation (flushed by the handler decorator)."""
    metrics.add_metric(name=name, unit=unit, value=value)


def timing(name: str, milliseconds: float) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=milliseconds)
