"""What a flow may use during a run (``FlowContext``, built by the runner): its connections'
clients (one per thread), the posting ledger as it reads it (``Ledger``), what earlier runs and
webhook deliveries processed, the mappings, and reads side by side (``in_parallel``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from connections.providers.base import Provider
from syncs.flows.keys import Thing
from syncs.flows.values import Mappings

if TYPE_CHECKING:
    from syncs.models import Integration

logger = logging.getLogger(__name__)

S = TypeVar("S", bound=Provider)
T = TypeVar("T", bound=Provider)
A = TypeVar("A")
R = TypeVar("R")


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
