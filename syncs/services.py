"""Services for integrations: runs, schedules, inbound webhook events, replay and review."""

from __future__ import annotations

import functools
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django_q.brokers import Broker, get_broker
from django_q.conf import Conf
from django_q.models import Schedule
from django_q.tasks import async_task

from audit.models import AuditRecord
from connections.models import Connection
from connections.providers.base import InboundEvent
from connections.redaction import Redactor
from connections.services import key_rotation_schedule_ensure, schedule_every
from syncs.alerts import alerts_schedule_ensure
from syncs.flows import FLOWS
from syncs.models import (
    Integration,
    SyncRun,
    WebhookEvent,
    WebhookProcessing,
    WorkRequest,
)
from syncs.run.progress import AlreadyRunning
from syncs.runner import Runner

logger = logging.getLogger(__name__)

RUN_TASK = "syncs.tasks.run_integration"


def runs_reap(*, integration: Integration | None = None) -> int:
    """Close runs whose worker stopped (no heartbeat for ``RUN_STALE_SECONDS``) as interrupted.

    Nothing they did is lost: each record's outcome was committed as it went, and the cursor
    never passed a record that was not, so the next run reads the rest again.
    """
    now = timezone.now()
    stale = SyncRun.objects.filter(status=SyncRun.Status.RUNNING).filter(
        # a split run waiting for its parts has no worker: only its parts beat its heartbeat,
        # and a part may wait in the queue a while before it starts
        Q(
            own_part_done_at=None,
            heartbeat_at__lt=now - timedelta(seconds=settings.MLC["RUN_STALE_SECONDS"]),
        )
        | Q(
            own_part_done_at__isnull=False,
            heartbeat_at__lt=now - timedelta(seconds=settings.MLC["PART_WAIT_SECONDS"]),
        )
    )
    if integration is not None:
        stale = stale.filter(integration=integration)
    return _interrupt(stale, "The worker running this stopped before it finished.")


def runs_interrupt(*, workers: Iterable[str]) -> int:
    """Close the live runs of these worker processes (``host:pid``), which are being stopped."""
    live = SyncRun.objects.filter(status=SyncRun.Status.RUNNING, worker__in=list(workers))
    return _interrupt(live, "The worker running this was stopped before it finished.")


def _interrupt(runs: QuerySet[SyncRun], why: str) -> int:
    count = runs.update(
        status=SyncRun.Status.INTERRUPTED,
        finished_at=timezone.now(),
        error_summary=f"{why} Everything it recorded stands; the next run reads the rest again.",
    )
    if count:
        logger.warning("Closed %d interrupted run(s): %s", count, why)
    return count


def integration_run(
    *,
    integration: Integration,
    trigger: str,
    requested_by: str = "",
    on_progress: Callable[[SyncRun], None] | None = None,
) -> SyncRun:
    """Run ``integration`` now, in this process.  A run already going makes this one a skip."""
    runs_reap(integration=integration)  # a dead worker's run must not block this one
    try:
        return Runner(
            integration, trigger=trigger, requested_by=requested_by, on_progress=on_progress
        ).run()
    except AlreadyRunning as busy:
        now = timezone.now()
        return SyncRun.objects.create(
            integration=integration,
            trigger=trigger,
            requested_by=requested_by,
            status=SyncRun.Status.SKIPPED,
            started_at=now,
            finished_at=now,
            total=0,
            error_summary=str(busy),
        )


def integration_run_part(
    *,
    integration: Integration,
    parent: SyncRun,
    part: dict[str, Any],
    window_start: int | str | None,
) -> SyncRun:
    """Run one part of ``parent`` (its records' key range) in this process.  It runs even if
    the parent is gone: what it posts goes through the ledger like any run."""
    return Runner(
        integration,
        trigger=SyncRun.Trigger.PART,
        requested_by=parent.requested_by,
        parent=parent,
        part=part,
    ).run(window_start=window_start)


def integration_enqueue_run(
    *, integration: Integration, requested_by: str = "", trigger: str = SyncRun.Trigger.MANUAL
) -> bool | None:
    """Record a run a person asked for, and queue it for a django-q2 worker once the current
    transaction commits.  Returns whether the queue took it (None: it is handed over when the
    transaction commits); a request the queue did not take is queued again by the reaper."""
    request = WorkRequest.objects.create(
        kind=WorkRequest.Kind.RUN,
        integration=integration,
        trigger=trigger,
        requested_by=requested_by[:150],
    )
    return _queue_on_commit(request, f"run {integration.slug}")


