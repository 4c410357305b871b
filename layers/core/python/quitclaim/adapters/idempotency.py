"""Exactly-once acceptance with Powertools idempotency on DynamoDB.

The key is (tenant, source, webhook-id); the payload hash is validated, so
the same id with another body is refused rather than silently dropped.
The stored result holds ids and a status only, never the payload.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)

from quitclaim.domain.errors import Conflict, DependencyFailed

IN_PROGRESS_BUDGET_MS = 30_000


class _Budget:
    """What Powertools reads of a Lambda context: the time an attempt may take."""

    def __init__(self, millis: int) -> None:
        self._millis = millis

    def get_remaining_time_in_millis(self) -> int:
        return self._millis


class PowertoolsOnce:
    """The ``OnceGuard`` port."""

    def __init__(
        self,
        table_name: str,
        client: Any,
        *,
        expires_after_s: int,
        in_progress_ms: int = IN_PROGRESS_BUDGET_MS,
    ) -> None:
        self._store = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=client)
        self._expires = expires_after_s
        self._in_progress_ms = in_progress_ms

    def once(
        self, key: Mapping[str, str], digest: str, action: Callable[[], dict[str, Any]]
    ) -> tuple[dict[str, Any], bool]:
        """Run ``action`` once per ``key``: (its result, False) or (the stored one, True)."""
        replayed = False

        def hook(response: Any, idempotent_data: Any) -> Any:
            nonlocal replayed
            replayed = True
            return response

        config = IdempotencyConfig(
            event_key_jmespath="key",
            payload_validation_jmespath="digest",
            expires_after_seconds=self._expires,
            raise_on_no_idempotency_key=True,
            response_hook=hook,
        )
        # Without a deadline Powertools leaves a crashed acceptance INPROGRESS until the
        # record expires (days): every retry of the sender would answer 409. Acceptance
        # is one write and one enqueue, well inside API Gateway's 29 s; after this
        # budget an unfinished record counts as abandoned and a retry runs again.
        config.register_lambda_context(cast(Any, _Budget(self._in_progress_ms)))

        @idempotent_function(
            data_keyword_argument="delivery",
            persistence_store=self._store,
            config=config,
            key_prefix="webhook-delivery",
        )
        def run(delivery: dict[str, Any]) -> dict[str, Any]:
            return action()

        try:
            result = run(delivery={"key": dict(key), "digest": digest})
        except IdempotencyValidationError:
            raise Conflict(
                "this webhook-id was already used for a different body", code="id_reused"
            ) from None
        except IdempotencyAlreadyInProgressError:
            raise Conflict(
                "this delivery is being processed; retry shortly", code="in_progress"
            ) from None
        except IdempotencyPersistenceLayerError as exc:
            raise DependencyFailed("idempotency store failed") from exc
        return dict(result), replayed
