"""django-q2: schedules follow integrations; tasks and services run and enqueue runs."""

from __future__ import annotations

import ast
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.utils import timezone
from django_q.models import Schedule

from syncs import tasks
from syncs.models import Integration, SyncRun, WebhookEvent
from syncs.services import integration_enqueue_run, integration_run, schedules_reconcile
from tests.syncs.testflow import SOURCE


def save(integration: Integration, capture: Any, **changes: Any) -> Integration:
    for key, value in changes.items():
        setattr(integration, key, value)
    integration.full_clean()
    with capture(execute=True):
        integration.save()
    integration.refresh_from_db()
    return integration


ROW = {"id": "ch_1", "ts": "2026-11-01", "invoice": "I", "amount_cents": 1, "account": "x"}


RUNS = Schedule.objects.filter(func="syncs.tasks.run_integration")


def test_schedule_follows_the_integration(
    integration: Integration, django_capture_on_commit_callbacks: Any
) -> None:
    capture = django_capture_on_commit_callbacks
    save(integration, capture, schedule_type="interval", interval_minutes=15)
    schedule = integration.q_schedule
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (
        "syncs.tasks.run_integration",
        Schedule.MINUTES,
        15,
    )
    assert ast.literal_eval(schedule.args) == (integration.pk, "schedule")  # as django-q2 reads it

    save(integration, capture, schedule_type="cron", cron="*/10 6-20 * * 1-5")
    schedule.refresh_from_db()
    assert (schedule.schedule_type, schedule.cron) == (Schedule.CRON, "*/10 6-20 * * 1-5")
    assert RUNS.count() == 1

    save(integration, capture, enabled=False)
    assert integration.q_schedule is None and not RUNS.exists()

    save(integration, capture, enabled=True)
    assert RUNS.count() == 1
    integration.delete()
    assert not RUNS.exists()


def test_reconcile_removes_orphans_and_restores_missing(
    integration: Integration,
    django_capture_on_commit_callbacks: Any,
) -> None:
    save(
        integration,
        django_capture_on_commit_callbacks,
        schedule_type="interval",
        interval_minutes=5,
    )
    Schedule.objects.create(name="integration:999", func="syncs.tasks.run_integration")
    Schedule.objects.filter(name=f"integration:{integration.pk}").delete()
    Schedule.objects.filter(name__startswith="mlc:").delete()
    assert schedules_reconcile() == 1
    assert sorted(Schedule.objects.values_list("name", flat=True)) == [
        f"integration:{integration.pk}",
        "mlc:alerts",  # alerts to the finance reviewers are always scheduled
        "mlc:key-rotation",  # key rotation checks are always scheduled
        "mlc:reaper",  # and so is the reaper
    ]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"schedule_type": "cron", "cron": "every tuesday"}, "cron"),
        ({"schedule_type": "interval", "interval_minutes": None}, "interval_minutes"),
        ({"flow": "no.such.flow"}, "flow"),
    ],
)
def test_bad_schedules_and_flows_are_refused(
    integration: Integration, changes: dict, field: str
) -> None:
    for key, value in changes.items():
        setattr(integration, key, value)
    with pytest.raises(ValidationError) as info:
        integration.full_clean()
    assert field in info.value.message_dict


def test_a_flow_checks_the_kinds_of_its_connections(integration: Integration) -> None:
    integration.source, integration.target = integration.target, integration.source
    with pytest.raises(ValidationError) as info:
        integration.full_clean()
    assert set(info.value.message_dict) == {"source", "target"}


def test_enqueued_run_executes_in_a_worker(
    integration: Integration, django_capture_on_commit_callbacks: Any
) -> None:
    SOURCE.append(
        {"id": "ch_1", "ts": "2026-11-01", "invoice": "I", "amount_cents": 1, "account": "x"}
    )
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        integration_enqueue_run(integration=integration, requested_by="ana")
    assert len(callbacks) == 1  # nothing is queued before the transaction commits
    run = SyncRun.objects.get()
    assert (run.trigger, run.requested_by, run.done) == ("manual", "ana", 1)


def test_run_task_skips_disabled_integrations_on_schedule(integration: Integration) -> None:
    Integration.objects.filter(pk=integration.pk).update(enabled=False)
    assert tasks.run_integration(integration.pk, "schedule") is None
    assert tasks.run_integration(integration.pk, "manual") is not None
    assert tasks.run_integration(999_999) is None


