"""The kinds of field mapping a flow reads, declared by the flow (``Flow.mapping_kinds``).

A ``MappingKind`` says what its source and target values are (the mapping form's help), how a
target value is checked (``check``: in the chart of accounts, or a supplier, of the connection
that holds it), and — for a kind read under fixed names (``roles``, such as the GL account that
takes Stripe's receipts) — which source values the flow reads, per currency or not.

One rule for roles, written once (``resolve``): ``role:CUR`` is read first, then ``role``
alone, which covers every currency without one of its own.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from syncs.money import currency_known

if TYPE_CHECKING:
    from syncs.flows.base import Mappings

logger = logging.getLogger(__name__)

CHART = "chart"  # the target value's first dimension is in the holder's chart of accounts
SUPPLIER = "supplier"  # the target value is a supplier of the holder


@dataclass(frozen=True)
class MappingKind:
    """One kind of mapping a flow reads."""

    name: str
    label: str
    source: str  # what a source value is
    target: str  # what a target value is
    check: str = ""  # CHART, SUPPLIER or "" (not checked)
    roles: tuple[str, ...] = ()  # the fixed source values read (empty: any source code)
    per_currency: bool = False  # a role may name a currency (role:EUR)

    def reading(self, *roles: str, per_currency: bool = False, source: str = "") -> MappingKind:
        """This kind, read under fixed source values (``roles``)."""
        shown = ", ".join(f"{r} (or {r}:<currency>)" if per_currency else r for r in roles)
        return dataclasses.replace(
            self,
            roles=roles,
            per_currency=per_currency,
            source=source or f"one of {shown}.",
        )

    @property
    def help(self) -> str:
        return f"Source: {self.source} Target: {self.target}"

    def source_problem(self, value: str) -> str:
        """Why a mapping of this kind with source ``value`` would never be read ("" if not)."""
        if not self.roles:
            return ""
        role, sep, currency = value.partition(":")
        if role in self.roles and not sep:
            return ""
        if role in self.roles and self.per_currency and currency_known(currency):
            return ""
        if role in self.roles and self.per_currency:
            return f"“{currency[:10]}” is not a currency code such as EUR."
        return f"“{value[:60]}” is never read as a {self.label}; the source is {self.source}"

    def resolve(self, mappings: Mappings, role: str, currency: str = "") -> str | None:
        """The target of ``role`` for ``currency``: its own mapping, else the role's."""
        assert role in self.roles, f"{role} is not declared for {self.name}"
        if currency and self.per_currency:
            found = mappings.get(self.name, f"{role}:{currency.upper()}")
            if found:
                return found
        return mappings.get(self.name, role)


def kinds_by_name(flows: Iterable[Any]) -> dict[str, list[MappingKind]]:
    """Every declared kind by name: one entry per flow that declares it."""
    found: dict[str, list[MappingKind]] = {}
    for flow in flows:
        for kind in flow.mapping_kinds:
            found.setdefault(kind.name, []).append(kind)
    return found


VENDOR = MappingKind(
    "vendor",
    "Vendor / supplier",
    source="the vendor id in the source system (e.g. Stampli's V-1001).",
    target="the CloudSuite supplier number (SUNO).",
    check=SUPPLIER,
)
GL_ACCOUNT = MappingKind(
    "gl_account",
    "GL account",
    source="the GL code in the source system.",
    target="the CloudSuite accounting string, dimensions separated by ; (e.g. 1930 or 6100;200).",
    check=CHART,
)
CHARGE_CODE = MappingKind(
    "charge_code",
    "Charge code (CloudSuite CHRI)",
    source="stripe_fees.",
    target="the CloudSuite charge code (CHRI) that takes Stripe's fees.",
)
COST_CENTER = MappingKind(
    "cost_center",
    "Cost centre (CloudSuite dimension)",
    source="the cost centre in Stampli.",
    target="the CloudSuite dimension value.",
)
CIN7_ACCOUNT = MappingKind(
    "cin7_account",
    "Cin7 Core account",
    source="the CloudSuite account.",
    target="the Cin7 Core account code (Cin7's chart is read-only: the account must exist there).",
    check=CHART,
)
CIN7_SUPPLIER = MappingKind(
    "cin7_supplier",
    "Cin7 Core supplier",
    source="the CloudSuite supplier number.",
    target="the Cin7 Core supplier ID.",
)
ITEM_ACCOUNT = MappingKind(
    "item_account",
    "Cin7 Core account of an item",
    source="the CloudSuite item number (ITNO) of a purchase line.",
    target="the Cin7 Core account code the line is booked to (it must be in Cin7's chart).",
    check=CHART,
)
TAX_RULE = MappingKind(
    "tax_rule",
    "Cin7 Core tax rule",
    source="the CloudSuite VAT code (VTCD) of a purchase line.",
    target="the name of the Cin7 Core tax rule, as Cin7 lists it (e.g. Tax on Purchases).",
)
PAYMENT_TERM = MappingKind(
    "payment_term",
    "Cin7 Core payment term",
    source="the CloudSuite payment terms code (TEPY) of a supplier.",
    target="the name of the Cin7 Core payment term (e.g. 30 days).",
)
