"""Alerts: an e-mail to the finance reviewers when a run fails, or when items have waited in
the review queue longer than ``MLC["ALERT_WAITING_HOURS"]``; each run or item is told once.

Run every 15 minutes by the ``mlc:alerts`` schedule.  Nothing in an alert is secret: reasons are
stored redacted, and the mail holds names, counts, reasons and links to the admin.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.models import Schedule

from audit.models import FIRST_SEEN, NEEDS_REVIEW, AuditRecord
from connections.services import schedule_every
from syncs.models import AlertSent, SyncRun

logger = logging.getLogger(__name__)

ALERTS_TASK = "syncs.tasks.send_alerts"
ALERTS_SCHEDULE = "mlc:alerts"
REVIEWERS = "Finance reviewer"
LOOK_BACK = timedelta(days=2)  # failed runs older than this are not announced any more


def alerts_schedule_ensure() -> Schedule:
    """The schedule that sends due alerts (every 15 minutes)."""
    return schedule_every(name=ALERTS_SCHEDULE, func=ALERTS_TASK, minutes=15)


def recipients() -> list[str]:
    """The finance reviewers' addresses, and any set in ``ALERT_EMAILS``."""
    users = (
        get_user_model().objects.filter(is_active=True, groups__name=REVIEWERS).exclude(email="")
    )
    found = [*users.values_list("email", flat=True), *settings.MLC["ALERT_EMAILS"]]
    return sorted(set(found))


def _link(path: str) -> str:
    return settings.MLC["ADMIN_URL"].rstrip("/") + "/" + path.lstrip("/")


def _claim(kind: str, keys: list[str], subject: str, count: int) -> list[str]:
    """Record the alerts about ``keys`` as sent; the keys another worker had claimed first are
    left out (so nothing is announced twice)."""
    claimed = []
    for key in keys:
        try:
            with transaction.atomic():
                AlertSent.objects.create(kind=kind, key=key, subject=subject, recipients=count)
            claimed.append(key)
        except IntegrityError:
            continue
    return claimed


def _failed_runs(now: datetime, to: list[str]) -> int:
    told = set(
        AlertSent.objects.filter(kind=AlertSent.Kind.RUN_FAILED).values_list("key", flat=True)
    )
    runs = [
        run
        for run in SyncRun.objects.filter(
            status__in=(SyncRun.Status.FAILED, SyncRun.Status.INTERRUPTED),
            finished_at__gte=now - LOOK_BACK,
        )
        .select_related("integration")
        .order_by("finished_at")
        if str(run.pk) not in told
    ]
    if not runs:
        return 0
    subject = (
        f"ml-connector: {runs[0].integration.name} failed"
        if len(runs) == 1
        else f"ml-connector: {len(runs)} runs failed"
    )
    keys = _claim(AlertSent.Kind.RUN_FAILED, [str(r.pk) for r in runs], subject, len(to))
    runs = [r for r in runs if str(r.pk) in keys]
    if not runs:
        return 0
    lines = [
        f"- {r.integration.name}, run #{r.pk} ({r.get_status_display()}, "
        f"{timezone.localtime(r.finished_at):%Y-%m-%d %H:%M:%S %Z}): "
        f"{(r.error_summary or 'no reason recorded').strip()[:300]}\n"
        f"  {_link(f'syncs/syncrun/{r.pk}/change/')}"
        for r in runs
    ]
    body = (
        "These runs did not finish. What they recorded stands; the next run reads the rest "
        "again, but the cause may need you (a connection, a mapping):\n\n"
        + "\n".join(lines)
        + f"\n\nOverview: {_link('')}\n"
    )
    send_mail(subject, body, None, to)
    return len(runs)


def _waiting(now: datetime, to: list[str]) -> int:
    hours = float(settings.MLC["ALERT_WAITING_HOURS"])
    told = set(AlertSent.objects.filter(kind=AlertSent.Kind.WAITING).values_list("key", flat=True))
    items = [
        r
        for r in AuditRecord.objects.annotate(first_seen=FIRST_SEEN)
        .filter(NEEDS_REVIEW, first_seen__lt=now - timedelta(hours=hours))
        .select_related("integration")
        .order_by("first_seen")
        if str(r.pk) not in told
    ]
    if not items:
        return 0
    subject = f"ml-connector: {len(items)} item(s) waiting over {hours:g} h in the review queue"
    keys = _claim(AlertSent.Kind.WAITING, [str(r.pk) for r in items], subject, len(to))
    items = [r for r in items if str(r.pk) in keys]
    if not items:
        return 0
    lines = [
        f"- {r.integration.name}: {r.stream} {r.source_key}, since "
        f"{timezone.localtime(r.first_seen):%Y-%m-%d %H:%M:%S %Z} — {r.reason[:240]}\n"
        f"  {_link(f'audit/reviewitem/{r.pk}/change/')}"
        for r in items[:50]
    ]
    more = f"\n… and {len(items) - 50} more." if len(items) > 50 else ""
    body = (
        f"These items have waited in the review queue for more than {hours:g} hours. Nothing "
        "of them was posted; each page says why and how to fix it:\n\n"
        + "\n".join(lines)
        + more
        + f"\n\nReview queue: {_link('audit/reviewitem/')}\n"
    )
    send_mail(subject, body, None, to)
    return len(items)


def alerts_send(*, now: datetime | None = None) -> dict[str, int]:
    """Send what is due: failed runs and long-waiting items not announced yet."""
    now = now or timezone.now()
    to = recipients()
    if not to:
        logger.info(
            "No one receives alerts: give the finance reviewers e-mail addresses, or set "
            "ALERT_EMAILS"
        )
        return {"runs": 0, "waiting": 0, "recipients": 0}
    with transaction.atomic():  # a mail that cannot be sent leaves its alerts due
        runs = _failed_runs(now, to)
    with transaction.atomic():
        waiting = _waiting(now, to)
    sent = {"runs": runs, "waiting": waiting, "recipients": len(to)}
    if sent["runs"] or sent["waiting"]:
        logger.info("Alerts sent: %s", sent)
    return sent