def test_a_run_already_going_makes_the_next_one_a_skip(integration: Integration) -> None:
    live = SyncRun.objects.create(
        integration=integration, trigger="schedule", status="running", heartbeat_at=timezone.now()
    )
    skipped = integration_run(integration=integration, trigger="manual")
    assert skipped.status == SyncRun.Status.SKIPPED and f"#{live.pk}" in skipped.error_summary
    # A run whose worker died (no heartbeat for long) does not block forever.
    SyncRun.objects.filter(pk=live.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert integration_run(integration=integration, trigger="manual").status == "succeeded"


def test_a_webhook_event_is_stored_once_per_system_connection_and_id(
    make_connection: Any,
) -> None:
    conn = make_connection("stripe")
    other = make_connection("stripe", slug="stripe-other")
    common = {"system": "stripe", "event_id": "evt_1", "raw_body": "{}"}
    WebhookEvent.objects.create(**common, connection=conn)
    WebhookEvent.objects.create(**common, connection=other)  # another account: its own event
    with pytest.raises(IntegrityError):
        WebhookEvent.objects.create(**common, connection=conn)


def test_the_reaper_closes_dead_runs_and_requeues_unfinished_events(
    integration: Integration, make_connection: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from syncs.services import engine_reap

    old = timezone.now() - timedelta(minutes=10)
    dead = SyncRun.objects.create(
        integration=integration, trigger="schedule", status="running", heartbeat_at=old
    )
    alive = SyncRun.objects.create(
        integration=integration, trigger="webhook", status="running", heartbeat_at=timezone.now()
    )
    stripe = integration.source
    common = {"system": "stripe", "connection": stripe, "raw_body": "{}", "event_type": "x"}
    stuck = WebhookEvent.objects.create(event_id="evt_stuck", queued_at=old, **common)
    fresh = WebhookEvent.objects.create(event_id="evt_fresh", queued_at=timezone.now(), **common)
    failing = WebhookEvent.objects.create(  # failed 6 times: next try only after an hour
        event_id="evt_failing", queued_at=old, attempts=6, **common
    )
    done = WebhookEvent.objects.create(event_id="evt_done", queued_at=old, processed=True, **common)
    with django_capture_on_commit_callbacks(execute=True):
        assert engine_reap() == {
            "runs_interrupted": 1,
            "events_requeued": 1,
            "requests_requeued": 0,
        }
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert dead.status == "interrupted" and "stopped before it finished" in dead.error_summary
    assert alive.status == "running"
    for event in (stuck, fresh, failing, done):
        event.refresh_from_db()
    assert stuck.processed and stuck.attempts == 1  # processed by the task it was queued for
    assert not fresh.processed and not failing.processed


def test_a_dead_run_does_not_block_the_next(integration: Integration) -> None:
    SyncRun.objects.create(
        integration=integration,
        trigger="schedule",
        status="running",
        heartbeat_at=timezone.now() - timedelta(minutes=10),
    )
    assert integration_run(integration=integration, trigger="manual").status == "succeeded"
    assert SyncRun.objects.filter(status="interrupted").count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_keeps_a_long_run_alive(integration: Integration, settings: Any) -> None:
    import time

    from tests.syncs.testflow import LedgerTestFlow

    settings.MLC = {**settings.MLC, "HEARTBEAT_SECONDS": 0.1}
    beats: list[Any] = []

    class SlowRead(LedgerTestFlow):
        def extract(self, ctx: Any) -> Any:
            run = SyncRun.objects.get(integration=integration, status="running")
            beats.append(run.heartbeat_at)
            time.sleep(0.5)  # a long read, no records yet
            beats.append(SyncRun.objects.get(pk=run.pk).heartbeat_at)
            return iter(())

    from syncs.runner import Runner

    Runner(integration, trigger="manual", flow=SlowRead()).run()
    assert beats[1] > beats[0]


@pytest.mark.parametrize(
    ("changes", "cron"),
    [
        ({"schedule_type": "daily", "run_at": "05:45"}, "45 5 * * *"),
        ({"schedule_type": "period_close", "period_close_day": 3, "run_at": "07:30"}, "30 7 3 * *"),
    ],
)
def test_daily_and_after_period_close_schedules(
    integration: Integration, django_capture_on_commit_callbacks: Any, changes: dict, cron: str
) -> None:
    import datetime

    if "run_at" in changes:
        hour, minute = changes["run_at"].split(":")
        changes = {**changes, "run_at": datetime.time(int(hour), int(minute))}
    save(integration, django_capture_on_commit_callbacks, **changes)
    schedule = Schedule.objects.get(name=f"integration:{integration.pk}")
    assert (schedule.schedule_type, schedule.cron) == (Schedule.CRON, cron)


def test_a_period_close_day_past_28_is_refused(integration: Integration) -> None:
    integration.schedule_type = "period_close"
    integration.period_close_day = 31
    with pytest.raises(ValidationError) as info:
        integration.full_clean()
    assert "period_close_day" in info.value.message_dict


def _queue_down(*args: Any, **kwargs: Any) -> None:
    raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


@pytest.mark.django_db(transaction=True)  # as in production: no transaction around the view
def test_a_run_asked_for_while_the_queue_is_down_is_kept_and_runs_once_it_is_back(
    integration: Integration, admin_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syncs import services
    from syncs.models import WorkRequest
    from syncs.services import engine_reap

    real = services.async_task
    SOURCE.append(dict(ROW))
    monkeypatch.setattr(services, "async_task", _queue_down)
    answer = admin_client.post(f"/admin/syncs/integration/{integration.pk}/run/", follow=True)
    assert answer.status_code == 200
    assert "task queue cannot be reached right now" in answer.content.decode()
    (request,) = WorkRequest.objects.all()
    assert (request.kind, request.requested_by, request.queued_at) == ("run", "admin", None)
    assert not SyncRun.objects.exists()
    assert engine_reap()["requests_requeued"] == 0  # still down: kept for the next reap
    monkeypatch.setattr(services, "async_task", real)  # the queue is back
    assert engine_reap()["requests_requeued"] == 1
    request.refresh_from_db()
    assert request.taken_at is not None and request.finished_at is not None
    run = SyncRun.objects.get()
    assert (run.trigger, run.requested_by, run.done) == ("manual", "admin", 1)
    assert engine_reap()["requests_requeued"] == 0
    assert tasks.do_work_request(request.pk) == []  # a copy still queued does nothing


@pytest.mark.django_db(transaction=True)
def test_a_run_the_queue_lost_is_queued_again_by_the_reaper(
    integration: Integration, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syncs import services
    from syncs.models import WorkRequest
    from syncs.services import engine_reap

    real = services.async_task
    lost: list[Any] = []
    monkeypatch.setattr(services, "async_task", lambda *a, **k: lost.append(a))  # Redis restarts
    assert integration_enqueue_run(integration=integration, requested_by="ana") is True
    request = WorkRequest.objects.get()
    assert request.queued_at is not None and lost
    monkeypatch.setattr(services, "async_task", real)
    assert engine_reap()["requests_requeued"] == 0  # not yet: a worker may simply be busy
    WorkRequest.objects.update(queued_at=timezone.now() - timedelta(minutes=2))
    assert engine_reap()["requests_requeued"] == 1
    assert SyncRun.objects.get().requested_by == "ana"


@pytest.mark.django_db(transaction=True)
def test_a_replay_asked_for_while_the_queue_is_down_happens_once_it_is_back(
    integration: Integration, admin_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audit.models import AuditRecord
    from syncs import services
    from syncs.models import FieldMapping
    from syncs.services import engine_reap

    real = services.async_task
    SOURCE.append(dict(ROW))
    integration_run(integration=integration, trigger="manual")
    flagged = AuditRecord.objects.get(status="flagged")
    FieldMapping.objects.create(
        integration=integration, kind="gl_account", source_value="x", target_value="1930"
    )
    monkeypatch.setattr(services, "async_task", _queue_down)
    answer = admin_client.post(
        f"/admin/audit/reviewitem/{flagged.pk}/replay/", {"confirmed": "yes"}, follow=True
    )
    assert answer.status_code == 200
    assert "task queue cannot be reached right now" in answer.content.decode()
    flagged.refresh_from_db()
    assert flagged.resolved_at is None and flagged.replay_requested_at is not None
    monkeypatch.setattr(services, "async_task", real)
    engine_reap()
    flagged.refresh_from_db()
    assert flagged.resolved_at is not None
    assert flagged.replays.get().status == "synced"