REQUEST_TASK = "syncs.tasks.do_work_request"


def _queue_on_commit(request: WorkRequest, name: str) -> bool | None:
    outcome: dict[str, bool] = {}
    transaction.on_commit(lambda: outcome.update(ok=_queue_request(request.pk, name)))
    return outcome.get("ok")  # set already when no transaction was open


def _queue_request(pk: int, name: str) -> bool:
    """Hand a recorded request to the queue; False when the queue cannot be reached."""
    try:
        async_task(REQUEST_TASK, pk, task_name=name[:100], broker=_broker())
    except Exception:
        logger.warning("The task queue cannot be reached: request %s waits for the reaper", pk)
        return False
    WorkRequest.objects.filter(pk=pk).update(
        queued_at=timezone.now(), queue_attempts=F("queue_attempts") + 1
    )
    return True


def work_request_do(*, request_id: int) -> list[SyncRun]:
    """Do one recorded request, once: the worker that marks it taken does it; a copy of it
    queued again finds it taken and does nothing."""
    now = timezone.now()
    taken = WorkRequest.objects.filter(pk=request_id, taken_at=None).update(taken_at=now)
    request = WorkRequest.objects.select_related("integration").filter(pk=request_id).first()
    if not taken or request is None:
        return []
    runs: list[SyncRun] = []
    try:
        if request.kind == WorkRequest.Kind.RUN and request.integration is not None:
            integration = Integration.objects.select_related("source", "target").get(
                pk=request.integration_id
            )
            runs = [
                integration_run(
                    integration=integration,
                    trigger=request.trigger or SyncRun.Trigger.MANUAL,
                    requested_by=request.requested_by,
                )
            ]
        elif request.kind == WorkRequest.Kind.REPLAY:
            runs = records_replay(
                record_ids=[int(pk) for pk in request.record_ids],
                requested_by=request.requested_by,
            )
    finally:
        WorkRequest.objects.filter(pk=request_id).update(finished_at=timezone.now())
    return runs


def work_requests_requeue() -> int:
    """Queue again the requests no worker has taken: the queue lost them (Redis restarted
    empty) or could not be reached.  Each waits ``REQUEST_REQUEUE_SECONDS`` after it was last
    handed over, doubling up to 15 minutes while no worker takes it."""
    now = timezone.now()
    base = settings.MLC["REQUEST_REQUEUE_SECONDS"]
    count = 0
    for request in WorkRequest.objects.filter(
        taken_at=None, requested_at__gte=now - timedelta(days=7)
    ).order_by("pk")[:500]:
        wait = min(base * 2 ** max(request.queue_attempts - 1, 0), 900)
        if request.queued_at is not None and request.queued_at > now - timedelta(seconds=wait):
            continue
        if not _queue_request(request.pk, f"{request.get_kind_display()} (again)"):
            break  # the queue is still out of reach: the next reap tries again
        count += 1
    if count:
        logger.info("Queued %d request(s) again that no worker had taken", count)
    return count


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
        fields.update(schedule_type=Schedule.CRON, cron=integration.schedule_cron, minutes=None)
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
    reaper_schedule_ensure()
    key_rotation_schedule_ensure()
    alerts_schedule_ensure()
    return count


REAPER_TASK = "syncs.tasks.reap"
REAPER_SCHEDULE = "mlc:reaper"


def reaper_schedule_ensure() -> Schedule:
    """The every-minute schedule that closes dead runs and requeues unfinished events."""
    return schedule_every(name=REAPER_SCHEDULE, func=REAPER_TASK, minutes=1)


WEBHOOK_TASK = "syncs.tasks.process_webhook_event"


def webhook_receive(
    *, connection: Connection, event: InboundEvent, raw_body: str, headers: dict[str, str]
) -> tuple[WebhookEvent, bool]:
    """Store a verified event (before it is acknowledged) and queue its processing.

    Returns (event, created).  A duplicate delivery is not processed again, unless an earlier
    processing failed, in which case it is queued again.
    """
    try:
        with transaction.atomic():
            row = WebhookEvent.objects.create(
                system=connection.kind,
                connection=connection,
                event_id=event.id,
                event_type=event.type,
                occurred_at=event.occurred_at,
                raw_body=raw_body,
                headers=headers,
                queued_at=timezone.now(),
            )
            if _queue_in_database():  # the task row commits with the event: one transaction
                try:
                    async_task(
                        WEBHOOK_TASK, row.pk, task_name=f"webhook {row.pk}", broker=_broker()
                    )
                except DatabaseError:
                    raise  # neither is stored: the sender is told to retry
                except Exception:
                    logger.warning("Event %s not queued: it waits for the reaper", row.pk)
        created = True
    except IntegrityError:
        row = WebhookEvent.objects.get(
            system=connection.kind, connection=connection, event_id=event.id
        )
        created = False
    if created:
        if not _queue_in_database():  # else it was queued with the event
            _enqueue_on_commit(row.pk)
    elif not row.processed and row.error and row.parked_at is None:
        webhook_enqueue(event=row)
    return row, created


