"""Stripe's money in the simulator: events, charges, payment intents, balance transactions,
payouts, refunds and invoice payments."""

from __future__ import annotations

import logging
from typing import Any

from connections.sandbox.stripe.common import (
    EVENTS_REACH_SECONDS,
)

logger = logging.getLogger(__name__)


class MoneyApi:
    """Events and the money endpoints.

    A mixin of ``StripeSimulator``, whose state it uses."""

    objects: dict[str, dict[str, dict[str, Any]]]
    events: list[dict[str, Any]]

    def api_events(
        self, method: str, rest: list[str], p: dict[str, Any], req: dict[str, Any]
    ) -> Any:
        if rest:
            return self.get("event", rest[0])
        oldest = self.clock() - EVENTS_REACH_SECONDS
        types = set(p.get("types") or ([p["type"]] if p.get("type") else []))
        created = p.get("created") or {}
        gte = int(created.get("gte", 0)) if isinstance(created, dict) else 0
        items = [
            e
            for e in self.events
            if e["created"] >= max(oldest, gte) and (not types or e["type"] in types)
        ]
        return self._list(items, p, "/v1/events")

    def api_charges(
        self, method: str, rest: list[str], p: dict[str, Any], req: dict[str, Any]
    ) -> Any:
        return (
            self.get("charge", rest[0])
            if rest
            else self._list(list(self.objects["charge"].values()), p, "/v1/charges")
        )

    def api_payment_intents(
        self, method: str, rest: list[str], p: dict[str, Any], req: dict[str, Any]
    ) -> Any:
        return self.get("payment_intent", rest[0])

    def api_balance_transactions(
        self, method: str, rest: list[str], p: dict[str, Any], req: dict[str, Any]
    ) -> Any:
        if rest:
            return self.get("balance_transaction", rest[0])
        members = None
        if p.get("payout"):
            self.get("payout", p["payout"])  # 404 for an unknown payout, as Stripe answers
            members = set(self.payout_members.get(p["payout"], ()))
        items = [
            t
            for t in self.objects["balance_transaction"].values()
            if members is None or t["id"] in members
        ]
        page = self._list(items, p, "/v1/balance_transactions")
        if "data.source" in (p.get("expand") or []):
            page = {**page, "data": [self._expand_source(t) for t in page["data"]]}
        return page

    def _expand_source(self, txn: dict[str, Any]) -> dict[str, Any]:
        source = txn.get("source")
        if not isinstance(source, str):
            return txn
        kind = {"ch": "charge", "re": "refund", "po": "payout"}.get(source.split("_")[0])
        found = self.objects.get(kind or "", {}).get(source) if kind else None
        return {**txn, "source": found or source}

    def api_payouts(
        self, method: str, rest: list[str], p: dict[str, Any], req: dict[str, Any]
    ) -> Any:
        if rest:
            return self.get("payout", rest[0])
        return self._list(list(self.objects["payout"].values()), p, "/v1/payouts")

    def api_refunds(
        self, method: str, rest: list[str], p: dict[str, Any], req: dict[str, Any]
    ) -> Any:
        if method == "GET" and not rest:
            items = [
                r
                for r in self.objects["refund"].values()
                if not p.get("charge") or r["charge"] == p["charge"]
            ]
            return self._list(items, p, "/v1/refunds")
        if method == "POST" and not rest:
            return self.refund(
                p.get("charge", ""), int(p["amount"]) if p.get("amount") else None, request=req
            )
        return self.get("refund", rest[0])

    def api_invoice_payments(
        self, method: str, rest: list[str], p: dict[str, Any], req: dict[str, Any]
    ) -> Any:
        if rest:
            return self.get("invoice_payment", rest[0])
        wanted_pi = (p.get("payment") or {}).get("payment_intent")
        items = [
            ip
            for ip in self.objects["invoice_payment"].values()
            if (not p.get("invoice") or ip["invoice"] == p["invoice"])
            and (not wanted_pi or ip["payment"]["payment_intent"] == wanted_pi)
        ]
        return self._list(items, p, "/v1/invoice_payments")
