"""The values that pass between a flow's steps and the runner: the read window and its unit,
source records and what ``prepare`` looked up for them, what ``map`` decides (a payload, a flag,
a wait, a skip), the ledger's claim on a write, what a write did, and the integration's
mappings."""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

logger = logging.getLogger(__name__)


class Unit(enum.Enum):
    """How a source expresses its replication key (and so how the cursor stores it)."""

    # Milliseconds since 1970.  M3's LMTS is an 18-digit "Timestamp" whose unit no published
    # source gives (searched); read as epoch ms, a filter by it can only read too much, never too
    # little, should M3 hold yyyyMMddHHmmssSSS (17 digits, always larger): the flows that filter
    # by it are tested under both readings.
    EPOCH_MS = "epoch_ms"
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


def _plain(value: Any) -> Any:
    """A looked-up value as JSON: amounts and dates as text, tuples and sets as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, Decimal | date):
        return str(value)
    return value


@dataclass(frozen=True)
class Lookups:
    """What a flow's ``prepare`` read for one record from elsewhere, just before it is mapped:
    what CloudSuite still has open on an invoice, whether a mapped account is in the chart, what
    an earlier post left.  Each flow declares its own as a frozen dataclass (``Flow.lookups``)
    and ``map`` reads it, typed, with ``lookups_of``.

    It is kept apart from what was read (``SourceRecord.data``): the audit trail stores it beside
    the record (what the record was judged against) and a replay looks it up afresh."""

    def as_json(self) -> dict[str, Any]:
        return _plain(self)


L = TypeVar("L", bound=Lookups)


@dataclass(frozen=True)
class SourceRecord:
    """One record read from the source, and what ``prepare`` looked up for it (None before)."""

    source_key: str
    data: dict[str, Any]
    watermark: str | None = None
    seen_via: str = ""
    lookups: Lookups | None = None


@dataclass(frozen=True)
class Summary:
    """A record as a finance user lists it: its amount in its currency (None: it has none), who
    it is with (the customer's or supplier's code and name) and the document it is about (an
    invoice, an order).  What the overview totals, the queue groups and a search finds."""

    amount: Decimal | None = None
    currency: str = ""
    party: str = ""
    party_name: str = ""
    document: str = ""

    @staticmethod
    def amount_of(value: Any) -> Decimal | None:
        """An amount as read (text or number); None when it is not one."""
        if value in (None, ""):
            return None
        try:
            return Decimal(str(value).strip())
        except ArithmeticError:
            return None


def lookups_of(record: SourceRecord, kind: type[L]) -> L:
    """The record's lookups, of the kind its flow declares (``TypeError`` when ``prepare`` has
    not run, or returned another kind: a bug, not a reason to map on half the facts)."""
    found = record.lookups
    if not isinstance(found, kind):
        raise TypeError(
            f"{record.source_key} is mapped without its {kind.__name__} "
            f"(prepare gave {type(found).__name__})."
        )
    return found


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
    ``advice`` is the next step when no mapping settles it (refund the difference, answer the
    dispute), and ``see`` the thing in the source system where that is done, as (kind, id):
    the item links to it where the source's provider can say where that is.
    """

    reason: str
    fix: tuple[str, str] | None = None
    advice: str = ""
    see: tuple[str, str] | None = None


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
