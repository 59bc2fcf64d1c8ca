"""How a payment flow is reconciled at month-end, declared by the flow (``Flow.reconciler``).

A ``Reconciler`` reads what the payment system moved in a period (from the system itself, every
page) and says, from the records the flow posted, what was posted for each movement.  The
engine (``syncs.reconcile``) compares the two per currency and explains each difference; it
knows no system by name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any, Protocol

logger = logging.getLogger(__name__)

# movement key ("payment:pi_…") → (kind, currency, signed amount)
Collected = dict[str, tuple[str, str, Decimal]]
Posted = dict[str, tuple[Decimal, Any]]  # movement key → (amount posted, the record)


@dataclass(frozen=True)
class PostedRecord:
    """What the engine hands a reconciler of one confirmed posting (``ref``: the record)."""

    source_key: str
    source_payload: dict[str, Any]
    sent_payload: dict[str, Any]
    ref: Any


class Reconciler(Protocol):
    """A flow's month-end reconciliation."""

    verb: str  # what the system did with the money: "collected", "paid"
    collected_label: str  # the column of what it moved: "Collected in Stripe"
    margin: timedelta  # postings are looked for this far either side of the period

    def collected(self, client: Any, gte: int, lt: int, *, limit: int) -> tuple[Collected, bool]:
        """What moved in [gte, lt) (Unix times), and whether ``limit`` cut it short."""
        ...

    def posted(self, records: Iterable[PostedRecord]) -> Posted:
        """What was posted for each movement, from the flow's confirmed postings."""
        ...
