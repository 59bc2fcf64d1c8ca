"""The flow contract: ``extract → map → load``, the values that pass between them, and the
``FlowContext`` a flow works in.

A flow is small and declarative:

- ``extract(ctx)`` yields ``SourceRecord``s with a stable ``source_key``, in watermark order,
  reading from ``ctx.window_start`` — which the runner computes from the cursor and the flow's
  declared ``ReadWindow`` (replication key, unit, overlap, how far back the source reaches).  The
  cursor holds the watermark of the last committed record, so a window reads inclusively
  (``>=``) and records sharing it are seen again: the ledger makes that harmless.
- ``map(record, mappings)`` is pure — no I/O — and returns a ``Payload``, a ``Flag`` (needs a
  human), a ``Wait`` (not yet: read it again next run) or a ``Skip``.
- ``load(ctx, payload, posting)`` makes one target write; it raises ``Rejected`` only when
  nothing was applied.  A target that takes many writes per request overrides ``load_many``
  (and sets ``chunk_size``): the runner still claims and confirms each record in the ledger.
- ``find_existing(ctx, payload, posting)`` answers whether an interrupted post went through (or
  raises ``Superseded`` when its remnant must be left and the write made afresh).
- ``acknowledge(ctx, records)`` is called after the run with the records whose outcome is
  committed and final, so a source can archive a file or mark a batch as read.

``ctx.source`` and ``ctx.target`` are the typed clients of the integration's connections (one
per thread: the runner loads records concurrently, each load in a thread of its own pool).

Concurrency: the runner keeps up to the target connection's ``max_in_flight`` loads in flight and
writes their outcomes in source order.  Records that must not overlap (two payments on one
invoice: the second is judged against what the first left open) share a ``serial_key``; the
runner finishes the earlier one before it calls ``prepare`` (the flow's last read, in the
runner's thread) and ``map`` for the later one.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from connections.providers.base import InboundEvent, Provider
from connections.providers.errors import Resolution, resolution_of
from connections.providers.spec import FieldSpec, clean_declared, positive_int, text, whole_number
from syncs.flows.keys import Thing
from syncs.flows.kinds import MappingKind
from syncs.flows.reconciling import Reconciler

if TYPE_CHECKING:
    from syncs.models import Integration

logger = logging.getLogger(__name__)

S = TypeVar("S", bound=Provider)
T = TypeVar("T", bound=Provider)
V = TypeVar("V")
A = TypeVar("A")
R = TypeVar("R")


class Unit(enum.Enum):
    """How a source expresses its replication key (and so how the cursor stores it)."""

    EPOCH_MS = "epoch_ms"  # milliseconds since 1970 (M3 LMTS; unverified, see the M3 flow)
    EPOCH_S = "epoch_s"  # seconds since 1970 (Stripe's created)
    DATE = "yyyymmdd"  # a calendar date (M3 dates)
    ISO = "iso8601"  # an ISO 8601 timestamp, UTC when it names no zone (Cin7, IFS)

    def format(self, moment: datetime) -> int | str:
        if self is Unit.EPOCH_MS:
            return int(moment.timestamp() * 1000)
        if self is Unit.EPOCH_S:
            return int(moment.timestamp())
        if self is Unit.ISO:
            return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return moment.strftime("%Y%m%d")

    def parse(self, value: str) -> datetime:
        """A stored cursor value as a moment; ``ValueError`` when it is not of this unit."""
        if self is Unit.EPOCH_MS:
            return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
        if self is Unit.EPOCH_S:
            return datetime.fromtimestamp(int(value), tz=UTC)
        if self is Unit.ISO:
            moment = datetime.fromisoformat(value)
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return datetime.strptime(value, "%Y%m%d").replace(tzinfo=UTC)


@dataclass(frozen=True)
class ReadWindow:
    """Where an incremental read starts: the runner, not the flow, computes it from the cursor.

    ``replication_key`` names the source field the read filters on; ``overlap`` re-reads that
    far behind the cursor (late writers, clock skew; an integration's ``overlap_seconds`` setting
    overrides it); ``reach`` is how far back the source can be read at all (the first run starts
    there, or from the beginning when None).  ``from_run_start``: the source filters by a key it
    does not return per record, so the run's start is the next cursor, committed when the run
    ends with nothing to read again.
    """

    replication_key: str
    unit: Unit
    overlap: timedelta = timedelta(minutes=5)
    reach: timedelta | None = None
    from_run_start: bool = False

    def start(
        self, cursor: str, *, now: datetime, overlap: timedelta | None = None
    ) -> int | str | None:
        """The first value to read (None: from the beginning)."""
        floor = now - self.reach if self.reach is not None else None
        begin: datetime | None = None
        if cursor:
            try:
                begin = self.unit.parse(cursor) - (self.overlap if overlap is None else overlap)
            except (ValueError, OverflowError, OSError):
                logger.warning("Cursor %r is not %s: reading from the start", cursor, self.unit)
        if floor is not None and (begin is None or begin < floor):
            begin = floor
        if begin is None:
            return None
        if begin.timestamp() < 0:
            begin = datetime.fromtimestamp(0, tz=UTC)
        return self.unit.format(begin)


@dataclass(frozen=True)
class SourceRecord:
    """One record read from the source."""

    source_key: str
    data: dict[str, Any]
    watermark: str | None = None
    seen_via: str = ""


@dataclass(frozen=True)
class Payload:
    """What to write to the target.

    ``ledger_key`` is the natural key of a non-idempotent write (the runner posts it exactly
    once); ``None`` marks an idempotent write (an upsert) that needs no ledger.
    """

    data: dict[str, Any]
    ledger_key: str | None
    target_key: str = ""


@dataclass(frozen=True)
class Flag:
    """The record needs a human (unmapped vendor, currency mismatch …): never posted.

    ``fix`` names the mapping that would settle it, as (mapping kind, source value): the review
    queue links to that mapping's form, prefilled, which saves it and replays the record.
    """

    reason: str
    fix: tuple[str, str] | None = None


@dataclass(frozen=True)
class Wait:
    """Not yet: something this record needs is not there yet (its customer, say).  Recorded as
    a retryable failure, so the cursor holds and the next run reads it again."""

    reason: str


@dataclass(frozen=True)
class Skip:
    """Nothing to do for this record (unchanged, out of scope)."""

    reason: str


@dataclass(frozen=True)
class Posting:
    """The posting ledger's claim on one write."""

    idempotency_key: str
    ledger_id: int
    generation: int
    # When the earlier attempt that may have reached the target was sent (None: not known).
    attempted_at: datetime | None = None

    def number(self, base: int, slots: int = 100) -> int:
        """A number unique to this entry and generation: ``base + id·slots + generation``."""
        if self.generation >= slots:
            raise ValueError("too many refused attempts for one posting number")
        return base + self.ledger_id * slots + self.generation


