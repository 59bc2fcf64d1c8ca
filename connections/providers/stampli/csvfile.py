"""Stampli's CSV exports read by a per-connection template, row by row, never guessing.

Stampli publishes no column list: what its exports hold is agreed per customer, so the layout is
a template — per kind of file (invoices, invoice lines, payments, vendors, GL accounts) the file
name pattern and the column of each field — with the delimiter, encoding, date format and
decimal and thousands separators.  ``DEFAULT_TEMPLATE`` is the layout ml-connector proposes.

What real exports come with is handled: a byte-order mark, CRLF line ends, quoted fields with
delimiters and line breaks inside, thousands separators, blank trailing lines, columns in any
order and extra columns.  A row that cannot be read whole (a missing value, a malformed amount or
date, too few fields) is reported with its line number and reason, and the rest of the file is
read; it is never half-used.  A file that is not such a CSV at all (not text, no header with the
template's columns) fails as a whole, with the reason, and nothing of it is used.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

logger = logging.getLogger(__name__)

# field → type: text (required), text? (optional), decimal, decimal?, date, date?
FIELDS: dict[str, dict[str, str]] = {
    "invoices": {
        "invoice_id": "text",
        "vendor_id": "text",
        "vendor_name": "text",
        "invoice_number": "text",
        "invoice_date": "date",
        "due_date": "date?",
        "currency": "text",
        "total": "decimal",
        "tax": "decimal?",
        "company": "text?",
        "division": "text?",
        "status": "text?",
    },
    "invoice_lines": {
        "invoice_id": "text",
        "line": "text",
        "description": "text?",
        "amount": "decimal",
        "gl_code": "text",
        "cost_center": "text?",
    },
    "payments": {
        "payment_id": "text",
        "vendor_id": "text",
        "invoice_number": "text",
        "payment_date": "date",
        "amount": "decimal",
        "currency": "text",
        "method": "text?",
        "reference": "text?",
    },
    "vendors": {
        "vendor_id": "text",
        "vendor_name": "text",
        "external_id": "text?",
        "tax_id": "text?",
    },
    "gl_accounts": {"gl_code": "text", "name": "text?", "active": "text?"},
}
DEFAULT_TEMPLATE: dict[str, Any] = {
    "delimiter": ",",
    "encoding": "utf-8",
    "date_format": "%Y-%m-%d",
    "decimal": ".",
    "thousands": ",",
    "files": {
        "invoices": {
            "pattern": "invoices*.csv",
            "columns": {
                "invoice_id": "Invoice ID",
                "vendor_id": "Vendor ID",
                "vendor_name": "Vendor Name",
                "invoice_number": "Invoice Number",
                "invoice_date": "Invoice Date",
                "due_date": "Due Date",
                "currency": "Currency",
                "total": "Total Amount",
                "tax": "Tax Amount",
                "company": "Company",
                "division": "Division",
                "status": "Status",
            },
        },
        "invoice_lines": {
            "pattern": "invoice_lines*.csv",
            "columns": {
                "invoice_id": "Invoice ID",
                "line": "Line Number",
                "description": "Description",
                "amount": "Amount",
                "gl_code": "GL Account",
                "cost_center": "Cost Center",
            },
        },
        "payments": {
            "pattern": "payments*.csv",
            "columns": {
                "payment_id": "Payment ID",
                "vendor_id": "Vendor ID",
                "invoice_number": "Invoice Number",
                "payment_date": "Payment Date",
                "amount": "Amount",
                "currency": "Currency",
                "method": "Payment Method",
                "reference": "Reference",
            },
        },
        "vendors": {
            "pattern": "vendors*.csv",
            "columns": {
                "vendor_id": "Vendor ID",
                "vendor_name": "Vendor Name",
                "external_id": "External ID",
                "tax_id": "Tax ID",
            },
        },
        "gl_accounts": {
            "pattern": "gl_accounts*.csv",
            "columns": {"gl_code": "GL Code", "name": "Name", "active": "Active"},
        },
    },
}
MAX_FIELD = 4000  # characters in one value: longer is not a Stampli field


class NotCsv(ValueError):
    """The file is not a CSV export of this kind (message safe to show)."""


@dataclass(frozen=True)
class Row:
    """One data row read whole: its first physical line and its typed values."""

    line: int
    values: dict[str, Any]


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str


@dataclass
class Parsed:
    kind: str
    rows: list[Row] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def template_with(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The default template with a connection's overrides laid over it (files merged by kind
    and by column)."""
    merged = {k: v for k, v in DEFAULT_TEMPLATE.items() if k != "files"}
    files = {
        kind: {**spec, "columns": dict(spec["columns"])}
        for kind, spec in DEFAULT_TEMPLATE["files"].items()
    }
    for key, value in (overrides or {}).items():
        if key == "files" and isinstance(value, Mapping):
            for kind, spec in value.items():
                if kind in files and isinstance(spec, Mapping):
                    if "pattern" in spec:
                        files[kind]["pattern"] = str(spec["pattern"])
                    files[kind]["columns"].update(dict(spec.get("columns") or {}))
        elif key in merged:
            merged[key] = value
    merged["files"] = files
    return merged


