"""Admin for the audit trail, the review queue (replay, dismiss) and the posting ledger.

It lives in ``syncs`` rather than ``audit`` because its actions call the replay services, and
``audit`` never imports ``syncs``; the pages are still the audit app's (``/admin/audit/…``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from audit.models import AuditRecord, Collection, PaymentQuote, PostingLedger, ReviewItem
from syncs.admin_base import ReadOnlyAdmin
from syncs.services import records_dismiss, records_enqueue_replay, records_replayable

logger = logging.getLogger(__name__)

RECORD_FIELDS = (
    "run",
    "event",
    "integration",
    "stream",
    "source_key",
    "target_key",
    "status",
    "reason",
    "retryable",
    "seen_via",
    "attempt",
    "replay_of",
    "ledger",
    "resolved_at",
    "resolved_by",
    "resolution",
    "created_at",
    "source_payload",
    "sent_payload",
    "response_summary",
)


def _ask_then_do(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    *,
    action: str,
    explain: str,
    do: Callable[[list[int], str, str], int],
    done: str,
    ask_note: bool = False,
) -> TemplateResponse | None:
    """Show a confirmation page listing the eligible records; act once the user confirms."""
    ids = list(queryset.values_list("pk", flat=True))
    note = (request.POST.get("note") or "").strip()
    if request.POST.get("confirmed") == "yes" and (note or not ask_note):
        count = do(ids, request.user.get_username(), note)
        model_admin.message_user(request, done.format(count=count), messages.SUCCESS)
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
            do=lambda ids, user, _: records_enqueue_replay(record_ids=ids, requested_by=user),
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


@admin.register(AuditRecord)
class AuditRecordAdmin(ReplayActionsMixin, ReadOnlyAdmin):
    list_display = (
        "created_at",
        "integration",
        "source_key",
        "target_key",
        "status",
        "seen_via",
        "short_reason",
    )
    list_filter = ("status", "integration", "stream", "seen_via", "retryable")
    search_fields = ("source_key", "target_key", "reason")
    readonly_fields = RECORD_FIELDS
    fields = RECORD_FIELDS
    list_select_related = ("integration",)

    @admin.display(description="Reason")
    def short_reason(self, obj: AuditRecord) -> str:
        return obj.reason if len(obj.reason) <= 90 else obj.reason[:88] + "…"


@admin.register(ReviewItem)
class ReviewItemAdmin(AuditRecordAdmin):
    """Failed and flagged records that still need a human."""

    list_display = (
        "created_at",
        "integration",
        "stream",
        "source_key",
        "status",
        "short_reason",
        "attempt",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .filter(
                status__in=(AuditRecord.Status.FAILED, AuditRecord.Status.FLAGGED), resolved_at=None
            )
        )


@admin.register(Collection)
class CollectionAdmin(ReadOnlyAdmin):
    """Which CloudSuite invoices Stripe has collected, and where each receipt was posted."""

    list_display = ("created_at", "invoice", "what", "amount", "receipt", "seen_via")
    list_filter = ("integration", "seen_via")
    search_fields = ("reason", "source_key", "target_key")  # the reason names the invoice
    fields = RECORD_FIELDS
    readonly_fields = RECORD_FIELDS

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .filter(integration__flow="stripe_m3.payments", status=AuditRecord.Status.SYNCED)
            .select_related("ledger")
        )

    @admin.display(description="CloudSuite invoice")
    def invoice(self, obj: AuditRecord) -> str:
        lines = (obj.sent_payload or {}).get("lines") or [{}]
        return str(lines[0].get("CINO", ""))

    @admin.display(description="Stripe")
    def what(self, obj: AuditRecord) -> str:
        kind = (obj.source_payload or {}).get("kind", "")
        return f"{kind} {obj.source_key}".strip()

    @admin.display(description="Amount")
    def amount(self, obj: AuditRecord) -> str:
        lines = (obj.sent_payload or {}).get("lines") or [{}]
        return f"{lines[0].get('PYAM', '')} {lines[0].get('CUCD', '')}".strip()

    @admin.display(description="Receipt batch", ordering="target_key")
    def receipt(self, obj: AuditRecord) -> str:
        return obj.target_key


@admin.register(PaymentQuote)
class PaymentQuoteAdmin(ReadOnlyAdmin):
    """The Wise quote prepared for each open supplier invoice: make the transfer from it in Wise."""

    list_display = (
        "created_at",
        "supplier",
        "invoice",
        "due",
        "pays",
        "costs",
        "rate",
        "held_until",
        "target_key",
    )
    list_filter = ("integration",)
    search_fields = ("source_key", "target_key", "reason")
    fields = RECORD_FIELDS
    readonly_fields = RECORD_FIELDS

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .filter(integration__flow="m3_wise.quotes", status=AuditRecord.Status.SYNCED)
        )

    @staticmethod
    def _quote(obj: AuditRecord) -> dict[str, Any]:
        return obj.response_summary or {}

    @admin.display(description="Supplier")
    def supplier(self, obj: AuditRecord) -> str:
        return str(self._quote(obj).get("SUNO", ""))

    @admin.display(description="Invoice")
    def invoice(self, obj: AuditRecord) -> str:
        return str(self._quote(obj).get("SINO", ""))

    @admin.display(description="Due")
    def due(self, obj: AuditRecord) -> str:
        value = str(self._quote(obj).get("DUDT", ""))
        return f"{value[:4]}-{value[4:6]}-{value[6:]}" if len(value) == 8 else value

    @admin.display(description="Pays")
    def pays(self, obj: AuditRecord) -> str:
        q = self._quote(obj)
        return f"{q.get('target_amount', '')} {q.get('target_currency', '')}".strip()

    @admin.display(description="Costs")
    def costs(self, obj: AuditRecord) -> str:
        q = self._quote(obj)
        return f"{q.get('source_amount', '')} {q.get('source_currency', '')}".strip()

    @admin.display(description="Rate")
    def rate(self, obj: AuditRecord) -> str:
        return str(self._quote(obj).get("rate", ""))

    @admin.display(description="Rate held until")
    def held_until(self, obj: AuditRecord) -> str:
        return str(self._quote(obj).get("expires", ""))


@admin.register(PostingLedger)
class PostingLedgerAdmin(ReadOnlyAdmin):
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
    list_filter = ("state", "target", "integration")
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
