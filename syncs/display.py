"""Payloads as a finance user reads them: labelled fields, amounts in major units with their
currency, dates as dates — the raw JSON stays available, folded, for support.

Pure functions (no I/O, no Django): the admin renders what they return.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from syncs.money import currency_known, exponent, from_minor

logger = logging.getLogger(__name__)

# CloudSuite (M3) field codes and the names finance staff know them by.
M3_FIELDS = {
    "CONO": "Company",
    "DIVI": "Division",
    "CUNO": "Customer",
    "CUNM": "Customer name",
    "PYNO": "Payer",
    "CINO": "Invoice",
    "INYR": "Invoice year",
    "IVDT": "Invoice date",
    "DUDT": "Due date",
    "ACDT": "Accounting date",
    "RGDT": "Entry date",
    "TRDT": "Transaction date",
    "PYAM": "Amount paid",
    "CUAM": "Amount",
    "VTAM": "VAT amount",
    "CUCD": "Currency",
    "LOCD": "Local currency",
    "ARAT": "Exchange rate",
    "SUNO": "Supplier",
    "SUNM": "Supplier name",
    "SINO": "Supplier invoice",
    "SPYN": "Payee",
    "BKID": "Bank account",
    "PYME": "Payment method",
    "TEPY": "Payment terms",
    "AIT1": "GL account",
    "AIT2": "Dimension 2",
    "AIT3": "Dimension 3",
    "AIT4": "Dimension 4",
    "AIT5": "Dimension 5",
    "AIT6": "Dimension 6",
    "AIT7": "Dimension 7",
    "AITM": "GL account",
    "TX40": "Description",
    "VTXT": "Voucher text",
    "VONO": "Voucher",
    "JRNO": "Journal",
    "YEA4": "Year",
    "CHRI": "Charge code",
    "BJNO": "Batch",
    "RECD": "Receipt",
    "REMK": "Remark",
    "STAT": "Status",
}

# Stripe amounts are integers in the currency's minor unit (cents, öre …).
MINOR_UNIT_KEYS = {
    "amount",
    "amount_captured",
    "amount_due",
    "amount_paid",
    "amount_received",
    "amount_refunded",
    "amount_remaining",
    "fee",
    "net",
    "subtotal",
    "total",
    "tax",
    "unit_amount",
}
TIMESTAMP_KEYS = {"created", "occurred_at", "period_start", "period_end", "due_date", "arrival"}
MAX_ROWS = 80
ID_LIKE = re.compile(r"^[a-z]{2,5}_(?=[A-Za-z0-9]*\d)[A-Za-z0-9]{6,}$")
ISO_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")


def label(key: str) -> str:
    """A field's readable name: an M3 code's meaning, otherwise the key in words."""
    if key in M3_FIELDS:
        return f"{M3_FIELDS[key]} ({key})"
    if ID_LIKE.match(key):
        return key  # an id (pi_3Qx…, re_…) is shown as it is, never put into words
    if key.isupper():
        return key  # an acronym (SKU), not a word to split
    words = key.replace("_", " ").replace("-", " ").strip()
    # camelCase → words
    out = "".join(f" {c.lower()}" if c.isupper() and i else c for i, c in enumerate(words))
    out = out[:1].upper() + out[1:]
    if out.lower() == "m3" or out.lower().startswith("m3 "):
        out = "CloudSuite" + out[2:]  # the flows' m3_invoice, m3_customer …
    return out


def moment(value: str) -> str:
    """An ISO 8601 time as ``2026-12-03 14:05:09 UTC`` — in its own zone, UTC when it names
    none; the text as it was when it is not one."""
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    zone = "UTC" if at.utcoffset() == UTC.utcoffset(None) else at.strftime("UTC%z")
    return f"{at:%Y-%m-%d %H:%M:%S} {zone}"


def money(minor: int, currency: str) -> str:
    """An amount in minor units as ``500.00 SEK``."""
    code = currency.upper()
    return f"{from_minor(int(minor), code):,} {code}"


def _scalar(key: str, value: Any, currency: str) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if (
        key in MINOR_UNIT_KEYS
        and isinstance(value, int)
        and currency
        and currency_known(currency.upper())
    ):
        return money(value, currency)
    if key in TIMESTAMP_KEYS and isinstance(value, int) and 10**8 < value < 10**11:
        return datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if key.lower().endswith("currency") or key == "CUCD":
        return str(value).upper()
    if isinstance(value, str) and ISO_MOMENT.match(value):
        return moment(value)
    if isinstance(value, Decimal):
        return f"{value:,}"
    if key in ("IVDT", "DUDT", "ACDT", "RGDT", "TRDT") and len(str(value)) == 8:
        text = str(value)
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return str(value)


def _nested(prefix: str, key: str) -> str:
    """A nested field's label: under its parent's, without repeating it (the invoice under
    "CloudSuite" reads "CloudSuite invoice", not "CloudSuite", a chevron, then it again)."""
    name = label(key)
    parent = prefix.rsplit(" \u203a ", 2)[-2] if prefix.endswith(" \u203a ") else ""
    if parent and name.startswith(parent + " "):
        return f"{prefix[: -len(parent) - 3]}{name}"
    return f"{prefix}{name}"


AMOUNT_CODES = {"CUAM", "PYAM", "NLAM", "CHAM", "VTAM"}


def _is_amount(key: str) -> bool:
    """A field that holds an amount in major units (``m3_amount``, ``open_amount``, CUAM)."""
    return key in AMOUNT_CODES or key.lower().endswith("_amount") or key.lower() == "total"


def _amount_with_currency(value: Any, currency: str) -> str:
    """``"300.00"`` as ``300.00 EUR`` (""when it is no amount, or no currency is known)."""
    code = currency.upper()
    if isinstance(value, bool) or not currency_known(code):
        return ""
    try:
        amount = Decimal(str(value).strip())
    except ArithmeticError:
        return ""
    return amount_text(amount, code) if amount.is_finite() else ""


def _empty(value: Any) -> bool:
    """Nothing worth a row: no value, or a list or object of nothing."""
    if value is None or value == "" or value == [] or value == {}:
        return True
    if isinstance(value, dict):
        return all(_empty(v) for v in value.values())
    if isinstance(value, list):
        return all(_empty(v) for v in value)
    return False


def fields(
    payload: Any, *, prefix: str = "", currency: str = "", amounts: bool = False
) -> list[tuple[str, str]]:
    """``payload`` as (label, value) rows, nested objects and lists flattened with a chevron;
    empty fields are left out (twelve blank dimensions say nothing); an amount — a field
    named so, or whatever sits under one — shows its currency."""
    rows: list[tuple[str, str]] = []
    if isinstance(payload, dict):
        currency = str(payload.get("currency") or payload.get("CUCD") or currency or "")
        for key, value in payload.items():
            if _empty(value):
                continue
            name = _nested(prefix, str(key))
            minor = str(key) in MINOR_UNIT_KEYS and isinstance(value, int)  # Stripe's cents
            money = (amounts or _is_amount(str(key))) and not minor
            if isinstance(value, dict | list):
                rows.extend(
                    fields(value, prefix=f"{name} \u203a ", currency=currency, amounts=money)
                )
            elif money and (text := _amount_with_currency(value, currency)):
                rows.append((name, text))
            else:
                rows.append((name, _scalar(str(key), value, currency)))
            if len(rows) >= MAX_ROWS:
                break
    elif isinstance(payload, list):
        for n, value in enumerate(payload, start=1):
            if _empty(value):
                continue
            if isinstance(value, dict | list):
                rows.extend(fields(value, prefix=f"{prefix}{n} \u203a ", currency=currency))
            else:
                rows.append((f"{prefix}{n}", _scalar("", value, currency)))
            if len(rows) >= MAX_ROWS:
                break
    elif payload not in (None, ""):
        rows.append((prefix.rstrip(" \u203a") or "Value", _scalar("", payload, currency)))
    return rows[:MAX_ROWS]


def amount_text(amount: Decimal | None, currency: str = "") -> str:
    """An amount as a finance user reads it: grouped thousands, the currency's own decimals
    (``873.60 EUR``, ``1,200 JPY``), the currency after it; "—" when there is none."""
    if amount is None:
        return "—"
    code = currency.upper()
    places = exponent(code) if currency_known(code) else 2
    text = (
        f"{amount:,.{places}f}"
        if amount == amount.quantize(Decimal(1).scaleb(-places))
        else (f"{amount.normalize():,f}")
    )
    return f"{text} {code}".strip()


def amount_searched(term: str) -> Decimal | None:
    """A search term that reads as an amount ("2,084.80", "2084.8 EUR"): that amount."""
    text = term.strip().split(" ")[0].replace(",", "")
    if not text or not any(c.isdigit() for c in text):
        return None
    try:
        value = Decimal(text)
    except ArithmeticError:
        return None
    return value if value.is_finite() and abs(value) < 10**15 else None


def age(seconds: float) -> str:
    """How long ago, in the largest sensible unit: ``45 s``, ``12 min``, ``3 h``, ``2 days``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400 * 2:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def collection(sent: Any, source: Any) -> dict[str, Any]:
    """A Stripe collection posted to CloudSuite as a finance user reads it: customer, invoice,
    amount, fee, net and the GL accounting string (from what was sent)."""
    sent = sent if isinstance(sent, dict) else {}
    source = source if isinstance(source, dict) else {}
    lines = [line for line in sent.get("lines") or [] if isinstance(line, dict)]
    charges = [c for c in sent.get("charges") or [] if isinstance(c, dict)]
    first = lines[0] if lines else {}

    def amount(value: Any) -> Decimal:
        try:
            return Decimal(str(value))
        except ArithmeticError:
            return Decimal(0)

    gross = sum((amount(line.get("PYAM")) for line in lines), Decimal(0))
    fee = sum((amount(c.get("CHAM")) for c in charges), Decimal(0))
    dims = [str(first.get(f"AIT{n}") or "") for n in range(1, 8)]
    return {
        "kind": str(source.get("kind") or ""),
        "customer": str(first.get("CUNO") or ""),
        "invoice": ", ".join(dict.fromkeys(str(line.get("CINO", "")) for line in lines)),
        "currency": str(first.get("CUCD") or str(source.get("currency") or "").upper()),
        "amount": gross,
        "fee": fee,
        "net": gross - fee,
        "gl": ";".join(dims).rstrip(";"),
    }


