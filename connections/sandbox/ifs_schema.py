"""The IFS Cloud sandbox's projections as ``$metadata`` declares them: entity sets, their keys
and properties with EDM types, enum types, and navigation properties.

Sources: ``CustomerHandling.svc/CustomerInfoSet`` (key ``CustomerId``, a string), its addresses
as the navigation ``CustomerInfoAddresses`` (not on the header), ``CustomerOrderHandling.svc/
CustomerOrderSet(OrderNo='…')`` and enum literals such as ``IfsApp.CustomerHandling.
Lookup_IsoCountry'SE'`` are what public IFS Cloud API guides and client code use (found with
the search tool). No public source gives the invoice and voucher projections or their fields:
their names are connection settings, and here the sandbox takes the least convenient reading a
real server may have — an invoice id is ``Edm.Decimal`` (a number, never quoted), amounts are
``Edm.Decimal`` JSON numbers, states are enum members, and an invoice's lines are a collection
reached through a navigation property (or their own entity set), never nested in the invoice
unless asked for. The change field ``ChangedDate`` is a setting too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr

logger = logging.getLogger(__name__)

STRING, DECIMAL, INT, DATE, MOMENT = (
    "Edm.String",
    "Edm.Decimal",
    "Edm.Int32",
    "Edm.Date",
    "Edm.DateTimeOffset",
)


@dataclass(frozen=True)
class EntityType:
    name: str
    keys: tuple[str, ...]
    properties: dict[str, str]
    navigations: dict[str, tuple[str, bool]] = field(default_factory=dict)  # → (type, many)


@dataclass(frozen=True)
class Projection:
    name: str  # "CustomerInvoiceHandling.svc"
    types: dict[str, EntityType]
    sets: dict[str, str]  # entity set → type name
    enums: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return "IfsApp." + self.name.removesuffix(".svc")

    def qualified(self, type_name: str) -> str:
        return f"{self.namespace}.{type_name}"

    def csdl(self, *, hide_navigations: bool = False) -> str:
        """The projection's ``$metadata`` document (OData CSDL XML, version 4.0)."""
        ns = self.namespace
        parts = [
            '<?xml version="1.0" encoding="utf-8"?>',
            '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">',
            "<edmx:DataServices>",
            f'<Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace={quoteattr(ns)}>',
        ]
        for enum, members in self.enums.items():
            parts.append(f"<EnumType Name={quoteattr(enum)}>")
            parts += [
                f"<Member Name={quoteattr(m)} Value={quoteattr(str(n))}/>"
                for n, m in enumerate(members)
            ]
            parts.append("</EnumType>")
        for entity in self.types.values():
            parts.append(f"<EntityType Name={quoteattr(entity.name)}><Key>")
            parts += [f"<PropertyRef Name={quoteattr(k)}/>" for k in entity.keys]
            parts.append("</Key>")
            for name, edm in entity.properties.items():
                nullable = "false" if name in entity.keys else "true"
                parts.append(
                    f"<Property Name={quoteattr(name)} Type={quoteattr(edm)} "
                    f'Nullable="{nullable}"/>'
                )
            if not hide_navigations:
                for name, (target, many) in entity.navigations.items():
                    kind = f"Collection({ns}.{target})" if many else f"{ns}.{target}"
                    parts.append(
                        f"<NavigationProperty Name={quoteattr(name)} Type={quoteattr(kind)}/>"
                    )
            parts.append("</EntityType>")
        parts.append('<EntityContainer Name="Main">')
        for entity_set, type_name in self.sets.items():
            qualified = quoteattr(f"{ns}.{type_name}")
            parts.append(f"<EntitySet Name={quoteattr(entity_set)} EntityType={qualified}/>")
        parts += ["</EntityContainer>", "</Schema>", "</edmx:DataServices>", "</edmx:Edmx>"]
        return "\n".join(parts)


INVOICE_STATES = ("Preliminary", "Posted", "PartlyPaidPosted", "PaidPosted", "Cancelled")
ORDER_STATES = ("Planned", "Released", "Reserved", "Delivered", "Invoiced", "Cancelled")

