"""Open CloudSuite supplier invoices due in the payment run window → Wise transfer quotes.

Each run finds the supplier invoices due from ``overdue_days`` ago (30) to ``window_days`` ahead
(7) with ``APS200MI SearchSupInvoic`` (the query is the integration setting ``invoice_query``;
M3's search syntax is unverified per tenant) and reads each with ``GetInvoice``.  An invoice
that is approved for payment, not stopped and not paid (``PYST`` not in ``paid_statuses``,
unverified codes) gets one quote a day — from the Wise connection's *Pay from currency* to the
invoice's currency and amount, to the supplier's recipient — linked to the invoice in the
audit and shown under *Payment quotes*.  An invoice Wise has already paid (the payments flow
posted its transfer) is left alone.

Making and funding the transfer stays with a person in Wise: money movement needs a person.
Each quote says how the transfer will be paid (``preferredPayIn``, the Wise connection's
*Transfers paid by*, BALANCE by default): Wise prices a balance-funded transfer differently
and says a quote must name it (docs.wise.com/api-reference/quote).

A lost answer: Wise lists no quotes and takes no key of the caller's for one (its quote
reference documents only ``POST``, ``PATCH`` and ``GET`` by Wise's own id), so a quote whose
answer was lost cannot be found again.  It moves no money and is usable only until its rate
hold ends (``expirationTime``, 30 minutes after it was made).  So the flow makes no second
quote while the lost one could still be used: the invoice waits until ``QUOTE_HOLD`` after the
attempt (plus the ledger lease, the longest the attempt could have been under way) and is quoted
then, once; the audit says so.

Checked before any call, flagged with the reason: both currencies are ISO 4217 codes, the
amount is positive and exact in the currency's minor unit, and the supplier has a recipient in
that currency (made by the recipients flow from its bank details).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from connections.providers.errors import ApiError
from connections.providers.infor_m3 import InforM3
from connections.providers.spec import template, text_list, whole_number
from connections.providers.wise import WiseProvider
from syncs.flows.base import (
    Flag,
    Flow,
    FlowContext,
    LoadResult,
    Mappings,
    Payload,
    Posting,
    Skip,
    SourceRecord,
    Summary,
    Wait,
    setting,
)
from syncs.flows.keys import (
    WISE_PAID,
    WISE_QUOTE,
    WISE_RECIPIENT,
    WISE_RECIPIENT_DELETED,
    supplier_invoice,
)
from syncs.money import currency_known, decimal, to_minor

logger = logging.getLogger(__name__)

Context = FlowContext[InforM3, WiseProvider]
DEFAULT_QUERY = "DUDT:[{from} TO {to}]"
DEFAULT_PAID = ("50", "90")
QUOTE_HOLD = timedelta(minutes=30)  # Wise holds a quote's rate 30 minutes, then it expires


invoice_key = supplier_invoice


def current_recipients(ctx: FlowContext[Any, Any], *, side: str) -> dict[str, str]:
    """ "supplier/currency" → the Wise recipient id the recipients flow made last and has not
    deleted (from the ledger of the Wise connection on ``side``)."""
    made = ctx.ledger.under(WISE_RECIPIENT, side=side)
    gone = set(ctx.ledger.under(WISE_RECIPIENT_DELETED, side=side))
    current: dict[str, str] = {}
    for key, rid in made.items():
        if WISE_RECIPIENT_DELETED.build(rid) in gone:
            continue
        fields = WISE_RECIPIENT.parse(key)
        supplier, currency = fields["supplier"], fields["currency"]
        owner = f"{supplier}/{currency}"
        if owner not in current or int(rid) > int(current[owner]):
            current[owner] = rid
    return current


class M3InvoicesToWiseQuotes(Flow[InforM3, WiseProvider]):
    key = "m3_wise.quotes"
    label = "CloudSuite supplier invoices → Wise quotes"
    source_kind = "infor_m3"
    target_kind = "wise"
    stream = "quotes"
    ledger_target = "wise.quote"
    posting_name = "the quote"
    listed_in = frozenset({"payment_quotes"})
    posts = (WISE_QUOTE,)
    reads = (WISE_RECIPIENT, WISE_RECIPIENT_DELETED, WISE_PAID)
    settings = (
        setting(
            "overdue_days",
            "Days overdue",
            whole_number,
            default=30,
            help="Quote invoices that fell due up to this many days ago …",
        ),
        setting(
            "window_days",
            "Days ahead",
            whole_number,
            default=7,
            help="… and those falling due within this many days.",
        ),
        setting(
            "invoice_query",
            "Invoice query",
            template("from", "to"),
            default=DEFAULT_QUERY,
            help="The CloudSuite search of supplier invoices ({from} and {to}: due dates).",
        ),
        setting(
            "paid_statuses",
            "Paid statuses",
            text_list,
            default=list(DEFAULT_PAID),
            multiline=True,
            help="Invoices in these CloudSuite statuses are paid: never quoted.",
        ),
    )
    after_lost_answer = (
        "Wise cannot look a quote up without its id, so ml-connector makes no second quote "
        "while one made now could still be used (30 minutes); then it quotes this invoice once."
    )

    def extract(self, ctx: Context) -> Iterator[SourceRecord]:
        today = date.today()
        first = today - timedelta(days=self.setting("overdue_days"))
        last = today + timedelta(days=self.setting("window_days"))
        query = self.setting("invoice_query").format(
            **{"from": first.strftime("%Y%m%d"), "to": last.strftime("%Y%m%d")}
        )
        paid = set(self.setting("paid_statuses"))
        invoices = [
            i
            for i in ctx.source.search_supplier_invoices(query)
            if str(i.get("APRV")) == "1"
            and str(i.get("IVBL") or "0") in ("", "0")
            and str(i.get("PYST")) not in paid
        ]
        if not invoices:
            return
        recipients = current_recipients(ctx, side="target")
        settled = ctx.ledger.under(WISE_PAID, side="source")
        paid_invoices = {WISE_PAID.parse(key)["invoice"] for key in settled}
        source_currency = str(ctx.target.connection.setting("source_currency") or "")
        pay_in = str(ctx.target.connection.setting("pay_in") or "BALANCE")
        day = today.strftime("%Y%m%d")
        keys = {}
        for invoice in invoices:
            if invoice_key(invoice) in paid_invoices:
                continue
            keys[invoice_key(invoice)] = WISE_QUOTE.build(
                *(invoice.get(k, "") for k in ("DIVI", "SUNO", "SINO", "INYR")),
                invoice.get("CUCD"),
                invoice.get("CUAM"),
                day,
            )
        quoted = ctx.ledger.confirmed(keys.values())
        wanted = [
            i for i in invoices if keys.get(invoice_key(i)) not in (None, *quoted)
        ]  # not paid through Wise, not quoted today already
        names = self._supplier_names(ctx, {str(i.get("SUNO") or "") for i in wanted} - {""})
        for invoice in wanted:
            key = keys[invoice_key(invoice)]
            owner = f"{invoice.get('SUNO')}/{invoice.get('CUCD')}"
            yield SourceRecord(
                f"{invoice.get('SUNO')}/{invoice.get('SINO')}",
                {
                    "invoice": invoice,
                    "supplier_name": names.get(str(invoice.get("SUNO") or ""), ""),
                    "recipient": recipients.get(owner),
                    "source_currency": source_currency,
                    "pay_in": pay_in,
                    "key": key,
                },
            )

    @staticmethod
    def _supplier_names(ctx: Context, numbers: set[str]) -> dict[str, str]:
        """The suppliers' names, in one bulk request (a quote reads without one if it fails:
        the name is for people, the quote does not need it)."""
        try:
            found = ctx.source.get_suppliers(sorted(numbers))
        except ApiError as exc:
            logger.warning("Supplier names not read: %s", exc)
            return {}
        return {n: str(s.get("SUNM") or "") for n, s in found.items()}

    def summary(self, record: SourceRecord) -> Summary:
        invoice = record.data["invoice"]
        return Summary(
            Summary.amount_of(invoice.get("CUAM")),
            str(invoice.get("CUCD") or ""),
            party=str(invoice.get("SUNO") or ""),
            party_name=str(record.data.get("supplier_name") or invoice.get("SUNM") or ""),
            document=str(invoice.get("SINO") or ""),
        )

    def map(self, record: SourceRecord, mappings: Mappings) -> Payload | Flag | Skip:
        data, invoice = record.data, record.data["invoice"]
        number = f"{invoice.get('SINO')} of supplier {invoice.get('SUNO')}"
        currency, source = str(invoice.get("CUCD") or ""), str(data["source_currency"])
        if not currency_known(currency):
            return Flag(f"Invoice {number}: “{currency}” is not a currency code.")
        if not currency_known(source):
            return Flag(f"The Wise connection's pay-from currency “{source}” is not a currency.")
        try:
            amount = decimal(invoice.get("CUAM"))
            to_minor(amount, currency)
        except ValueError as exc:
            return Flag(f"Invoice {number}: the amount cannot be paid as it is ({exc}).")
        if amount <= 0:
            return Flag(f"Invoice {number}: {amount} {currency} is not an amount to pay.")
        if not data.get("recipient"):
            return Flag(
                f"Supplier {invoice.get('SUNO')} has no Wise recipient in {currency} yet, so "
                "there is nothing to quote to. The recipients integration makes one from the "
                "supplier in CloudSuite; its review item for this supplier, if it has one, "
                "names what Wise still needs."
            )
        quote = {
            "source_currency": source,
            "target_currency": currency,
            "target_amount": str(amount),
            "target_account": int(data["recipient"]),
            "pay_in": str(data.get("pay_in") or "BALANCE"),
        }
        return Payload(
            {"quote": quote, "invoice": {k: invoice.get(k) for k in ("SUNO", "SINO", "DUDT")}},
            ledger_key=self.ledger_key(record),
        )

    def ledger_key(self, record: SourceRecord) -> str:
        """Built when the invoice is read (it names the invoice and what it asks to pay)."""
        return str(record.data["key"])

    def load(self, ctx: Context, payload: Payload, posting: Posting | None) -> LoadResult:
        q = ctx.target.create_quote(**payload.data["quote"])
        pays = f"{Decimal(str(q.get('targetAmount'))):.2f} {q.get('targetCurrency')}"
        costs = f"{Decimal(str(q.get('sourceAmount'))):.2f} {q.get('sourceCurrency')}"
        summary = {
            "quote": q["id"],
            "rate": q.get("rate"),
            "source_amount": q.get("sourceAmount"),
            "source_currency": q.get("sourceCurrency"),
            "target_amount": q.get("targetAmount"),
            "target_currency": q.get("targetCurrency"),
            "expires": q.get("expirationTime"),
            "recipient": payload.data["quote"]["target_account"],
            **payload.data["invoice"],
        }
        return LoadResult(
            str(q["id"]),
            summary,
            f"Quote {q['id']}: pays {pays} for {costs} at {q.get('rate')}, held until "
            f"{q.get('expirationTime')}. Make the transfer from it in Wise.",
        )

    def find_existing(
        self, ctx: Context, payload: Payload, posting: Posting
    ) -> LoadResult | Wait | None:
        """Wise cannot be asked for a quote without its id: wait until a quote the lost attempt
        may have made has expired, then make the one quote."""
        if posting.attempted_at is None:
            return None  # recorded before attempts were timed: long expired
        lease = timedelta(seconds=float(settings.MLC["LEDGER_LEASE_SECONDS"]))
        usable_until = posting.attempted_at + lease + QUOTE_HOLD
        if timezone.now() >= usable_until:
            return None
        at = timezone.localtime(usable_until).strftime("%H:%M %Z")
        return Wait(
            "Wise's answer to this quote was lost. Wise cannot look a quote up without its id, "
            f"so no second quote is made while one made then could still be used: the invoice "
            f"is quoted after {at}, once."
        )
