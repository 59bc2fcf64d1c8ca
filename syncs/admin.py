"""Admin for integrations, mappings, cursors, runs and webhook events."""

from __future__ import annotations

import json
import logging
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms.fields import InvalidJSONInput
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from connections import jsonsafe
from connections.providers.errors import ApiError
from syncs.admin_base import ReadOnlyAdmin
from syncs.flows import FLOWS, flow_choices
from syncs.models import (
    Cursor,
    FieldMapping,
    Integration,
    SyncRun,
    WebhookEvent,
    WebhookProcessing,
)
from syncs.services import (
    gl_mappings_check,
    integration_enqueue_run,
    webhook_events_reprocess,
)

logger = logging.getLogger(__name__)


class SettingsField(forms.JSONField):
    """Integration settings as JSON: a form error, never a crash, for input too large, nested
    too deeply, or holding what the database cannot store."""

    MAX_CHARS = 64 * 1024

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str):
            if len(value) > self.MAX_CHARS:
                raise forms.ValidationError("Settings are limited to 64 KB of JSON.")
            if jsonsafe.too_deep(value):
                raise forms.ValidationError("These settings are nested too deeply.")
        try:
            parsed = super().to_python(value)
        except RecursionError:
            raise forms.ValidationError("These settings are nested too deeply.") from None
        if parsed in (None, ""):
            return {}
        if not isinstance(parsed, dict):
            raise forms.ValidationError("Settings must be a JSON object: { … }.")
        if reason := jsonsafe.problem(parsed):
            raise forms.ValidationError(f"These settings cannot be stored: {reason}.")
        return parsed

    def bound_data(self, data: Any, initial: Any) -> Any:
        """What the page shows after an error: the text as typed whenever it is not safe JSON
        (Django would parse it again, and crash on deep nesting or a lone surrogate)."""
        if self.disabled or not isinstance(data, str):
            return super().bound_data(data, initial)
        if len(data) > self.MAX_CHARS or jsonsafe.too_deep(data):
            return InvalidJSONInput(data[: self.MAX_CHARS])
        try:
            parsed = json.loads(data, cls=self.decoder)
        except (ValueError, RecursionError):
            return InvalidJSONInput(data)
        return InvalidJSONInput(data) if jsonsafe.problem(parsed) else parsed


