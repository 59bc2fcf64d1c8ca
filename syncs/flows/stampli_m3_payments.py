"""Stampli's payments (CSV on SFTP) → CloudSuite, each matched to its AP invoice.

Each poll reads the complete payment exports not processed before.  A payment's vendor is
mapped to a CloudSuite supplier as for invoices; its invoice is looked up in CloudSuite
(``APS200MI SearchSupInvoic`` by supplier and supplier invoice number, then ``GetInvoice``).
A payment whose invoice CloudSuite does not have, in another currency, or for more than the
invoice, is flagged and never posted.

The payment is recorded by the MI transaction the tenant offers for a payment made outside
CloudSuite — the connection's payment programs, GLS840MI by default (see the README: the
catalogue has no AP payment transaction that takes a payment made elsewhere) — as a journal:
debit the supplier liability (``gl_account`` ``stampli_ap:<currency>``), credit the bank the
payment left from (``stampli_bank:<currency>``), the text ``Stampli <payment id> <supplier>
<invoice>`` as its reference — a supplier invoice number is unique only per supplier, so the
supplier is always named — and, on each line, the supplier (``SUNO``), its invoice number
(``SINO``) and M3's invoice year (``INYR``) for a journal layout that has places for them (the
connection's *journal layout*: the GLS840MI record is the tenant's interface type); both accounts
are checked against the chart first.  Exactly once per Stampli payment id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from connections.providers.infor_m3 import InforM3
from connections.providers.stampli import StampliSftp
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
    Skip,
    SourceRecord,
    Summary,
    Wait,
    lookups_of,
)
from syncs.flows.m3_journals import (
    AccountCheck,
    account_check,
    account_problem,
    journal_line,
    journal_result,
    post_journal,
)
from syncs.flows.stampli_common import (
    archive_done,
    file_records,
    no_supplier,
    supplier_candidates,
    supplier_for,
    unusable,
    vendors,
)
from syncs.money import currency_known, to_minor

ACCOUNTS = kinds.GL_ACCOUNT.reading("stampli_ap", "stampli_bank", per_currency=True)

logger = logging.getLogger(__name__)

Context = FlowContext[StampliSftp, InforM3]


@dataclass(frozen=True)
class PaymentLookups(Lookups):
    """The CloudSuite supplier of the payment's vendor ("" when none is found), the one
    supplier invoice it pays (None: none, or ``matches`` of them), and the supplier liability
    and bank accounts it is journalled to, each checked against the chart."""

    supplier: str = ""
    invoice: dict[str, Any] | None = None
    matches: int = 0
    accounts: dict[str, AccountCheck] = field(default_factory=dict)


class StampliPaymentsToM3(Flow[StampliSftp, InforM3]):
    key = "stampli_m3.payments"
    label = "Stampli payments → CloudSuite payment journals"
    source_kind = "stampli"
    target_kind = "infor_m3"
    default_interval_minutes = 15  # Stampli exports every 5 to 120 minutes
    stream = "payments"
    ledger_target = "m3.journal"
    posting_name = "the journal entry"
    posts = (keys.STAMPLI_PAYMENT,)
    money = "out"
    mapping_kinds = (kinds.VENDOR, ACCOUNTS)
    lookups = PaymentLookups

    def extract(self, ctx: Context) -> Iterator[SourceRecord]:
        known = vendors(ctx)
        suppliers: dict[str, dict[str, str]] = {}

        def record(file: str, line: int, payment: dict[str, Any]) -> SourceRecord:
            if not suppliers:
                suppliers.update({s["SUNO"]: s for s in ctx.target.list_suppliers()})
            name = str(
                payment.get("vendor_name")
                or (known.get(payment["vendor_id"]) or {}).get("vendor_name")
                or ""
            )
            return SourceRecord(
                f"payment {payment['payment_id']}",
                {
                    "file": file,
                    "line": line,
                    "payment": payment,
                    "suppliers": supplier_candidates(payment["vendor_id"], name, known, suppliers),
                },
            )

        yield from file_records(ctx, "payments", record)

    def prepare(self, ctx: Context, record: SourceRecord) -> PaymentLookups:
        """The CloudSuite invoice the payment is for, and the accounts it is journalled to."""
        data = record.data
        if "payment" not in data:
            return PaymentLookups()
        payment = data["payment"]
        supplier = supplier_for(payment["vendor_id"], data.get("suppliers") or {}, ctx.mappings)
        found = []
        if supplier:
            query = f"SUNO:{supplier} AND SINO:{payment['invoice_number']}"
            found = ctx.target.search_supplier_invoices(query)
        currency = str(payment["currency"]).upper()
        chart = self.chart(ctx.target)
        return PaymentLookups(
            supplier=supplier,
            invoice=found[0] if len(found) == 1 else None,
            matches=len(found),
            accounts={
                role: account_check(
                    ACCOUNTS.resolve(ctx.mappings, f"stampli_{role}", currency), chart
                )
                for role in ("ap", "bank")
            },
        )

    def ledger_key(self, record: SourceRecord) -> str:
        return keys.STAMPLI_PAYMENT.build(record.data["payment"]["payment_id"])

    def summary(self, record: SourceRecord) -> Summary:
        payment = record.data.get("payment") or {}
        return Summary(
            Summary.amount_of(payment.get("amount")),
            str(payment.get("currency") or "").upper(),
            party=str(payment.get("vendor_id") or ""),
            party_name=str((record.data.get("suppliers") or {}).get("suggestion") or ""),
            document=str(payment.get("invoice_number") or ""),
        )

    def map(self, record: SourceRecord, mappings: Mappings) -> Payload | Flag | Wait | Skip:
        data = record.data
        flagged = unusable(data)
        if flagged:
            return flagged
        found = lookups_of(record, PaymentLookups)
        payment, invoice = data["payment"], found.invoice
        what = f"Payment {payment['payment_id']} of invoice {payment['invoice_number']}"
        if not found.supplier:
            name = str((data.get("suppliers") or {}).get("suggestion") or "")
            return no_supplier(
                payment["vendor_id"], name or "unknown name", data.get("suppliers") or {}
            )
        if found.matches > 1:
            return Flag(f"{what}: CloudSuite has {found.matches} such invoices; post it by hand.")
        if invoice is None:  # not posted yet, most likely: every run looks again
            return Wait(
                f"{what}: supplier {found.supplier} has no such invoice in CloudSuite yet, so "
                "the payment waits for it."
            )
        currency = str(payment["currency"]).upper()
        if not currency_known(currency):
            return Flag(f"{what}: “{currency}” is not a currency code.")
        if str(invoice.get("CUCD")) != currency:
            return Flag(f"{what} is in {currency}, the invoice in {invoice.get('CUCD')}.")
        amount = Decimal(payment["amount"])
        try:
            to_minor(amount, currency)
        except ValueError as exc:
            return Flag(f"{what}: {exc}.")
        if amount <= 0 or amount > Decimal(str(invoice.get("CUAM") or "0")):
            return Flag(
                f"{what}: {amount} {currency} is not a payment of an invoice of "
                f"{invoice.get('CUAM')} {currency}."
            )
        for role, label in (("ap", "supplier liability"), ("bank", "bank paid from")):
            problem = account_problem(
                found.accounts.get(role),
                label=f"{label} in {currency}",
                mapping=f"stampli_{role}:{currency}",
            )
            if problem:
                return Flag(f"{what}: {problem}", fix=("gl_account", f"stampli_{role}:{currency}"))
        supplier = found.supplier
        text = f"Stampli {payment['payment_id']} {supplier} {payment['invoice_number']}"
        if len(text) > 40:
            return Flag(
                f"{what}: “{text}” is longer than the 40 characters of a journal text, so the "
                "payment could not be told apart in CloudSuite: post it by hand."
            )
        day = str(payment["payment_date"]).replace("-", "")
        ap, bank = str(found.accounts["ap"].mapped), str(found.accounts["bank"].mapped)
        identity = {
            "SUNO": supplier,
            "SINO": str(invoice.get("SINO") or payment["invoice_number"]),
            "INYR": str(invoice.get("INYR") or ""),
        }
        lines = [
            {**journal_line(day, ap, currency, amount, text), **identity},
            {**journal_line(day, bank, currency, -amount, text), **identity},
        ]
        return Payload(
            {"lines": lines, "text": text[:40], "invoice": payment["invoice_number"]},
            ledger_key=self.ledger_key(record),
        )

    def load(self, ctx: Context, payload: Payload, posting: Posting | None) -> LoadResult:
        key, result = post_journal(ctx, payload, posting, prefix="P")
        line = payload.data["lines"][0]
        return journal_result(
            key,
            result,
            f"Payment recorded in CloudSuite: journal {key} ({line['CUAM']} {line['CUCD']}) "
            f"against invoice {payload.data['invoice']}.",
        )

    def find_existing(self, ctx: Context, payload: Payload, posting: Posting) -> LoadResult | None:
        return None  # the journal is keyed by its ledger entry: sending it again completes it

    def acknowledge(self, ctx: Context, records: Sequence[SourceRecord]) -> None:
        """Archive the payment exports processed to the end (when the connection allows)."""
        archive_done(ctx)
