"""The runner: the only writer of SyncRun, AuditRecord, PostingLedger and Cursor.

For each source record: ``map`` (pure) → ``Flag``/``Skip``/``Payload`` → ``load``, with every
non-idempotent write going through the posting ledger:

1. claim the natural key (committed before any remote call);
2. a claim whose earlier attempt has an unknown outcome asks the target (``find_existing``)
   before posting; a confirmed key is audited as a duplicate and not posted;
3. post with the ledger's idempotency key;
4. confirm with the remote id in the same transaction as the AuditRecord (and the cursor).

A failing record is recorded and the run goes on.  The cursor advances record by record, in the
record's own transaction, and stops for the rest of the run at the first *retryable* failure, so
the next run reads that record again; permanent failures are left to replay.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit import ledger
from audit.models import AuditRecord, PostingLedger
from connections.providers.errors import ApiError, AuthFailed, Rejected
from connections.redaction import Redactor
from syncs.flows import (
    Flag,
    Flow,
    LoadResult,
    Mappings,
    Payload,
    Posting,
    Skip,
    SourceRecord,
    get_flow,
)
from syncs.models import Cursor, FieldMapping, Integration, SyncRun

logger = logging.getLogger(__name__)

Status = AuditRecord.Status
PROGRESS_FLUSH_SECONDS = 0.5
BUSY_POLL_SECONDS = 0.2


class _Abort(Exception):
    """Stop the run: continuing would only fail every remaining record the same way."""


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


@dataclass
class FlowContext:
    """What a flow may use during a run: the integration, its clients, cursor and settings."""

    integration: Integration
    run: SyncRun
    set_total: Callable[[int], None]
    clients: dict[str, Any] = field(default_factory=dict)
    final_watermark: str | None = None

    @property
    def settings(self) -> dict[str, Any]:
        return self.integration.settings or {}

    def cursor(self, stream: str) -> str:
        """The committed watermark of ``stream`` ("" before the first run)."""
        row = Cursor.objects.filter(integration=self.integration, stream=stream).first()
        return row.value if row else ""

    def finish_at(self, watermark: str) -> None:
        """Move the cursor to ``watermark`` when this run ends with nothing left to re-read."""
        self.final_watermark = watermark

    def client(self, side: str) -> Any:
        """The provider client of the ``source`` or ``target`` connection (built once)."""
        if side not in self.clients:
            from connections.providers.registry import client_for

            self.clients[side] = client_for(getattr(self.integration, side))
        return self.clients[side]


class Runner:
    """Runs one integration's flow over records (extracted, given, or replayed)."""

    def __init__(
        self,
        integration: Integration,
        *,
        trigger: str,
        requested_by: str = "",
        flow: Flow | None = None,
        on_progress: Callable[[SyncRun], None] | None = None,
    ) -> None:
        self.integration = integration
        self.trigger = trigger
        self.requested_by = requested_by
        self.flow = flow or get_flow(integration.flow)(options=dict(integration.settings or {}))
        self.redact = Redactor(
            [*integration.source.secret_values(), *integration.target.secret_values()]
        )
        self.owner = _owner()
        self.lease_seconds = settings.MLC["LEDGER_LEASE_SECONDS"]
        self.busy_wait_seconds = settings.MLC.get("LEDGER_BUSY_WAIT_SECONDS", 30)
        self.on_progress = on_progress
        self.run_row: SyncRun | None = None
        self._hold_cursor = False
        self._last_flush = 0.0

    # -- entry points -----------------------------------------------------------------------

    def run(
        self, records: Iterable[SourceRecord] | None = None, *, event: dict[str, Any] | None = None
    ) -> SyncRun:
        """Run the flow over ``records``, an inbound ``event``, or what ``flow.extract`` yields."""
        run = self._start()
        ctx = self._context(run)
        mappings = self._mappings()
        try:
            if event is not None:
                source: Iterable[SourceRecord] = self.flow.records_from_event(ctx, event)
            else:
                source = records if records is not None else self.flow.extract(ctx)
            for record in source:
                self._process(ctx, mappings, record)
            if ctx.final_watermark is not None and not self._hold_cursor:
                Cursor.objects.update_or_create(
                    integration=self.integration,
                    stream=self.flow.stream,
                    defaults={"value": ctx.final_watermark},
                )
        except _Abort as exc:
            return self._finish(run, error=str(exc))
        except Exception as exc:
            logger.exception("Run %s of %s stopped", run.pk, self.integration.slug)
            return self._finish(run, error=self._describe(exc))
        return self._finish(run)

    def replay(self, originals: Iterable[AuditRecord]) -> SyncRun:
        """Re-run map → load for stored records; each new record links ``replay_of``."""
        run = self._start()
        ctx = self._context(run)
        mappings = self._mappings()
        originals = list(originals)
        self._set_total(len(originals))
        try:
            for original in originals:
                record = SourceRecord(
                    source_key=original.source_key,
                    data=original.source_payload,
                    seen_via=original.seen_via,
                )
                self._process(ctx, mappings, record, replay_of=original)
        except _Abort as exc:
            return self._finish(run, error=str(exc))
        except Exception as exc:
            logger.exception("Replay run %s of %s stopped", run.pk, self.integration.slug)
            return self._finish(run, error=self._describe(exc))
        return self._finish(run)

    # -- one record -------------------------------------------------------------------------

    def _process(
        self,
        ctx: FlowContext,
        mappings: Mappings,
        record: SourceRecord,
        replay_of: AuditRecord | None = None,
    ) -> AuditRecord:
        write = _Writer(self, record, replay_of)
        try:
            result = self.flow.map(record, mappings)
        except Exception as exc:
            logger.exception("map() failed for %s", record.source_key)
            return write(Status.FAILED, f"Could not map this record: {self._describe(exc)}")
        if isinstance(result, Flag):
            return write(Status.FLAGGED, result.reason)
        if isinstance(result, Skip):
            return write(Status.SKIPPED, result.reason)
        if result.ledger_key is None:
            return self._load_idempotent(ctx, write, result)
        return self._load_once(ctx, write, result)

    def _load_idempotent(self, ctx: FlowContext, write: _Writer, payload: Payload) -> AuditRecord:
        try:
            loaded = self.flow.load(ctx, payload, None)
        except Exception as exc:
            return self._failed(write, payload, exc, ledger_op=None)
        return write(Status.SYNCED, loaded.note, payload=payload, loaded=loaded)

    def _load_once(self, ctx: FlowContext, write: _Writer, payload: Payload) -> AuditRecord:
        key = str(payload.ledger_key)
        claim = self._claim(key)
        entry = claim.entry
        if claim.status is ledger.ClaimStatus.CONFIRMED:
            return write(
                Status.DUPLICATE,
                f"Already posted ({entry.remote_id or 'remote id unknown'}); not posted again.",
                payload=payload,
                target_key=entry.remote_id,
                ledger_entry=entry,
            )
        if claim.status is ledger.ClaimStatus.BUSY:
            return write(
                Status.FAILED,
                "Another worker is posting this record right now; it will be "
                "checked again by the next run or a replay.",
                payload=payload,
                retryable=True,
                ledger_entry=entry,
            )
        if claim.status is ledger.ClaimStatus.RECOVER:
            try:
                found = self.flow.find_existing(ctx, payload)
            except Exception as exc:
                reason = (
                    "An earlier attempt may have posted this and the target could not be "
                    f"asked ({self._describe(exc)}); not posted again."
                )
                return write(
                    Status.FAILED,
                    reason,
                    payload=payload,
                    retryable=True,
                    ledger_op=lambda: ledger.release(entry, refused=False, error=reason),
                )
            if found is not None:
                return write(
                    Status.SYNCED,
                    "Found in the target after an interrupted attempt; not posted again.",
                    payload=payload,
                    loaded=found,
                    ledger_op=lambda: ledger.confirm(entry, remote_id=found.remote_id),
                )
        try:
            loaded = self.flow.load(
                ctx, payload, Posting(entry.idempotency_key, entry.pk, entry.generation)
            )
        except Exception as exc:
            refused = isinstance(exc, Rejected)
            reason = self._describe(exc)
            return self._failed(
                write,
                payload,
                exc,
                ledger_op=lambda: ledger.release(entry, refused=refused, error=reason),
            )
        note = loaded.note
        if claim.status is ledger.ClaimStatus.RECOVER:
            note = f"Completed after an interrupted attempt. {note}".strip()
        return write(
            Status.SYNCED,
            note,
            payload=payload,
            loaded=loaded,
            ledger_op=lambda: ledger.confirm(entry, remote_id=loaded.remote_id),
        )

    def _claim(self, key: str) -> ledger.Claim:
        deadline = time.monotonic() + self.busy_wait_seconds
        while True:
            claim = ledger.claim(
                integration_id=self.integration.pk,
                target=self.flow.target,
                natural_key=key,
                owner=self.owner,
                lease_seconds=self.lease_seconds,
            )
            if claim.status is not ledger.ClaimStatus.BUSY or time.monotonic() >= deadline:
                return claim
            time.sleep(BUSY_POLL_SECONDS)

    def _failed(
        self,
        write: _Writer,
        payload: Payload,
        exc: Exception,
        ledger_op: Callable[[], PostingLedger] | None,
    ) -> AuditRecord:
        if not isinstance(exc, ApiError):
            logger.error("load() failed for %s", write.record.source_key, exc_info=exc)
        retryable = not isinstance(exc, Rejected)
        response = exc.summary() if isinstance(exc, ApiError) else None
        audit = write(
            Status.FAILED,
            self._describe(exc),
            payload=payload,
            retryable=retryable,
            response=response,
            ledger_op=ledger_op,
        )
        if isinstance(exc, AuthFailed):
            raise _Abort(f"Stopped: credentials refused — {exc.message}")
        return audit

    # -- bookkeeping ------------------------------------------------------------------------

    def _start(self) -> SyncRun:
        now = timezone.now()
        self.run_row = SyncRun.objects.create(
            integration=self.integration,
            trigger=self.trigger,
            status=SyncRun.Status.RUNNING,
            requested_by=self.requested_by,
            started_at=now,
            heartbeat_at=now,
        )
        return self.run_row

    def _context(self, run: SyncRun) -> FlowContext:
        return FlowContext(integration=self.integration, run=run, set_total=self._set_total)

    def _mappings(self) -> Mappings:
        rows = FieldMapping.objects.filter(integration=self.integration)
        return Mappings({(m.kind, m.source_value.strip()): m.target_value for m in rows})

    def _set_total(self, total: int) -> None:
        assert self.run_row is not None
        self.run_row.total = total
        self._flush(force=True)

    def _count(self, status: str) -> None:
        run = self.run_row
        assert run is not None
        run.done += 1
        setattr(run, status, getattr(run, status) + 1)
        self._flush()
        if self.on_progress is not None:
            self.on_progress(run)

    def _flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_flush < PROGRESS_FLUSH_SECONDS:
            return
        self._last_flush = now
        run = self.run_row
        assert run is not None
        run.heartbeat_at = timezone.now()
        run.save(
            update_fields=[
                "total",
                "done",
                "synced",
                "skipped",
                "duplicate",
                "failed",
                "flagged",
                "heartbeat_at",
            ]
        )

    def _finish(self, run: SyncRun, error: str = "") -> SyncRun:
        if error:
            run.status = SyncRun.Status.FAILED
        elif run.failed or run.flagged:
            run.status = SyncRun.Status.PARTIAL
        else:
            run.status = SyncRun.Status.SUCCEEDED
        run.error_summary = error[:4000]
        run.finished_at = timezone.now()
        run.heartbeat_at = run.finished_at
        if run.total is None:
            run.total = run.done
        run.save()
        logger.info(
            "Run %s of %s: %s (%s synced, %s duplicate, %s skipped, %s flagged, %s failed)",
            run.pk,
            self.integration.slug,
            run.status,
            run.synced,
            run.duplicate,
            run.skipped,
            run.flagged,
            run.failed,
        )
        return run

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, ApiError):
            return self.redact.text(exc.message)
        return self.redact.text(f"{type(exc).__name__}: {exc}")[:2000]


