"""Admin for the audit trail, the review queue (replay, dismiss) and the posting ledger.

It lives in ``syncs`` rather than ``audit`` because its actions call the replay services, and
``audit`` never imports ``syncs``; the pages are still the audit app's (``/admin/audit/…``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, QuerySet, Subquery, Sum
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from import_export.admin import ExportMixin
from rangefilter.filters import DateRangeQuickSelectListFilterBuilder

from audit.models import (
    FIRST_SEEN,
    NEEDS_REVIEW,
    AuditRecord,
    Collection,
    PaymentQuote,
    PostingLedger,
    ReviewItem,
)
from connections.providers import plain
from connections.providers.capabilities import LinksToRecords
from connections.providers.registry import capable, provider_class
from syncs import display
from syncs import queue as review_queue
from syncs.admin_base import DefaultFirstFilter, ReadOnlyAdmin
from syncs.flows import flows_listed_in
from syncs.mappings import mapping_kind_label
from syncs.models import FieldMapping, Integration
from syncs.overview import books_of
from syncs.resources import AuditRecordResource, CollectionResource
from syncs.services import (
    QUEUE_UNREACHABLE,
    record_live,
    record_state,
    records_dismiss,
    records_replayable,
    records_request_replay,
    review_siblings,
)

logger = logging.getLogger(__name__)

RECORD_FIELDS = (
    "integration",
    "stream",
    "source_key",
    "target_key",
    "status",
    "seen_via",
    "created_at",
    "times_seen",
    "last_seen_at",
    "run",
    "event",
    "attempt",
    "replay_of",
    "ledger",
    "resolved_at",
    "resolved_by",
    "resolution",
)
OPEN_STATUSES = (AuditRecord.Status.FAILED, AuditRecord.Status.FLAGGED)
QUIET = (AuditRecord.Status.DUPLICATE, AuditRecord.Status.SKIPPED)
DateRange = DateRangeQuickSelectListFilterBuilder(title="Date")


def fix_link(record: AuditRecord) -> tuple[str, str] | None:
    """(label, url) of the mapping form that settles a flag, prefilled, saving then replaying."""
    if not record.fix_kind or record.status != AuditRecord.Status.FLAGGED:
        return None
    kind_label = mapping_kind_label(record.fix_kind)
    existing = (
        FieldMapping.for_integration(record.integration)
        .filter(kind=record.fix_kind, source_value=record.fix_value)
        .order_by("connection_id")  # the integration's own (no connection) before a shared one
        .first()
    )
    if existing is not None:
        url = reverse("admin:syncs_fieldmapping_change", args=[existing.pk])
        return f"Correct the {kind_label} mapping for {record.fix_value}", (
            f"{url}?replay={record.pk}"
        )
    url = reverse("admin:syncs_fieldmapping_add")
    query = (
        f"integration={record.integration_id}&kind={record.fix_kind}"
        f"&source_value={record.fix_value}&replay={record.pk}"
    )
    return f"Add the {kind_label} mapping for {record.fix_value}", f"{url}?{query}"


def _changelist(response: HttpResponse) -> Any:
    """The ChangeList a list page rendered (None when it redirected, or said there is none)."""
    return (getattr(response, "context_data", None) or {}).get("cl")


class AmountSearch:
    """A list's search that also finds rows of the amount a term reads as ("2,084.80")."""

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        found, duplicates = super().get_search_results(  # type: ignore[misc]
            request, queryset, search_term
        )
        amount = display.amount_searched(search_term)
        if amount is not None:  # either sign: a refund of it too
            found = found | queryset.filter(amount__in=[amount, -amount])
        return found, duplicates


def source_page(record: AuditRecord) -> tuple[str, str] | None:
    """(label, address) of the page in the source system where a person takes the next step
    on a flagged record (where its provider can say; capability ``LinksToRecords``)."""
    if not record.see_kind:
        return None
    source = record.integration.source
    if not capable(source.kind, LinksToRecords):
        return None
    provider: Any = provider_class(source.kind)
    return provider.record_page(source, record.see_kind, record.see_id)


