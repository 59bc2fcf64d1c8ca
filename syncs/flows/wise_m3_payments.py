"""Wise transfers → CloudSuite's GL as payment journals, with the Wise transfer id as the
reconciliation reference, exactly once.

Fed by Wise's ``transfers#state-change`` webhooks (verified, stored and deduplicated by the
webhook edge) and, as a safety net for a missed delivery, by a poll of the profile's transfers.
Only transfers made from a quote ml-connector prepared (``m3_wise.quotes``) are posted: the
quote names the invoice.  Whatever an event says, the transfer's state is read from Wise just
before it is judged, so a late or repeated delivery of an older state never overrides a newer
one (the audit notes an event older than the state it found).

- ``outgoing_payment_sent``: the money left — a journal (``wise-paid:<invoice>:<transfer>``):
  debit the supplier liability (``gl_account`` mapping ``wise_ap:<invoice currency>``) with the
  amount Wise paid, credit the Wise balance (``wise_bank:<source currency>``) with what it cost.
- ``bounced_back``, ``funds_refunded``, ``charged_back`` after it was sent: the same journal
  reversed (``wise-reversed:<transfer>``), once.
- Any other state: nothing yet.

The journal goes through the connection's payment programs (GLS840MI by default: head, lines,
control), keyed by the ledger entry, so an interrupted post is completed, never doubled.
Checked before any call, flagged with the reason: the currencies, the amounts, and that both
accounts are mapped and exist in CloudSuite's chart (CRS630MI).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from connections.providers.base import InboundEvent
from connections.providers.infor_m3 import InforM3
from connections.providers.wise import WiseProvider
from syncs.flows import kinds
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
    lookups_of,
)
from syncs.flows.keys import WISE_PAID, WISE_QUOTE, WISE_REVERSED, quoted_invoice
from syncs.flows.m3_journals import (
    AccountCheck,
    account_check,
    account_problem,
    journal_line,
    journal_result,
    post_journal,
)
from syncs.flows.wise_reconcile import WisePayments
from syncs.money import currency_known, decimal, to_minor

ACCOUNTS = kinds.GL_ACCOUNT.reading("wise_ap", "wise_bank", per_currency=True)

logger = logging.getLogger(__name__)

Context = FlowContext[WiseProvider, InforM3]
SENT = "outgoing_payment_sent"
REVERSED = ("bounced_back", "funds_refunded", "charged_back")
POLL_LIMIT = 1000  # transfers the safety-net poll reads back, newest first


def quoted_invoices(ctx: FlowContext[Any, Any]) -> dict[str, str]:
    """Quote id → the CloudSuite invoice key it was prepared for (from the quotes ledger)."""
    made = ctx.ledger.under(WISE_QUOTE, side="source")
    return {quote_id: quoted_invoice(key) for key, quote_id in made.items()}


@dataclass(frozen=True)
class TransferNow(Lookups):
    """The transfer as Wise has it just before it is judged, which of its payment and reversal
    journals are posted, and the supplier liability and Wise balance accounts it is journalled
    to, each checked against the chart."""

    transfer: dict[str, Any]
    posted: tuple[str, ...] = ()
    accounts: dict[str, AccountCheck] = field(default_factory=dict)


class WiseTransfersToM3(Flow[WiseProvider, InforM3]):
    key = "wise_m3.payments"
    label = "Wise transfers → CloudSuite payment journals"
    source_kind = "wise"
    target_kind = "infor_m3"
    stream = "transfers"
    ledger_target = "m3.journal"
    posting_name = "the journal entry"
    posts = (WISE_PAID, WISE_REVERSED)
    reads = (WISE_QUOTE,)
    reconciler = WisePayments()
    money = "out"
    mapping_kinds = (ACCOUNTS,)
    lookups = TransferNow
    webhook_system = "wise"
    webhook_events = ("transfers#state-change",)

    def _record(
        self, transfer: dict[str, Any], invoices: dict[str, str], *, via: str, event: Any = None
    ) -> SourceRecord:
        return SourceRecord(
            str(transfer.get("id")),
            {
                "transfer": transfer,
                "invoice": invoices.get(str(transfer.get("quoteUuid") or "")),
                "event": event,
            },
            seen_via=via,
        )

    def records_from_event(self, ctx: Context, event: InboundEvent) -> list[SourceRecord]:
        data = event.payload.get("data") or {}
        resource = data.get("resource") or {}
        if resource.get("type") != "transfer" or not resource.get("id"):
            return []
        seen = {"state": data.get("current_state"), "occurred_at": data.get("occurred_at")}
        transfer = ctx.source.get_transfer(resource["id"])
        return [self._record(transfer, quoted_invoices(ctx), via="webhook", event=seen)]

    def extract(self, ctx: Context) -> Iterator[SourceRecord]:
        invoices = quoted_invoices(ctx)
        if not invoices:
            return
        candidates = []
        for n, transfer in enumerate(ctx.source.list_transfers()):
            if n >= POLL_LIMIT:
                break
            if str(transfer.get("quoteUuid")) in invoices and (
                transfer.get("status") in (SENT, *REVERSED)
            ):
                candidates.append(transfer)
        keys = {str(t["id"]): self._keys(t, invoices) for t in candidates}
        done = ctx.ledger.confirmed(k for pair in keys.values() for k in pair if k)
        for transfer in reversed(candidates):  # oldest first
            paid, reversed_key = keys[str(transfer["id"])]
            wanted = reversed_key if transfer["status"] in REVERSED else paid
            if wanted in done or (transfer["status"] in REVERSED and paid not in done):
                continue  # posted already; or reversed before it was ever posted: nothing to do
            yield self._record(transfer, invoices, via="poll")

    @staticmethod
    def _keys(transfer: dict[str, Any], invoices: dict[str, str]) -> tuple[str, str]:
        invoice = invoices.get(str(transfer.get("quoteUuid")), "")
        return WISE_PAID.build(invoice, transfer["id"]), WISE_REVERSED.build(transfer["id"])

    def serial_key(self, record: SourceRecord) -> str | None:
        return record.source_key  # one transfer's states one after another

    def prepare(self, ctx: Context, record: SourceRecord) -> TransferNow:
        """The transfer as Wise has it now (a late or repeated delivery of an older state never
        overrides it; a replay judges it as it is then), which of its journals are posted, and
        whether the mapped accounts are in the chart."""
        transfer = ctx.source.get_transfer(record.source_key)
        keys = [WISE_REVERSED.build(transfer["id"])]
        if record.data.get("invoice"):
            keys.append(WISE_PAID.build(record.data["invoice"], transfer["id"]))
        accounts = {
            role: ACCOUNTS.resolve(ctx.mappings, f"wise_{role}", str(currency or ""))
            for role, currency in (
                ("ap", transfer.get("targetCurrency")),
                ("bank", transfer.get("sourceCurrency")),
            )
        }
        chart = self.chart(ctx.target)
        return TransferNow(
            transfer=transfer,
            posted=tuple(sorted(ctx.ledger.confirmed(keys))),
            accounts={role: account_check(value, chart) for role, value in accounts.items()},
        )

    def ledger_key(self, record: SourceRecord) -> str | None:
        """The reversal of a transfer Wise now has as reversed; else its payment journal, which
        names the invoice (None: the transfer was not made from a quote ml-connector made)."""
        transfer = lookups_of(record, TransferNow).transfer
        if str(transfer.get("status")) in REVERSED:
            return WISE_REVERSED.build(transfer["id"])
        invoice = record.data.get("invoice")
        return WISE_PAID.build(invoice, transfer["id"]) if invoice else None

    def summary(self, record: SourceRecord) -> Summary:
        found = record.lookups
        transfer = found.transfer if isinstance(found, TransferNow) else record.data["transfer"]
        _, supplier, number, _ = [*str(record.data.get("invoice") or "").split(":"), "", "", ""][:4]
        return Summary(
            Summary.amount_of(transfer.get("targetValue")),
            str(transfer.get("targetCurrency") or ""),
            party=supplier,
            document=number,
        )

    def map(self, record: SourceRecord, mappings: Mappings) -> Payload | Flag | Skip:
        data, found = record.data, lookups_of(record, TransferNow)
        transfer = found.transfer
        tid, state = transfer.get("id"), str(transfer.get("status"))
        event = data.get("event") or {}
        late = (
            f" (the delivery said {event['state']}, an older state)"
            if event.get("state") and event["state"] != state
            else ""
        )
        if not data.get("invoice"):
            return Skip(f"Transfer {tid} was not made from a quote ml-connector prepared.")
        if state in REVERSED:
            if WISE_PAID.build(data["invoice"], tid) not in found.posted:
                return Skip(f"Transfer {tid} is {state} and was never posted: nothing to undo.")
            sign, what = Decimal(-1), "reversed"
        elif state == SENT:
            sign, what = Decimal(1), "paid"
        else:
            return Skip(f"Transfer {tid} is {state}: posted once the money is sent{late}.")
        problem, fix = self._problem(transfer, found.accounts)
        if problem:
            return Flag(f"Transfer {tid}: {problem}", fix=fix)
        target = decimal(transfer["targetValue"]) * sign
        source = decimal(transfer["sourceValue"]) * sign
        text = f"Wise {tid} {data['invoice'].split(':')[2]}"[:40]
        day = self._day(transfer)
        ap, bank = str(found.accounts["ap"].mapped), str(found.accounts["bank"].mapped)
        # the supplier invoice it pays, for a journal layout with places for them
        _, supplier, number, year = [*data["invoice"].split(":"), "", "", "", ""][:4]
        identity = {"SUNO": supplier, "SINO": number, "INYR": year}
        lines = [
            {
                **journal_line(day, ap, transfer["targetCurrency"], target, text),
                **identity,
            },
            {
                **journal_line(day, bank, transfer["sourceCurrency"], -source, text),
                **identity,
            },
        ]
        return Payload(
            {"transfer": tid, "state": state, "what": what, "lines": lines, "text": text},
            ledger_key=self.ledger_key(record),
        )

    @staticmethod
    def _problem(
        transfer: dict[str, Any], accounts: dict[str, AccountCheck]
    ) -> tuple[str, tuple[str, str] | None]:
        """Why the transfer cannot be posted ("" when it can), and the mapping that would fix
        it."""
        for side in ("targetCurrency", "sourceCurrency"):
            if not currency_known(str(transfer.get(side) or "")):
                return f"“{transfer.get(side)}” is not a currency code.", None
        for value, currency in (
            (transfer.get("targetValue"), transfer.get("targetCurrency")),
            (transfer.get("sourceValue"), transfer.get("sourceCurrency")),
        ):
            try:
                amount = decimal(value)
                to_minor(amount, str(currency))
            except ValueError as exc:
                return f"the amount {value} {currency} cannot be posted ({exc}).", None
            if amount <= 0:
                return f"the amount {value} {currency} is not a payment.", None
        for role, label in (("ap", "supplier liability"), ("bank", "Wise balance")):
            currency = transfer.get("targetCurrency" if role == "ap" else "sourceCurrency")
            problem = account_problem(
                accounts.get(role),
                label=f"{label} in {currency}",
                mapping=f"wise_{role}:{currency}",
            )
            if problem:
                return problem, ("gl_account", f"wise_{role}:{currency}")
        return "", None

    @staticmethod
    def _day(transfer: dict[str, Any]) -> str:
        try:
            moment = datetime.fromisoformat(str(transfer.get("created")).replace("Z", "+00:00"))
        except ValueError:
            moment = datetime.now(UTC)
        return moment.strftime("%Y%m%d")

    def load(self, ctx: Context, payload: Payload, posting: Posting | None) -> LoadResult:
        data = payload.data
        key, result = post_journal(ctx, payload, posting, prefix="W")
        amount = f"{data['lines'][0]['CUAM']} {data['lines'][0]['CUCD']}"
        return journal_result(
            key,
            result,
            f"Wise transfer {data['transfer']} {data['what']}: journal {key} posted in "
            f"CloudSuite ({amount}), reference “{data['text']}”.",
            transfer=data["transfer"],
        )

    def find_existing(self, ctx: Context, payload: Payload, posting: Posting) -> LoadResult | None:
        return None  # the journal is keyed by its ledger entry: sending it again completes it
