"""CloudSuite purchase orders and their supplier invoices → Cin7 Core purchases.

Reads the purchase orders of the window (PPS200MI ``SearchHead`` on the order date, the query
the setting ``po_query``, ``PUDT:[{from} TO {to}]``; M3's search syntax is unverified per
tenant) with their heads and lines (two bulk requests), and for each the supplier invoice
CloudSuite holds for it (APS200MI, by ``PUNO``).  Each order becomes one Cin7 purchase with the
Approach ``INVOICE`` (setting ``approach``): ``POST /purchase`` — once, through the posting
ledger — then its order, authorised, with the lines and a Memo; then, when CloudSuite has the
supplier invoice, the purchase invoice with its number, dates, the lines, their tax rule, tax
and the Cin7 account of each line.

Tax: each line's tax is what its Cin7 tax rule gives (``TaxPercent`` of ``/ref/tax``) on the
line's total; the rule is the ``tax_rule`` mapping of the line's VAT code, else the setting
``tax_rule``.  Before anything is posted the Cin7 invoice total (lines and tax) must equal the
CloudSuite invoice (``CUAM``) to the cent — a difference is a review item and nothing is sent —
and after posting the invoice Cin7 holds is read back and compared again.

After a lost answer, nothing is decided from an error's wording (Cin7 publishes none): a
purchase is found again through ``Search`` on its supplier (Search covers OrderNumber, Status,
Supplier, InvoiceNumber, CreditNoteNumber — not the note), each candidate read back by its ID
and recognised by its note; an order or invoice POST that is refused or unanswered is settled
by reading the order's or invoice's state back.

A line's account: its item's ``item_account`` mapping, else the setting ``default_account``; a
line with neither is flagged and nothing of the order is posted.  The supplier must already be
in Cin7 (the suppliers flow puts it there, its number in ``AdditionalAttribute1``): until then
the order waits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from connections.providers.cin7 import Cin7Core
from connections.providers.errors import OutcomeUnknown, Rejected
from connections.providers.infor_m3 import InforM3
from connections.providers.spec import choice, template
from syncs.flows import keys, kinds
from syncs.flows.base import (
    Flag,
    Flow,
    FlowContext,
    LoadResult,
    Lookups,
    Mappings,
    Payload,
    Posting,
    ReadWindow,
    SourceRecord,
    Summary,
    Unit,
    Wait,
    lookups_of,
    setting,
)
from syncs.flows.m3_cin7_suppliers import VENDOR_ATTRIBUTE

logger = logging.getLogger(__name__)

Context = FlowContext[InforM3, Cin7Core]
CENT = Decimal("0.01")


def _iso(day: str) -> str:
    return f"{day[:4]}-{day[4:6]}-{day[6:8]}T00:00:00" if len(day) == 8 else ""


@dataclass(frozen=True)
class InCin7Chart(Lookups):
    """What Cin7 has for an order's lines: the mapped accounts its chart lacks, and the percent
    of each tax rule the lines use (None: Cin7 has no such active purchase rule)."""

    missing_accounts: tuple[str, ...] = ()
    tax_rates: dict[str, str | None] = field(default_factory=dict)


class M3PurchasesToCin7(Flow[InforM3, Cin7Core]):
    key = "m3_cin7.purchases"
    label = "CloudSuite purchase orders and invoices → Cin7 Core purchases"
    source_kind = "infor_m3"
    target_kind = "cin7"
    stream = "purchases"
    ledger_target = "cin7.purchase"
    posting_name = "the purchase order"
    posts = (keys.CIN7_PURCHASE,)
    lookups = InCin7Chart
    mapping_kinds = (kinds.ITEM_ACCOUNT, kinds.TAX_RULE)
    window = ReadWindow("PUDT", Unit.DATE, overlap=timedelta(days=7), reach=timedelta(days=365))
    settings = (
        setting(
            "po_query",
            "Purchase order query",
            template("from", "to"),
            default="PUDT:[{from} TO {to}]",
            help="The CloudSuite search of purchase orders to send ({from} and {to}: dates).",
        ),
        VENDOR_ATTRIBUTE,
        setting(
            "default_account",
            "Default account",
            help="The Cin7 Core account of a line whose item has no item_account mapping "
            "(blank: such a line is flagged for review).",
        ),
        setting(
            "tax_rule",
            "Default tax rule",
            default="Tax Exempt",
            help="The Cin7 tax rule of a line whose VAT code has no tax_rule mapping.",
        ),
        setting(
            "approach",
            "Approach",
            choice("INVOICE", "STOCK"),
            default="INVOICE",
            help="Cin7 Core's purchase approach (contract: POST /purchase).",
        ),
    )

    def extract(self, ctx: Context) -> Iterator[SourceRecord]:
        today = datetime.now(UTC).strftime("%Y%m%d")
        query = self.setting("po_query").format(
            **{"from": ctx.window_start or "19000101", "to": today}
        )
        orders = ctx.source.purchase_orders(query)
        posted = ctx.ledger.confirmed(keys.CIN7_PURCHASE.build(o["head"]["PUNO"]) for o in orders)
        if len(posted) == len(orders):
            return  # nothing new: Cin7 is not asked anything
        attribute = self.setting("vendor_attribute")
        suppliers = {
            s.get(attribute): (s["ID"], str(s.get("Name") or ""))
            for s in ctx.target.list_suppliers()
            if s.get(attribute)
        }
        for order in sorted(orders, key=lambda o: (o["head"].get("PUDT", ""), o["head"]["PUNO"])):
            head = order["head"]
            if keys.CIN7_PURCHASE.build(head["PUNO"]) in posted:
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
                    "supplier": (suppliers.get(head.get("SUNO")) or (None, ""))[0],
                    "supplier_name": (suppliers.get(head.get("SUNO")) or (None, ""))[1],
                },
                watermark=head.get("PUDT"),
            )

    def prepare(self, ctx: Context, record: SourceRecord) -> InCin7Chart:
        """Which of the order's line accounts Cin7's chart lacks, and the percent of each tax
        rule its lines use (the chart and the tax rules read once a run)."""
        codes = self.chart(ctx.target)
        rates = self.per_run(
            "cin7_tax",
            lambda: {
                str(t.get("Name")): str(t.get("TaxPercent"))
                for t in ctx.target.list_tax_rules()
                if t.get("IsActive", True) and t.get("IsTaxForPurchase", True)
            },
        )
        lines = record.data["lines"]
        wanted = {self._account(line, ctx.mappings) for line in lines} - {""}
        rules = {self._tax_rule(line, ctx.mappings) for line in lines}
        return InCin7Chart(
            missing_accounts=tuple(sorted(wanted - codes.keys())),
            tax_rates={rule: rates.get(rule) for rule in sorted(rules)},
        )

    def _account(self, line: dict[str, Any], mappings: Mappings) -> str:
        item = str(line.get("ITNO") or "")
        return str(mappings.get("item_account", item) or self.setting("default_account") or "")

    def _tax_rule(self, line: dict[str, Any], mappings: Mappings) -> str:
        return str(mappings.get("tax_rule", line.get("VTCD") or "") or self.setting("tax_rule"))

    def _line(
        self, line: dict[str, Any], mappings: Mappings, rates: dict[str, str | None]
    ) -> dict[str, Any] | Flag:
        item = str(line.get("ITNO") or "")
        account = self._account(line, mappings)
        if not account:
            return Flag(
                f"line {line.get('PNLI')} (item {item or 'none'}) has no Cin7 account mapped",
                fix=("item_account", item) if item else None,
            )
        quantity, price = Decimal(str(line.get("ORQA") or 0)), Decimal(str(line.get("PUPR") or 0))
        total = (quantity * price).quantize(CENT, ROUND_HALF_UP)  # what Cin7 validates
        rule = self._tax_rule(line, mappings)
        rate = rates.get(rule)
        if rate is None:
            code = str(line.get("VTCD") or "")
            return Flag(
                f"Cin7 has no active purchase tax rule “{rule}” for VAT code {code or 'none'}: "
                "map the VAT code to a tax rule Cin7 has (a Cin7 tax rule mapping)",
                fix=("tax_rule", code) if code else None,
            )
        tax = (total * Decimal(rate) / 100).quantize(CENT, ROUND_HALF_UP)
        return {
            "ProductID": "",
            "SKU": item,
            "Name": str(line.get("ITDS") or item)[:256],
            "Quantity": float(quantity),
            "Price": float(price),
            "Discount": 0,
            "Tax": float(tax),
            "TaxRule": rule,
            "Account": str(account),
            "Comment": f"CloudSuite PO line {line.get('PNLI')}",
            "Total": float(total),
        }

    @staticmethod
    def _total(lines: list[dict[str, Any]]) -> Decimal:
        return sum(
            (Decimal(str(line["Total"])) + Decimal(str(line["Tax"])) for line in lines),
            Decimal(0),
        ).quantize(CENT)

    def summary(self, record: SourceRecord) -> Summary:
        data, head = record.data, record.data["head"]
        amount = Summary.amount_of((data.get("invoice") or {}).get("CUAM"))
        if amount is None:  # no supplier invoice yet: what the order's lines come to
            amount = sum(
                (
                    Decimal(str(line.get("ORQA") or 0)) * Decimal(str(line.get("PUPR") or 0))
                    for line in data["lines"]
                ),
                Decimal(0),
            ).quantize(CENT)
        return Summary(
            amount,
            str(head.get("CUCD") or ""),
            party=str(head.get("SUNO") or ""),
            party_name=str(data.get("supplier_name") or ""),
            document=record.source_key,
        )

    def map(self, record: SourceRecord, mappings: Mappings) -> Payload | Flag | Wait:
        data, number = record.data, record.source_key
        if not data.get("supplier"):
            return Wait(
                f"Purchase order {number}: supplier {data['head'].get('SUNO')} is not in Cin7 yet."
            )
        if not data["lines"]:
            return Flag(f"Purchase order {number} has no lines to send.")
        found = lookups_of(record, InCin7Chart)
        missing = found.missing_accounts
        if missing:
            return Flag(
                f"Purchase order {number}: Cin7's chart has no account {', '.join(missing)} "
                "(it is read-only for ml-connector): map the items to accounts Cin7 has, then "
                "replay."
            )
        lines = []
        for line in data["lines"]:
            built = self._line(line, mappings, found.tax_rates)
            if isinstance(built, Flag):
                return Flag(
                    f"Purchase order {number}: {built.reason}; nothing of it was posted.",
                    fix=built.fix,
                )
            lines.append(built)
        invoice = data.get("invoice")
        payload: dict[str, Any] = {
            "purchase": {
                "SupplierID": data["supplier"],
                "Approach": self.setting("approach"),
                "TaxRule": lines[0]["TaxRule"],
                "Note": f"CloudSuite PO {number}",
            },
            "lines": lines,
            "number": number,
            "memo": f"CloudSuite PO {number}",
            "supplier_name": data.get("supplier_name") or "",
        }
        if invoice:
            try:
                expected = Decimal(str(invoice.get("CUAM"))).quantize(CENT)
            except ArithmeticError:
                return Flag(f"Purchase order {number}: CloudSuite's invoice has no amount.")
            total = self._total(lines)
            if total != expected:
                return Flag(
                    f"Purchase order {number}: in Cin7 its invoice would total {total} "
                    f"{data['head'].get('CUCD') or ''} with tax, but CloudSuite's invoice "
                    f"{invoice.get('SINO')} is {expected}: check each VAT code's Cin7 tax rule "
                    "(tax rule mappings), then replay; nothing was posted."
                )
            payload["expected_total"] = str(expected)
            payload["invoice"] = {
                "InvoiceNumber": str(invoice.get("SINO") or ""),
                "InvoiceDate": _iso(str(invoice.get("IVDT") or "")),
                "InvoiceDueDate": _iso(str(invoice.get("DUDT") or "")),
                "Status": "AUTHORISED",
            }
        return Payload(payload, ledger_key=self.ledger_key(record))

    def ledger_key(self, record: SourceRecord) -> str:
        return keys.CIN7_PURCHASE.build(record.source_key)

    def load(self, ctx: Context, payload: Payload, posting: Posting | None) -> LoadResult:
        data = payload.data
        task = ctx.target.create_purchase(data["purchase"])
        return self._complete(ctx, data, task["ID"], "created")

    def _complete(self, ctx: Context, data: dict[str, Any], task_id: str, how: str) -> LoadResult:
        """The purchase's order and invoice, each settled from the state Cin7 holds when a POST
        is refused or unanswered (never from an error's wording)."""
        cin7 = ctx.target
        try:
            cin7.authorise_order(task_id, data["lines"], memo=data.get("memo") or "")
        except (Rejected, OutcomeUnknown):
            if cin7.get_order(task_id).get("Status") != "AUTHORISED":
                raise
        note = f"Purchase {task_id} {how} in Cin7 with its order authorised"
        if "invoice" not in data:
            return LoadResult(task_id, {"ID": task_id}, note + ".")
        number = data["invoice"]["InvoiceNumber"]
        try:
            posted = cin7.create_purchase_invoice(
                {"TaskID": task_id, **data["invoice"], "Lines": data["lines"]}
            )
            note += f" and invoice {number}"
        except (Rejected, OutcomeUnknown):
            posted = cin7.get_invoice(task_id)
            if posted.get("Status") != "AUTHORISED":
                raise
            note += f"; invoice {number} was already there"
        held = cin7.get_invoice(task_id) if "Total" not in posted else posted
        total = Decimal(str(held.get("Total") or held.get("InvoiceTotalAmount") or 0))
        expected = Decimal(str(data.get("expected_total") or total))
        if total.quantize(CENT) != expected.quantize(CENT):
            return LoadResult(
                task_id,
                {"ID": task_id, "Total": float(total)},
                note + ".",
                flag=f"Cin7 holds invoice {number} at {total.quantize(CENT)} but CloudSuite's "
                f"is {expected.quantize(CENT)}: correct it in Cin7.",
            )
        return LoadResult(task_id, {"ID": task_id, "Total": float(total)}, note + ".")

    def find_existing(self, ctx: Context, payload: Payload, posting: Posting) -> LoadResult | None:
        """After a lost answer: the supplier's purchases (Search covers the supplier), each read
        back by its ID, ours recognised by its note."""
        data = payload.data
        name = str(data.get("supplier_name") or "")
        if not name:
            return None
        for row in ctx.target.find_purchases(name):
            if row.get("SupplierID") != data["purchase"]["SupplierID"] or not row.get("ID"):
                continue
            purchase = ctx.target.get_purchase(row["ID"])
            if str(purchase.get("Note") or "") == data["purchase"]["Note"]:
                return self._complete(ctx, data, row["ID"], "found again")
        return None