PROJECTIONS: dict[str, Projection] = {
    p.name: p
    for p in (
        Projection(
            "CustomerHandling.svc",
            types={
                # The header carries no address: a customer's addresses are the navigation
                # CustomerInfoAddresses (a public IFS Cloud API guide of CustomerHandling.svc,
                # github knakit/ifs-mcp-server-local, shows both).
                "CustomerInfo": EntityType(
                    "CustomerInfo",
                    ("CustomerId",),
                    {
                        "CustomerId": STRING,
                        "Name": STRING,
                        "Email": STRING,
                        "Phone": STRING,
                        "Country": STRING,
                        "VatNo": STRING,
                        "ChangedDate": MOMENT,
                    },
                    navigations={"CustomerInfoAddresses": ("CustomerInfoAddress", True)},
                ),
                "CustomerInfoAddress": EntityType(
                    "CustomerInfoAddress",
                    ("CustomerId", "AddressId"),
                    {
                        "CustomerId": STRING,
                        "AddressId": STRING,
                        "Address1": STRING,
                        "Address2": STRING,
                        "ZipCode": STRING,
                        "City": STRING,
                        "Country": STRING,
                    },
                ),
            },
            sets={
                "CustomerInfoSet": "CustomerInfo",
                "CustomerInfoAddressSet": "CustomerInfoAddress",
            },
        ),
        Projection(
            "CustomerOrderHandling.svc",
            types={
                "CustomerOrder": EntityType(
                    "CustomerOrder",
                    ("OrderNo",),
                    {
                        "OrderNo": STRING,
                        "CustomerNo": STRING,
                        "Contract": STRING,
                        "Objstate": "IfsApp.CustomerOrderHandling.CustomerOrderState",
                        "CurrencyCode": STRING,
                        "CustomerPoNo": STRING,
                        "ChangedDate": MOMENT,
                    },
                )
            },
            sets={"CustomerOrderSet": "CustomerOrder"},
            enums={"CustomerOrderState": ORDER_STATES},
        ),
        Projection(
            "CustomerInvoiceHandling.svc",
            types={
                "CustomerInvoice": EntityType(
                    "CustomerInvoice",
                    ("Company", "InvoiceId"),
                    {
                        "Company": STRING,
                        "InvoiceId": DECIMAL,
                        "InvoiceNo": STRING,
                        "Identity": STRING,
                        "Currency": STRING,
                        "DueDate": DATE,
                        "Objstate": "IfsApp.CustomerInvoiceHandling.CustomerInvoiceState",
                        "NetAmount": DECIMAL,
                        "VatAmount": DECIMAL,
                        "GrossAmount": DECIMAL,
                        "NoteText": STRING,
                        "ChangedDate": MOMENT,
                    },
                    navigations={"InvoiceLines": ("CustomerInvoiceLine", True)},
                ),
                "CustomerInvoiceLine": EntityType(
                    "CustomerInvoiceLine",
                    ("Company", "InvoiceId", "LineNo"),
                    {
                        "Company": STRING,
                        "InvoiceId": DECIMAL,
                        "LineNo": INT,
                        "Description": STRING,
                        "NetAmount": DECIMAL,
                        "VatAmount": DECIMAL,
                        "VatCode": STRING,
                    },
                ),
            },
            sets={
                "CustomerInvoiceSet": "CustomerInvoice",
                "CustomerInvoiceLineSet": "CustomerInvoiceLine",
            },
            enums={"CustomerInvoiceState": INVOICE_STATES},
        ),
        Projection(
            "VoucherHandling.svc",
            types={
                "Voucher": EntityType(
                    "Voucher",
                    ("Company", "AccountingYear", "VoucherType", "VoucherNo"),
                    {
                        "Company": STRING,
                        "AccountingYear": INT,
                        "VoucherType": STRING,
                        "VoucherNo": INT,
                        "NoteText": STRING,
                        "ChangedDate": MOMENT,
                    },
                )
            },
            sets={"VoucherSet": "Voucher"},
        ),
    )
}
CUSTOMERS = "CustomerHandling.svc/CustomerInfoSet"
ADDRESSES = "CustomerHandling.svc/CustomerInfoAddressSet"
ADDRESS_FIELDS = ("Address1", "Address2", "ZipCode", "City")
INVOICES = "CustomerInvoiceHandling.svc/CustomerInvoiceSet"
INVOICE_LINES = "CustomerInvoiceHandling.svc/CustomerInvoiceLineSet"


def entity_type(entity_set: str) -> tuple[Projection, EntityType]:
    """``Projection.svc/EntitySet`` → its projection and entity type (KeyError if unknown)."""
    projection, _, name = entity_set.partition("/")
    p = PROJECTIONS[projection]
    return p, p.types[p.sets[name]]


def all_sets() -> list[str]:
    return [f"{p.name}/{s}" for p in PROJECTIONS.values() for s in p.sets]
