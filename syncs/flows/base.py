"""The flow interface: ``extract → map → load``, and the values that pass between them.

A flow is small and declarative.  ``extract(ctx)`` yields ``SourceRecord``s with a stable
``source_key``, in watermark order, and must read *inclusively* from the cursor (``>=``): the
cursor stores the watermark of the last committed record, and records sharing it are seen
again (the ledger and idempotent writes make that harmless).  ``map(record, mappings)`` is pure
— no I/O — and returns a ``Payload``, a ``Flag`` (needs a human) or a ``Skip``.
``load(ctx, payload, posting)`` makes the target write and returns a ``LoadResult``; it
raises ``Rejected`` only when nothing was applied.  ``posting`` (for ledgered writes) carries the
idempotency key and a number unique to the ledger entry, for targets that need numeric ids.
A source whose records carry no watermark of their own (M3 filters by ``LMTS`` but does not
return it) calls ``ctx.finish_at(watermark)``: the runner commits it after the run, unless a
retryable failure means the same records must be read again.  ``find_existing(ctx, payload)``
lets the runner ask the target whether an interrupted post went through.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from syncs.runner import FlowContext

logger = logging.getLogger(__name__)


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
    """The record needs a human (unmapped vendor, currency mismatch …): never posted."""

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

    def number(self, base: int, slots: int = 100) -> int:
        """A number unique to this entry and generation: ``base + id·slots + generation``."""
        if self.generation >= slots:
            raise ValueError("too many refused attempts for one posting number")
        return base + self.ledger_id * slots + self.generation


@dataclass(frozen=True)
class LoadResult:
    """The outcome of a target write."""

    remote_id: str
    response: Mapping[str, Any] | None = None
    note: str = ""


class Mappings:
    """The integration's field mappings, read once per run: ``get(kind, source_value)``."""

    def __init__(self, table: Mapping[tuple[str, str], str] | None = None) -> None:
        self._table = dict(table or {})

    def get(self, kind: str, source_value: Any) -> str | None:
        return self._table.get((kind, str(source_value).strip()))

    def __len__(self) -> int:
        return len(self._table)


@dataclass
class Flow:
    """Base class of every flow; subclasses set the class attributes and the four methods."""

    key: ClassVar[str]
    label: ClassVar[str]
    source_kind: ClassVar[str]
    target_kind: ClassVar[str]
    stream: ClassVar[str]
    target: ClassVar[str]  # the ledger's name for the target write, e.g. "m3.receipt"
    webhook_provider: ClassVar[str | None] = None  # events from this provider feed the flow
    webhook_events: ClassVar[tuple[str, ...]] = ()  # …of these types
    options: dict[str, Any] = field(default_factory=dict)

    def extract(self, ctx: FlowContext) -> Iterable[SourceRecord]:
        raise NotImplementedError

    def map(self, record: SourceRecord, mappings: Mappings) -> Payload | Flag | Skip:
        raise NotImplementedError

    def load(self, ctx: FlowContext, payload: Payload, posting: Posting | None) -> LoadResult:
        raise NotImplementedError

    def records_from_event(self, ctx: FlowContext, event: dict[str, Any]) -> list[SourceRecord]:
        """Source records for one inbound webhook event (flows with ``webhook_provider``)."""
        raise NotImplementedError

    def find_existing(self, ctx: FlowContext, payload: Payload) -> LoadResult | None:
        """Whether the target already holds this write; override for every ledgered flow."""
        raise NotImplementedError(
            f"{type(self).__name__} posts through the ledger but cannot look up an earlier post"
        )
