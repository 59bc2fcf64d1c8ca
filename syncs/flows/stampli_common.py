"""What the Stampli flows share: reading the complete exports of a kind not processed before
(each bad row a record of its own, a file that is not an export one failing record), the vendors
export, and mapping a Stampli vendor to a CloudSuite supplier — a ``vendor`` mapping, else the
vendor's external id when CloudSuite has that supplier, else one supplier of exactly that name;
the closest name is only ever a suggestion for the reviewer."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from connections.providers.errors import NotFound, Rejected
from connections.providers.infor_m3 import InforM3
from connections.providers.sftp import RemoteFile
from connections.providers.stampli import StampliSftp
from syncs.flows.base import Flag, FlowContext, Mappings, SourceRecord

logger = logging.getLogger(__name__)

Context = FlowContext[StampliSftp, InforM3]


def plain(values: dict[str, Any]) -> dict[str, Any]:
    """A parsed row as JSON can keep it (amounts as exact text)."""
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in values.items()}


def rows_of(ctx: Context, kind: str) -> Iterator[dict[str, Any]]:
    """Every row read whole from the complete exports of ``kind`` (lines, vendors: read on
    each poll, they only complete what the invoice and payment exports say)."""
    for file in ctx.source.complete_files(kind):
        try:
            export = ctx.source.read_export(kind, file)
        except Rejected:
            logger.warning("Stampli %s export %s is not an export: left out", kind, file.name)
            continue
        yield from (plain(row.values) for row in export.parsed.rows)


def vendors(ctx: Context) -> dict[str, dict[str, Any]]:
    return {row["vendor_id"]: row for row in rows_of(ctx, "vendors")}


def file_records(
    ctx: Context, kind: str, record: Callable[[str, int, dict[str, Any]], SourceRecord]
) -> Iterator[SourceRecord]:
    """The records of every complete ``kind`` export not processed before: ``record(file name,
    line, row)`` for each row read whole, a record for each bad row, one for a file that is not
    an export; each file read is noted for the runner to record as processed."""
    for file in ctx.source.complete_files(kind):
        try:
            export = ctx.source.read_export(kind, file)
        except NotFound:
            continue  # gone since it was listed (archived by another worker): nothing to read
        except Rejected as exc:  # a file that is not an export fails alone, and is kept
            yield SourceRecord(file.name, {"file": file.name, "unreadable": exc.message})
            continue
        if ctx.file_processed(file.name, file.size, export.sha256):
            continue
        for error in export.parsed.errors:
            yield SourceRecord(
                f"{file.name}:{error.line}", {"file": file.name, "bad_row": error.reason}
            )
        for row in export.parsed.rows:
            yield record(file.name, row.line, plain(row.values))
        ctx.file_read(
            kind=kind,
            name=file.name,
            size=file.size,
            sha256=export.sha256,
            rows=len(export.parsed.rows) + len(export.parsed.errors),
        )


def unusable(data: dict[str, Any]) -> Flag | None:
    """The flag of a record that stands for a file or a row that could not be read."""
    if "unreadable" in data:
        return Flag(
            f"The file could not be read and nothing of it was posted: {data['unreadable']}"
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
