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
import os
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence, Sized
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django import db
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.tasks import async_task

from audit import ledger
from audit.models import AuditRecord, PostingLedger
from audit.selectors import ledger_confirmed_keys, ledger_confirmed_under, ledger_known_keys
from connections.providers import plain
from connections.providers.base import InboundEvent, Provider
from connections.providers.errors import ApiError, AuthFailed, Rejected
from connections.providers.registry import client_for
from connections.redaction import Redactor
from syncs.dbretry import drop_connection, with_reconnect
from syncs.flows import (
    Flag,
    Flow,
    FlowContext,
    LoadResult,
    Mappings,
    Payload,
    Posting,
    Skip,
    SourceRecord,
    Superseded,
    Wait,
    get_flow,
)
from syncs.models import (
    Cursor,
    FieldMapping,
    Integration,
    ProcessedFile,
    SyncRun,
    WebhookEvent,
    WebhookProcessing,
)

logger = logging.getLogger(__name__)

Status = AuditRecord.Status
PROGRESS_FLUSH_SECONDS = 0.5
BUSY_POLL_SECONDS = 0.2
COUNTED = ("synced", "skipped", "duplicate", "failed", "flagged")
# Outcomes written in bulk (a flag may join a waiting one; a replay resolves its original).
PLAIN = (Status.SYNCED, Status.DUPLICATE, Status.SKIPPED, Status.FAILED)
WRITE_BATCH = 25  # outcomes written together (or every PROGRESS_FLUSH_SECONDS)
CLAIM_BATCH = 20  # new ledger keys claimed together


_UNSET: Any = object()
PART_TASK = "syncs.tasks.run_part"
PART_POLL_SECONDS = 1.0


class _Abort(Exception):
    """Stop the run: continuing would only fail every remaining record the same way."""


class AlreadyRunning(Exception):
    """Another run of this integration is live (the database refused a second one)."""

    def __init__(self, live: SyncRun | None) -> None:
        super().__init__(f"Run #{live.pk if live else '?'} is still in progress.")
        self.live = live


class _Heartbeat:
    """Keeps a run's heartbeat fresh from a thread while the run is alive, so a long read is
    never mistaken for a dead worker, and a dead worker's run is recognised within seconds."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.every = float(settings.MLC["HEARTBEAT_SECONDS"])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"heartbeat-{run_id}")
        self._thread.start()

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self.every):
                try:
                    SyncRun.objects.filter(pk=self.run_id, status=SyncRun.Status.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
                except Exception:
                    logger.warning("Heartbeat of run %s not written", self.run_id, exc_info=True)
                    drop_connection()  # a restarted database: a new connection next beat
        finally:
            db.connection.close()  # this thread's own connection

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def worker_name(pid: int | None = None) -> str:
    """This process as runs record it: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


def _owner() -> str:
    return f"{worker_name()}:{threading.get_ident()}"


def _posting(entry: PostingLedger) -> Posting:
    return Posting(entry.idempotency_key, entry.pk, entry.generation, entry.attempted_at)


@dataclass
class _Outcome:
    """What happened to one record, ready to be written."""

    status: str
    reason: str
    payload: Payload | None = None
    loaded: LoadResult | None = None
    response: Any = None
    retryable: bool = False
    target_key: str = ""
    ledger_entry: PostingLedger | None = None
    ledger_op: Callable[[], PostingLedger] | None = None
    confirm: tuple[PostingLedger, str] | None = None  # (entry, remote id): posted
    error: Exception | None = None
    detail: str = ""  # the technical detail behind a plain reason
    fix: tuple[str, str] | None = None  # (mapping kind, source value) that would settle a flag
    waiting: bool = False  # not yet: what it needs has not arrived (retried by itself)


@dataclass
class _Item:
    """One record on its way through a chunk."""

    record: SourceRecord
    replay_of: AuditRecord | None
    mapped: Payload | Flag | Wait | Skip | Exception
    claim: ledger.Claim | None = None
    outcome: _Outcome | None = None
    superseded: str = ""  # why an earlier attempt's remnant was left and the write made afresh
    serial: str | None = None  # the flow's serial key: never loaded beside another with it
    prepare_failed: bool = False
    first_seen: datetime | None = None  # when a record that waited first waited
    seen_before: int = 0  # …and how often runs met it waiting