class _Writer:
    """Writes one record's outcome: ledger change, AuditRecord and cursor in one transaction."""

    def __init__(self, runner: Runner, record: SourceRecord, replay_of: AuditRecord | None) -> None:
        self.runner = runner
        self.record = record
        self.replay_of = replay_of

    def __call__(
        self,
        status: str,
        reason: str,
        *,
        payload: Payload | None = None,
        loaded: LoadResult | None = None,
        response: Any = None,
        retryable: bool = False,
        target_key: str = "",
        ledger_entry: PostingLedger | None = None,
        ledger_op: Callable[[], PostingLedger] | None = None,
    ) -> AuditRecord:
        runner, record, redact = self.runner, self.record, self.runner.redact
        run = runner.run_row
        assert run is not None
        if loaded is not None:
            target_key = target_key or loaded.remote_id
            response = loaded.response if response is None else response
        with transaction.atomic():
            if ledger_op is not None:
                ledger_entry = ledger_op()
            audit = AuditRecord.objects.create(
                run=run,
                integration=runner.integration,
                stream=runner.flow.stream,
                source_key=record.source_key[:255],
                target_key=(target_key or (payload.target_key if payload else ""))[:255],
                status=status,
                reason=redact.text(reason or ""),
                retryable=retryable,
                seen_via=record.seen_via or run.trigger,
                source_payload=redact(record.data),
                sent_payload=redact(payload.data) if payload is not None else None,
                response_summary=redact(dict(response)) if response is not None else None,
                attempt=(self.replay_of.attempt + 1) if self.replay_of else 1,
                replay_of=self.replay_of,
                ledger=ledger_entry,
            )
            if self.replay_of is not None:
                AuditRecord.objects.filter(pk=self.replay_of.pk, resolved_at=None).update(
                    resolved_at=timezone.now(),
                    resolved_by=runner.requested_by[:150],
                    resolution=f"Replayed as record #{audit.pk} ({status})",
                )
            if status == Status.FAILED and retryable:
                runner._hold_cursor = True
            elif record.watermark and not runner._hold_cursor:
                Cursor.objects.update_or_create(
                    integration=runner.integration,
                    stream=runner.flow.stream,
                    defaults={"value": record.watermark},
                )
        runner._count(status)
        return audit
