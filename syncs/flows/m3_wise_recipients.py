"""CloudSuite suppliers → Wise recipients, one per supplier and currency.

Reads ``CRS620MI LstSuppliers`` changed since the last run's start (``LMTS``; ``from_run_start``,
as for customers) and each supplier's ``GetBasicData`` (many in one bulk request).  M3 keeps a
supplier's bank accounts in a program the catalogue here does not hold, so which supplier fields
carry the IBAN, BIC, sort code and account number is the integration setting ``bank_fields``
(by default the user-defined fields ``SFI1`` to ``SFI4``; unverified per tenant).

Which fields a recipient needs is Wise's to say, not this flow's: for each currency the run asks
Wise's account requirements once (``GET /v1/account-requirements``, from the Wise connection's
pay-from currency) and fills the form Wise answers (``syncs.flows.wise_form``) from the
supplier: bank details, holder name (``SUNM``), legal type (setting ``legal_type``) and the
address — ``address.country`` from ``CSCD``, ``address.state`` from ``ECAR`` (both in
``GetBasicData``), line 1, city and post code from ``ADR1``, ``TOWN`` and ``PONO`` where the
tenant returns them.  The setting ``recipient_fields`` ({Wise key: supplier field}) reads any
Wise field from another supplier field (``{"address.firstLine": "CFI2", "abartn": "CFI1"}``).
A field Wise requires that CloudSuite lacks is flagged before any call, in plain words ("Supplier
S2007 has no address line 1, which Wise needs for USD recipients").

Wise recipients are immutable.  A recipient is posted under the ledger key
``wise-recipient:<supplier>:<currency>:<digest of the bank details>`` (and of the address, for a
currency whose form asks for one), so unchanged details are never sent again; changed details are
a new key: the new recipient is created, then — as a record of its own, loaded after it — the old
one deleted (``wise-recipient-deleted:<id>``), and the audit shows both steps.  The old recipient
is kept until the new one exists.

After a lost answer a recipient is looked for among the profile's recipients of the currency by
holder name and bank details, compared as Wise may write them back: keys without regard to case
(``IBAN`` or ``iban``), values without spaces, dashes or case, and a BIC Wise leaves out is no
difference.

Checked before any call (a failure is flagged with what to fix): the currency is an ISO 4217
code, the IBAN's checksum and the BIC's form (python-stdnum), a holder name, and every field
Wise's form requires, in the length, form and values it allows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from stdnum import bic as stdnum_bic
from stdnum import iban as stdnum_iban

from connections.providers.errors import Rejected
from connections.providers.infor_m3 import InforM3
from connections.providers.spec import choice, text_list, text_map
from connections.providers.wise import WiseProvider
from syncs.flows import wise_form
from syncs.flows.base import (
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
    Unit,
    Wait,
    lookups_of,
    setting,
)
from syncs.flows.keys import WISE_RECIPIENT, WISE_RECIPIENT_DELETED
from syncs.money import currency_known

logger = logging.getLogger(__name__)

Context = FlowContext[InforM3, WiseProvider]
DEFAULT_BANK_FIELDS = {
    "iban": "SFI1",
    "bic": "SFI2",
    "sort_code": "SFI3",
    "account_number": "SFI4",
}
# Wise form keys read straight from a supplier field (GetBasicData), unless the setting
# ``recipient_fields`` says otherwise.
DEFAULT_RECIPIENT_FIELDS = {
    "address.country": "CSCD",
    "address.state": "ECAR",
    "address.firstLine": "ADR1",
    "address.city": "TOWN",
    "address.postCode": "PONO",
}
CHUNK = 50  # suppliers per GetBasicData bulk request
M3_FIELD = r"^[A-Z0-9]{2,8}$"  # an M3 field name (metadata: four to six capitals and digits)
M3_FIELD_OR_BLANK = r"^([A-Z0-9]{2,8})?$"
SOUNDING_AMOUNT = 1000  # the amount Wise's account requirements are asked for (its example)


def _clean(value: Any) -> str:
    return re.sub(r"\s+", "", str(value or "")).upper()


def _same(value: Any) -> str:
    """A bank value as compared after a lost answer: no spaces, dashes, dots or case."""
    return re.sub(r"[\s.\-]", "", str(value or "")).upper()


def _flat(details: Any, prefix: str = "") -> dict[str, Any]:
    """Nested details as one level of lower-case dotted keys."""
    flat: dict[str, Any] = {}
    if isinstance(details, dict):
        for key, value in details.items():
            name = f"{prefix}{str(key).lower()}"
            if isinstance(value, dict):
                flat.update(_flat(value, name + "."))
            else:
                flat[name] = value
    return flat


IDENTITY_SKIP = {"legaltype", "bic"}  # not part of which account it is (Wise may omit a BIC)


@dataclass(frozen=True)
class NewRecipient(Lookups):
    """For an old recipient to delete: whether the one with the supplier's present details is
    made in Wise yet (None for a new recipient)."""

    posted: bool | None


class M3SuppliersToWise(Flow[InforM3, WiseProvider]):
    key = "m3_wise.recipients"
    label = "CloudSuite suppliers → Wise recipients"
    source_kind = "infor_m3"
    target_kind = "wise"
    stream = "suppliers"
    ledger_target = "wise.recipient"
    posting_name = "the recipient"
    posts = (WISE_RECIPIENT, WISE_RECIPIENT_DELETED)
    lookups = NewRecipient
    window = ReadWindow("LMTS", Unit.EPOCH_MS, overlap=timedelta(minutes=5), from_run_start=True)
    settings = (
        setting(
            "bank_fields",
            "Bank detail fields",
            text_map(known=DEFAULT_BANK_FIELDS, value_pattern=M3_FIELD),
            default={},
            multiline=True,
            help="The supplier fields that hold bank details, as detail = CloudSuite field "
            "lines (e.g. iban = SFI1).",
        ),
        setting(
            "recipient_fields",
            "Recipient form fields",
            text_map(value_pattern=M3_FIELD_OR_BLANK),
            default={},
            multiline=True,
            help="Wise form keys filled from a supplier field, as key = CloudSuite field lines "
            "(e.g. address.city = TOWN; a blank field leaves the key out).",
        ),
        setting(
            "legal_type",
            "Legal type",
            choice("BUSINESS", "PRIVATE"),
            help="Wise's legal type of every recipient (blank: BUSINESS).",
        ),
        setting(
            "active_statuses",
            "Supplier statuses",
            text_list,
            default=["20"],
            multiline=True,
            help="Only suppliers in these CloudSuite statuses (STAT) become recipients.",
        ),
    )

    @property
    def bank_fields(self) -> dict[str, str]:
        return {**DEFAULT_BANK_FIELDS, **self.setting("bank_fields")}

    @property
    def recipient_fields(self) -> dict[str, str]:
        """Wise form key (lower case) → the supplier field it is read from."""
        fields = {**DEFAULT_RECIPIENT_FIELDS, **self.setting("recipient_fields")}
        return {str(k).lower(): str(v) for k, v in fields.items() if v}

    @property
    def legal_type(self) -> str:
        return str(self.setting("legal_type") or "BUSINESS")

    def bank_details(self, supplier: dict[str, str]) -> dict[str, str]:
        return {
            name: _clean(supplier.get(field))
            for name, field in self.bank_fields.items()
            if _clean(supplier.get(field))
        }

    def form_values(self, supplier: dict[str, str], bank: dict[str, str]) -> dict[str, str]:
        """What this supplier can fill Wise's form with, by lower-case Wise key."""
        values = {
            "accountholdername": str(supplier.get("SUNM") or "").strip(),
            "legaltype": self.legal_type,
            "iban": bank.get("iban", ""),
            "bic": bank.get("bic", ""),
            "swiftcode": bank.get("bic", ""),
            "sortcode": re.sub(r"[-.]", "", bank.get("sort_code", "")),
            "accountnumber": bank.get("account_number", ""),
        }
        for key, field in self.recipient_fields.items():
            values[key] = str(supplier.get(field) or "").strip()
        return {k: v for k, v in values.items() if v}

    def extract(self, ctx: Context) -> Iterator[SourceRecord]:
        since = ctx.window_start
        listed = list(ctx.source.list_suppliers(changed_since=int(since) if since else None))
        statuses = set(self.setting("active_statuses"))
        numbers = [s["SUNO"] for s in listed if not statuses or s.get("STAT", "20") in statuses]
        forms: dict[str, tuple[list[dict[str, Any]], str]] = {}
        for start in range(0, len(numbers), CHUNK):
            found = ctx.source.get_suppliers(numbers[start : start + CHUNK])
            for number in numbers[start : start + CHUNK]:
                supplier = found.get(number)
                if supplier is None or not self.bank_details(supplier):
                    continue  # only suppliers with banking details become recipients
                currency = _clean(supplier.get("CUCD"))
                if currency not in forms:
                    forms[currency] = self._requirements(ctx, currency)
                yield from self._records(ctx, supplier, *forms[currency])

    def _requirements(self, ctx: Context, currency: str) -> tuple[list[dict[str, Any]], str]:
        """Wise's recipient form for payments into ``currency`` (or why Wise gave none)."""
        source = str(ctx.target.connection.setting("source_currency") or "")
        if not (currency_known(currency) and currency_known(source)):
            return [], ""  # map says what is wrong with the currency
        try:
            answer = ctx.target.account_requirements(
                source_currency=source, target_currency=currency, source_amount=SOUNDING_AMOUNT
            )
        except Rejected as exc:
            return (
                [],
                f"Wise offers no recipients for payments from {source} to {currency}: "
                f"{(exc.remote_message or 'it refused the question').rstrip('.')}.",
            )
        return answer, ""

    def _records(
        self, ctx: Context, supplier: dict[str, str], form: list[dict[str, Any]], refused: str
    ) -> Iterator[SourceRecord]:
        number, currency = supplier["SUNO"], _clean(supplier.get("CUCD"))
        bank = self.bank_details(supplier)
        values = self.form_values(supplier, bank)
        identity: list[Any] = [supplier.get("SUNM"), currency, self.setting("legal_type"), bank]
        address = {
            k: values[k] for k in wise_form.address_keys(wise_form.parse(form)) if k in values
        }
        if address:  # only where Wise's form asks for one: other keys stay as they were
            identity.append(address)
        fingerprint = json.dumps(identity, sort_keys=True)
        made = ctx.ledger.under(WISE_RECIPIENT, number, currency)
        gone = {
            WISE_RECIPIENT_DELETED.parse(key)["recipient"]
            for key in ctx.ledger.confirmed(WISE_RECIPIENT_DELETED.build(r) for r in made.values())
        }
        digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
        key = base = WISE_RECIPIENT.build(number, currency, digest)
        n = 1
        while key in made and made[key] in gone:  # these details again, after a change back
            n += 1
            key = f"{base}#{n}"
        data = {
            "supplier": supplier,
            "bank": bank,
            "currency": currency,
            "key": key,
            "form": form,
            "values": values,
            "refused": refused,
            "fields": self.recipient_fields,
        }
        if key not in made:
            yield SourceRecord(f"{number}/{currency}", data)
        for old_key, old_id in sorted(made.items()):
            if old_key != key and old_id not in gone:
                yield SourceRecord(
                    f"{number}/{currency} (replaces recipient {old_id})",
                    {**data, "delete": old_id},
                )

    def serial_key(self, record: SourceRecord) -> str | None:
        return record.source_key.split(" ", 1)[0]  # a supplier's new and old recipients in turn

    def prepare(self, ctx: Context, record: SourceRecord) -> NewRecipient:
        """Whether the supplier's recipient with its present details is made in Wise (an old
        one is deleted only once it is)."""
        if "delete" not in record.data:
            return NewRecipient(None)  # a new recipient: nothing to look up
        return NewRecipient(bool(ctx.ledger.confirmed([record.data["key"]])))

    def ledger_key(self, record: SourceRecord) -> str:
        """A new recipient's key names the supplier, currency and details; a deletion, the
        recipient deleted."""
        if "delete" in record.data:
            return WISE_RECIPIENT_DELETED.build(str(record.data["delete"]))
        return str(record.data["key"])

    def summary(self, record: SourceRecord) -> Summary:
        supplier = record.data["supplier"]
        return Summary(
            currency=str(record.data.get("currency") or ""),
            party=str(supplier.get("SUNO") or ""),
            party_name=str(supplier.get("SUNM") or ""),
        )

    def map(self, record: SourceRecord, mappings: Mappings) -> Payload | Flag | Wait | Skip:
        data = record.data
        number = data["supplier"]["SUNO"]
        if "delete" in data:
            if not lookups_of(record, NewRecipient).posted:
                return Wait("The old recipient is kept until the new one is made in Wise.")
            return Payload({"delete": str(data["delete"])}, ledger_key=self.ledger_key(record))
        currency, bank = data["currency"], data["bank"]
        name = str(data["supplier"].get("SUNM") or "").strip()
        if not currency_known(currency):
            return Flag(f"Supplier {number}'s currency “{currency}” is not a currency code.")
        if len(name) < 2:
            return Flag(f"Supplier {number} has no name for Wise to pay to.")
        if "bic" in bank and not stdnum_bic.is_valid(bank["bic"]):
            return Flag(f"Supplier {number}'s BIC {bank['bic']} is not a valid BIC.")
        if "iban" in bank and not stdnum_iban.is_valid(bank["iban"]):
            return Flag(f"Supplier {number}'s IBAN {bank['iban']} does not check out.")
        if data.get("refused"):
            return Flag(data["refused"])
        types = wise_form.parse(data.get("form") or [])
        if not types:
            return Flag(f"Wise offers no recipient form for {currency} payments.")
        rtype, body, problems = wise_form.build(types, data["values"])
        if problems:
            return Flag(self._problems(number, currency, problems, data.get("fields") or {}))
        assert rtype is not None
        body["details"].setdefault("legalType", self.legal_type)
        recipient = {"currency": currency, "accountHolderName": name, **body}
        return Payload(
            {"create": recipient, "supplier": number}, ledger_key=self.ledger_key(record)
        )

    @staticmethod
    def _problems(
        number: str, currency: str, problems: list[wise_form.Problem], fields: dict[str, str]
    ) -> str:
        """One sentence per problem, naming the field as a finance user knows it."""
        told = []
        for problem in problems:
            source = fields.get(problem.field.key.lower())
            where = f" (read from the supplier's {source})" if source else ""
            if problem.missing:
                told.append(
                    f"Supplier {number} has no {problem.field.plain}{where}, which Wise needs "
                    f"for {currency} recipients."
                )
            else:
                told.append(f"Supplier {number}'s {problem.field.plain}{where}: {problem.detail}.")
        return " ".join(told)

    def load(self, ctx: Context, payload: Payload, posting: Posting | None) -> LoadResult:
        if "delete" in payload.data:
            rid = payload.data["delete"]
            existed = ctx.target.delete_recipient(rid)
            note = f"Old recipient {rid} deleted in Wise (the bank details changed)."
            if not existed:
                note = f"Old recipient {rid} was already gone from Wise."
            return LoadResult(str(rid), {"deleted": rid}, note)
        wanted = payload.data["create"]
        try:
            created = ctx.target.create_recipient(wanted)
        except Rejected as exc:
            named = refused_fields(exc)
            if not named:
                raise
            sources = self.recipient_fields
            said = "; ".join(
                wise_form.PLAIN.get(path.lower(), path)
                + (
                    f" (read from the supplier's {sources[path.lower()]})"
                    if path.lower() in sources
                    else ""
                )
                for path in named
            )
            plain = (
                f"it needs the supplier's {said} for {wanted['currency']} recipients; set it in "
                "CloudSuite, then replay"
            )
            raise Rejected(
                f"{exc.message} [{plain}]",
                status=exc.status,
                detail=exc.detail,
                remote_message=plain,
            ) from exc
        return LoadResult(
            str(created["id"]),
            {"id": created["id"], "type": created.get("type")},
            f"Recipient {created['id']} created in Wise.",
        )

    def find_existing(self, ctx: Context, payload: Payload, posting: Posting) -> LoadResult | None:
        if "delete" in payload.data:
            return None  # deleting again is harmless: it reads the recipient back if refused
        wanted = payload.data["create"]
        for recipient in ctx.target.list_recipients(currency=wanted["currency"]):
            if same_recipient(wanted, recipient):
                return LoadResult(str(recipient["id"]), {"id": recipient["id"]})
        return None


