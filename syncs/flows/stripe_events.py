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
from syncs.flows.keys import PAYMENT, PAYOUT, REFUND

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


class Reads:
    """A poll's reads of Stripe, each object read once and most in bulk.

    The events themselves carry the invoice, payment intent or charge they announce; the
    payments of each paid invoice are listed side by side (``ctx.in_parallel``); the fees come
    from one page of balance transactions (their sources expanded) per hundred payments.  What
    these leave out is fetched on its own, once.  It answers the calls the movement builders
    make of the provider, so the webhook path (one event, the provider itself) and the poll
    share one way of turning events into movements.  An event's object is a snapshot: one
    without the link it needs (a charge not yet given its balance transaction) is read afresh.
    """

    def __init__(self, stripe: StripeProvider) -> None:
        self.stripe = stripe
        self.intents: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.fees: dict[str, int] = {}
        self.paid: dict[str, list[dict[str, Any]]] = {}  # invoice id → its invoice payments
        self.invoice_of: dict[str, str | None] = {}  # payment intent → the invoice it paid
        self.refunds: dict[str, list[dict[str, Any]]] = {}  # charge id → its refunds
        self.payouts: dict[str, list[dict[str, Any]]] = {}  # payout id → what it paid out

    def links(self, ctx: FlowContext[StripeProvider, Any], events: Sequence[dict]) -> None:
        """What says which payments ``events`` stand for: each paid invoice's payments (side
        by side) and each paid-out payout's balance transactions."""
        for event in events:
            kind, obj = event["type"], event["data"]["object"]
            if kind == "invoice.paid":
                self.invoices[obj["id"]] = obj
            elif kind == "payment_intent.succeeded" and obj.get("latest_charge"):
                self.intents[obj["id"]] = obj
            elif kind == "charge.succeeded" and obj.get("balance_transaction"):
                self.charges[obj["id"]] = obj
        paid = {e["data"]["object"]["id"] for e in events if e["type"] == "invoice.paid"}
        self._many(ctx, sorted(paid - set(self.paid)), _invoice_payments, self.paid)
        for invoice, payments in self.paid.items():
            for p in payments:
                if intent := _intent_of(p):
                    self.invoice_of.setdefault(intent, invoice)
        payouts = {e["data"]["object"]["id"] for e in events if e["type"] == "payout.paid"}
        self._many(ctx, sorted(payouts - set(self.payouts)), _payout_items, self.payouts)

    def prefetch(self, ctx: FlowContext[StripeProvider, Any], events: Sequence[dict]) -> None:
        """Read, side by side and before any movement is built, what ``events`` will need."""
        self.links(ctx, events)
        intents = {
            e["data"]["object"]["payment_intent"]
            for e in events
            if e["type"] == "charge.succeeded" and e["data"]["object"].get("payment_intent")
        }
        intents |= {
            e["data"]["object"]["id"] for e in events if e["type"] == "payment_intent.succeeded"
        }
        if any(e["type"] == "invoice.paid" for e in events):
            for event in events:
                if event["type"] == "invoice.paid":
                    payments = self.paid.get(event["data"]["object"]["id"], [])
                    intents |= {i for p in payments if (i := _intent_of(p))}
        self._many(ctx, sorted(intents - set(self.intents)), _get_intent, self.intents)
        in_payouts = [t for ts in self.payouts.values() for t in ts]  # only their invoices
        linked = intents | {
            i
            for t in in_payouts
            if isinstance(t.get("source"), dict) and (i := t["source"].get("payment_intent"))
        }
        unlinked = sorted(i for i in linked if i not in self.invoice_of)
        self._many(ctx, unlinked, _invoice_id_for, self.invoice_of)
        wanted = {self.invoice_of[i] for i in linked if self.invoice_of.get(i)}
        self._many(ctx, sorted(wanted - set(self.invoices)), _get_invoice, self.invoices)
        charges = {self.intents[i].get("latest_charge") for i in intents if i in self.intents}
        self._many(ctx, sorted(charges - set(self.charges) - {None}), _get_charge, self.charges)
        self._fees(events)

    def _many(
        self,
        ctx: FlowContext[StripeProvider, Any],
        keys: Sequence[str],
        read: Any,
        into: dict[str, Any],
    ) -> None:
        """``read(stripe, key)`` for each key, side by side; a failed read is left out (it is
        read again, on its own, when a movement needs it — and fails there, in the open)."""
        for key, result in zip(
            keys, ctx.in_parallel(lambda key: read(ctx.source, key), list(keys)), strict=True
        ):
            if not isinstance(result, Exception):
                into[key] = result

    def _fees(self, events: Sequence[dict]) -> None:
        """The fees of the charges read, from the balance transactions of their time span."""
        wanted = {
            c["balance_transaction"]: c["created"]
            for c in self.charges.values()
            if isinstance(c.get("balance_transaction"), str)
            and c["balance_transaction"] not in self.fees
        }
        if len(wanted) < 2:
            return  # one is as cheap on its own
        newest = max(e["created"] for e in events) + 1
        budget = len(wanted) // 100 + 2  # pages; what is still missing then is read on its own
        seen = 0
        for txn in self.stripe.balance_transactions(
            created_gte=min(wanted.values()), created_lte=newest
        ):
            self.fees[txn["id"]] = int(txn.get("fee") or 0)
            source = txn.get("source")
            if isinstance(source, dict) and source.get("object") == "charge":
                self.charges.setdefault(source["id"], source)
            wanted.pop(txn["id"], None)
            seen += 1
            if not wanted or seen >= 100 * budget:
                return

    # -- what the movement builders ask ------------------------------------------------------

    def invoice_payments(self, *, invoice: str) -> list[dict[str, Any]]:
        if invoice not in self.paid:
            self.paid[invoice] = self.stripe.invoice_payments(invoice=invoice)
        return self.paid[invoice]

    def get_payment_intent(self, intent_id: str) -> dict[str, Any]:
        if intent_id not in self.intents:
            self.intents[intent_id] = self.stripe.get_payment_intent(intent_id)
        return self.intents[intent_id]

    def get_invoice(self, invoice_id: str) -> dict[str, Any]:
        if invoice_id not in self.invoices:
            self.invoices[invoice_id] = self.stripe.get_invoice(invoice_id)
        return self.invoices[invoice_id]

    def invoice_for_payment_intent(self, payment_intent: str) -> dict[str, Any] | None:
        if payment_intent not in self.invoice_of:
            self.invoice_of[payment_intent] = _invoice_id_for(self.stripe, payment_intent)
        invoice = self.invoice_of[payment_intent]
        return self.get_invoice(invoice) if invoice else None

    def get_charge(self, charge_id: str) -> dict[str, Any]:
        if charge_id not in self.charges:
            self.charges[charge_id] = self.stripe.get_charge(charge_id)
        return self.charges[charge_id]

    def get_fee(self, balance_transaction: str | None) -> int:
        if not balance_transaction:
            return 0
        if balance_transaction not in self.fees:
            self.fees[balance_transaction] = self.stripe.get_fee(balance_transaction)
        return self.fees[balance_transaction]

    def list_refunds(self, charge_id: str) -> list[dict[str, Any]]:
        if charge_id not in self.refunds:
            self.refunds[charge_id] = self.stripe.list_refunds(charge_id)
        return self.refunds[charge_id]

    def payout_items(self, payout_id: str) -> list[dict[str, Any]]:
        if payout_id not in self.payouts:
            self.payouts[payout_id] = self.stripe.payout_items(payout_id)
        return self.payouts[payout_id]


