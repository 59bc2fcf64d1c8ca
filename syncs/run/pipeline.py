"""One run's records between mapping and writing: the ``Pipeline`` decides them in order,
claims new ledger keys a batch at a time, loads them side by side (``Loader``: at most the
target connection's in-flight width) and writes their outcomes in order, a batch at a time.
What each step does to a record is the host's (``PipelineHost``, the runner): posting decides
and loads, outcomes write."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from django import db

from audit import ledger
from audit.models import AuditRecord, PostingLedger
from connections.providers.errors import Resolution, resolution_of
from syncs.dbretry import with_reconnect
from syncs.flows import (
    Check,
    Flag,
    Flow,
    FlowContext,
    LoadResult,
    Mappings,
    Payload,
    Skip,
    SourceRecord,
    Wait,
)

logger = logging.getLogger(__name__)

Status = AuditRecord.Status
PROGRESS_FLUSH_SECONDS = 0.5
WRITE_BATCH = 25  # outcomes written together (or every PROGRESS_FLUSH_SECONDS)
CLAIM_BATCH = 20  # new ledger keys claimed together


def prepared(flow: Flow, ctx: FlowContext, record: SourceRecord) -> SourceRecord:
    """The record with what ``prepare`` looked up for it, of the kind the flow declares."""
    found = flow.prepare(ctx, record)
    wanted = flow.lookups
    if (found is None) if wanted is not None else (found is not None):
        raise TypeError(
            f"{type(flow).__name__}.prepare gave {type(found).__name__}, "
            f"not the {getattr(wanted, '__name__', 'nothing')} it declares."
        )
    if wanted is not None and not isinstance(found, wanted):
        raise TypeError(f"{type(flow).__name__}.prepare gave {type(found).__name__}.")
    return replace(record, lookups=found)


def decided(flow: Flow, record: SourceRecord, mappings: Mappings) -> Any:
    """What ``map`` decides for a prepared record, held to the contract: a check posts nothing,
    and a ledgered payload carries the key ``ledger_key`` builds for the record."""
    mapped = flow.map(record, mappings)
    if isinstance(mapped, Payload):
        if isinstance(flow, Check):
            raise TypeError(f"{type(flow).__name__} is a check, yet its map gave a payload.")
        if mapped.ledger_key is not None and mapped.ledger_key != flow.ledger_key(record):
            raise ValueError(
                f"{type(flow).__name__} posts {record.source_key} under “{mapped.ledger_key}”, "
                f"not under its ledger key “{flow.ledger_key(record)}”."
            )
    return mapped


class PipelineHost(Protocol):
    """What the pipeline asks of the run it serves."""

    flow: Any

    def _decide(self, ctx: FlowContext, item: Item) -> None: ...

    def _claim_batch(self, ctx: FlowContext, items: list[Item]) -> None: ...

    def _load_unit(self, ctx: FlowContext, items: list[Item]) -> list[LoadResult | Exception]: ...

    def _loaded(self, item: Item, payload: Payload, result: LoadResult | Exception) -> Outcome: ...

    def _write_many(self, items: Sequence[Item]) -> None: ...


@dataclass
class Outcome:
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
    advice: str = ""  # the next step, when no mapping settles it
    see: tuple[str, str] | None = None  # (kind, id) of the thing in the source to act on
    waiting: bool = False  # not yet: what it needs has not arrived (retried by itself)


@dataclass
class Item:
    """One record on its way through a chunk."""

    record: SourceRecord
    replay_of: AuditRecord | None
    mapped: Payload | Flag | Wait | Skip | Exception
    claim: ledger.Claim | None = None
    outcome: Outcome | None = None
    superseded: str = ""  # why an earlier attempt's remnant was left and the write made afresh
    serial: str | None = None  # the flow's serial key: never loaded beside another with it
    prepare_failed: bool = False
    first_seen: datetime | None = None  # when a record that waited first waited
    seen_before: int = 0  # …and how often runs met it waiting


DROPPED = Outcome(Status.SKIPPED, "not sent: the run stopped")  # written nowhere


class Loader:
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


class Pipeline:
    """One run's records between mapping and writing: decided in order, new ledger keys
    claimed a batch at a time, loaded side by side (at most ``width`` loads in flight), and
    written in order, a batch at a time, as the oldest ones complete."""

    def __init__(self, runner: PipelineHost, ctx: FlowContext, width: int) -> None:
        self.runner, self.ctx, self.width = runner, ctx, width
        self.flow = runner.flow
        self.loader = Loader(width)
        self.order: deque[Item] = deque()  # decided or loading, not yet written
        self.claiming: list[Item] = []  # ledgered writes waiting for their claim
        self.batch: list[Item] = []  # to be loaded together (``load_many`` flows)
        self.units: dict[Future, list[Item]] = {}  # loads in flight
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
        item = Item(record, replay_of, None, serial=serial)  # type: ignore[arg-type]
        try:
            record = item.record = prepared(flow, self.ctx, record)
        except Exception as exc:
            logger.warning("prepare() failed for %s: %s", record.source_key, exc)
            item.mapped, item.prepare_failed = exc, True
        else:
            try:
                item.mapped = decided(flow, record, mappings)
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

    def _note(self, item: Item) -> None:
        """Stop sending once the credentials are refused: every other load would fail so."""
        if (
            item.outcome is not None
            and item.outcome.error is not None
            and (resolution_of(item.outcome.error) is Resolution.STOP)
        ):
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

    def _queue(self, item: Item) -> None:
        if self.abort is not None:
            self._drop(item)
            return
        self.batch.append(item)
        if len(self.batch) >= max(1, int(self.flow.chunk_size)):
            self._send()

    def _drop(self, item: Item) -> None:
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
