"""The audit trail (one record per source record per run) and the posting ledger."""

from __future__ import annotations

import logging

from django.db import models
from django.db.models.functions import Coalesce

logger = logging.getLogger(__name__)


class AuditRecord(models.Model):
    """What happened to one source record in one run: the outcome, why, and what was sent.

    A record from a webhook event links to the event; it belongs to a run only when the delivery
    wrote something or failed (a duplicate or a flag needs no run of its own).  Payloads are
    redacted before they are stored.  Failed and flagged records form the review
    queue until a replay succeeds or a user dismisses them.
    """

    class Status(models.TextChoices):
        SYNCED = "synced", "Synced"
        SKIPPED = "skipped", "Skipped"
        DUPLICATE = "duplicate", "Duplicate (already posted)"
        FAILED = "failed", "Failed"
        FLAGGED = "flagged", "Flagged for review"

    run = models.ForeignKey(
        "syncs.SyncRun", null=True, blank=True, on_delete=models.PROTECT, related_name="records"
    )
    event = models.ForeignKey(
        "syncs.WebhookEvent",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="records",
        help_text="The webhook event this record came from (when a webhook delivered it).",
    )
    integration = models.ForeignKey(
        "syncs.Integration", on_delete=models.PROTECT, related_name="audit_records"
    )
    stream = models.CharField(max_length=60)
    source_key = models.CharField(max_length=255)
    target_key = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices)
    reason = models.TextField(blank=True, help_text="Why, in plain language.")
    detail = models.TextField(
        blank=True, help_text="The technical detail behind the reason (request, status, error)."
    )
    fix_kind = models.CharField(
        max_length=30, blank=True, help_text="The kind of mapping that would settle this flag."
    )
    fix_value = models.CharField(
        max_length=200, blank=True, help_text="The source value that mapping is for."
    )
    advice = models.TextField(
        blank=True, help_text="The next step for a person, when no mapping settles it."
    )
    see_kind = models.CharField(
        max_length=30, blank=True, help_text="What in the source system to act on (a payment)."
    )
    see_id = models.CharField(max_length=120, blank=True)
    retryable = models.BooleanField(
        default=False, help_text="A temporary failure: the next run or a replay may succeed."
    )
    seen_via = models.CharField(max_length=10, blank=True, help_text="schedule, webhook, poll …")
    source_payload = models.JSONField(default=dict)
    # The record as a finance user lists it (``Flow.summary``): what the overview totals, the
    # review queue groups and a search finds.
    amount = models.DecimalField(max_digits=24, decimal_places=6, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    party = models.CharField(
        max_length=80, blank=True, help_text="The customer or supplier the record is with."
    )
    party_name = models.CharField(max_length=200, blank=True)
    document = models.CharField(
        max_length=80, blank=True, help_text="The invoice or order the record is about."
    )
    looked_up = models.JSONField(
        null=True,
        blank=True,
        help_text="What the record was judged against, looked up just before it was mapped "
        "(what was still open on an invoice, whether an account is in the chart).",
    )
    sent_payload = models.JSONField(null=True, blank=True)
    response_summary = models.JSONField(null=True, blank=True)
    attempt = models.PositiveIntegerField(default=1)
    replay_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="replays"
    )
    ledger = models.ForeignKey(
        "audit.PostingLedger", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    times_seen = models.PositiveIntegerField(
        default=1, help_text="How often runs met this record with the same problem."
    )
    last_seen_at = models.DateTimeField(null=True, blank=True)
    waiting = models.BooleanField(
        default=False,
        help_text="Waiting for something still to arrive (its invoice, its customer): retried "
        "by itself, and a review item only once it has waited too long.",
    )
    first_seen_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When this problem was first met, kept across replays that meet it again "
        "(empty: when the record was written).",
    )
    replay_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="When a person last asked for this record's replay."
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True)
    resolution = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["integration", "status"]),
            models.Index(fields=["integration", "stream", "source_key"]),
        ]

    def __str__(self) -> str:
        return f"{self.stream} {self.source_key}: {self.get_status_display()}"


# The review queue: problems that need a person (a record still waiting for something to
# arrive is not one until it has waited too long).
NEEDS_REVIEW = models.Q(
    status__in=(AuditRecord.Status.FAILED, AuditRecord.Status.FLAGGED),
    resolved_at=None,
    waiting=False,
)

# When a record's problem was first met: kept across replays (``first_seen_at``), else the row's
# own time. The queue's age and order, the overview's oldest and the waiting alert read it.
FIRST_SEEN = Coalesce("first_seen_at", "created_at")


class ReviewItem(AuditRecord):
    """The review queue: failed and flagged records nobody has resolved yet (admin only)."""

    class Meta:
        proxy = True
        verbose_name = "review queue item"
        verbose_name_plural = "Review queue"


class Collection(AuditRecord):
    """Payments and refunds collected and posted to the ERP, by the flows listed in
    "collections" (admin only)."""

    class Meta:
        proxy = True
        verbose_name = "collection"
        verbose_name_plural = "Collections"


class PaymentQuote(AuditRecord):
    """Payments prepared for open supplier invoices, by the flows listed in "payment_quotes"
    (admin only)."""

    class Meta:
        proxy = True
        verbose_name = "payment quote"
        verbose_name_plural = "Payment quotes"


class PostingLedger(models.Model):
    """Exactly-once effects: one row per non-idempotent write, claimed before it is made.

    Unique on the target connection, what is posted (``target``, e.g. "m3.receipt") and its
    natural key — not on the integration — so however many integrations feed the same system
    account, a thing is posted there once.

    ``pending`` — claimed; while the lease runs a worker is posting, after it the outcome is
    unknown and the target is asked before posting again.  ``confirmed`` — posted (remote id
    known).  ``failed`` — the target refused; nothing was applied, a replay may claim it again
    (with a new idempotency generation).
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        CONFIRMED = "confirmed", "Confirmed"
        FAILED = "failed", "Refused (not posted)"

    integration = models.ForeignKey(
        "syncs.Integration",
        on_delete=models.PROTECT,
        related_name="ledger_entries",
        help_text="The integration that first claimed this posting.",
    )
    connection = models.ForeignKey(
        "connections.Connection",
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The target connection (the system account posted to).",
    )
    target = models.CharField(max_length=80)
    natural_key = models.CharField(max_length=255)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    remote_id = models.CharField(max_length=255, blank=True)
    generation = models.PositiveIntegerField(default=1)
    attempts = models.PositiveIntegerField(default=1)
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # When the last attempt that may have reached the target was sent: a flow whose target
    # cannot be searched (a Wise quote) waits out what that attempt may have made.
    attempted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "posting ledger entry"
        verbose_name_plural = "Posting ledger"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "target", "natural_key"], name="uniq_ledger_posting"
            )
        ]

    def __str__(self) -> str:
        return f"{self.target} {self.natural_key} ({self.state})"

    @property
    def idempotency_key(self) -> str:
        """The key sent to targets that support one; a new generation after a refusal."""
        import hashlib

        raw = f"mlc:{self.connection_id}:{self.target}:{self.natural_key}:{self.generation}"
        if len(raw) <= 200:
            return raw
        return "mlc:" + hashlib.sha256(raw.encode()).hexdigest()