def webhook_enqueue(*, event: WebhookEvent) -> None:
    """Queue processing of ``event`` once the current transaction commits."""
    WebhookEvent.objects.filter(pk=event.pk).update(queued_at=timezone.now())
    _enqueue_on_commit(event.pk)


def _enqueue_on_commit(pk: int) -> None:
    transaction.on_commit(lambda: _enqueue_event(pk))


def _enqueue_event(pk: int) -> None:
    """Queue an event's processing; with the queue out of reach the event stays stored and
    the reaper queues it again (``queued_at`` says when it was last tried)."""
    try:
        async_task(WEBHOOK_TASK, pk, task_name=f"webhook {pk}", broker=_broker())
    except Exception:
        logger.warning("The task queue cannot be reached: event %s waits for the reaper", pk)


def _queue_in_database() -> bool:
    """Whether the task queue is the django-q2 ORM broker on the default database (the
    embedded set-up), so a task can be queued in the transaction that stores its event (not
    when tasks run inline, as in tests: the event would be processed before it is stored)."""
    return Conf.ORM == "default" and not Conf.SYNC


@functools.cache
def _broker() -> Broker:
    """This process's django-q2 broker, made once: ``async_task`` would otherwise make one —
    and, for Redis, open a connection — for every event (the webhook edge's largest cost)."""
    return get_broker()


def webhook_events_requeue() -> int:
    """Queue again the events nobody finished processing: their task died, the database was
    down, or a target failed.  Each is retried after ``EVENT_REQUEUE_SECONDS``, then less and
    less often (doubling up to an hour) while it keeps failing."""
    now = timezone.now()
    base = settings.MLC["EVENT_REQUEUE_SECONDS"]
    limit = settings.MLC["EVENT_MAX_ATTEMPTS"]
    count = 0
    for event in WebhookEvent.objects.filter(
        processed=False, parked_at=None, queued_at__lt=now - timedelta(seconds=base)
    ).order_by("queued_at")[:500]:
        if event.attempts >= limit:
            webhook_event_park(event=event, limit=limit)
            continue
        wait = min(base * 2 ** max(event.attempts - 1, 0), 3600)
        if event.queued_at and event.queued_at > now - timedelta(seconds=wait):
            continue
        webhook_enqueue(event=event)
        count += 1
    if count:
        logger.info("Queued %d unprocessed webhook event(s) again", count)
    return count


def webhook_event_park(*, event: WebhookEvent, limit: int) -> None:
    """Stop retrying an event that failed ``limit`` times: it waits for a person, who reads
    why and processes it again once the cause is fixed."""
    last = event.error or "its processing did not finish"
    WebhookEvent.objects.filter(pk=event.pk, processed=False).update(
        parked_at=timezone.now(),
        error=(
            f"Stopped retrying after {event.attempts} tries. The last problem: {last} — fix "
            "the cause, then choose Process again."
        )[:4000],
    )
    logger.warning("Webhook event %s parked after %d tries", event.pk, event.attempts)


def engine_reap() -> dict[str, int]:
    """What the reaper schedule runs every minute: nothing is left stuck."""
    return {
        "runs_interrupted": runs_reap(),
        "events_requeued": webhook_events_requeue(),
        "requests_requeued": work_requests_requeue(),
    }


def webhook_consumers(*, event: WebhookEvent) -> list[Integration]:
    """The enabled integrations this event feeds (their flow reads its system and type)."""

    def consumes(integration: Integration) -> bool:
        flow = FLOWS.get(integration.flow)
        return (
            flow is not None
            and flow.webhook_system == event.system
            and event.event_type in flow.webhook_events
        )

    candidates = Integration.objects.filter(enabled=True, source=event.connection)
    return [i for i in candidates.select_related("source", "target") if consumes(i)]