def collection_of(record: Any) -> dict[str, Any]:
    """``collection`` of an audit record, worked out once per record (lists and exports read
    several columns of it)."""
    cached = getattr(record, "_mlc_collection", None)
    if cached is None:
        cached = collection(record.sent_payload, record.source_payload)
        record._mlc_collection = cached
    return cached


def collection_totals(records: Any) -> list[tuple[str, dict[str, Any]]]:
    """Receipts, amount, fee and net per currency of ``records``, by currency."""
    totals: dict[str, dict[str, Any]] = {}
    for record in records:
        row = collection_of(record)
        t = totals.setdefault(
            row["currency"] or "?",
            {"count": 0, "amount": Decimal(0), "fee": Decimal(0), "net": Decimal(0)},
        )
        t["count"] += 1
        for key in ("amount", "fee", "net"):
            t[key] += row[key]
    for currency, t in totals.items():
        for key in ("amount", "fee", "net"):
            t[f"{key}_text"] = amount_text(t[key], currency)
    return sorted(totals.items())


@dataclass(frozen=True)
class Entry:
    """One line of a posting as the ledger shows it: the account (and its name), what the line
    says, and its amount on the debit or the credit side."""

    account: str
    name: str
    text: str
    debit: Decimal | None
    credit: Decimal | None
    currency: str

    @property
    def debit_text(self) -> str:
        return amount_text(self.debit, self.currency) if self.debit is not None else ""

    @property
    def credit_text(self) -> str:
        return amount_text(self.credit, self.currency) if self.credit is not None else ""


