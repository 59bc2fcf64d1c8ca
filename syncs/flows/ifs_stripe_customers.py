"""IFS Cloud customers → Stripe customers, matched by the IFS customer id in metadata.

Reads the connection's ``customers`` entity set (``CustomerHandling.svc/CustomerInfoSet`` by
default) incrementally by its change field (the connection's ``change_fields``, ``ChangedDate`` by
default), ordered by that field and the key, page by page.  A new customer is created once
(posting ledger + Stripe idempotency key) with its billing address and, when its country's tax id
type is known, its tax id; an existing one gets only the fields that changed (a tax id is added
in Stripe once, when the customer is created: Stripe keeps tax ids as objects of their own).

Which IFS field feeds which Stripe field is the integration setting ``fields`` (a JSON object;
the defaults below name the fields of the IFS customer projections).  Address fields the
customer's header does not declare are read from its first address, through the navigation
``CustomerInfoAddresses`` (setting ``address_navigation``) — where a public guide to IFS Cloud's
``CustomerHandling.svc`` shows the addresses; a tenant whose header carries them is read as is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from connections.providers.ifs_cloud import IfsCloud
from connections.providers.ifs_cloud.credentials import navigation
from connections.providers.spec import positive_int, text_map
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
    setting,
)
from syncs.flows.stripe_customers import StripeCustomerWrites, snapshot

logger = logging.getLogger(__name__)

FIELD_NAME = r"^[A-Za-z][A-Za-z0-9_]{0,99}$"
PAGE_SIZE = setting(
    "page_size",
    "Page size",
    positive_int,
    default=5000,
    help="Rows asked of IFS per page ($top).",
)

METADATA_KEY = "ifs_customer"
KEY_FIELD = "CustomerId"
DEFAULT_FIELDS = {
    "name": "Name",
    "email": "Email",
    "phone": "Phone",
    "line1": "Address1",
    "line2": "Address2",
    "city": "City",
    "postal_code": "ZipCode",
    "country": "Country",
    "tax_id": "VatNo",
}
EU = "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split()
TAX_ID_TYPES = {**dict.fromkeys(EU, "eu_vat"), "GB": "gb_vat", "NO": "no_vat", "CH": "ch_vat"}

Context = FlowContext[IfsCloud, StripeProvider]


def as_cursor_moment(value: Any) -> str | None:
    """An IFS date/time as the cursor keeps it (ISO 8601, UTC, no zone letter)."""
    if not value:
        return None
    try:
        return str(Unit.ISO.format(Unit.ISO.parse(str(value).replace("Z", "+00:00"))))
    except ValueError:
        return None


class IfsCustomersToStripe(StripeCustomerWrites, Flow[IfsCloud, StripeProvider]):
    key = "ifs_stripe.customers"
    label = "IFS Cloud customers → Stripe customers"
    source_kind = "ifs_cloud"
    target_kind = "stripe"
    stream = "customers"
    ledger_target = "stripe.customer"
    posting_name = "the customer"
    posts = (keys.IFS_CUSTOMER,)
    metadata_key = METADATA_KEY
    window = ReadWindow("ChangedDate", Unit.ISO, overlap=timedelta(minutes=5))
    settings = (
        PAGE_SIZE,
        setting(
            "fields",
            "Customer fields",
            text_map(known=DEFAULT_FIELDS, value_pattern=FIELD_NAME),
            default={},
            multiline=True,
            help="Where the tenant keeps each customer detail, as name = IFS field lines "
            "(e.g. email = EmailAddress); blank lines keep the standard fields.",
        ),
        setting(
            "address_navigation",
            "Address navigation",
            navigation,
            default="CustomerInfoAddresses",
            help="The navigation property that holds a customer's addresses.",
        ),
    )

    @property
    def fields(self) -> dict[str, str]:
        return {**DEFAULT_FIELDS, **self.setting("fields")}

    def extract(self, ctx: Context) -> Iterator[SourceRecord]:
        ifs, since = ctx.source, ctx.window_start
        changed = ifs.change_field("customers")
        rows = ifs.query(
            "customers",
            orderby=[changed, KEY_FIELD],
            where=[(changed, "ge", since)] if since else [],
            page_size=self.setting("page_size"),
        )
        existing: dict[str, dict[str, Any]] | None = None
        for row in rows:
            if existing is None:  # one listing of Stripe's customers, once there is work
                existing = ctx.target.index_customers(key=METADATA_KEY)
            number = str(row.get(KEY_FIELD) or "")
            yield SourceRecord(
                number or "(no customer id)",
                {"ifs": self.with_address(ifs, row), "stripe": snapshot(existing.get(number))},
                watermark=as_cursor_moment(row.get(changed)),
            )

    def with_address(self, ifs: IfsCloud, customer: dict[str, Any]) -> dict[str, Any]:
        """The customer with its address, wherever the tenant keeps it (read in extract)."""
        f = self.fields
        wanted = [f[k] for k in ("line1", "line2", "city", "postal_code") if f.get(k)]
        navigation = self.setting("address_navigation")
        return ifs.with_address(customer, wanted, navigation)

    def ledger_key(self, record: SourceRecord) -> str:
        return keys.IFS_CUSTOMER.build(str(record.data["ifs"].get(KEY_FIELD) or "").strip())

    def summary(self, record: SourceRecord) -> Summary:
        ifs = record.data["ifs"]
        return Summary(
            party=str(ifs.get(KEY_FIELD) or ""), party_name=str(ifs.get(self.fields["name"]) or "")
        )

    def map(self, record: SourceRecord, mappings: Mappings) -> Payload | Flag | Skip:
        ifs, current, f = record.data["ifs"], record.data.get("stripe"), self.fields
        number = str(ifs.get(KEY_FIELD) or "").strip()
        if not number:
            return Flag("An IFS customer without a customer id cannot be matched in Stripe.")
        country = str(ifs.get(f["country"]) or "").strip().upper() or None
        address = {
            "line1": ifs.get(f["line1"]),
            "line2": ifs.get(f["line2"]),
            "city": ifs.get(f["city"]),
            "postal_code": ifs.get(f["postal_code"]),
            "country": country,
        }
        wanted = {
            "name": ifs.get(f["name"]) or number,
            "email": ifs.get(f["email"]),
            "phone": ifs.get(f["phone"]),
            "address": address,
        }
        tax_id = str(ifs.get(f["tax_id"]) or "").strip()
        tax_type = TAX_ID_TYPES.get(country or "")
        return self.customer_payload(
            wanted=wanted,
            metadata={METADATA_KEY: number, **({"ifs_tax_id": tax_id} if tax_id else {})},
            current=current,
            ledger_key=self.ledger_key(record),
            on_create=(
                {"tax_id_data": [{"type": tax_type, "value": tax_id}]}
                if tax_id and tax_type
                else None
            ),
        )