class Superseded(Exception):
    """From ``find_existing``: an earlier attempt left an incomplete remnant that must not be
    completed (a step in it cannot be told apart from a repeat) but has no effect on its own;
    post afresh under a new posting number.  ``note`` tells a person what to clean up."""

    def __init__(self, note: str) -> None:
        super().__init__(note)
        self.note = note


@dataclass(frozen=True)
class LoadResult:
    """The outcome of a target write."""

    remote_id: str
    response: Mapping[str, Any] | None = None
    note: str = ""
    # Written, but a person must finish it by hand (what the target refused of it): the record
    # is confirmed in the ledger — never posted again — and put in the review queue.
    flag: str = ""


class Mappings:
    """The integration's field mappings, read once per run: ``get(kind, source_value)``.

    ``declared``: the kinds the flow declares (None: any); reading another is a bug, so it
    raises rather than finding nothing."""

    def __init__(
        self,
        table: Mapping[tuple[str, str], str] | None = None,
        *,
        declared: Iterable[str] | None = None,
    ) -> None:
        self._table = dict(table or {})
        self._declared = None if declared is None else frozenset(declared)

    def get(self, kind: str, source_value: Any) -> str | None:
        if self._declared is not None and kind not in self._declared:
            raise LookupError(f"“{kind}” mappings are read but not declared by the flow.")
        return self._table.get((kind, str(source_value).strip()))


class Ledger(Protocol):
    """The posting ledger as a flow reads it (``ctx.ledger``)."""

    def confirmed(self, keys: Iterable[str]) -> set[str]:
        """Which of these keys the target holds (confirmed)."""
        ...

    def known(self, keys: Iterable[str]) -> set[str]:
        """Which of these keys are confirmed or being posted right now (by any worker)."""
        ...

    def under(self, thing: Thing, *values: Any, side: str = "target") -> dict[str, str]:
        """The confirmed keys of ``thing`` beginning with these field values, with their
        remote ids, on the integration's target (or ``side="source"``) connection — what an
        earlier run, or another flow, made there."""
        ...