class ShowFilter(DefaultFirstFilter):
    """Audit lists show postings and problems by default: re-reads (already posted, unchanged)
    are counted on their run and listed only when asked for."""

    title = "show"
    parameter_name = "show"
    default_label = "Postings and problems"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("all", "Everything, re-reads included"),
            ("rereads", "Only re-reads (already posted, unchanged)"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "all" or request.GET.get("status__exact") in QUIET:
            return queryset
        if self.value() == "rereads":
            return queryset.filter(status__in=QUIET)
        return queryset.exclude(status__in=QUIET)


def _ask_then_do(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    *,
    action: str,
    explain: str,
    do: Callable[[list[int], str, str], int | tuple[int, bool | None]],
    done: str,
    ask_note: bool = False,
) -> TemplateResponse | None:
    """Show a confirmation page listing the eligible records; act once the user confirms.
    ``do`` returns how many it acted on, and for queued work whether the queue took it."""
    ids = list(queryset.values_list("pk", flat=True))
    note = (request.POST.get("note") or "").strip()
    if request.POST.get("confirmed") == "yes" and (note or not ask_note):
        result = do(ids, request.user.get_username(), note)
        count, queued = result if isinstance(result, tuple) else (result, True)
        model_admin.message_user(request, done.format(count=count), messages.SUCCESS)
        if queued is False:
            model_admin.message_user(request, QUEUE_UNREACHABLE, messages.WARNING)
        return None
    records = records_replayable(record_ids=ids)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"{action.capitalize()} records",
        "opts": model_admin.model._meta,
        "records": records,
        "skipped": len(ids) - len(records),
        "action": action,
        "explain": explain,
        "ask_note": ask_note,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "selected": [str(pk) for pk in ids],
    }
    return TemplateResponse(request, "admin/audit/confirm_action.html", context)


