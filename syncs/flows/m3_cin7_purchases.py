"""CloudSuite purchase orders and their supplier invoices → Cin7 Core purchases.

Reads the purchase orders of the window (PPS200MI ``SearchHead`` on the order date, the query
the setting ``po_query``, ``PUDT:[{from} TO {to}]``; M3's search syntax is unverified per
tenant) with their heads and lines (two bulk requests), and for each the supplier invoice
CloudSuite holds for it (APS200MI, by ``PUNO``).  Each order becomes one Cin7 purchase with the
Approach ``INVOICE`` (setting ``approach``): ``POST /purchase`` — once, through the posting
ledger, found again by its note after a lost answer — then its order, authorised, with the lines;
then, when CloudSuite has the supplier invoice, the purchase invoice with its number, dates, the
lines, their tax rule and the Cin7 account of each line.  Cin7 refuses an invoice before its
order is authorised, so the steps go in that order; the order and invoice POSTs overwrite what a
repeat left, and an invoice Cin7 already authorised is recognised.

A line's account: its item's ``item_account`` mapping, else the setting ``default_account``; a
line with neither is flagged and nothing of the order is posted.  Its tax rule: the ``tax_rule``
mapping of its VAT code, else the setting ``tax_rule``.  The supplier must already be in Cin7
(the suppliers flow puts it there, its number in ``AdditionalAttribute1``): until then the order
waits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from connections.providers.cin7 import Cin7Core
from connections.providers.errors import Rejected
from connections.providers.infor_m3 import InforM3
from syncs.flows.base import (
    Flag,
    Flow,
    FlowContext,
    LoadResult,
    Mappings,
    Payload,
    Posting,
    ReadWindow,
    SourceRecord,
    Unit,
    Wait,
)

logger = logging.getLogger(__name__)

Context = FlowContext[InforM3, Cin7Core]


def _iso(day: str) -> str:
    return f"{day[:4]}-{day[4:6]}-{day[6:8]}T00:00:00" if len(day) == 8 else ""


class M3PurchasesToCin7(Flow[InforM3, Cin7Core]):
    key = "m3_cin7.purchases"
    label = "CloudSuite purchase orders and invoices → Cin7 Core purchases"
    source_kind = "infor_m3"
    target_kind = "cin7"
    stream = "purchases"
    ledger_target = "cin7.purchase"
    window = ReadWindow("PUDT", Unit.DATE, overlap=timedelta(days=7), reach=timedelta(days=365))

    def extract(self, ctx: Context) -> Iterator[SourceRecord]:
        today = datetime.now(UTC).strftime("%Y%m%d")
        query = str(self.options.get("po_query") or "PUDT:[{from} TO {to}]").format(
            **{"from": ctx.window_start or "19000101", "to": today}
        )
        orders = ctx.source.purchase_orders(query)
        posted = ctx.already_posted(f"cin7-purchase:{o['head']['PUNO']}" for o in orders)
        if len(posted) == len(orders):
            return  # nothing new: Cin7 is not asked anything
        attribute = str(self.options.get("vendor_attribute") or "AdditionalAttribute1")
        suppliers = {
            s.get(attribute): s["ID"] for s in ctx.target.list_suppliers() if s.get(attribute)
        }
        for order in sorted(orders, key=lambda o: (o["head"].get("PUDT", ""), o["head"]["PUNO"])):
            head = order["head"]
            if f"cin7-purchase:{head['PUNO']}" in posted:
                continue  # in Cin7 already: not read again, not listed again
            # One search per new order: neither APS200MI answer names an invoice's order, so a
            # search over many orders could not tell whose invoice is whose.
            invoices = ctx.source.search_supplier_invoices(f"PUNO:{head['PUNO']}")
            yield SourceRecord(
                head["PUNO"],
                {
                    "head": head,
                    "lines": order["lines"],
                    "invoice": invoices[0] if len(invoices) == 1 else None,
                    "supplier": suppliers.get(head.get("SUNO")),
                },
                watermark=head.get("PUDT"),
            )

    def prepare(self, ctx: Context, record: SourceRecord) -> SourceRecord:
        """Which of the order's line accounts Cin7's chart has (read once a run)."""
        codes = self.per_run(
            "cin7_chart", lambda: {str(a.get("Code")) for a in ctx.target.list_accounts()}
        )
        wanted = {self._account(line, ctx.mappings) for line in record.data["lines"]} - {""}
        missing = sorted(wanted - codes)
        return replace(record, data={**record.data, "missing_accounts": missing})

    reread = prepare

    def _account(self, line: dict[str, Any], mappings: Mappings) -> str:
        item = str(line.get("ITNO") or "")
        return str(mappings.get("item_account", item) or self.options.get("default_account") or "")

    def _line(self, line: dict[str, Any], mappings: Mappings) -> dict[str, Any] | str:
        item = str(line.get("ITNO") or "")
        account = self._account(line, mappings)
        if not account:
            return f"line {line.get('PNLI')} (item {item or 'none'}) has no Cin7 account mapped"
        quantity, price = Decimal(str(line.get("ORQA") or 0)), Decimal(str(line.get("PUPR") or 0))
        total = Decimal(str(line.get("LNAM") or quantity * price))
        tax_rule = mappings.get("tax_rule", line.get("VTCD") or "") or self.options.get(
            "tax_rule", "Tax Exempt"
        )
        return {
            "ProductID": "",
            "SKU": item,
            "Name": str(line.get("ITDS") or item)[:256],
            "Quantity": float(quantity),
            "Price": float(price),
            "Discount": 0,
            "Tax": 0,
            "TaxRule": tax_rule,
            "Account": str(account),
            "Comment": f"CloudSuite PO line {line.get('PNLI')}",
            "Total": float(total),
        }

    def map(self, record: SourceRecord, mappings: Mappings) -> Payload | Flag | Wait:
        data, number = record.data, record.source_key
        if not data.get("supplier"):
            return Wait(
                f"Purchase order {number}: supplier {data['head'].get('SUNO')} is not in Cin7 yet."
            )
        if not data["lines"]:
            return Flag(f"Purchase order {number} has no lines to send.")
        missing = data.get("missing_accounts") or []
        if missing:
            return Flag(
                f"Purchase order {number}: Cin7's chart has no account {', '.join(missing)} "
                "(it is read-only for ml-connector): map the items to accounts Cin7 has, then "
                "replay."
            )
        lines = []
        for line in data["lines"]:
            built = self._line(line, mappings)
            if isinstance(built, str):
                return Flag(f"Purchase order {number}: {built}; nothing of it was posted.")
            lines.append(built)
        invoice = data.get("invoice")
        payload: dict[str, Any] = {
            "purchase": {
                "SupplierID": data["supplier"],
                "Approach": str(self.options.get("approach") or "INVOICE"),
                "TaxRule": lines[0]["TaxRule"],
                "Note": f"CloudSuite PO {number}",
            },
            "lines": lines,
            "number": number,
        }
        if invoice:
            payload["invoice"] = {
                "InvoiceNumber": str(invoice.get("SINO") or ""),
                "InvoiceDate": _iso(str(invoice.get("IVDT") or "")),
                "InvoiceDueDate": _iso(str(invoice.get("DUDT") or "")),
                "Status": "AUTHORISED",
            }
        return Payload(payload, ledger_key=f"cin7-purchase:{number}")

    def load(self, ctx: Context, payload: Payload, posting: Posting | None) -> LoadResult:
        data = payload.data
        task = ctx.target.create_purchase(data["purchase"])
        return self._complete(ctx, data, task["ID"], "created")

    def _complete(self, ctx: Context, data: dict[str, Any], task_id: str, how: str) -> LoadResult:
        cin7 = ctx.target
        try:
            cin7.authorise_order(task_id, data["lines"])
        except Rejected as exc:
            if "Order status must be DRAFT" not in exc.message:
                raise
        note = f"Purchase {task_id} {how} in Cin7 with its order authorised"
        if "invoice" in data:
            try:
                cin7.create_purchase_invoice(
                    {"TaskID": task_id, **data["invoice"], "Lines": data["lines"]}
                )
                note += f" and invoice {data['invoice']['InvoiceNumber']}"
            except Rejected as exc:
                if "Invoice status must be DRAFT" not in exc.message:
                    raise
                note += f"; invoice {data['invoice']['InvoiceNumber']} was already there"
        return LoadResult(task_id, {"ID": task_id}, note + ".")

    def find_existing(self, ctx: Context, payload: Payload, posting: Posting) -> LoadResult | None:
        note = payload.data["purchase"]["Note"]
        found = [p for p in ctx.target.find_purchases(payload.data["number"]) if p.get("ID")]
        for purchase in found:
            if note in str(ctx.target.get_purchase(purchase["ID"]).get("Note") or ""):
                return self._complete(ctx, payload.data, purchase["ID"], "found again")
        return None
