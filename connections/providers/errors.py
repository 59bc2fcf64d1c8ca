"""Typed errors raised by every provider client (one hierarchy, from the shared ApiClient).

Messages are safe to show a user and to store: they carry a redacted summary, never a secret.
Each error says, as data, what the run does about it (``resolution``: retry the record later,
put it before a person, or stop the run), as the Airbyte CDK's error mapping does; which status
becomes which error is each provider's table (``ApiClient.error_map``) over the shared one.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

logger = logging.getLogger(__name__)


class Resolution(enum.StrEnum):
    """What a run does about a record's error."""

    RETRY = "retry"  # read or sent again later: the cursor holds (an outage, a lost answer)
    REVIEW = "review"  # a person must act: the record goes to the review queue
    STOP = "stop"  # nothing else can succeed (credentials refused): the run stops


def resolution_of(exc: BaseException) -> Resolution:
    """What a run does about ``exc``: the error's own resolution; anything else (a bug, a value
    it could not read) is tried again later."""
    return exc.resolution if isinstance(exc, ApiError) else Resolution.RETRY


class ApiError(Exception):
    """Base of every error a provider raises."""

    retryable = False
    resolution = Resolution.RETRY

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

    resolution = Resolution.STOP


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

    resolution = Resolution.REVIEW

    @property
    def reason(self) -> str:
        return self.message


class NotFound(Rejected):
    """The addressed object does not exist."""
