"""Services for integrations: runs, schedules, and inbound webhook events."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

from connections.models import Connection
from connections.redaction import Redactor
from syncs.flows import FLOWS
from syncs.models import FieldMapping, Integration, SyncRun, WebhookEvent
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


WEBHOOK_TASK = "syncs.tasks.process_webhook_event"


def webhook_receive(
    *,
    provider: str,
    connection: Connection,
    event_id: str,
    event_type: str,
    raw_body: str,
    headers: dict[str, str],
) -> tuple[WebhookEvent, bool]:
    """Store a verified event (before it is acknowledged) and queue its processing.

    Returns (event, created).  A duplicate delivery is not processed again, unless the first
    processing failed, in which case it is queued again.
    """
    try:
        with transaction.atomic():
            event = WebhookEvent.objects.create(
                provider=provider,
                connection=connection,
                event_id=event_id,
                event_type=event_type,
                raw_body=raw_body,
                headers=headers,
                signature_valid=True,
                seen_via="webhook",
            )
        created = True
    except IntegrityError:
        event = WebhookEvent.objects.get(
            provider=provider, connection=connection, event_id=event_id, signature_valid=True
        )
        created = False
    if created or (not event.processed and event.error):
        webhook_enqueue(event=event)
    return event, created


def webhook_enqueue(*, event: WebhookEvent) -> None:
    """Queue processing of ``event`` once the current transaction commits."""
    pk = event.pk
    transaction.on_commit(lambda: async_task(WEBHOOK_TASK, pk, task_name=f"webhook {pk}"))


def webhook_process(*, event: WebhookEvent) -> list[SyncRun]:
    """Run every enabled integration fed by this event's provider and connection."""
    payload = json.loads(event.raw_body)

    def consumes(integration: Integration) -> bool:
        flow = FLOWS.get(integration.flow)
        return (
            flow is not None
            and flow.webhook_provider == event.provider
            and event.event_type in flow.webhook_events
        )

    candidates = Integration.objects.filter(enabled=True, source=event.connection)
    integrations = [i for i in candidates.select_related("source", "target") if consumes(i)]
    runs, problems = [], []
    for integration in integrations:
        run = Runner(integration, trigger=SyncRun.Trigger.WEBHOOK).run(event=payload)
        runs.append(run)
        if run.status == SyncRun.Status.FAILED or run.failed:
            problems.append(f"run #{run.pk}: {run.error_summary or f'{run.failed} failed'}")
    redact = Redactor(event.connection.secret_values())
    WebhookEvent.objects.filter(pk=event.pk).update(
        processed=not problems,
        processed_at=timezone.now() if not problems else None,
        attempts=event.attempts + 1,
        error=redact.text("; ".join(problems))[:4000],
    )
    return runs


def webhook_events_reprocess(*, event_ids: list[int]) -> int:
    """Queue stored events whose processing failed (or never ran) to be processed again."""
    events = list(
        WebhookEvent.objects.filter(pk__in=event_ids, processed=False, signature_valid=True)
    )
    for event in events:
        webhook_enqueue(event=event)
    return len(events)


def gl_mappings_check(*, integration: Integration) -> tuple[list[str], list[str]]:
    """Compare the integration's GL account mappings with the CloudSuite chart (CRS630MI).

    Returns (known, unknown) as readable lines; only the first accounting dimension (AIT1) is
    checked, since the chart lists accounts by dimension 1.
    """
    from connections.providers.registry import client_for

    m3_side = next(
        (c for c in (integration.target, integration.source) if c.kind == Connection.Kind.INFOR_M3),
        None,
    )
    if m3_side is None:
        return [], ["This integration does not post to CloudSuite."]
    chart = {a["AITM"]: a.get("TX40", "") for a in client_for(m3_side).list_accounts()}
    known, unknown = [], []
    for mapping in integration.mappings.filter(kind=FieldMapping.Kind.GL_ACCOUNT):
        account = mapping.target_value.split(";")[0].strip()
        if account in chart:
            known.append(f"{mapping.source_value} → {account} ({chart[account]})")
        else:
            unknown.append(f"{mapping.source_value} → {account}: not in the CloudSuite chart")
    return known, unknown
