"""SQS queue depths (the dead-letter queues the overview shows)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from quitclaim.observability import logger


class SqsQueueDepths:
    """``ApproximateNumberOfMessages`` of named queues (name -> URL)."""

    def __init__(self, client: Any, queues: Mapping[str, str]) -> None:
        self._sqs = client
        self._queues = {name: url for name, url in queues.items() if url}

    def depths(self) -> dict[str, int | None]:
        found: dict[str, int | None] = {}
        for name, url in self._queues.items():
            try:
                attributes = self._sqs.get_queue_attributes(
                    QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
                )["Attributes"]
                found[name] = int(attributes["ApproximateNumberOfMessages"])
            except (BotoCoreError, ClientError, KeyError, ValueError):
                # One unreadable queue must not hide the others: say "unknown".
                logger.warning("queue depth not read", queue=name)
                found[name] = None
        return found
