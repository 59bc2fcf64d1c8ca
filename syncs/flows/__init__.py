"""The flow registry: an explicit dict from flow key to flow class (no import-time discovery)."""

from __future__ import annotations

import logging

from syncs.flows.base import (
    Check,
    Flag,
    Flow,
    FlowContext,
    LoadResult,
    Lookups,
    Mappings,
    Payload,
    Posting,
    ReadWindow,
    Skip,
    SourceRecord,
    Summary,
    Superseded,
    Unit,
    Wait,
    lookups_of,
    setting,
)
from syncs.flows.ifs_stripe_customers import IfsCustomersToStripe
from syncs.flows.ifs_stripe_invoices import IfsInvoicesToStripe
from syncs.flows.ifs_stripe_orders import IfsOrdersToStripe
from syncs.flows.kinds import kinds_by_name
from syncs.flows.m3_cin7_accounts import M3ChartAgainstCin7
from syncs.flows.m3_cin7_purchases import M3PurchasesToCin7
from syncs.flows.m3_cin7_suppliers import M3SuppliersToCin7
from syncs.flows.m3_stripe_customers import M3CustomersToStripe
from syncs.flows.m3_stripe_invoices import M3InvoicesToStripe
from syncs.flows.m3_wise_quotes import M3InvoicesToWiseQuotes
from syncs.flows.m3_wise_recipients import M3SuppliersToWise
from syncs.flows.stampli_m3_invoices import StampliInvoicesToM3
from syncs.flows.stampli_m3_payments import StampliPaymentsToM3
from syncs.flows.stripe_ifs_notes import StripeOutcomesToIfsNotes
from syncs.flows.stripe_m3_payments import StripePaymentsToM3
from syncs.flows.wise_m3_payments import WiseTransfersToM3

logger = logging.getLogger(__name__)

FLOWS: dict[str, type[Flow]] = {
    flow.key: flow
    for flow in (
        M3CustomersToStripe,
        M3InvoicesToStripe,
        StripePaymentsToM3,
        IfsCustomersToStripe,
        IfsOrdersToStripe,
        IfsInvoicesToStripe,
        StripeOutcomesToIfsNotes,
        M3SuppliersToWise,
        M3InvoicesToWiseQuotes,
        WiseTransfersToM3,
        StampliInvoicesToM3,
        StampliPaymentsToM3,
        M3SuppliersToCin7,
        M3ChartAgainstCin7,
        M3PurchasesToCin7,
    )
}


def get_flow(key: str) -> type[Flow]:
    """The flow class registered under ``key``."""
    try:
        return FLOWS[key]
    except KeyError:
        raise LookupError(f"No flow is registered as “{key}”.") from None


def mapping_kind_choices() -> list[tuple[str, str]]:
    """(name, label) of every kind of mapping some flow declares, by label."""
    found = kinds_by_name(FLOWS.values())
    return sorted(((name, kinds[0].label) for name, kinds in found.items()), key=lambda c: c[1])


def flows_listed_in(name: str) -> list[str]:
    """The keys of the flows whose postings the admin list ``name`` shows."""
    return sorted(key for key, flow in FLOWS.items() if name in flow.listed_in)


def flow_choices() -> list[tuple[str, str]]:
    """(key, label) pairs for forms."""
    return sorted(((k, f.label) for k, f in FLOWS.items()), key=lambda c: c[1])


__all__ = [
    "FLOWS",
    "Check",
    "Flag",
    "Flow",
    "FlowContext",
    "LoadResult",
    "Lookups",
    "Mappings",
    "Payload",
    "Posting",
    "ReadWindow",
    "Skip",
    "SourceRecord",
    "Summary",
    "Superseded",
    "Unit",
    "Wait",
    "flow_choices",
    "flows_listed_in",
    "get_flow",
    "lookups_of",
    "mapping_kind_choices",
    "setting",
]