class IntegrationForm(forms.ModelForm):
    class Meta:
        model = Integration
        fields = [
            "name",
            "slug",
            "flow",
            "source",
            "target",
            "enabled",
            "schedule_type",
            "interval_minutes",
            "run_at",
            "period_close_day",
            "cron",
            "settings",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["settings"] = SettingsField(
            required=False, help_text=self.fields["settings"].help_text
        )
        self.fields["flow"] = forms.ChoiceField(
            choices=[("", "---------"), *flow_choices()],
            help_text=self.fields["flow"].help_text,
        )


class FieldMappingInline(admin.TabularInline):
    model = FieldMapping
    extra = 0
    fields = ("kind", "source_value", "target_value", "note")


@admin.register(Integration)
class IntegrationAdmin(admin.ModelAdmin):
    form = IntegrationForm
    list_display = ("name", "flow_label", "source", "target", "enabled", "schedule", "last_run")
    list_filter = ("enabled", "flow")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [FieldMappingInline]
    actions = ["run_now", "check_gl_mappings"]
    fieldsets = [
        (None, {"fields": ["name", "slug", "flow", "source", "target", "enabled"]}),
        (
            "Schedule",
            {"fields": ["schedule_type", "interval_minutes", "run_at", "period_close_day", "cron"]},
        ),
        ("Settings", {"fields": ["settings"], "classes": ["collapse"]}),
    ]

    @admin.display(description="Flow", ordering="flow")
    def flow_label(self, obj: Integration) -> str:
        flow = FLOWS.get(obj.flow)
        return flow.label if flow else f"{obj.flow} (unknown)"

    @admin.display(description="Schedule")
    def schedule(self, obj: Integration) -> str:
        if obj.schedule_type == Integration.ScheduleType.INTERVAL:
            return f"every {obj.interval_minutes} min"
        if obj.schedule_type == Integration.ScheduleType.DAILY:
            return f"daily at {obj.run_at:%H:%M}"
        if obj.schedule_type == Integration.ScheduleType.PERIOD_CLOSE:
            return f"after period close (day {obj.period_close_day}, {obj.run_at:%H:%M})"
        if obj.schedule_type == Integration.ScheduleType.CRON:
            return obj.cron
        return "manual"

    @admin.display(description="Last run")
    def last_run(self, obj: Integration) -> str:
        run = obj.runs.order_by("-created_at").first()
        if run is None:
            return "—"
        url = reverse("admin:syncs_syncrun_change", args=[run.pk])
        return format_html('<a href="{}">{}</a>', url, run.get_status_display())

    @admin.action(description="Run selected integrations now", permissions=["change"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[Integration]) -> None:
        for integration in queryset:
            integration_enqueue_run(
                integration=integration, requested_by=request.user.get_username()
            )
        self.message_user(
            request,
            f"Queued {queryset.count()} run(s); watch them under Sync runs.",
            messages.SUCCESS,
        )

    @admin.action(
        description="Check GL account mappings against the CloudSuite chart", permissions=["view"]
    )
    def check_gl_mappings(self, request: HttpRequest, queryset: QuerySet[Integration]) -> None:
        for integration in queryset:
            try:
                known, unknown = gl_mappings_check(integration=integration)
            except ApiError as exc:
                self.message_user(request, f"{integration}: {exc.message}", messages.ERROR)
                continue
            for line in unknown:
                self.message_user(request, f"{integration}: {line}", messages.ERROR)
            if known or not unknown:
                self.message_user(
                    request,
                    f"{integration}: {len(known)} GL mapping(s) found in the chart.",
                    messages.SUCCESS,
                )


@admin.register(FieldMapping)
class FieldMappingAdmin(admin.ModelAdmin):
    list_display = ("integration", "kind", "source_value", "target_value", "note", "updated_at")
    list_filter = ("integration", "kind")
    search_fields = ("source_value", "target_value", "note")
    list_editable = ("target_value",)


@admin.register(Cursor)
class CursorAdmin(admin.ModelAdmin):
    list_display = ("integration", "stream", "value", "updated_at")
    list_filter = ("integration",)
    readonly_fields = ("integration", "stream", "updated_at")
    fields = ("integration", "stream", "value", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "integration",
        "trigger",
        "status",
        "progress",
        "synced",
        "duplicate",
        "skipped",
        "flagged",
        "failed",
        "started_at",
        "finished_at",
    )
    list_filter = ("status", "trigger", "integration")
    readonly_fields = (
        "integration",
        "trigger",
        "status",
        "requested_by",
        "progress",
        "total",
        "done",
        "synced",
        "skipped",
        "duplicate",
        "failed",
        "flagged",
        "started_at",
        "finished_at",
        "heartbeat_at",
        "error_summary",
        "audit_records",
        "split",
    )
    fields = readonly_fields

    @admin.display(description="Progress")
    def progress(self, obj: SyncRun) -> str:
        percent = obj.progress_percent
        label = f"{obj.done}/{obj.total}" if obj.total is not None else f"{obj.done}"
        if percent is None:
            return label
        return format_html(
            '<progress max="100" value="{}" title="{}%"></progress> {}', percent, percent, label
        )

    @admin.display(description="Split across workers")
    def split(self, obj: SyncRun) -> str:
        """The parts of a split run, or the run a part belongs to."""
        if obj.parent_id:
            url = reverse("admin:syncs_syncrun_change", args=[obj.parent_id])
            return format_html('Part of <a href="{}">run #{}</a>', url, obj.parent_id)
        parts = list(obj.parts.order_by("pk").values_list("pk", "status"))
        if not parts:
            return "Not split"
        links = format_html_join(
            ", ",
            '<a href="{}">#{}</a> ({})',
            (
                (reverse("admin:syncs_syncrun_change", args=[pk]), pk, SyncRun.Status(st).label)
                for pk, st in parts
            ),
        )
        return format_html("This worker took the first part; other parts: {}", links)

    @admin.display(description="Audit records")
    def audit_records(self, obj: SyncRun) -> str:
        url = reverse("admin:audit_auditrecord_changelist") + f"?run__id__exact={obj.pk}"
        return format_html('<a href="{}">{} record(s)</a>', url, obj.done)


class WebhookProcessingInline(admin.TabularInline):
    """How each integration fed by the event handled it."""

    model = WebhookProcessing
    extra = 0
    fields = ("integration", "state", "attempts", "run", "error", "updated_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = (
        "received_at",
        "system",
        "connection",
        "event_type",
        "event_id",
        "occurred_at",
        "processed",
        "attempts",
    )
    list_filter = ("system", "processed", "event_type")
    search_fields = ("event_id", "event_type")
    actions = ["reprocess"]
    inlines = [WebhookProcessingInline]
    readonly_fields = (
        "system",
        "connection",
        "event_id",
        "event_type",
        "occurred_at",
        "processed",
        "processed_at",
        "attempts",
        "error",
        "received_at",
        "headers",
        "raw_body",
    )
    fields = readonly_fields

    @admin.action(
        description="Process selected events again (failed or unprocessed only)",
        permissions=["work"],
    )
    def reprocess(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        count = webhook_events_reprocess(event_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Queued {count} event(s) for processing.", messages.SUCCESS)


from syncs import audit_admin  # noqa: E402, F401  (registers the audit trail's pages)