DROPPED = _Outcome(Status.SKIPPED, "not sent: the run stopped")  # written nowhere


class _Loader:
    """Runs load calls: inline when one at a time, else on up to ``width`` threads started as
    needed.  Each thread has its own database connection (the rate limiter and OAuth tokens
    use it), closed when the loader closes."""

    def __init__(self, width: int) -> None:
        self.width = width
        self._tasks: queue.SimpleQueue[tuple[Future, Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        self._threads: list[threading.Thread] = []

    def submit(self, fn: Callable[[], Any]) -> Future:
        future: Future = Future()
        if self.width <= 1:
            self._run(future, fn)
            return future
        if len(self._threads) < self.width:
            thread = threading.Thread(
                target=self._work, daemon=True, name=f"load-{len(self._threads) + 1}"
            )
            thread.start()
            self._threads.append(thread)
        self._tasks.put((future, fn))
        return future

    @staticmethod
    def _run(future: Future, fn: Callable[[], Any]) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as exc:  # handed to the runner's thread, which decides
            future.set_exception(exc)

    def _work(self) -> None:
        try:
            while (task := self._tasks.get()) is not None:
                self._run(*task)
        finally:
            db.connections.close_all()

    def close(self) -> None:
        for _ in self._threads:
            self._tasks.put(None)
        for thread in self._threads:
            thread.join()
        self._threads.clear()


class _Pipeline:
    """One run's records between mapping and writing: decided in order, new ledger keys
    claimed a batch at a time, loaded side by side (at most ``width`` loads in flight), and
    written in order, a batch at a time, as the oldest ones complete."""

    def __init__(self, runner: Runner, ctx: FlowContext, width: int) -> None:
        self.runner, self.ctx, self.width = runner, ctx, width
        self.flow = runner.flow
        self.loader = _Loader(width)
        self.order: deque[_Item] = deque()  # decided or loading, not yet written
        self.claiming: list[_Item] = []  # ledgered writes waiting for their claim
        self.batch: list[_Item] = []  # to be loaded together (``load_many`` flows)
        self.units: dict[Future, list[_Item]] = {}  # loads in flight
        self.abort: Exception | None = None
        chunk = max(1, int(self.flow.chunk_size))
        # How many items may wait, loaded but unwritten, behind a slow oldest one.
        self.backlog = max(4 * width * chunk + 16, 2 * (WRITE_BATCH + CLAIM_BATCH))
        self.last_write = time.monotonic()

    def add(self, record: SourceRecord, replay_of: AuditRecord | None, mappings: Mappings) -> None:
        flow, runner = self.flow, self.runner
        serial = flow.serial_key(record)
        if serial is not None and any(item.serial == serial for item in self.order):
            self.finish(send=True)  # the earlier one is written before this one is judged
        item = _Item(record, replay_of, None, serial=serial)  # type: ignore[arg-type]
        try:
            record = item.record = flow.prepare(self.ctx, record)
        except Exception as exc:
            logger.warning("prepare() failed for %s: %s", record.source_key, exc)
            item.mapped, item.prepare_failed = exc, True
        else:
            try:
                item.mapped = flow.map(record, mappings)
            except Exception as exc:
                logger.exception("map() failed for %s", record.source_key)
                item.mapped = exc
        key = item.mapped.ledger_key if isinstance(item.mapped, Payload) else None
        if key is not None and any(
            isinstance(other.mapped, Payload) and other.mapped.ledger_key == key
            for other in self.order
        ):
            self.finish(send=True)  # the same write twice: after the first one is written
        self.order.append(item)
        if key is not None:
            self.claiming.append(item)
            if len(self.claiming) >= CLAIM_BATCH:
                self._claim()
        else:
            runner._decide(self.ctx, item)
            self._note(item)
            if item.outcome is None:
                self._queue(item)
        self._write_ready()
        while self.units and (len(self.units) >= self.width or len(self.order) > self.backlog):
            self._wait(first=True)

    def _note(self, item: _Item) -> None:
        """Stop sending once the credentials are refused: every other load would fail so."""
        if item.outcome is not None and isinstance(item.outcome.error, AuthFailed):
            self.abort = self.abort or item.outcome.error

    def _claim(self) -> None:
        items, self.claiming = self.claiming, []
        if not items:
            return
        self.runner._claim_batch(self.ctx, items)
        for item in items:
            self._note(item)
            if item.outcome is None:
                self._queue(item)

    def _queue(self, item: _Item) -> None:
        if self.abort is not None:
            self._drop(item)
            return
        self.batch.append(item)
        if len(self.batch) >= max(1, int(self.flow.chunk_size)):
            self._send()

    def _drop(self, item: _Item) -> None:
        """Not sent, not recorded: the run stopped first, and the next run reads it again.  Its
        claim, if it has one, is let go (nothing was posted)."""
        if item.claim is not None:
            ledger.release(item.claim.entry, refused=True, error="Not sent: the run stopped.")
        item.outcome = DROPPED

    def _send(self) -> None:
        if not self.batch:
            return
        items, self.batch = self.batch, []
        future = self.loader.submit(lambda: self.runner._load_unit(self.ctx, items))
        self.units[future] = items
        if future.done():  # loaded inline: take its outcome now (a refusal stops the rest)
            self._collect([future])

    def _wait(self, *, first: bool) -> None:
        done, _ = wait(list(self.units), return_when=FIRST_COMPLETED if first else ALL_COMPLETED)
        self._collect(done)

    def _collect(self, done: Iterable[Future]) -> None:
        for future in done:
            items = self.units.pop(future)
            try:
                results: list[LoadResult | Exception] = future.result()
            except Exception as exc:
                results = [exc] * len(items)
            for item, result in zip(items, results, strict=True):
                payload = item.mapped
                assert isinstance(payload, Payload)
                item.outcome = self.runner._loaded(item, payload, result)
                self._note(item)
        self._write_ready()

    def _write_ready(self, *, force: bool = False) -> None:
        """Write the oldest items that have an outcome, together: when enough are ready, when
        the last write is ``PROGRESS_FLUSH_SECONDS`` old, or when ``force``d."""
        ready = 0
        for item in self.order:
            if item.outcome is None:
                break
            ready += 1
        if not ready:
            return
        stale = time.monotonic() - self.last_write >= PROGRESS_FLUSH_SECONDS
        if not (force or stale or ready >= WRITE_BATCH):
            return
        items = [self.order.popleft() for _ in range(ready)]
        written = [item for item in items if item.outcome is not DROPPED]
        with_reconnect(lambda: self.runner._write_many(written), what="Writing outcomes")
        self.last_write = time.monotonic()

    def finish(self, *, send: bool) -> None:
        """Write everything: load what is waiting (``send``), or record it as not sent."""
        if send and self.abort is None:
            self._claim()
            self._send()
        else:
            for item in [*self.claiming, *self.batch]:
                if item.outcome is None:
                    self._drop(item)
            self.claiming, self.batch = [], []
        while self.units:
            self._wait(first=False)
        self._write_ready(force=True)

    def close(self) -> None:
        self.loader.close()


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


class Runner:
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
        self.owner = _owner()
        self.lease_seconds = settings.MLC["LEDGER_LEASE_SECONDS"]
        self.busy_wait_seconds = settings.MLC.get("LEDGER_BUSY_WAIT_SECONDS", 30)
        self.on_progress = on_progress
        self.run_row: SyncRun | None = None
        self.event_row: WebhookEvent | None = None
        self.counts = _Counts()
        self._hold_cursor = False
        self._last_flush = 0.0
        self._final: list[SourceRecord] = []
        self._heartbeat: _Heartbeat | None = None

    # -- entry points -----------------------------------------------------------------------

    def run(
        self, records: Iterable[SourceRecord] | None = None, *, window_start: Any = _UNSET
    ) -> SyncRun:
        """Run the flow over ``records``, or over what ``flow.extract`` yields from its window
        (``window_start``, for a part: where its parent's window starts).  With the integration
        setting ``workers`` above 1 and a flow that can be split, the run is split: this
        worker takes the first part, django-q2 workers the others, and the run ends — and
        moves the cursor — once every part has."""
        run = self._ensure_run()
        started = timezone.now()
        ctx = self._context(None)
        warning = ""
        try:
            if window_start is _UNSET:
                window_start = self._window_start(started)
            ctx.window_start = window_start
            parts = self._split(ctx, run) if records is None and self.parent is None else 0
            source = records if records is not None else self.flow.extract(ctx)
            self._process(ctx, ((record, None) for record in source))
            if parts:
                warning = self._await_parts(run, parts, ctx)
            elif self.parent is not None and ctx.read_mark is not None:
                run.read_mark = str(ctx.read_mark)[:100]  # for the parent's cursor
            if not self._hold_cursor and self.flow.window and self.flow.window.from_run_start:
                self._move_cursor(str(self.flow.window.unit.format(started)))
            elif not self._hold_cursor and ctx.read_mark is not None:
                self._move_cursor(ctx.read_mark)
            if not self._hold_cursor:
                self._files_done(ctx)
            warning = " ".join(filter(None, [warning, self._acknowledge(ctx)]))
        except _Abort as exc:
            return self._finish(run, error=str(exc))
        except Exception as exc:
            logger.exception("Run %s of %s stopped", run.pk, self.integration.slug)
            return self._finish(run, error=self._describe(exc))
        finally:
            ctx.close()
        return self._finish(run, warning=warning)

    def _split(self, ctx: FlowContext, run: SyncRun) -> int:
        """Queue the other parts of this run for django-q2 workers and take the first one
        here; returns how many parts were queued (0: the run is not split)."""
        if "workers" not in {spec.name for spec in self.flow.declared_settings()}:
            return 0  # this flow's runs are not split
        workers = int(self.flow.setting("workers") or 1)
        if workers < 2:
            return 0
        parts = self.flow.partitions(ctx, workers)
        if len(parts) < 2:
            return 0
        for n, part in enumerate(parts[1:], start=2):
            try:
                async_task(
                    PART_TASK,
                    self.integration.pk,
                    run.pk,
                    part,
                    ctx.window_start,
                    task_name=f"run {self.integration.slug} part {n}/{len(parts)}"[:100],
                )
            except Exception:  # the queue is out of reach: this worker runs the part itself
                logger.warning("Run %s: part %d not queued; run here instead", run.pk, n)
                Runner(
                    self.integration,
                    trigger=SyncRun.Trigger.PART,
                    requested_by=self.requested_by,
                    parent=run,
                    part=part,
                ).run(window_start=ctx.window_start)
        self.flow = type(self.flow)(options={**self.flow.options, **parts[0]})
        logger.info("Run %s of %s split in %d parts", run.pk, self.integration.slug, len(parts))
        return len(parts) - 1

    def _await_parts(self, run: SyncRun, expected: int, ctx: FlowContext) -> str:
        """Wait (heartbeat going) for the queued parts; add up what they did; hold the cursor
        unless every one finished with nothing to read again.  Returns a warning, if any."""
        deadline = time.monotonic() + float(settings.MLC["PART_WAIT_SECONDS"])
        while True:
            parts = list(SyncRun.objects.filter(parent=run))
            finished = [p for p in parts if p.status != SyncRun.Status.RUNNING]
            if len(finished) >= expected or time.monotonic() > deadline:
                break
            time.sleep(PART_POLL_SECONDS)
        for part in finished:
            self.counts.done += part.done
            for name in COUNTED:
                setattr(self.counts, name, getattr(self.counts, name) + getattr(part, name))
        if self.counts.total is not None:
            self.counts.total += sum(p.total or 0 for p in finished)
        ok = (SyncRun.Status.SUCCEEDED, SyncRun.Status.PARTIAL)
        unfinished = expected - len([p for p in finished if p.status in ok])
        again = AuditRecord.objects.filter(
            run__in=finished, status=Status.FAILED, retryable=True
        ).exists()
        if unfinished or again:
            self._hold_cursor = True  # the next run reads this window again
        window = self.flow.window
        marks = [m for m in [ctx.read_mark, *(p.read_mark for p in finished)] if m]
        if window is not None and marks:
            try:  # how far the parts read together: the furthest any of them read
                ctx.read_mark = max(marks, key=lambda m: window.unit.parse(str(m)))
            except ValueError:
                logger.warning("Run %s: parts read to marks of another unit: %s", run.pk, marks)
        numbers = ", ".join(f"#{p.pk}" for p in parts)
        if unfinished:
            return (
                f"{unfinished} of the {expected + 1} parts of this run did not finish "
                f"(runs {numbers or 'not started'}); the next run reads their records again."
            )
        return ""

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
        pipe = _Pipeline(self, ctx, self._in_flight())
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

    def _decide(self, ctx: FlowContext, item: _Item) -> None:
        """Give ``item`` its outcome now, or leave it None: it is to be loaded."""
        mapped = item.mapped
        if isinstance(mapped, Exception):
            detail = self._describe(mapped)
            if item.prepare_failed:
                item.outcome = _Outcome(
                    Status.FAILED,
                    plain.unreadable(mapped),
                    retryable=not isinstance(mapped, Rejected),
                    error=mapped,
                    detail=detail,
                )
            else:
                reason = (
                    "Could not map this record into what the target expects (a value in it is "
                    "missing or not what was expected); the technical detail is below."
                )
                item.outcome = _Outcome(Status.FAILED, reason, detail=detail)
        elif isinstance(mapped, Flag):
            item.outcome = _Outcome(Status.FLAGGED, mapped.reason, fix=mapped.fix)
        elif isinstance(mapped, Skip):
            item.outcome = _Outcome(Status.SKIPPED, mapped.reason)
        elif isinstance(mapped, Wait):
            item.outcome = _Outcome(Status.FAILED, mapped.reason, retryable=True, waiting=True)

    def _claim_batch(self, ctx: FlowContext, items: list[_Item]) -> None:
        """Claim the ledger keys of ``items``: keys never seen before in one go, the rest (a
        retry, a recovery, another worker's) one by one.  An item gets an outcome when it must
        not be posted now."""
        keys = [str(item.mapped.ledger_key) for item in items]  # type: ignore[union-attr]
        fresh = (
            ledger.claim_many(
                integration_id=self.integration.pk,
                connection_id=self.integration.target_id,
                target=self.flow.ledger_target,
                natural_keys=keys,
                owner=self.owner,
                lease_seconds=self.lease_seconds,
            )
            if len(items) > 1
            else {}
        )
        for item, key in zip(items, keys, strict=True):
            claim = fresh.pop(key, None)  # a key twice in one batch: the second one waits
            if claim is not None:
                item.claim = claim
                continue
            payload = item.mapped
            assert isinstance(payload, Payload)
            item.outcome = self._claim_for(ctx, item, payload)

    def _load_unit(self, ctx: FlowContext, items: list[_Item]) -> list[LoadResult | Exception]:
        """One ``load_many`` call (in a load thread): one result or exception per item."""
        batch = []
        for item in items:
            payload = item.mapped
            assert isinstance(payload, Payload)
            entry = item.claim.entry if item.claim else None
            batch.append((payload, _posting(entry) if entry else None))
        try:
            results = self.flow.load_many(ctx, batch)
            if len(results) != len(batch):
                raise RuntimeError(f"load_many answered {len(results)} of {len(batch)} writes")
        except Exception as exc:  # the whole call failed: the same for every write in it
            results = [exc] * len(batch)
        return results

    def _claim_for(self, ctx: FlowContext, item: _Item, payload: Payload) -> _Outcome | None:
        """Claim a ledgered write; an outcome when it must not be posted now, else None."""
        claim = item.claim = self._claim(str(payload.ledger_key))
        outcome = self._claimed(ctx, item, payload, claim)
        if outcome is None and item.superseded:  # post afresh, under the next generation
            claim = item.claim = self._claim(str(payload.ledger_key))
            if claim.status is ledger.ClaimStatus.FRESH:
                return None
            outcome = self._claimed(ctx, item, payload, claim)
        return outcome

    def _claimed(
        self, ctx: FlowContext, item: _Item, payload: Payload, claim: ledger.Claim
    ) -> _Outcome | None:
        entry = claim.entry
        if claim.status is ledger.ClaimStatus.CONFIRMED:
            return _Outcome(
                Status.DUPLICATE,
                f"Already posted ({entry.remote_id or 'remote id unknown'}); not posted again.",
                payload=payload,
                target_key=entry.remote_id,
                ledger_entry=entry,
            )
        if claim.status is ledger.ClaimStatus.BUSY:
            return _Outcome(
                Status.FAILED,
                "Another worker is posting this record right now; it will be "
                "checked again by the next run or a replay.",
                payload=payload,
                retryable=True,
                ledger_entry=entry,
            )
        if claim.status is not ledger.ClaimStatus.RECOVER:
            return None
        try:
            found = self.flow.find_existing(ctx, payload, _posting(entry))
        except Superseded as exc:
            if item.superseded:  # twice in one go (another worker in between): later
                return _Outcome(
                    Status.FAILED,
                    f"{exc.note} It changed again meanwhile; the next run tries again.",
                    payload=payload,
                    retryable=True,
                    ledger_entry=entry,
                )
            with transaction.atomic():  # refused: the next claim takes a new generation
                ledger.release(entry, refused=True, error=exc.note)
            item.superseded = exc.note
            return None
        except Exception as exc:
            reason = (
                "An earlier attempt may have posted this and the target could not be "
                f"asked ({self._describe(exc)}); not posted again."
            )
            return _Outcome(
                Status.FAILED,
                reason,
                payload=payload,
                retryable=True,
                error=exc,
                ledger_op=lambda: ledger.release(entry, refused=False, error=reason),
            )
        if found is None:
            ledger.sending_again(entry)
            return None
        if isinstance(found, Wait):
            return _Outcome(
                Status.FAILED,
                found.reason,
                payload=payload,
                retryable=True,
                waiting=True,
                ledger_op=lambda: ledger.release(entry, refused=False, error=found.reason),
            )
        return _Outcome(
            Status.SYNCED,
            "Found in the target after an interrupted attempt; not posted again.",
            payload=payload,
            loaded=found,
            ledger_op=lambda: ledger.confirm(entry, remote_id=found.remote_id),
        )

    def _loaded(self, item: _Item, payload: Payload, result: LoadResult | Exception) -> _Outcome:
        entry = item.claim.entry if item.claim else None
        if isinstance(result, Exception):
            if not isinstance(result, ApiError):
                logger.error("load failed for %s", item.record.source_key, exc_info=result)
            reason = self._describe(result)
            refused = isinstance(result, Rejected)
            told = plain.failure(
                result,
                system=plain.system_name(self.integration.target.provider_class),
                thing=self.flow.posting_name,
                detail=reason,
                lost_answer=self.flow.after_lost_answer,
            )
            return _Outcome(
                Status.FAILED,
                told.reason,
                payload=payload,
                retryable=not refused,
                response=result.summary() if isinstance(result, ApiError) else None,
                error=result,
                detail=told.detail,
                ledger_op=(
                    (lambda: ledger.release(entry, refused=refused, error=reason))
                    if entry is not None
                    else None
                ),
            )
        note = result.note
        if result.flag:
            note = f"{result.flag} {note}".strip()
        if item.superseded:
            note = f"{item.superseded} {note}".strip()
        elif item.claim is not None and item.claim.status is ledger.ClaimStatus.RECOVER:
            note = f"Completed after an interrupted attempt. {note}".strip()
        return _Outcome(
            Status.FLAGGED if result.flag else Status.SYNCED,
            note,
            payload=payload,
            loaded=result,
            confirm=(entry, result.remote_id) if entry is not None else None,
        )

    def _claim(self, key: str) -> ledger.Claim:
        deadline = time.monotonic() + self.busy_wait_seconds
        while True:
            claim = ledger.claim(
                integration_id=self.integration.pk,
                connection_id=self.integration.target_id,
                target=self.flow.ledger_target,
                natural_key=key,
                owner=self.owner,
                lease_seconds=self.lease_seconds,
            )
            if claim.status is not ledger.ClaimStatus.BUSY or time.monotonic() >= deadline:
                return claim
            time.sleep(BUSY_POLL_SECONDS)

    # -- writing one outcome ----------------------------------------------------------------

    def _write(self, item: _Item, out: _Outcome) -> AuditRecord:
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
    def _ledger_change(out: _Outcome) -> PostingLedger | None:
        if out.confirm is not None:
            entry, remote_id = out.confirm
            return ledger.confirm(entry, remote_id=remote_id)
        return out.ledger_op() if out.ledger_op is not None else out.ledger_entry

    def _audit_row(
        self, item: _Item, out: _Outcome, ledger_entry: PostingLedger | None
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
            retryable=out.retryable,
            seen_via=record.seen_via or self.trigger,
            source_payload=redact(record.data),
            sent_payload=redact(payload.data) if payload is not None else None,
            response_summary=redact(dict(response)) if response is not None else None,
            attempt=(replay_of.attempt + 1) if replay_of else 1,
            replay_of=replay_of,
            ledger=ledger_entry,
            waiting=out.waiting,
            **self._history(item, out.status),
        )

    @staticmethod
    def _history(item: _Item, status: str) -> dict[str, Any]:
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

    def _write_many(self, items: Sequence[_Item]) -> None:
        """Write outcomes in order, in one transaction: runs of plain outcomes (no replay, no
        flag) as one insert of their audit records and one look for earlier failures to
        resolve; flags and replays one by one, where they were."""
        plain: list[_Item] = []
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

    def _write_plain(self, items: Sequence[_Item]) -> None:
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

    def _settle(self, items: Sequence[_Item], rows: Sequence[AuditRecord]) -> None:
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
        mark = None
        for item, row in zip(items, rows, strict=True):
            if row.status == Status.FAILED and row.retryable:
                self._hold_cursor = True
            elif item.record.watermark and not self._hold_cursor:
                mark = item.record.watermark
        if mark is not None:
            self._move_cursor(mark)
        for item, row in zip(items, rows, strict=True):
            if not (row.status == Status.FAILED and row.retryable) and item.replay_of is None:
                self._keep_final(item.record)
            if self.run_row is None:
                self.counts.records.append(row.pk)
            self._count(row.status)

    def _still_waiting(self, item: _Item, out: _Outcome) -> AuditRecord | None:
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
                self._hold_cursor = True
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

    def _failed_again(self, item: _Item, out: _Outcome) -> AuditRecord | None:
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
            self._hold_cursor = True
        else:
            if record.watermark and not self._hold_cursor:
                self._move_cursor(record.watermark)
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
        if record.watermark and not self._hold_cursor:
            self._move_cursor(record.watermark)
        self._keep_final(record)
        self._count(Status.SKIPPED)  # nothing new needs anyone: it is already waiting
        return row

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
            self._heartbeat = _Heartbeat(self.run_row.pk)
            if counts.records:  # records of this delivery written before it needed a run
                AuditRecord.objects.filter(pk__in=counts.records).update(run=self.run_row)
                counts.records.clear()
        return self.run_row

    def _context(self, window_start: int | str | None) -> FlowContext:
        integration, flow = self.integration, self.flow

        def make_client(side: str) -> Provider:
            return client_for(getattr(integration, side))

        def posted(keys: Sequence[str]) -> set[str]:
            return ledger_confirmed_keys(
                connection_id=integration.target_id, target=flow.ledger_target, keys=keys
            )

        def claimed(keys: Sequence[str]) -> set[str]:
            return ledger_known_keys(
                connection_id=integration.target_id, target=flow.ledger_target, keys=keys
            )

        def files_processed(files: Sequence[tuple[str, int, str]]) -> set[tuple[str, int, str]]:
            if not files:
                return set()
            rows = ProcessedFile.objects.filter(
                integration=integration, name__in=[name for name, _, _ in files]
            ).values_list("name", "size", "sha256")
            return {(n, int(z), h) for n, z, h in rows} & set(files)

        def confirmed_under(prefix: str, target: str | None, side: str) -> dict[str, str]:
            return ledger_confirmed_under(
                connection_id=integration.source_id if side == "source" else integration.target_id,
                target=target or flow.ledger_target,
                prefix=prefix,
            )

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
            posted=posted,
            processed_events=processed_events,
            claimed=claimed,
            confirmed_under=confirmed_under,
            processed_files=files_processed,
            width=self._in_flight(),
        )

    def _window_start(self, now: Any) -> int | str | None:
        window = self.flow.window
        if window is None:
            return None
        row = Cursor.objects.filter(integration=self.integration, stream=self.flow.stream).first()
        override = self.flow.setting("overlap_seconds")
        overlap = timedelta(seconds=float(override)) if override not in (None, "") else None
        return window.start(row.value if row else "", now=now, overlap=overlap)

    def _move_cursor(self, value: str) -> None:
        if self.parent is not None:
            return  # a part: its run moves the cursor once every part is done
        Cursor.objects.update_or_create(
            integration=self.integration, stream=self.flow.stream, defaults={"value": value}
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

    def _finish(self, run: SyncRun, error: str = "", warning: str = "") -> SyncRun:
        if self._heartbeat is not None:
            self._heartbeat.stop()
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
