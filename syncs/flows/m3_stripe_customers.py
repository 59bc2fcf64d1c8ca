"""CloudSuite customers → Stripe customers, matched by the M3 customer number in metadata.

New customers are created once (through the posting ledger, with a Stripe idempotency key);
existing ones get only the fields that changed.  Reads ``CRS610MI LstByNumber`` changed since
the last run's start: M3 filters by ``LMTS`` but does not return it per record, so the window
is ``from_run_start`` (epoch milliseconds — unverified for real tenants — with an overlap).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from connections.providers.infor_m3 import InforM3
from connections.providers.stripe import StripeProvider
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
    Unit,
)

logger = logging.getLogger(__name__)

METADATA_KEY = "m3_customer"
FIELDS = ("name", "email", "phone", "address")


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if v not in (None, "")}
    return value or None


Context = FlowContext[InforM3, StripeProvider]


class M3CustomersToStripe(Flow[InforM3, StripeProvider]):
    key = "m3_stripe.customers"
    label = "CloudSuite customers → Stripe customers"
    source_kind = "infor_m3"
    target_kind = "stripe"
    stream = "customers"
    ledger_target = "stripe.customer"
    window = ReadWindow("LMTS", Unit.EPOCH_MS, overlap=timedelta(minutes=5), from_run_start=True)

    def extract(self, ctx: Context) -> Iterator[SourceRecord]:
        since = ctx.window_start
        customers = list(ctx.source.list_customers(changed_since=int(since) if since else None))
        ctx.set_total(len(customers))
        existing = ctx.target.index_customers(key=METADATA_KEY) if customers else {}
        for customer in customers:
            current = existing.get(customer["CUNO"])
            snapshot = {k: current.get(k) for k in ("id", "metadata", *FIELDS)} if current else None
            yield SourceRecord(customer["CUNO"], {"m3": customer, "stripe": snapshot})

    def map(self, record: SourceRecord, mappings: Mappings) -> Payload | Flag | Skip:
        m3, current = record.data["m3"], record.data.get("stripe")
        address = {
            "line1": m3.get("CUA1"),
            "line2": m3.get("CUA2"),
            "city": m3.get("TOWN"),
            "postal_code": m3.get("PONO"),
            "country": m3.get("CSCD"),
        }
        wanted = {
            "name": m3.get("CUNM") or m3["CUNO"],
            "email": m3.get("MAIL"),
            "phone": m3.get("PHNO"),
            "address": address,
        }
        wanted = {k: _clean(v) for k, v in wanted.items()}
        metadata = {METADATA_KEY: m3["CUNO"], "m3_currency": m3.get("CUCD") or ""}
        if current is None:
            create = {k: v for k, v in wanted.items() if v is not None}
            return Payload(
                {"create": {**create, "metadata": metadata}}, ledger_key=f"customer:{m3['CUNO']}"
            )
        changes = {k: v or "" for k, v in wanted.items() if _clean(current.get(k)) != v}
        if any((current.get("metadata") or {}).get(k) != v for k, v in metadata.items()):
            changes["metadata"] = metadata
        if not changes:
            return Skip("Unchanged in Stripe.")
        return Payload(
            {"id": current["id"], "update": changes}, ledger_key=None, target_key=current["id"]
        )

    def load(self, ctx: Context, payload: Payload, posting: Posting | None) -> LoadResult:
        stripe = ctx.target
        if "create" in payload.data:
            assert posting is not None
            created = stripe.create_customer(
                payload.data["create"], idempotency_key=posting.idempotency_key
            )
            return LoadResult(created["id"], {"id": created["id"]}, "Created in Stripe.")
        updated = stripe.update_customer(payload.data["id"], payload.data["update"])
        return LoadResult(
            updated["id"],
            {"id": updated["id"]},
            "Updated in Stripe: " + ", ".join(sorted(payload.data["update"])) + ".",
        )

    def find_existing(self, ctx: Context, payload: Payload, posting: Posting) -> LoadResult | None:
        number = payload.data["create"]["metadata"][METADATA_KEY]
        found = ctx.target.find_customer(key=METADATA_KEY, value=number)
        return LoadResult(found["id"], {"id": found["id"]}) if found else None
