"""Open CloudSuite AR invoices → Stripe invoices, tagged with the M3 invoice number.

Reads ``ARS200MI LstInvByDivi`` (open invoices: TRCD 10, RECO 0) customer by customer in bulk
requests, from the last invoice date read (``IVDT``, with a week's overlap for invoices entered
late), and ``GetInvoice`` in bulk for currency and VAT.  The integration settings
``customer_from`` / ``customer_to`` bound the customers read, so a large ledger can be shared
by several integrations whose runs different workers take side by side.  The M3 AR
ledger carries totals, not item lines, so a Stripe invoice gets a net line and a VAT line.
Each invoice is created once (posting ledger + Stripe idempotency keys); an interrupted create
is found by its metadata and completed rather than created again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from connections.providers.infor_m3 import InforM3
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
    setting,
)
from syncs.money import decimal, to_minor

logger = logging.getLogger(__name__)

CHUNK = 50


def _amount(value: object) -> Decimal | None:
    """An ERP amount, or None when it is missing or not a finite number."""
    if value is None or not str(value).strip():
        return None
    try:
        amount = decimal(value)
    except ValueError:
        return None
    return amount if amount.is_finite() else None


def _date(value: object) -> datetime | None:
    try:
        return datetime.strptime(str(value).strip(), "%Y%m%d").replace(tzinfo=UTC)
    except ValueError:
        return None


def invoice_key(entry: dict[str, str]) -> str:
    return keys.M3_INVOICE.build(entry["DIVI"], entry["INYR"], entry["CINO"])


Context = FlowContext[InforM3, StripeProvider]


class M3InvoicesToStripe(Flow[InforM3, StripeProvider]):
    key = "m3_stripe.invoices"
    label = "CloudSuite open AR invoices → Stripe invoices"
    source_kind = "infor_m3"
    target_kind = "stripe"
    stream = "invoices"
    ledger_target = "stripe.invoice"
    posting_name = "the invoice"
    posts = (keys.M3_INVOICE,)
    window = ReadWindow("IVDT", Unit.DATE, overlap=timedelta(days=7))
    settings = (
        setting("customer_from", "First customer", help="Read only customers from this number."),
        setting("customer_to", "Last customer", help="Read only customers up to this number."),
    )
    part_settings = (setting("customer_before", "Customers before"),)

    def extract(self, ctx: Context) -> Iterator[SourceRecord]:
        """Open invoices, a slice of customers at a time (key ranges, never a capped grid):
        memory holds one slice, whatever the size of the AR ledger.  Records carry no watermark
        (they come in customer order): the run marks the newest invoice date it read, and the
        cursor moves there when nothing must be read again."""
        m3, stripe = ctx.source, ctx.target
        since = ctx.window_start
        customers: dict[str, dict] | None = None
        as_of = int(time.time())
        newest = ""
        for entries in m3.list_invoice_entries(
            since_date=str(since) if since else None,
            first_customer=self.setting("customer_from") or "",
            last_customer=self.setting("customer_to") or "",
            before_customer=self.setting("customer_before") or "",
        ):
            newest = max([newest, *(e["IVDT"] for e in entries)])
            entries = [e for e in entries if e["TRCD"] == "10" and e["RECO"] == "0"]
            done = ctx.ledger.confirmed(invoice_key(e) for e in entries)
            entries = sorted(
                (e for e in entries if invoice_key(e) not in done),
                key=lambda e: (e["IVDT"], int(e["JRNO"])),
            )
            if entries and customers is None:
                customers = stripe.index_customers(key="m3_customer")
            for start in range(0, len(entries), CHUNK):
                chunk = entries[start : start + CHUNK]
                details = m3.get_invoices([(e["YEA4"], e["JRNO"], e["JSNO"]) for e in chunk])
                for entry, detail in zip(chunk, details, strict=True):
                    customer = (customers or {}).get(entry["CUNO"])
                    yield SourceRecord(
                        f"{entry['DIVI']}/{entry['INYR']}/{entry['CINO']}",
                        {
                            "m3": {**entry, **(detail or {})},
                            "as_of": as_of,
                            "stripe_customer": customer["id"] if customer else None,
                        },
                    )
        if newest:
            ctx.mark_read(newest)

    def partitions(self, ctx: Context, count: int) -> list[dict]:
        """Contiguous ranges of customer numbers with about as many customers each; each range
        starts where the one before stops, so a customer added meanwhile is in exactly one."""
        first = self.setting("customer_from") or ""
        last = self.setting("customer_to") or ""
        before = self.setting("customer_before") or ""
        numbers = [
            n
            for page in ctx.source.customer_numbers(first=first, last=last, before=before)
            for n in page
        ]
        count = max(1, min(count, len(numbers)))
        if count < 2:
            return []
        bounds = [numbers[len(numbers) * i // count] for i in range(1, count)]
        starts, stops = [first, *bounds], [*bounds, ""]
        return [
            {
                "customer_from": start,
                "customer_to": last if not stop else "",
                "customer_before": stop or before,
            }
            for start, stop in zip(starts, stops, strict=True)
        ]

    def ledger_key(self, record: SourceRecord) -> str:
        return invoice_key(record.data["m3"])

    def summary(self, record: SourceRecord) -> Summary:
        inv = record.data["m3"]
        return Summary(
            Summary.amount_of(inv.get("CUAM")),
            str(inv.get("CUCD") or ""),
            party=str(inv.get("CUNO") or ""),
            party_name=str(inv.get("CUNM") or ""),
            document=str(inv.get("CINO") or ""),
        )

    def map(self, record: SourceRecord, mappings: Mappings) -> Payload | Flag | Wait | Skip:
        inv, customer = record.data["m3"], record.data.get("stripe_customer")
        if not customer:
            return Wait(
                f"Customer {inv['CUNO']} is not in Stripe yet; the invoice is sent once the "
                "customers have synced (the next runs try again)."
            )
        currency = (inv.get("CUCD") or "").upper()
        if not currency:
            return Flag(f"Invoice {inv['CINO']} has no currency in CloudSuite.")
        problems = [
            f"{label} ({field})"
            for field, label in (("CUAM", "no amount"), ("VTAM", "no VAT amount"))
            if _amount(inv.get(field)) is None
        ]
        due_at = _date(inv.get("DUDT"))
        if due_at is None:
            problems.append("no due date (DUDT)")
        if problems or due_at is None:
            return Flag(
                f"Invoice {inv['CINO']} has {' and '.join(problems)} in CloudSuite, so it cannot "
                "be sent to Stripe: check it in CloudSuite (ARS200), then replay."
            )
        total, vat = decimal(inv["CUAM"]), decimal(inv["VTAM"])
        if total <= 0:
            return Skip("Credit notes are not sent to Stripe.")
        try:
            lines = [
                {
                    "amount": to_minor(total - vat, currency),
                    "currency": currency.lower(),
                    "description": f"Invoice {inv['CINO']}",
                }
            ]
            if vat:
                lines.append(
                    {
                        "amount": to_minor(vat, currency),
                        "currency": currency.lower(),
                        "description": "VAT",
                    }
                )
        except ValueError as exc:
            return Flag(str(exc))
        due = int(due_at.timestamp())
        earliest = record.data["as_of"] + 86400  # Stripe wants a due date in the future
        metadata = {
            "m3_invoice": inv["CINO"],
            "m3_invoice_year": inv["INYR"],
            "m3_customer": inv["CUNO"],
            "m3_division": inv["DIVI"],
            "m3_amount": str(total),
            "m3_currency": currency,
            "m3_due_date": inv["DUDT"],
        }
        params = {
            "customer": customer,
            "currency": currency.lower(),
            "collection_method": "send_invoice",
            "due_date": max(due, earliest),
            "auto_advance": False,
            "description": f"CloudSuite invoice {inv['CINO']}",
            "metadata": metadata,
        }
        return Payload({"invoice": params, "lines": lines}, ledger_key=self.ledger_key(record))

    def load(self, ctx: Context, payload: Payload, posting: Posting | None) -> LoadResult:
        assert posting is not None
        invoice = ctx.target.create_invoice(
            payload.data["invoice"], payload.data["lines"], idempotency_key=posting.idempotency_key
        )
        return self._result(invoice)

    def find_existing(self, ctx: Context, payload: Payload, posting: Posting) -> LoadResult | None:
        stripe, meta = ctx.target, payload.data["invoice"]["metadata"]
        found = stripe.find_invoice(key="m3_invoice", value=meta["m3_invoice"])
        if found is None or any(
            found["metadata"].get(k) != meta[k] for k in ("m3_invoice_year", "m3_division")
        ):
            return None
        key = f"recover:{payload.ledger_key}"
        return self._result(
            stripe.complete_invoice(found, payload.data["lines"], idempotency_key=key)
        )

    @staticmethod
    def _result(invoice: dict) -> LoadResult:
        summary = {
            k: invoice.get(k)
            for k in ("id", "number", "status", "amount_due", "currency", "hosted_invoice_url")
        }
        return LoadResult(
            invoice["id"],
            summary,
            f"Stripe invoice {invoice.get('number')} ({invoice.get('status')}).",
        )
