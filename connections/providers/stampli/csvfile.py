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

A file whose last record is cut is *incomplete* (``Parsed.incomplete`` says why), whatever its
age: it ends inside a quoted field, its last row has fewer fields than the header, or — where
the template says files end with a line break (``ends_with_newline``, the default) — it does
not.  Nothing of an incomplete file is used: the caller waits for the rest.

Template options beyond the columns: ``date_formats`` per kind of file (several may be listed;
the first that reads a value wins, and the template-wide ``date_format`` is the fallback);
``layout`` — ``split`` (invoice heads in one file, their lines in another whose name carries the
same stamp) or ``combined`` (the head repeated on every line row, the commonest AP export shape);
``vendor_match`` — ``id`` (the Vendor ID column) or ``name`` (an export that names the vendor
only: the Vendor Name is then its key).
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
        "vendor_name": "text?",
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
LAYOUTS = ("split", "combined")
VENDOR_MATCH = ("id", "name")
DEFAULT_TEMPLATE: dict[str, Any] = {
    "delimiter": ",",
    "encoding": "utf-8",
    "date_format": "%Y-%m-%d",
    "decimal": ".",
    "thousands": ",",
    "ends_with_newline": True,
    "layout": "split",
    "vendor_match": "id",
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
                "vendor_name": "Vendor Name",
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


class Cut(ValueError):
    """The file stops part-way (still being written): why, in plain words."""


@dataclass(frozen=True)
class Row:
    """One data row read whole: its first physical line and its typed values."""

    line: int
    values: dict[str, Any]


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str
    # The row's raw cells by field (what could be read of it): a bad line row still names the
    # invoice it belongs to.
    cells: dict[str, str] = field(default_factory=dict)


@dataclass
class Parsed:
    kind: str
    rows: list[Row] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    incomplete: str = ""  # why the file's last record is cut ("" when it is whole)


def field_types(template: Mapping[str, Any], kind: str) -> dict[str, str]:
    """The fields of ``kind`` as this template reads them: in the combined layout an invoice
    row carries its line too; matched by name, the vendor id is optional and the name not."""
    types = dict(FIELDS[kind])
    if kind == "invoices" and template.get("layout") == "combined":
        for name, kind_ in FIELDS["invoice_lines"].items():
            types.setdefault(name, kind_)
        types["line"] = "text?"  # the row's place in the invoice when there is no column
    if template.get("vendor_match") == "name" and "vendor_id" in types:
        types["vendor_id"] = "text?"
        types["vendor_name"] = "text"
    return types


def date_formats(template: Mapping[str, Any], kind: str) -> list[str]:
    """The date formats of ``kind`` in the order they are tried."""
    spec = (template.get("files") or {}).get(kind) or {}
    formats = spec.get("date_formats") or template.get("date_format") or "%Y-%m-%d"
    if isinstance(formats, str):
        formats = [formats]
    return [str(f) for f in formats if str(f).strip()] or ["%Y-%m-%d"]


def cut_inside_quotes(text: str, delimiter: str, quote: str = '"') -> bool:
    """Whether ``text`` ends inside a quoted field (a quote opens a field only at its start;
    a doubled quote inside one is an escaped quote)."""
    inside, at_start, i, n = False, True, 0, len(text)
    while i < n:
        c = text[i]
        if inside:
            if c == quote:
                if i + 1 < n and text[i + 1] == quote:
                    i += 1
                else:
                    inside = False
        elif c == quote and at_start:
            inside = True
        at_start = (not inside) and c in (delimiter, "\n", "\r")
        i += 1
    return inside


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
                    if spec.get("date_formats"):
                        files[kind]["date_formats"] = spec["date_formats"]
                    files[kind]["columns"].update(dict(spec.get("columns") or {}))
        elif key in merged:
            merged[key] = value
    merged["files"] = files
    return merged


class Reader:
    """Reads one kind of export with a template."""

    def __init__(self, template: Mapping[str, Any], kind: str) -> None:
        self.kind = kind
        self.types = field_types(template, kind)
        columns = dict(template["files"][kind]["columns"])
        if kind == "invoices" and template.get("layout") == "combined":
            lines = template["files"]["invoice_lines"]["columns"]
            columns = {**{k: v for k, v in lines.items() if k in self.types}, **columns}
        self.columns = columns
        self.delimiter = str(template.get("delimiter") or ",")
        self.encoding = str(template.get("encoding") or "utf-8")
        self.date_formats = date_formats(template, kind)
        self.date_format = self.date_formats[0]
        self.decimal_mark = str(template.get("decimal") or ".")
        self.thousands = str(template.get("thousands") or "")
        self.ends_with_newline = bool(template.get("ends_with_newline", True))

    def parse(self, content: bytes) -> Parsed:
        try:
            text = self._text(content)
        except Cut as cut:
            return Parsed(self.kind, incomplete=str(cut))
        if text.strip() and not any(c in text for c in "\r\n"):
            return Parsed(self.kind, incomplete="not even its header row is written to the end")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter)
        parsed = Parsed(self.kind)
        header: dict[str, int] | None = None
        width = 0
        previous_end = 0
        last: tuple[int, list[str]] | None = None
        try:
            for cells in reader:
                start, previous_end = previous_end + 1, reader.line_num
                if not any(c.strip() for c in cells):
                    continue  # blank lines (a trailing one most of all) hold nothing
                if header is None:
                    header, width = self._header(cells), len(cells)
                    continue
                last = (start, cells)
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
        parsed.incomplete = self._cut(text, last, width)
        return parsed

    def _cut(self, text: str, last: tuple[int, list[str]] | None, width: int) -> str:
        """Why the file's last record is cut ("" when it is whole)."""
        if cut_inside_quotes(text, self.delimiter):
            line = last[0] if last else 1
            return f"it ends inside a quoted value (the record that starts on line {line})"
        if last is not None and len(last[1]) < width:
            return (
                f"its last row (line {last[0]}) has {len(last[1])} of the header's {width} fields"
            )
        if self.ends_with_newline and text and not text.endswith(("\n", "\r")):
            return "it does not end with a line break, as the template says its files do"
        return ""

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
        except UnicodeDecodeError as exc:
            if exc.reason != "unexpected end of data":  # not a character cut by the upload
                raise NotCsv(
                    f"It is not text in the template's encoding ({self.encoding})."
                ) from None
            raise Cut("it ends in the middle of a character") from None
        except LookupError:
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
        raw_cells = {
            name: cells[index].strip()[:200]
            for name, index in header.items()
            if index < len(cells) and cells[index].strip()
        }
        for name, kind in self.types.items():
            index = header.get(name)
            raw = cells[index].strip() if index is not None and index < len(cells) else ""
            label = self.columns.get(name, name)
            if index is not None and index >= len(cells):
                return RowError(
                    line, f"Line {line} has {len(cells)} fields: “{label}” is missing.", raw_cells
                )
            if len(raw) > MAX_FIELD or not all(c.isprintable() or c in "\t\r\n" for c in raw):
                return RowError(
                    line, f"Line {line}: “{label}” holds characters that are not text.", raw_cells
                )
            if not raw:
                if not kind.endswith("?"):
                    return RowError(line, f"Line {line}: “{label}” is empty.", raw_cells)
                values[name] = None
                continue
            try:
                values[name] = self._value(kind.rstrip("?"), raw)
            except ValueError as exc:
                return RowError(line, f"Line {line}: “{label}” {exc}.", raw_cells)
        return Row(line, values)

    def _value(self, kind: str, raw: str) -> Any:
        if kind == "decimal":
            return self.amount(raw)
        if kind == "date":
            for form in self.date_formats:
                try:
                    return datetime.strptime(raw, form).date().isoformat()
                except ValueError:
                    continue
            shown = " or ".join(self.date_formats)
            raise ValueError(f"“{raw[:40]}” is not a date like {shown}")
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
