"""A run's row and its progress: made when the run first needs it (a webhook delivery gets one
only when it writes something or fails), counted as outcomes are written, flushed every half
second for the admin's live view, and closed with its status.  A mixin of the runner."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditRecord
from syncs.dbretry import with_reconnect
from syncs.models import SyncRun
from syncs.run.heartbeat import Heartbeat, worker_name
from syncs.run.pipeline import PROGRESS_FLUSH_SECONDS

if TYPE_CHECKING:
    from syncs.models import Integration

logger = logging.getLogger(__name__)

COUNTED = ("synced", "skipped", "duplicate", "failed", "flagged")


class AlreadyRunning(Exception):
    """Another run of this integration is live (the database refused a second one)."""

    def __init__(self, live: SyncRun | None) -> None:
        super().__init__(f"Run #{live.pk if live else '?'} is still in progress.")
        self.live = live


@dataclass
class Counts:
    total: int | None = None
    done: int = 0
    synced: int = 0
    skipped: int = 0
    duplicate: int = 0
    failed: int = 0
    flagged: int = 0
    records: list[int] = field(default_factory=list)  # audit ids written before a run existed


class RunProgress:
    """The runner's row and counts (see the module docstring)."""

    integration: Integration
    parent: SyncRun | None
    trigger: str
    requested_by: str
    run_row: SyncRun | None
    counts: Counts
    on_progress: Callable[[SyncRun], None] | None
    _heartbeat: Heartbeat | None
    _last_flush: float

    def _ensure_run(self) -> SyncRun:
        if self.run_row is None:
            now = timezone.now()
            counts = self.counts
            try:
                with transaction.atomic():
                    self.run_row = SyncRun.objects.create(
                        integration=self.integration,
                        parent=self.parent,
                        trigger=self.trigger,
                        status=SyncRun.Status.RUNNING,
                        requested_by=self.requested_by,
                        worker=worker_name(),
                        started_at=now,
                        heartbeat_at=now,
                        total=counts.total,
                        done=counts.done,
                        **{name: getattr(counts, name) for name in COUNTED},
                    )
            except IntegrityError:  # one live run per integration, enforced by the database
                live = SyncRun.objects.filter(
                    integration=self.integration, status=SyncRun.Status.RUNNING
                ).first()
                raise AlreadyRunning(live) from None
            self._heartbeat = Heartbeat(
                self.run_row.pk, self.parent.pk if self.parent is not None else None
            )
            if counts.records:  # records of this delivery written before it needed a run
                AuditRecord.objects.filter(pk__in=counts.records).update(run=self.run_row)
                counts.records.clear()
        return self.run_row

    def _set_total(self, total: int) -> None:
        self.counts.total = total
        self._flush(force=True)

    def _count(self, status: str) -> None:
        counts = self.counts
        counts.done += 1
        setattr(counts, status, getattr(counts, status) + 1)
        self._flush()
        if self.on_progress is not None and self.run_row is not None:
            self.on_progress(self.run_row)

    def _sync_row(self) -> SyncRun | None:
        run = self.run_row
        if run is not None:
            run.total, run.done = self.counts.total, self.counts.done
            for name in COUNTED:
                setattr(run, name, getattr(self.counts, name))
        return run

    def _flush(self, force: bool = False) -> None:
        now = time.monotonic()
        run = self._sync_row()
        if run is None or (not force and now - self._last_flush < PROGRESS_FLUSH_SECONDS):
            return
        self._last_flush = now
        run.heartbeat_at = timezone.now()
        with_reconnect(
            lambda: run.save(update_fields=["total", "done", *COUNTED, "heartbeat_at"]),
            what=f"Progress of run {run.pk}",
        )

    def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None

    def _finish(self, run: SyncRun, error: str = "", warning: str = "") -> SyncRun:
        self._stop_heartbeat()
        self._sync_row()
        if error:
            run.status = SyncRun.Status.FAILED
        elif run.failed or run.flagged or warning:
            run.status = SyncRun.Status.PARTIAL
        else:
            run.status = SyncRun.Status.SUCCEEDED
        run.error_summary = (error or warning)[:4000]
        run.finished_at = timezone.now()
        run.heartbeat_at = run.finished_at
        if run.total is None:
            run.total = run.done
        with_reconnect(run.save, what=f"The end of run {run.pk}")
        logger.info(
            "Run %s of %s: %s (%s synced, %s duplicate, %s skipped, %s flagged, %s failed)",
            run.pk,
            self.integration.slug,
            run.status,
            run.synced,
            run.duplicate,
            run.skipped,
            run.flagged,
            run.failed,
        )
        return run
