"""What the admin's overview shows: the month's money per currency (collected, paid, posted,
waiting, failed), the last 30 days in a small chart, each integration's health — those that need
attention first, grouped by the system that keeps the books — its last day in numbers, its next
run, and what waits for a person (read-only selectors, a handful of queries in all)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.contrib.auth.models import User
from django.db.models import Count, Max, Min, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from audit.models import FIRST_SEEN, NEEDS_REVIEW, AuditRecord
from connections.models import Connection
from connections.providers import plain
from connections.providers.registry import provider_class
from syncs import display
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
class Group:
    """The integrations of one system that keeps the books (an ERP), worst health first."""

    system: str
    rows: list[Row] = field(default_factory=list)


@dataclass
class Cell:
    """One total: this month's, today's (None for what is waiting now)."""

    month: Decimal = Decimal(0)
    today: Decimal | None = Decimal(0)
    currency: str = ""

    @property
    def month_text(self) -> str:
        return display.amount_text(self.month, self.currency) if self.month else "—"

    @property
    def today_text(self) -> str:
        return display.amount_text(self.today, self.currency) if self.today else "—"


@dataclass
class Money:
    """Totals per currency: a column per kind of money (collected in Stripe, paid through Wise,
    posted to CloudSuite …, then waiting and failed), a row per currency."""

    columns: list[tuple[str, str]] = field(default_factory=list)  # (key, label)
    rows: list[tuple[str, list[Cell]]] = field(default_factory=list)


@dataclass
class Day:
    """One day of the chart: records posted, and problems met."""

    day: date
    posted: int
    problems: int
    posted_height: float = 0
    problems_height: float = 0
    x: float = 0

    @property
    def posted_top(self) -> float:
        return round(BASELINE - self.posted_height, 2)

    @property
    def problems_top(self) -> float:
        return round(self.posted_top - self.problems_height, 2)


@dataclass
class Overview:
    rows: list[Row] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    money: Money = field(default_factory=Money)
    days: list[Day] = field(default_factory=list)
    waiting_failed: int = 0
    waiting_flagged: int = 0
    oldest_waiting_at: datetime | None = None
    failing_connections: list[Connection] = field(default_factory=list)
    connection_admins: list[str] = field(default_factory=list)  # whom to ask about them
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


BASELINE = 46  # the chart's baseline, in its 48-unit-tall drawing
HEALTH_ORDER = {"failing": 0, "attention": 1, "ok": 2, "off": 3}
WAITING, FAILED = "waiting", "failed"
ADMIN_GROUP = "Integration admin"


def books_of(integration: Integration) -> str:
    """The name of the system that keeps the books an integration feeds or reads (its source
    when both do: CloudSuite for CloudSuite → Cin7), "Other systems" when neither does."""
    for kind in (integration.source.kind, integration.target.kind):
        try:
            provider = provider_class(kind)
        except LookupError:
            continue
        if provider.keeps_books:
            return plain.system_name(provider)
    return "Other systems"


def _money_columns(integration: Integration) -> list[tuple[str, str]]:
    """The money columns a synced record of this integration adds to: what its flow moves,
    and what it posts to a system that keeps the books."""
    flow = FLOWS.get(integration.flow)
    columns = []
    try:
        source = provider_class(integration.source.kind)
        target = provider_class(integration.target.kind)
    except LookupError:
        return []
    if flow is not None and flow.money == "in":
        columns.append((f"in:{source.kind}", f"Collected in {plain.system_name(source)}"))
    elif flow is not None and flow.money == "out":
        columns.append((f"out:{source.kind}", f"Paid through {plain.system_name(source)}"))
    if target.keeps_books:
        columns.append((f"posted:{target.kind}", f"Posted to {plain.system_name(target)}"))
    return columns


def money(integrations: list[Integration], *, now: datetime) -> Money:
    """This month's and today's totals per currency, and what waits or failed now."""
    zone = timezone.get_current_timezone()
    today = timezone.localdate(now)
    day_start = datetime.combine(today, time.min, tzinfo=zone)
    month_start = datetime.combine(today.replace(day=1), time.min, tzinfo=zone)
    by_integration = {i.pk: _money_columns(i) for i in integrations}
    labels: dict[str, str] = {}
    cells: dict[tuple[str, str], Cell] = {}
    posted = (
        AuditRecord.objects.filter(
            status=Status.SYNCED, created_at__gte=month_start, amount__isnull=False
        )
        .values("integration_id", "currency")
        .annotate(month=Sum("amount"), today=Sum("amount", filter=Q(created_at__gte=day_start)))
    )
    for row in posted:
        for key, label in by_integration.get(row["integration_id"], []):
            labels[key] = label
            cell = cells.setdefault((row["currency"], key), Cell(currency=row["currency"]))
            cell.month += row["month"] or 0
            cell.today = (cell.today or 0) + (row["today"] or 0)
    latest: dict[tuple[int, str, str], dict] = {}
    for row in (
        AuditRecord.objects.filter(NEEDS_REVIEW)
        .order_by("pk")
        .values("integration_id", "stream", "source_key", "status", "currency", "amount")
    ):  # one item per record, as the queue lists it
        latest[(row["integration_id"], row["stream"], row["source_key"])] = row
    for row in latest.values():
        if row["amount"] is None:
            continue
        key = FAILED if row["status"] == Status.FAILED else WAITING
        cell = cells.setdefault((row["currency"], key), Cell(currency=row["currency"], today=None))
        cell.month += row["amount"]
    order = sorted(labels, key=lambda k: ({"in": 0, "out": 1}.get(k.split(":")[0], 2), labels[k]))
    columns = [(k, labels[k]) for k in order]
    columns += [(WAITING, "Waiting for review"), (FAILED, "Failed")]
    out = Money(columns=columns)
    for currency in sorted({c for c, _ in cells}):
        out.rows.append(
            (
                currency or "—",
                [
                    cells.get((currency, key))
                    or Cell(currency=currency, today=None if key in (WAITING, FAILED) else 0)
                    for key, _ in columns
                ],
            )
        )
    return out


def last_days(*, now: datetime, days: int = 30) -> list[Day]:
    """Records posted and problems met on each of the last ``days`` days, scaled for a chart
    40 units tall."""
    start = timezone.localdate(now) - timedelta(days=days - 1)
    zone = timezone.get_current_timezone()
    counts = (
        AuditRecord.objects.filter(
            created_at__gte=datetime.combine(start, time.min, tzinfo=zone),
            status__in=(Status.SYNCED, Status.FAILED, Status.FLAGGED),
        )
        .annotate(day=TruncDate("created_at", tzinfo=zone))
        .values("day")
        .annotate(
            posted=Count("id", filter=Q(status=Status.SYNCED)),
            problems=Count("id", filter=~Q(status=Status.SYNCED)),
        )
    )
    found = {row["day"]: row for row in counts}
    out = [
        Day(
            start + timedelta(days=n),
            (found.get(start + timedelta(days=n)) or {}).get("posted", 0),
            (found.get(start + timedelta(days=n)) or {}).get("problems", 0),
        )
        for n in range(days)
    ]
    top = max([d.posted + d.problems for d in out] + [1])
    for n, d in enumerate(out):
        d.x = n * 10 + 1
        d.posted_height = round(40 * d.posted / top, 2)
        d.problems_height = round(40 * d.problems / top, 2)
    return out


def connection_admins() -> list[str]:
    """Who sets connections up (the Integration admin group's active members), as a reader
    who cannot open them would ask for them: name and e-mail address."""
    users = User.objects.filter(is_active=True, groups__name=ADMIN_GROUP).order_by(
        "first_name", "username"
    )
    return [
        " ".join(filter(None, [u.get_full_name() or u.username, f"<{u.email}>" if u.email else ""]))
        for u in users[:3]
    ]


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
    groups: dict[str, Group] = {}
    for row in out.rows:
        system = books_of(row.integration)
        groups.setdefault(system, Group(system)).rows.append(row)
    for group in groups.values():
        group.rows.sort(key=lambda r: (HEALTH_ORDER.get(r.health, 9), r.integration.name))
    out.groups = sorted(
        groups.values(),
        key=lambda g: (
            HEALTH_ORDER.get(g.rows[0].health, 9),
            g.system == "Other systems",
            g.system,
        ),
    )
    out.money = money(integrations, now=now)
    out.days = last_days(now=now)
    out.failing_connections = list(Connection.objects.filter(status="failing").order_by("name"))
    if out.failing_connections:
        out.connection_admins = connection_admins()
    out.reconcilable = [i for i in integrations if i.flow in RECONCILED_FLOWS]
    out.today = timezone.localdate(now)
    out.month_start = out.today.replace(day=1)
    return out
