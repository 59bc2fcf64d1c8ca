"""Plain language for what a finance user reads: why a record failed, in the words of the
systems involved, with the technical detail (request line, status, Python error) kept apart.

Pure functions of their inputs, no I/O: the runner stores both texts on the audit record; the
admin shows the plain one and folds the detail below it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from connections.providers.errors import (
    ApiError,
    AuthFailed,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Transient,
)

logger = logging.getLogger(__name__)

# The names finance staff use for each system.
SYSTEM_NAMES = {
    "infor_m3": "CloudSuite",
    "stripe": "Stripe",
    "ifs_cloud": "IFS Cloud",
    "cin7": "Cin7 Core",
    "wise": "Wise",
    "stampli": "Stampli",
}

# What each kind of posting is called (the posting ledger's target names).
THINGS = {
    "m3.receipt": "the receipt",
    "m3.ap_invoice": "the supplier invoice",
    "m3.journal": "the journal entry",
    "stripe.customer": "the customer",
    "stripe.invoice": "the invoice",
    "cin7.account": "the account",
    "cin7.purchase": "the purchase order",
    "cin7.supplier": "the supplier",
    "wise.quote": "the quote",
    "wise.recipient": "the recipient",
    "ifs.invoice_note": "the note",
}


def system_name(kind: str) -> str:
    """A system's everyday name ("CloudSuite"), or its kind when unknown."""
    return SYSTEM_NAMES.get(kind, kind.replace("_", " ").title())


def thing_name(ledger_target: str) -> str:
    """What a posting is called ("the receipt"); "the record" when unknown."""
    return THINGS.get(ledger_target, "the record")


@dataclass(frozen=True)
class Explained:
    """A failure told plainly, and the technical detail for whoever supports the system."""

    reason: str
    detail: str


def _said(exc: ApiError) -> str:
    """What the remote said; the whole message when the client could not single it out."""
    text = (exc.remote_message or exc.message or "").strip().rstrip(".")
    return text or "no reason given"


def failure(exc: BaseException, *, system: str, thing: str, detail: str) -> Explained:
    """Why writing ``thing`` to ``system`` failed, as a finance user would want it said.

    ``detail`` is the technical text (already redacted) kept beside the plain reason.
    """
    name = system_name(system)
    if isinstance(exc, RateLimited):
        reason = f"{name} asked ml-connector to slow down; {thing} will be sent again by itself."
    elif isinstance(exc, AuthFailed):
        reason = (
            f"{name} refused ml-connector's sign-in, so {thing} was not sent. Check the "
            f"{name} connection's credentials (Test connection), then replay."
        )
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
    elif isinstance(exc, NotFound):
        reason = f"{name} refused {thing}: {_said(exc)}."
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
