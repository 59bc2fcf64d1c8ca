"""What the Stampli flows share: reading the complete exports of a kind not processed before
(each bad row a record of its own, a file that is not an export one failing record), the vendors
export, and mapping a Stampli vendor to a CloudSuite supplier — a ``vendor`` mapping, else the
vendor's external id when CloudSuite has that supplier, else one supplier of exactly that name;
the closest name is only ever a suggestion for the reviewer."""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from connections.providers.errors import NotFound
from connections.providers.infor_m3 import InforM3
from connections.providers.sftp import RemoteFile
from connections.providers.stampli import StampliSftp
from connections.providers.stampli.client import ExportFile
from connections.providers.stampli.csvfile import RowError
from syncs.flows.base import Flag, FlowContext, Mappings, Skip, SourceRecord, Wait

logger = logging.getLogger(__name__)

Context = FlowContext[StampliSftp, InforM3]


def plain(values: dict[str, Any]) -> dict[str, Any]:
    """A parsed row as JSON can keep it (amounts as exact text)."""
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in values.items()}


def keyed(row: dict[str, Any], template: dict[str, Any]) -> dict[str, Any]:
    """A row with its vendor key: the Vendor ID, or — for an export that names vendors only
    (the template's ``vendor_match`` = ``name``) — the vendor's name."""
    if template.get("vendor_match") == "name" and row.get("vendor_name"):
        return {**row, "vendor_id": str(row["vendor_name"]).strip()}
    return row


