"""Plain language for what a finance user reads when a remote system says no: why a record
failed, or why a connection test did, in the words of the systems involved — the technical
detail (request line, status, Python error) kept apart.

Pure functions of their inputs, no I/O: the runner stores both texts on the audit record and
the admin folds the detail below the reason; ``Provider.check`` words a failed test with it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from connections.providers.errors import (
    ApiError,
    AuthFailed,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Transient,
)

logger = logging.getLogger(__name__)


# What each kind of posting is called (the posting ledger's target names).
def system_name(provider: Any) -> str:
    """A system's everyday name ("CloudSuite"): its provider's short label, else its label."""
    return getattr(provider, "short_label", "") or provider.label


@dataclass(frozen=True)
class Explained:
    """A failure told plainly, and the technical detail for whoever supports the system."""

    reason: str
    detail: str


def _said(exc: ApiError) -> str:
    """What the remote said; the whole message when the client could not single it out."""
    text = (exc.remote_message or exc.message or "").strip().rstrip(".")
    return text or "no reason given"


def failure(
    exc: BaseException, *, system: str, thing: str, detail: str, lost_answer: str = ""
) -> Explained:
    """Why writing ``thing`` to ``system`` (its everyday name) failed, as a finance user would
    want it said.  ``detail`` is the technical text (already redacted) kept beside it;
    ``lost_answer`` what the flow does after an unconfirmed write, when it does not look the
    write up in the target before sending it again.
    """
    name = system
    if isinstance(exc, RateLimited):
        reason = f"{name} asked ml-connector to slow down; {thing} will be sent again by itself."
    elif isinstance(exc, AuthFailed):
        reason = (
            f"{name} refused ml-connector's sign-in, so {thing} was not sent. Check the "
            f"{name} connection's credentials (Test connection), then replay."
        )
    elif isinstance(exc, OutcomeUnknown) and lost_answer:
        reason = f"{name} did not confirm whether it took {thing}. {lost_answer}"
    elif isinstance(exc, OutcomeUnknown):
        reason = (
            f"{name} did not confirm whether it took {thing}. ml-connector will look in {name} "
            "before sending it again, so it cannot be posted twice."
        )
    elif isinstance(exc, Transient):
        why = (
            f"{name} could not take {thing} just now ({_said(exc)})"
            if exc.remote_message
            else f"{name} could not be reached or had a temporary problem"
        )
        reason = why + (
            f"; {thing} was not sent and will be sent again by itself."
            if exc.retryable
            else f"; {thing} was not sent. Replay it later."
        )
    elif isinstance(exc, Rejected):
        reason = f"{name} refused {thing}: {_said(exc)}."
    elif isinstance(exc, ApiError):
        reason = f"{name} gave an answer ml-connector did not understand; {thing} was not sent."
    else:
        reason = (
            f"ml-connector hit an unexpected error and did not send {thing}. The technical "
            "detail below is for whoever supports ml-connector."
        )
    return Explained(reason=reason, detail=detail)


def unreadable(exc: BaseException) -> str:
    """Why a record could not be prepared: what the remote said, when it said something."""
    said = (getattr(exc, "remote_message", "") or "").strip().rstrip(".")
    if said:
        return f"Could not read what this record needs: {said}."
    return "Could not read what this record needs; the technical detail is below."


def check_failure(
    exc: ApiError, *, system: str, where: str, connect_timeout: float, read_timeout: float
) -> str:
    """A failed connection test in words a finance user can act on: ``where`` is the host
    tried; the technical text stays in the result's details."""
    text = f"{exc.message} {exc.detail or ''}".lower()
    said = (exc.remote_message or "").strip().rstrip(".")
    if isinstance(exc, RateLimited):
        return (
            f"{system} is busy with ml-connector's other requests (its rate limit is reached): "
            "try again in a few seconds."
        )
    if not said and "://" not in exc.message:
        return exc.message  # the provider worded it for people already (an SFTP host key …)
    if isinstance(exc, AuthFailed):
        return (
            f"{system} refused the credentials"
            + (f": {said}." if said else ".")
            + " Check the secret and the account it belongs to, then save again."
        )
    if isinstance(exc, Transient) and exc.status is None:
        if "timed out" in text or "timeout" in text:
            waited = read_timeout if "read" in text else connect_timeout
            return f"{where} did not answer within {waited:.0f} s."
        if "resolve" in text or "name or service" in text or "nodename" in text:
            return f"The address {where} does not resolve: check the base URL or host."
        if "refused" in text:
            return f"{where} refused the connection: check the address and port."
        return f"{where} could not be reached."
    if isinstance(exc, Transient):
        return f"{system} had a temporary problem (it answered {exc.status}); try again shortly."
    if said:
        return f"{system} refused the test: {said}."
    return exc.message
