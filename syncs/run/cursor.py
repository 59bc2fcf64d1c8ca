"""A run's cursor: where its read starts, and how far it may move.

The cursor holds the watermark of the last committed record.  As outcomes are written the run
``observe``s each record (the cursor moves past it with the write) until one must be read
again: then it is ``hold``-ing, and moves no further in this run.  At the end the run
``commit``s how far it read (``ctx.mark_read``, or the run's start for a source that filters by
a key it does not return) — unless it holds.  A part of a split run moves nothing itself: the
run's last part to finish ``merge``s the parts' marks and commits for all of them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from syncs.flows import SourceRecord
from syncs.models import Cursor

if TYPE_CHECKING:
    from syncs.flows import Flow
    from syncs.models import Integration

logger = logging.getLogger(__name__)


class RunCursor:
    """The cursor of one run of ``flow`` for ``integration`` (``part``: it never moves)."""

    def __init__(self, integration: Integration, flow: Flow, *, part: bool = False) -> None:
        self.integration, self.flow, self.part = integration, flow, part
        self.held = False
        self._mark: str | None = None

    def start(self, now: datetime) -> int | str | None:
        """Where the read starts: the stored watermark less the overlap, within reach."""
        window = self.flow.window
        if window is None:
            return None
        row = Cursor.objects.filter(integration=self.integration, stream=self.flow.stream).first()
        override = self.flow.setting("overlap_seconds")
        overlap = timedelta(seconds=float(override)) if override not in (None, "") else None
        return window.start(row.value if row else "", now=now, overlap=overlap)

    def hold(self) -> None:
        """A record must be read again: the cursor moves no further in this run."""
        self.held = True

    def observe(self, record: SourceRecord) -> None:
        """A record is written: the cursor may move past it (with ``write``)."""
        if record.watermark and not self.held:
            self._mark = record.watermark

    def write(self) -> None:
        """Move past the records observed since the last write (inside their transaction)."""
        if self._mark is not None:
            self._move(self._mark)
            self._mark = None

    def passed(self, record: SourceRecord) -> None:
        """Move past one record now."""
        self.observe(record)
        self.write()

    def commit(self, *, read_mark: str | None, started: datetime) -> bool:
        """The run ended: move to how far it read, unless it holds.  Whether it moved on."""
        if self.held:
            return False
        window = self.flow.window
        if window is not None and window.from_run_start:
            self._move(str(window.unit.format(started)))
        elif read_mark is not None:
            self._move(read_mark)
        return True

    def merge(self, marks: Iterable[str | None]) -> str | None:
        """How far the parts of a split run read together: the furthest of their marks."""
        window, given = self.flow.window, [str(m) for m in marks if m]
        if window is None or not given:
            return None
        try:
            return max(given, key=lambda m: window.unit.parse(m))
        except ValueError:
            logger.warning("Parts read to marks of another unit: %s", given)
            return None

    def _move(self, value: Any) -> None:
        if self.part:
            return  # a part: its run moves the cursor once every part is done
        Cursor.objects.update_or_create(
            integration=self.integration, stream=self.flow.stream, defaults={"value": value}
        )
