"""Setting up a file connection's CSV template by form, from a sample file on its server.

A finance user picks a kind of file and a sample the server holds; the sample's header gives the
columns to choose from, one dropdown per field the kind has; the date formats are chosen from
examples (those that read the sample's dates are marked); and the first rows are shown as they
will be read — typed, dates as dates, amounts exact — with every row a problem keeps out, before
anything is saved.  What is saved is the connection's *CSV template* setting, checked as the
setting is checked (the same ``clean``).  Works for any provider whose class offers
``template_kinds`` (the fields of each kind of file) and ``template_reader`` (a reader of one
kind with a template): the admin asks the capability, never the system's name.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django import forms

from connections.models import Connection

logger = logging.getLogger(__name__)

SAMPLE_BYTES = 512 * 1024  # enough for a header and the first rows of any export
PREVIEW_ROWS = 10
DELIMITERS = [(",", "Comma ,"), (";", "Semicolon ;"), ("\t", "Tab"), ("|", "Bar |")]
ENCODINGS = [
    ("utf-8", "UTF-8 (with or without a byte-order mark)"),
    ("cp1252", "Windows-1252 (Excel in Western Europe)"),
    ("latin-1", "ISO-8859-1"),
]
DECIMALS = [(".", "Point: 1234.50"), (",", "Comma: 1234,50")]
THOUSANDS = [(",", "Comma: 1,234"), (".", "Point: 1.234"), (" ", "Space: 1 234"), ("", "None")]
LAYOUTS = [
    ("split", "Heads and lines in two files (invoices_… and invoice_lines_… with the same stamp)"),
    ("combined", "One file: the invoice's head repeated on every line row"),
]
VENDOR_MATCH = [
    ("id", "By the vendor id column"),
    ("name", "By the vendor's exact name (the export has no vendor id)"),
]
EXAMPLE_DAY = date(2026, 11, 28)
DATE_FORMATS = [
    "%Y-%m-%d",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d.%m.%Y",
    "%d-%m-%Y",
    "%Y/%m/%d",
    "%d/%m/%y",
    "%m/%d/%y",
    "%d %b %Y",
    "%Y%m%d",
]
NOT_IN_FILE = ""


def supports(connection: Connection) -> bool:
    """Whether this connection's files are read with a CSV template set up here."""
    provider = connection.provider_class
    return hasattr(provider, "template_kinds") and any(
        f.name == "csv_template" for f in provider.spec.settings
    )


def date_choices() -> list[tuple[str, str]]:
    return [(f, f"{EXAMPLE_DAY.strftime(f)}   ({f})") for f in DATE_FORMATS]


@dataclass
class Sample:
    """What a sample file shows under a candidate template."""

    header: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    incomplete: str = ""
    unreadable: str = ""


def sample_files(connection: Connection) -> list[str]:
    """The files on the server a sample can be taken from (newest first)."""
    from connections.providers.registry import client_for

    client = client_for(connection)
    try:
        files = client.list_files()
    finally:
        client.close()
    files = [f for f in files if not f.name.endswith(".done")]
    return [f.name for f in sorted(files, key=lambda f: -f.modified)][:200]


def read_sample(connection: Connection, name: str) -> bytes:
    from connections.providers.registry import client_for

    client = client_for(connection)
    try:
        folder = str(connection.setting("remote_dir") or ".").rstrip("/")
        return client.read_file(f"{folder}/{name}", max_bytes=SAMPLE_BYTES)[:SAMPLE_BYTES]
    finally:
        client.close()


def _text(content: bytes, encoding: str) -> str:
    """A sample as text, read leniently (a preview, not an import), without a byte-order mark."""
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    return content.decode(codec, errors="replace").removeprefix("\ufeff")


def header_of(content: bytes, *, delimiter: str, encoding: str) -> list[str]:
    """The first row of a sample: the columns to choose from."""
    text = _text(content, encoding)
    for cells in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter or ","):
        if any(c.strip() for c in cells):
            return [c.strip() for c in cells if c.strip()][:200]
    return []


def preview(connection: Connection, overrides: dict[str, Any], kind: str, content: bytes) -> Sample:
    """The sample read with the template ``overrides`` would make: its first rows, typed."""
    provider = connection.provider_class
    template = provider.template_with(overrides)
    sample = Sample()
    sample.header = header_of(
        content, delimiter=str(template["delimiter"]), encoding=str(template["encoding"])
    )
    try:
        parsed = provider.template_reader(template, kind).parse(content)
    except ValueError as exc:  # not such a CSV at all: said in plain words
        sample.unreadable = str(exc)
        return sample
    sample.incomplete = parsed.incomplete
    sample.rows = [
        {
            "row": row.line,
            "values": [_shown(row.values.get(k)) for k in parsed_fields(provider, template, kind)],
        }
        for row in parsed.rows[:PREVIEW_ROWS]
    ]
    sample.problems = [e.reason for e in parsed.errors[:PREVIEW_ROWS]]
    return sample


def label(name: str) -> str:
    """A field as a finance user names it (gl_code → GL code, invoice_id → Invoice ID)."""
    words = name.split("_")
    shown = [{"gl": "GL", "id": "ID"}.get(w, w) for w in words]
    text = " ".join(shown)
    return text[:1].upper() + text[1:]


def parsed_fields(provider: Any, template: dict[str, Any], kind: str) -> list[str]:
    return list(provider.template_field_types(template, kind))


def _shown(value: Any) -> str:
    return "" if value is None else str(value)