class NoLedger:
    """A ledger that holds nothing (a context made outside a run)."""

    def confirmed(self, keys: Iterable[str]) -> set[str]:
        return set()

    def known(self, keys: Iterable[str]) -> set[str]:
        return set()

    def under(self, thing: Thing, *values: Any, side: str = "target") -> dict[str, str]:
        return {}


@dataclass
class FlowContext(Generic[S, T]):
    """What a flow may use during a run; built by the runner."""

    integration: Integration
    window_start: int | str | None
    make_client: Callable[[str], Provider]
    set_total: Callable[[int], None]
    processed_events: Callable[[Sequence[str]], set[str]]
    ledger: Ledger = field(default_factory=NoLedger)
    read_mark: str | None = None
    # The integration's field mappings, for ``prepare`` to check against the target before
    # ``map`` decides (``map`` is given them too).
    mappings: Mappings = field(default_factory=Mappings)
    processed_files: Callable[[Sequence[tuple[str, int, str]]], set[tuple[str, int, str]]] = (
        lambda files: set()
    )
    # Source files read in this run (``file_read``); once the run ends with nothing to read
    # again the runner records them as processed and hands them over as ``done_files``.
    files: list[dict[str, Any]] = field(default_factory=list)
    done_files: list[dict[str, Any]] = field(default_factory=list)
    width: int = 1  # how many reads ``in_parallel`` runs at once (the in-flight setting)
    # What ``extract`` read ahead in bulk for ``prepare`` (which takes each entry once), keyed
    # by the flow: never stored with a record, so a replay reads afresh.
    read_ahead: dict[str, Any] = field(default_factory=dict)

    _clients: dict[tuple[int, str], Provider] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _client(self, side: str) -> Provider:
        key = (threading.get_ident(), side)
        client = self._clients.get(key)
        if client is None:
            client = self.make_client(side)
            with self._lock:
                self._clients[key] = client
        return client

    @property
    def source(self) -> S:
        """This thread's client of the integration's source connection."""
        return self._client("source")  # type: ignore[return-value]

    @property
    def target(self) -> T:
        """This thread's client of the integration's target connection."""
        return self._client("target")  # type: ignore[return-value]

    def mark_read(self, watermark: str) -> None:
        """Everything up to ``watermark`` was read and needs nothing more from this run: the
        runner moves the cursor there when the run ends, unless a retryable failure means some
        of it must be read again."""
        self.read_mark = watermark

    def file_read(self, *, kind: str, name: str, size: int, sha256: str, rows: int) -> None:
        """A source file was read whole (its rows are yielded): record it as processed once
        the run ends with nothing to read again."""
        self.files.append(
            {"kind": kind, "name": name, "size": size, "sha256": sha256, "rows": rows}
        )

    def file_processed(self, name: str, size: int, sha256: str) -> bool:
        """Whether an earlier run processed this file (name, size and checksum: the same name
        with other content is a new file)."""
        return bool(self.processed_files([(name, size, sha256)]))

    def events_processed(self, event_ids: Iterable[str]) -> set[str]:
        """Which of these source events a webhook delivery already processed for this flow."""
        return self.processed_events(list(event_ids))

    def in_parallel(self, fn: Callable[[A], R], items: Sequence[A]) -> list[R | Exception]:
        """``fn`` applied to each item, up to ``width`` at a time (the connection's in-flight
        setting), in order: one result or exception per item.  Each thread uses its own client
        (``ctx.source``, ``ctx.target``) and database connection, closed when it is done — the
        reads of a run go side by side as its loads do."""
        if self.width <= 1 or len(items) <= 1:
            return [_attempt(fn, item) for item in items]
        from django import db

        results: list[R | Exception] = [None] * len(items)  # type: ignore[list-item]
        todo = iter(range(len(items)))
        lock = threading.Lock()

        def work() -> None:
            try:
                while True:
                    with lock:
                        n = next(todo, None)
                    if n is None:
                        return
                    results[n] = _attempt(fn, items[n])
            finally:
                db.connections.close_all()

        threads = [
            threading.Thread(target=work, name=f"read-{n + 1}", daemon=True)
            for n in range(min(self.width, len(items)))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()


def _attempt(fn: Callable[[A], R], item: A) -> R | Exception:
    try:
        return fn(item)
    except Exception as exc:  # handed back as data: the caller decides
        return exc


def setting(
    name: str,
    label: str,
    clean: Callable[[Any], Any] = text,
    *,
    default: Any = None,
    help: str = "",
    multiline: bool = False,
) -> FieldSpec:
    """One setting of a flow (never secret, never required: blank means its default)."""
    return FieldSpec(
        name,
        label,
        secret=False,
        required=False,
        help=help,
        default=default,
        clean=clean,
        multiline=multiline,
    )


# Settings the engine reads for a flow that has a read window, or whose runs can be split.
OVERLAP_SETTING = setting(
    "overlap_seconds",
    "Re-read overlap (seconds)",
    whole_number,
    help="How far behind the last run each run reads again (late writers, clock skew). "
    "Blank: the flow's own overlap.",
)
WORKERS_SETTING = setting(
    "workers",
    "Workers per run",
    positive_int,
    default=1,
    help="Split each run into this many parts that workers take side by side.",
)


@dataclass
class Flow(Generic[S, T]):
    """Base class of every flow; subclasses set the class attributes and the methods.

    A flow reads only the settings it declares (``settings``; ``part_settings`` are set by its
    own ``partitions``, never by a person): ``self.setting(name)`` gives the checked value or
    its default.  Its options are checked when it is made, so an unknown name or a value of the
    wrong kind is a ``ValidationError`` — on the integration form, never mid-run.
    """

    key: ClassVar[str]
    label: ClassVar[str]
    source_kind: ClassVar[str]
    target_kind: ClassVar[str]
    stream: ClassVar[str]
    ledger_target: ClassVar[str]  # the ledger's name for the thing posted, e.g. "m3.receipt"
    posting_name: ClassVar[str] = "the record"  # what a finance user calls it ("the receipt")
    reconciler: ClassVar[Reconciler | None] = None  # how its month-end is reconciled
    # The admin lists its postings appear in besides the audit trail ("collections": money
    # collected and posted; "payment_quotes": payments prepared for a person to send).
    listed_in: ClassVar[frozenset[str]] = frozenset()
    posts: ClassVar[tuple[Thing, ...]] = ()  # what it posts through the ledger
    reads: ClassVar[tuple[Thing, ...]] = ()  # what other flows posted that it reads
    window: ClassVar[ReadWindow | None] = None
    webhook_system: ClassVar[str | None] = None  # events from this system feed the flow
    webhook_events: ClassVar[tuple[str, ...]] = ()  # …of these types
    chunk_size: ClassVar[int] = 1  # how many writes ``load_many`` takes at once
    # The interval an integration of this flow runs at when its schedule is "interval" and no
    # minutes are given (None: the minutes must be given).
    default_interval_minutes: ClassVar[int | None] = None
    # What happens after a write's answer is lost, when it is not "looked up in the target
    # before it is sent again" (the default wording).
    after_lost_answer: ClassVar[str] = ""
    settings: ClassVar[tuple[FieldSpec, ...]] = ()
    mapping_kinds: ClassVar[tuple[MappingKind, ...]] = ()  # the field mappings it reads
    part_settings: ClassVar[tuple[FieldSpec, ...]] = ()
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.options = clean_declared(
            (*self.declared_settings(), *self.part_settings),
            self.options or {},
            unknown="refuse",
            fill_defaults=False,
        )

    @classmethod
    def declared_settings(cls) -> tuple[FieldSpec, ...]:
        """What a person may set for this flow: its own settings, then the engine's."""
        engine = []
        if cls.window is not None:
            engine.append(OVERLAP_SETTING)
        if cls.partitions is not Flow.partitions:
            engine.append(WORKERS_SETTING)
        return (*cls.settings, *engine)

    @classmethod
    def clean_settings(cls, values: Mapping[str, Any]) -> dict[str, Any]:
        """An integration's settings checked for this flow: ``ValidationError`` naming each
        unknown name (with the nearest known one) and each value of the wrong kind."""
        return clean_declared(
            cls.declared_settings(), values, unknown="refuse", fill_defaults=False
        )

    @classmethod
    def mapping_kind(cls, name: str) -> MappingKind | None:
        """The declared mapping kind ``name`` (None: this flow reads no such mappings)."""
        return next((k for k in cls.mapping_kinds if k.name == name), None)

    def setting(self, name: str) -> Any:
        """The value of a declared setting, or its default."""
        spec = next(
            (s for s in (*self.declared_settings(), *self.part_settings) if s.name == name), None
        )
        if spec is None:
            raise LookupError(f"{type(self).__name__} reads “{name}”, which it does not declare.")
        value = self.options.get(name)
        return spec.default if value is None else value

    def extract(self, ctx: FlowContext[S, T]) -> Iterable[SourceRecord]:
        raise NotImplementedError

    def per_run(self, name: str, load: Callable[[], V]) -> V:
        """``load()`` once for the run (a flow object lives for one run): a chart of accounts
        ``prepare`` checks every record against, say."""
        cache = self.__dict__.setdefault("_per_run", {})
        if name not in cache:
            cache[name] = load()
        return cache[name]

    def chart(self, holder: Provider) -> set[str]:
        """The accounts of ``holder``'s chart (capability ``ChartOfAccounts``), read once per
        run: what a mapped account is checked against."""
        return self.per_run("chart", lambda: set(holder.chart_of_accounts()))  # type: ignore[attr-defined]

    def map(self, record: SourceRecord, mappings: Mappings) -> Payload | Flag | Wait | Skip:
        raise NotImplementedError

    def load(self, ctx: FlowContext[S, T], payload: Payload, posting: Posting | None) -> LoadResult:
        raise NotImplementedError

    def load_many(
        self, ctx: FlowContext[S, T], items: Sequence[tuple[Payload, Posting | None]]
    ) -> list[LoadResult | Exception]:
        """Write many payloads; one result or exception per item, in order.

        The default writes one at a time.  A target that accepts many writes per request
        overrides it; an exception for the whole call stands for every item (the runner then
        asks the target about each before posting again).
        """
        results: list[LoadResult | Exception] = []
        for payload, posting in items:
            if results and resolution_of(results[-1]) is Resolution.STOP:
                results.append(results[-1])  # the credentials are refused: do not hammer
                continue
            try:
                results.append(self.load(ctx, payload, posting))
            except Exception as exc:
                results.append(exc)
        return results

    def records_from_event(self, ctx: FlowContext[S, T], event: InboundEvent) -> list[SourceRecord]:
        """Source records for one inbound webhook event (flows with ``webhook_system``)."""
        raise NotImplementedError

    def find_existing(
        self, ctx: FlowContext[S, T], payload: Payload, posting: Posting
    ) -> LoadResult | Wait | None:
        """Whether the target already holds the write an earlier attempt (``posting``, the same
        ledger entry and generation) may have made: its result, None (post it), ``Wait`` (it
        cannot be told yet: ask again later, post nothing now) or ``Superseded`` (post afresh
        under a new number).  Override for every ledgered flow."""
        raise NotImplementedError(
            f"{type(self).__name__} posts through the ledger but cannot look up an earlier post"
        )

    def partitions(self, ctx: FlowContext[S, T], count: int) -> list[dict[str, Any]]:
        """How to split a run into up to ``count`` parts that workers take side by side: the
        option overrides of each part (key ranges of the source), covering every record once.
        The default (``[]``): this flow's runs are not split."""
        return []

    def serial_key(self, record: SourceRecord) -> str | None:
        """Records with the same key are loaded one after the other, never side by side (the
        default: every record stands alone)."""
        return None

    def prepare(self, ctx: FlowContext[S, T], record: SourceRecord) -> SourceRecord:
        """The record brought up to date just before it is mapped, once every earlier record
        with its ``serial_key`` is written (what CloudSuite still has open on an invoice, say).
        Runs in the runner's thread; the default changes nothing."""
        return record

    def reread(self, ctx: FlowContext[S, T], record: SourceRecord) -> SourceRecord:
        """A stored record brought up to date before it is replayed (what changed since it was
        read: an invoice's open amount, say).  The default replays it as it was read."""
        return record

    def acknowledge(self, ctx: FlowContext[S, T], records: Sequence[SourceRecord]) -> None:
        """Tell the source these records are done (committed, not to be read again)."""
