"""Writing outcomes: each record's AuditRecord with its ledger change in one transaction, in
source order, plain outcomes in bulk; a record that fails or waits again is the same review
item seen once more, not a new row; earlier failures of a record now posted are resolved; the
cursor is told of each record written.  A mixin of the runner: it reads the run's integration,
flow, rows, redactor and cursor, and counts through it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django import db
from django.db import transaction
from django.utils import timezone

from audit import ledger
from audit.models import AuditRecord, PostingLedger
from syncs.run.pipeline import Item, Outcome
from syncs.run.repeats import RepeatedOutcomes

if TYPE_CHECKING:
    from connections.redaction import Redactor
    from syncs.flows import Flow, SourceRecord
    from syncs.models import WebhookEvent

logger = logging.getLogger(__name__)

Status = AuditRecord.Status
# Outcomes written in bulk (a flag may join a waiting one; a replay resolves its original).
PLAIN = (Status.SYNCED, Status.DUPLICATE, Status.SKIPPED, Status.FAILED)
AMOUNT_PLACES = Decimal("0.000001")  # what AuditRecord.amount holds
AMOUNT_LIMIT = Decimal(10) ** 17


def summary_columns(flow: Flow, record: SourceRecord) -> dict[str, Any]:
    """The record's ``Flow.summary`` as AuditRecord columns (none when it cannot be told: a
    record read in part, say — a summary never costs an outcome)."""
    try:
        found = flow.summary(record)
    except Exception as exc:
        logger.info("No summary of %s: %s", record.source_key, exc)
        return {}
    amount = found.amount
    if amount is not None:
        fits = amount.is_finite() and abs(amount) < AMOUNT_LIMIT
        amount = amount.quantize(AMOUNT_PLACES) if fits else None
    return {
        "amount": amount,
        "currency": found.currency.upper()[:3],
        "party": found.party[:80],
        "party_name": found.party_name[:200],
        "document": found.document[:80],
    }


class OutcomeWrites(RepeatedOutcomes):
    """The runner's outcome writing (see the module docstring)."""

    trigger: str
    requested_by: str
    redact: Redactor
    event_row: WebhookEvent | None

    def _write(self, item: Item, out: Outcome) -> AuditRecord:
        """The ledger change, the AuditRecord and the cursor, in one transaction."""
        record, replay_of, redact = item.record, item.replay_of, self.redact
        posted = out.ledger_op is not None or out.confirm is not None
        if out.waiting:
            waited = self._still_waiting(item, out)
            if waited is not None:
                return waited
        elif out.status == Status.FAILED and replay_of is None and self.event_row is None:
            # (a webhook delivery keeps its own row: it links the event, which a replay that
            # posts the record marks processed)
            again = self._failed_again(item, out)
            if again is not None:
                return again
        if out.status == Status.FLAGGED and replay_of is None and not posted:
            waiting = self._waiting_flag(record, redact.text(out.reason or ""))
            if waiting is not None:
                return waiting
        if out.status in (Status.SYNCED, Status.FAILED):
            self._ensure_run()  # a webhook delivery gets a run once it writes or fails
        # A replay that met an outage (the target, or what stands before it, out of reach)
        # changes nothing of the item: its open problem and fix stand, the attempt is history.
        outage = (
            replay_of is not None
            and replay_of.status == Status.FLAGGED
            and out.status == Status.FAILED
            and out.retryable
            and not out.waiting
        )
        with transaction.atomic():
            ledger_entry = self._ledger_change(out)
            audit = self._audit_row(item, out, ledger_entry)
            if outage:
                audit.resolved_at = timezone.now()
                audit.resolved_by = "ml-connector"
                audit.resolution = "A replay that could not finish: the item stays as it was"
            audit.save(force_insert=True)
            if outage:
                AuditRecord.objects.filter(pk=replay_of.pk).update(replay_requested_at=None)
            elif replay_of is not None:
                AuditRecord.objects.filter(pk=replay_of.pk, resolved_at=None).update(
                    resolved_at=timezone.now(),
                    resolved_by=self.requested_by[:150],
                    resolution=f"Replayed as record #{audit.pk} ({out.status})",
                )
            self._settle([item], [audit])
        return audit

    @staticmethod
    def _ledger_change(out: Outcome) -> PostingLedger | None:
        if out.confirm is not None:
            entry, remote_id = out.confirm
            return ledger.confirm(entry, remote_id=remote_id)
        return out.ledger_op() if out.ledger_op is not None else out.ledger_entry

    def _audit_row(
        self, item: Item, out: Outcome, ledger_entry: PostingLedger | None
    ) -> AuditRecord:
        """The AuditRecord of one outcome (not saved), every payload redacted."""
        record, replay_of, redact = item.record, item.replay_of, self.redact
        target_key, response = out.target_key, out.response
        if out.loaded is not None:
            target_key = target_key or out.loaded.remote_id
            response = out.loaded.response if response is None else response
        payload = out.payload
        return AuditRecord(
            run=self.run_row,
            event=self.event_row,
            integration=self.integration,
            stream=self.flow.stream,
            source_key=record.source_key[:255],
            target_key=(target_key or (payload.target_key if payload else ""))[:255],
            status=out.status,
            reason=redact.text(out.reason or ""),
            detail=redact.text(out.detail or "")[:4000],
            fix_kind=out.fix[0][:30] if out.fix else "",
            fix_value=str(out.fix[1])[:200] if out.fix else "",
            advice=redact.text(out.advice or "")[:1000],
            see_kind=out.see[0][:30] if out.see else "",
            see_id=str(out.see[1])[:120] if out.see else "",
            retryable=out.retryable,
            seen_via=record.seen_via or self.trigger,
            source_payload=redact(record.data),
            **self._summary(record),
            looked_up=redact(record.lookups.as_json()) if record.lookups is not None else None,
            sent_payload=redact(payload.data) if payload is not None else None,
            response_summary=redact(dict(response)) if response is not None else None,
            attempt=(replay_of.attempt + 1) if replay_of else 1,
            replay_of=replay_of,
            ledger=ledger_entry,
            waiting=out.waiting,
            **self._history(item, out.status),
        )

    def _summary(self, record: SourceRecord) -> dict[str, Any]:
        return summary_columns(self.flow, record)

    @staticmethod
    def _history(item: Item, status: str) -> dict[str, Any]:
        """A replay that meets a problem again, or a wait that became one, keeps the item's
        age and count: the queue's oldest-first order, the overview's oldest and the 24 h
        alert read them."""
        replay_of = item.replay_of
        if item.first_seen is not None:
            return {
                "first_seen_at": item.first_seen,
                "times_seen": item.seen_before + 1,
                "last_seen_at": timezone.now(),
            }
        if replay_of is None or status not in (Status.FAILED, Status.FLAGGED):
            return {}
        return {
            "first_seen_at": replay_of.first_seen_at or replay_of.created_at,
            "times_seen": replay_of.times_seen + 1,
            "last_seen_at": timezone.now(),
        }

    def _write_many(self, items: Sequence[Item]) -> None:
        """Write outcomes in order, in one transaction: runs of plain outcomes (no replay, no
        flag) as one insert of their audit records and one look for earlier failures to
        resolve; flags and replays one by one, where they were."""
        plain: list[Item] = []
        with transaction.atomic():
            for item in items:
                assert item.outcome is not None
                if (
                    item.replay_of is None
                    and item.outcome.status in PLAIN
                    and item.outcome.status != Status.FAILED  # one item per failing record
                ):
                    plain.append(item)
                    continue
                self._write_plain(plain)
                plain = []
                self._write(item, item.outcome)
            self._write_plain(plain)

    def _write_plain(self, items: Sequence[Item]) -> None:
        if not items:
            return
        outcomes = [item.outcome for item in items]
        assert all(out is not None for out in outcomes)
        if any(out.status in (Status.SYNCED, Status.FAILED) for out in outcomes):  # type: ignore[union-attr]
            self._ensure_run()
        confirmed = ledger.confirm_many(
            [out.confirm for out in outcomes if out is not None and out.confirm is not None]
        )
        rows = []
        for item, out in zip(items, outcomes, strict=True):
            assert out is not None
            if out.confirm is not None:
                entry: PostingLedger | None = confirmed[out.confirm[0].pk]
            else:
                entry = self._ledger_change(out)
            rows.append(self._audit_row(item, out, entry))
        if db.connection.features.can_return_rows_from_bulk_insert:
            AuditRecord.objects.bulk_create(rows)
        else:  # an old SQLite: the ids are needed below
            for row in rows:
                row.save(force_insert=True)
        self._settle(items, rows)

    def _settle(self, items: Sequence[Item], rows: Sequence[AuditRecord]) -> None:
        """After written audit records: earlier failures of records now posted are resolved
        (not a posting that needs finishing by hand: that stays until a person has done it),
        the cursor moves past them unless one must be read again, and they are counted."""
        posted = {
            row.source_key: row.pk
            for row in rows
            if row.status in (Status.SYNCED, Status.DUPLICATE)
        }
        if posted:
            earlier = (
                AuditRecord.objects.filter(
                    integration=self.integration,
                    stream=self.flow.stream,
                    source_key__in=list(posted),
                    status__in=(Status.FAILED, Status.FLAGGED),
                    resolved_at=None,
                )
                .exclude(pk__in=[row.pk for row in rows])
                .exclude(status=Status.FLAGGED, ledger__isnull=False)
                .values_list("source_key", "pk")
            )
            by_key: dict[str, list[int]] = {}
            for key, pk in earlier:
                by_key.setdefault(key, []).append(pk)
            for key, pks in by_key.items():
                AuditRecord.objects.filter(pk__in=pks).update(
                    resolved_at=timezone.now(),
                    resolved_by="ml-connector",
                    resolution=f"Posted later (record #{posted[key]})",
                )
        settled = {
            row.source_key: row.pk for row in rows if row.status == Status.SKIPPED
        }  # nothing to do for it any more (in the target already, say): its failures are over
        if settled:
            for key, pk in settled.items():
                AuditRecord.objects.filter(
                    integration=self.integration,
                    stream=self.flow.stream,
                    source_key=key,
                    status=Status.FAILED,
                    resolved_at=None,
                ).exclude(pk=pk).update(
                    resolved_at=timezone.now(),
                    resolved_by="ml-connector",
                    resolution=f"Nothing left to do (record #{pk})",
                )
        for item, row in zip(items, rows, strict=True):
            if row.status == Status.FAILED and row.retryable:
                self.cursor.hold()
            else:
                self.cursor.observe(item.record)
        self.cursor.write()
        for item, row in zip(items, rows, strict=True):
            if not (row.status == Status.FAILED and row.retryable) and item.replay_of is None:
                self._keep_final(item.record)
            if self.run_row is None:
                self.counts.records.append(row.pk)
            self._count(row.status)
