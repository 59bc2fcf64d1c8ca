"""Services for the audit trail: replay failed or flagged records, dismiss review items."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from audit.models import AuditRecord
from syncs.models import SyncRun

logger = logging.getLogger(__name__)

REPLAYABLE = (AuditRecord.Status.FAILED, AuditRecord.Status.FLAGGED)


def records_replayable(*, record_ids: Iterable[int]) -> list[AuditRecord]:
    """The records among ``record_ids`` that can be replayed (failed/flagged, unresolved)."""
    return list(
        AuditRecord.objects.filter(
            pk__in=list(record_ids), status__in=REPLAYABLE, resolved_at=None
        ).select_related("integration", "integration__source", "integration__target")
    )


def records_replay(*, record_ids: Iterable[int], requested_by: str = "") -> list[SyncRun]:
    """Replay records now: one replay run per integration; ineligible records are ignored."""
    from syncs.runner import Runner

    by_integration: dict[int, list[AuditRecord]] = defaultdict(list)
    for record in records_replayable(record_ids=record_ids):
        by_integration[record.integration_id].append(record)
    runs = []
    for records in by_integration.values():
        runner = Runner(
            records[0].integration, trigger=SyncRun.Trigger.REPLAY, requested_by=requested_by
        )
        runs.append(runner.replay(sorted(records, key=lambda r: r.pk)))
    return runs


def records_enqueue_replay(*, record_ids: Iterable[int], requested_by: str = "") -> int:
    """Queue a replay of the eligible records for a worker; returns how many were queued."""
    eligible = [r.pk for r in records_replayable(record_ids=record_ids)]
    if eligible:
        transaction.on_commit(
            lambda: async_task(
                "syncs.tasks.replay_records",
                eligible,
                requested_by,
                task_name=f"replay {len(eligible)} record(s)",
            )
        )
    return len(eligible)


def records_dismiss(*, record_ids: Iterable[int], requested_by: str, note: str) -> int:
    """Take records out of the review queue without replaying them (the note says why)."""
    return AuditRecord.objects.filter(
        pk__in=list(record_ids), status__in=REPLAYABLE, resolved_at=None
    ).update(
        resolved_at=timezone.now(),
        resolved_by=requested_by[:150],
        resolution=f"Dismissed: {note}"[:255],
    )
