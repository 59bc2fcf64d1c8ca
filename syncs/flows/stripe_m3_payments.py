"""Stripe payments and refunds → CloudSuite customer receipts (ARS040MI), exactly once.

Events arrive by webhook (processed within seconds) and by a scheduled poll of Stripe's events
list, which catches whatever a webhook missed; each audit record says which path saw it.  A
receipt is a payment batch: head, one line against the invoice (CINO/INYR) allocated to the GL
accounting string of the ``gl_account`` mapping ``stripe_receipts`` (or ``stripe_receipts:EUR``;
dimensions AIT1 to AIT7 separated by ``;``), the Stripe fee as a batch charge when a
``charge_code`` mapping ``stripe_fees`` exists (a CloudSuite charge code, CHRI: M3 books the
charge to the account that code is set up with), then control.  Refunds post negative lines.
Disputes, overpayments against what is still open, payments on paid invoices, currency
mismatches and payments not linked to an invoice are flagged.

With the integration setting ``receipt_batches`` = ``payout`` (for accounts paid out to the bank
automatically), a receipt batch is a Stripe payout instead: on ``payout.paid`` one batch holds a
line for every payment (and a negative one for every refund) the payout paid out, and each
payment's Stripe fee as a charge, so the batch total is the bank deposit the AR team reconciles.
A payout that holds anything else (an adjustment, a payment not linked to an invoice) or does not
add up is flagged, never posted in part.

The batch number is unique to the posting (ledger entry and attempt).  After an unknown outcome
the batch is probed first: a controlled batch is the receipt, posted; an absent one, or an open
one without a fee, is completed (M3 answers "already exists" for the steps that were done); an
open one with a fee is left alone — the fee, which has no key, may already be on it — and the
receipt is posted as a new batch, so a fee is never charged twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from connections.providers.base import InboundEvent
from connections.providers.infor_m3 import InforM3
from connections.providers.spec import choice, positive_int
from connections.providers.stripe import EVENT_TYPES, StripeProvider
from syncs.flows import keys as ledger_keys
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
    Superseded,
    lookups_of,
    setting,
)
from syncs.flows.stripe_events import EVENTS_WINDOW, Reads, known_keys, movements, new_events
from syncs.flows.stripe_events import keys as event_keys
from syncs.flows.stripe_reconcile import StripeCollections
from syncs.money import decimal, from_minor

RECEIPTS = kinds.GL_ACCOUNT.reading("stripe_receipts", per_currency=True)
FEES = kinds.CHARGE_CODE.reading("stripe_fees", source="stripe_fees.")

logger = logging.getLogger(__name__)

BATCH_NUMBER_BASE = 7_000_000_000
Context = FlowContext[StripeProvider, InforM3]


def movement_key(movement: dict[str, Any]) -> str:
    """The posting ledger's natural key of a money movement: ``payment:pi_…``, ``refund:re_…``."""
    return ledger_keys.movement(movement["kind"], movement["id"])


RECEIPTS_PER_REQUEST = 25
READ_AHEAD = 100  # payments whose open amounts are read from CloudSuite together
EVENTS_AT_ONCE = 300  # a poll's events turned into movements a slice at a time (~100 payments)


def slices(events: list[dict[str, Any]]) -> Iterator[tuple[list[dict], list[dict]]]:
    """The events (oldest first) in slices of about ``EVENTS_AT_ONCE``, each with the events
    after it.  A slice never ends inside a second: the events announcing one payment carry the
    same time, and a payment read in one slice costs nothing in the next."""
    start = 0
    while start < len(events):
        end = min(start + EVENTS_AT_ONCE, len(events))
        while end < len(events) and events[end]["created"] == events[end - 1]["created"]:
            end += 1
        yield events[start:end], events[end:]
        start = end


def _invoice(movement: dict[str, Any]) -> tuple[str, str, str] | None:
    """(customer, invoice, year) of a payment on a CloudSuite invoice; None otherwise."""
    inv = movement.get("m3") or {}
    if movement["kind"] != "payment" or not inv.get("m3_invoice") or not inv.get("m3_customer"):
        return None
    return (inv["m3_customer"], inv["m3_invoice"], str(inv.get("m3_invoice_year", "")))


def _open(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount)


