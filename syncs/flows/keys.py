"""The posting ledger's keys: one ``Thing`` per kind of thing posted, with how its key is built
and read back.

A key is the thing's prefix and its fields joined by ``:`` (``wise-quote:DIVI:SUNO:…``); keys
are stored, so their shape never changes.  A flow declares the things it posts (``Flow.posts``,
each in its target's ledger, ``Thing.target``) and the things of other flows it reads
(``Flow.reads``); a test proves every thing read is posted by some flow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Thing:
    """One kind of thing posted: its key prefix, its fields, and the ledger it is kept in
    (the ledger's ``target``, e.g. ``m3.receipt``)."""

    prefix: str
    fields: tuple[str, ...]
    target: str
    open_first: bool = False  # the first field may hold ":" (else the last may)

    def build(self, *values: Any) -> str:
        """The key of one thing (a value of each field, in order)."""
        if len(values) != len(self.fields):
            raise ValueError(f"{self.prefix} keys have {len(self.fields)} fields")
        return ":".join([self.prefix, *(str(v) for v in values)])

    def under(self, *values: Any) -> str:
        """The prefix every key beginning with these leading field values shares."""
        if len(values) >= len(self.fields):
            raise ValueError("give fewer values than the key has fields")
        return ":".join([self.prefix, *(str(v) for v in values), ""])

    def parse(self, key: str) -> dict[str, str]:
        """A key's fields by name; ``ValueError`` when it is not a key of this thing.  The
        last field (the first, with ``open_first``) takes whatever ``:`` are left over."""
        head, sep, rest = key.partition(":")
        if head != self.prefix or not sep:
            raise ValueError(f"{key[:80]!r} is not a {self.prefix} key")
        cut = len(self.fields) - 1
        parts = rest.rsplit(":", cut) if self.open_first else rest.split(":", cut)
        if len(parts) != len(self.fields):
            raise ValueError(f"{key[:80]!r} does not have the fields of a {self.prefix} key")
        return dict(zip(self.fields, parts, strict=True))

    def owns(self, key: str) -> bool:
        return key.startswith(self.prefix + ":")


# CloudSuite and IFS customers and invoices in Stripe
M3_CUSTOMER = Thing("customer", ("customer",), "stripe.customer")
IFS_CUSTOMER = Thing("ifs-customer", ("customer",), "stripe.customer")
M3_INVOICE = Thing("invoice", ("division", "year", "invoice"), "stripe.invoice")
IFS_INVOICE = Thing("ifs-invoice", ("company", "invoice"), "stripe.invoice")
# Stripe's money movements as CloudSuite receipts (payment:pi_…, refund:re_…, payout:po_…)
PAYMENT = Thing("payment", ("id",), "m3.receipt")
REFUND = Thing("refund", ("id",), "m3.receipt")
PAYOUT = Thing("payout", ("id",), "m3.receipt")
DISPUTE = Thing("dispute", ("id",), "m3.receipt")
# Stripe outcomes as IFS invoice notes
IFS_NOTE = Thing("note", ("id",), "ifs.invoice_note")
# CloudSuite suppliers as Wise recipients (a recipient is immutable: deleted, then made anew)
WISE_RECIPIENT = Thing("wise-recipient", ("supplier", "currency", "details"), "wise.recipient")
WISE_RECIPIENT_DELETED = Thing("wise-recipient-deleted", ("recipient",), "wise.recipient")
# Wise quotes for open CloudSuite supplier invoices, and the transfers journalled back
WISE_QUOTE = Thing(
    "wise-quote",
    ("division", "supplier", "invoice", "year", "currency", "amount", "day"),
    "wise.quote",
)
# the invoice is "DIVI:SUNO:SINO:INYR" as its quote names it ("" when no quote names one)
WISE_PAID = Thing("wise-paid", ("invoice", "transfer"), "m3.journal", open_first=True)
WISE_REVERSED = Thing("wise-reversed", ("transfer",), "m3.journal")
# Stampli invoices and payments in CloudSuite
AP_INVOICE = Thing(
    "ap-invoice", ("supplier", "invoice", "year", "total", "currency"), "m3.ap_invoice"
)
STAMPLI_PAYMENT = Thing("stampli-payment", ("payment",), "m3.journal")
# CloudSuite suppliers and purchase orders in Cin7 Core
CIN7_SUPPLIER = Thing("cin7-supplier", ("supplier",), "cin7.supplier")
CIN7_PURCHASE = Thing("cin7-purchase", ("order",), "cin7.purchase")

MOVEMENTS = {t.prefix: t for t in (PAYMENT, REFUND, PAYOUT, DISPUTE)}


def movement(kind: str, movement_id: str) -> str:
    """The key of a Stripe money movement of ``kind`` (payment, refund, payout, dispute)."""
    return MOVEMENTS[kind].build(movement_id)


def quoted_invoice(key: str) -> str:
    """The CloudSuite supplier invoice a Wise quote's key is for (``DIVI:SUNO:SINO:INYR``)."""
    fields = WISE_QUOTE.parse(key)
    return ":".join(fields[f] for f in ("division", "supplier", "invoice", "year"))


def supplier_invoice(invoice: dict[str, Any]) -> str:
    """A CloudSuite supplier invoice's AP identity (division, supplier, supplier invoice
    number, invoice year) as the Wise keys write it."""
    return ":".join(str(invoice.get(k, "")) for k in ("DIVI", "SUNO", "SINO", "INYR"))
