"""django-q2 task entry points: thin, they take ids, load objects and call a service."""

from __future__ import annotations

import logging

from syncs.alerts import alerts_send
from syncs.models import Integration, SyncRun

logger = logging.getLogger(__name__)


def run_integration(
    integration_id: int, trigger: str = SyncRun.Trigger.SCHEDULE, requested_by: str = ""
) -> int | None:
    """Run one integration; returns the SyncRun id (None when it is gone or disabled)."""
    from syncs.services import integration_run

    integration = (
        Integration.objects.select_related("source", "target").filter(pk=integration_id).first()
    )
    if integration is None or (not integration.enabled and trigger == SyncRun.Trigger.SCHEDULE):
        logger.info("Integration %s is gone or disabled: not run", integration_id)
        return None
    return integration_run(integration=integration, trigger=trigger, requested_by=requested_by).pk


def run_part(
    integration_id: int, parent_id: int, part: dict, window_start: int | str | None
) -> int | None:
    """Run one part of a run split across workers; returns its SyncRun id."""
    from syncs.services import integration_run_part

    integration = (
        Integration.objects.select_related("source", "target").filter(pk=integration_id).first()
    )
    parent = SyncRun.objects.filter(pk=parent_id).first()
    if integration is None or parent is None:
        logger.info("Part of run %s: integration %s or run gone", parent_id, integration_id)
        return None
    return integration_run_part(
        integration=integration, parent=parent, part=part, window_start=window_start
    ).pk


def replay_records(record_ids: list[int], requested_by: str = "") -> list[int]:
    """Replay failed/flagged audit records; returns the SyncRun ids created."""
    from syncs.services import records_replay

    return [run.pk for run in records_replay(record_ids=record_ids, requested_by=requested_by)]


def do_work_request(request_id: int) -> list[int]:
    """Do a run or replay a person asked for (recorded first); returns the SyncRun ids."""
    from syncs.services import work_request_do

    return [run.pk for run in work_request_do(request_id=request_id)]


def process_webhook_event(event_id: int) -> list[int]:
    """Process one stored webhook event; returns the SyncRun ids it made."""
    from syncs.models import WebhookEvent
    from syncs.services import webhook_process

    event = WebhookEvent.objects.select_related("connection").filter(pk=event_id).first()
    if event is None or event.processed:
        return []
    return [p.run_id for p in webhook_process(event=event) if p.run_id]


def reap() -> dict[str, int]:
    """Close runs whose worker died; queue again webhook events nobody finished."""
    from syncs.services import engine_reap

    return engine_reap()


def send_alerts() -> dict[str, int]:
    """Scheduled (mlc:alerts): e-mail the finance reviewers what failed or waits too long."""
    return alerts_send()
