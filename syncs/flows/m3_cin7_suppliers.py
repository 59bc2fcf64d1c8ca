"""CloudSuite suppliers → Cin7 Core suppliers, matched by the CloudSuite supplier number.

Reads CRS620MI suppliers changed since the last run's start (``LstSuppliers`` by ``LMTS``,
``GetBasicData`` fifty to a bulk request) and Cin7's suppliers once a run (pages of 1,000).  A
CloudSuite supplier is matched to the Cin7 supplier whose vendor attribute
(``AdditionalAttribute1`` by default, the setting ``vendor_attribute``) holds its number, or
that a ``cin7_supplier`` mapping names; with neither, to the one Cin7 supplier of exactly its
name (the number is then written to the attribute).  Every decision is in the audit: matched by
what, updated in which fields, or created — once, through the posting ledger, found again by the
attribute after a lost answer.  Two Cin7 suppliers that could both be it are flagged for a
person, never guessed.

What a Cin7 supplier needs that CloudSuite does not say is a setting: ``payment_term`` (or a
``payment_term`` mapping from the CloudSuite terms, TEPY), ``account_payable`` (the Cin7 account
code, 800 by default) and ``tax_rule``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from connections.providers.cin7 import Cin7Core
from connections.providers.infor_m3 import InforM3
from connections.providers.spec import choice
from syncs.flows import keys, kinds
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
    Summary,
    Unit,
    setting,
)
from syncs.money import currency_known

logger = logging.getLogger(__name__)

Context = FlowContext[InforM3, Cin7Core]

VENDOR_ATTRIBUTE = setting(
    "vendor_attribute",
    "Vendor id attribute",
    choice(*(f"AdditionalAttribute{n}" for n in range(1, 11))),
    default="AdditionalAttribute1",
    help="The Cin7 Core supplier attribute that holds the CloudSuite supplier number.",
)
CHUNK = 50


class M3SuppliersToCin7(Flow[InforM3, Cin7Core]):
    key = "m3_cin7.suppliers"
    label = "CloudSuite suppliers → Cin7 Core suppliers"
    source_kind = "infor_m3"
    target_kind = "cin7"
    stream = "suppliers"
    ledger_target = "cin7.supplier"
    posting_name = "the supplier"
    posts = (keys.CIN7_SUPPLIER,)
    mapping_kinds = (kinds.CIN7_SUPPLIER, kinds.PAYMENT_TERM)
    window = ReadWindow("LMTS", Unit.EPOCH_MS, overlap=timedelta(minutes=5), from_run_start=True)
    settings = (
        VENDOR_ATTRIBUTE,
        setting(
            "payment_term",
            "Payment term",
            default="30 days",
            help="The Cin7 Core payment term of a supplier whose CloudSuite terms (TEPY) have "
            "no payment_term mapping.",
        ),
        setting(
            "account_payable",
            "Accounts payable account",
            default="800",
            help="The Cin7 Core account a new supplier's bills are owed on.",
        ),
        setting(
            "tax_rule", "Tax rule", default="Tax Exempt", help="A new supplier's Cin7 tax rule."
        ),
    )

    @property
    def attribute(self) -> str:
        return self.setting("vendor_attribute")

    def extract(self, ctx: Context) -> Iterator[SourceRecord]:
        since = ctx.window_start
        numbers = [
            s["SUNO"]
            for s in ctx.source.list_suppliers(changed_since=int(since) if since else None)
        ]
        if not numbers:
            return
        cin7 = list(ctx.target.list_suppliers())
        for start in range(0, len(numbers), CHUNK):
            found = ctx.source.get_suppliers(numbers[start : start + CHUNK])
            for number in numbers[start : start + CHUNK]:
                supplier = found.get(number)
                if supplier is None:
                    continue
                name = str(supplier.get("SUNM") or "").strip()
                yield SourceRecord(
                    number,
                    {
                        "m3": supplier,
                        "by_attribute": [s for s in cin7 if s.get(self.attribute) == number],
                        "by_name": [s for s in cin7 if str(s.get("Name") or "").strip() == name],
                        "by_id": {s["ID"]: s for s in cin7 if s.get("ID")},
                    },
                )

    def _wanted(self, m3: dict[str, Any], mappings: Mappings) -> dict[str, Any]:
        term = mappings.get("payment_term", m3.get("TEPY") or "") or self.setting("payment_term")
        return {
            "Name": str(m3.get("SUNM") or m3["SUNO"]).strip()[:256],
            "Currency": str(m3.get("CUCD") or "").strip().upper(),
            "PaymentTerm": term,
            "AccountPayable": self.setting("account_payable"),
            "TaxRule": self.setting("tax_rule"),
            "TaxNumber": str(m3.get("VRNO") or ""),
            self.attribute: m3["SUNO"],
        }

    def ledger_key(self, record: SourceRecord) -> str:
        return keys.CIN7_SUPPLIER.build(record.source_key)

    def summary(self, record: SourceRecord) -> Summary:
        m3 = record.data["m3"]
        return Summary(
            currency=str(m3.get("CUCD") or ""),
            party=str(m3.get("SUNO") or ""),
            party_name=str(m3.get("SUNM") or ""),
        )

    def map(self, record: SourceRecord, mappings: Mappings) -> Payload | Flag | Skip:
        data, number = record.data, record.source_key
        m3 = data["m3"]
        wanted = self._wanted(m3, mappings)
        if not currency_known(wanted["Currency"]):
            return Flag(
                f"Supplier {number}'s currency “{wanted['Currency']}” is not a currency code."
            )
        mapped = mappings.get("cin7_supplier", number)
        candidates, how = data["by_attribute"], f"its number in {self.attribute}"
        if mapped:
            candidates = [data["by_id"][mapped]] if mapped in data["by_id"] else []
            how = "the supplier mapping"
            if not candidates:
                return Flag(
                    f"Supplier {number} is mapped to Cin7 supplier {mapped}, "
                    "which Cin7 does not have."
                )
        elif not candidates:
            candidates, how = data["by_name"], "its exact name"
            other = [c for c in candidates if c.get(self.attribute) not in ("", None, number)]
            if other:
                return Flag(
                    f"Supplier {number} ({wanted['Name']}) has the name of Cin7 supplier "
                    f"{other[0]['ID']}, which belongs to {other[0].get(self.attribute)}: "
                    "map it by hand."
                )
        if len(candidates) > 1:
            ids = ", ".join(c["ID"] for c in candidates[:5])
            return Flag(
                f"Supplier {number} ({wanted['Name']}) matches {len(candidates)} Cin7 suppliers by "
                f"{how} ({ids}): add a cin7_supplier mapping to say which.",
                fix=("cin7_supplier", number),
            )
        if not candidates:
            return Payload({"create": wanted, "number": number}, ledger_key=self.ledger_key(record))
        current = candidates[0]
        changes = {k: v for k, v in wanted.items() if str(current.get(k) or "") != str(v)}
        if not changes:
            return Skip(f"Matched Cin7 supplier {current['ID']} by {how}; unchanged.")
        # A PUT carries the whole supplier (what Cin7 requires of one), the audit names changes.
        return Payload(
            {"update": {"ID": current["ID"], **wanted}, "changed": sorted(changes), "how": how},
            ledger_key=None,
            target_key=current["ID"],
        )

    def load(self, ctx: Context, payload: Payload, posting: Posting | None) -> LoadResult:
        data = payload.data
        if "create" in data:
            made = ctx.target.create_supplier(data["create"])
            return LoadResult(
                made["ID"],
                {"ID": made["ID"]},
                f"No Cin7 supplier matched: created {made['ID']}.",
            )
        updated = ctx.target.update_supplier(data["update"])
        fields = ", ".join(data["changed"])
        return LoadResult(
            updated["ID"],
            {"ID": updated["ID"]},
            f"Matched Cin7 supplier {updated['ID']} by {data['how']}; updated {fields}.",
        )

    def find_existing(self, ctx: Context, payload: Payload, posting: Posting) -> LoadResult | None:
        number = payload.data["number"]
        for supplier in ctx.target.list_suppliers():
            if supplier.get(self.attribute) == number:
                return LoadResult(supplier["ID"], {"ID": supplier["ID"]})
        return None
