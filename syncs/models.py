"""Integrations, their field mappings, cursors, runs and inbound webhook events."""

from __future__ import annotations

import datetime
import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from connections import jsonsafe
from connections.models import Connection, connection_kinds

logger = logging.getLogger(__name__)


class Integration(models.Model):
    """One flow between a source and a target connection, with its schedule and settings."""

    class ScheduleType(models.TextChoices):
        OFF = "off", "Manual only"
        INTERVAL = "interval", "Every N minutes"
        DAILY = "daily", "Every day at a time"
        PERIOD_CLOSE = "period_close", "After the accounting period closes"
        CRON = "cron", "Cron expression"

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=80, unique=True)
    flow = models.CharField(max_length=60, help_text="What this integration does.")
    source = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="+")
    target = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="+")
    enabled = models.BooleanField(default=True)
    schedule_type = models.CharField(
        max_length=20, choices=ScheduleType.choices, default=ScheduleType.OFF
    )
    interval_minutes = models.PositiveIntegerField(null=True, blank=True)
    run_at = models.TimeField(
        default=datetime.time(6, 0),
        help_text="For a daily or after-period-close schedule: when it runs (the server's time "
        "zone).",
    )
    period_close_day = models.PositiveSmallIntegerField(
        default=3,
        help_text="For after period close: the day of the month by which the previous "
        "accounting period is closed in CloudSuite (1-28); the run reads that period then.",
    )
    cron = models.CharField(max_length=120, blank=True, help_text="e.g. */15 6-20 * * 1-5")
    settings = models.JSONField(default=dict, blank=True)
    q_schedule = models.OneToOneField(
        "django_q.Schedule",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("run_integration", "Can run an integration now")]

    def __str__(self) -> str:
        return self.name

    @property
    def schedule_cron(self) -> str:
        """The cron expression a daily, after-period-close or cron schedule runs by."""
        at = self.run_at or datetime.time(6, 0)
        if self.schedule_type == self.ScheduleType.DAILY:
            return f"{at.minute} {at.hour} * * *"
        if self.schedule_type == self.ScheduleType.PERIOD_CLOSE:
            return f"{at.minute} {at.hour} {self.period_close_day} * *"
        return self.cron

    def clean(self) -> None:
        from syncs.flows import FLOWS

        errors: dict[str, Any] = {}
        flow = FLOWS.get(self.flow)
        if flow is None:
            errors["flow"] = "Unknown flow."
        else:
            if self.source_id and self.source.kind != flow.source_kind:
                errors["source"] = f"This flow reads from a {flow.source_kind} connection."
            if self.target_id and self.target.kind != flow.target_kind:
                errors["target"] = f"This flow writes to a {flow.target_kind} connection."
        if self.schedule_type == self.ScheduleType.INTERVAL and not self.interval_minutes:
            if flow is not None and flow.default_interval_minutes:
                self.interval_minutes = flow.default_interval_minutes
            else:
                errors["interval_minutes"] = "Give the interval in minutes."
        if self.schedule_type == self.ScheduleType.PERIOD_CLOSE and not (
            1 <= int(self.period_close_day or 0) <= 28
        ):
            errors["period_close_day"] = "A day from 1 to 28 (every month has it)."
        if self.schedule_type == self.ScheduleType.CRON:
            from croniter import croniter

            if not self.cron or not croniter.is_valid(self.cron):
                errors["cron"] = "Not a valid cron expression (minute hour day month weekday)."
        if not isinstance(self.settings, dict):
            errors["settings"] = "Settings must be a JSON object."
        elif reason := jsonsafe.problem(self.settings):
            errors["settings"] = f"These settings cannot be stored: {reason}."
        elif flow is not None:
            try:  # declared by the flow: an unknown name or a wrong value is an error here
                self.settings = flow.clean_settings(self.settings)
            except ValidationError as exc:
                errors["settings"] = exc.messages
        if errors:
            raise ValidationError(errors)


def mapping_kinds() -> list[tuple[str, str]]:
    """The kinds of mapping the registered flows declare (``Flow.mapping_kinds``)."""
    from syncs.flows import mapping_kind_choices

    return mapping_kind_choices()


