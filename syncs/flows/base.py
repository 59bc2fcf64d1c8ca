"""The flow contract: ``extract → map → load``, the values that pass between them, and the
``FlowContext`` a flow works in (``values.py`` and ``context.py`` hold those two; this module the
``Flow`` and its declared settings).

A flow is small and declarative:

- ``extract(ctx)`` yields ``SourceRecord``s with a stable ``source_key``, in watermark order,
  reading from ``ctx.window_start`` — which the runner computes from the cursor and the flow's
  declared ``ReadWindow`` (replication key, unit, overlap, how far back the source reaches).  The
  cursor holds the watermark of the last committed record, so a window reads inclusively
  (``>=``) and records sharing it are seen again: the ledger makes that harmless.
- ``prepare(ctx, record)`` looks up, just before the record is mapped, what it is judged against
  (what is still open on an invoice, whether an account is in the chart): the flow's declared
  ``Lookups``, which ``map`` reads from ``record.lookups``.
- ``map(record, mappings)`` is pure — no I/O — and returns a ``Payload``, a ``Flag`` (needs a
  human), a ``Wait`` (not yet: read it again next run) or a ``Skip``.
- ``ledger_key(record)`` is the one place the posting ledger's key of a record's write is built
  (from ``keys.py``); ``map`` puts it on the payload, and the runner checks the two agree.
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

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from connections.providers.base import InboundEvent, Provider
from connections.providers.errors import Resolution, resolution_of
from connections.providers.spec import FieldSpec, clean_declared, positive_int, text, whole_number
from syncs.flows.context import FlowContext, Ledger, NoLedger
from syncs.flows.keys import Thing
from syncs.flows.kinds import MappingKind
from syncs.flows.reconciling import Reconciler
from syncs.flows.values import (
    Flag,
    LoadResult,
    Lookups,
    Mappings,
    Payload,
    Posting,
    ReadWindow,
    Skip,
    SourceRecord,
    Summary,
    Superseded,
    Unit,
    Wait,
    lookups_of,
)

logger = logging.getLogger(__name__)

S = TypeVar("S", bound=Provider)
T = TypeVar("T", bound=Provider)
V = TypeVar("V")

__all__ = [
    "OVERLAP_SETTING",
    "WORKERS_SETTING",
    "Check",
    "Flag",
    "Flow",
    "FlowContext",
    "Ledger",
    "LoadResult",
    "Lookups",
    "Mappings",
    "NoLedger",
    "Payload",
    "Posting",
    "ReadWindow",
    "Skip",
    "SourceRecord",
    "Summary",
    "Superseded",
    "Unit",
    "Wait",
    "lookups_of",
    "setting",
]


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
    # Money it moves, as the overview totals it: "in" (collected in the source system), "out"
    # (paid through it), "" (none: what it posts is an invoice, a customer, a note).
    money: ClassVar[str] = ""
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
    lookups: ClassVar[type[Lookups] | None] = None  # what ``prepare`` gives ``map``
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

    def chart(self, holder: Provider) -> dict[str, str]:
        """The accounts of ``holder``'s chart with their names (capability
        ``ChartOfAccounts``), read once per run: what a mapped account is checked against."""
        return self.per_run("chart", lambda: dict(holder.chart_of_accounts()))  # type: ignore[attr-defined]

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

    def prepare(self, ctx: FlowContext[S, T], record: SourceRecord) -> Lookups | None:
        """What the record is judged against, looked up just before it is mapped — once every
        earlier record with its ``serial_key`` is written (what CloudSuite still has open on an
        invoice, say), and again when it is replayed: an instance of ``lookups`` (None when the
        flow declares none).  Runs in the runner's thread."""
        return None

    def summary(self, record: SourceRecord) -> Summary:
        """The record as a finance user lists it — amount and currency, customer or supplier,
        invoice or order — from what was read (and looked up).  Pure; the default: nothing."""
        return Summary()

    def ledger_key(self, record: SourceRecord) -> str | None:
        """The posting ledger's key of the write this prepared record would make (built with
        ``keys.py``); ``map`` puts it on a ledgered payload.  None: the flow posts nothing
        through the ledger."""
        return None

    def acknowledge(self, ctx: FlowContext[S, T], records: Sequence[SourceRecord]) -> None:
        """Tell the source these records are done (committed, not to be read again)."""


class Check(Flow[S, T]):
    """Review-only work: a comparison of the source with the target that posts nothing (two
    charts of accounts, say).  ``examine`` judges each record the check reads: a ``Flag`` is a
    difference for a person to settle (in the review queue, with the mapping that would fix
    it), a ``Skip`` means it holds.  The runner never loads a check's record, and takes a payload
    from one for the bug it is."""

    ledger_target = ""
    posting_name = "nothing"

    def examine(self, record: SourceRecord, mappings: Mappings) -> Flag | Skip:
        raise NotImplementedError

    def map(self, record: SourceRecord, mappings: Mappings) -> Flag | Skip:
        return self.examine(record, mappings)

    def load(self, ctx: FlowContext[S, T], payload: Payload, posting: Posting | None) -> LoadResult:
        raise TypeError(f"{type(self).__name__} is a check: it posts nothing.")
