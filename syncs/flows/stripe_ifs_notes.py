"""Stripe payments and disputes → a note on the IFS Cloud invoice, exactly once.

``payment_intent.succeeded`` and ``charge.dispute.created`` (by webhook within seconds, and by a
poll of Stripe's events list for whatever a webhook missed) look up the IFS invoice the payment
belongs to — ``metadata.ifs_invoice`` and ``metadata.ifs_company`` on the Stripe invoice (or on
the payment itself) — and append one line to its note field (the integration setting
``note_field``, ``NoteText`` by default; which set is the connection's ``invoices`` entity set).

The write is a ``PATCH`` with ``If-Match``: a record changed meanwhile (412), or a write whose
answer was lost, is read again, and written only if its line is still missing — so a note is
never written twice and a 412 inside a run is never a review item; a locked record fails
retryably and is tried again (the event is queued again, the poll reads it again).  Each line
carries the Stripe id, and the posting ledger keeps every note to one write.  A payment and a
dispute of one invoice are written one after the other (``serial_key``), never side by side.
The invoice's key is typed by IFS's ``$metadata`` (a numeric ``InvoiceId`` is written bare).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from connections.providers.base import InboundEvent
from connections.providers.ifs_cloud import IfsCloud
from connections.providers.ifs_cloud.credentials import navigation
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
    Skip,
    SourceRecord,
    Summary,
    setting,
)
from syncs.flows.stripe_events import EVENTS_WINDOW, new_events
from syncs.money import from_minor

logger = logging.getLogger(__name__)

EVENTS = ("payment_intent.succeeded", "charge.dispute.created")
Context = FlowContext[StripeProvider, IfsCloud]


def _ifs(*sources: dict[str, Any] | None) -> dict[str, str]:
    for source in sources:
        metadata = (source or {}).get("metadata") or {}
        if metadata.get("ifs_invoice"):
            return {k: str(metadata[k]) for k in ("ifs_invoice", "ifs_company") if k in metadata}
    return {}


def outcome(stripe: StripeProvider, event: dict[str, Any]) -> dict[str, Any] | None:
    """What an event tells the IFS invoice: a payment or a dispute (None: nothing to tell)."""
    kind, obj = event["type"], event["data"]["object"]
    if kind == "payment_intent.succeeded":
        intent = obj
        what = "payment"
    elif kind == "charge.dispute.created":
        paid_by = obj.get("payment_intent")
        intent = stripe.get_payment_intent(paid_by) if paid_by else {}
        what = "dispute"
    else:
        return None
    invoice = stripe.invoice_for_payment_intent(intent["id"]) if intent.get("id") else None
    return {
        "kind": what,
        "id": obj["id"],
        "amount": int(obj.get("amount_received") or obj.get("amount") or 0),
        "currency": str(obj.get("currency") or "").upper(),
        "created": int(event.get("created") or 0),
        "ifs": _ifs(invoice, intent, obj),
    }


class StripeOutcomesToIfsNotes(Flow[StripeProvider, IfsCloud]):
    key = "stripe_ifs.notes"
    label = "Stripe payments and disputes → IFS Cloud invoice notes"
    source_kind = "stripe"
    target_kind = "ifs_cloud"
    stream = "notes"
    ledger_target = "ifs.invoice_note"
    posting_name = "the note"
    posts = (keys.IFS_NOTE,)
    window = EVENTS_WINDOW
    settings = (
        setting(
            "note_field",
            "Note field",
            navigation,
            default="NoteText",
            help="The invoice field in IFS that takes the payment and dispute notes.",
        ),
    )
    webhook_system = "stripe"
    webhook_events = EVENTS

    def extract(self, ctx: Context) -> Iterator[SourceRecord]:
        events = new_events(ctx, EVENTS)
        posted = ctx.ledger.confirmed(
            keys.IFS_NOTE.build(e["data"]["object"]["id"]) for e in events
        )
        for event in events:
            if keys.IFS_NOTE.build(event["data"]["object"]["id"]) in posted:
                continue
            found = outcome(ctx.source, event)
            if found is not None:
                yield SourceRecord(found["id"], found, seen_via="poll")

    def records_from_event(self, ctx: Context, event: InboundEvent) -> list[SourceRecord]:
        found = outcome(ctx.source, event.payload)
        return [SourceRecord(found["id"], found, seen_via="webhook")] if found else []

    def serial_key(self, record: SourceRecord) -> str | None:
        """One invoice's notes are written one after the other (each reads the other's)."""
        ifs = record.data.get("ifs") or {}
        return f"{ifs.get('ifs_company')}/{ifs.get('ifs_invoice')}" if ifs else None

    def summary(self, record: SourceRecord) -> Summary:
        m, ifs = record.data, record.data.get("ifs") or {}
        currency = str(m["currency"]).upper()
        return Summary(
            from_minor(int(m["amount"]), currency),
            currency,
            party=str(ifs.get("ifs_customer") or ""),
            party_name=str(m.get("customer_name") or ""),
            document=str(ifs.get("ifs_invoice") or ""),
        )

    def map(self, record: SourceRecord, mappings: Mappings) -> Payload | Flag | Skip:
        m = record.data
        ifs = m.get("ifs") or {}
        if not ifs.get("ifs_invoice"):
            return Skip(f"Stripe {m['kind']} {m['id']} is not linked to an IFS invoice.")
        if not ifs.get("ifs_company"):
            return Flag(
                f"Stripe {m['kind']} {m['id']} names IFS invoice {ifs['ifs_invoice']} but no "
                "company (metadata ifs_company), so the invoice cannot be found."
            )
        day = datetime.fromtimestamp(m["created"], tz=UTC).strftime("%Y-%m-%d")
        try:
            amount = f"{from_minor(m['amount'], m['currency'])} {m['currency']}"
        except ValueError:
            amount = f"{m['amount']} (minor units) {m['currency']}"
        if m["kind"] == "payment":
            line = f"{day} Paid in Stripe: {amount} ({m['id']})."
        else:
            line = f"{day} Disputed in Stripe: {amount} ({m['id']}); answer it in Stripe."
        key = {"Company": ifs["ifs_company"], "InvoiceId": ifs["ifs_invoice"]}
        return Payload(
            {"key": key, "line": line, "marker": m["id"]}, ledger_key=self.ledger_key(record)
        )

    def ledger_key(self, record: SourceRecord) -> str:
        return keys.IFS_NOTE.build(record.data["id"])

    @property
    def note_field(self) -> str:
        return self.setting("note_field")

    def load(self, ctx: Context, payload: Payload, posting: Posting | None) -> LoadResult:
        field, line, marker = self.note_field, payload.data["line"], payload.data["marker"]

        def add_line(entity: dict[str, Any]) -> dict[str, Any] | None:
            note = str(entity.get(field) or "")
            if marker in note:  # already there (an earlier attempt's write went through)
                return None
            return {field: f"{note}\n{line}".strip()}

        entity, written = ctx.target.update("invoices", payload.data["key"], add_line)
        number = payload.data["key"]["InvoiceId"]
        said = (
            f"Noted on IFS invoice {number}."
            if written
            else (f"Already noted on IFS invoice {number} (an earlier write went through).")
        )
        return LoadResult(f"IFS invoice {number}", {field: entity.get(field)}, said)

    def find_existing(self, ctx: Context, payload: Payload, posting: Posting) -> LoadResult | None:
        entity, _ = ctx.target.get("invoices", payload.data["key"])
        if payload.data["marker"] in str(entity.get(self.note_field) or ""):
            return LoadResult(f"IFS invoice {payload.data['key']['InvoiceId']}")
        return None
