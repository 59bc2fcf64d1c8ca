"""IFS Cloud customer orders → Stripe customers: whoever orders is in Stripe before the invoice.

Reads the connection's ``orders`` entity set (``CustomerOrderHandling.svc/CustomerOrderSet`` by
default) incrementally by its change field, ordered by that field and the order number.  An
order names its customer (``CustomerNo``); a customer Stripe does not have yet is read from the
``customers`` set by key and created in Stripe exactly as the customers flow creates it — under
the same posting-ledger key (``ifs-customer:<id>``, the ledger is keyed by the Stripe account and
the thing posted), so the two flows together never make a customer twice.  The invoice for the
order then finds its customer and never waits for the next customer run.

Orders whose customer is already in Stripe need nothing and are not listed in the audit (the run
counts what it read; the cursor moves past them).  Orders in a state named by the integration
setting ``skip_states`` (``Planned`` and ``Cancelled`` by default) are passed over.  Field names
(``OrderNo``, ``CustomerNo``, ``Objstate``) are unverified per tenant: ``order_fields`` overrides
them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from connections.providers.errors import NotFound
from connections.providers.spec import text_list, text_map
from syncs.flows.base import Flag, Mappings, Payload, ReadWindow, Skip, SourceRecord, Unit, setting
from syncs.flows.ifs_stripe_customers import (
    FIELD_NAME,
    KEY_FIELD,
    METADATA_KEY,
    Context,
    IfsCustomersToStripe,
    as_cursor_moment,
)

logger = logging.getLogger(__name__)

DEFAULT_ORDER_FIELDS = {"order": "OrderNo", "customer": "CustomerNo", "state": "Objstate"}
DEFAULT_SKIP_STATES = ("Planned", "Cancelled")


class IfsOrdersToStripe(IfsCustomersToStripe):
    key = "ifs_stripe.orders"
    label = "IFS Cloud customer orders → Stripe customers"
    stream = "orders"
    window = ReadWindow("ChangedDate", Unit.ISO, overlap=timedelta(minutes=5))
    settings = (
        *IfsCustomersToStripe.settings,
        setting(
            "order_fields",
            "Order fields",
            text_map(known=DEFAULT_ORDER_FIELDS, value_pattern=FIELD_NAME),
            default={},
            multiline=True,
            help="Where the tenant keeps an order's number, customer and state, as name = IFS "
            "field lines (e.g. state = Objstate).",
        ),
        setting(
            "skip_states",
            "States to skip",
            text_list,
            default=list(DEFAULT_SKIP_STATES),
            multiline=True,
            help="Orders in these states are not read (one per line).",
        ),
    )

    @property
    def order_fields(self) -> dict[str, str]:
        return {**DEFAULT_ORDER_FIELDS, **self.setting("order_fields")}

    def extract(self, ctx: Context) -> Iterator[SourceRecord]:
        ifs, since, f = ctx.source, ctx.window_start, self.order_fields
        changed = ifs.change_field("orders")
        skip_states = set(self.setting("skip_states"))
        rows = ifs.query(
            "orders",
            orderby=[changed, f["order"]],
            where=[(changed, "ge", since)] if since else [],
            page_size=self.setting("page_size"),
        )
        known: dict[str, Any] | None = None  # Stripe's customers by IFS id, read once there is work
        seen: set[str] = set()
        last: str | None = None
        for row in rows:
            last = as_cursor_moment(row.get(changed)) or last
            if str(row.get(f["state"]) or "") in skip_states:
                continue
            number = str(row.get(f["customer"]) or "").strip()
            if known is None:
                known = ctx.target.index_customers(key=METADATA_KEY)
            if number in seen or (number and number in known):
                continue
            seen.add(number)
            customer = None
            if number:
                try:
                    customer, _etag = ifs.get("customers", {KEY_FIELD: number})
                    customer = self.with_address(ifs, customer)
                except NotFound:
                    customer = None
            yield SourceRecord(
                number or f"(order {row.get(f['order'])} without a customer)",
                {"ifs": customer, "stripe": None, "order": str(row.get(f["order"]) or "")},
                watermark=last,
            )
        if last:
            ctx.mark_read(last)

    def map(self, record: SourceRecord, mappings: Mappings) -> Payload | Flag | Skip:
        order = record.data.get("order") or "?"
        if not record.data.get("ifs"):
            if record.source_key.startswith("(order"):
                return Flag(f"IFS Cloud order {order} names no customer.")
            return Flag(
                f"IFS Cloud order {order} is for customer {record.source_key}, which IFS Cloud "
                "does not have (or this connection may not read)."
            )
        return super().map(record, mappings)
