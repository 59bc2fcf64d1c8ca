"""Admin for integrations, mappings, cursors, runs and webhook events."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import PermissionDenied
from django.db.models import Case, Q, QuerySet, Value, When
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from import_export.admin import ImportExportMixin
from rangefilter.filters import DateRangeQuickSelectListFilterBuilder

from connections.admin_base import SafeModelAdmin
from connections.providers.errors import ApiError
from connections.providers.spec import FieldSpec, as_text
from syncs.admin_base import DefaultFirstFilter, ReadOnlyAdmin
from syncs.flows import FLOWS, flow_choices
from syncs.forms import FieldMappingForm
from syncs.mappings import gl_mappings_check
from syncs.models import (
    AlertSent,
    Cursor,
    FieldMapping,
    Integration,
    SyncRun,
    WebhookEvent,
    WebhookProcessing,
)
from syncs.reconcile import RECONCILED_FLOWS, reconcile
from syncs.resources import FieldMappingResource, SpreadsheetCSV
from syncs.services import (
    QUEUE_UNREACHABLE,
    integration_enqueue_run,
    records_enqueue_replay,
    records_waiting_on,
    webhook_events_reprocess,
)

logger = logging.getLogger(__name__)


SETTING = "setting__"


def settings_field(spec: FieldSpec) -> forms.Field:
    """The form field of one declared flow setting (blank: its default, shown as a hint)."""
    default = as_text(spec.default)
    help_text = " ".join(filter(None, [spec.help, f"Blank: {default}." if default else ""]))
    if spec.choices:
        blank = f"(default: {default})" if default else "(none)"
        return forms.ChoiceField(
            label=spec.label,
            required=False,
            choices=[("", blank), *((c, c) for c in spec.choices)],
            help_text=spec.help,
        )
    widget: forms.Widget = (
        forms.Textarea(attrs={"rows": 4, "placeholder": default})
        if spec.multiline
        else forms.TextInput(attrs={"placeholder": default})
    )
    return forms.CharField(
        label=spec.label, required=False, help_text=help_text, widget=widget, max_length=4000
    )


def unread_settings(obj: Integration | None, flow: Any) -> list[str]:
    """``name = value`` of each setting saved on the integration that its flow does not
    declare (saved before the flow declared its settings, or for another flow)."""
    if obj is None or flow is None:
        return []
    known = {s.name for s in (*flow.declared_settings(), *flow.part_settings)}
    saved = sorted((obj.settings or {}).items())
    return [f"{k} = {as_text(v)}" for k, v in saved if k not in known]


class IntegrationForm(forms.ModelForm):
    """An integration, with one field per setting its flow declares (``settings_flow``: the
    flow whose fields are shown, set by the admin from the page being filled in)."""

    settings_flow: str = ""

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
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "flow" in self.fields:
            self.fields["flow"] = forms.ChoiceField(
                choices=[("", "---------"), *flow_choices()],
                help_text=self.fields["flow"].help_text,
            )
        current = self.instance.settings or {}
        for spec in self.declared():
            field = settings_field(spec)
            field.initial = as_text(current.get(spec.name)) if spec.name in current else ""
            self.fields[SETTING + spec.name] = field

    def declared(self) -> tuple[FieldSpec, ...]:
        flow = FLOWS.get(self.settings_flow)
        return flow.declared_settings() if flow else ()

    def clean(self) -> dict[str, Any]:
        """Each setting checked as its flow declares it; the error goes to its own field."""
        cleaned = super().clean()
        values: dict[str, Any] = {}
        for spec in self.declared():
            raw = cleaned.get(SETTING + spec.name)
            if raw in (None, ""):
                continue
            try:
                values[spec.name] = spec.clean(raw)
            except forms.ValidationError as exc:
                self.add_error(SETTING + spec.name, exc.messages)
        if self.settings_flow:
            self.instance.settings = values
        return cleaned


class FieldMappingInline(admin.TabularInline):
    model = FieldMapping
    extra = 0
    fields = ("kind", "source_value", "target_value", "note")


@admin.register(Integration)
class IntegrationAdmin(SafeModelAdmin):
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
    ]
    readonly_fields = ("settings_summary",)

    def _settings_flow(self, request: HttpRequest, obj: Integration | None) -> str:
        """The flow whose settings the page shows: as posted, else the integration's, else
        ``?flow=`` on an empty form."""
        if request.method == "POST":
            return str(request.POST.get("flow") or "")
        return obj.flow if obj is not None else str(request.GET.get("flow") or "")

    def get_fieldsets(self, request: HttpRequest, obj: Integration | None = None) -> list[Any]:
        editable = (
            self.has_change_permission(request, obj)
            if obj is not None
            else self.has_add_permission(request)
        )
        flow = FLOWS.get(self._settings_flow(request, obj))
        if not editable:
            fields: list[str] = ["settings_summary"]
        else:
            fields = [SETTING + spec.name for spec in flow.declared_settings()] if flow else []
        description = (
            "Blank fields take the default shown in grey."
            if fields
            else "Choose the flow and save: its settings appear here."
        )
        stale = unread_settings(obj, flow)
        if stale and editable:
            description += (
                f" Saved settings this flow does not read ({', '.join(stale)}) are removed when "
                "you save."
            )
        elif stale:
            description = f"Saved settings this flow does not read: {', '.join(stale)}."
        return [
            *self.fieldsets,
            ("Settings", {"fields": fields, "description": description}),
        ]

    def get_form(
        self, request: HttpRequest, obj: Integration | None = None, change: bool = False, **kw: Any
    ) -> Any:
        names = flatten_fieldsets(self.get_fieldsets(request, obj))
        kw["fields"] = [n for n in names if not n.startswith(SETTING) and n != "settings_summary"]
        form = super().get_form(request, obj, change, **kw)
        return type(form.__name__, (form,), {"settings_flow": self._settings_flow(request, obj)})

    @admin.display(description="Settings")
    def settings_summary(self, obj: Integration) -> str:
        """The settings as a reader sees them: each one's label and value, defaults marked."""
        flow = FLOWS.get(obj.flow)
        if flow is None:
            return "—"
        current = obj.settings or {}
        rows = [
            (
                spec.label,
                as_text(current[spec.name])
                if spec.name in current
                else f"{as_text(spec.default) or '—'} (default)",
            )
            for spec in flow.declared_settings()
        ]
        if not rows:
            return "This flow has no settings."
        return format_html(
            "<table class='mlc-settings'>{}</table>",
            format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows),
        )

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

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("syncs.run_integration")

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/run/", wrap(self.run_view), name="syncs_integration_run"),
            path("reconcile/", wrap(self.reconcile_view), name="syncs_integration_reconcile"),
            *super().get_urls(),
        ]

    def reconcile_view(self, request: HttpRequest) -> HttpResponse:
        """Month-end: Stripe's collections of a period against CloudSuite's receipts."""
        if not (
            self.has_view_permission(request) and request.user.has_perm("audit.view_collection")
        ):
            raise PermissionDenied
        form = ReconcileForm(request.GET or None)
        result = None
        if request.GET and form.is_valid():
            try:
                result = reconcile(
                    integration=form.cleaned_data["integration"],
                    start=form.cleaned_data["start"],
                    end=form.cleaned_data["end"],
                )
            except ApiError as exc:
                form.add_error(
                    None,
                    f"The payment system could not be read: {exc.remote_message or exc.message}",
                )
        context = {
            **self.admin_site.each_context(request),
            "title": "Reconcile payments with CloudSuite",
            "opts": self.model._meta,
            "form": form,
            "result": result,
        }
        return TemplateResponse(request, "admin/syncs/reconcile.html", context)

    def run_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Run now, from the overview's button (POST only)."""
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:index"))
        if not self.has_run_permission(request):
            raise PermissionDenied
        integration = Integration.objects.filter(pk=pk).first()
        if integration is None:
            self.message_user(request, "That integration no longer exists.", messages.ERROR)
        elif (
            integration_enqueue_run(
                integration=integration, requested_by=request.user.get_username()
            )
            is False
        ):
            self.message_user(request, f"{integration.name}: {QUEUE_UNREACHABLE}", messages.WARNING)
        else:
            self.message_user(
                request,
                f"{integration.name}: run queued. The overview shows its outcome when it ends.",
                messages.SUCCESS,
            )
        return HttpResponseRedirect(reverse("admin:index"))

    @admin.action(description="Run selected integrations now", permissions=["run"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[Integration]) -> None:
        queued = [
            integration_enqueue_run(
                integration=integration, requested_by=request.user.get_username()
            )
            for integration in queryset
        ]
        if False in queued:
            self.message_user(request, QUEUE_UNREACHABLE, messages.WARNING)
        else:
            self.message_user(
                request,
                f"Queued {len(queued)} run(s); watch them under Sync runs.",
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


class ReconcileForm(forms.Form):
    """The period to reconcile (dates in the server's time zone, both included)."""

    integration = forms.ModelChoiceField(
        queryset=Integration.objects.filter(flow__in=RECONCILED_FLOWS), empty_label=None
    )
    start = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        today = timezone.localdate()
        self.fields["start"].initial = today.replace(day=1)
        self.fields["end"].initial = today

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end:
            if end < start:
                raise forms.ValidationError("The period ends before it starts.")
            if (end - start).days > 92:
                raise forms.ValidationError("Reconcile at most a quarter (92 days) at a time.")
        return data


@admin.register(FieldMapping)
class FieldMappingAdmin(ImportExportMixin, SafeModelAdmin):
    """Mappings a finance user keeps; one opened from a review item saves and replays it.
    Mappings come in from CSV too (integration slug, kind, source value, target value, note),
    previewed before anything is saved."""

    resource_classes = [FieldMappingResource]
    import_formats = [SpreadsheetCSV]
    import_template_name = "admin/syncs/fieldmapping/import.html"
    import_error_display = ("message",)
    form = FieldMappingForm
    list_display = ("applies_to", "kind", "source_value", "target_value", "note")
    # shared mappings are found by the integration filter's "-" (none) and named in the column
    list_filter = ("integration", "kind")
    search_fields = ("source_value", "target_value", "note")
    list_editable = ("target_value",)

    @admin.display(description="Used by", ordering="integration__name")
    def applies_to(self, obj: FieldMapping) -> str:
        return obj.applies_to

    def get_changelist_form(self, request: HttpRequest, **kwargs: Any) -> Any:
        """Targets edited in the list are checked as in the form (a GL account in the chart)."""
        return super().get_changelist_form(request, form=FieldMappingForm, **kwargs)

    def _replay_after_save(self, request: HttpRequest, obj: FieldMapping) -> HttpResponse | None:
        """Opened from a review item (?replay=<record>): replay what this mapping settles."""
        raw = request.GET.get("replay", "")
        if not raw.isdigit():
            return None
        if not request.user.has_perm("audit.change_reviewitem"):
            self.message_user(
                request,
                "Saved. You may not replay records: ask a reviewer to replay the item.",
                messages.WARNING,
            )
            return None
        scope = (
            [obj.integration]
            if obj.integration is not None
            else list(Integration.objects.filter(target=obj.connection))
        )
        ids = {int(raw)}
        for integration in scope:  # a shared mapping settles the items of every integration
            ids.update(
                records_waiting_on(
                    integration=integration, kind=obj.kind, source_value=obj.source_value
                )
            )
        count = records_enqueue_replay(record_ids=ids, requested_by=request.user.get_username())
        self.message_user(
            request,
            f"Saved the mapping {obj.source_value} → {obj.target_value} and queued {count} "
            "item(s) for replay.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:audit_reviewitem_change", args=[int(raw)]))

    def response_add(
        self, request: HttpRequest, obj: FieldMapping, post_url_continue: Any = None
    ) -> HttpResponse:
        return self._replay_after_save(request, obj) or super().response_add(
            request, obj, post_url_continue
        )

    def response_change(self, request: HttpRequest, obj: FieldMapping) -> HttpResponse:
        return self._replay_after_save(request, obj) or super().response_change(request, obj)


@admin.register(Cursor)
class CursorAdmin(SafeModelAdmin):
    list_display = ("integration", "stream", "value", "updated_at")
    list_filter = ("integration",)
    readonly_fields = ("integration", "stream", "updated_at")
    fields = ("integration", "stream", "value", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Where each integration reads from next is the Integration admin's to see and set
        (after a restore, say); it is no page for those who review postings."""
        return request.user.has_perm("syncs.change_cursor")


EMPTY_RUN = Q(synced=0, failed=0, flagged=0, status__in=("succeeded", "skipped"))


class RunShowFilter(DefaultFirstFilter):
    """Runs that did something, by default — scheduled, manual or a webhook delivery that
    posted a receipt alike: runs that found nothing new are counted, not listed, unless asked
    for."""

    title = "show"
    parameter_name = "show"
    default_label = "Runs that did something"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("all", "Every run, the empty ones too"),
            ("empty", "Only runs that found nothing new"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[SyncRun]) -> QuerySet[SyncRun]:
        if self.value() == "all":
            return queryset
        if self.value() == "empty":
            return queryset.filter(EMPTY_RUN)
        return queryset.exclude(EMPTY_RUN)


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = (
        "run",
        "integration",
        "trigger",
        "status_badge",
        "synced",
        "flagged",
        "failed",
        "rereads",
        "finished_at",
        "took",
    )
    list_display_links = ("run",)
    list_filter = (
        RunShowFilter,
        "status",
        "trigger",
        ("created_at", DateRangeQuickSelectListFilterBuilder(title="Date")),
        "integration",
    )

    change_list_template = "admin/syncs/syncrun/change_list.html"

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        """Beside the list (never in its heading): how many empty runs of the last day it
        leaves out."""
        if "show" not in request.GET:
            empty = SyncRun.objects.filter(
                EMPTY_RUN, created_at__gte=timezone.now() - timedelta(hours=24)
            ).count()
            if empty:
                extra_context = {**(extra_context or {}), "empty_runs": empty}
        return super().changelist_view(request, extra_context)

    @admin.display(description="Run", ordering="id")
    def run(self, obj: SyncRun) -> str:
        return f"#{obj.pk}"

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: SyncRun) -> str:
        css = {
            SyncRun.Status.SUCCEEDED: "ok",
            SyncRun.Status.PARTIAL: "attention",
            SyncRun.Status.FAILED: "failing",
            SyncRun.Status.INTERRUPTED: "failing",
        }.get(obj.status, "off")
        text = obj.get_status_display()
        if obj.status == SyncRun.Status.RUNNING and obj.progress_percent is not None:
            text = f"{text} {obj.progress_percent}%"
        return format_html('<span class="mlc-badge mlc-{}">{}</span>', css, text)

    @admin.display(description="Re-reads")
    def rereads(self, obj: SyncRun) -> int:
        """Already posted or unchanged: counted here, not listed in the audit trail."""
        return obj.duplicate + obj.skipped

    @admin.display(description="Took")
    def took(self, obj: SyncRun) -> str:
        if not (obj.started_at and obj.finished_at):
            return "—"
        seconds = (obj.finished_at - obj.started_at).total_seconds()
        return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"

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
    fieldsets = [
        ("Outcome", {"fields": ["integration", "trigger", "status", "requested_by", "progress"]}),
        (
            "Records",
            {"fields": ["total", "done", "synced", "flagged", "failed", "duplicate", "skipped"]},
        ),
        ("When", {"fields": ["started_at", "finished_at", "heartbeat_at"]}),
        ("Detail", {"fields": ["error_summary", "audit_records", "split"]}),
    ]
    change_form_template = "admin/syncs/syncrun/change_form.html"
    RECORDS_SHOWN = 50

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: SyncRun | None = None,
    ) -> HttpResponse:
        """A run's page opens with what it did and its problems and postings (not re-reads)."""
        if obj is not None:
            problems_first = Case(
                When(status__in=("failed", "flagged"), then=Value(0)), default=Value(1)
            )
            shown = obj.records.exclude(status__in=("duplicate", "skipped")).order_by(
                problems_first, "pk"
            )[: self.RECORDS_SHOWN]
            context.update(
                run=obj,
                run_records=list(shown),
                run_rereads=obj.duplicate + obj.skipped,
                run_took=self.took(obj),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

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
    list_display = ("received_at", "system", "event_type", "event_id", "handled", "attempts")
    list_filter = (
        "processed",
        "system",
        ("received_at", DateRangeQuickSelectListFilterBuilder(title="Received")),
        "event_type",
    )
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
        "parked_at",
        "error",
        "received_at",
        "headers",
        "raw_body",
    )
    fields = readonly_fields

    @admin.display(description="Handled", ordering="processed")
    def handled(self, obj: WebhookEvent) -> str:
        if obj.processed:
            return format_html('<span class="mlc-badge mlc-ok">{}</span>', "Processed")
        if obj.parked_at is not None:
            return format_html(
                '<span class="mlc-badge mlc-failing" title="{}">{}</span>',
                obj.error,
                "Stopped retrying: see why",
            )
        if obj.error:
            return format_html('<span class="mlc-badge mlc-failing">{}</span>', "Failed")
        return format_html('<span class="mlc-badge mlc-attention">{}</span>', "Waiting")

    @admin.action(
        description="Process selected events again (failed or unprocessed only)",
        permissions=["work"],
    )
    def reprocess(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        count = webhook_events_reprocess(event_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Queued {count} event(s) for processing.", messages.SUCCESS)


@admin.register(AlertSent)
class AlertSentAdmin(ReadOnlyAdmin):
    """The alerts e-mailed to the finance reviewers: what, when, to how many."""

    list_display = ("sent_at", "kind", "subject", "recipients")
    list_filter = ("kind",)
    fields = ("kind", "key", "subject", "recipients", "sent_at")
    readonly_fields = fields


# Registered after this module's pages: the audit trail's, and django-q2's and axes' on our terms.
from syncs import admin_thirdparty, audit_admin  # noqa: E402, F401