def _minutes_old(file: RemoteFile) -> int:
    return max(0, int((time.time() - file.modified) // 60))


def _overdue(ctx: Context, file: RemoteFile) -> bool:
    limit = int(ctx.source.connection.setting("complete_within_minutes", 60) or 60)
    return _minutes_old(file) >= limit


def _still_incomplete(ctx: Context, file: RemoteFile, why: str) -> Iterator[SourceRecord]:
    """Nothing while a file may still be on its way; once it is overdue, one waiting record
    that says so (the review queue takes it after the usual wait)."""
    if _overdue(ctx, file):
        yield SourceRecord(
            file.name,
            {"file": file.name, "incomplete": why, "minutes": _minutes_old(file)},
        )


def rows_of(ctx: Context, kind: str) -> Iterator[dict[str, Any]]:
    """Every row read whole from the complete exports of ``kind`` (vendors: read on each poll,
    they only complete what the invoice and payment exports say)."""
    template = ctx.source.template
    for file in ctx.source.complete_files(kind):
        try:
            export = ctx.source.read_export(kind, file)
        except NotFound:
            continue
        if export.unreadable or export.parsed.incomplete:
            logger.info("Stampli %s export %s left out: not readable whole yet", kind, file.name)
            continue
        yield from (keyed(plain(row.values), template) for row in export.parsed.rows)


def vendors(ctx: Context) -> dict[str, dict[str, Any]]:
    return {row["vendor_id"]: row for row in rows_of(ctx, "vendors")}


def _read(ctx: Context, kind: str, file: RemoteFile) -> ExportFile | None:
    try:
        return ctx.source.read_export(kind, file)
    except NotFound:
        return None  # gone since it was listed (archived by another worker): nothing to read


def _noted(ctx: Context, export: ExportFile, rows: int) -> None:
    file = export.file
    ctx.file_read(kind=export.kind, name=file.name, size=file.size, sha256=export.sha256, rows=rows)


def _whole_exports(ctx: Context, kind: str) -> Iterator[ExportFile | SourceRecord]:
    """The settled ``kind`` exports not processed before that read whole — or, in their place,
    the record of one that cannot be read (reported once: noted as processed, so it is skipped
    until it changes) or of one still cut that has stayed so too long."""
    for file in ctx.source.complete_files(kind):
        export = _read(ctx, kind, file)
        if export is None or ctx.file_processed(file.name, file.size, export.sha256):
            continue
        if export.unreadable:
            yield SourceRecord(file.name, {"file": file.name, "unreadable": export.unreadable})
            _noted(ctx, export, 0)
        elif export.parsed.incomplete:
            yield from _still_incomplete(ctx, file, f"{file.name}: {export.parsed.incomplete}")
        else:
            yield export


def file_records(
    ctx: Context, kind: str, record: Callable[[str, int, dict[str, Any]], SourceRecord]
) -> Iterator[SourceRecord]:
    """The records of every complete ``kind`` export not processed before: ``record(file name,
    line, row)`` for each row read whole, a record for each bad row, one for a file that is not
    an export (reported once: the file is then skipped until it changes), and one noting a file
    read whole; each file read is noted for the runner to record as processed.  A file whose
    last record is cut is left alone — reported only once it has stayed so too long."""
    template = ctx.source.template
    for export in _whole_exports(ctx, kind):
        if isinstance(export, SourceRecord):
            yield export
            continue
        file = export.file
        yield SourceRecord(file.name, {"file": file.name, "complete": len(export.parsed.rows)})
        for error in export.parsed.errors:
            yield SourceRecord(
                f"{file.name}:{error.line}", {"file": file.name, "bad_row": error.reason}
            )
        for row in export.parsed.rows:
            yield record(file.name, row.line, keyed(plain(row.values), template))
        _noted(ctx, export, len(export.parsed.rows) + len(export.parsed.errors))


InvoiceRecord = Callable[[str, int, dict[str, Any], list[dict[str, Any]], list[str]], SourceRecord]
HEAD_FIELDS = ("vendor_id", "vendor_name", "invoice_number", "invoice_date", "currency", "total")
LINE_FIELDS = ("line", "description", "amount", "gl_code", "cost_center")


def invoice_records(ctx: Context, record: InvoiceRecord) -> Iterator[SourceRecord]:
    """The invoices of every complete invoice export not processed before, each with its lines
    from the same export — the lines file with the same stamp (split layout) or its own rows
    (combined layout) — and the line rows that could not be read, with file and line number.

    ``record(file, line, invoice, lines, line errors)`` makes each invoice's record.  A split
    export whose lines file has not arrived (or is still being written) waits quietly, and is
    reported only once it has waited too long; both files are recorded as processed together.
    """
    template = ctx.source.template
    combined = template.get("layout") == "combined"
    lines_files: dict[str, RemoteFile | None] | None = None  # listed once, when first needed
    for export in _whole_exports(ctx, "invoices"):
        if isinstance(export, SourceRecord):
            yield export
            continue
        file = export.file
        lines_export = None
        if not combined:
            if lines_files is None:
                lines_files = {f.name: None for f in ctx.source.all_files("invoice_lines")}
                lines_files.update({f.name: f for f in ctx.source.complete_files("invoice_lines")})
            lines_export, why = _partner(ctx, file, lines_files)
            if lines_export is None:
                yield from _still_incomplete(ctx, file, why)
                continue
        yield SourceRecord(file.name, {"file": file.name, "complete": len(export.parsed.rows)})
        rows = [(row.line, keyed(plain(row.values), template)) for row in export.parsed.rows]
        if combined:
            yield from _combined(file.name, rows, export.parsed.errors, record)
        else:
            assert lines_export is not None
            yield from _split(file.name, rows, export.parsed.errors, lines_export, record)
            _noted(ctx, lines_export, len(lines_export.parsed.rows))
        _noted(ctx, export, len(export.parsed.rows) + len(export.parsed.errors))


def _partner(
    ctx: Context, file: RemoteFile, lines_files: dict[str, RemoteFile | None]
) -> tuple[ExportFile | None, str]:
    """The lines export of an invoices file, or why it cannot be used yet (``lines_files``: the
    lines files in the folder, the settled ones with their file)."""
    name = ctx.source.partner("invoices", file, "invoice_lines")
    if name is None:
        return None, (
            f"{file.name}: the template's file patterns do not say which lines file belongs to "
            "it (each pattern needs exactly one *)."
        )
    settled = lines_files.get(name)
    if settled is None:
        state = "is still being written" if name in lines_files else "has not arrived"
        return None, f"{file.name}: its lines file {name} {state}; nothing of it was posted."
    lines = _read(ctx, "invoice_lines", settled)
    if lines is None:
        return None, f"{file.name}: its lines file {name} has gone; nothing of it was posted."
    if lines.unreadable:
        return None, (
            f"{file.name}: its lines file {name} cannot be read ({lines.unreadable}); nothing "
            "of it was posted."
        )
    if lines.parsed.incomplete:
        return None, (
            f"{file.name}: its lines file {name} is not complete ({lines.parsed.incomplete}); "
            "nothing of it was posted."
        )
    return lines, ""


def _bad_rows(errors: list[RowError], file: str) -> dict[str, list[tuple[int, str]]]:
    """Row errors (line, what is wrong, naming the file) by the invoice they name ("" when no
    invoice id could be read)."""
    found: dict[str, list[tuple[int, str]]] = {}
    for error in errors:
        owner = str(error.cells.get("invoice_id") or "")
        found.setdefault(owner, []).append((error.line, error.reason))
    return found


def _told(file: str, reasons: list[tuple[int, str]]) -> list[str]:
    return [f"{file} {reason.rstrip('.')}" for _, reason in reasons]


def _split(
    name: str,
    rows: list[tuple[int, dict[str, Any]]],
    errors: list[RowError],
    lines_export: ExportFile,
    record: InvoiceRecord,
) -> Iterator[SourceRecord]:
    lines: dict[str, list[dict[str, Any]]] = {}
    for row in lines_export.parsed.rows:
        values = plain(row.values)
        lines.setdefault(str(values["invoice_id"]), []).append(values)
    bad_lines = _bad_rows(lines_export.parsed.errors, lines_export.file.name)
    for error in errors:
        yield SourceRecord(f"{name}:{error.line}", {"file": name, "bad_row": error.reason})
    lines_name = lines_export.file.name
    owners = {str(invoice["invoice_id"]) for _, invoice in rows}
    for owner, reasons in bad_lines.items():
        if owner not in owners:  # no invoice of this export to tell: a record of its own
            for line, reason in reasons:
                yield SourceRecord(f"{lines_name}:{line}", {"file": lines_name, "bad_row": reason})
    for line, invoice in rows:
        key = str(invoice["invoice_id"])
        told = _told(lines_name, bad_lines.get(key, []))
        yield record(name, line, invoice, lines.get(key, []), told)


def _combined(
    name: str,
    rows: list[tuple[int, dict[str, Any]]],
    errors: list[RowError],
    record: InvoiceRecord,
) -> Iterator[SourceRecord]:
    """Rows that each repeat their invoice's head: one invoice per invoice id, its lines in
    row order; rows of one invoice that disagree on its head are that invoice's problem."""
    groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for line, row in rows:
        groups.setdefault(str(row["invoice_id"]), []).append((line, row))
    bad = _bad_rows(errors, name)
    for owner, reasons in bad.items():
        if owner not in groups:
            for line, reason in reasons:
                yield SourceRecord(f"{name}:{line}", {"file": name, "bad_row": reason})
    for key, members in groups.items():
        first_line, head = members[0]
        problems = _told(name, bad.get(key, []))
        for line, row in members[1:]:
            differ = [f for f in HEAD_FIELDS if row.get(f) != head.get(f)]
            if differ:
                problems.append(
                    f"{name} line {line}: its {', '.join(differ)} differ from line {first_line}"
                )
        lines = [
            {
                "invoice_id": key,
                **{f: row.get(f) for f in LINE_FIELDS},
                "line": row.get("line") or str(n),
            }
            for n, (_, row) in enumerate(members, start=1)
        ]
        invoice = {k: v for k, v in head.items() if k not in LINE_FIELDS}
        yield record(name, first_line, invoice, lines, problems)


def unusable(data: dict[str, Any]) -> Flag | Wait | Skip | None:
    """What becomes of a record that stands for a file (read whole, unreadable, or still
    incomplete) or for a row that could not be read; None for a record of its own."""
    if "complete" in data:
        return Skip(f"{data['file']} was read whole ({data['complete']} rows).")
    if "unreadable" in data:
        return Flag(
            f"{data['file']} could not be read and nothing of it was posted: "
            f"{data['unreadable']} It is not read again until it changes."
        )
    if "incomplete" in data:
        return Wait(
            f"{data['incomplete'].rstrip('.')} — still so after {data['minutes']} minutes. Nothing "
            "of it was posted; it is read as soon as it is complete. If the upload stopped, ask "
            "for the export to be sent again."
        )
    if "bad_row" in data:
        return Flag(f"{data['file']}: {data['bad_row']} Nothing of that row was posted.")
    return None


def supplier_candidates(
    vendor_id: str, vendor_name: str, known: dict[str, Any], suppliers: dict[str, dict[str, str]]
) -> dict[str, Any]:
    """What the mapping may choose from: the external id's supplier, the suppliers of exactly
    that name, and the closest name (a suggestion only)."""
    external = str((known.get(vendor_id) or {}).get("external_id") or "")
    name = str(vendor_name or "").strip()
    by_name = {str(s.get("SUNM") or "").strip(): n for n, s in suppliers.items()}
    close = difflib.get_close_matches(name, list(by_name), n=1, cutoff=0.6)
    return {
        "external": external if external in suppliers else "",
        "exact": sorted(n for n, s in suppliers.items() if str(s.get("SUNM", "")).strip() == name),
        "suggestion": f"{by_name[close[0]]} {close[0]}" if close else "",
    }


def supplier_for(vendor_id: str, candidates: dict[str, Any], mappings: Mappings) -> str:
    """The CloudSuite supplier of a Stampli vendor ("" when none is certain)."""
    explicit = mappings.get("vendor", vendor_id)
    if explicit:
        return explicit
    if candidates.get("external"):
        return str(candidates["external"])
    exact = candidates.get("exact") or []
    return str(exact[0]) if len(exact) == 1 else ""


def no_supplier(vendor_id: str, vendor_name: str, candidates: dict[str, Any]) -> Flag:
    hint = candidates.get("suggestion")
    return Flag(
        f"Vendor {vendor_id} ({vendor_name}) has no CloudSuite supplier: add a vendor mapping "
        f"for {vendor_id}" + (f" (closest name: {hint} — please confirm)." if hint else "."),
        fix=("vendor", vendor_id),
    )


def archive_done(ctx: Context) -> None:
    """Move the exports this run processed to the end to the archive folder (when allowed)."""
    folder = ctx.source.remote_dir.rstrip("/")
    for done in ctx.done_files:
        ctx.source.archive(
            RemoteFile(done["name"], f"{folder}/{done['name']}", int(done["size"]), 0)
        )
