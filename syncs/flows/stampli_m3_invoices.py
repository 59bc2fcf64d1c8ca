"""Stampli's approved invoices (CSV on SFTP) → CloudSuite AP supplier invoices.

Each poll reads the complete invoice exports not processed before (name, size and checksum),
each invoice with its lines from the same export — the lines file with the same stamp (split
layout) or its own rows (the head repeated on every line row: combined layout) — and the vendors
export (for each vendor's external id).  A file still being written, or whose last record is
cut, or whose lines file has not arrived, is waited for quietly and reported only once it stays
so too long (``syncs.flows.stampli_common``); nothing is ever posted from it.  A row that cannot
be read whole is reported with file and line number: an invoice row as a record of its own, a
line row on its invoice (which is then not posted); a file that is not an export is reported
once and skipped until it changes.

- Vendor → supplier: a ``vendor`` field mapping, else the vendor's external id when CloudSuite
  has that supplier, else a supplier with exactly the vendor's name.  Otherwise the invoice is
  flagged with the closest name as a suggestion for the reviewer — never posted on a guess.
- Each line's GL code → a CloudSuite accounting string (``gl_account`` mapping), which must be in
  the CRS630MI chart.  APS450MI takes no accounting string (M3 derives the coding itself), so
  after validation the voucher M3 posted is read back (GLS200MI) and an account other than the
  mapped one is flagged for review (the invoice stays posted).
- Exactly once by the M3 AP uniqueness (supplier + supplier invoice number + year): a re-export
  of a posted invoice is recognised, one with other amounts is flagged, not posted.  The ledger
  key travels in ``CORI``, so an interrupted post is found again.
- Posted in bulk: the heads of up to ``chunk_size`` invoices in one request, then their lines,
  then ``ValidByBatchNo`` — a file of 1,000 invoices is tens of requests, not thousands.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from connections.providers.errors import ApiError
from connections.providers.infor_m3 import InforM3
from connections.providers.spec import choice
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
    Superseded,
    Wait,
    lookups_of,
    setting,
)
from syncs.flows.m3_journals import AccountCheck, account_check, journal_line
from syncs.flows.stampli_common import (
    archive_done,
    invoice_records,
    no_supplier,
    supplier_candidates,
    supplier_for,
    unusable,
    vendors,
)
from syncs.money import currency_known, to_minor

logger = logging.getLogger(__name__)

Context = FlowContext[StampliSftp, InforM3]
LINE_TYPE = "5"  # an AP invoice line that is not matched to a purchase order (unverified)


def _amount(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value).strip())
    except ArithmeticError:
        return None


@dataclass(frozen=True)
class InvoiceLookups(Lookups):
    """The CloudSuite supplier of the invoice's vendor ("" when none is found), each GL code's
    mapped account checked against the chart, and the keys under which an invoice of that
    supplier, number and year was posted before (with what it was posted as)."""

    supplier: str = ""
    accounts: dict[str, AccountCheck] = field(default_factory=dict)
    prior: dict[str, str] = field(default_factory=dict)


class StampliInvoicesToM3(Flow[StampliSftp, InforM3]):
    key = "stampli_m3.invoices"
    label = "Stampli approved invoices → CloudSuite AP"
    source_kind = "stampli"
    target_kind = "infor_m3"
    default_interval_minutes = 15  # Stampli exports every 5 to 120 minutes
    stream = "invoices"
    ledger_target = "m3.ap_invoice"
    posting_name = "the supplier invoice"
    posts = (keys.AP_INVOICE,)
    mapping_kinds = (kinds.VENDOR, kinds.GL_ACCOUNT, kinds.COST_CENTER)
    lookups = InvoiceLookups
    chunk_size = 100
    settings = (
        setting(
            "cost_center_dimension",
            "Cost centre dimension",
            choice(*(str(n) for n in range(2, 8))),
            default="2",
            help="The accounting dimension (2 to 7) a mapped Stampli cost centre goes to.",
        ),
        setting(
            "coding",
            "AP invoice coding",
            choice("derived", "journal"),
            help="Blank: the CloudSuite connection's AP invoice coding.",
        ),
    )

    def extract(self, ctx: Context) -> Iterator[SourceRecord]:
        known = vendors(ctx)
        suppliers: dict[str, dict[str, str]] = {}

        def record(
            file: str,
            line: int,
            invoice: dict[str, Any],
            lines: list[dict[str, Any]],
            bad_lines: list[str],
        ) -> SourceRecord:
            if not suppliers:
                suppliers.update({s["SUNO"]: s for s in ctx.target.list_suppliers()})
            return SourceRecord(
                f"{invoice['vendor_id']}/{invoice['invoice_number']}",
                {
                    "file": file,
                    "line": line,
                    "invoice": invoice,
                    "lines": lines,
                    "bad_lines": bad_lines,
                    "suppliers": supplier_candidates(
                        invoice["vendor_id"], invoice["vendor_name"], known, suppliers
                    ),
                },
            )

        yield from invoice_records(ctx, record)

    def prepare(self, ctx: Context, record: SourceRecord) -> InvoiceLookups:
        """The supplier the vendor maps to, the chart accounts of the mapped GL codes, and what
        an earlier post of the invoice holds."""
        data = record.data
        if "invoice" not in data or data.get("bad_lines"):
            return InvoiceLookups()
        chart = self.chart(ctx.target)
        codes = {line["gl_code"] for line in data["lines"]}
        supplier = self._supplier(data, ctx.mappings)
        prior = {}
        if supplier:
            number, year = data["invoice"]["invoice_number"], data["invoice"]["invoice_date"][:4]
            prior = ctx.ledger.under(keys.AP_INVOICE, supplier, number, year)
        return InvoiceLookups(
            supplier=supplier,
            accounts={c: account_check(ctx.mappings.get("gl_account", c), chart) for c in codes},
            prior=prior,
        )

    def ledger_key(self, record: SourceRecord) -> str:
        """Supplier, invoice number, year, total and currency: a re-export with other amounts
        is another key, found beside the posted one."""
        invoice = record.data["invoice"]
        return keys.AP_INVOICE.build(
            lookups_of(record, InvoiceLookups).supplier,
            invoice["invoice_number"],
            invoice["invoice_date"][:4],
            Decimal(invoice["total"]),
            str(invoice["currency"]).upper(),
        )

    @staticmethod
    def _supplier(data: dict[str, Any], mappings: Mappings) -> str:
        return supplier_for(data["invoice"]["vendor_id"], data.get("suppliers") or {}, mappings)

    def summary(self, record: SourceRecord) -> Summary:
        invoice = record.data.get("invoice") or {}
        return Summary(
            Summary.amount_of(invoice.get("total")),
            str(invoice.get("currency") or "").upper(),
            party=str(invoice.get("vendor_id") or ""),
            party_name=str(invoice.get("vendor_name") or ""),
            document=str(invoice.get("invoice_number") or ""),
        )

    def map(self, record: SourceRecord, mappings: Mappings) -> Payload | Flag | Wait | Skip:
        data = record.data
        flagged = unusable(data)
        if flagged:
            return flagged
        invoice, where = data["invoice"], f"{data['file']} line {data['line']}"
        number = f"invoice {invoice['invoice_number']} of {invoice['vendor_name']}"
        if str(invoice.get("status") or "Approved").lower() != "approved":
            return Skip(f"{number} is {invoice['status']}, not approved.")
        if data.get("bad_lines"):
            return Flag(
                f"{number} ({where}): part of it could not be read — "
                + "; ".join(data["bad_lines"])
                + ". Nothing of the invoice was posted."
            )
        found = lookups_of(record, InvoiceLookups)
        supplier = found.supplier
        if not supplier:
            return no_supplier(
                invoice["vendor_id"], invoice["vendor_name"], data.get("suppliers") or {}
            )
        if not data["lines"]:
            return Flag(f"{number} ({where}) has no lines in its export: nothing was posted.")
        currency = str(invoice["currency"]).upper()
        if not currency_known(currency):
            return Flag(f"{number}: “{currency}” is not a currency code.")
        total, tax = Decimal(invoice["total"]), Decimal(invoice.get("tax") or 0)
        try:
            for amount in (total, tax, *(Decimal(line["amount"]) for line in data["lines"])):
                to_minor(amount, currency)
        except ValueError as exc:
            return Flag(f"{number}: {exc}.")
        net = sum((Decimal(line["amount"]) for line in data["lines"]), Decimal(0))
        if net + tax != total:
            return Flag(f"{number}: its lines ({net}) and tax ({tax}) do not add up to {total}.")
        for code, account in found.accounts.items():
            if not account.mapped:
                return Flag(
                    f"{number}: GL code {code} has no CloudSuite account mapped.",
                    fix=("gl_account", code),
                )
            if not account.in_chart:
                return Flag(
                    f"{number}: account {account.mapped} (GL {code}) is not in the chart.",
                    fix=("gl_account", code),
                )
        key = self.ledger_key(record)
        others = [k for k in found.prior if k != key]
        if others:
            posted = others[0].rsplit(":", 2)
            return Flag(
                f"{number} was re-exported with other amounts ({total} {currency}; "
                f"CloudSuite has {posted[1]} {posted[2]}): not posted — correct it by hand."
            )
        head = {
            "SUNO": supplier,
            "IVDT": invoice["invoice_date"].replace("-", ""),
            "DUDT": (invoice.get("due_date") or "").replace("-", ""),
            "SINO": invoice["invoice_number"],
            "CUCD": currency,
            "CUAM": str(total),
            "VTAM": str(tax),
            "DIVI": invoice.get("division") or "",
        }
        lines = []
        for line in data["lines"]:
            account = str(found.accounts[line["gl_code"]].mapped)
            centre = line.get("cost_center")
            if centre:
                mapped = mappings.get("cost_center", centre)
                if not mapped:
                    return Flag(
                        f"{number}: cost centre {centre} has no CloudSuite mapping.",
                        fix=("cost_center", centre),
                    )
                dims = (account.split(";") + [""] * 7)[:7]
                dims[int(self.setting("cost_center_dimension")) - 1] = mapped
                account = ";".join(dims).rstrip(";")
            lines.append(
                {
                    "RDTP": LINE_TYPE,
                    "NLAM": line["amount"],
                    "CHGT": str(line.get("description") or line["gl_code"])[:30],
                    "account": account,
                }
            )
        return Payload({"head": head, "lines": lines}, ledger_key=key)

    @staticmethod
    def _cori(posting: Posting) -> str:
        return str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"{posting.idempotency_key}:{posting.generation}")
        )

    def load_many(
        self, ctx: Context, items: Sequence[tuple[Payload, Posting | None]]
    ) -> list[LoadResult | Exception]:
        invoices = []
        for payload, posting in items:
            assert posting is not None
            lines = [
                {k: v for k, v in line.items() if k != "account"} for line in payload.data["lines"]
            ]
            invoices.append(
                {"head": {**payload.data["head"], "CORI": self._cori(posting)}, "lines": lines}
            )
        answers = ctx.target.add_ap_invoices(invoices)
        postings = ctx.target.ap_postings([str(b) for b, error in answers if error is None and b])
        results: list[LoadResult | Exception] = []
        for (payload, posting), (batch, error) in zip(items, answers, strict=True):
            if error is not None:
                results.append(error)
            else:
                assert posting is not None
                found = postings.get(str(batch))
                results.append(self._posted(ctx, payload, posting, str(batch), found))
        return results

    def _posted(
        self,
        ctx: Context,
        payload: Payload,
        posting: Posting,
        batch: str,
        found: dict[str, Any] | None,
    ) -> LoadResult:
        """The posted invoice, with what M3 derived the coding to compared with the mapping —
        flagged when it differs or, with the CloudSuite connection's *AP invoice coding* =
        ``journal`` (a tenant that codes per line), moved to the mapped accounting strings by a
        GL journal."""
        head = payload.data["head"]
        voucher = (found or {}).get("lines") or []
        # The voucher lines that book our lines' amounts (not the liability or the VAT).
        amounts = {Decimal(str(line["NLAM"])) for line in payload.data["lines"]}
        derived = sorted(
            {
                str(v.get("AIT1", ""))
                for v in voucher
                if _amount(v.get("CUAM")) in amounts and str(v.get("AIT1", ""))
            }
        )
        wanted = {str(line["account"]).split(";")[0] for line in payload.data["lines"]}
        differs = sorted(wanted - set(derived))
        note, flag = f"Posted to CloudSuite AP as invoice batch {batch}.", ""
        summary = {"batch": batch, "derived": derived}
        coding = self.setting("coding") or ctx.target.connection.setting("ap_coding")
        if voucher and differs and coding == "journal":
            m3, key = ctx.target, f"R{posting.ledger_id}G{posting.generation}"
            day, text = head["IVDT"], f"Coding {head['SINO']}"[:40]
            lines = []
            for line in payload.data["lines"]:
                amount = Decimal(line["NLAM"])
                lines.append(journal_line(day, line["account"], head["CUCD"], amount, text))
                lines.append(journal_line(day, derived[0], head["CUCD"], -amount, text))
            try:
                m3.post_journal(
                    key=key,
                    interface=str(m3.connection.setting("journal_interface")),
                    description=text,
                    lines=[m3.journal_record(entry) for entry in lines],
                )
                note += f" Coded line by line to the mapped accounts by GL journal {key}."
                summary["coding_journal"] = key
            except (ApiError, ValueError) as exc:
                flag = (
                    f"Invoice {head['SINO']} is posted, but the journal coding it to the mapped "
                    f"accounts was refused ({exc}): post it by hand."
                )
        elif voucher and differs:
            flag = (
                f"CloudSuite coded invoice {head['SINO']} differently from the mapping: "
                f"{', '.join(differs)} expected, M3 posted to {', '.join(derived)}. "
                "Check the supplier's accounting template, or correct the voucher."
            )
        return LoadResult(batch, summary, note, flag=flag)

    def acknowledge(self, ctx: Context, records: Sequence[SourceRecord]) -> None:
        """Archive the invoice exports processed to the end (when the connection allows)."""
        archive_done(ctx)

    def load(self, ctx: Context, payload: Payload, posting: Posting | None) -> LoadResult:
        result = self.load_many(ctx, [(payload, posting)])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def find_existing(self, ctx: Context, payload: Payload, posting: Posting) -> LoadResult | None:
        head = payload.data["head"]
        found = ctx.target.find_ap_invoice(
            supplier=head["SUNO"], invoice_number=head["SINO"], correlation=self._cori(posting)
        )
        if found is None:
            return None
        if str(found.get("SUPA")) >= "50":
            batch = str(found["INBN"])
            return self._posted(
                ctx, payload, posting, batch, ctx.target.ap_postings([batch]).get(batch)
            )
        raise Superseded(
            f"An unvalidated invoice batch {found['INBN']} was left by an interrupted post: "
            "delete it in CloudSuite (APS450)."
        )