class TemplateForm(forms.Form):
    """One kind of file of a connection's CSV template, set up from a sample."""

    kind = forms.ChoiceField(label="Kind of file")
    sample = forms.ChoiceField(label="Sample file on the server")
    pattern = forms.CharField(
        label="File names of this kind",
        max_length=120,
        help_text="A name pattern: * stands for any text (invoices_*.csv).",
    )
    delimiter = forms.ChoiceField(choices=DELIMITERS)
    encoding = forms.ChoiceField(choices=ENCODINGS)
    decimal = forms.ChoiceField(label="Decimal mark", choices=DECIMALS)
    thousands = forms.ChoiceField(label="Thousands separator", choices=THOUSANDS, required=False)
    ends_with_newline = forms.ChoiceField(
        label="Files end with a line break",
        choices=[("yes", "Yes: a file without one is still being written"), ("no", "No")],
    )
    layout = forms.ChoiceField(label="Invoice files", choices=LAYOUTS)
    vendor_match = forms.ChoiceField(label="Vendors are matched", choices=VENDOR_MATCH)
    date_formats = forms.MultipleChoiceField(
        label="Dates look like",
        choices=date_choices(),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="Tick every form this kind of file uses; the first that reads a date wins.",
    )

    def __init__(
        self,
        *args: Any,
        kinds: dict[str, dict[str, str]],
        files: list[str],
        header: list[str],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.kinds = kinds
        self.fields["kind"].choices = [(k, k.replace("_", " ")) for k in kinds]
        self.fields["sample"].choices = [(n, n) for n in files] or [("", "— no files —")]
        kind = self.data.get("kind") or self.initial.get("kind") or next(iter(kinds))
        columns = [(NOT_IN_FILE, "— not in this file —")] + [(c, c) for c in header]
        self.column_fields = []
        for name, type_ in (kinds.get(kind) or {}).items():
            required = not type_.endswith("?")
            key = f"col__{name}"
            self.fields[key] = forms.ChoiceField(
                label=label(name) + ("" if required else " (optional)"),
                choices=columns,
                required=False,
            )
            self.column_fields.append(key)

    def overrides(self, current: dict[str, Any]) -> dict[str, Any]:
        """The connection's template overrides with this kind set as the form says."""
        data = self.cleaned_data
        kind = data["kind"]
        files = dict(current.get("files") or {})
        columns = {
            key.removeprefix("col__"): data[key] for key in self.column_fields if data.get(key)
        }
        spec: dict[str, Any] = {"pattern": data["pattern"].strip(), "columns": columns}
        if data.get("date_formats"):
            spec["date_formats"] = list(data["date_formats"])
        files[kind] = spec
        return {
            **{k: v for k, v in current.items() if k != "files"},
            "delimiter": data["delimiter"],
            "encoding": data["encoding"],
            "decimal": data["decimal"],
            "thousands": data.get("thousands") or "",
            "ends_with_newline": data["ends_with_newline"] == "yes",
            "layout": data["layout"],
            "vendor_match": data["vendor_match"],
            "files": files,
        }

    def missing_required(self) -> list[str]:
        kind = self.cleaned_data["kind"]
        return [
            label(name)
            for name, type_ in self.kinds[kind].items()
            if not type_.endswith("?") and not self.cleaned_data.get(f"col__{name}")
        ]


def kinds_for(connection: Connection, *, layout: str, vendor_match: str) -> dict[str, Any]:
    """The fields of each kind of file as a template of this layout and matching reads them."""
    provider = connection.provider_class
    shape = {"layout": layout, "vendor_match": vendor_match}
    return {k: provider.template_field_types(shape, k) for k in provider.template_kinds}


def column_values(
    content: bytes, *, delimiter: str, encoding: str, columns: list[str], limit: int = 5
) -> list[str]:
    """The first values of some columns of a sample (for the date formats to be tried on)."""
    text = _text(content, encoding)
    values: list[str] = []
    places: list[int] | None = None
    for cells in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter or ","):
        if not any(c.strip() for c in cells):
            continue
        if places is None:
            names = [c.strip() for c in cells]
            places = [names.index(c) for c in columns if c in names]
            continue
        values += [cells[i].strip() for i in places if i < len(cells) and cells[i].strip()]
        if len(values) >= limit:
            break
    return values[:limit]


def date_hits(values: list[str]) -> dict[str, str]:
    """For each date format, a sample value it reads ("" when it reads none of them)."""
    from datetime import datetime

    hits = {}
    for form in DATE_FORMATS:
        hits[form] = ""
        for value in values:
            try:
                datetime.strptime(value, form)
            except ValueError:
                continue
            hits[form] = value
            break
    return hits


def initial_for(connection: Connection, kind: str) -> dict[str, Any]:
    """The form's starting values: what the connection's template says now."""
    provider = connection.provider_class
    template = provider.template_with(connection.setting("csv_template") or {})
    spec = template["files"][kind]
    formats = spec.get("date_formats") or template.get("date_format") or []
    initial = {
        "kind": kind,
        "pattern": spec["pattern"],
        "delimiter": template["delimiter"],
        "encoding": template["encoding"],
        "decimal": template["decimal"],
        "thousands": template["thousands"],
        "ends_with_newline": "yes" if template.get("ends_with_newline", True) else "no",
        "layout": template.get("layout", "split"),
        "vendor_match": template.get("vendor_match", "id"),
        "date_formats": [formats] if isinstance(formats, str) else list(formats),
    }
    for name, column in spec["columns"].items():
        initial[f"col__{name}"] = column
    return initial


def save(connection: Connection, overrides: dict[str, Any]) -> None:
    """Store the template, checked as the setting is checked."""
    spec = next(f for f in connection.provider_class.spec.settings if f.name == "csv_template")
    cleaned = spec.clean(overrides)
    connection.settings = {**(connection.settings or {}), "csv_template": cleaned}
    connection.full_clean()
    connection.save(update_fields=["settings", "updated_at"])
