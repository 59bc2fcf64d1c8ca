"""A record met again: one that waits for something to arrive (its invoice, its customer) is
noted on one row and retried by itself — the cursor holds — until it has waited long enough to
need a person; one that fails again, or is flagged again, while its item is still open is that
same item seen once more, not a new row.  A mixin of the runner's outcome writing."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.models import AuditRecord, PostingLedger
from syncs.flows import SourceRecord
from syncs.run.pipeline import Item, Outcome

if TYPE_CHECKING:
    from syncs.flows import Flow
    from syncs.models import Integration, SyncRun
    from syncs.run.cursor import RunCursor

logger = logging.getLogger(__name__)

Status = AuditRecord.Status


class RepeatedOutcomes:
    """The runner's handling of records met again (see the module docstring)."""

    integration: Integration
    flow: Flow
    run_row: SyncRun | None
    cursor: RunCursor
    counts: Any

    def _ensure_run(self) -> SyncRun:
        raise NotImplementedError

    def _count(self, status: str) -> None:
        raise NotImplementedError

    def _keep_final(self, record: SourceRecord) -> None:
        raise NotImplementedError

    def _ledger_change(self, out: Outcome) -> PostingLedger | None:
        raise NotImplementedError

    def _audit_row(
        self, item: Item, out: Outcome, ledger_entry: PostingLedger | None
    ) -> AuditRecord:
        raise NotImplementedError

    def _still_waiting(self, item: Item, out: Outcome) -> AuditRecord | None:
        """A record that waits for something to arrive (its invoice, its customer) is retried
        by itself — the cursor holds — and noted on one row, not a new one per run.  It becomes
        a review item (a flag) once it has waited ``WAIT_REVIEW_HOURS``, or at once when a
        person replayed it and it still waits.  ``out`` is turned into that flag, or the row
        that notes the wait again is returned."""
        record = item.record
        since: datetime | None = None
        with transaction.atomic():
            same = AuditRecord.objects.select_for_update().filter(
                integration=self.integration,
                stream=self.flow.stream,
                source_key=record.source_key[:255],
                resolved_at=None,
            )
            flagged = same.filter(status=Status.FLAGGED).order_by("-pk").first()
            if item.replay_of is None and flagged is not None:  # a person has it already
                return self._seen_again(flagged, record)
            waits = list(same.filter(status=Status.FAILED, waiting=True).order_by("pk"))
            if waits:
                since = waits[0].first_seen_at or waits[0].created_at
            patience = timedelta(hours=float(settings.MLC["WAIT_REVIEW_HOURS"]))
            if item.replay_of is None and waits and timezone.now() - since < patience:
                latest = waits[-1]
                latest.times_seen += 1
                latest.last_seen_at = timezone.now()
                latest.save(update_fields=["times_seen", "last_seen_at"])
                self.cursor.hold()
                self._count(Status.FAILED)
                return latest
            if item.replay_of is None and not waits:
                return None  # the first time: written as a waiting row
            same.filter(pk__in=[w.pk for w in waits]).update(
                resolved_at=timezone.now(),
                resolved_by="ml-connector",
                resolution="Waited too long: now in the review queue",
            )
        first = since or (item.replay_of.first_seen_at or item.replay_of.created_at)
        waited = (
            "still not there when replayed"
            if item.replay_of is not None
            else f"waited since {timezone.localtime(first):%Y-%m-%d %H:%M}"
        )
        out.status, out.retryable, out.waiting = Status.FLAGGED, False, False
        out.reason = f"{out.reason} ({waited}; replay it once it is there.)"
        item.first_seen = first
        item.seen_before = sum(w.times_seen for w in waits) or (
            item.replay_of.times_seen if item.replay_of is not None else 0
        )
        return None

    def _waiting_flag(self, record: SourceRecord, reason: str) -> AuditRecord | None:
        """The same flag, still in the review queue: note it was seen again, add nothing new."""
        with transaction.atomic():
            waiting = (
                AuditRecord.objects.select_for_update()
                .filter(
                    integration=self.integration,
                    stream=self.flow.stream,
                    source_key=record.source_key[:255],
                    status=Status.FLAGGED,
                    resolved_at=None,
                    reason=reason,
                )
                .order_by("-pk")
                .first()
            )
            if waiting is None:
                return None
            return self._seen_again(waiting, record)

    def _failed_again(self, item: Item, out: Outcome) -> AuditRecord | None:
        """A record that fails again while its failure is still in the review queue is the
        same item: noted on that row (how often, when, the latest reason), not a new row.  A
        passing outage (a retryable failure) never replaces a record's open flag either: the
        flag, with its fix, stays the item, seen once more."""
        record = item.record
        if out.retryable and out.confirm is None:
            flagged = (
                AuditRecord.objects.filter(
                    integration=self.integration,
                    stream=self.flow.stream,
                    source_key=record.source_key[:255],
                    status=Status.FLAGGED,
                    resolved_at=None,
                )
                .order_by("-pk")
                .first()
            )
            if flagged is not None:
                with transaction.atomic():
                    self._ledger_change(out)  # a claim is let go as it would be
                    return self._seen_again(flagged, record)
        with transaction.atomic():
            row = (
                AuditRecord.objects.select_for_update()
                .filter(
                    integration=self.integration,
                    stream=self.flow.stream,
                    source_key=record.source_key[:255],
                    status=Status.FAILED,
                    waiting=False,
                    resolved_at=None,
                )
                .order_by("-pk")
                .first()
            )
            if row is None:
                return None
            entry = self._ledger_change(out)
            fresh = self._audit_row(item, out, entry)
            for name in ("reason", "detail", "retryable", "sent_payload", "response_summary"):
                setattr(row, name, getattr(fresh, name))
            row.ledger = entry or row.ledger
            row.times_seen += 1
            row.last_seen_at = timezone.now()
            row.save()
        self._ensure_run()  # a webhook delivery that fails has a run, as in _write
        if out.retryable:
            self.cursor.hold()
        else:
            self.cursor.passed(record)
            self._keep_final(record)
        if self.run_row is None:
            self.counts.records.append(row.pk)
        self._count(Status.FAILED)
        return row

    def _seen_again(self, row: AuditRecord, record: SourceRecord) -> AuditRecord:
        """An open flag met again: noted on it (how often, when), nothing new written; the
        record is done for this run, so the cursor moves past it."""
        row.times_seen += 1
        row.last_seen_at = timezone.now()
        row.save(update_fields=["times_seen", "last_seen_at"])
        self.cursor.passed(record)
        self._keep_final(record)
        self._count(Status.SKIPPED)  # nothing new needs anyone: it is already waiting
        return row
