"""A run split across workers: its parts, and who completes it.

``queue`` hands the parts after the first to django-q2 workers (the run's own worker takes the
first).  Nobody waits: when the run's own part ends it records how far it read and whether it
must read again, and gives up its worker; whichever finishes last — the run's own part or one
of the others — ``complete_if_last`` adds up what the parts did, moves the cursor unless some
part must read again, and closes the run.  A part whose worker dies leaves the run to the
reaper (``PART_WAIT_SECONDS`` without any part beating its heartbeat): interrupted, the cursor
unmoved, so the next run reads the window again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from audit.models import AuditRecord
from syncs.flows import FlowContext, get_flow
from syncs.models import SyncRun
from syncs.run.cursor import RunCursor

logger = logging.getLogger(__name__)

PART_TASK = "syncs.tasks.run_part"
COUNTED = ("synced", "skipped", "duplicate", "failed", "flagged")


def queue(
    *,
    run: SyncRun,
    ctx: FlowContext,
    parts: list[dict[str, Any]],
    run_here: Callable[[dict[str, Any]], Any],
) -> None:
    """Queue ``parts[1:]`` for django-q2 workers (``run_here``: a part the queue would not
    take runs in this worker); the run counts them first, so none completes it early."""
    run.parts_expected = len(parts) - 1
    run.save(update_fields=["parts_expected"])
    slug = run.integration.slug
    for n, part in enumerate(parts[1:], start=2):
        try:
            async_task(
                PART_TASK,
                run.integration_id,
                run.pk,
                part,
                ctx.window_start,
                task_name=f"run {slug} part {n}/{len(parts)}"[:100],
            )
        except Exception:  # the queue is out of reach: this worker runs the part itself
            logger.warning("Run %s: part %d not queued; run here instead", run.pk, n)
            run_here(part)
    logger.info("Run %s of %s split in %d parts", run.pk, slug, len(parts))


def own_part_done(run: SyncRun, *, read_mark: str | None, held: bool, warning: str) -> None:
    """The run's own part has ended: what it read and whether it holds are kept on the run,
    which now waits for its other parts without a worker."""
    run.read_mark = str(read_mark or "")[:100]
    run.cursor_held = held
    run.own_part_done_at = timezone.now()
    run.heartbeat_at = run.own_part_done_at
    run.worker = ""  # no worker holds it: stopping this one does not interrupt it
    run.error_summary = warning[:4000]
    run.save()


def complete_if_last(run_id: int) -> SyncRun | None:
    """Complete the split run ``run_id`` if every part of it has finished (its own included);
    None while one has not (or it is complete already)."""
    with transaction.atomic():
        run = SyncRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status != SyncRun.Status.RUNNING or run.own_part_done_at is None:
            return None
        expected = run.parts_expected or 0
        parts = list(SyncRun.objects.filter(parent=run).order_by("pk"))
        if len(parts) < expected or any(p.status == SyncRun.Status.RUNNING for p in parts):
            return None
        _add_up(run, parts)
        ok = (SyncRun.Status.SUCCEEDED, SyncRun.Status.PARTIAL)
        unfinished = expected - len([p for p in parts if p.status in ok])
        again = AuditRecord.objects.filter(
            run__in=parts, status=AuditRecord.Status.FAILED, retryable=True
        ).exists()
        cursor = RunCursor(run.integration, _flow(run))
        if not (run.cursor_held or unfinished or again):
            marks = [run.read_mark, *(p.read_mark for p in parts)]
            cursor.commit(read_mark=cursor.merge(marks), started=run.started_at)
        warnings = [run.error_summary] if run.error_summary else []
        if unfinished:
            numbers = ", ".join(f"#{p.pk}" for p in parts)
            warnings.append(
                f"{unfinished} of the {expected + 1} parts of this run did not finish "
                f"(runs {numbers or 'not started'}); the next run reads their records again."
            )
        run.error_summary = " ".join(warnings)[:4000]
        run.status = (
            SyncRun.Status.PARTIAL
            if run.failed or run.flagged or warnings
            else SyncRun.Status.SUCCEEDED
        )
        run.finished_at = run.heartbeat_at = timezone.now()
        run.save()
    logger.info("Run %s completed by its last part: %s", run.pk, run.status)
    return run


def _add_up(run: SyncRun, parts: list[SyncRun]) -> None:
    for part in parts:
        run.done += part.done
        for name in COUNTED:
            setattr(run, name, getattr(run, name) + getattr(part, name))
    if run.total is not None:
        run.total += sum(p.total or 0 for p in parts)
    else:
        run.total = run.done


def _flow(run: SyncRun) -> Any:
    """The run's flow, for its read window (its settings if they are valid)."""
    flow = get_flow(run.integration.flow)
    try:
        return flow(options=run.integration.settings or {})
    except ValidationError:
        return flow()