class FieldMapping(models.Model):
    """A value translation a finance user maintains: vendor ids, GL accounts, customers, taxes.

    Either an integration's own, or shared by every integration that posts to one connection
    (``connection``: the same vendors and GL accounts for all Stampli integrations into one
    CloudSuite, say); an integration's own mapping of the same kind and value wins."""

    integration = models.ForeignKey(
        Integration,
        on_delete=models.CASCADE,
        related_name="mappings",
        null=True,
        blank=True,
        help_text="This integration only. Leave blank to share the mapping (below).",
    )
    connection = models.ForeignKey(
        "connections.Connection",
        on_delete=models.CASCADE,
        related_name="shared_mappings",
        null=True,
        blank=True,
        verbose_name="shared by every integration posting to",
        help_text="Shared: every integration that posts to this connection uses it, unless it "
        "has a mapping of its own for the same value.",
    )
    kind = models.CharField(max_length=20, choices=mapping_kinds)
    source_value = models.CharField(max_length=200)
    target_value = models.CharField(max_length=200)
    note = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["integration", "kind", "source_value"]
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "kind", "source_value"], name="uniq_mapping_source"
            ),
            models.UniqueConstraint(
                fields=["connection", "kind", "source_value"],
                condition=models.Q(integration__isnull=True),
                name="uniq_shared_mapping_source",
            ),
            models.CheckConstraint(
                condition=models.Q(integration__isnull=False, connection__isnull=True)
                | models.Q(integration__isnull=True, connection__isnull=False),
                name="mapping_one_owner",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.source_value} → {self.target_value}"

    @property
    def applies_to(self) -> str:
        if self.integration_id:
            return str(self.integration)
        return f"Shared: all into {self.connection}"

    @classmethod
    def for_integration(cls, integration: Integration) -> models.QuerySet[FieldMapping]:
        """The mappings an integration uses: its own and those shared on its target."""
        return cls.objects.filter(
            models.Q(integration=integration)
            | models.Q(integration__isnull=True, connection_id=integration.target_id)
        )


