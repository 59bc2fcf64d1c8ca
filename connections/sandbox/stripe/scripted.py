"""What customers and banks do in the Stripe simulator (sandbox actions): charge, pay an
invoice, refund, pay out, dispute; and the demo's background activity."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from connections.sandbox.base import json_response
from connections.sandbox.stripe.common import (
    StripeError,
)

logger = logging.getLogger(__name__)


class ScriptedCustomers:
    """Sandbox actions standing in for customers and banks.

    A mixin of ``StripeSimulator``, whose state it uses."""

    objects: dict[str, dict[str, dict[str, Any]]]
    events: list[dict[str, Any]]

    # -- what customers and banks do (sandbox actions) --------------------------------------

    def charge(
        self,
        *,
        amount: int,
        currency: str,
        customer: str | None = None,
        metadata: dict[str, str] | None = None,
        request: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A successful card payment: payment intent, charge and balance transaction."""
        req = request or {"id": None, "idempotency_key": None}
        fee = round(amount * self.fee_percent / 100) + self.fee_fixed
        txn = self.new(
            "balance_transaction",
            amount=amount,
            currency=currency,
            fee=fee,
            net=amount - fee,
            type="charge",
            status="pending",
            fee_details=[
                {
                    "amount": fee,
                    "currency": currency,
                    "type": "stripe_fee",
                    "description": "Stripe processing fees",
                    "application": None,
                }
            ],
        )
        intent = self.new(
            "payment_intent",
            amount=amount,
            amount_received=amount,
            currency=currency,
            customer=customer,
            status="succeeded",
            metadata=dict(metadata or {}),
        )
        charge = self.new(
            "charge",
            amount=amount,
            amount_captured=amount,
            amount_refunded=0,
            currency=currency,
            customer=customer,
            paid=True,
            captured=True,
            refunded=False,
            disputed=False,
            status="succeeded",
            payment_intent=intent["id"],
            balance_transaction=txn["id"],
            metadata=dict(metadata or {}),
        )
        txn["source"] = charge["id"]
        intent["latest_charge"] = charge["id"]
        self._event("charge.succeeded", charge, req)
        self._event("payment_intent.succeeded", intent, req)
        return charge

    def pay_invoice(
        self, invoice_id: str, amount: int | None = None, request: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        req = request or {"id": None, "idempotency_key": None}
        invoice = self.get("invoice", invoice_id)
        if invoice["status"] != "open":
            raise StripeError(
                400,
                "invalid_request_error",
                f"Invoice is {invoice['status']}; only open invoices can be paid.",
                code="invoice_not_open",
            )
        amount = invoice["amount_remaining"] if amount is None else amount
        charge = self.charge(
            amount=amount, currency=invoice["currency"], customer=invoice["customer"], request=req
        )
        self.new(
            "invoice_payment",
            invoice=invoice["id"],
            amount_paid=amount,
            amount_requested=amount,
            currency=invoice["currency"],
            is_default=True,
            status="paid",
            payment={"type": "payment_intent", "payment_intent": charge["payment_intent"]},
            status_transitions={"paid_at": self.clock(), "canceled_at": None},
        )
        invoice["amount_paid"] += amount
        invoice["amount_remaining"] = max(0, invoice["amount_due"] - invoice["amount_paid"])
        invoice["attempted"], invoice["attempt_count"] = True, invoice["attempt_count"] + 1
        if invoice["amount_remaining"] == 0:
            invoice["status"] = "paid"
            invoice["status_transitions"]["paid_at"] = self.clock()
            self._event("invoice.paid", invoice, req, {"status": "open"})
        return invoice

    def refund(
        self, charge_id: str, amount: int | None = None, request: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        req = request or {"id": None, "idempotency_key": None}
        charge = self.get("charge", charge_id)
        amount = charge["amount"] - charge["amount_refunded"] if amount is None else amount
        if amount <= 0 or amount > charge["amount"] - charge["amount_refunded"]:
            raise StripeError(
                400,
                "invalid_request_error",
                "Refund amount is greater than the unrefunded amount on the charge.",
                "amount",
            )
        refund = self.new(
            "refund",
            amount=amount,
            charge=charge["id"],
            currency=charge["currency"],
            payment_intent=charge["payment_intent"],
            status="succeeded",
            reason="requested_by_customer",
        )
        txn = self._debit(amount, charge["currency"], "refund", refund["id"])
        refund["balance_transaction"] = txn["id"]
        previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        charge["refunds"] = {
            "object": "list",
            "has_more": False,
            "data": [r for r in self.objects["refund"].values() if r["charge"] == charge["id"]],
            "url": f"/v1/charges/{charge['id']}/refunds",
        }
        self._event("charge.refunded", charge, req, previous)
        self._event("refund.created", refund, req)
        return refund

    def payout(self, currency: str | None = None) -> list[dict[str, Any]]:
        """Pay out, per currency, every charge and refund not paid out yet (an automatic
        payout): the payout's own balance transaction, ``payout.created`` and ``payout.paid``."""
        paid_out = {t for members in self.payout_members.values() for t in members}
        by_currency: dict[str, list[dict[str, Any]]] = {}
        for txn in self.objects["balance_transaction"].values():
            if txn["type"] in ("charge", "refund") and txn["id"] not in paid_out:
                if currency is None or txn["currency"] == currency.lower():
                    by_currency.setdefault(txn["currency"], []).append(txn)
        req = {"id": None, "idempotency_key": None}
        payouts = []
        for cur, txns in sorted(by_currency.items()):
            amount = sum(t["net"] for t in txns)
            if amount <= 0:
                continue
            for txn in txns:
                txn["status"] = "available"
            now = self.clock()
            payout = self.new(
                "payout",
                amount=amount,
                currency=cur,
                arrival_date=now,
                automatic=True,
                description="STRIPE PAYOUT",
                method="standard",
                source_type="card",
                status="paid",
                type="bank_account",
                reconciliation_status="completed",
                metadata={},
            )
            own = self._debit(amount, cur, "payout", payout["id"])
            payout["balance_transaction"] = own["id"]
            self.payout_members[payout["id"]] = [t["id"] for t in txns] + [own["id"]]
            self._event("payout.created", {**payout, "status": "pending"}, req)
            self._event("payout.paid", payout, req, {"status": "in_transit"})
            payouts.append(payout)
        return payouts

    def _debit(self, amount: int, currency: str, kind: str, source: str) -> dict[str, Any]:
        """A balance transaction taking ``amount`` out of the balance, without a fee (a refund,
        a payout)."""
        return self.new(
            "balance_transaction",
            amount=-amount,
            currency=currency,
            fee=0,
            net=-amount,
            type=kind,
            status="available",
            fee_details=[],
            source=source,
        )

    def dispute(self, charge_id: str) -> dict[str, Any]:
        charge = self.get("charge", charge_id)
        dispute = self.new(
            "dispute",
            amount=charge["amount"],
            charge=charge["id"],
            currency=charge["currency"],
            payment_intent=charge["payment_intent"],
            reason="fraudulent",
            status="needs_response",
        )
        charge["disputed"] = True
        self._event("charge.dispute.created", dispute, {"id": None, "idempotency_key": None})
        return dispute

    def act(self, action: Callable[[], Any]) -> Any:
        """Run a sandbox action and deliver the events it raised (as Stripe would)."""
        with self.lock:
            result = action()
            events = self._take_pending()
        self.webhooks.deliver(events)
        return result

    def _take_pending(self) -> list[dict[str, Any]]:
        """Events raised by the change just made, to deliver once it is complete."""
        events, self.pending = self.pending, []
        return events

    def control_action(self, request: Request) -> Response:
        p = request.get_json(force=True, silent=True) or {}
        action = request.path.removeprefix("/_sandbox/")
        try:
            if action == "pay_invoice":
                return json_response(
                    self.act(lambda: self.pay_invoice(p["invoice"], p.get("amount")))
                )
            if action == "refund":
                return json_response(self.act(lambda: self.refund(p["charge"], p.get("amount"))))
            if action == "dispute":
                return json_response(self.act(lambda: self.dispute(p["charge"])))
            if action == "payout":  # {"currency": "eur"} or every currency
                return json_response({"payouts": self.act(lambda: self.payout(p.get("currency")))})
            if action == "webhook_endpoints":
                self.webhooks.endpoints = [
                    e for e in self.webhooks.endpoints if e["url"] != p["url"]
                ]
                self.webhooks.endpoints.append(
                    {
                        "url": p["url"],
                        "secret": p["secret"],
                        "enabled_events": p.get("enabled_events") or ["*"],
                    }
                )
                return json_response({"registered": p["url"]})
            if action == "reset":  # {"keep": ["customer"]} keeps those objects
                with self.lock:
                    keep = set(p.get("keep") or [])
                    self.objects = {k: (v if k in keep else {}) for k, v in self.objects.items()}
                    self.events, self.idempotency = [], {}
                    self.api_requests = 0
                return json_response({"reset": True})
            if action == "webhook_mode":
                for key in ("duplicate", "reorder", "drop_next"):
                    if key in p:
                        setattr(self.webhooks, key, p[key])
                return json_response({"ok": True})
        except StripeError as exc:
            return exc.response()
        except KeyError as exc:
            return json_response({"error": f"missing {exc}"}, 400)
        return super().control_action(request)

    def activity(self, rng: Any) -> str:
        paid = self.pay_random_open_invoices(self.activity_share, rng)
        return f"customers paid {len(paid)} Stripe invoice(s)" if paid else ""

    def pay_random_open_invoices(
        self, share: float = 0.5, rng: random.Random | None = None
    ) -> list[str]:
        """Pay a share of the open invoices (the demo's customers at work)."""
        rng = rng or random.Random()
        open_ids = [i["id"] for i in self.objects["invoice"].values() if i["status"] == "open"]
        chosen = [i for i in open_ids if rng.random() < share]
        for invoice_id in chosen:
            self.act(lambda invoice_id=invoice_id: self.pay_invoice(invoice_id))
        return chosen
