"""CloudSuite suppliers → Wise recipients, one per supplier and currency.

Reads ``CRS620MI LstSuppliers`` changed since the last run's start (``LMTS``; ``from_run_start``,
as for customers) and each supplier's ``GetBasicData`` (many in one bulk request).  M3 keeps a
supplier's bank accounts in a program the catalogue here does not hold, so which supplier fields
carry the IBAN, BIC, sort code and account number is the integration setting ``bank_fields``
(by default the user-defined fields ``SFI1`` to ``SFI4``; unverified per tenant).

Wise recipients are immutable.  A recipient is posted under the ledger key
``wise-recipient:<supplier>:<currency>:<digest of the bank details>``, so unchanged details are
never sent again; changed details are a new key: the new recipient is created, then — as a
record of its own, loaded after it — the old one deleted (``wise-recipient-deleted:<id>``), and
the audit shows both steps.  The old recipient is kept until the new one exists.

Checked before any call (a failure is flagged with what to fix): the currency is an ISO 4217
code, the IBAN's checksum and the BIC's form (python-stdnum), a holder name, and details Wise
can pay to: an IBAN (``iban``), a GBP sort code and account (``sort_code``), or an account
number and BIC (``swift_code``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from stdnum import bic as stdnum_bic
from stdnum import iban as stdnum_iban

from connections.providers.infor_m3 import InforM3
from connections.providers.wise import WiseProvider
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
    Wait,
)
from syncs.money import currency_known

logger = logging.getLogger(__name__)

Context = FlowContext[InforM3, WiseProvider]
DEFAULT_BANK_FIELDS = {
    "iban": "SFI1",
    "bic": "SFI2",
    "sort_code": "SFI3",
    "account_number": "SFI4",
}
CHUNK = 50  # suppliers per GetBasicData bulk request


def _clean(value: Any) -> str:
    return re.sub(r"\s+", "", str(value or "")).upper()


class M3SuppliersToWise(Flow[InforM3, WiseProvider]):
    key = "m3_wise.recipients"
    label = "CloudSuite suppliers → Wise recipients"
    source_kind = "infor_m3"
    target_kind = "wise"
    stream = "suppliers"
    ledger_target = "wise.recipient"
    window = ReadWindow("LMTS", Unit.EPOCH_MS, overlap=timedelta(minutes=5), from_run_start=True)

    @property
    def bank_fields(self) -> dict[str, str]:
        return {**DEFAULT_BANK_FIELDS, **(self.options.get("bank_fields") or {})}

    def bank_details(self, supplier: dict[str, str]) -> dict[str, str]:
        return {
            name: _clean(supplier.get(field))
            for name, field in self.bank_fields.items()
            if _clean(supplier.get(field))
        }

    def extract(self, ctx: Context) -> Iterator[SourceRecord]:
        since = ctx.window_start
        listed = list(ctx.source.list_suppliers(changed_since=int(since) if since else None))
        statuses = {str(s) for s in self.options.get("active_statuses", ["20"])}
        numbers = [s["SUNO"] for s in listed if not statuses or s.get("STAT", "20") in statuses]
        for start in range(0, len(numbers), CHUNK):
            found = ctx.source.get_suppliers(numbers[start : start + CHUNK])
            for number in numbers[start : start + CHUNK]:
                supplier = found.get(number)
                if supplier is None or not self.bank_details(supplier):
                    continue  # only suppliers with banking details become recipients
                yield from self._records(ctx, supplier)

    def _records(self, ctx: Context, supplier: dict[str, str]) -> Iterator[SourceRecord]:
        number, currency = supplier["SUNO"], _clean(supplier.get("CUCD"))
        bank = self.bank_details(supplier)
        fingerprint = json.dumps(
            [supplier.get("SUNM"), currency, self.options.get("legal_type"), bank], sort_keys=True
        )
        prefix = f"wise-recipient:{number}:{currency}:"
        made = ctx.posted_under(prefix)
        gone = {
            key.removeprefix("wise-recipient-deleted:")
            for key in ctx.already_posted(f"wise-recipient-deleted:{rid}" for rid in made.values())
        }
        key = base = prefix + hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
        n = 1
        while key in made and made[key] in gone:  # these details again, after a change back
            n += 1
            key = f"{base}#{n}"
        data = {"supplier": supplier, "bank": bank, "currency": currency, "key": key}
        if key not in made:
            yield SourceRecord(f"{number}/{currency}", data)
        for old_key, old_id in sorted(made.items()):
            if old_key != key and old_id not in gone:
                yield SourceRecord(
                    f"{number}/{currency} (replaces recipient {old_id})",
                    {**data, "delete": old_id, "new_posted": key in made},
                )

    def serial_key(self, record: SourceRecord) -> str | None:
        return record.source_key.split(" ", 1)[0]  # a supplier's new and old recipients in turn

    def prepare(self, ctx: Context, record: SourceRecord) -> SourceRecord:
        if "delete" not in record.data:
            return record
        posted = bool(ctx.already_posted([record.data["key"]]))
        return SourceRecord(
            record.source_key, {**record.data, "new_posted": posted}, record.watermark
        )

    def map(self, record: SourceRecord, mappings: Mappings) -> Payload | Flag | Wait | Skip:
        data = record.data
        number = data["supplier"]["SUNO"]
        if "delete" in data:
            if not data.get("new_posted"):
                return Wait("The old recipient is kept until the new one is made in Wise.")
            rid = str(data["delete"])
            return Payload({"delete": rid}, ledger_key=f"wise-recipient-deleted:{rid}")
        currency, bank = data["currency"], data["bank"]
        name = str(data["supplier"].get("SUNM") or "").strip()
        if not currency_known(currency):
            return Flag(f"Supplier {number}'s currency “{currency}” is not a currency code.")
        if len(name) < 2:
            return Flag(f"Supplier {number} has no name for Wise to pay to.")
        if "bic" in bank and not stdnum_bic.is_valid(bank["bic"]):
            return Flag(f"Supplier {number}'s BIC {bank['bic']} is not a valid BIC.")
        legal = str(self.options.get("legal_type") or "BUSINESS").upper()
        details: dict[str, Any] = {"legalType": legal}
        if "iban" in bank:
            if not stdnum_iban.is_valid(bank["iban"]):
                return Flag(f"Supplier {number}'s IBAN {bank['iban']} does not check out.")
            kind = "iban"
            details["IBAN"] = bank["iban"]
            if "bic" in bank:
                details["BIC"] = bank["bic"]
        elif currency == "GBP" and {"sort_code", "account_number"} <= set(bank):
            sort_code = re.sub(r"[-.]", "", bank["sort_code"])
            if not re.fullmatch(r"\d{6}", sort_code) or not re.fullmatch(
                r"\d{8}", bank["account_number"]
            ):
                return Flag(
                    f"Supplier {number}'s sort code and account number are not 6 and 8 digits."
                )
            kind = "sort_code"
            details.update(sortCode=sort_code, accountNumber=bank["account_number"])
        elif {"account_number", "bic"} <= set(bank):
            kind = "swift_code"
            details.update(swiftCode=bank["bic"], accountNumber=bank["account_number"])
        else:
            return Flag(
                f"Supplier {number} has bank details Wise cannot pay to: give an IBAN, a GBP "
                "sort code and account number, or an account number and BIC."
            )
        recipient = {
            "currency": currency,
            "type": kind,
            "accountHolderName": name,
            "details": details,
        }
        return Payload({"create": recipient, "supplier": number}, ledger_key=data["key"])

    def load(self, ctx: Context, payload: Payload, posting: Posting | None) -> LoadResult:
        if "delete" in payload.data:
            rid = payload.data["delete"]
            existed = ctx.target.delete_recipient(rid)
            note = f"Old recipient {rid} deleted in Wise (the bank details changed)."
            if not existed:
                note = f"Old recipient {rid} was already gone from Wise."
            return LoadResult(str(rid), {"deleted": rid}, note)
        created = ctx.target.create_recipient(payload.data["create"])
        return LoadResult(
            str(created["id"]),
            {"id": created["id"], "type": created.get("type")},
            f"Recipient {created['id']} created in Wise.",
        )

    def find_existing(self, ctx: Context, payload: Payload, posting: Posting) -> LoadResult | None:
        if "delete" in payload.data:
            return None  # deleting again is harmless: Wise answers 404 for one already gone
        wanted = payload.data["create"]
        for recipient in ctx.target.list_recipients(currency=wanted["currency"]):
            name = (recipient.get("name") or {}).get("fullName")
            details = recipient.get("details") or {}
            same = all(
                _clean(details.get(k)) == _clean(v)
                for k, v in wanted["details"].items()
                if k != "legalType"
            )
            if name == wanted["accountHolderName"] and same:
                return LoadResult(str(recipient["id"]), {"id": recipient["id"]})
        return None