class Cursor(models.Model):
    """How far an integration has read one stream (a watermark), advanced only past commits."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="cursors")
    stream = models.CharField(max_length=60)
    value = models.CharField(max_length=255, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["integration", "stream"], name="uniq_cursor_stream")
        ]

    def __str__(self) -> str:
        return f"{self.integration} / {self.stream} = {self.value or '(start)'}"


class ProcessedFile(models.Model):
    """A source file an integration has read to the end with nothing left to read again: known
    by name, size and checksum, so it is never processed twice, restarts included."""

    integration = models.ForeignKey(
        Integration, on_delete=models.CASCADE, related_name="processed_files"
    )
    kind = models.CharField(max_length=40)
    name = models.CharField(max_length=255)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    rows = models.PositiveIntegerField(default=0)
    processed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-processed_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "name", "size", "sha256"], name="uniq_processed_file"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.size} bytes)"


class SyncRun(models.Model):
    """One execution of an integration (or a replay): counts, progress and outcome."""

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        MANUAL = "manual", "Manual"
        WEBHOOK = "webhook", "Webhook"
        REPLAY = "replay", "Replay"
        PART = "part", "Part of a run"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIAL = "partial", "Finished with problems"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        INTERRUPTED = "interrupted", "Interrupted (worker stopped)"

    integration = models.ForeignKey(Integration, on_delete=models.PROTECT, related_name="runs")
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    parent = models.ForeignKey(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="parts",
        help_text="The run this one is a part of (a large run split across workers).",
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING)
    requested_by = models.CharField(max_length=150, blank=True)
    worker = models.CharField(
        max_length=200, blank=True, help_text="host:pid of the process that ran it."
    )
    total = models.PositiveIntegerField(null=True, blank=True)
    done = models.PositiveIntegerField(default=0)
    synced = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    duplicate = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    flagged = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    error_summary = models.TextField(blank=True)
    read_mark = models.CharField(
        max_length=100,
        blank=True,
        help_text="For a part of a split run: how far it read (its run moves the cursor).",
    )
    # A run split across workers: how many other parts it queued, when its own part ended (it
    # then waits for them without a worker; the last part to finish completes it), and whether
    # its own part must be read again.
    parts_expected = models.PositiveSmallIntegerField(null=True, blank=True)
    own_part_done_at = models.DateTimeField(null=True, blank=True)
    cursor_held = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["integration", "status"])]
        # Runs that read the source (schedule, manual) go one at a time per integration; webhook
        # deliveries and replays work on given records and may overlap them.
        constraints = [
            models.UniqueConstraint(
                fields=["integration"],
                condition=Q(status="running", trigger__in=("schedule", "manual")),
                name="one_live_run_per_integration",
            )
        ]

    def __str__(self) -> str:
        return f"{self.integration} #{self.pk} ({self.get_status_display()})"

    @property
    def progress_percent(self) -> int | None:
        if not self.total:
            return None
        return min(100, round(100 * self.done / self.total))


class WebhookEvent(models.Model):
    """An inbound webhook event, verified and stored (raw) before it is acknowledged.

    Only validly signed, well-formed events are stored, once per system, connection and event
    id.  ``processed`` says every integration it feeds has handled it; each integration's own
    outcome is a ``WebhookProcessing`` row, so one integration's failure never re-runs another.
    """

    system = models.CharField(max_length=20, choices=connection_kinds)
    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="+")
    event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=120, blank=True)
    occurred_at = models.DateTimeField(null=True, blank=True)
    raw_body = models.TextField()
    headers = models.JSONField(default=dict)
    processed = models.BooleanField(default=False)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    queued_at = models.DateTimeField(null=True, blank=True, help_text="Last queued for processing.")
    parked_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="No longer retried by itself after failing too many times (see the error); "
        "Process again retries it.",
    )
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["system", "connection", "event_id"], name="uniq_webhook_event"
            )
        ]

    def __str__(self) -> str:
        return f"{self.system} {self.event_type} {self.event_id}"


class WebhookProcessing(models.Model):
    """How one integration handled one webhook event (done, or failed and to be retried)."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="processings")
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    run = models.ForeignKey(
        SyncRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event", "integration"], name="uniq_event_integration")
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.integration}: {self.get_state_display()}"


class AlertSent(models.Model):
    """An alert e-mailed to the finance reviewers, once per thing it is about (a failed run, an
    item waiting too long): the history of who was told what, and when."""

    class Kind(models.TextChoices):
        RUN_FAILED = "run_failed", "A run failed"
        WAITING = "waiting", "An item waited too long"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    key = models.CharField(max_length=100, help_text="What it was about (a run's or record's id).")
    subject = models.CharField(max_length=255)
    recipients = models.PositiveIntegerField(default=0)
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-sent_at"]
        verbose_name = "alert sent"
        verbose_name_plural = "Alerts sent"
        constraints = [models.UniqueConstraint(fields=["kind", "key"], name="uniq_alert_about")]

    def __str__(self) -> str:
        return self.subject


class WorkRequest(models.Model):
    """A run or a replay a person asked for, recorded before it is queued.

    The queue (Redis) may lose what it holds or be out of reach; the request is not lost with
    it: the reaper queues again every request no worker has taken, and the first worker to take
    one marks it taken, so queuing it twice does the work once.
    """

    class Kind(models.TextChoices):
        RUN = "run", "Run now"
        REPLAY = "replay", "Replay"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    integration = models.ForeignKey(
        Integration, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    trigger = models.CharField(max_length=10, blank=True)
    record_ids = models.JSONField(default=list, blank=True)
    requested_by = models.CharField(max_length=150, blank=True)
    requested_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True, help_text="Last handed to the queue.")
    queue_attempts = models.PositiveIntegerField(default=0)
    taken_at = models.DateTimeField(null=True, blank=True, help_text="When a worker took it.")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["taken_at", "queued_at"])]

    def __str__(self) -> str:
        what = self.integration or f"{len(self.record_ids)} record(s)"
        return f"{self.get_kind_display()} {what} ({self.requested_by or 'system'})"