def webhook_process(*, event: WebhookEvent) -> list[WebhookProcessing]:
    """Let every integration the event feeds handle it, each at most once successfully.

    An integration that already handled the event is not run again; one that failed is run
    again (alone) the next time the event is processed.
    """
    inbound = InboundEvent(
        id=event.event_id,
        type=event.event_type,
        occurred_at=event.occurred_at or event.received_at,
        payload=json.loads(event.raw_body),
    )
    results = []
    for integration in webhook_consumers(event=event):
        processing, _ = WebhookProcessing.objects.get_or_create(
            event=event, integration=integration
        )
        if processing.state == WebhookProcessing.State.DONE:
            results.append(processing)
            continue
        outcome = Runner(integration, trigger=SyncRun.Trigger.WEBHOOK).run_event(
            inbound, event_row=event
        )
        processing.state = (
            WebhookProcessing.State.DONE if outcome.ok else WebhookProcessing.State.FAILED
        )
        processing.run = outcome.run or processing.run
        processing.attempts += 1
        processing.error = outcome.error[:4000]
        processing.save()
        results.append(processing)
    problems = [
        f"{p.integration}: {p.error or 'failed'}"
        for p in results
        if p.state != WebhookProcessing.State.DONE
    ]
    redact = Redactor(event.connection.secret_values())
    WebhookEvent.objects.filter(pk=event.pk).update(
        processed=not problems,
        processed_at=timezone.now() if not problems else None,
        attempts=event.attempts + 1,
        error=redact.text("; ".join(problems))[:4000],
    )
    return results


def webhook_events_reprocess(*, event_ids: list[int]) -> int:
    """Queue stored events whose processing failed (or never ran) to be processed again."""
    events = list(WebhookEvent.objects.filter(pk__in=event_ids, processed=False))
    WebhookEvent.objects.filter(pk__in=[e.pk for e in events]).update(parked_at=None, attempts=0)
    for event in events:
        webhook_enqueue(event=event)
    return len(events)


REPLAYABLE = (AuditRecord.Status.FAILED, AuditRecord.Status.FLAGGED)

QUEUE_UNREACHABLE = (
    "The task queue cannot be reached right now. Your request is saved and starts by itself "
    "once the queue is back, usually within a few minutes; there is no need to ask again."
)


def records_replayable(*, record_ids: Iterable[int]) -> list[AuditRecord]:
    """The records among ``record_ids`` that can be replayed (failed/flagged, unresolved)."""
    return list(
        AuditRecord.objects.filter(
            pk__in=list(record_ids), status__in=REPLAYABLE, resolved_at=None
        ).select_related("integration", "integration__source", "integration__target")
    )


def records_replay(*, record_ids: Iterable[int], requested_by: str = "") -> list[SyncRun]:
    """Replay records now: one replay run per integration; ineligible records are ignored."""
    by_integration: dict[int, list[AuditRecord]] = defaultdict(list)
    for record in records_replayable(record_ids=record_ids):
        by_integration[record.integration_id].append(record)
    runs = []
    for records in by_integration.values():
        runner = Runner(
            records[0].integration, trigger=SyncRun.Trigger.REPLAY, requested_by=requested_by
        )
        runs.append(runner.replay(sorted(records, key=lambda r: r.pk)))
        _webhooks_settled_by_replay(records)
    return runs


def _webhooks_settled_by_replay(originals: list[AuditRecord]) -> None:
    """Webhook deliveries of a record a replay has now posted are handled: their processing
    for that integration is done, and each event is processed once every integration is."""
    posted = (AuditRecord.Status.SYNCED, AuditRecord.Status.DUPLICATE)
    for original in originals:
        if not AuditRecord.objects.filter(replay_of=original, status__in=posted).exists():
            continue
        event_ids = set(
            AuditRecord.objects.filter(
                integration_id=original.integration_id,
                stream=original.stream,
                source_key=original.source_key,
            )
            .exclude(event=None)
            .values_list("event_id", flat=True)
        )
        if not event_ids:
            continue
        WebhookProcessing.objects.filter(
            event_id__in=event_ids, integration_id=original.integration_id
        ).exclude(state=WebhookProcessing.State.DONE).update(
            state=WebhookProcessing.State.DONE, error=""
        )
        for event_id in event_ids:
            if (
                not WebhookProcessing.objects.filter(event_id=event_id)
                .exclude(state=WebhookProcessing.State.DONE)
                .exists()
            ):
                WebhookEvent.objects.filter(pk=event_id, processed=False).update(
                    processed=True, processed_at=timezone.now(), error=""
                )


def records_enqueue_replay(*, record_ids: Iterable[int], requested_by: str = "") -> int:
    """Record a replay of the eligible records and queue it for a worker; returns how many
    were asked for.  The request outlives a queue that loses it (``work_requests_requeue``)."""
    return records_request_replay(record_ids=record_ids, requested_by=requested_by)[0]


