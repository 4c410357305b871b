"""The tenants' audit hash chains (every function's audit sink) and the API's reads of them."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from quitclaim.adapters.audit_chain_store import DynamoS3AuditChain
from quitclaim.adapters.aws import aws_client
from quitclaim.adapters.read_ahead import ReadAheadS3
from quitclaim.bootstrap import current_clock
from quitclaim.config import get_settings
from quitclaim.usecases.audit_trail import AuditTrail

if TYPE_CHECKING:
    from quitclaim.usecases.audit_read import AuditReader


@lru_cache(maxsize=1)
def audit_trail_service() -> AuditTrail:
    """The tenants' audit hash chains (appended by every function, verified by the CLI)."""
    settings = get_settings()
    chain = DynamoS3AuditChain(
        dynamodb=aws_client("dynamodb", settings),
        # Verifying reads every record: ahead, in parallel (adapters/read_ahead.py).
        s3=ReadAheadS3(aws_client("s3", settings)),
        table=settings.audit_heads_table,
        bucket=settings.audit_bucket,
        clock=current_clock(),
    )
    # Checks of a long chain read only what its newest vouched checkpoint lacks.
    return AuditTrail(store=chain, clock=current_clock(), checkpoints=chain)


def audit_reader_service() -> AuditReader:
    """The audit trail as the API reads it (bounded in time); built per call."""
    from quitclaim.usecases.audit_read import AuditReader

    return AuditReader(audit_trail_service())
