"""IFS Cloud customer invoices → Stripe **draft** invoices, tagged with the IFS invoice number.

Reads the connection's ``invoices`` entity set incrementally by its change field.  Each IFS
invoice line becomes a Stripe line priced by a Stripe Price of its own, and the VAT of the
invoice a line per VAT code; the draft carries ``metadata.ifs_invoice`` / ``ifs_company`` /
``ifs_invoice_no``.  A draft stays a draft (``auto_advance`` off): a person sends it from Stripe.

Before creating, Stripe is searched for an invoice with that IFS invoice (and the posting ledger
keeps the create to one); an interrupted create is found and completed.  When an amount changes
in IFS while the Stripe invoice is a draft, the line's old Price is archived (prices are
immutable), a new one created, and the line replaced; once Stripe has finalized the invoice, a
change is flagged for a person instead.

Only invoices a customer can pay go to Stripe: those whose state (``Objstate``) is one of the
connection's *payable states* (default Posted, PartlyPaidPosted); a preliminary, paid or
cancelled one is skipped with the reason in the audit (and one cancelled after it went to
Stripe is flagged).  The Stripe total — the lines' net amounts and the VAT lines — must equal
the IFS gross amount to the cent, or nothing is sent and a person is told.

Fields of the IFS invoice (unverified per tenant; the contracts README names the sets, not their
fields): ``Company``, ``InvoiceId``, ``InvoiceNo``, ``Identity`` (the customer), ``Currency``,
``DueDate``, ``Objstate``, ``GrossAmount`` (or ``NetAmount`` + ``VatAmount``), and the lines
the provider reads (``LineNo``, ``Description``, ``NetAmount``, ``VatAmount``, ``VatCode``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from connections.providers.ifs_cloud import IfsCloud
from connections.providers.stripe import StripeProvider
from syncs.flows import keys
from syncs.flows.base import (
    Flag,
    Flow,
    FlowContext,
    LoadResult,
    Mappings,
    Payload,
    Posting,
    ReadWindow,
    Skip,
    SourceRecord,
    Summary,
    Unit,
    Wait,
)
from syncs.flows.ifs_stripe_customers import METADATA_KEY as CUSTOMER_KEY
from syncs.flows.ifs_stripe_customers import PAGE_SIZE, as_cursor_moment
from syncs.money import decimal, to_minor

logger = logging.getLogger(__name__)

Context = FlowContext[IfsCloud, StripeProvider]


def invoice_key(row: dict[str, Any]) -> str:
    return keys.IFS_INVOICE.build(row.get("Company"), row.get("InvoiceId"))


def _summary(invoice: dict[str, Any]) -> dict[str, Any]:
    """What the flow needs of an existing Stripe invoice: status and its lines by number."""
    return {
        "id": invoice["id"],
        "status": invoice.get("status"),
        "metadata": invoice.get("metadata") or {},
        "lines": [
            {
                "id": line.get("id"),
                "amount": line.get("amount"),
                "n": (line.get("metadata") or {}).get("line"),
                "price": (line.get("metadata") or {}).get("ifs_price"),
            }
            for line in (invoice.get("lines") or {}).get("data") or []
        ],
    }


class IfsInvoicesToStripe(Flow[IfsCloud, StripeProvider]):
    key = "ifs_stripe.invoices"
    label = "IFS Cloud invoices → Stripe draft invoices"
    source_kind = "ifs_cloud"
    target_kind = "stripe"
    stream = "invoices"
    ledger_target = "stripe.invoice"
    posting_name = "the invoice"
    posts = (keys.IFS_INVOICE,)
    window = ReadWindow("ChangedDate", Unit.ISO, overlap=timedelta(minutes=5))
    settings = (PAGE_SIZE,)

    def extract(self, ctx: Context) -> Iterator[SourceRecord]:
        ifs, stripe, since = ctx.source, ctx.target, ctx.window_start
        changed = ifs.change_field("invoices")
        rows = ifs.invoices(
            orderby=[changed, *ifs.metadata("invoices").keys],
            where=[(changed, "ge", since)] if since else [],
            page_size=self.setting("page_size"),
        )
        payable = ifs.payable_states()
        customers: dict[str, dict[str, Any]] | None = None
        for row in rows:
            if customers is None:
                customers = stripe.index_customers(key=CUSTOMER_KEY)
            customer = customers.get(str(row.get("Identity") or ""))
            found = stripe.find_invoice(key="ifs_invoice", value=str(row.get("InvoiceId")))
            if found and (found.get("metadata") or {}).get("ifs_company") != str(
                row.get("Company")
            ):
                found = None  # the same number in another company
            yield SourceRecord(
                f"{row.get('Company')}/{row.get('InvoiceId')}",
                {
                    "ifs": row,
                    "stripe_customer": customer["id"] if customer else None,
                    "existing": _summary(found) if found else None,
                    "posted": bool(found) and bool(ctx.ledger.confirmed([invoice_key(row)])),
                    "as_of": int(datetime.now(tz=UTC).timestamp()),
                    "payable": payable,
                },
                watermark=as_cursor_moment(row.get(changed)),
            )

    def _lines(self, row: dict[str, Any], currency: str) -> list[dict[str, Any]] | str:
        """The Stripe lines an IFS invoice should have, or why it cannot have any."""
        lines, vat = [], {}
        for item in row.get("Lines") or []:
            number = str(item.get("LineNo") or "").strip()
            try:
                net = decimal(item.get("NetAmount"))
                tax = decimal(item.get("VatAmount") or 0)
            except ValueError:
                return f"line {number or '?'} has no valid amount"
            if not number:
                return "a line has no line number"
            lines.append(
                {
                    "n": number,
                    "description": str(item.get("Description") or f"Line {number}"),
                    "amount": to_minor(net, currency),
                }
            )
            if tax:
                code = str(item.get("VatCode") or "VAT")
                vat[code] = vat.get(code, Decimal(0)) + tax
        for code, tax in sorted(vat.items()):
            amount = to_minor(tax, currency)
            lines.append({"n": f"vat:{code}", "description": f"VAT {code}", "amount": amount})
        if not lines:
            return "it has no lines"
        return lines

    @staticmethod
    def _not_payable(row: dict[str, Any], payable: list[str], existing: Any) -> Skip | Flag | None:
        """Why an invoice in its state is not sent (None when it is payable)."""
        number = str(row.get("InvoiceNo") or row.get("InvoiceId"))
        state = str(row.get("Objstate") or "")
        if not payable or state in payable:
            return None
        if (
            existing is not None
            and existing["status"] in ("draft", "open")
            and ("cancel" in state.lower())
        ):
            return Flag(
                f"IFS invoice {number} was cancelled after it went to Stripe as "
                f"{existing['id']} ({existing['status']}): void or delete it in Stripe."
            )
        return Skip(
            f"IFS invoice {number} is {state or 'without a state'}: only invoices that are "
            f"{' or '.join(payable)} go to Stripe."
        )

    @staticmethod
    def _gross_differs(row: dict[str, Any], lines: list[dict[str, Any]], currency: str) -> str:
        """Why the Stripe lines would not add up to the IFS gross amount ("" when they do, or
        when the invoice states no gross)."""
        try:
            if row.get("GrossAmount") not in (None, ""):
                gross = decimal(row["GrossAmount"])
            elif row.get("NetAmount") not in (None, "") and row.get("VatAmount") not in (None, ""):
                gross = decimal(row["NetAmount"]) + decimal(row["VatAmount"])
            else:
                return ""
            expected = to_minor(gross, currency)
        except ValueError as exc:
            return f"its gross amount cannot be read ({exc})"
        total = sum(line["amount"] for line in lines)
        if total == expected:
            return ""
        return (
            f"its lines and VAT add up to {total} but its gross amount is {expected} (in "
            f"{currency} minor units)"
        )

    def ledger_key(self, record: SourceRecord) -> str:
        return invoice_key(record.data["ifs"])

    def summary(self, record: SourceRecord) -> Summary:
        row = record.data["ifs"]
        gross = Summary.amount_of(row.get("GrossAmount"))
        net, vat = Summary.amount_of(row.get("NetAmount")), Summary.amount_of(row.get("VatAmount"))
        if gross is None and net is not None and vat is not None:
            gross = net + vat
        return Summary(
            gross,
            str(row.get("Currency") or "").upper(),
            party=str(row.get("Identity") or ""),
            document=str(row.get("InvoiceNo") or row.get("InvoiceId") or ""),
        )

    def map(self, record: SourceRecord, mappings: Mappings) -> Payload | Flag | Wait | Skip:
        row, existing = record.data["ifs"], record.data.get("existing")
        number = str(row.get("InvoiceNo") or row.get("InvoiceId"))
        state = self._not_payable(row, list(record.data.get("payable") or []), existing)
        if state is not None:
            return state
        currency = str(row.get("Currency") or "").upper()
        if not currency:
            return Flag(f"IFS invoice {number} has no currency.")
        try:
            wanted = self._lines(row, currency)
        except ValueError as exc:
            return Flag(f"IFS invoice {number}: {exc}")
        if isinstance(wanted, str):
            return Flag(f"IFS invoice {number} cannot be sent to Stripe: {wanted}.")
        if problem := self._gross_differs(row, wanted, currency):
            return Flag(f"IFS invoice {number} is not sent to Stripe: {problem}.")
        if existing is not None:
            have = {line["n"]: line for line in existing["lines"] if line["n"]}
            changed = [
                w for w in wanted if w["n"] not in have or have[w["n"]]["amount"] != w["amount"]
            ]
            gone = [n for n in have if n not in {w["n"] for w in wanted}]
            if not changed and not gone:
                if record.data.get("posted"):
                    return Skip("Unchanged in Stripe.")
                # In Stripe already but not in the ledger (made elsewhere, or the answer to our
                # create was lost): recorded as this invoice's Stripe invoice, not made again.
                return Payload(
                    {"adopt": existing["id"], "invoice": {"metadata": {}}},
                    ledger_key=self.ledger_key(record),
                    target_key=existing["id"],
                )
            if existing["status"] != "draft":
                return Flag(
                    f"IFS invoice {number} changed after Stripe invoice {existing['id']} was "
                    f"finalized ({existing['status']}): correct it in Stripe (a credit note), "
                    "nothing is changed automatically."
                )
            replace = [have[w["n"]] for w in changed if w["n"] in have] + [have[n] for n in gone]
            return Payload(
                {
                    "invoice_id": existing["id"],
                    "currency": currency.lower(),
                    "add": changed,
                    "replace": replace,
                    "ifs_invoice": str(row.get("InvoiceId")),
                },
                ledger_key=None,
                target_key=existing["id"],
            )
        customer = record.data.get("stripe_customer")
        if not customer:
            return Wait(
                f"Customer {row.get('Identity')} of IFS invoice {number} is not in Stripe yet; "
                "the invoice is sent once the customers have synced."
            )
        due = str(row.get("DueDate") or "")[:10]
        earliest = record.data["as_of"] + 86400
        try:
            due_at = int(datetime.strptime(due, "%Y-%m-%d").replace(tzinfo=UTC).timestamp())
        except ValueError:
            due_at = earliest + 29 * 86400
        metadata = {
            "ifs_invoice": str(row.get("InvoiceId")),
            "ifs_company": str(row.get("Company")),
            "ifs_invoice_no": number,
            "ifs_customer": str(row.get("Identity") or ""),
        }
        params = {
            "customer": customer,
            "currency": currency.lower(),
            "collection_method": "send_invoice",
            "due_date": max(due_at, earliest),
            "description": f"IFS Cloud invoice {number}",
            "metadata": metadata,
        }
        return Payload(
            {"invoice": params, "lines": wanted, "currency": currency.lower()},
            ledger_key=self.ledger_key(record),
        )

    # -- writes -----------------------------------------------------------------------------

    def _add(
        self, stripe: StripeProvider, invoice_id: str, lines: list[dict], currency: str, key: str
    ) -> dict[str, Any]:
        """A Price for each line, then every line in one ``add_lines`` call."""
        params = []
        for line in lines:
            price = stripe.create_price(
                {
                    "currency": currency,
                    "unit_amount": line["amount"],
                    "product_data": {"name": line["description"][:250]},
                    "metadata": {"ifs_line": line["n"]},
                },
                idempotency_key=f"{key}:price:{line['n']}:{line['amount']}",
            )
            params.append(
                {
                    "pricing": {"price": price["id"]},
                    "description": line["description"],
                    "metadata": {"line": line["n"], "ifs_price": price["id"]},
                }
            )
        numbers = ",".join(f"{line['n']}={line['amount']}" for line in lines)
        return stripe.add_invoice_lines(
            invoice_id, params, idempotency_key=f"{key}:lines:{numbers}"[:255]
        )

    def load(self, ctx: Context, payload: Payload, posting: Posting | None) -> LoadResult:
        stripe, data = ctx.target, payload.data
        if "adopt" in data:
            return LoadResult(
                data["adopt"], {"id": data["adopt"]}, "Found in Stripe already; not made again."
            )
        if "invoice_id" in data:  # a draft whose amounts changed in IFS
            key = f"ifs-update:{data['invoice_id']}"
            for old in data["replace"]:
                if old["price"]:
                    stripe.archive_price(old["price"])
            if data["replace"]:
                ids = [old["id"] for old in data["replace"]]
                stripe.remove_invoice_lines(
                    data["invoice_id"], ids, idempotency_key=f"{key}:remove:{','.join(ids)}"
                )
            invoice = data["invoice_id"]
            result = (
                self._add(stripe, invoice, data["add"], data["currency"], key)
                if data["add"]
                else stripe.get_invoice(invoice)
            )
            changed = ", ".join(line["n"] for line in data["add"]) or "removed lines"
            return LoadResult(
                result["id"],
                {"id": result["id"], "amount_due": result.get("amount_due")},
                f"Draft updated: line(s) {changed} repriced (old prices archived).",
            )
        assert posting is not None
        invoice = stripe.create_draft_invoice(
            data["invoice"], idempotency_key=f"{posting.idempotency_key}:create"
        )
        result = self._add(
            stripe, invoice["id"], data["lines"], data["currency"], posting.idempotency_key
        )
        return LoadResult(
            result["id"],
            {k: result.get(k) for k in ("id", "status", "amount_due")},
            f"Draft invoice {result['id']} in Stripe, to be sent by a person.",
        )

    def find_existing(self, ctx: Context, payload: Payload, posting: Posting) -> LoadResult | None:
        if "adopt" in payload.data:
            return LoadResult(payload.data["adopt"], {"id": payload.data["adopt"]})
        stripe, meta = ctx.target, payload.data["invoice"]["metadata"]
        found = stripe.find_invoice(key="ifs_invoice", value=meta["ifs_invoice"])
        if found is None or (found.get("metadata") or {}).get("ifs_company") != meta["ifs_company"]:
            return None
        present = {line["n"] for line in _summary(found)["lines"]}
        missing = [line for line in payload.data["lines"] if line["n"] not in present]
        if missing:
            found = self._add(
                stripe, found["id"], missing, payload.data["currency"], posting.idempotency_key
            )
        return LoadResult(found["id"], {"id": found["id"], "status": found.get("status")})
