"""What the admin's overview shows: each integration's health, its last day in numbers, its
next run, and what waits for a person (read-only selectors, a handful of queries in all)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db.models import Count, Max, Min, Q
from django.utils import timezone

from audit.models import FIRST_SEEN, NEEDS_REVIEW, AuditRecord
from connections.models import Connection
from syncs.flows import FLOWS
from syncs.models import Integration, SyncRun
from syncs.reconcile import RECONCILED_FLOWS

logger = logging.getLogger(__name__)

Status = AuditRecord.Status
OPEN = NEEDS_REVIEW
READING = (SyncRun.Trigger.SCHEDULE, SyncRun.Trigger.MANUAL)


@dataclass
class Row:
    """One integration on the overview."""

    integration: Integration
    flow_label: str
    health: str  # ok, attention, failing, off
    health_label: str
    why: str
    last_success_at: datetime | None
    last_run: SyncRun | None
    synced: int = 0
    failed: int = 0
    flagged: int = 0
    waiting: int = 0
    oldest_waiting_at: datetime | None = None
    next_run_at: datetime | None = None


@dataclass
class Overview:
    rows: list[Row] = field(default_factory=list)
    waiting_failed: int = 0
    waiting_flagged: int = 0
    oldest_waiting_at: datetime | None = None
    failing_connections: list[Connection] = field(default_factory=list)
    since: datetime | None = None
    reconcilable: list[Integration] = field(default_factory=list)
    month_start: date | None = None
    today: date | None = None

    @property
    def waiting(self) -> int:
        return self.waiting_failed + self.waiting_flagged


def _health(integration: Integration, last: SyncRun | None, waiting: int) -> tuple[str, str, str]:
    broken = [c.name for c in (integration.source, integration.target) if c.status == "failing"]
    if not integration.enabled:
        return "off", "Switched off", "Not run by its schedule."
    if broken:
        return "failing", "Failing", f"The last connection test of {', '.join(broken)} failed."
    if last is not None and last.status in (SyncRun.Status.FAILED, SyncRun.Status.INTERRUPTED):
        return "failing", "Failing", (last.error_summary or last.get_status_display())[:200]
    if waiting:
        return "attention", "Needs attention", f"{waiting} item(s) wait in the review queue."
    if last is not None and last.status == SyncRun.Status.PARTIAL:
        return "attention", "Needs attention", "The last run finished with problems."
    if last is None:
        return "ok", "Not run yet", "Waiting for its first run."
    return "ok", "Healthy", "The last run went through."


def overview(*, now: datetime | None = None, hours: int = 24) -> Overview:
    """The overview of every integration, counting the last ``hours``."""
    now = now or timezone.now()
    since = now - timedelta(hours=hours)
    integrations = list(
        Integration.objects.select_related("source", "target", "q_schedule").order_by("name")
    )
    counts: dict[int, dict[str, int]] = {}
    for row in (
        AuditRecord.objects.filter(created_at__gte=since)
        .values("integration_id", "status")
        .annotate(n=Count("id"))
    ):
        counts.setdefault(row["integration_id"], {})[row["status"]] = row["n"]
    waiting = {
        row["integration_id"]: row
        for row in AuditRecord.objects.filter(OPEN)
        .values("integration_id")
        .annotate(
            # one item per record, however many runs met it
            failed=Count("source_key", distinct=True, filter=Q(status=Status.FAILED)),
            flagged=Count("source_key", distinct=True, filter=Q(status=Status.FLAGGED)),
            oldest=Min(FIRST_SEEN),
        )
    }
    last_success = dict(
        SyncRun.objects.filter(status=SyncRun.Status.SUCCEEDED, parent=None)
        .values("integration_id")
        .annotate(at=Max("finished_at"))
        .values_list("integration_id", "at")
    )
    latest_ids = (
        SyncRun.objects.filter(trigger__in=READING, parent=None)
        .exclude(status=SyncRun.Status.SKIPPED)
        .values("integration_id")
        .annotate(last=Max("id"))
        .values_list("last", flat=True)
    )
    last_runs = {run.integration_id: run for run in SyncRun.objects.filter(pk__in=latest_ids)}
    out = Overview(since=since)
    for integration in integrations:
        wait = waiting.get(integration.pk) or {}
        n_wait = (wait.get("failed") or 0) + (wait.get("flagged") or 0)
        last = last_runs.get(integration.pk)
        health, health_label, why = _health(integration, last, n_wait)
        flow = FLOWS.get(integration.flow)
        seen = counts.get(integration.pk, {})
        schedule = integration.q_schedule
        out.rows.append(
            Row(
                integration=integration,
                flow_label=flow.label if flow else integration.flow,
                health=health,
                health_label=health_label,
                why=why,
                last_success_at=last_success.get(integration.pk),
                last_run=last,
                synced=seen.get(Status.SYNCED, 0),
                failed=seen.get(Status.FAILED, 0),
                flagged=seen.get(Status.FLAGGED, 0),
                waiting=n_wait,
                oldest_waiting_at=wait.get("oldest"),
                next_run_at=(
                    schedule.next_run if schedule is not None and integration.enabled else None
                ),
            )
        )
        out.waiting_failed += wait.get("failed") or 0
        out.waiting_flagged += wait.get("flagged") or 0
        oldest = wait.get("oldest")
        if oldest is not None and (out.oldest_waiting_at is None or oldest < out.oldest_waiting_at):
            out.oldest_waiting_at = oldest
    out.failing_connections = list(Connection.objects.filter(status="failing").order_by("name"))
    out.reconcilable = [i for i in integrations if i.flow in RECONCILED_FLOWS]
    out.today = timezone.localdate(now)
    out.month_start = out.today.replace(day=1)
    return out