def read_open_amounts(
    ctx: Context, movements: list[dict[str, Any]], first: set[tuple[str, str, str]]
) -> None:
    """Read ahead, in two CloudSuite requests, what is open on the invoices these payments pay
    — for each payment the first of this run on its invoice (a later one must see the earlier
    one's receipt, so it is read just before it is mapped)."""
    ahead: dict[str, tuple[str, str, str]] = {}
    for movement in movements:
        if (key := _invoice(movement)) is not None and key not in first:
            first.add(key)
            ahead[movement["id"]] = key
    if not ahead:
        return
    try:
        amounts = ctx.target.invoice_open_amounts(sorted(set(ahead.values())))
    except Exception as exc:  # each is read on its own before it is mapped, and fails there
        logger.warning("Reading open amounts ahead failed: %s", exc)
        return
    for movement_id, key in ahead.items():
        if key in amounts:
            ctx.read_ahead[f"open:{movement_id}"] = _open(amounts[key])


@dataclass(frozen=True)
class OpenOnInvoices(Lookups):
    """What CloudSuite still has open on the invoice each payment pays, by the payment's id (a
    payout's parts each by theirs), read just before the movement is mapped; a payment missing
    here is judged against its invoice's amount from Stripe's metadata.  None: CloudSuite could
    not say."""

    open_amount: dict[str, str | None] = field(default_factory=dict)


def open_on_invoice(ctx: Context, movement: dict[str, Any]) -> OpenOnInvoices:
    """What is open on the invoice of a payment, read just before it is mapped (so a second
    payment sees the first one's receipt) or, for the first payment on its invoice in a poll,
    read ahead with its neighbours."""
    key = _invoice(movement)
    if key is None:
        return OpenOnInvoices()
    ahead = ctx.read_ahead.pop(f"open:{movement['id']}", False)
    if ctx.ledger.known([movement_key(movement)]):  # posted already (or right now): the ledger
        return OpenOnInvoices()  # says so; its own receipt must not make it look overpaid
    if ahead is not False:
        return OpenOnInvoices({movement["id"]: ahead})
    open_amount = ctx.target.invoice_open_amount(customer=key[0], invoice=key[1], year=key[2])
    return OpenOnInvoices({movement["id"]: _open(open_amount)})


def open_on_invoices(ctx: Context, payout: dict[str, Any]) -> OpenOnInvoices:
    """What is open on each invoice a payout pays (two requests)."""
    if ctx.ledger.known([movement_key(payout)]):
        return OpenOnInvoices()
    keys = {k for part in payout.get("parts") or [] if (k := _invoice(part)) is not None}
    known = ctx.target.invoice_open_amounts(sorted(keys)) if keys else {}
    found: dict[str, str | None] = {}
    for part in payout.get("parts") or []:
        key = _invoice(part)
        if key is not None:
            if key not in known:  # CloudSuite would not list its customer: ask, and see why
                known[key] = ctx.target.invoice_open_amount(
                    customer=key[0], invoice=key[1], year=key[2]
                )
            found[part["id"]] = _open(known[key])
    return OpenOnInvoices(found)


def _still_open(
    movement: dict[str, Any], inv: dict[str, str], found: OpenOnInvoices
) -> Decimal | None:
    """What is open on the invoice: as CloudSuite said just before, else the invoice's amount
    from Stripe's metadata; None when neither is known (then nothing is judged)."""
    if found.open_amount.get(movement["id"]) is not None:
        return decimal(found.open_amount[movement["id"]])
    total = decimal(inv.get("m3_amount") or "")
    return total if total > 0 else None


def gl_string(value: str) -> dict[str, str]:
    """``"1930;100;;P1"`` → ``{"AIT1": "1930", "AIT2": "100", "AIT4": "P1"}``."""
    parts = [p.strip() for p in value.split(";")][:7]
    return {f"AIT{n}": part for n, part in enumerate(parts, start=1) if part}


