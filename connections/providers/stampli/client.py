"""Stampli's SFTP exports: complete files of a kind, read and parsed by the connection's
template, and archived once processed (when the connection allows it).

A file is *settled* when a ``NAME.done`` marker stands beside it, or when it has not changed for
the connection's *settle* time; a file still being written is left for the next poll.  A settled
file is still incomplete when its last record is cut (``Parsed.incomplete``): the flows wait for
it.  Each file read comes with its SHA-256, so a processed file is recognised by name, size and
checksum.  Split exports pair an invoices file with the lines file whose name carries the same
stamp: what the patterns' wildcards match (``invoices_0800.csv`` ↔ ``invoice_lines_0800.csv``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from connections.providers.errors import NotFound
from connections.providers.sftp import RemoteFile, SftpProvider
from connections.providers.stampli.credentials import SPEC
from connections.providers.stampli.csvfile import (
    FIELDS,
    NotCsv,
    Parsed,
    Reader,
    field_types,
    template_with,
)

logger = logging.getLogger(__name__)

DONE = ".done"


@dataclass(frozen=True)
class ExportFile:
    """A settled export file, read: what it is, its checksum, and its rows — or why it cannot
    be read at all (``unreadable``: not such a CSV; nothing of it is used)."""

    file: RemoteFile
    kind: str
    sha256: str
    parsed: Parsed
    unreadable: str = ""


def stamp(pattern: str, name: str) -> str | None:
    """What the wildcards of ``pattern`` match in ``name`` (None: it does not match)."""
    parts = []
    for piece in re.split(r"([*?])", pattern):
        if piece == "*":
            parts.append("(.*?)")
        elif piece == "?":
            parts.append("(.)")
        else:
            parts.append(re.escape(piece))
    found = re.fullmatch("".join(parts), name)
    return "".join(found.groups()) if found else None


class StampliSftp(SftpProvider):
    """One Stampli customer's SFTP outbound folder."""

    kind = "stampli"
    label = "Stampli (SFTP)"
    short_label = "Stampli"
    spec = SPEC
    # The CSV template is set up by form (connections.csvsetup): the fields of each kind of
    # file, the template merged over the default, and a reader of one kind.
    template_kinds = FIELDS
    template_with = staticmethod(template_with)
    template_reader = staticmethod(Reader)
    template_field_types = staticmethod(field_types)

    @property
    def template(self) -> dict[str, Any]:
        return template_with(self.connection.setting("csv_template") or {})

    def complete_files(self, kind: str, *, now: float | None = None) -> list[RemoteFile]:
        """The complete files of ``kind`` in the export folder, oldest name first."""
        if kind not in FIELDS:
            raise ValueError(f"unknown Stampli file kind {kind!r}")
        pattern = self.template["files"][kind]["pattern"]
        files = self.list_files()
        markers = {f.name[: -len(DONE)] for f in files if f.name.endswith(DONE)}
        settle = int(self.connection.setting("settle_seconds", 60))
        now = time.time() if now is None else now
        return [
            f
            for f in files
            if fnmatch.fnmatch(f.name, pattern)
            and not f.name.endswith(DONE)
            and (f.name in markers or f.modified <= now - settle)
        ]

    def all_files(self, kind: str) -> list[RemoteFile]:
        """Every file of ``kind`` in the export folder, settled or not."""
        pattern = self.template["files"][kind]["pattern"]
        return [
            f
            for f in self.list_files()
            if fnmatch.fnmatch(f.name, pattern) and not f.name.endswith(DONE)
        ]

    def partner(self, kind: str, file: RemoteFile, other: str) -> str | None:
        """The name the ``other`` kind's file of the same export as ``file`` has."""
        files = self.template["files"]
        mark = stamp(files[kind]["pattern"], file.name)
        if mark is None:
            return None
        wildcards = re.split(r"[*?]", files[other]["pattern"])
        if len(wildcards) == 2:  # one wildcard: its stamp goes in its place
            return wildcards[0] + mark + wildcards[1]
        return None

    def read_export(self, kind: str, file: RemoteFile) -> ExportFile:
        """Read and parse one file; one that is not an export of this kind comes back with
        the reason (``unreadable``) and no rows — nothing of such a file is used."""
        content = self.read_file(file.path)
        digest = hashlib.sha256(content).hexdigest()
        try:
            parsed = Reader(self.template, kind).parse(content)
        except NotCsv as exc:
            return ExportFile(file, kind, digest, Parsed(kind), unreadable=str(exc))
        return ExportFile(file, kind, digest, parsed)

    def archive(self, file: RemoteFile) -> str | None:
        """Move a processed file (and its marker) to the archive folder, when allowed."""
        if not self.connection.setting("archive_files", False):
            return None
        folder = str(self.connection.setting("archive_dir") or "/archive")
        moved = self.move_file(file.path, folder)
        try:
            self.move_file(file.path + DONE, folder)
        except NotFound:  # no marker beside it: nothing more to move
            logger.debug("No marker for %s", file.path)
        return moved