def records_request_replay(
    *, record_ids: Iterable[int], requested_by: str = ""
) -> tuple[int, bool | None]:
    """As ``records_enqueue_replay``, with whether the queue took the request (None: it is
    handed over when the current transaction commits)."""
    eligible = [r.pk for r in records_replayable(record_ids=record_ids)]
    if not eligible:
        return 0, True
    AuditRecord.objects.filter(pk__in=eligible).update(replay_requested_at=timezone.now())
    request = WorkRequest.objects.create(
        kind=WorkRequest.Kind.REPLAY, record_ids=eligible, requested_by=requested_by[:150]
    )
    return len(eligible), _queue_on_commit(request, f"replay {len(eligible)} record(s)")


def review_siblings(*, record_ids: Iterable[int]) -> list[int]:
    """The open review rows of the same records as ``record_ids`` (one queue item is every
    open failure or flag of one record of one integration, however many runs met it)."""
    keys = set(
        AuditRecord.objects.filter(pk__in=list(record_ids)).values_list(
            "integration_id", "stream", "source_key"
        )
    )
    ids: set[int] = set(record_ids)
    for integration_id, stream, source_key in keys:
        ids.update(
            AuditRecord.objects.filter(
                integration_id=integration_id,
                stream=stream,
                source_key=source_key,
                status__in=REPLAYABLE,
                resolved_at=None,
            ).values_list("pk", flat=True)
        )
    return sorted(ids)


def records_waiting_on(*, integration: Integration, kind: str, source_value: str) -> list[int]:
    """The open flagged records that a mapping of ``kind`` for ``source_value`` would settle
    (the latest of each record)."""
    latest: dict[tuple[str, str], int] = {}
    for pk, stream, key in AuditRecord.objects.filter(
        integration=integration,
        status=AuditRecord.Status.FLAGGED,
        resolved_at=None,
        fix_kind=kind,
        fix_value=source_value,
    ).values_list("pk", "stream", "source_key"):
        latest[(stream, key)] = max(pk, latest.get((stream, key), 0))
    return sorted(latest.values())


def record_state(*, record: AuditRecord) -> dict[str, Any]:
    """Where a review item stands, for its page to show without a reload."""
    record.refresh_from_db()
    replay = record.replays.order_by("-pk").first()
    if record.resolved_at is not None:
        if replay is not None and replay.status == AuditRecord.Status.SYNCED:
            state, label = "done", f"Replayed and synced as record #{replay.pk}"
        elif replay is not None and replay.status in REPLAYABLE:
            state, label = "again", f"Replayed, but it needs attention again (record #{replay.pk})"
        else:
            state, label = "done", record.resolution or "Resolved"
    elif record.replay_requested_at is not None:
        state, label = "queued", "Replay queued: a worker is on it"
    elif replay is not None and replay.status == AuditRecord.Status.FAILED:
        state, label = (
            "waiting",
            f"The last replay could not finish ({replay.reason[:200]}); the item is as it "
            "was: replay it again later.",
        )
    else:
        state, label = "waiting", record.get_status_display()
    live = record_live(record=record) if record.resolved_at is not None else None
    return {
        "state": state,
        "label": label,
        "resolved": record.resolved_at is not None,
        "replay_id": replay.pk if replay is not None else None,
        "replay_status": replay.status if replay is not None else None,
        "live_id": live.pk if live is not None else None,
    }


def record_live(*, record: AuditRecord) -> AuditRecord | None:
    """The open row that now stands for ``record``'s item (a replay that met the problem
    again, or a later run's), if ``record`` itself is resolved and the item is still open."""
    if record.resolved_at is None:
        return None
    return (
        AuditRecord.objects.filter(
            integration_id=record.integration_id,
            stream=record.stream,
            source_key=record.source_key,
            status__in=REPLAYABLE,
            resolved_at=None,
        )
        .order_by("-pk")
        .first()
    )


def records_dismiss(*, record_ids: Iterable[int], requested_by: str, note: str) -> int:
    """Take records out of the review queue without replaying them (the note says why); every
    open row of the same record goes with them."""
    return AuditRecord.objects.filter(
        pk__in=review_siblings(record_ids=record_ids), status__in=REPLAYABLE, resolved_at=None
    ).update(
        resolved_at=timezone.now(),
        resolved_by=requested_by[:150],
        resolution=f"Dismissed: {note}"[:255],
    )