class StripePaymentsToM3(Flow[StripeProvider, InforM3]):
    key = "stripe_m3.payments"
    label = "Stripe payments and refunds → CloudSuite receipts"
    source_kind = "stripe"
    target_kind = "infor_m3"
    stream = "payments"
    ledger_target = "m3.receipt"
    posting_name = "the receipt"
    reconciler = StripeCollections()
    listed_in = frozenset({"collections"})
    money = "in"
    posts = (ledger_keys.PAYMENT, ledger_keys.REFUND, ledger_keys.PAYOUT)
    window = EVENTS_WINDOW
    webhook_system = "stripe"
    webhook_events = EVENT_TYPES
    mapping_kinds = (RECEIPTS, FEES)
    lookups = OpenOnInvoices
    settings = (
        setting(
            "receipt_batches",
            "Receipt batches",
            choice("payment", "payout"),
            default="payment",
            help="payment: one CloudSuite receipt batch per Stripe payment. payout: one batch "
            "per Stripe payout, as the bank statement shows it.",
        ),
        setting(
            "receipts_per_request",
            "Receipt batches per request",
            positive_int,
            default=RECEIPTS_PER_REQUEST,
            help="How many receipt batches one CloudSuite request carries.",
        ),
        setting(
            "batch_type",
            "Batch type",
            default="ST",
            help="The CloudSuite receipt batch type (ARS040MI).",
        ),
        setting(
            "bank_account",
            "Bank account",
            default="",
            help="The CloudSuite bank account of the receipts (blank: the division's default).",
        ),
        setting(
            "batch_number_base",
            "First batch number",
            positive_int,
            default=BATCH_NUMBER_BASE,
            help="Receipt batch numbers start here (each payment's ledger entry adds to it).",
        ),
    )

    @property
    def chunk_size(self) -> int:  # type: ignore[override]
        """Receipt batches one CloudSuite request carries (``receipts_per_request``, default 25:
        about a hundred MI transactions)."""
        return self.setting("receipts_per_request")

    @property
    def payouts(self) -> bool:
        """Whether a receipt batch is a Stripe payout (else one batch per payment)."""
        return self.setting("receipt_batches") == "payout"

    def extract(self, ctx: Context) -> Iterator[SourceRecord]:
        payouts = self.payouts
        types = ("payout.paid", "charge.dispute.created") if payouts else EVENT_TYPES
        events = new_events(ctx, types)
        # Ask the ledger before asking Stripe for details: a quiet poll costs a few requests.
        cheap = {e["id"]: known_keys(e, payouts=payouts) for e in events}
        posted = ctx.ledger.confirmed(k for found in cheap.values() for k in found or ())
        events = [e for e in events if cheap[e["id"]] is None or not set(cheap[e["id"]]) <= posted]
        keys: set[str] = set()  # movements met in this run: one payment, up to three events
        first: set[tuple[str, str, str]] = set()  # invoices met earlier in this run
        sent = 0
        for part, later in slices(events):
            found = self._movements(ctx, part, keys)
            rest = {k for e in later for k in cheap[e["id"]] or [e["id"]]}
            ctx.set_total(sent + len(found) + len(rest - keys))  # the rest as the events say
            for at in range(0, len(found), READ_AHEAD):
                ahead = found[at : at + READ_AHEAD]
                read_open_amounts(ctx, [m for _, m in ahead], first)
                for event, movement in ahead:
                    sent += 1
                    yield SourceRecord(
                        movement["id"], movement, watermark=str(event["created"]), seen_via="poll"
                    )
        ctx.set_total(sent)

    def _movements(
        self, ctx: Context, events: list[dict[str, Any]], keys: set[str]
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """The movements a slice of the poll's events stand for, not posted yet and not met
        before in this run, read in bulk (``Reads``)."""
        reads, payouts = Reads(ctx.source), self.payouts
        reads.links(ctx, events)
        named = {e["id"]: event_keys(reads, e, payouts=payouts) for e in events}
        posted = ctx.ledger.confirmed(k for found in named.values() for k in found or ())
        events = [
            e
            for e in events
            if named[e["id"]] is None or not set(named[e["id"]]) <= (posted | keys)
        ]
        reads.prefetch(ctx, events)
        found = []
        for event in events:  # one payment is announced by up to three events: keep the first
            for movement in movements(reads, event, payouts=payouts):
                if (key := movement_key(movement)) not in keys:
                    keys.add(key)
                    found.append((event, movement))
        posted |= ctx.ledger.confirmed(movement_key(m) for _, m in found)
        return [(e, m) for e, m in found if movement_key(m) not in posted]

    def records_from_event(self, ctx: Context, event: InboundEvent) -> Iterator[SourceRecord]:
        for movement in movements(ctx.source, event.payload, payouts=self.payouts):
            yield SourceRecord(movement["id"], movement, seen_via="webhook")

    def serial_key(self, record: SourceRecord) -> str | None:
        """Movements on one invoice go one after the other: each is judged against what the
        ones before it left open (and payouts, which pay many invoices, one after another)."""
        if record.data.get("kind") == "payout":
            return "payouts"
        inv = record.data.get("m3") or {}
        if not inv.get("m3_invoice"):
            return None
        return f"{inv.get('m3_customer')}/{inv.get('m3_invoice_year')}/{inv['m3_invoice']}"

    def prepare(self, ctx: Context, record: SourceRecord) -> OpenOnInvoices:
        """What CloudSuite still has open on the invoice, read once the earlier movements on it
        are written (the runner sees to that, through ``serial_key``)."""
        if record.data.get("kind") == "payout":
            return open_on_invoices(ctx, record.data)
        return open_on_invoice(ctx, record.data)

    def ledger_key(self, record: SourceRecord) -> str:
        return movement_key(record.data)

    def summary(self, record: SourceRecord) -> Summary:
        m, inv = record.data, record.data.get("m3") or {}
        currency = str(m["currency"]).upper()
        amount = from_minor(int(m["amount"]), currency)
        return Summary(
            -amount if m["kind"] == "refund" else amount,
            currency,
            party=str(inv.get("m3_customer") or ""),
            party_name=str(m.get("customer_name") or ""),
            document=str(inv.get("m3_invoice") or (m["id"] if m["kind"] == "payout" else "")),
        )

    def map(self, record: SourceRecord, mappings: Mappings) -> Payload | Flag | Skip:
        found = lookups_of(record, OpenOnInvoices)
        if record.data.get("kind") == "payout":
            return self._map_payout(record.data, mappings, found)
        m, inv = record.data, record.data.get("m3") or {}
        currency = m["currency"].upper()
        amount = from_minor(m["amount"], currency)
        what = f"{m['kind'].capitalize()} {m['id']} of {amount} {currency}"
        if m["kind"] == "dispute":
            return Flag(
                f"{what} is disputed (invoice {inv.get('m3_invoice', 'unknown')}): "
                "respond in Stripe; nothing is posted.",
                advice="Answer the dispute in Stripe with the invoice and proof of delivery "
                "before Stripe's deadline. Nothing changes in CloudSuite now: a dispute that is "
                "lost comes back as a refund and is posted then. Dismiss this item once answered.",
                see=("dispute", m["id"]),
            )
        if not inv.get("m3_invoice"):
            return Flag(f"{what} is not linked to a CloudSuite invoice.")
        if inv.get("m3_currency") and inv["m3_currency"] != currency:
            return Flag(
                f"{what} does not match invoice {inv['m3_invoice']}, which is in "
                f"{inv['m3_currency']}."
            )
        gl = RECEIPTS.resolve(mappings, "stripe_receipts", currency)
        if gl is None:
            return Flag(
                "No GL account is mapped for Stripe receipts: add a GL account mapping "
                f"for “stripe_receipts” (or “stripe_receipts:{currency}”), then replay.",
                fix=("gl_account", f"stripe_receipts:{currency}"),
            )
        still_open = _still_open(m, inv, found)  # None: CloudSuite could not say, nor the invoice
        if m["kind"] == "payment" and still_open is not None and still_open <= 0:
            return Flag(
                f"{what}: invoice {inv['m3_invoice']} is already paid in CloudSuite; nothing is "
                "posted (refund it in Stripe, or apply it by hand).",
                advice=f"Refund the {amount} {currency} to the customer in Stripe (the refund is "
                "not posted: nothing was), or post it in CloudSuite as an unapplied receipt "
                f"for customer {inv.get('m3_customer')} (ARS110) to apply to a later invoice. "
                "Then dismiss this item.",
                see=("payment", m["id"]),
            )
        if m["kind"] == "payment" and still_open is not None and amount > still_open:
            extra = amount - still_open
            return Flag(
                f"Overpayment: {what} is more than the {still_open} {currency} still open on "
                f"invoice {inv['m3_invoice']}; nothing is posted.",
                advice=f"Post it in CloudSuite by hand (ARS110): {still_open} {currency} "
                f"against invoice {inv['m3_invoice']}, and the {extra} {currency} paid too much "
                f"as an unapplied receipt for customer {inv.get('m3_customer')}, to apply to a "
                "later invoice or to pay back. Then dismiss this item.",
                see=("payment", m["id"]),
            )
        line = {
            "TRNO": 1,
            "CUNO": inv["m3_customer"],
            "CINO": inv["m3_invoice"],
            "INYR": inv["m3_invoice_year"],
            "CUCD": currency,
            "PYAM": str(amount if m["kind"] == "payment" else -amount),
            **gl_string(gl),
        }
        charges, fee_code = [], mappings.get(FEES.name, "stripe_fees")
        if m["kind"] == "payment" and m.get("fee") and fee_code:
            charges.append(
                {"CHAM": str(from_minor(m["fee"], currency)), "CHRI": fee_code, "CUCD": currency}
            )
        note = f"{m['kind'].capitalize()} of {amount} {currency} on invoice {inv['m3_invoice']}"
        if m["kind"] == "payment" and still_open is not None and amount < still_open:
            note += f" (partial: {still_open - amount} {currency} still open)"
        elif m["kind"] == "payment" and still_open is not None:
            note += " (the invoice is now paid in full)"
        return Payload(
            {
                "lines": [line],
                "charges": charges,
                "note": note + ".",
                "batch_type": self.setting("batch_type"),
                "bank_account": self.setting("bank_account"),
            },
            ledger_key=self.ledger_key(record),
        )

    def _map_payout(
        self, m: dict[str, Any], mappings: Mappings, found: OpenOnInvoices
    ) -> Payload | Flag:
        currency = m["currency"].upper()
        total = from_minor(m["amount"], currency)
        what = f"Payout {m['id']} of {total} {currency}"
        parts = m.get("parts") or []
        others = sorted({p["type"] for p in parts if p["kind"] == "other"})
        if others:
            return Flag(
                f"{what} holds entries that are not payments or refunds ({', '.join(others)}): "
                "post it by hand in CloudSuite (ARS110); nothing is posted."
            )
        unlinked = [p["id"] for p in parts if not (p.get("m3") or {}).get("m3_invoice")]
        if unlinked:
            return Flag(
                f"{what} pays out {len(unlinked)} payment(s) not linked to a CloudSuite invoice "
                f"({', '.join(unlinked[:3])}{' …' if len(unlinked) > 3 else ''}): nothing is "
                "posted; post the deposit by hand."
            )
        wrong = [
            p["id"]
            for p in parts
            if p["currency"].upper() != currency
            or (p["m3"].get("m3_currency") and p["m3"]["m3_currency"] != currency)
        ]
        if wrong:
            return Flag(f"{what} pays invoices in another currency ({', '.join(wrong[:3])}).")
        gl = RECEIPTS.resolve(mappings, "stripe_receipts", currency)
        if gl is None:
            return Flag(
                "No GL account is mapped for Stripe receipts: add a GL account mapping "
                f"for “stripe_receipts” (or “stripe_receipts:{currency}”), then replay.",
                fix=("gl_account", f"stripe_receipts:{currency}"),
            )
        fee_code = mappings.get(FEES.name, "stripe_fees")
        fees = sum(p["fee"] for p in parts)
        if fees and not fee_code:
            return Flag(
                f"{what} carries {from_minor(fees, currency)} {currency} of Stripe fees but no "
                "charge code is mapped for “stripe_fees”, so the batch would not equal the "
                "deposit: add the charge code mapping, then replay.",
                fix=("charge_code", "stripe_fees"),
            )
        paid: dict[tuple[str, str], Decimal] = {}
        lines, charges = [], []
        for n, part in enumerate(parts, start=1):
            inv, amount = part["m3"], from_minor(part["amount"], currency)
            if part["kind"] == "payment":
                key = (inv["m3_customer"], inv["m3_invoice"])
                paid[key] = paid.get(key, Decimal(0)) + amount
                still_open = _still_open(part, inv, found)
                if still_open is not None and paid[key] > still_open:
                    return Flag(
                        f"Overpayment: {what} pays {paid[key]} {currency} on invoice "
                        f"{inv['m3_invoice']}, which has {still_open} {currency} open; "
                        "nothing is posted."
                    )
            lines.append(
                {
                    "TRNO": n,
                    "CUNO": inv["m3_customer"],
                    "CINO": inv["m3_invoice"],
                    "INYR": inv.get("m3_invoice_year", ""),
                    "CUCD": currency,
                    "PYAM": str(amount if part["kind"] == "payment" else -amount),
                    **gl_string(gl),
                }
            )
            if part["fee"]:
                charges.append(
                    {
                        "CHAM": str(from_minor(part["fee"], currency)),
                        "CHRI": fee_code,
                        "CUCD": currency,
                    }
                )
        net = sum((Decimal(line["PYAM"]) for line in lines), Decimal(0)) - sum(
            (Decimal(c["CHAM"]) for c in charges), Decimal(0)
        )
        if net != total:
            return Flag(
                f"{what} does not add up: its payments, refunds and fees come to {net} "
                f"{currency}; nothing is posted."
            )
        payments = sum(1 for p in parts if p["kind"] == "payment")
        refunds = len(parts) - payments
        note = (
            f"{what}: {payments} payment(s), {refunds} refund(s) and "
            f"{from_minor(fees, currency)} {currency} of fees in one batch, equal to the deposit."
        )
        return Payload(
            {
                "lines": lines,
                "charges": charges,
                "note": note,
                "batch_type": self.setting("batch_type"),
                "bank_account": self.setting("bank_account"),
            },
            ledger_key=movement_key(m),
        )

    def _batch(self, posting: Posting) -> int:
        return posting.number(self.setting("batch_number_base"))

    def _receipt(self, payload: Payload, posting: Posting | None) -> dict[str, Any]:
        assert posting is not None
        return {
            "batch": self._batch(posting),
            "batch_type": payload.data["batch_type"],
            "lines": payload.data["lines"],
            "charges": payload.data["charges"],
            "bank_account": payload.data["bank_account"],
        }

    @staticmethod
    def _posted(payload: Payload, result: dict[str, Any]) -> LoadResult:
        batch, flag = result["batch"], ""
        if result.get("refused"):
            flag = (
                f"Payment batch {batch} was posted in CloudSuite, but CloudSuite refused part of "
                f"it ({'; '.join(result['refused'])}). Add what is missing there by hand (ARS110), "
                "then dismiss this item: it is not posted again."
            )
        return LoadResult(f"PBID {batch}", result, payload.data["note"], flag=flag)

    def load(self, ctx: Context, payload: Payload, posting: Posting | None) -> LoadResult:
        return self._posted(payload, ctx.target.add_receipt(**self._receipt(payload, posting)))

    def load_many(
        self, ctx: Context, items: Sequence[tuple[Payload, Posting | None]]
    ) -> list[LoadResult | Exception]:
        """Up to ``chunk_size`` receipt batches in one CloudSuite request, each its own batch
        (and ledger entry), judged on its own."""
        outcomes = ctx.target.add_receipts([self._receipt(p, posting) for p, posting in items])
        return [
            o if isinstance(o, Exception) else self._posted(payload, o)
            for (payload, _), o in zip(items, outcomes, strict=True)
        ]

    def find_existing(self, ctx: Context, payload: Payload, posting: Posting) -> LoadResult | None:
        batch = self._batch(posting)
        state = ctx.target.receipt_batch_state(
            batch=batch,
            batch_type=payload.data["batch_type"],
            first_line=payload.data["lines"][0],
            bank_account=payload.data["bank_account"],
        )
        if state == "updated":
            return LoadResult(f"PBID {batch}", {"batch": batch, "steps": ["controlled earlier"]})
        if state == "open" and payload.data["charges"]:
            raise Superseded(
                f"Payment batch {batch} was interrupted before it was controlled, and its Stripe "
                "fee may already be on it; it has no effect in CloudSuite but should be deleted "
                "there (ARS040). The receipt was posted again as a new batch."
            )
        return None  # absent, or open without a fee: completing this batch is safe
