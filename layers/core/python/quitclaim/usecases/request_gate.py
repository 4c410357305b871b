"""What the API checks of every authenticated request before its view runs.

Who is calling (an API key, or a person's sign-in token), whether the
tenant is within its plan's request rate, and the request's meter tick.
The route's role is checked by the router against the principal found here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from quitclaim.domain.errors import Unauthorized
from quitclaim.domain.registry import Principal
from quitclaim.usecases.keys import ApiKeys

if TYPE_CHECKING:
    from quitclaim.usecases.limits import RateLimits
    from quitclaim.usecases.usage_metering import Usage


@dataclass
class RequestGate:
    """Authentication, rate limit and metering of one API request."""

    keys: ApiKeys
    user_tokens: Callable[[str], Principal] | None = None
    limits: RateLimits | None = None
    usage: Usage | None = None

    def resolve_key(self, secret: str) -> Principal:
        """The principal an API key stands for; ``Unauthorized`` otherwise."""
        return self.keys.resolve(secret)

    def resolve_token(self, token: str) -> Principal:
        """The person a user-pool sign-in token stands for (docs/sign-in.md)."""
        if self.user_tokens is None:
            raise Unauthorized("sign-in is not configured on this stack: use an API key")
        return self.user_tokens(token)

    def admit(self, principal: Principal) -> None:
        """``RateLimited`` when the tenant is over its plan's request rate."""
        if self.limits is not None:
            self.limits.admit(principal.tenant)

    def count_api_call(self, principal: Principal) -> None:
        """Meter one authenticated request (nothing to meter on a stack without it)."""
        if self.usage is not None:
            self.usage.count_api_call(principal.tenant)