def _names(looked_up: Any) -> dict[str, str]:
    """Account → name, from what a record was judged against (checked accounts)."""
    found: dict[str, str] = {}
    if isinstance(looked_up, dict):
        if looked_up.get("mapped") and looked_up.get("name"):
            found[str(looked_up["mapped"])] = str(looked_up["name"])
            found[str(looked_up["mapped"]).split(";")[0]] = str(looked_up["name"])
        for value in looked_up.values():
            found.update(_names(value))
    elif isinstance(looked_up, list):
        for value in looked_up:
            found.update(_names(value))
    return found


def _account(line: dict[str, Any]) -> str:
    return ";".join(str(line.get(f"AIT{n}") or "") for n in range(1, 8)).rstrip(";")


def _side(
    account: str, name: str, text: str, amount: Decimal, currency: str, *, debit: bool
) -> Entry:
    """A line on the debit side when ``debit`` and ``amount`` is positive (a negative amount
    goes to the other side)."""
    on_debit = debit == (amount >= 0)
    value = abs(amount)
    return Entry(
        account, name, text, value if on_debit else None, None if on_debit else value, currency
    )


def entries(sent: Any, looked_up: Any = None, names: dict[str, str] | None = None) -> list[Entry]:
    """A posting sent to CloudSuite as debit and credit lines: a GL journal line by line (each
    amount its sign's side), a customer receipt as the bank debited and the customer's invoice
    credited, its fee charged from the bank.  Empty for anything else.  An account's name is
    the chart's, as the record was judged against it, else ``names`` (the mappings' notes)."""
    if not isinstance(sent, dict):
        return []
    lines = [line for line in sent.get("lines") or [] if isinstance(line, dict)]
    names = {**(names or {}), **_names(looked_up)}
    out: list[Entry] = []

    def amount(value: Any) -> Decimal | None:
        try:
            return Decimal(str(value))
        except ArithmeticError:
            return None

    head = sent.get("head") if isinstance(sent.get("head"), dict) else {}
    if head.get("SUNO") and any("NLAM" in line for line in lines):
        return _supplier_invoice(head, lines, names)
    for line in lines:
        account, currency = _account(line), str(line.get("CUCD") or "").upper()
        name = names.get(account) or names.get(account.split(";")[0], "")
        if "CUAM" in line and account and (value := amount(line["CUAM"])) is not None:
            text = str(line.get("VTXT") or "")
            out.append(_side(account, name, text, value, currency, debit=True))
        elif "PYAM" in line and (value := amount(line["PYAM"])) is not None:
            customer = f"Customer {line.get('CUNO', '')}, invoice {line.get('CINO', '')}"
            out.append(_side(account or "bank", name, customer, value, currency, debit=True))
            out.append(_side("receivable", "", customer, value, currency, debit=False))
    for charge in sent.get("charges") or []:
        if isinstance(charge, dict) and (value := amount(charge.get("CHAM"))) is not None:
            currency = str(charge.get("CUCD") or "").upper()
            code = f"charge code {charge.get('CHRI', '')}"
            bank = _account(lines[0]) if lines else "bank"
            out.append(_side(code, "", "Fee", value, currency, debit=True))
            out.append(_side(bank, names.get(bank, ""), "Fee", value, currency, debit=False))
    return out