class ReplayActionsMixin:
    """Replay and dismiss, each behind a confirmation page."""

    actions = ["replay", "dismiss"]

    @admin.action(description="Replay selected records", permissions=["work"])
    def replay(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return _ask_then_do(
            self,
            request,
            queryset,
            action="replay",
            explain="Each record is mapped again from its stored source data (with today's "
            "mappings) and loaded. Anything already posted is recognised by the posting ledger "
            "and not posted twice.",
            do=lambda ids, user, _: records_request_replay(record_ids=ids, requested_by=user),
            done="Queued {count} record(s) for replay.",
        )

    @admin.action(description="Dismiss selected records (no replay)", permissions=["work"])
    def dismiss(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return _ask_then_do(
            self,
            request,
            queryset,
            action="dismiss",
            explain="Dismissed records leave the review queue without being posted. Say why.",
            do=lambda ids, user, note: records_dismiss(
                record_ids=ids, requested_by=user, note=note
            ),
            done="Dismissed {count} record(s).",
            ask_note=True,
        )


class RecordPageMixin:
    """The page of one record: plain reason, the fix, Replay and Dismiss, labelled payloads."""

    change_form_template = "admin/audit/record_change_form.html"

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: AuditRecord | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context.update(record_context(self, request, obj))
        return super().render_change_form(  # type: ignore[misc]
            request, context, add, change, form_url, obj
        )


def record_context(model_admin: Any, request: HttpRequest, obj: AuditRecord) -> dict[str, Any]:
    """What the record page shows beyond its fields."""
    can_work = model_admin.has_work_permission(request)
    is_open = obj.status in OPEN_STATUSES and obj.resolved_at is None
    noted = (
        FieldMapping.for_integration(obj.integration)
        .filter(kind="gl_account")
        .exclude(note="")
        .values_list("target_value", "note")
    )
    posting = display.entries(obj.sent_payload, obj.looked_up, names=dict(noted))
    try:
        target_name = plain.system_name(provider_class(obj.integration.target.kind))
    except LookupError:
        target_name = str(obj.integration.target)
    return {
        "record": obj,
        "posting": posting,
        "posting_totals": display.entry_totals(posting),
        "sent_lines": display.line_table(obj.sent_payload, obj.currency),
        "target_name": target_name,
        "amount_text": (
            display.amount_text(obj.amount, obj.currency) if obj.amount is not None else ""
        ),
        "record_open": is_open,
        "can_work": can_work and is_open,
        "fix": (
            fix_link(obj) if is_open and request.user.has_perm("syncs.add_fieldmapping") else None
        ),
        "state": record_state(record=obj),
        "see_link": source_page(obj) if is_open else None,
        "state_url": reverse("admin:audit_reviewitem_state", args=[obj.pk]),
        "replay_url": reverse("admin:audit_reviewitem_replay", args=[obj.pk]),
        "dismiss_url": reverse("admin:audit_reviewitem_dismiss", args=[obj.pk]),
        "read_fields": display.fields(obj.source_payload),
        "looked_up_fields": (
            display.fields(obj.looked_up, currency=obj.currency) if obj.looked_up else []
        ),
        "sent_fields": display.fields(obj.sent_payload) if obj.sent_payload else [],
        "answer_fields": display.fields(obj.response_summary) if obj.response_summary else [],
        "replay_link": (
            reverse("admin:audit_auditrecord_change", args=[obj.replays.order_by("-pk")[0].pk])
            if obj.replays.exists()
            else ""
        ),
    }


@admin.register(AuditRecord)
class AuditRecordAdmin(RecordPageMixin, ReplayActionsMixin, ExportMixin, ReadOnlyAdmin):
    resource_classes = [AuditRecordResource]
    list_display = (
        "created_at",
        "integration",
        "record",
        "status_badge",
        "short_reason",
        "seen_via",
    )
    list_filter = (ShowFilter, "status", ("created_at", DateRange), "integration", "stream")
    search_fields = ("source_key", "target_key", "reason")
    readonly_fields = RECORD_FIELDS
    fields = RECORD_FIELDS
    list_select_related = ("integration",)

    @admin.display(description="Record", ordering="source_key")
    def record(self, obj: AuditRecord) -> str:
        return f"{obj.stream} {obj.source_key}" + (f" → {obj.target_key}" if obj.target_key else "")

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: AuditRecord) -> str:
        css = {
            AuditRecord.Status.SYNCED: "ok",
            AuditRecord.Status.FAILED: "failing",
            AuditRecord.Status.FLAGGED: "attention",
        }.get(obj.status, "off")
        text = obj.get_status_display()
        if obj.resolved_at is not None and obj.status in OPEN_STATUSES:
            css, text = "off", f"{text} · resolved"
        elif obj.replay_requested_at is not None and obj.status in OPEN_STATUSES:
            text = "Replay queued"
        return format_html('<span class="mlc-badge mlc-{}">{}</span>', css, text)

    @admin.display(description="Reason")
    def short_reason(self, obj: AuditRecord) -> str:
        return obj.reason if len(obj.reason) <= 160 else obj.reason[:158] + "…"


class ProblemFilter(admin.SimpleListFilter):
    """What a person does about an item: add a mapping, decide, wait for a retry, fix."""

    title = "kind of problem"
    parameter_name = "problem"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(review_queue.PROBLEM_KINDS.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        query = review_queue.PROBLEM_QUERIES.get(self.value() or "")
        return queryset if query is None else queryset.filter(query)


class BooksFilter(admin.SimpleListFilter):
    """The ERP an item's integration feeds or reads (CloudSuite, IFS Cloud …)."""

    title = "ERP"
    parameter_name = "erp"

    def _by_system(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for integration in Integration.objects.select_related("source", "target"):
            found.setdefault(books_of(integration), []).append(integration.pk)
        return found

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in sorted(self._by_system())]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if not self.value():
            return queryset
        return queryset.filter(integration_id__in=self._by_system().get(self.value(), []))


@admin.register(ReviewItem)
class ReviewItemAdmin(AuditRecordAdmin):
    """Failed and flagged records that still need a human: one item per record of an
    integration (however many runs met it), oldest problems easiest to find."""

    list_display = ("age", "integration", "record", "with_whom", "money", "problem", "fix")
    list_display_links = ("record",)
    list_filter = (
        ProblemFilter,
        BooksFilter,
        ("integration", admin.RelatedOnlyFieldListFilter),
        ("created_at", DateRange),
    )
    search_fields = ("party", "party_name", "document", "source_key", "target_key", "reason")
    search_help_text = "A customer's or supplier's code or name, an invoice or a record's id."
    ordering = ("created_at",)
    change_list_template = "admin/audit/reviewitem/change_list.html"
    GROUPED_LIMIT = 5000  # items grouped above the list

    def get_ordering(self, request: HttpRequest) -> tuple[str, ...]:
        return ("first_seen", "pk")  # oldest problem first, however often it was replayed

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        open_rows = AuditRecord.objects.filter(
            NEEDS_REVIEW,
            integration=OuterRef("integration"),
            stream=OuterRef("stream"),
            source_key=OuterRef("source_key"),
        )
        latest = open_rows.order_by("-pk").values("pk")[:1]
        first_seen = open_rows.annotate(f=FIRST_SEEN).order_by("f").values("f")[:1]
        seen = (
            open_rows.order_by().values("integration").annotate(n=Sum("times_seen")).values("n")[:1]
        )
        return (
            self.model._default_manager.select_related("integration")  # ordered below, once
            .filter(NEEDS_REVIEW)
            .filter(pk=Subquery(latest))
            .annotate(first_seen=Subquery(first_seen), seen_total=Subquery(seen))
            .order_by(*self.get_ordering(request))
        )

    @admin.display(description="Age", ordering="first_seen")
    def age(self, obj: AuditRecord) -> str:
        """How long it has waited, and how often runs met it (the last time)."""
        first = getattr(obj, "first_seen", None) or obj.created_at
        now = timezone.now()
        total = getattr(obj, "seen_total", None) or obj.times_seen
        last = obj.last_seen_at or obj.created_at
        return format_html(
            "{}<div class='mlc-why'>seen {}\u00d7, last {} ago</div>",
            display.age((now - first).total_seconds()),
            total,
            display.age((now - last).total_seconds()),
        )

    @admin.display(description="Record", ordering="source_key")
    def record(self, obj: AuditRecord) -> str:
        """The stream and the record's id, never broken inside the id."""
        return format_html('{} <span class="mlc-id">{}</span>', obj.stream, obj.source_key)

    @admin.display(description="Customer or supplier", ordering="party")
    def with_whom(self, obj: AuditRecord) -> str:
        if not obj.party:
            return "—"
        if not obj.party_name:
            return obj.party
        return format_html("{}<div class='mlc-why'>{}</div>", obj.party, obj.party_name)

    @admin.display(description="Amount", ordering="amount")
    def money(self, obj: AuditRecord) -> str:
        return display.amount_text(obj.amount, obj.currency) if obj.amount is not None else "—"

    @admin.display(description="Problem")
    def problem(self, obj: AuditRecord) -> str:
        """The reason; a failure says so first (a flag is what the queue is for)."""
        text = obj.reason if len(obj.reason) <= 200 else obj.reason[:198] + "…"
        if obj.status != AuditRecord.Status.FAILED:
            if obj.advice:
                advice = obj.advice if len(obj.advice) <= 140 else obj.advice[:138] + "…"
                return format_html("{}<div class='mlc-why'>Next: {}</div>", text, advice)
            return text
        label = "Failed, retried by itself" if obj.retryable else "Failed"
        return format_html('<span class="mlc-badge mlc-failing">{}</span> {}', label, text)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        """The list, with the items grouped by what settles them above it (as filtered)."""
        extra_context = {
            **(extra_context or {}),
            "title": "Review queue: what needs a person, oldest first",
        }
        response = super().changelist_view(request, extra_context)
        cl = _changelist(response)
        if cl is not None:
            items = list(cl.queryset.select_related("integration")[: self.GROUPED_LIMIT])
            found = review_queue.groups(items)
            can_fix = request.user.has_perm("syncs.add_fieldmapping")
            for group in found:
                group.fix = fix_link(group.items[0]) if can_fix else None  # type: ignore[attr-defined]
            response.context_data["groups"] = found
            response.context_data["grouped_capped"] = len(items) >= self.GROUPED_LIMIT
        return response

    def get_list_display(self, request: HttpRequest) -> Any:
        """The fix column links to a mapping form only for those who may add mappings."""
        if request.user.has_perm("syncs.add_fieldmapping"):
            return self.list_display
        return tuple(c for c in self.list_display if c != "fix")

    @admin.display(description="Fix")
    def fix(self, obj: AuditRecord) -> str:
        link = fix_link(obj)
        if link is None:
            url = reverse("admin:audit_reviewitem_change", args=[obj.pk])
            return format_html('<a href="{}">Open the item</a>', url)
        return format_html('<a href="{}">{}</a>', link[1], link[0])

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> AuditRecord | None:
        """An item's page stays reachable once it is resolved (it then says how)."""
        try:
            return ReviewItem.objects.select_related("integration").get(pk=int(object_id))
        except (ValueError, ReviewItem.DoesNotExist):
            return None

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """An item replayed that needs attention again lives on in a newer record: its page
        follows it there, so what the user sees and acts on is the live item."""
        obj = self.get_object(request, object_id)
        live = record_live(record=obj) if obj is not None else None
        if live is not None and self.has_view_permission(request, obj):
            self.message_user(
                request,
                f"Record #{obj.pk} was replayed and needs attention again: this is the item "
                "now, with its history.",
                messages.INFO,
            )
            return HttpResponseRedirect(reverse("admin:audit_reviewitem_change", args=[live.pk]))
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/replay/", wrap(self.replay_view), name="audit_reviewitem_replay"),
            path("<int:pk>/dismiss/", wrap(self.dismiss_view), name="audit_reviewitem_dismiss"),
            path("<int:pk>/state/", wrap(self.state_view), name="audit_reviewitem_state"),
            *super().get_urls(),
        ]

    def _item(self, request: HttpRequest, pk: int) -> AuditRecord:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(AuditRecord, pk=pk)

    def state_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        """Where an item stands (its page asks every few seconds after a replay)."""
        return JsonResponse(record_state(record=self._item(request, pk)))

    def replay_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Replay one item, after a page showing what will be read, mapped and sent."""
        record = self._item(request, pk)
        if not self.has_work_permission(request):
            raise PermissionDenied
        page = reverse("admin:audit_reviewitem_change", args=[pk])
        if request.method == "POST" and request.POST.get("confirmed") == "yes":
            count, queued = records_request_replay(
                record_ids=[record.pk], requested_by=request.user.get_username()
            )
            if count and queued is False:
                self.message_user(request, QUEUE_UNREACHABLE, messages.WARNING)
            elif count:
                self.message_user(request, "Replay queued.", messages.SUCCESS)
            else:
                self.message_user(
                    request, "This item is resolved already: nothing to replay.", messages.INFO
                )
            return HttpResponseRedirect(page)
        mappings = list(
            FieldMapping.for_integration(record.integration).order_by("kind", "source_value")
        )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Replay {record.stream} {record.source_key}?",
            "opts": self.model._meta,
            "record": record,
            "page_url": page,
            "source": record.integration.source,
            "target": record.integration.target,
            "read_fields": display.fields(record.source_payload),
            "sent_fields": display.fields(record.sent_payload) if record.sent_payload else [],
            "mappings": mappings,
            "open": record.status in OPEN_STATUSES and record.resolved_at is None,
        }
        return TemplateResponse(request, "admin/audit/replay_one.html", context)

    def dismiss_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Dismiss one item (and every open row of the same record), saying why."""
        record = self._item(request, pk)
        if not self.has_work_permission(request):
            raise PermissionDenied
        page = reverse("admin:audit_reviewitem_change", args=[pk])
        note = (request.POST.get("note") or "").strip()
        if request.method == "POST" and note:
            count = records_dismiss(
                record_ids=[record.pk], requested_by=request.user.get_username(), note=note
            )
            self.message_user(
                request,
                f"Dismissed ({count} row(s) of this record)." if count else "Already resolved.",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(reverse("admin:audit_reviewitem_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Dismiss {record.stream} {record.source_key}?",
            "opts": self.model._meta,
            "record": record,
            "page_url": page,
            "rows": len(review_siblings(record_ids=[record.pk])),
            "asked": request.method == "POST",
        }
        return TemplateResponse(request, "admin/audit/dismiss_one.html", context)


@admin.register(Collection)
class CollectionAdmin(AmountSearch, RecordPageMixin, ExportMixin, ReadOnlyAdmin):
    """Which CloudSuite invoices Stripe has collected, and where each receipt was posted, with
    totals per currency for the period filtered."""

    resource_classes = [CollectionResource]
    list_display = (
        "posted",
        "customer",
        "invoice",
        "what",
        "gross",
        "fee",
        "net",
        "gl",
        "receipt",
    )
    list_display_links = ("posted",)
    list_filter = (
        ("created_at", DateRange),
        ("integration", admin.RelatedOnlyFieldListFilter),
        "seen_via",
    )
    # customer code and name, invoice, Stripe payment id, receipt batch — and an amount
    search_fields = ("party", "party_name", "document", "source_key", "target_key", "reason")
    search_help_text = "A customer's code or name, an invoice, a Stripe payment id or an amount."
    fields = RECORD_FIELDS
    readonly_fields = RECORD_FIELDS
    change_list_template = "admin/audit/collection/change_list.html"
    TOTALS_LIMIT = 50_000

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .filter(
                integration__flow__in=flows_listed_in("collections"),
                status=AuditRecord.Status.SYNCED,
            )
            .select_related("ledger")
        )

    def has_work_permission(self, request: HttpRequest) -> bool:
        return False  # a posted collection has nothing to replay

    _row = staticmethod(display.collection_of)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        cl = _changelist(response)
        if cl is not None:
            rows = list(
                cl.queryset.select_related(None).only("sent_payload", "source_payload")[
                    : self.TOTALS_LIMIT
                ]
            )
            response.context_data["totals"] = display.collection_totals(rows)
            response.context_data["totals_capped"] = len(rows) >= self.TOTALS_LIMIT
        return response

    @admin.display(description="Posted", ordering="created_at")
    def posted(self, obj: AuditRecord) -> str:
        at = timezone.localtime(obj.created_at)
        return format_html("{}<div class='mlc-why'>{}</div>", f"{at:%Y-%m-%d}", f"{at:%H:%M:%S %Z}")

    @admin.display(description="Customer", ordering="party")
    def customer(self, obj: AuditRecord) -> str:
        code = obj.party or self._row(obj)["customer"]
        if not obj.party_name:
            return code or "—"
        return format_html("{}<div class='mlc-why'>{}</div>", code, obj.party_name)

    @admin.display(description="CloudSuite invoice")
    def invoice(self, obj: AuditRecord) -> str:
        return self._row(obj)["invoice"]

    @admin.display(description="Stripe")
    def what(self, obj: AuditRecord) -> str:
        """What Stripe moved and its id, the id never broken inside."""
        return format_html('{}<div class="mlc-id">{}</div>', self._row(obj)["kind"], obj.source_key)

    @admin.display(description="Amount")
    def gross(self, obj: AuditRecord) -> str:
        row = self._row(obj)
        return display.amount_text(row["amount"], row["currency"])

    @admin.display(description="Stripe fee")
    def fee(self, obj: AuditRecord) -> str:
        row = self._row(obj)
        return display.amount_text(row["fee"], row["currency"]) if row["fee"] else "—"

    @admin.display(description="Net")
    def net(self, obj: AuditRecord) -> str:
        row = self._row(obj)
        return display.amount_text(row["net"], row["currency"])

    @admin.display(description="GL account")
    def gl(self, obj: AuditRecord) -> str:
        return self._row(obj)["gl"] or "—"

    @admin.display(description="Receipt batch", ordering="target_key")
    def receipt(self, obj: AuditRecord) -> str:
        return obj.target_key


@admin.register(PaymentQuote)
class PaymentQuoteAdmin(AmountSearch, RecordPageMixin, ReadOnlyAdmin):
    """The Wise quote prepared for each open supplier invoice: make the transfer from it in Wise."""

    list_display = (
        "prepared",
        "supplier",
        "invoice",
        "due",
        "pays",
        "costs",
        "rate",
        "held_until",
        "quote",
    )
    list_filter = (("integration", admin.RelatedOnlyFieldListFilter), ("created_at", DateRange))
    search_fields = ("party", "party_name", "document", "source_key", "target_key", "reason")
    search_help_text = "A supplier's code or name, an invoice, a Wise quote id or an amount."
    fields = RECORD_FIELDS
    readonly_fields = RECORD_FIELDS

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .filter(
                integration__flow__in=flows_listed_in("payment_quotes"),
                status=AuditRecord.Status.SYNCED,
            )
        )

    @staticmethod
    def _quote(obj: AuditRecord) -> dict[str, Any]:
        return obj.response_summary or {}

    @admin.display(description="Prepared", ordering="created_at")
    def prepared(self, obj: AuditRecord) -> str:
        at = timezone.localtime(obj.created_at)
        return format_html("{}<div class='mlc-why'>{}</div>", f"{at:%Y-%m-%d}", f"{at:%H:%M %Z}")

    @admin.display(description="Supplier", ordering="party")
    def supplier(self, obj: AuditRecord) -> str:
        code = str(self._quote(obj).get("SUNO", "")) or obj.party
        if not obj.party_name:
            return code
        return format_html("{}<div class='mlc-why'>{}</div>", code, obj.party_name)

    @admin.display(description="Invoice")
    def invoice(self, obj: AuditRecord) -> str:
        return str(self._quote(obj).get("SINO", ""))

    @admin.display(description="Due")
    def due(self, obj: AuditRecord) -> str:
        """The due date, marked when it has passed (pay those first)."""
        value = str(self._quote(obj).get("DUDT", ""))
        if len(value) != 8:
            return value
        shown = f"{value[:4]}-{value[4:6]}-{value[6:]}"
        if value < f"{timezone.localdate():%Y%m%d}":
            return format_html(
                '<span class="mlc-overdue">{}</span><div class="mlc-why">overdue</div>', shown
            )
        return shown

    @staticmethod
    def _money(value: Any, currency: Any) -> str:
        try:
            amount = Decimal(str(value))
        except ArithmeticError:
            return str(value or "—")
        return display.amount_text(amount, str(currency or ""))

    @admin.display(description="Pays")
    def pays(self, obj: AuditRecord) -> str:
        q = self._quote(obj)
        return self._money(q.get("target_amount"), q.get("target_currency"))

    @admin.display(description="Costs")
    def costs(self, obj: AuditRecord) -> str:
        q = self._quote(obj)
        return self._money(q.get("source_amount"), q.get("source_currency"))

    @admin.display(description="Rate")
    def rate(self, obj: AuditRecord) -> str:
        return str(self._quote(obj).get("rate", ""))

    @admin.display(description="Rate held until")
    def held_until(self, obj: AuditRecord) -> str:
        raw = str(self._quote(obj).get("expires", ""))
        try:
            at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            return raw
        if at.tzinfo is None:
            return raw
        at = timezone.localtime(at)
        return format_html("{}<div class='mlc-why'>{}</div>", f"{at:%Y-%m-%d}", f"{at:%H:%M %Z}")

    @admin.display(description="Wise quote", ordering="target_key")
    def quote(self, obj: AuditRecord) -> str:
        """The quote id, breakable only after its hyphens."""
        parts = obj.target_key.split("-")
        return format_html_join(mark_safe("-<wbr>"), "{}", ((p,) for p in parts))


@admin.register(PostingLedger)
class PostingLedgerAdmin(ReadOnlyAdmin):
    list_filter = ("state", "target", ("created_at", DateRange), "integration")
    list_display = (
        "created_at",
        "integration",
        "target",
        "natural_key",
        "state",
        "remote_id",
        "attempts",
        "confirmed_at",
    )
    search_fields = ("natural_key", "remote_id")
    readonly_fields = (
        "integration",
        "target",
        "natural_key",
        "state",
        "remote_id",
        "generation",
        "attempts",
        "lease_owner",
        "lease_expires_at",
        "last_error",
        "created_at",
        "confirmed_at",
        "updated_at",
    )
    fields = readonly_fields
