"""The one place boto3 clients are configured.

Standard retry mode: the legacy default does not retry S3 ``SlowDown``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config

from quitclaim.config import Settings

RETRY_CONFIG = Config(
    retries={"max_attempts": 5, "mode": "standard"},
    connect_timeout=5,
    read_timeout=30,
)


@lru_cache(maxsize=16)
def _client(service: str, region: str, endpoint_url: str | None) -> Any:
    session: Any = boto3.session.Session()
    return session.client(
        service, region_name=region, endpoint_url=endpoint_url, config=RETRY_CONFIG
    )


def aws_client(service: str, settings: Settings) -> Any:
    """A boto3 client for ``service``, built once per container and settings."""
    return _client(service, settings.region, settings.endpoint_url)
