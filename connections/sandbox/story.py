"""The demo's story: besides customers paying at random, the sandbox's users make, once each,
the cases a finance reviewer must see — a customer who pays an invoice in Stripe that was
partly paid by bank transfer already (an overpayment), and a card payment disputed.

Together with a currency the demo leaves unmapped (GBP receipts), they put real items in the
review queue within minutes of ``make demo``, so a newcomer sees the whole loop: flagged, the
fix, the replay.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from connections.sandbox.m3 import M3Simulator
from connections.sandbox.stripe import StripeSimulator

logger = logging.getLogger(__name__)


class DemoStory:
    """Plays each case once, as soon as the sandbox holds what it needs."""

    def __init__(self, m3: M3Simulator, stripe: StripeSimulator) -> None:
        self.m3, self.stripe = m3, stripe
        self.done: set[str] = set()

    def tick(self) -> str:
        """One step of the story: what happened ("" when nothing did)."""
        for name, step in (("overpayment", self._overpayment), ("dispute", self._dispute)):
            if name not in self.done:
                happened = step()
                if happened:
                    self.done.add(name)
                    return happened
        return ""

    def _overpayment(self) -> str:
        """A customer pays 40 % by bank transfer (posted in CloudSuite by hand), then the whole
        invoice by card in Stripe."""
        for invoice in list(self.stripe.objects["invoice"].values()):
            meta = invoice.get("metadata") or {}
            if invoice["status"] != "open" or not meta.get("m3_invoice"):
                continue
            with self.m3.lock:
                found = self.m3.state.invoice(meta.get("m3_customer", ""), meta["m3_invoice"])
                if found is None or self.m3.state.open_amount(found) != found["CUAM"]:
                    continue
                part = (found["CUAM"] * Decimal("0.4")).quantize(Decimal("0.01"))
                self.m3.state.add_receipt(found["CUNO"], found["CINO"], part)
            self.stripe.act(lambda invoice=invoice: self.stripe.pay_invoice(invoice["id"]))
            return (
                f"customer {found['CUNO']} paid {part} {found['CUCD']} of invoice "
                f"{found['CINO']} by bank transfer, then the whole invoice by card"
            )
        return ""

    def _dispute(self) -> str:
        """A customer disputes a card payment of a paid invoice."""
        charges: list[dict[str, Any]] = [
            c
            for c in self.stripe.objects["charge"].values()
            if c.get("status") == "succeeded" and not c.get("disputed") and c.get("customer")
        ]
        if not charges:
            return ""
        charge = charges[0]
        self.stripe.act(lambda: self.stripe.dispute(charge["id"]))
        return f"a customer disputed card payment {charge['id']}"
