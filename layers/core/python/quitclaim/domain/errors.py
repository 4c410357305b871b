"""The one exception tree of the quitclaim package.

Callers branch on ``code`` (stable, machine-readable), never on message text.
HTTP mapping lives in one place (the API's error handler) and uses
``http_status``.
"""

from __future__ import annotations


class QuitclaimError(Exception):
    """Base of every error Quitclaim raises on purpose."""

    code = "internal_error"
    http_status = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


class ConfigurationError(QuitclaimError):
    """Settings are missing or invalid; the container must not start."""

    code = "configuration_error"


class RegionNotAllowed(ConfigurationError):
    """The code was started outside the allowed EU regions."""

    code = "region_not_allowed"


class RejectedInput(QuitclaimError):
    """An upload that cannot be scanned safely (corrupt, too large, bad type).

    The original is kept, untouched, under ``rejected/`` with this reason.
    """

    code = "rejected_input"
    http_status = 422


class ValidationFailed(QuitclaimError):
    """A request or command argument is invalid; ``field`` names it."""

    code = "validation_failed"
    http_status = 400

    def __init__(self, message: str, *, field: str, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


class EnrolmentRejected(ValidationFailed):
    """A reference photo cannot be enrolled (e.g. not exactly one face)."""

    code = "enrolment_rejected"
    http_status = 422


class Unauthorized(QuitclaimError):
    """No key, or a key that does not resolve to a tenant."""

    code = "unauthorized"
    http_status = 401


class Forbidden(QuitclaimError):
    """The caller is known but may not do this (role, two-reviewer rule)."""

    code = "forbidden"
    http_status = 403


class NotFound(QuitclaimError):
    """The thing does not exist for this tenant (other tenants' ids included)."""

    code = "not_found"
    http_status = 404


class Conflict(QuitclaimError):
    """A conditional write lost a race or the state does not allow the change."""

    code = "conflict"
    http_status = 409


class DependencyFailed(QuitclaimError):
    """A downstream (DynamoDB, S3, ...) failed; the work must be retried.

    Never converted into a decision: the image stays out of the library.
    """

    code = "dependency_failed"
    http_status = 503


class QuotaExceeded(QuitclaimError):
    """The tenant's monthly image quota is used up (uploads are held, not lost)."""

    code = "quota_exceeded"
    http_status = 429
