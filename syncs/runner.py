"""The runner: the only writer of SyncRun, AuditRecord, PostingLedger and Cursor.

For each source record: ``map`` (pure) → ``Flag``/``Skip``/``Payload`` → load, with every
non-idempotent write going through the posting ledger:

1. claim the natural key (committed before any remote call);
2. a claim whose earlier attempt has an unknown outcome asks the target (``find_existing``)
   before posting; a confirmed key is audited as a duplicate and not posted;
3. post with the ledger's idempotency key — a chunk of records in one ``load_many`` call when
   the target takes many writes per request, each still claimed and confirmed on its own;
4. confirm with the remote id in the same transaction as the AuditRecord (and the cursor).

A failing record is recorded and the run goes on.  Outcomes are written in source order, so the
cursor advances record by record and stops for the rest of the run at the first *retryable*
failure: the next run reads that record again; permanent failures are left to replay.  Where
the read starts comes from the flow's ``ReadWindow`` and the cursor.  A webhook delivery gets a
SyncRun only when it writes something or fails; otherwise its audit records link to the event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from audit.models import AuditRecord
from connections.providers.base import InboundEvent
from connections.providers.errors import ApiError
from connections.redaction import Redactor
from syncs.flows import (
    Flow,
    FlowContext,
    SourceRecord,
    get_flow,
)
from syncs.models import (
    Integration,
    SyncRun,
    WebhookEvent,
)
from syncs.run import parts
from syncs.run.context import files_done, run_context, run_mappings
from syncs.run.cursor import RunCursor
from syncs.run.heartbeat import Heartbeat, owner
from syncs.run.outcomes import OutcomeWrites
from syncs.run.pipeline import Pipeline
from syncs.run.posting import PostingSteps
from syncs.run.progress import Counts, RunProgress

logger = logging.getLogger(__name__)

Status = AuditRecord.Status
COUNTED = ("synced", "skipped", "duplicate", "failed", "flagged")
_UNSET: Any = object()


class _Abort(Exception):
    """Stop the run: continuing would only fail every remaining record the same way."""


@dataclass(frozen=True)
class EventOutcome:
    """How one integration handled one webhook event."""

    run: SyncRun | None
    ok: bool
    error: str = ""


class Runner(RunProgress, PostingSteps, OutcomeWrites):
    """Runs one integration's flow over records (extracted, from an event, or replayed)."""

    def __init__(
        self,
        integration: Integration,
        *,
        trigger: str,
        requested_by: str = "",
        flow: Flow | None = None,
        on_progress: Callable[[SyncRun], None] | None = None,
        parent: SyncRun | None = None,
        part: dict[str, Any] | None = None,
    ) -> None:
        self.integration = integration
        self.trigger = trigger
        self.requested_by = requested_by
        self.parent = parent  # set: this run is one part of ``parent`` (it moves no cursor)
        options = {**(integration.settings or {}), **(part or {})}
        self.settings_problem = ""  # settings saved before they were checked: the run says so
        try:
            self.flow = flow or get_flow(integration.flow)(options=options)
        except ValidationError as exc:
            self.flow = get_flow(integration.flow)()
            self.settings_problem = (
                f"The settings of {integration.name} are not valid: {' '.join(exc.messages)} "
                "Correct them on the integration's page, then run it again."
            )
        self.redact = Redactor(
            [*integration.source.secret_values(), *integration.target.secret_values()]
        )
        self.owner = owner()
        self.lease_seconds = settings.MLC["LEDGER_LEASE_SECONDS"]
        self.busy_wait_seconds = settings.MLC.get("LEDGER_BUSY_WAIT_SECONDS", 30)
        self.on_progress = on_progress
        self.run_row: SyncRun | None = None
        self.event_row: WebhookEvent | None = None
        self.counts = Counts()
        self.cursor = RunCursor(integration, self.flow, part=parent is not None)
        self._last_flush = 0.0
        self._final: list[SourceRecord] = []
        self._heartbeat: Heartbeat | None = None

    # -- entry points -----------------------------------------------------------------------

    def run(
        self, records: Iterable[SourceRecord] | None = None, *, window_start: Any = _UNSET
    ) -> SyncRun:
        """Run the flow over ``records``, or over what ``flow.extract`` yields from its window
        (``window_start``, for a part: where its parent's window starts).  With the integration
        setting ``workers`` above 1 and a flow that can be split, the run is split: this
        worker takes the first part, django-q2 workers the others, and the last part to
        finish completes the run and moves the cursor (``syncs.run.parts``)."""
        run = self._ensure_run()
        started = timezone.now()
        ctx = self._context()
        warning, split = "", False
        try:
            if window_start is _UNSET:
                window_start = self.cursor.start(started)
            ctx.window_start = window_start
            split = records is None and self.parent is None and self._split(ctx, run)
            source = records if records is not None else self.flow.extract(ctx)
            self._process(ctx, ((record, None) for record in source))
            if self.parent is not None:
                if ctx.read_mark is not None:
                    run.read_mark = str(ctx.read_mark)[:100]  # for its run's cursor
            elif not split and self.cursor.commit(read_mark=ctx.read_mark, started=started):
                files_done(self.integration, ctx)
            warning = self._acknowledge(ctx)
        except _Abort as exc:
            return self._ended(self._finish(run, error=str(exc)))
        except Exception as exc:
            logger.exception("Run %s of %s stopped", run.pk, self.integration.slug)
            return self._ended(self._finish(run, error=self._describe(exc)))
        finally:
            ctx.close()
        if split:  # the last part to finish completes the run; nobody waits for it
            self._stop_heartbeat()
            self._sync_row()
            parts.own_part_done(
                run, read_mark=ctx.read_mark, held=self.cursor.held, warning=warning
            )
            return parts.complete_if_last(run.pk) or SyncRun.objects.get(pk=run.pk)
        return self._ended(self._finish(run, warning=warning))

    def _ended(self, run: SyncRun) -> SyncRun:
        """A part that ended may be the last of its run: then it completes it."""
        if self.parent is not None:
            parts.complete_if_last(self.parent.pk)
        return run

    def _split(self, ctx: FlowContext, run: SyncRun) -> bool:
        """Split this run if its flow can be and its ``workers`` setting asks for it: the other
        parts go to django-q2 workers, this one takes the first."""
        if "workers" not in {spec.name for spec in self.flow.declared_settings()}:
            return False  # this flow's runs are not split
        workers = int(self.flow.setting("workers") or 1)
        if workers < 2:
            return False
        split = self.flow.partitions(ctx, workers)
        if len(split) < 2:
            return False

        def run_here(part: dict[str, Any]) -> Any:
            return Runner(
                self.integration,
                trigger=SyncRun.Trigger.PART,
                requested_by=self.requested_by,
                parent=run,
                part=part,
            ).run(window_start=ctx.window_start)

        parts.queue(run=run, ctx=ctx, parts=split, run_here=run_here)
        self.flow = self.cursor.flow = type(self.flow)(options={**self.flow.options, **split[0]})
        return True

    def run_event(self, event: InboundEvent, *, event_row: WebhookEvent) -> EventOutcome:
        """Process one stored webhook event; a run is made only if something is written or
        fails."""
        self.event_row = event_row
        ctx = self._context()
        try:
            records = self.flow.records_from_event(ctx, event)
            if isinstance(records, Sized):
                self.counts.total = len(records)
            self._process(ctx, ((record, None) for record in records))
        except _Abort as exc:
            run = self._finish(self._ensure_run(), error=str(exc))
            return EventOutcome(run, ok=False, error=run.error_summary)
        except Exception as exc:
            logger.exception("Event %s for %s stopped", event.id, self.integration.slug)
            run = self._finish(self._ensure_run(), error=self._describe(exc))
            return EventOutcome(run, ok=False, error=run.error_summary)
        finally:
            ctx.close()
        run = self._finish(self.run_row) if self.run_row is not None else None
        failed = self.counts.failed
        return EventOutcome(run, ok=not failed, error=f"{failed} failed" if failed else "")

    def replay(self, originals: Iterable[AuditRecord]) -> SyncRun:
        """Re-run map → load for stored records; each new record links ``replay_of``."""
        originals = list(originals)
        run = self._ensure_run()
        self._set_total(len(originals))
        ctx = self._context()
        try:
            self._process(
                ctx,
                (
                    (
                        SourceRecord(
                            source_key=o.source_key, data=o.source_payload, seen_via=o.seen_via
                        ),
                        o,
                    )
                    for o in originals
                ),
            )
        except _Abort as exc:
            return self._finish(run, error=str(exc))
        except Exception as exc:
            logger.exception("Replay run %s of %s stopped", run.pk, self.integration.slug)
            return self._finish(run, error=self._describe(exc))
        finally:
            ctx.close()
        return self._finish(run)

    # -- records, in flight ------------------------------------------------------------------

    def _in_flight(self) -> int:
        """How many loads (records, or chunks for ``load_many`` flows) may be in flight."""
        value = self.integration.target.setting("max_in_flight")
        if value in (None, ""):
            value = settings.MLC["MAX_IN_FLIGHT"]
        return max(1, int(value))

    def _process(
        self, ctx: FlowContext, records: Iterable[tuple[SourceRecord, AuditRecord | None]]
    ) -> None:
        """Map, claim and load each record, keeping up to ``_in_flight()`` loads running, and
        write every outcome in source order (so the cursor never passes an unwritten record).
        Whatever stops the run, what was sent is written before it ends."""
        if self.settings_problem:
            raise _Abort(self.settings_problem)
        mappings = ctx.mappings = run_mappings(self.integration, self.flow)
        pipe = Pipeline(self, ctx, self._in_flight())
        try:
            for record, replay_of in records:
                if pipe.abort is not None:
                    break
                pipe.add(record, replay_of, mappings)
            pipe.finish(send=pipe.abort is None)
        except Exception:
            pipe.finish(send=pipe.abort is None)  # the source failed: what is read still goes
            raise
        except BaseException:  # the worker is stopping: send nothing more
            pipe.finish(send=False)
            raise
        finally:
            pipe.close()
        if pipe.abort is not None:
            raise _Abort(f"Stopped: credentials refused — {self._describe(pipe.abort)}")

    # -- bookkeeping ------------------------------------------------------------------------

    def _context(self) -> FlowContext:
        return run_context(
            self.integration, self.flow, set_total=self._set_total, width=self._in_flight()
        )

    def _keep_final(self, record: SourceRecord) -> None:
        """Remember a record for ``acknowledge`` — only for flows that use it, so a large run
        holds no more than its records in flight."""
        if type(self.flow).acknowledge is not Flow.acknowledge:
            self._final.append(record)

    def _acknowledge(self, ctx: FlowContext) -> str:
        """Let the source know which records are done; a failure is a warning, not a loss."""
        if not self._final and not ctx.done_files:
            return ""
        try:
            self.flow.acknowledge(ctx, list(self._final))
        except Exception as exc:
            logger.exception("acknowledge() failed for %s", self.integration.slug)
            return (
                "Everything read was recorded, but the source could not be told so "
                f"({self._describe(exc)}); those records will be read again and recognised."
            )
        return ""

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, ApiError):
            return self.redact.text(exc.message)
        return self.redact.text(f"{type(exc).__name__}: {exc}")[:2000]
