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

from connections.providers.infor_m3 import InforM3
from connections.providers.stripe import StripeProvider
from syncs.flows import keys
from syncs.flows.base import (
    Flag,
    Flow,
    FlowContext,
    Mappings,
    Payload,
    ReadWindow,
    Skip,
    SourceRecord,
    Summary,
    Unit,
)
from syncs.flows.stripe_customers import StripeCustomerWrites, snapshot

logger = logging.getLogger(__name__)

METADATA_KEY = "m3_customer"

Context = FlowContext[InforM3, StripeProvider]


class M3CustomersToStripe(StripeCustomerWrites, Flow[InforM3, StripeProvider]):
    key = "m3_stripe.customers"
    label = "CloudSuite customers → Stripe customers"
    source_kind = "infor_m3"
    target_kind = "stripe"
    stream = "customers"
    ledger_target = "stripe.customer"
    posting_name = "the customer"
    posts = (keys.M3_CUSTOMER,)
    metadata_key = METADATA_KEY
    window = ReadWindow("LMTS", Unit.EPOCH_MS, overlap=timedelta(minutes=5), from_run_start=True)

    def extract(self, ctx: Context) -> Iterator[SourceRecord]:
        since = ctx.window_start
        customers = list(ctx.source.list_customers(changed_since=int(since) if since else None))
        ctx.set_total(len(customers))
        existing = ctx.target.index_customers(key=METADATA_KEY) if customers else {}
        for customer in customers:
            current = snapshot(existing.get(customer["CUNO"]))
            yield SourceRecord(customer["CUNO"], {"m3": customer, "stripe": current})

    def ledger_key(self, record: SourceRecord) -> str:
        return keys.M3_CUSTOMER.build(record.data["m3"]["CUNO"])

    def summary(self, record: SourceRecord) -> Summary:
        m3 = record.data["m3"]
        return Summary(
            currency=str(m3.get("CUCD") or ""),
            party=str(m3.get("CUNO") or ""),
            party_name=str(m3.get("CUNM") or ""),
        )

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
        return self.customer_payload(
            wanted=wanted,
            metadata={METADATA_KEY: m3["CUNO"], "m3_currency": m3.get("CUCD") or ""},
            current=current,
            ledger_key=self.ledger_key(record),
        )
