"""Services for integrations: run now, enqueue a run, keep the django-q2 schedule in step."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

from syncs.models import Integration, SyncRun
from syncs.runner import Runner

logger = logging.getLogger(__name__)

RUN_TASK = "syncs.tasks.run_integration"


def integration_live_run(*, integration: Integration) -> SyncRun | None:
    """A run of ``integration`` that is still going (heartbeat within the stale window)."""
    fresh_after = timezone.now() - timedelta(seconds=settings.MLC["RUN_STALE_SECONDS"])
    return (
        SyncRun.objects.filter(
            integration=integration, status=SyncRun.Status.RUNNING, heartbeat_at__gte=fresh_after
        )
        .exclude(trigger=SyncRun.Trigger.REPLAY)
        .first()
    )


def integration_run(*, integration: Integration, trigger: str, requested_by: str = "") -> SyncRun:
    """Run ``integration`` now, in this process.  A run already going makes this one a skip."""
    live = integration_live_run(integration=integration)
    if live is not None:
        now = timezone.now()
        return SyncRun.objects.create(
            integration=integration,
            trigger=trigger,
            requested_by=requested_by,
            status=SyncRun.Status.SKIPPED,
            started_at=now,
            finished_at=now,
            total=0,
            error_summary=f"Run #{live.pk} was still in progress.",
        )
    return Runner(integration, trigger=trigger, requested_by=requested_by).run()


def integration_enqueue_run(
    *, integration: Integration, requested_by: str = "", trigger: str = SyncRun.Trigger.MANUAL
) -> None:
    """Queue a run for a django-q2 worker once the current transaction commits."""
    transaction.on_commit(
        lambda: async_task(
            RUN_TASK,
            integration.pk,
            trigger,
            requested_by,
            task_name=f"run {integration.slug}"[:100],
        )
    )


def integration_sync_schedule(*, integration: Integration) -> Schedule | None:
    """Create, update or delete the django-q2 Schedule that runs ``integration``."""
    wanted = integration.enabled and integration.schedule_type != Integration.ScheduleType.OFF
    schedule = integration.q_schedule
    if not wanted:
        if schedule is not None:
            Integration.objects.filter(pk=integration.pk).update(q_schedule=None)
            schedule.delete()
            integration.q_schedule = None
        return None
    fields = {
        "name": f"integration:{integration.pk}",
        "func": RUN_TASK,
        "args": repr((integration.pk, SyncRun.Trigger.SCHEDULE.value)),  # literal_eval-able
        "repeats": -1,
    }
    if integration.schedule_type == Integration.ScheduleType.INTERVAL:
        fields.update(
            schedule_type=Schedule.MINUTES, minutes=integration.interval_minutes, cron=None
        )
    else:
        fields.update(schedule_type=Schedule.CRON, cron=integration.cron, minutes=None)
    if schedule is None:
        schedule = Schedule.objects.filter(name=fields["name"]).first()
    if schedule is None:
        schedule = Schedule(next_run=timezone.now())
    changed = any(getattr(schedule, k) != v for k, v in fields.items())
    for key, value in fields.items():
        setattr(schedule, key, value)
    if changed and schedule.pk:
        schedule.next_run = timezone.now()
    schedule.save()
    if integration.q_schedule_id != schedule.pk:
        Integration.objects.filter(pk=integration.pk).update(q_schedule=schedule)
        integration.q_schedule = schedule
    return schedule


def schedules_reconcile() -> int:
    """Bring every integration's schedule in step (after a restore or a manual edit)."""
    count = 0
    for integration in Integration.objects.select_related("q_schedule"):
        integration_sync_schedule(integration=integration)
        count += 1
    known = {f"integration:{pk}" for pk in Integration.objects.values_list("pk", flat=True)}
    Schedule.objects.filter(func=RUN_TASK).exclude(name__in=known).delete()
    return count