class Reader:
    """Reads one kind of export with a template."""

    def __init__(self, template: Mapping[str, Any], kind: str) -> None:
        self.kind = kind
        self.types = FIELDS[kind]
        self.columns = dict(template["files"][kind]["columns"])
        self.delimiter = str(template.get("delimiter") or ",")
        self.encoding = str(template.get("encoding") or "utf-8")
        self.date_format = str(template.get("date_format") or "%Y-%m-%d")
        self.decimal_mark = str(template.get("decimal") or ".")
        self.thousands = str(template.get("thousands") or "")

    def parse(self, content: bytes) -> Parsed:
        text = self._text(content)
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter)
        parsed = Parsed(self.kind)
        header: dict[str, int] | None = None
        previous_end = 0
        try:
            for cells in reader:
                start, previous_end = previous_end + 1, reader.line_num
                if not any(c.strip() for c in cells):
                    continue  # blank lines (a trailing one most of all) hold nothing
                if header is None:
                    header = self._header(cells)
                    continue
                row = self._row(start, cells, header)
                if isinstance(row, RowError):
                    parsed.errors.append(row)
                else:
                    parsed.rows.append(row)
        except csv.Error as exc:
            raise NotCsv(
                f"It is not a readable CSV file (near line {previous_end + 1}: {exc})."
            ) from None
        if header is None:
            raise NotCsv("The file is empty: it has no header row.")
        return parsed

    def _text(self, content: bytes) -> str:
        if b"\x00" in content:
            raise NotCsv("It is a binary file, not a CSV export.")
        encoding = (
            "utf-8-sig"
            if self.encoding.lower().replace("_", "-") in ("utf-8", "utf8")
            else self.encoding
        )
        try:
            text = content.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            raise NotCsv(f"It is not text in the template's encoding ({self.encoding}).") from None
        return text.removeprefix("\ufeff")

    def _header(self, cells: list[str]) -> dict[str, int]:
        names = {c.strip().lower(): i for i, c in enumerate(cells)}
        header, missing = {}, []
        for name, column in self.columns.items():
            index = names.get(str(column).strip().lower())
            if index is not None:
                header[name] = index
            elif not self.types.get(name, "text?").endswith("?"):
                missing.append(str(column))
        if missing:
            raise NotCsv(
                f"This is not a Stampli {self.kind.replace('_', ' ')} export: its header lacks "
                + ", ".join(f"“{m}”" for m in missing)
                + "."
            )
        return header

    def _row(self, line: int, cells: list[str], header: dict[str, int]) -> Row | RowError:
        values: dict[str, Any] = {}
        for name, kind in self.types.items():
            index = header.get(name)
            raw = cells[index].strip() if index is not None and index < len(cells) else ""
            label = self.columns.get(name, name)
            if index is not None and index >= len(cells):
                return RowError(line, f"Line {line} has {len(cells)} fields: “{label}” is missing.")
            if len(raw) > MAX_FIELD or not all(c.isprintable() or c in "\t\r\n" for c in raw):
                return RowError(line, f"Line {line}: “{label}” holds characters that are not text.")
            if not raw:
                if not kind.endswith("?"):
                    return RowError(line, f"Line {line}: “{label}” is empty.")
                values[name] = None
                continue
            try:
                values[name] = self._value(kind.rstrip("?"), raw)
            except ValueError as exc:
                return RowError(line, f"Line {line}: “{label}” {exc}.")
        return Row(line, values)

    def _value(self, kind: str, raw: str) -> Any:
        if kind == "decimal":
            return self.amount(raw)
        if kind == "date":
            try:
                return datetime.strptime(raw, self.date_format).date().isoformat()
            except ValueError:
                raise ValueError(f"“{raw[:40]}” is not a date like {self.date_format}") from None
        return raw

    def amount(self, raw: str) -> Decimal:
        """``1,234.50`` (or ``1.234,50`` with a comma decimal mark) exactly; never a guess."""
        text = raw.replace(" ", "").replace("\u00a0", "")
        negative = text.startswith("(") and text.endswith(")")
        text = text.strip("()")
        if self.thousands:
            groups = text.split(self.decimal_mark)[0]
            if self.thousands in groups and not re.fullmatch(
                rf"[-+]?\d{{1,3}}({re.escape(self.thousands)}\d{{3}})+", groups
            ):
                raise ValueError(f"“{raw[:40]}” has its thousands separators in the wrong places")
            text = text.replace(self.thousands, "")
        if self.decimal_mark != ".":
            if "." in text:
                raise ValueError(f"“{raw[:40]}” is not an amount")
            text = text.replace(self.decimal_mark, ".")
        if not re.fullmatch(r"[-+]?\d+(\.\d+)?", text):
            raise ValueError(f"“{raw[:40]}” is not an amount")
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"“{raw[:40]}” is not an amount") from None
        return -value if negative else value
