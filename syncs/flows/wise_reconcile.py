"""Reconciling Wise transfers with CloudSuite payment journals: the transfers created in the
period whose money was sent, against the supplier-liability line journalled for each, net of
any reversal (``WiseTransfersToM3.reconciler``)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from syncs.flows.reconciling import Collected, Posted, PostedRecord

logger = logging.getLogger(__name__)


def _created(transfer: dict[str, Any]) -> int | None:
    raw = str(transfer.get("created") or "").replace("Z", "+00:00")
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if when.tzinfo is None:  # Wise writes UTC without an offset
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


class WisePayments:
    verb = "paid"
    collected_label = "Paid through Wise"
    margin = timedelta(0)

    def collected(self, client: Any, gte: int, lt: int, *, limit: int) -> tuple[Collected, bool]:
        """Wise transfers created in [gte, lt) whose money was sent: what the supplier got."""
        collected: Collected = {}
        for transfer in client.list_transfers(status="outgoing_payment_sent"):
            created = _created(transfer)
            if created is None or not gte <= created < lt:
                continue
            currency = str(transfer.get("targetCurrency") or "").upper()
            amount = Decimal(str(transfer.get("targetValue") or "0"))
            collected[f"transfer:{transfer['id']}"] = ("transfer", currency, amount)
            if len(collected) >= limit:
                return collected, True
        return collected, False

    def posted(self, records: Iterable[PostedRecord]) -> Posted:
        """The supplier-liability line of each transfer's journals, summed (a reversal counts
        against its payment): transfer key → (amount, the latest record)."""
        found: Posted = {}
        for record in records:
            lines = (record.sent_payload or {}).get("lines") or []
            if lines:
                key = f"transfer:{record.source_key}"
                before = found.get(key, (Decimal(0), record.ref))[0]
                found[key] = (before + Decimal(str(lines[0].get("CUAM") or "0")), record.ref)
        return found
