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
import time
from collections.abc import Callable, Iterable, Sequence, Sized
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditRecord
from connections.providers.base import InboundEvent, Provider
from connections.providers.errors import ApiError
from connections.providers.registry import client_for
from connections.redaction import Redactor
from syncs.dbretry import with_reconnect
from syncs.flows import (
    Flow,
    FlowContext,
    Mappings,
    SourceRecord,
    get_flow,
)
from syncs.models import (
    FieldMapping,
    Integration,
    ProcessedFile,
    SyncRun,
    WebhookEvent,
    WebhookProcessing,
)
from syncs.run import parts
from syncs.run.cursor import RunCursor
from syncs.run.heartbeat import Heartbeat, owner, worker_name
from syncs.run.ledger import RunLedger
from syncs.run.outcomes import OutcomeWrites
from syncs.run.pipeline import PROGRESS_FLUSH_SECONDS, Pipeline
from syncs.run.posting import PostingSteps

logger = logging.getLogger(__name__)

Status = AuditRecord.Status
COUNTED = ("synced", "skipped", "duplicate", "failed", "flagged")
_UNSET: Any = object()


class _Abort(Exception):
    """Stop the run: continuing would only fail every remaining record the same way."""


class AlreadyRunning(Exception):
    """Another run of this integration is live (the database refused a second one)."""

    def __init__(self, live: SyncRun | None) -> None:
        super().__init__(f"Run #{live.pk if live else '?'} is still in progress.")
        self.live = live


@dataclass(frozen=True)
class EventOutcome:
    """How one integration handled one webhook event."""

    run: SyncRun | None
    ok: bool
    error: str = ""


@dataclass
class _Counts:
    total: int | None = None
    done: int = 0
    synced: int = 0
    skipped: int = 0
    duplicate: int = 0
    failed: int = 0
    flagged: int = 0
    records: list[int] = field(default_factory=list)  # audit ids written before a run existed


class Runner(PostingSteps, OutcomeWrites):
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
        self.counts = _Counts()
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
        ctx = self._context(None)
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
                self._files_done(ctx)
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
        ctx = self._context(None)
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
        ctx = self._context(None)
        try:
            self._process(
                ctx,
                (
                    (
                        self.flow.reread(
                            ctx,
                            SourceRecord(
                                source_key=o.source_key, data=o.source_payload, seen_via=o.seen_via
                            ),
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
        mappings = ctx.mappings = self._mappings()
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

    def _ensure_run(self) -> SyncRun:
        if self.run_row is None:
            now = timezone.now()
            counts = self.counts
            try:
                with transaction.atomic():
                    self.run_row = SyncRun.objects.create(
                        integration=self.integration,
                        parent=self.parent,
                        trigger=self.trigger,
                        status=SyncRun.Status.RUNNING,
                        requested_by=self.requested_by,
                        worker=worker_name(),
                        started_at=now,
                        heartbeat_at=now,
                        total=counts.total,
                        done=counts.done,
                        **{name: getattr(counts, name) for name in COUNTED},
                    )
            except IntegrityError:  # one live run per integration, enforced by the database
                live = SyncRun.objects.filter(
                    integration=self.integration, status=SyncRun.Status.RUNNING
                ).first()
                raise AlreadyRunning(live) from None
            self._heartbeat = Heartbeat(
                self.run_row.pk, self.parent.pk if self.parent is not None else None
            )
            if counts.records:  # records of this delivery written before it needed a run
                AuditRecord.objects.filter(pk__in=counts.records).update(run=self.run_row)
                counts.records.clear()
        return self.run_row

    def _context(self, window_start: int | str | None) -> FlowContext:
        integration, flow = self.integration, self.flow

        def make_client(side: str) -> Provider:
            return client_for(getattr(integration, side))

        def files_processed(files: Sequence[tuple[str, int, str]]) -> set[tuple[str, int, str]]:
            if not files:
                return set()
            rows = ProcessedFile.objects.filter(
                integration=integration, name__in=[name for name, _, _ in files]
            ).values_list("name", "size", "sha256")
            return {(n, int(z), h) for n, z, h in rows} & set(files)

        def processed_events(event_ids: Sequence[str]) -> set[str]:
            if not event_ids:
                return set()
            return set(
                WebhookProcessing.objects.filter(
                    integration=integration,
                    state=WebhookProcessing.State.DONE,
                    event__connection_id=integration.source_id,
                    event__event_id__in=list(event_ids),
                ).values_list("event__event_id", flat=True)
            )

        return FlowContext(
            integration=integration,
            window_start=window_start,
            make_client=make_client,
            set_total=self._set_total,
            processed_events=processed_events,
            ledger=RunLedger(integration.source_id, integration.target_id, flow.ledger_target),
            processed_files=files_processed,
            width=self._in_flight(),
        )

    def _files_done(self, ctx: FlowContext) -> None:
        """The source files read to the end, with nothing to read again: recorded, so they
        are never processed twice (name, size, checksum), and handed to ``acknowledge``."""
        if not ctx.files or self.parent is not None:
            return
        ProcessedFile.objects.bulk_create(
            [
                ProcessedFile(
                    integration=self.integration,
                    kind=f["kind"][:40],
                    name=f["name"][:255],
                    size=int(f["size"]),
                    sha256=f["sha256"],
                    rows=int(f.get("rows", 0)),
                )
                for f in ctx.files
            ],
            ignore_conflicts=True,
        )
        ctx.done_files = list(ctx.files)

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

    def _mappings(self) -> Mappings:
        rows = sorted(
            FieldMapping.for_integration(self.integration),
            key=lambda m: m.integration_id is not None,
        )  # shared ones first, the integration's own laid over them
        return Mappings(
            {(m.kind, m.source_value.strip()): m.target_value for m in rows},
            declared=[kind.name for kind in self.flow.mapping_kinds],
        )

    def _set_total(self, total: int) -> None:
        self.counts.total = total
        self._flush(force=True)

    def _count(self, status: str) -> None:
        counts = self.counts
        counts.done += 1
        setattr(counts, status, getattr(counts, status) + 1)
        self._flush()
        if self.on_progress is not None and self.run_row is not None:
            self.on_progress(self.run_row)

    def _sync_row(self) -> SyncRun | None:
        run = self.run_row
        if run is not None:
            run.total, run.done = self.counts.total, self.counts.done
            for name in COUNTED:
                setattr(run, name, getattr(self.counts, name))
        return run

    def _flush(self, force: bool = False) -> None:
        now = time.monotonic()
        run = self._sync_row()
        if run is None or (not force and now - self._last_flush < PROGRESS_FLUSH_SECONDS):
            return
        self._last_flush = now
        run.heartbeat_at = timezone.now()
        with_reconnect(
            lambda: run.save(update_fields=["total", "done", *COUNTED, "heartbeat_at"]),
            what=f"Progress of run {run.pk}",
        )

    def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None

    def _finish(self, run: SyncRun, error: str = "", warning: str = "") -> SyncRun:
        self._stop_heartbeat()
        self._sync_row()
        if error:
            run.status = SyncRun.Status.FAILED
        elif run.failed or run.flagged or warning:
            run.status = SyncRun.Status.PARTIAL
        else:
            run.status = SyncRun.Status.SUCCEEDED
        run.error_summary = (error or warning)[:4000]
        run.finished_at = timezone.now()
        run.heartbeat_at = run.finished_at
        if run.total is None:
            run.total = run.done
        with_reconnect(run.save, what=f"The end of run {run.pk}")
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