def _supplier_invoice(
    head: dict[str, Any], lines: list[dict[str, Any]], names: dict[str, str]
) -> list[Entry]:
    """A supplier invoice as the ledger shows it: each line's cost debited to its account, the
    VAT debited, the supplier credited with the invoice's total."""
    currency = str(head.get("CUCD") or "").upper()
    supplier = f"Supplier {head.get('SUNO', '')}, invoice {head.get('SINO', '')}"
    out = []
    for line in lines:
        try:
            amount = Decimal(str(line.get("NLAM")))
        except ArithmeticError:
            continue
        account = str(line.get("account") or "")
        name = names.get(account) or names.get(account.split(";")[0], "")
        text = str(line.get("CHGT") or "")
        out.append(_side(account or "cost", name, text, amount, currency, debit=True))
    for key, label, debit in (("VTAM", "VAT", True), ("CUAM", supplier, False)):
        try:
            amount = Decimal(str(head.get(key) or 0))
        except ArithmeticError:
            continue
        if amount:
            where = "VAT" if debit else "payable"
            out.append(_side(where, "", label, amount, currency, debit=debit))
    return out


def entry_totals(lines: list[Entry]) -> list[tuple[str, str, str]]:
    """(currency, debits, credits) of a posting: equal when it balances."""
    totals: dict[str, list[Decimal]] = {}
    for e in lines:
        t = totals.setdefault(e.currency, [Decimal(0), Decimal(0)])
        t[0] += e.debit or 0
        t[1] += e.credit or 0
    return [(c, amount_text(d, c), amount_text(k, c)) for c, (d, k) in sorted(totals.items())]


def line_table(sent: Any, currency: str = "") -> tuple[list[str], list[list[str]]]:
    """The lines of what was sent that is no ledger posting (a Stripe invoice's lines, a Cin7
    purchase's) as a table: the fields the lines have, labelled, amounts with their currency;
    ([], []) when there are none, or when ``entries`` shows them as debit and credit."""
    if not isinstance(sent, dict) or entries(sent):
        return [], []
    lines = [line for line in sent.get("lines") or [] if isinstance(line, dict)]
    keys: list[str] = []
    for line in lines:
        for key, value in line.items():
            if key not in keys and not _empty(value) and not isinstance(value, dict | list):
                keys.append(key)
    keys = [k for k in keys if k.lower() not in ("currency", "cucd")][:7]
    rows = []
    for line in lines:
        code = str(line.get("currency") or line.get("CUCD") or currency)
        row = []
        for key in keys:
            value = line.get(key)
            minor = key in MINOR_UNIT_KEYS and isinstance(value, int)
            money = not minor and (_is_amount(key) or key.lower() in ("price", "tax", "total"))
            text = _amount_with_currency(value, code) if money else ""
            row.append(text or ("" if _empty(value) else _scalar(key, value, code)))
        rows.append(row)
    return [label(k) for k in keys], rows
