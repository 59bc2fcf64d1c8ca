"""Reconciling Stripe payments with CloudSuite receipts: Stripe's succeeded charges and refunds
created in the period against the receipts posted for them, one by one or as the parts of a
payout (``StripePaymentsToM3.reconciler``)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal
from typing import Any

from syncs.flows.keys import PAYMENT, REFUND, movement
from syncs.flows.reconciling import Collected, Posted, PostedRecord
from syncs.money import from_minor

logger = logging.getLogger(__name__)


def _signed_amount(sent: Any) -> Decimal | None:
    """The amount a posted receipt moved (payments positive, refunds negative)."""
    lines = (sent or {}).get("lines") if isinstance(sent, dict) else None
    if not lines:
        return None
    try:
        return sum((Decimal(str(line.get("PYAM", "0"))) for line in lines), Decimal(0))
    except ArithmeticError:
        return None


class StripeCollections:
    verb = "collected"
    collected_label = "Collected in Stripe"
    margin = timedelta(days=14)  # a payout's receipt may be posted two weeks either side

    def collected(self, client: Any, gte: int, lt: int, *, limit: int) -> tuple[Collected, bool]:
        """Stripe's succeeded charges (positive) and refunds (negative) created in [gte, lt)."""
        collected: Collected = {}
        for charge in client.list_charges(created_gte=gte, created_lt=lt):
            if charge.get("status") != "succeeded" or not charge.get("payment_intent"):
                continue
            currency = str(charge["currency"]).upper()
            amount = from_minor(int(charge["amount"]), currency)
            collected[PAYMENT.build(charge["payment_intent"])] = ("payment", currency, amount)
            if len(collected) >= limit:
                return collected, True
        for refund in client.list_refunds_created(created_gte=gte, created_lt=lt):
            if refund.get("status") != "succeeded":
                continue
            currency = str(refund["currency"]).upper()
            amount = from_minor(int(refund["amount"]), currency)
            collected[REFUND.build(refund["id"])] = ("refund", currency, -amount)
            if len(collected) >= limit:
                return collected, True
        return collected, False

    def posted(self, records: Iterable[PostedRecord]) -> Posted:
        """The receipts posted for Stripe movements — one by one, or as the parts of a payout:
        movement key → (signed amount, record)."""
        found: Posted = {}
        for record in records:
            data = record.source_payload or {}
            kind = data.get("kind")
            if kind == "payout":
                for part in data.get("parts") or []:
                    if part.get("kind") in ("payment", "refund"):
                        amount = from_minor(int(part["amount"]), str(part["currency"]).upper())
                        sign = 1 if part["kind"] == "payment" else -1
                        found[movement(part["kind"], part["id"])] = (amount * sign, record.ref)
            elif kind in ("payment", "refund"):
                amount = _signed_amount(record.sent_payload)
                if amount is not None:
                    found[movement(kind, record.source_key)] = (amount, record.ref)
        return found
