"""Typed errors raised by every provider client (one hierarchy, from the shared ApiClient).

Messages are safe to show a user and to store: they carry a redacted summary, never a secret.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """Base of every error a provider raises."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        detail: Any = None,
        retry_after: float | None = None,
        remote_message: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        # What the remote system itself said (its error text), without the request line: the
        # plain-language reason a finance user reads is built from it.
        self.remote_message = remote_message
        self.status = status
        self.detail = detail
        self.retry_after = retry_after

    def summary(self) -> dict[str, Any]:
        """A redacted, JSON-able description for audit records."""
        return {
            "error": type(self).__name__,
            "message": self.message,
            "status": self.status,
            "detail": self.detail,
        }


class AuthFailed(ApiError):
    """Credentials were refused (after one re-authentication)."""


class RateLimited(ApiError):
    """The remote (or our own shared limiter) said slow down; ``retry_after`` in seconds."""

    retryable = True


class Transient(ApiError):
    """A temporary failure (5xx, connection error): trying again later may succeed."""

    retryable = True


class OutcomeUnknown(Transient):
    """A non-idempotent request may or may not have been applied (timeout after sending, 502…).

    Never retried blindly: the posting ledger asks the target whether it exists first.
    """

    retryable = False


class Rejected(ApiError):
    """The remote refused the request itself (validation, business rule); retrying won't help."""

    @property
    def reason(self) -> str:
        return self.message


class NotFound(Rejected):
    """The addressed object does not exist."""
