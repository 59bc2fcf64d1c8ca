"""CloudSuite customers → Stripe customers, matched by the M3 customer number in metadata.

New customers are created once (through the posting ledger, with a Stripe idempotency key);
existing ones get only the fields that changed.  Reads ``CRS610MI LstByNumber`` from the last
run's start (``LMTS``, with an overlap window, because M3 does not return LMTS per record).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from syncs.flows.base import Flag, Flow, LoadResult, Mappings, Payload, Posting, Skip, SourceRecord

if TYPE_CHECKING:
    from syncs.runner import FlowContext

logger = logging.getLogger(__name__)

METADATA_KEY = "m3_customer"
FIELDS = ("name", "email", "phone", "address")


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if v not in (None, "")}
    return value or None


class M3CustomersToStripe(Flow):
    key = "m3_stripe.customers"
    label = "CloudSuite customers → Stripe customers"
    source_kind = "infor_m3"
    target_kind = "stripe"
    stream = "customers"
    target = "stripe.customer"

    def extract(self, ctx: FlowContext) -> Iterator[SourceRecord]:
        started = int(time.time() * 1000)
        cursor = ctx.cursor(self.stream)
        overlap = int(self.options.get("overlap_seconds", 300)) * 1000
        since = max(0, int(cursor) - overlap) if cursor else None
        customers = list(ctx.client("source").list_customers(changed_since=since))
        ctx.set_total(len(customers))
        existing = ctx.client("target").index_customers(key=METADATA_KEY) if customers else {}
        for customer in customers:
            current = existing.get(customer["CUNO"])
            snapshot = {k: current.get(k) for k in ("id", "metadata", *FIELDS)} if current else None
            yield SourceRecord(customer["CUNO"], {"m3": customer, "stripe": snapshot})
        ctx.finish_at(str(started))

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

    def load(self, ctx: FlowContext, payload: Payload, posting: Posting | None) -> LoadResult:
        stripe = ctx.client("target")
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

    def find_existing(self, ctx: FlowContext, payload: Payload) -> LoadResult | None:
        number = payload.data["create"]["metadata"][METADATA_KEY]
        found = ctx.client("target").find_customer(key=METADATA_KEY, value=number)
        return LoadResult(found["id"], {"id": found["id"]}) if found else None