def _intent_of(payment: dict[str, Any]) -> str | None:
    return (payment.get("payment") or {}).get("payment_intent")


def _invoice_payments(stripe: StripeProvider, invoice_id: str) -> list[dict[str, Any]]:
    return stripe.invoice_payments(invoice=invoice_id)


def _payout_items(stripe: StripeProvider, payout_id: str) -> list[dict[str, Any]]:
    return stripe.payout_items(payout_id)


def _get_intent(stripe: StripeProvider, intent_id: str) -> dict[str, Any]:
    return stripe.get_payment_intent(intent_id)


def _get_invoice(stripe: StripeProvider, invoice_id: str) -> dict[str, Any]:
    return stripe.get_invoice(invoice_id)


def _get_charge(stripe: StripeProvider, charge_id: str) -> dict[str, Any]:
    return stripe.get_charge(charge_id)


def _invoice_id_for(stripe: StripeProvider, payment_intent: str) -> str | None:
    """The invoice a payment intent paid, by id (None: it paid none)."""
    payments = stripe.invoice_payments(payment_intent=payment_intent)
    return payments[0]["invoice"] if payments else None


Stripe = StripeProvider | Reads  # what the movement builders read from

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
        "customer_name": str((invoice or {}).get("customer_name") or ""),
        "m3": _m3(invoice, extra),
    }


def _payment(
    stripe: Stripe,
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


def _part(stripe: Stripe, txn: dict[str, Any]) -> dict[str, Any]:
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


def _payout(stripe: Stripe, event: dict[str, Any], payout: dict[str, Any]) -> dict:
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
        return [PAYOUT.build(obj["id"])] if payouts else []
    if payouts and kind in PAYMENT_EVENTS:
        return []
    if kind == "payment_intent.succeeded":
        return [PAYMENT.build(obj["id"])]
    if kind == "charge.succeeded":
        return [PAYMENT.build(obj["payment_intent"])] if obj.get("payment_intent") else []
    if kind == "charge.refunded":
        refunds = (obj.get("refunds") or {}).get("data")
        if refunds is None or (obj.get("refunds") or {}).get("has_more"):
            return None
        return [REFUND.build(r["id"]) for r in refunds if r.get("status") == "succeeded"]
    if kind in ("invoice.paid", "charge.dispute.created"):
        return None  # which payments an invoice had (or a dispute's flag) needs Stripe
    return []


def keys(stripe: Stripe, event: dict[str, Any], *, payouts: bool = False) -> list[str] | None:
    """The ledger keys of an event's movements at the least cost: from the event itself, or
    for ``invoice.paid`` from one listing of the invoice's payments; None when only the full
    details can tell (a dispute)."""
    found = known_keys(event, payouts=payouts)
    if found is None and event["type"] == "invoice.paid":
        payments = stripe.invoice_payments(invoice=event["data"]["object"]["id"])
        found = [
            PAYMENT.build(p["payment"]["payment_intent"])
            for p in payments
            if p["payment"].get("payment_intent")
        ]
    return found


def movements(
    stripe: Stripe, event: dict[str, Any], *, payouts: bool = False
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
