"""Turns Stripe events into money movements the ERP understands.

One payment can announce itself three times (``invoice.paid``, ``charge.succeeded``,
``payment_intent.succeeded``); each becomes the same movement, keyed by its payment intent, so
the posting ledger posts it once.  Refunds are keyed by refund id, disputes by dispute id.  The
CloudSuite invoice comes from the Stripe invoice's metadata (or, for a payment made outside an
invoice, from the payment's own metadata).

With payout batches (``payouts=True``) payments and refunds are not movements of their own:
``payout.paid`` is, keyed by payout id, with every charge and refund the payout paid out as its
parts — so one receipt batch equals one bank deposit.  Disputes are flagged either way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from connections.providers.stripe import StripeProvider
from syncs.flows.base import FlowContext, ReadWindow, Unit

logger = logging.getLogger(__name__)

# Stripe's events list reaches back 30 days (an hour's margin for clock differences).
EVENTS_WINDOW = ReadWindow(
    "created", Unit.EPOCH_S, overlap=timedelta(minutes=5), reach=timedelta(days=30, hours=-1)
)


def new_events(ctx: FlowContext[StripeProvider, Any], types: Sequence[str]) -> list[dict]:
    """Stripe's events of ``types`` in the read window that no webhook delivery has processed
    for this flow, oldest first; everything listed is marked read."""
    events = list(ctx.source.list_events(since=int(ctx.window_start or 0), types=types))
    if events:  # the next poll starts there (less the overlap)
        ctx.mark_read(str(max(e["created"] for e in events)))
    seen = ctx.events_processed(e["id"] for e in events)
    return [e for e in events if e["id"] not in seen]


M3_KEYS = ("m3_invoice", "m3_invoice_year", "m3_customer", "m3_currency", "m3_amount")


def _m3(*sources: dict[str, Any] | None) -> dict[str, str]:
    for source in sources:
        metadata = (source or {}).get("metadata") or {}
        if metadata.get("m3_invoice"):
            return {k: metadata[k] for k in M3_KEYS if k in metadata}
    return {}


def _movement(
    kind: str,
    object_id: str,
    event: dict[str, Any],
    *,
    amount: int,
    currency: str,
    invoice: dict[str, Any] | None,
    extra: dict[str, Any] | None = None,
    fee: int = 0,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "id": object_id,
        "event_id": event["id"],
        "event_type": event["type"],
        "created": event["created"],
        "amount": int(amount),
        "currency": currency.lower(),
        "fee": int(fee),
        "stripe_invoice": invoice["id"] if invoice else None,
        "m3": _m3(invoice, extra),
    }


def _payment(
    stripe: StripeProvider,
    event: dict[str, Any],
    intent_id: str,
    invoice: dict[str, Any] | None = None,
    amount: int | None = None,
) -> dict[str, Any]:
    intent = stripe.get_payment_intent(intent_id)
    invoice = invoice or stripe.invoice_for_payment_intent(intent_id)
    charge = stripe.get_charge(intent["latest_charge"]) if intent.get("latest_charge") else {}
    return _movement(
        "payment",
        intent_id,
        event,
        amount=amount if amount is not None else intent["amount"],
        currency=intent["currency"],
        invoice=invoice,
        extra=intent,
        fee=stripe.get_fee(charge.get("balance_transaction")),
    )


PAYMENT_EVENTS = ("invoice.paid", "payment_intent.succeeded", "charge.succeeded", "charge.refunded")


def _part(stripe: StripeProvider, txn: dict[str, Any]) -> dict[str, Any]:
    """One balance transaction of a payout, as a line of its receipt batch."""
    source = txn.get("source") if isinstance(txn.get("source"), dict) else {}
    kind = {"charge": "payment", "payment": "payment", "refund": "refund"}.get(txn["type"])
    intent = source.get("payment_intent")
    if kind == "refund" and not intent and source.get("charge"):
        intent = stripe.get_charge(source["charge"]).get("payment_intent")
    invoice = stripe.invoice_for_payment_intent(intent) if kind and intent else None
    return {
        "kind": kind or "other",
        "type": txn["type"],
        "id": (intent if kind == "payment" else source.get("id")) or txn["id"],
        "amount": abs(int(txn["amount"])),
        "fee": int(txn.get("fee") or 0),
        "currency": str(txn["currency"]).lower(),
        "m3": _m3(invoice, source),
    }


def _payout(stripe: StripeProvider, event: dict[str, Any], payout: dict[str, Any]) -> dict:
    movement = _movement(
        "payout",
        payout["id"],
        event,
        amount=payout["amount"],
        currency=payout["currency"],
        invoice=None,
    )
    movement["arrival_date"] = payout.get("arrival_date")
    movement["parts"] = [_part(stripe, t) for t in stripe.payout_items(payout["id"])]
    return movement


def known_keys(event: dict[str, Any], *, payouts: bool = False) -> list[str] | None:
    """The ledger keys of the movements an event stands for, when the event alone says so
    (no request needed); None when only Stripe can tell (``invoice.paid``: which payments)."""
    kind, obj = event["type"], event["data"]["object"]
    if kind == "payout.paid":
        return [f"payout:{obj['id']}"] if payouts else []
    if payouts and kind in PAYMENT_EVENTS:
        return []
    if kind == "payment_intent.succeeded":
        return [f"payment:{obj['id']}"]
    if kind == "charge.succeeded":
        return [f"payment:{obj['payment_intent']}"] if obj.get("payment_intent") else []
    if kind == "charge.refunded":
        refunds = (obj.get("refunds") or {}).get("data")
        if refunds is None or (obj.get("refunds") or {}).get("has_more"):
            return None
        return [f"refund:{r['id']}" for r in refunds if r.get("status") == "succeeded"]
    if kind in ("invoice.paid", "charge.dispute.created"):
        return None  # which payments an invoice had (or a dispute's flag) needs Stripe
    return []


def keys(
    stripe: StripeProvider, event: dict[str, Any], *, payouts: bool = False
) -> list[str] | None:
    """The ledger keys of an event's movements at the least cost: from the event itself, or
    for ``invoice.paid`` from one listing of the invoice's payments; None when only the full
    details can tell (a dispute)."""
    found = known_keys(event, payouts=payouts)
    if found is None and event["type"] == "invoice.paid":
        payments = stripe.invoice_payments(invoice=event["data"]["object"]["id"])
        found = [
            f"payment:{p['payment']['payment_intent']}"
            for p in payments
            if p["payment"].get("payment_intent")
        ]
    return found


def movements(
    stripe: StripeProvider, event: dict[str, Any], *, payouts: bool = False
) -> list[dict[str, Any]]:
    """The money movements an event stands for (empty for events of no interest)."""
    kind, obj = event["type"], event["data"]["object"]
    if kind == "payout.paid":
        return [_payout(stripe, event, obj)] if payouts and obj.get("amount", 0) > 0 else []
    if payouts and kind in PAYMENT_EVENTS:
        return []  # posted with the payout that pays it out
    if kind == "invoice.paid":
        return [
            _payment(
                stripe, event, p["payment"]["payment_intent"], invoice=obj, amount=p["amount_paid"]
            )
            for p in stripe.invoice_payments(invoice=obj["id"])
            if p["payment"].get("payment_intent")
        ]
    if kind == "payment_intent.succeeded":
        return [_payment(stripe, event, obj["id"])]
    if kind == "charge.succeeded" and obj.get("payment_intent"):
        return [_payment(stripe, event, obj["payment_intent"])]
    if kind not in ("charge.refunded", "charge.dispute.created"):
        return []
    intent = obj.get("payment_intent")
    invoice = stripe.invoice_for_payment_intent(intent) if intent else None
    if kind == "charge.refunded":
        return [
            _movement(
                "refund",
                r["id"],
                event,
                amount=r["amount"],
                currency=r["currency"],
                invoice=invoice,
                extra=obj,
            )
            for r in stripe.list_refunds(obj["id"])
            if r.get("status") == "succeeded"
        ]
    return [
        _movement(
            "dispute",
            obj["id"],
            event,
            amount=obj["amount"],
            currency=obj["currency"],
            invoice=invoice,
        )
    ]