def refused_fields(exc: Rejected) -> list[str]:
    """The fields a Wise refusal names (``errors[].path``), in its order."""
    detail = exc.detail if isinstance(exc.detail, dict) else {}
    errors = detail.get("errors") if isinstance(detail.get("errors"), list) else []
    paths = [e.get("path") for e in errors if isinstance(e, dict)]
    return list(dict.fromkeys(p for p in paths if isinstance(p, str) and p))


def same_recipient(wanted: dict[str, Any], listed: dict[str, Any]) -> bool:
    """Whether a recipient Wise lists (v2) is the one ``wanted`` (a v1 request) would make.

    The holder's name matches without regard to case or spacing; every bank field of the
    request that Wise shows matches by key without regard to case and by value without spaces,
    dashes or case; a field Wise leaves out counts only when it is an account identifier (a BIC
    may be left out).  The address is not compared: Wise's v2 listing need not show it."""
    if listed.get("active") is False:
        return False
    name = listed.get("name")
    full = name.get("fullName") if isinstance(name, dict) else listed.get("accountHolderName")
    if (
        " ".join(str(full or "").split()).casefold()
        != " ".join(str(wanted.get("accountHolderName") or "").split()).casefold()
    ):
        return False
    shown = _flat(listed.get("details"))
    asked = {k: v for k, v in _flat(wanted.get("details")).items() if not k.startswith("address.")}
    compared = 0
    for key, value in asked.items():
        if key in IDENTITY_SKIP:
            if shown.get(key) not in (None, "") and _same(shown[key]) != _same(value):
                return False
            continue
        if shown.get(key) in (None, ""):
            return False
        if _same(shown[key]) != _same(value):
            return False
        compared += 1
    return compared > 0
